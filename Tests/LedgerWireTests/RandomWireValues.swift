import LedgerTesting

/// Reproducible field values for the wire tests: 0, the varint length edges and the maximum;
/// empty, ASCII, multi-byte and long (two-byte length) strings.
struct RandomWireValues {
    var random: SeededGenerator
    init(seed: UInt64) { random = SeededGenerator(state: seed) }
    mutating func next() -> UInt64 { random.next() }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

    mutating func uint64() -> UInt64 {
        switch below(8) {
        case 0: return 0
        case 1: return UInt64(below(128))
        case 2: return [127, 128, 16_383, 16_384][below(4)]
        case 3: return UInt64.max
        case 4: return next() >> UInt64(below(64))
        default: return UInt64(below(1_000_000))
        }
    }

    mutating func int64() -> Int64 {
        switch below(6) {
        case 0: return 0
        case 1: return -Int64(below(1_000)) - 1
        case 2: return [Int64.min, Int64.max, -1][below(3)]
        default: return 1_780_000_000_000 + Int64(below(1_000_000_000))
        }
    }

    mutating func string() -> String {
        switch below(6) {
        case 0: return ""
        case 1: return "é€😀-" + String(below(1_000))
        case 2: return String(repeating: "x", count: 100 + below(300))
        default: return "hold-\(next() % 100_000)"
        }
    }
}
