@testable import LedgerCore
import Testing

/// Strings in the binary form (log records, snapshots): ASCII takes a fast path past the generic
/// UTF-8 validation; every other text must still be validated, and bad bytes refused.
@Suite struct BinaryStringTests {
    @Test func asciiMultiByteAndInvalidUTF8() throws {
        for text in ["", "acme", "request-0001:x.y_z", "é-12", "日本語", "mixed ascii then ü", String(repeating: "a", count: 300)] {
            var writer = BinaryWriter()
            writer.write(text)
            var reader = BinaryReader(writer.bytes)
            #expect(try reader.read(String.self) == text)
            #expect(reader.isAtEnd)
        }
        // Lone continuation byte, truncated two-byte sequence, overlong encoding, a surrogate.
        for bad: [UInt8] in [[0x80], [0x61, 0xC3], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0x61, 0x62, 0xFF]] {
            var reader = BinaryReader([UInt8(bad.count)] + bad)
            #expect(throws: BinaryFormatError.self) { try reader.read(String.self) }
        }
    }
}
