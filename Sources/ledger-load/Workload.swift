import Foundation

/// A small, fast, seedable generator (SplitMix64): one per lane, so lanes never contend.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<1.
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// Which tenant an operation goes to.
enum TenantDistribution: Sendable, CustomStringConvertible {
    case uniform(count: Int)
    /// Zipf over ranks 1...count with exponent `s` (rank 1 = tenant 0 is the most popular); the
    /// cumulative weights are computed once.
    case zipf(count: Int, s: Double, cumulative: [Double])
    /// A share `fraction` of the operations go to tenant 0, the rest uniformly to all.
    case hot(count: Int, fraction: Double)

    static func parse(_ text: String, count: Int, zipfExponent: Double, hotFraction: Double) throws -> TenantDistribution {
        switch text {
        case "uniform": return .uniform(count: count)
        case "hot": return .hot(count: count, fraction: hotFraction)
        case "zipf":
            var cumulative = [Double](repeating: 0, count: count)
            var total = 0.0
            for rank in 0..<count {
                total += 1 / pow(Double(rank + 1), zipfExponent)
                cumulative[rank] = total
            }
            for rank in 0..<count { cumulative[rank] /= total }
            return .zipf(count: count, s: zipfExponent, cumulative: cumulative)
        default: throw LoadError.usage("--distribution is uniform, zipf or hot, not \(text)")
        }
    }

    func pick(_ random: inout SplitMix64) -> Int {
        switch self {
        case .uniform(let count): return Int(random.next() % UInt64(count))
        case .hot(let count, let fraction):
            return random.unit() < fraction ? 0 : Int(random.next() % UInt64(count))
        case .zipf(let count, _, let cumulative):
            let u = random.unit()
            var low = 0
            var high = count - 1
            while low < high {
                let middle = (low + high) / 2
                if cumulative[middle] < u { low = middle + 1 } else { high = middle }
            }
            return low
        }
    }

    var description: String {
        switch self {
        case .uniform: return "uniform"
        case .zipf(_, let s, _): return "zipf s=\(s)"
        case .hot(_, let fraction): return "hot \(Int(fraction * 100))% on tenant 0"
        }
    }
}

/// One iteration of a lane's loop.
enum Operation: String, CaseIterable, Sendable {
    /// reserve, then a final commit of four fifths (the rest is released): 2 calls.
    case pair
    /// reserve, then release: 2 calls.
    case release
    /// refund a part of the lane's last committed hold (a pair first if there is none).
    case refund
    case estimate
    case balance
    /// Spend four fifths of the amount in one call (what a pair captures): 1 call.
    case charge

    var calls: Int {
        switch self {
        case .pair, .release: return 2
        case .refund, .estimate, .balance, .charge: return 1
        }
    }
}

/// Weighted choice among operations, from `pair=90,balance=10`.
struct OperationMix: Sendable, CustomStringConvertible {
    let weights: [(Operation, Int)]
    let total: Int

    init(parsing text: String) throws {
        var weights: [(Operation, Int)] = []
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard let operation = Operation(rawValue: pieces[0]) else {
                throw LoadError.usage(
                    "--mix: unknown operation \(pieces[0]) (known: \(Operation.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let weight = pieces.count == 2 ? Int(pieces[1]) : 1
            guard let weight, weight >= 0 else { throw LoadError.usage("--mix: bad weight in \(part)") }
            if weight > 0 { weights.append((operation, weight)) }
        }
        guard !weights.isEmpty else { throw LoadError.usage("--mix needs at least one operation with a weight above 0") }
        self.weights = weights
        self.total = weights.reduce(0) { $0 + $1.1 }
    }

    func pick(_ random: inout SplitMix64) -> Operation {
        var ticket = Int(random.next() % UInt64(total))
        for (operation, weight) in weights {
            if ticket < weight { return operation }
            ticket -= weight
        }
        return weights[weights.count - 1].0
    }

    /// Calls an average iteration makes.
    var callsPerIteration: Double {
        Double(weights.reduce(0) { $0 + $1.0.calls * $1.1 }) / Double(total)
    }

    var description: String { weights.map { "\($0.0.rawValue)=\($0.1)" }.joined(separator: ",") }
}

enum LoadError: Error, CustomStringConvertible {
    case usage(String)
    case failed(String)
    var description: String {
        switch self {
        case .usage(let message), .failed(let message): return message
        }
    }
}
