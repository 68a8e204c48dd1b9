import CCRC32C

/// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum of WAL records
/// and snapshots. With the processor's crc32 instruction where it has one (SSE 4.2 on x86-64:
/// eight bytes an instruction, several GB/s), else slicing-by-8 (eight table lookups per 8 bytes,
/// about 1-2 GB/s in release builds). Every WAL record is checksummed twice (written, then checked
/// as recovery will), and every snapshot and recovery checksums the whole state: the table-driven
/// version was 1.7% of ledgerd's CPU at peak.
public enum CRC32C {
    /// Whether this process uses the processor's instruction (tests compare both ways).
    package static let usesHardware = tokenledger_crc32c_hardware() != 0

    private static let tables: [[UInt32]] = {
        var tables = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            tables[0][byte] = crc
        }
        for byte in 0..<256 {
            for slice in 1..<8 {
                let previous = tables[slice - 1][byte]
                tables[slice][byte] = (previous >> 8) ^ tables[0][Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    /// The checksum of `bytes`, continuing from `crc` (the checksum of what came before).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard usesHardware, let base = bytes.baseAddress else { return tableDriven(bytes, continuing: crc) }
        return ~tokenledger_crc32c_update(~crc, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// `checksum` by tables, on any processor.
    package static func tableDriven(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var value = ~crc
        var index = 0
        let count = bytes.count
        tables.withUnsafeBufferPointer { tables in
            let t0 = tables[0], t1 = tables[1], t2 = tables[2], t3 = tables[3]
            let t4 = tables[4], t5 = tables[5], t6 = tables[6], t7 = tables[7]
            while index + 8 <= count {
                let low = UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2]) << 16
                    | UInt32(bytes[index + 3]) << 24
                let high = UInt32(bytes[index + 4]) | UInt32(bytes[index + 5]) << 8 | UInt32(bytes[index + 6]) << 16
                    | UInt32(bytes[index + 7]) << 24
                let mixed = value ^ low
                value =
                    t7[Int(mixed & 0xFF)] ^ t6[Int((mixed >> 8) & 0xFF)] ^ t5[Int((mixed >> 16) & 0xFF)]
                    ^ t4[Int(mixed >> 24)] ^ t3[Int(high & 0xFF)] ^ t2[Int((high >> 8) & 0xFF)]
                    ^ t1[Int((high >> 16) & 0xFF)] ^ t0[Int(high >> 24)]
                index += 8
            }
            while index < count {
                value = (value >> 8) ^ t0[Int((value ^ UInt32(bytes[index])) & 0xFF)]
                index += 1
            }
        }
        return ~value
    }

    /// The checksum of A followed by B from the checksums of A and of B (B's from 0) and B's
    /// length, as zlib's `crc32_combine` (polynomial arithmetic modulo the CRC's polynomial):
    /// a snapshot streamed to its file is checksummed as it goes, and its header, which holds
    /// the body's length and comes first, is checksummed at the end.
    public static func combine(_ first: UInt32, _ second: UInt32, secondLength: Int) -> UInt32 {
        precondition(secondLength >= 0)
        return multiplyModP(xToThe8N(UInt64(secondLength)), first) ^ second
    }

    private static let polynomial: UInt32 = 0x82F6_3B78

    /// a(x) * b(x) modulo the polynomial, in the reflected form (the highest bit is x^0).
    private static func multiplyModP(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var a = a, b = b, product: UInt32 = 0
        var mask: UInt32 = 1 << 31
        while a != 0 {
            if a & mask != 0 {
                product ^= b
                a ^= mask
            }
            mask >>= 1
            b = b & 1 != 0 ? (b >> 1) ^ polynomial : b >> 1
        }
        return product
    }

    /// x^(2^k) modulo the polynomial, for k in 0..<32.
    private static let powersOfTwo: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 32)
        table[0] = 1 << 30  // x^1
        for k in 1..<32 { table[k] = multiplyModP(table[k - 1], table[k - 1]) }
        return table
    }()

    /// x^(8n) modulo the polynomial: the shift of a checksum past n zero bytes.
    private static func xToThe8N(_ n: UInt64) -> UInt32 {
        var result: UInt32 = 1 << 31  // x^0
        var n = n, k = 3
        while n != 0 {
            if n & 1 != 0 { result = multiplyModP(powersOfTwo[k & 31], result) }
            n >>= 1
            k += 1
        }
        return result
    }

    public static func checksum<Bytes: Collection>(_ bytes: Bytes, continuing crc: UInt32 = 0) -> UInt32
    where Bytes.Element == UInt8 {
        if let result = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0), continuing: crc) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { checksum($0, continuing: crc) }
    }
}
