#if canImport(Glibc)
import Glibc
#endif

/// A WAL segment on disk.
public struct SegmentInfo: Hashable, Sendable {
    public var path: String
    public var firstLSN: UInt64

    static let prefix = "wal-"
    static let suffix = ".log"

    static func name(firstLSN: UInt64) -> String {
        let digits = String(firstLSN)
        return prefix + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    /// The first LSN encoded in a segment file name, or nil for other files.
    public static func firstLSN(fromName name: String) -> UInt64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        return UInt64(name.dropFirst(prefix.count).dropLast(suffix.count))
    }
}

/// What recovery read from a shard's log.
public struct RecoveredLog: Sendable {
    /// Records after the snapshot's LSN, in order: LSN and body.
    public var records: [(lsn: UInt64, body: [UInt8])]
    /// The last valid LSN in the log (or the snapshot's LSN when the log has nothing after it).
    public var lastLSN: UInt64
    /// Segments in LSN order after recovery.
    public var segments: [SegmentInfo]
    /// Bytes cut from a torn tail (kept aside in a `.torn` file), 0 when the tail was clean.
    public var tornBytes: Int
    /// Where torn bytes were kept, if any.
    public var tornFile: String?
    /// Where the last segment's records end: appends continue there (after it may come zeros of
    /// preallocated space, not records).
    public var lastSegmentEnd: Int?
}

/// The recovery scan of a shard's write-ahead log.
public enum WALRecovery {
    /// Reads every segment in `directory`, keeps the records after `afterLSN`, truncates a torn or
    /// garbage tail of the last segment (keeping the cut bytes in `<segment>.torn`; zeros alone after
    /// the records are preallocated space and stay), and refuses with
    /// ``StorageError/corruption(file:offset:lsn:reason:)`` when damage is followed by valid records,
    /// when LSNs skip, or when the log does not reach back to `afterLSN + 1`.
    public static func recover(directory: String, afterLSN: UInt64, faults: StorageFaults? = nil) throws(StorageError)
        -> RecoveredLog
    {
        try read(directory: directory, afterLSN: afterLSN, faults: faults, readOnly: false)
    }

    /// `recover` that changes no file: a torn or garbage tail, or a last segment without a valid
    /// header, is refused as corruption instead of being cut (a backup's copy is checked this way).
    public static func scan(directory: String, afterLSN: UInt64) throws(StorageError) -> RecoveredLog {
        try read(directory: directory, afterLSN: afterLSN, faults: nil, readOnly: true)
    }

    private static func read(directory: String, afterLSN: UInt64, faults: StorageFaults?, readOnly: Bool) throws(StorageError)
        -> RecoveredLog
    {
        var segments: [SegmentInfo] = []
        for name in try FileSystem.list(directory) {
            if let first = SegmentInfo.firstLSN(fromName: name) {
                segments.append(SegmentInfo(path: directory + "/" + name, firstLSN: first))
            }
        }
        segments.sort { $0.firstLSN < $1.firstLSN }
        var result = RecoveredLog(records: [], lastLSN: afterLSN, segments: [], tornBytes: 0, tornFile: nil)
        var expected: UInt64? = nil
        for (position, segment) in segments.enumerated() {
            let isLast = position == segments.count - 1
            let bytes = try FileSystem.readFile(segment.path)
            let header = bytes.withUnsafeBytes { WALFormat.checkSegmentHeader($0) }
            guard let firstLSN = header, firstLSN == segment.firstLSN else {
                // A segment whose header never became durable holds nothing acknowledged.
                guard isLast, !readOnly else {
                    throw StorageError.corruption(file: segment.path, offset: 0, lsn: expected ?? segment.firstLSN, reason: "bad segment header")
                }
                let aside = try keepAside(Array(bytes), of: segment.path, faults: faults)
                try FileSystem.remove(segment.path)
                try FileSystem.syncDirectory(directory, faults: faults)
                result.tornBytes = bytes.count
                result.tornFile = aside
                break
            }
            if let expected, firstLSN != expected {
                throw StorageError.corruption(file: segment.path, offset: 0, lsn: expected, reason: "segment starts at LSN \(firstLSN)")
            }
            if expected == nil, firstLSN > afterLSN + 1 {
                throw StorageError.corruption(
                    file: segment.path, offset: 0, lsn: afterLSN + 1,
                    reason: "the log starts at LSN \(firstLSN) but the snapshot covers only up to \(afterLSN)")
            }
            let scan = bytes.withUnsafeBytes { WALFormat.scanSegment($0, firstLSN: firstLSN) }
            let next = firstLSN + UInt64(scan.records.count)
            if let problem = scan.problem {
                if !isLast || scan.validRecordAfterProblem != nil || readOnly {
                    throw StorageError.corruption(
                        file: segment.path, offset: scan.validEnd, lsn: next,
                        reason: problem + (scan.validRecordAfterProblem.map { ", followed by a valid record at offset \($0)" } ?? ", followed by more segments"))
                }
                // With the preallocated zeros after it, if any (at most one preallocation step).
                let torn = Array(bytes[scan.validEnd...])
                result.tornFile = try keepAside(torn, of: segment.path, faults: faults)
                result.tornBytes = torn.count
                let file = try DurableFile(path: segment.path, flags: O_WRONLY, faults: faults)
                try file.truncate(to: scan.validEnd)
                try file.fullSync()
            }
            for record in scan.records where record.lsn > afterLSN {
                result.records.append((record.lsn, Array(bytes[record.body])))
            }
            if let last = scan.records.last { result.lastLSN = max(result.lastLSN, last.lsn) }
            expected = next
            result.segments.append(segment)
            result.lastSegmentEnd = scan.validEnd
        }
        // The snapshotter waits for the log to be durable up to a snapshot's LSN before writing it,
        // and never deletes the last segment: a log that ends before the snapshot lost records.
        if let expected, expected - 1 < afterLSN {
            throw StorageError.corruption(
                file: result.segments.last?.path ?? directory, offset: 0, lsn: expected,
                reason: "the log ends at LSN \(expected - 1), before the snapshot's LSN \(afterLSN)")
        }
        return result
    }

    /// Writes torn bytes to `<segment>.torn` (or `.torn.N` when one exists) and returns its path.
    static func keepAside(_ bytes: [UInt8], of segmentPath: String, faults: StorageFaults?) throws(StorageError) -> String {
        var path = segmentPath + ".torn"
        var counter = 1
        while FileSystem.exists(path) {
            path = segmentPath + ".torn.\(counter)"
            counter += 1
        }
        try FileSystem.writeFile(path, bytes, faults: faults)
        return path
    }
}
