// Snapshot files: `snapshot-<LSN, 20 digits>.snap`, written as `.snap.tmp` first.
//
//   header (32 bytes)
//   +----------------+---------+----------+-----------+-----------------+
//   | "TLSNAP01"  8  | ver u32 | rsvd u32 |  LSN u64  | body length u64 |
//   +----------------+---------+----------+-----------+-----------------+
//   body (body length bytes: the engine's encoding of the ledger state)
//   footer (24 bytes)
//   +----------------+-----------+---------+----------+
//   | "TLSNEND1"  8  |  LSN u64  | crc u32 | rsvd u32 |
//   +----------------+-----------+---------+----------+
//   crc: CRC32C of the header, the body and the footer's first 16 bytes.
//
// Invariants: a `.snap` file is complete and durable (temp file fsynced, renamed, directory
// fsynced); the two newest snapshots are kept; a snapshot with LSN S is written only after the log
// is durable through S.

#if canImport(Glibc)
import Glibc
#endif

public struct SnapshotStore: Sendable {
    public let directory: String
    public let faults: StorageFaults?
    /// Snapshots kept: the newest and the one before it (the fallback).
    public static let keptCount = 2

    static let headerMagic = Array("TLSNAP01".utf8)
    static let footerMagic = Array("TLSNEND1".utf8)
    static let headerSize = 32
    static let footerSize = 24
    /// The format version of the bodies written (the ledger's binary form, `BinaryFormatVersion`
    /// in LedgerCore: the engine checks they agree), and the oldest read.
    public static let formatVersion: UInt32 = 2
    public static let oldestFormatVersion: UInt32 = 1

    public init(directory: String, faults: StorageFaults? = nil) {
        self.directory = directory
        self.faults = faults
    }

    /// The file of the snapshot at `lsn`.
    public func path(lsn: UInt64) -> String { directory + "/" + Self.name(lsn: lsn) }

    static func name(lsn: UInt64) -> String {
        let digits = String(lsn)
        return "snapshot-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".snap"
    }

    static func lsn(fromName name: String) -> UInt64? {
        guard name.hasPrefix("snapshot-"), name.hasSuffix(".snap") else { return nil }
        return UInt64(name.dropFirst("snapshot-".count).dropLast(".snap".count))
    }

    /// The header of a snapshot at `lsn` whose body is `bodyLength` bytes.
    static func header(lsn: UInt64, bodyLength: Int) -> [UInt8] {
        var header = headerMagic
        header.reserveCapacity(headerSize)
        header.appendLittleEndian(formatVersion)
        header.appendLittleEndian(UInt32(0))
        header.appendLittleEndian(lsn)
        header.appendLittleEndian(UInt64(bodyLength))
        return header
    }

    /// Where a snapshot's body goes as it is encoded: straight into the file, checksummed on the
    /// way, so that a state of hundreds of MB is never held encoded in memory as a whole (and each
    /// part is checksummed and copied to the file while still in the processor's cache).
    public struct BodySink: ~Copyable {
        fileprivate let file: DurableFile
        /// The body's checksum from 0 and its length so far.
        fileprivate var checksum: UInt32 = 0
        public private(set) var count = 0

        fileprivate init(file: DurableFile) { self.file = file }

        /// Appends the next bytes of the body.
        public mutating func append(_ bytes: UnsafeRawBufferPointer) throws(StorageError) {
            try file.write(bytes)
            checksum = CRC32C.checksum(bytes, continuing: checksum)
            count += bytes.count
        }

        /// `append` of an array's bytes.
        public mutating func append(_ bytes: [UInt8]) throws(StorageError) {
            try file.write(bytes)
            checksum = CRC32C.checksum(bytes, continuing: checksum)
            count += bytes.count
        }
    }

    /// The LSN and body of a snapshot file's bytes, or why they are not a valid snapshot.
    public static func decode(_ bytes: [UInt8]) -> Result<(lsn: UInt64, body: ArraySlice<UInt8>, format: UInt32), SnapshotDamage> {
        bytes.withUnsafeBytes { raw in
            guard raw.count >= headerSize + footerSize else { return .failure(SnapshotDamage(reason: "shorter than a header and footer")) }
            guard Array(raw[0..<8]) == headerMagic else { return .failure(SnapshotDamage(reason: "bad header magic")) }
            let format = raw.loadLittleEndian(UInt32.self, at: 8)
            guard format >= oldestFormatVersion, format <= formatVersion else {
                return .failure(SnapshotDamage(reason: "format version \(format); this build reads \(oldestFormatVersion) to \(formatVersion)"))
            }
            let lsn = raw.loadLittleEndian(UInt64.self, at: 16)
            let length = raw.loadLittleEndian(UInt64.self, at: 24)
            guard length == UInt64(raw.count - headerSize - footerSize) else { return .failure(SnapshotDamage(reason: "body length \(length) does not match the file size")) }
            let footer = raw.count - footerSize
            guard Array(raw[footer..<(footer + 8)]) == footerMagic else { return .failure(SnapshotDamage(reason: "bad footer magic")) }
            guard raw.loadLittleEndian(UInt64.self, at: footer + 8) == lsn else { return .failure(SnapshotDamage(reason: "header and footer LSNs differ")) }
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<(footer + 16)]))
            guard crc == raw.loadLittleEndian(UInt32.self, at: footer + 16) else { return .failure(SnapshotDamage(reason: "checksum mismatch")) }
            guard raw.loadLittleEndian(UInt32.self, at: footer + 20) == 0 else { return .failure(SnapshotDamage(reason: "reserved footer field not zero")) }
            return .success((lsn, bytes[headerSize..<footer], format))
        }
    }

    /// Writes a snapshot durably (temp file, fsync, rename, directory fsync), then deletes all but
    /// the two newest. Returns the LSNs kept, newest first.
    @discardableResult
    public func write(lsn: UInt64, body: [UInt8]) throws(StorageError) -> [UInt64] {
        try write(lsn: lsn) { sink throws(StorageError) in try sink.append(body) }.kept
    }

    /// `write` with the body appended to the sink by `encodeBody` as it is encoded: the header's
    /// place is left, the body written, then the footer, then the header (its length and the
    /// checksum, which covers the header first, are known at the end: the body's own checksum is
    /// combined with the header's). Returns the LSNs kept, newest first, and the body's length.
    public func write(
        lsn: UInt64, encodingBody encodeBody: (inout BodySink) throws(StorageError) -> Void
    ) throws(StorageError) -> (kept: [UInt64], bodyBytes: Int) {
        var bodyBytes = 0
        try FileSystem.replaceFile(directory + "/" + Self.name(lsn: lsn), faults: faults) { file throws(StorageError) in
            try file.write(Self.placeholder)
            var sink = BodySink(file: file)
            try encodeBody(&sink)
            let header = Self.header(lsn: lsn, bodyLength: sink.count)
            var footer = Self.footerMagic
            footer.reserveCapacity(Self.footerSize)
            footer.appendLittleEndian(lsn)
            let checksum = CRC32C.checksum(
                footer, continuing: CRC32C.combine(CRC32C.checksum(header), sink.checksum, secondLength: sink.count))
            footer.appendLittleEndian(checksum)
            footer.appendLittleEndian(UInt32(0))
            try file.write(footer)
            try file.write(header, at: 0)
            bodyBytes = sink.count
        }
        let all = try snapshotLSNs()
        for old in all.dropFirst(Self.keptCount) { try FileSystem.remove(directory + "/" + Self.name(lsn: old)) }
        if all.count > Self.keptCount { try FileSystem.syncDirectory(directory, faults: faults) }
        return (Array(all.prefix(Self.keptCount)), bodyBytes)
    }

    private static let placeholder = [UInt8](repeating: 0, count: headerSize)

    /// LSNs of the snapshot files present, newest first.
    public func snapshotLSNs() throws(StorageError) -> [UInt64] {
        try FileSystem.list(directory).compactMap(Self.lsn(fromName:)).sorted(by: >)
    }

    /// Removes leftover `.tmp` files of interrupted snapshots. Returns how many.
    @discardableResult
    public func removeTemporaries() throws(StorageError) -> Int {
        let leftovers = try FileSystem.list(directory).filter { $0.hasSuffix(".snap.tmp") }
        for name in leftovers { try FileSystem.remove(directory + "/" + name) }
        if !leftovers.isEmpty { try FileSystem.syncDirectory(directory, faults: faults) }
        return leftovers.count
    }

    /// The newest valid snapshot, falling back to older ones when the newest is damaged. `skipped`
    /// names the damaged files passed over. Nil when there is no snapshot at all.
    public func loadNewest() throws(StorageError) -> (lsn: UInt64, body: ArraySlice<UInt8>, format: UInt32, skipped: [String])? {
        var skipped: [String] = []
        for lsn in try snapshotLSNs() {
            let path = directory + "/" + Self.name(lsn: lsn)
            switch Self.decode(try FileSystem.readFile(path)) {
            case .success(let snapshot) where snapshot.lsn == lsn:
                return (lsn, snapshot.body, snapshot.format, skipped)
            case .success:
                skipped.append("\(path): LSN differs from its name")
            case .failure(let damage):
                skipped.append("\(path): \(damage.reason)")
            }
        }
        guard skipped.isEmpty else {
            throw StorageError.noUsableSnapshot(directory: directory, reason: skipped.joined(separator: "; "))
        }
        return nil
    }
}

/// Why a snapshot file was rejected.
public struct SnapshotDamage: Error, Hashable, Sendable {
    public var reason: String
}
