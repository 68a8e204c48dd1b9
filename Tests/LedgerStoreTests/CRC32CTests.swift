import LedgerStore
import LedgerTesting
import Testing

@Suite struct CRC32CTests {
    // RFC 3720 (iSCSI) appendix B.4 test vectors and the common "123456789" check value.
    static let vectors: [([UInt8], UInt32)] = [
        (Array("123456789".utf8), 0xE306_9283),
        ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ((0..<32).map { UInt8($0) }, 0x46DD_794E),
        ((0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
        ([], 0),
    ]

    @Test(arguments: vectors)
    func publishedVectors(bytes: [UInt8], expected: UInt32) {
        #expect(CRC32C.checksum(bytes) == expected)
    }

    @Test func continuingEqualsOneShotAtEverySplit() {
        let bytes = (0..<301).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let whole = CRC32C.checksum(bytes)
        for split in 0...bytes.count {
            #expect(CRC32C.checksum(bytes[split...], continuing: CRC32C.checksum(bytes[..<split])) == whole)
        }
    }
}

extension CRC32CTests {
    /// The processor's instruction (where this machine has it) and the tables agree at every length,
    /// alignment and starting value.
    @Test func theInstructionAndTheTablesAgree() {
        var random = SeededGenerator(state: 32)
        let bytes = (0..<1_100).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        bytes.withUnsafeBytes { all in
            for start in 0..<9 {
                for count in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 1_000] {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + count)])
                    for crc: UInt32 in [0, 0xE306_9283, 0xFFFF_FFFF] {
                        #expect(CRC32C.checksum(slice, continuing: crc) == CRC32C.tableDriven(slice, continuing: crc))
                    }
                }
            }
        }
        #if arch(x86_64)
            // Every x86-64 machine this runs on has SSE 4.2; without it the comparison above proves nothing.
            #expect(CRC32C.usesHardware)
        #endif
    }
}

extension CRC32CTests {
    /// The checksum of A then B from A's and B's alone (a streamed snapshot's header is
    /// checksummed after its body): at every split of random bytes, B empty included, and for a
    /// B longer than any table step.
    @Test func combiningTwoChecksumsEqualsTheChecksumOfBoth() {
        var random = SeededGenerator(state: 33)
        let bytes = (0..<600).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        for split in 0...bytes.count {
            let combined = CRC32C.combine(
                CRC32C.checksum(bytes[..<split]), CRC32C.checksum(bytes[split...]), secondLength: bytes.count - split)
            #expect(combined == CRC32C.checksum(bytes), "split \(split)")
        }
        let long = [UInt8](repeating: 0xA5, count: 3_000_001)
        let header = Array("header".utf8)
        #expect(
            CRC32C.combine(CRC32C.checksum(header), CRC32C.checksum(long), secondLength: long.count)
                == CRC32C.checksum(long, continuing: CRC32C.checksum(header)))
    }
}
