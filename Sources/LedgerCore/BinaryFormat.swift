// The binary form of ledger commands (WAL record bodies) and ledger state (snapshot bodies).
//
// Hand-written rather than derived from Codable: a Codable encoder pays for generic dispatch and
// container boxes on every field, and these explicit, specialized encoders were measured several
// times faster (docs/benchmarks.md). docs/storage.md describes the framing around these bodies.
//
//   unsigned integers   LEB128 varint (at most 10 bytes)
//   signed integers     zigzag, then varint
//   Bool                1 byte, 0 or 1
//   String              varint byte count, then UTF-8
//   Optional            1 byte presence (0 or 1), then the value
//   Array               varint count, then the elements
//   Dictionary          varint count, then key, value pairs
//   enum                1 byte tag (case index), then the payload
//
// Compatibility rule: new enum cases and new fields are added at the end. A new field is read
// only from data of the format version that added it (``BinaryReader/version``): snapshots carry
// their version in their header (docs/storage.md); a WAL record's command carries it in its tag
// (a command whose payload grew gets a new tag, and its old tag reads the old payload).

/// The versions of the binary form.
public enum BinaryFormatVersion {
    /// 1: the first. 2: plan quotas (`Plan.quotas`, `PlanPeriod.quotaUsed`, `Hold.quota`) and
    /// grant scopes (`Grant.scope`, `GrantRequest.scope`).
    public static let current: UInt32 = 2
    /// The oldest version this build reads.
    public static let oldest: UInt32 = 1
}

/// Appends the binary form of values.
public struct BinaryWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// A writer that appends to `bytes`, which it takes over: the caller passes its array and
    /// leaves the variable empty until it takes `bytes` back, so nothing is copied.
    init(appendingTo bytes: inout [UInt8]) {
        swap(&self.bytes, &bytes)
    }

    /// Hands the bytes back to the array an `init(appendingTo:)` writer took them from.
    mutating func giveBack(to bytes: inout [UInt8]) {
        swap(&self.bytes, &bytes)
    }

    @inline(__always)
    public mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    public mutating func write<T: BinaryCodable>(_ value: T) { value.encode(to: &self) }

    public mutating func write<T: BinaryCodable>(_ value: T?) {
        if let value {
            bytes.append(1)
            value.encode(to: &self)
        } else {
            bytes.append(0)
        }
    }

    public mutating func write<T: BinaryCodable>(_ values: [T]?) {
        if let values {
            bytes.append(1)
            write(values)
        } else {
            bytes.append(0)
        }
    }

    public mutating func write<T: BinaryCodable>(_ values: [T]) {
        writeVarint(UInt64(values.count))
        for value in values { value.encode(to: &self) }
    }

    public mutating func write<Key: BinaryCodable, Value: BinaryCodable>(_ values: [Key: Value]) {
        writeVarint(UInt64(values.count))
        for (key, value) in values {
            key.encode(to: &self)
            value.encode(to: &self)
        }
    }

    public mutating func tag(_ value: UInt8) { bytes.append(value) }

    /// Hands the bytes written so far to `take` and empties the writer, keeping its room (a value
    /// written in parts, see `LedgerState.encode(to:flushingAt:_:)`).
    public mutating func drain<E: Error>(_ take: (UnsafeRawBufferPointer) throws(E) -> Void) throws(E) {
        let result: Result<Void, E> = bytes.withUnsafeBytes { buffer in
            do throws(E) {
                try take(buffer)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
        bytes.removeAll(keepingCapacity: true)
    }

    /// Removes written bytes (the tenant id inside a remembered request's body).
    mutating func removeBytes(_ range: Range<Int>) { bytes.removeSubrange(range) }

    /// Replaces written bytes with two varints, back to back (lengths that come before what they
    /// measure: room is left for them, then filled in). The bytes after `range` move only when the
    /// varints' size differs from the room left.
    mutating func replaceBytes(_ range: Range<Int>, withVarints first: UInt64, _ second: UInt64) {
        let size = Varint.size(first) + Varint.size(second)
        if size != range.count { bytes.replaceSubrange(range, with: repeatElement(0, count: size)) }
        bytes.withUnsafeMutableBufferPointer { buffer in
            let start = buffer.baseAddress! + range.lowerBound
            _ = Varint.write(second, at: start + Varint.write(first, at: start))
        }
    }
}

/// Varints (LEB128, as protobuf writes them) into memory sized beforehand.
public enum Varint {
    /// The bytes `value` takes.
    @inlinable @inline(__always)
    public static func size(_ value: UInt64) -> Int { value < 0x80 ? 1 : (70 - value.leadingZeroBitCount) / 7 }

    /// Writes `value` at `base`; returns the bytes written.
    @inlinable @inline(__always)
    public static func write(_ value: UInt64, at base: UnsafeMutablePointer<UInt8>) -> Int {
        var value = value
        var count = 0
        while value >= 0x80 {
            base[count] = UInt8(truncatingIfNeeded: value) | 0x80
            count += 1
            value >>= 7
        }
        base[count] = UInt8(value)
        return count + 1
    }}

/// Why bytes are not a valid binary form.
public struct BinaryFormatError: Error, Hashable, Sendable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "malformed binary data at byte \(offset): \(reason)" }
}

/// Reads the binary form of values; every problem is a ``BinaryFormatError``, never a trap.
public struct BinaryReader {
    let bytes: [UInt8]
    public private(set) var offset: Int
    /// The format version of the data: fields added after it are not read (they take their
    /// defaults). In-memory forms are always ``BinaryFormatVersion/current``.
    public var version: UInt32 = BinaryFormatVersion.current

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        offset = 0
    }

    init(_ bytes: [UInt8], offset: Int) {
        self.bytes = bytes
        self.offset = offset
    }

    public var isAtEnd: Bool { offset == bytes.count }

    func fail(_ reason: String) -> BinaryFormatError { BinaryFormatError(offset: offset, reason: reason) }

    @inline(__always)
    public mutating func byte() throws(BinaryFormatError) -> UInt8 {
        guard offset < bytes.count else { throw fail("unexpected end") }
        defer { offset += 1 }
        return bytes[offset]
    }

    @inline(__always)
    public mutating func readVarint() throws(BinaryFormatError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let next = try byte()
            if shift == 63, next > 1 { throw fail("varint overflows 64 bits") }
            value |= UInt64(next & 0x7F) << shift
            if next & 0x80 == 0 { return value }
            shift += 7
            if shift > 63 { throw fail("varint longer than 10 bytes") }
        }
    }

    /// Passes over a string's binary form (its length, then its bytes) without making the string;
    /// returns where the form lies.
    mutating func skipString() throws(BinaryFormatError) -> Range<Int> {
        let start = offset
        let length = try readVarint()
        guard length <= UInt64(bytes.count - offset) else { throw fail("string length \(length) larger than the data") }
        offset += Int(length)
        return start..<offset
    }

    /// Passes over a value's binary form; returns where it lies.
    mutating func skip<T: BinaryCodable>(_ type: T.Type) throws(BinaryFormatError) -> Range<Int> {
        let start = offset
        _ = try T(from: &self)
        return start..<offset
    }

    /// A count of elements, each of which takes at least one byte: bounded by what is left, so a
    /// hostile count cannot make the reader reserve memory.
    public mutating func readCount() throws(BinaryFormatError) -> Int {
        let count = try readVarint()
        guard count <= UInt64(bytes.count - offset) else { throw fail("count \(count) larger than the data") }
        return Int(count)
    }

    public mutating func read<T: BinaryCodable>(_ type: T.Type = T.self) throws(BinaryFormatError) -> T {
        try T(from: &self)
    }

    public mutating func readOptional<T: BinaryCodable>(_ type: T.Type = T.self) throws(BinaryFormatError) -> T? {
        switch try byte() {
        case 0: return nil
        case 1: return try T(from: &self)
        case let other: throw fail("presence byte \(other)")
        }
    }

    public mutating func readArray<T: BinaryCodable>(_ type: T.Type = T.self) throws(BinaryFormatError) -> [T] {
        let count = try readCount()
        var values: [T] = []
        if count > 0 { values.reserveCapacity(count) }
        for _ in 0..<count { values.append(try T(from: &self)) }
        return values
    }

    /// An optional array: presence byte, then the array.
    public mutating func readOptionalArray<T: BinaryCodable>(_ type: T.Type = T.self) throws(BinaryFormatError) -> [T]? {
        switch try byte() {
        case 0: return nil
        case 1: return try readArray()
        case let other: throw fail("presence byte \(other)")
        }
    }

    public mutating func readDictionary<Key: BinaryCodable & Hashable, Value: BinaryCodable>(
        _ key: Key.Type = Key.self, _ value: Value.Type = Value.self
    ) throws(BinaryFormatError) -> [Key: Value] {
        let count = try readCount()
        var values: [Key: Value] = [:]
        // Not for an empty one: reserving on the shared empty dictionary allocates a table, which
        // cost every tenant read from a snapshot about 500 bytes for its empty holds and members.
        if count > 0 { values.reserveCapacity(count) }
        for _ in 0..<count {
            let key = try Key(from: &self)
            guard values.updateValue(try Value(from: &self), forKey: key) == nil else { throw fail("duplicate key") }
        }
        return values
    }

    public mutating func tag(below count: UInt8) throws(BinaryFormatError) -> UInt8 {
        let tag = try byte()
        guard tag < count else { throw fail("unknown tag \(tag)") }
        return tag
    }
}

/// A value with a binary form.
public protocol BinaryCodable {
    func encode(to writer: inout BinaryWriter)
    init(from reader: inout BinaryReader) throws(BinaryFormatError)
}

extension BinaryCodable {
    /// The binary form of this value alone.
    public var binaryEncoded: [UInt8] { binaryEncoded(capacity: 256) }

    /// The binary form, written into room for `capacity` bytes reserved up front: a large value
    /// (a snapshot's state, hundreds of MB) then does not grow its buffer by doubling, copying
    /// what was written at every step.
    public func binaryEncoded(capacity: Int) -> [UInt8] {
        var writer = BinaryWriter(capacity: capacity)
        encode(to: &writer)
        return writer.bytes
    }

    /// Appends the binary form to `bytes` in place (a log's pending batch), without an array of its own.
    public func encode(appendingTo bytes: inout [UInt8]) {
        var writer = BinaryWriter(appendingTo: &bytes)
        encode(to: &writer)
        writer.giveBack(to: &bytes)
    }

    /// Decodes a value that must take all of `bytes`, written in format `version`.
    public init(binary bytes: [UInt8], version: UInt32 = BinaryFormatVersion.current) throws(BinaryFormatError) {
        var reader = BinaryReader(bytes)
        guard version >= BinaryFormatVersion.oldest, version <= BinaryFormatVersion.current else {
            throw reader.fail("format version \(version); this build reads \(BinaryFormatVersion.oldest) to \(BinaryFormatVersion.current)")
        }
        reader.version = version
        self = try Self(from: &reader)
        guard reader.isAtEnd else { throw reader.fail("\(bytes.count - reader.offset) bytes after the value") }
    }
}

// MARK: - Primitives

extension UInt64: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.writeVarint(self) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) { self = try reader.readVarint() }
}

extension UInt32: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.writeVarint(UInt64(self)) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        let value = try reader.readVarint()
        guard let narrowed = UInt32(exactly: value) else { throw reader.fail("\(value) does not fit 32 bits") }
        self = narrowed
    }
}

extension Int64: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.writeVarint(UInt64(bitPattern: (self << 1) ^ (self >> 63))) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        let raw = try reader.readVarint()
        self = Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }
}

extension Int: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { Int64(self).encode(to: &writer) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) { self = Int(try Int64(from: &reader)) }
}

extension Bool: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.tag(self ? 1 : 0) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) { self = try reader.tag(below: 2) == 1 }
}

extension String: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        // The UTF-8 view's own storage (a small string's too) where it has one: `withUTF8` on a
        // copy took a quarter to a third longer per id, and ids are encoded about ten times a call.
        let written: Void? = utf8.withContiguousStorageIfAvailable { utf8 in
            writer.writeVarint(UInt64(utf8.count))
            writer.appendBytes(utf8)
        }
        guard written == nil else { return }
        var copy = self
        copy.withUTF8 { utf8 in
            writer.writeVarint(UInt64(utf8.count))
            writer.appendBytes(utf8)
        }
    }

    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        let count = try reader.readCount()
        let start = reader.offset
        guard let text = reader.bytes[start..<(start + count)].withUnsafeBufferPointer(String.init(validatingUTF8:)) else {
            throw reader.fail("invalid UTF-8")
        }
        reader.skip(count)
        self = text
    }

    /// The text of `utf8` when it is valid UTF-8, as `String(validating:as:)` gives it, with a fast
    /// path for ASCII (every identifier): ASCII is valid UTF-8 as it is, and checking for it costs
    /// far less than the generic validation (which was a tenth of a snapshot's CPU, and of the
    /// framed port's request decoding).
    @inlinable
    public init?(validatingUTF8 utf8: UnsafeBufferPointer<UInt8>) {
        var high: UInt8 = 0
        for byte in utf8 { high |= byte }
        guard high >= 0x80 else {
            self = String(decoding: utf8, as: UTF8.self)
            return
        }
        guard let text = String(validating: utf8, as: UTF8.self) else { return nil }
        self = text
    }
}

extension BinaryWriter {
    mutating func appendBytes(_ buffer: UnsafeBufferPointer<UInt8>) { bytes.append(contentsOf: buffer) }
}

extension Array {
    /// A copy without spare capacity (appending grows an array's storage by doubling).
    func exactlySized() -> [Element] {
        guard capacity > count else { return self }
        var exact: [Element] = []
        exact.reserveCapacity(count)
        exact.append(contentsOf: self)
        return exact
    }
}

extension BinaryReader {
    mutating func skip(_ count: Int) { offset += count }
}

extension Duration: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        components.seconds.encode(to: &writer)
        components.attoseconds.encode(to: &writer)
    }

    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        let seconds = try Int64(from: &reader)
        let attoseconds = try Int64(from: &reader)
        self = Duration(secondsComponent: seconds, attosecondsComponent: attoseconds)
    }
}

/// Enums with a fixed list of cases encode as their index in `allCases`.
extension BinaryCodable where Self: CaseIterable & Equatable, AllCases == [Self] {
    public func encode(to writer: inout BinaryWriter) { writer.tag(UInt8(Self.allCases.firstIndex(of: self)!)) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self = Self.allCases[Int(try reader.tag(below: UInt8(Self.allCases.count)))]
    }
}
