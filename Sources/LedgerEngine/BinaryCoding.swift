// A compact binary form of `Codable` values for WAL records and snapshots.
//
// The format is positional: fields are written in the order `encode(to:)` visits them and read in
// the order `init(from:)` asks for them, which synthesized conformances keep identical. Keys are not
// written, except where a keyed container opens a nested container by key: that is how
// synthesized enums with associated values name their case, and the decoder's `allKeys` reads it
// back. So the format supports exactly what synthesized conformances of structs and enums need:
//
//   Bool                 1 byte
//   unsigned integers    LEB128 varint;  signed integers: zigzag, then varint
//   Float, Double        IEEE bit pattern, little-endian
//   String               varint byte count, UTF-8
//   optional field       1 byte presence (0 or 1), then the value if present
//   unkeyed container    u32 element count (patched as elements are added), then the elements
//   nested by key        the key's string, then the nested container
//
// Not supported (they throw): nil in single-value or unkeyed containers, super encoders, and
// dictionaries keyed by String or Int (their decoding needs every key); types with such fields
// write their own conformance (see PriceCatalog).

import LedgerCore

/// Encodes and decodes `Codable` values in the binary form described above.
public enum BinaryCoding {
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let sink = Sink()
        try sink.encodeValue(value)
        return sink.bytes
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let source = Source(bytes)
        let value = try source.decodeValue(T.self)
        guard source.position == bytes.count else {
            throw BinaryCodingError.malformed("\(bytes.count - source.position) bytes left after the value")
        }
        return value
    }
}

public enum BinaryCodingError: Error, CustomStringConvertible {
    case malformed(String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .malformed(let reason): return "malformed binary data: \(reason)"
        case .unsupported(let what): return "not supported by the binary coding: \(what)"
        }
    }
}

// MARK: - Encoding

final class Sink: Encoder {
    var bytes: [UInt8] = []
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init() { bytes.reserveCapacity(256) }

    func encodeValue<T: Encodable>(_ value: T) throws {
        // Compare metatypes first: a dynamic cast of every value to each primitive costs far more.
        if T.self == String.self {
            write(value as! String)
        } else if T.self == UInt64.self {
            write(value as! UInt64)
        } else if T.self == Int64.self {
            write(value as! Int64)
        } else if T.self == Bool.self {
            write(value as! Bool)
        } else {
            try value.encode(to: self)
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(KeyedSink<Key>(sink: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer { UnkeyedSink(sink: self) }
    func singleValueContainer() -> any SingleValueEncodingContainer { SingleSink(sink: self) }

    func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    func write(_ value: Bool) { bytes.append(value ? 1 : 0) }
    func write(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            writeVarint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }
    func write(_ value: UInt64) { writeVarint(value) }
    func write(_ value: UInt) { writeVarint(UInt64(value)) }
    func write(_ value: UInt32) { writeVarint(UInt64(value)) }
    func write(_ value: UInt16) { writeVarint(UInt64(value)) }
    func write(_ value: UInt8) { writeVarint(UInt64(value)) }
    func write(_ value: Int64) { writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63))) }
    func write(_ value: Int) { write(Int64(value)) }
    func write(_ value: Int32) { write(Int64(value)) }
    func write(_ value: Int16) { write(Int64(value)) }
    func write(_ value: Int8) { write(Int64(value)) }
    func write(_ value: Double) { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
    func write(_ value: Float) { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }

    func writePresence<T>(_ value: T?, _ body: (T) throws -> Void) rethrows {
        guard let value else {
            bytes.append(0)
            return
        }
        bytes.append(1)
        try body(value)
    }
}

struct KeyedSink<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let sink: Sink
    var codingPath: [any CodingKey] { [] }

    mutating func encodeNil(forKey key: Key) throws {
        throw BinaryCodingError.unsupported("explicit nil for key \(key.stringValue)")
    }
    mutating func encode(_ value: Bool, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: String, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: Double, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: Float, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: Int, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: Int8, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: Int16, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: Int32, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: Int64, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: UInt, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { sink.write(value) }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { sink.writePresence(value) { sink.write($0) } }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try sink.encodeValue(value) }
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        try sink.writePresence(value) { try sink.encodeValue($0) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey>
    {
        sink.write(key.stringValue)
        return KeyedEncodingContainer(KeyedSink<NestedKey>(sink: sink))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        sink.write(key.stringValue)
        return UnkeyedSink(sink: sink)
    }

    mutating func superEncoder() -> any Encoder { sink }
    mutating func superEncoder(forKey key: Key) -> any Encoder { sink }
}

struct UnkeyedSink: UnkeyedEncodingContainer {
    let sink: Sink
    let countPosition: Int
    private(set) var count = 0
    var codingPath: [any CodingKey] { [] }

    init(sink: Sink) {
        self.sink = sink
        countPosition = sink.bytes.count
        sink.bytes.append(contentsOf: [0, 0, 0, 0])
    }

    private mutating func bump() {
        count += 1
        let value = UInt32(count)
        sink.bytes[countPosition] = UInt8(truncatingIfNeeded: value)
        sink.bytes[countPosition + 1] = UInt8(truncatingIfNeeded: value >> 8)
        sink.bytes[countPosition + 2] = UInt8(truncatingIfNeeded: value >> 16)
        sink.bytes[countPosition + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }

    mutating func encodeNil() throws { throw BinaryCodingError.unsupported("nil in an unkeyed container") }
    mutating func encode(_ value: Bool) throws { sink.write(value); bump() }
    mutating func encode(_ value: String) throws { sink.write(value); bump() }
    mutating func encode(_ value: Double) throws { sink.write(value); bump() }
    mutating func encode(_ value: Float) throws { sink.write(value); bump() }
    mutating func encode(_ value: Int) throws { sink.write(value); bump() }
    mutating func encode(_ value: Int8) throws { sink.write(value); bump() }
    mutating func encode(_ value: Int16) throws { sink.write(value); bump() }
    mutating func encode(_ value: Int32) throws { sink.write(value); bump() }
    mutating func encode(_ value: Int64) throws { sink.write(value); bump() }
    mutating func encode(_ value: UInt) throws { sink.write(value); bump() }
    mutating func encode(_ value: UInt8) throws { sink.write(value); bump() }
    mutating func encode(_ value: UInt16) throws { sink.write(value); bump() }
    mutating func encode(_ value: UInt32) throws { sink.write(value); bump() }
    mutating func encode(_ value: UInt64) throws { sink.write(value); bump() }
    mutating func encode<T: Encodable>(_ value: T) throws {
        bump()
        try sink.encodeValue(value)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        bump()
        return KeyedEncodingContainer(KeyedSink<NestedKey>(sink: sink))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        bump()
        return UnkeyedSink(sink: sink)
    }

    mutating func superEncoder() -> any Encoder { sink }
}

struct SingleSink: SingleValueEncodingContainer {
    let sink: Sink
    var codingPath: [any CodingKey] { [] }

    mutating func encodeNil() throws { throw BinaryCodingError.unsupported("nil in a single-value container") }
    mutating func encode(_ value: Bool) throws { sink.write(value) }
    mutating func encode(_ value: String) throws { sink.write(value) }
    mutating func encode(_ value: Double) throws { sink.write(value) }
    mutating func encode(_ value: Float) throws { sink.write(value) }
    mutating func encode(_ value: Int) throws { sink.write(value) }
    mutating func encode(_ value: Int8) throws { sink.write(value) }
    mutating func encode(_ value: Int16) throws { sink.write(value) }
    mutating func encode(_ value: Int32) throws { sink.write(value) }
    mutating func encode(_ value: Int64) throws { sink.write(value) }
    mutating func encode(_ value: UInt) throws { sink.write(value) }
    mutating func encode(_ value: UInt8) throws { sink.write(value) }
    mutating func encode(_ value: UInt16) throws { sink.write(value) }
    mutating func encode(_ value: UInt32) throws { sink.write(value) }
    mutating func encode(_ value: UInt64) throws { sink.write(value) }
    mutating func encode<T: Encodable>(_ value: T) throws { try sink.encodeValue(value) }
}

// MARK: - Decoding

final class Source: Decoder {
    let bytes: [UInt8]
    var position = 0
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == String.self { return try read(String.self) as! T }
        if T.self == UInt64.self { return try read(UInt64.self) as! T }
        if T.self == Int64.self { return try read(Int64.self) as! T }
        if T.self == Bool.self { return try read(Bool.self) as! T }
        return try T(from: self)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(KeyedSource<Key>(source: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { try UnkeyedSource(source: self) }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleSource(source: self) }

    func byte() throws -> UInt8 {
        guard position < bytes.count else { throw BinaryCodingError.malformed("unexpected end at \(position)") }
        defer { position += 1 }
        return bytes[position]
    }

    func readVarint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let next = try byte()
            guard shift < 64, shift < 63 || next <= 1 else { throw BinaryCodingError.malformed("varint too long at \(position)") }
            value |= UInt64(next & 0x7F) << shift
            if next & 0x80 == 0 { return value }
            shift += 7
        }
    }

    func readFixed(_ count: Int) throws -> UInt64 {
        guard bytes.count - position >= count else { throw BinaryCodingError.malformed("unexpected end at \(position)") }
        var value: UInt64 = 0
        for index in 0..<count { value |= UInt64(bytes[position + index]) << (8 * UInt64(index)) }
        position += count
        return value
    }

    func narrow<T: FixedWidthInteger>(_ value: some FixedWidthInteger, _ type: T.Type) throws -> T {
        guard let narrowed = T(exactly: value) else { throw BinaryCodingError.malformed("\(value) does not fit \(T.self)") }
        return narrowed
    }

    func read(_ type: Bool.Type) throws -> Bool {
        switch try byte() {
        case 0: return false
        case 1: return true
        case let other: throw BinaryCodingError.malformed("\(other) is not a Bool")
        }
    }

    func read(_ type: String.Type) throws -> String {
        let length = try readVarint()
        guard length <= UInt64(bytes.count - position) else { throw BinaryCodingError.malformed("string longer than the data") }
        let end = position + Int(length)
        guard let text = String(validating: bytes[position..<end], as: UTF8.self) else {
            throw BinaryCodingError.malformed("invalid UTF-8 at \(position)")
        }
        position = end
        return text
    }

    func read(_ type: UInt64.Type) throws -> UInt64 { try readVarint() }
    func read(_ type: UInt.Type) throws -> UInt { try narrow(readVarint(), UInt.self) }
    func read(_ type: UInt32.Type) throws -> UInt32 { try narrow(readVarint(), UInt32.self) }
    func read(_ type: UInt16.Type) throws -> UInt16 { try narrow(readVarint(), UInt16.self) }
    func read(_ type: UInt8.Type) throws -> UInt8 { try narrow(readVarint(), UInt8.self) }
    func read(_ type: Int64.Type) throws -> Int64 {
        let raw = try readVarint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }
    func read(_ type: Int.Type) throws -> Int { try narrow(read(Int64.self), Int.self) }
    func read(_ type: Int32.Type) throws -> Int32 { try narrow(read(Int64.self), Int32.self) }
    func read(_ type: Int16.Type) throws -> Int16 { try narrow(read(Int64.self), Int16.self) }
    func read(_ type: Int8.Type) throws -> Int8 { try narrow(read(Int64.self), Int8.self) }
    func read(_ type: Double.Type) throws -> Double { Double(bitPattern: try readFixed(8)) }
    func read(_ type: Float.Type) throws -> Float { Float(bitPattern: UInt32(try readFixed(4))) }

    func readPresence() throws -> Bool { try read(Bool.self) }

    /// The key string at the current position, not consumed.
    func peekKey() throws -> String {
        let saved = position
        defer { position = saved }
        return try read(String.self)
    }

    func expectKey(_ key: some CodingKey) throws {
        let found = try read(String.self)
        guard found == key.stringValue else { throw BinaryCodingError.malformed("expected key \(key.stringValue), found \(found)") }
    }
}

struct KeyedSource<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let source: Source
    var codingPath: [any CodingKey] { [] }

    /// Only meaningful where the encoder wrote a key: an enum's case before its nested container.
    var allKeys: [Key] {
        guard let text = try? source.peekKey(), let key = Key(stringValue: text) else { return [] }
        return [key]
    }

    func contains(_ key: Key) -> Bool { true }
    func decodeNil(forKey key: Key) throws -> Bool {
        throw BinaryCodingError.unsupported("explicit nil for key \(key.stringValue)")
    }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try source.read(Bool.self) }
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try source.readPresence() ? try source.read(Bool.self) : nil }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try source.read(String.self) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try source.readPresence() ? try source.read(String.self) : nil }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try source.read(Double.self) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try source.readPresence() ? try source.read(Double.self) : nil }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try source.read(Float.self) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try source.readPresence() ? try source.read(Float.self) : nil }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try source.read(Int.self) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try source.readPresence() ? try source.read(Int.self) : nil }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try source.read(Int8.self) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try source.readPresence() ? try source.read(Int8.self) : nil }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try source.read(Int16.self) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try source.readPresence() ? try source.read(Int16.self) : nil }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try source.read(Int32.self) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try source.readPresence() ? try source.read(Int32.self) : nil }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try source.read(Int64.self) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try source.readPresence() ? try source.read(Int64.self) : nil }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try source.read(UInt.self) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try source.readPresence() ? try source.read(UInt.self) : nil }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try source.read(UInt8.self) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try source.readPresence() ? try source.read(UInt8.self) : nil }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try source.read(UInt16.self) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try source.readPresence() ? try source.read(UInt16.self) : nil }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try source.read(UInt32.self) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try source.readPresence() ? try source.read(UInt32.self) : nil }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try source.read(UInt64.self) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try source.readPresence() ? try source.read(UInt64.self) : nil }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try source.decodeValue(T.self) }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        try source.readPresence() ? try source.decodeValue(T.self) : nil
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try source.expectKey(key)
        return KeyedDecodingContainer(KeyedSource<NestedKey>(source: source))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try source.expectKey(key)
        return try UnkeyedSource(source: source)
    }

    func superDecoder() throws -> any Decoder { source }
    func superDecoder(forKey key: Key) throws -> any Decoder { source }
}

struct UnkeyedSource: UnkeyedDecodingContainer {
    let source: Source
    let total: Int
    private(set) var currentIndex = 0
    var codingPath: [any CodingKey] { [] }
    var count: Int? { total }
    var isAtEnd: Bool { currentIndex >= total }

    init(source: Source) throws {
        self.source = source
        let raw = try source.readFixed(4)
        // Every element takes at least one byte: a count above what is left is malformed, and
        // checking it here keeps a hostile count from reserving memory.
        guard raw <= UInt64(source.bytes.count - source.position) else {
            throw BinaryCodingError.malformed("count \(raw) larger than the data")
        }
        total = Int(raw)
    }

    private mutating func next() throws {
        guard currentIndex < total else { throw BinaryCodingError.malformed("read past the end of an unkeyed container") }
        currentIndex += 1
    }

    mutating func decodeNil() throws -> Bool { false }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(); return try source.read(Bool.self) }
    mutating func decode(_ type: String.Type) throws -> String { try next(); return try source.read(String.self) }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(); return try source.read(Double.self) }
    mutating func decode(_ type: Float.Type) throws -> Float { try next(); return try source.read(Float.self) }
    mutating func decode(_ type: Int.Type) throws -> Int { try next(); return try source.read(Int.self) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next(); return try source.read(Int8.self) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next(); return try source.read(Int16.self) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next(); return try source.read(Int32.self) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next(); return try source.read(Int64.self) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next(); return try source.read(UInt.self) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next(); return try source.read(UInt8.self) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next(); return try source.read(UInt16.self) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next(); return try source.read(UInt32.self) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next(); return try source.read(UInt64.self) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try next()
        return try source.decodeValue(T.self)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next()
        return KeyedDecodingContainer(KeyedSource<NestedKey>(source: source))
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next()
        return try UnkeyedSource(source: source)
    }

    mutating func superDecoder() throws -> any Decoder { source }
}

struct SingleSource: SingleValueDecodingContainer {
    let source: Source
    var codingPath: [any CodingKey] { [] }

    func decodeNil() -> Bool { false }
    func decode(_ type: Bool.Type) throws -> Bool { try source.read(Bool.self) }
    func decode(_ type: String.Type) throws -> String { try source.read(String.self) }
    func decode(_ type: Double.Type) throws -> Double { try source.read(Double.self) }
    func decode(_ type: Float.Type) throws -> Float { try source.read(Float.self) }
    func decode(_ type: Int.Type) throws -> Int { try source.read(Int.self) }
    func decode(_ type: Int8.Type) throws -> Int8 { try source.read(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try source.read(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try source.read(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try source.read(Int64.self) }
    func decode(_ type: UInt.Type) throws -> UInt { try source.read(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try source.read(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try source.read(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try source.read(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try source.read(UInt64.self) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try source.decodeValue(T.self) }
}
