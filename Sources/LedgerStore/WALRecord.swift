// The write-ahead log's on-disk format (docs/storage.md has the full description).
//
// A segment file `wal-<first LSN, 20 digits>.log`:
//
//   segment header (24 bytes)
//   +----------------+---------+---------+----------------+
//   | "TLWALSEG"  8  | ver u32 | crc u32 | first LSN u64  |   crc: CRC32C of the other 20 bytes
//   +----------------+---------+---------+----------------+
//   record, record, ...
//
//   record (24-byte header + body)
//   +----------+----------+-----------+------------+---------+------ ... ------+
//   | magic u32| len u32  |  LSN u64  | rsvd u32 0 | crc u32 |  body (len)     |
//   +----------+----------+-----------+------------+---------+------ ... ------+
//   magic "TLWR" (0x52574C54 little-endian); crc: CRC32C of header bytes 0..<20 and the body.
//
// All integers little-endian. Invariants: LSNs increase by exactly one from the segment's first
// LSN, across segments too; a record is acknowledged only after the fdatasync that covers it, so a
// torn record can only be the last thing in the last segment.

/// Encoding and checking of WAL records and segment headers.
public enum WALFormat {
    public static let recordMagic: UInt32 = 0x5257_4C54  // "TLWR" in file order
    public static let recordHeaderSize = 24
    public static let segmentMagic: [UInt8] = Array("TLWALSEG".utf8)
    public static let segmentHeaderSize = 24
    public static let formatVersion: UInt32 = 1
    /// Largest record body (``StorageLimits/recordBodyMax``).
    public static let recordBodyMax = StorageLimits.recordBodyMax

    /// Appends one record whose body `encodeBody` appends to `buffer` in place (no array of its own
    /// first); returns the body's size. A body over ``recordBodyMax`` is taken back out and refused.
    public static func appendRecord(
        lsn: UInt64, to buffer: inout [UInt8], encodingBody encodeBody: (inout [UInt8]) -> Void
    ) throws(StorageError) -> Int {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: recordHeaderSize))
        encodeBody(&buffer)
        let bodySize = buffer.count - start - recordHeaderSize
        guard bodySize <= recordBodyMax else {
            buffer.removeSubrange(start...)
            throw StorageError.recordTooLarge(size: bodySize, limit: recordBodyMax)
        }
        buffer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: recordMagic.littleEndian, toByteOffset: start, as: UInt32.self)
            raw.storeBytes(of: UInt32(bodySize).littleEndian, toByteOffset: start + 4, as: UInt32.self)
            raw.storeBytes(of: lsn.littleEndian, toByteOffset: start + 8, as: UInt64.self)
            let headerCRC = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[start..<(start + 20)]))
            let body = UnsafeRawBufferPointer(rebasing: raw[(start + recordHeaderSize)...])
            raw.storeBytes(of: CRC32C.checksum(body, continuing: headerCRC).littleEndian, toByteOffset: start + 20, as: UInt32.self)
        }
        return bodySize
    }

    public static func segmentHeader(firstLSN: UInt64) -> [UInt8] {
        var header = segmentMagic
        header.appendLittleEndian(formatVersion)
        var checked = segmentMagic
        checked.appendLittleEndian(formatVersion)
        checked.appendLittleEndian(firstLSN)
        header.appendLittleEndian(CRC32C.checksum(checked))
        header.appendLittleEndian(firstLSN)
        return header
    }

    /// The first LSN of a valid segment header, or nil.
    public static func checkSegmentHeader(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard bytes.count >= segmentHeaderSize, Array(bytes[0..<8]) == segmentMagic,
            bytes.loadLittleEndian(UInt32.self, at: 8) == formatVersion
        else { return nil }
        let firstLSN = bytes.loadLittleEndian(UInt64.self, at: 16)
        var checked = segmentMagic
        checked.appendLittleEndian(formatVersion)
        checked.appendLittleEndian(firstLSN)
        guard CRC32C.checksum(checked) == bytes.loadLittleEndian(UInt32.self, at: 12) else { return nil }
        return firstLSN
    }

    /// What is at `offset`: a whole, valid record, or why not.
    public enum RecordCheck: Equatable {
        case valid(lsn: UInt64, body: Range<Int>)
        case incomplete
        case invalid(String)
    }

    public static func checkRecord(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> RecordCheck {
        guard bytes.count - offset >= recordHeaderSize else { return .incomplete }
        guard bytes.loadLittleEndian(UInt32.self, at: offset) == recordMagic else { return .invalid("bad record magic") }
        let length = Int(bytes.loadLittleEndian(UInt32.self, at: offset + 4))
        guard length <= recordBodyMax else { return .invalid("record length \(length) above the limit") }
        guard bytes.loadLittleEndian(UInt32.self, at: offset + 16) == 0 else { return .invalid("reserved field not zero") }
        guard bytes.count - offset - recordHeaderSize >= length else { return .incomplete }
        let headerCRC = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + 20)]))
        let bodyStart = offset + recordHeaderSize
        let body = UnsafeRawBufferPointer(rebasing: bytes[bodyStart..<(bodyStart + length)])
        guard CRC32C.checksum(body, continuing: headerCRC) == bytes.loadLittleEndian(UInt32.self, at: offset + 20) else {
            return .invalid("checksum mismatch")
        }
        return .valid(lsn: bytes.loadLittleEndian(UInt64.self, at: offset + 8), body: bodyStart..<(bodyStart + length))
    }

    /// The result of scanning one segment's bytes.
    public struct SegmentScan: Equatable {
        /// LSN and body range of each valid record, in order.
        public var records: [(lsn: UInt64, body: Range<Int>)]
        /// Where the valid records end.
        public var validEnd: Int
        /// Why scanning stopped before the end of the bytes, if it did.
        public var problem: String?
        /// A valid record found after the problem: proof that the damage is not a torn tail.
        public var validRecordAfterProblem: Int?

        public static func == (lhs: SegmentScan, rhs: SegmentScan) -> Bool {
            lhs.records.map(\.lsn) == rhs.records.map(\.lsn) && lhs.records.map(\.body) == rhs.records.map(\.body)
                && lhs.validEnd == rhs.validEnd && lhs.problem == rhs.problem
                && lhs.validRecordAfterProblem == rhs.validRecordAfterProblem
        }
    }

    /// Scans the records of a segment (after its header) expecting LSNs from `firstLSN`. Pure: the
    /// recovery scan and the fuzzer share it.
    public static func scanSegment(_ bytes: UnsafeRawBufferPointer, firstLSN: UInt64) -> SegmentScan {
        var scan = SegmentScan(records: [], validEnd: segmentHeaderSize, problem: nil, validRecordAfterProblem: nil)
        var offset = segmentHeaderSize
        var expected = firstLSN
        while offset < bytes.count {
            // The log preallocates segments ahead of its writes: zeros to the end are space not
            // written yet, not damage. (A record never starts with a zero byte: see `recordMagic`.)
            if bytes[offset] == 0, isZero(bytes, from: offset) { return scan }
            switch checkRecord(bytes, at: offset) {
            case .valid(let lsn, let body):
                guard lsn == expected else {
                    scan.problem = "LSN \(lsn) where \(expected) was expected"
                    scan.validRecordAfterProblem = findValidRecord(bytes, after: offset, minimumLSN: expected)
                    return scan
                }
                scan.records.append((lsn, body))
                offset = body.upperBound
                scan.validEnd = offset
                expected += 1
            case .incomplete:
                scan.problem = "incomplete record"
                scan.validRecordAfterProblem = findValidRecord(bytes, after: offset, minimumLSN: expected)
                return scan
            case .invalid(let reason):
                scan.problem = reason
                scan.validRecordAfterProblem = findValidRecord(bytes, after: offset, minimumLSN: expected)
                return scan
            }
        }
        return scan
    }

    /// Whether every byte from `offset` to the end is zero.
    package static func isZero(_ bytes: UnsafeRawBufferPointer, from offset: Int) -> Bool {
        var position = offset
        while position < bytes.count, position % 8 != 0 {
            if bytes[position] != 0 { return false }
            position += 1
        }
        while position + 8 <= bytes.count {
            if bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self) != 0 { return false }
            position += 8
        }
        while position < bytes.count {
            if bytes[position] != 0 { return false }
            position += 1
        }
        return true
    }

    /// The offset of the first checksum-valid record after `offset` with an LSN of at least
    /// `minimumLSN`, if any.
    static func findValidRecord(_ bytes: UnsafeRawBufferPointer, after offset: Int, minimumLSN: UInt64) -> Int? {
        var position = offset + 1
        while position + recordHeaderSize <= bytes.count {
            if bytes.loadLittleEndian(UInt32.self, at: position) == recordMagic,
                case .valid(let lsn, _) = checkRecord(bytes, at: position), lsn >= minimumLSN
            {
                return position
            }
            position += 1
        }
        return nil
    }
}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

extension UnsafeRawBufferPointer {
    func loadLittleEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
