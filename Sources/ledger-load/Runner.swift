import Foundation
import Histogram
import LedgerClient
import LedgerCore
import NIOCore
import Synchronization

/// The calls ledger-load makes, each with its own latency histogram.
enum CallKind: String, CaseIterable, Sendable {
    case reserve, commit, release, refund, estimate, balance, charge
    /// `--redis`: the reserve+commit pair as one script.
    case pairScript = "pair_script"

    /// Its position in `allCases`: where its histogram is in `LaneStats.histograms`.
    var index: Int {
        switch self {
        case .reserve: 0
        case .commit: 1
        case .release: 2
        case .refund: 3
        case .estimate: 4
        case .balance: 5
        case .charge: 6
        case .pairScript: 7
        }
    }
}

func monotonicNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Everything a run needs, fixed before it starts.
struct RunPlan: Sendable {
    var tenants: [TenantID]
    var distribution: TenantDistribution
    var mix: OperationMix
    var lanes: Int
    var duration: Double?
    var operations: Int?
    /// Calls per second across all lanes (open loop, latency counted from the intended start);
    /// nil: as fast as the lanes go (closed loop).
    var rate: Double?
    var amount: Tokens
    var holdTTL: Duration?
    var holdPrefix: String
    var seed: UInt64
}

/// Shared between the lanes and the progress line: counters only.
final class RunState: Sendable {
    let calls = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    /// The slowest call since the progress line last read it, in microseconds.
    let slowest = Atomic<UInt64>(0)
    let iterationsLeft: Atomic<Int>
    let deadline: UInt64

    init(operations: Int?, duration: Double?, start: UInt64) {
        iterationsLeft = Atomic(operations ?? Int.max)
        deadline = duration.map { start + UInt64($0 * 1e9) } ?? UInt64.max
    }

    /// Takes one iteration from the budget; false when the run is over.
    func take() -> Bool {
        if monotonicNanoseconds() >= deadline { return false }
        return iterationsLeft.subtract(1, ordering: .relaxed).newValue >= 0
    }

    /// Counts a finished call for the progress line.
    func noteCall(microseconds: UInt64) {
        calls.add(1, ordering: .relaxed)
        var seen = slowest.load(ordering: .relaxed)
        while microseconds > seen {
            let (exchanged, current) = slowest.compareExchange(expected: seen, desired: microseconds, ordering: .relaxed)
            if exchanged { break }
            seen = current
        }
    }
}

/// A lane's place in an open loop (`--rate`): each lane owns every lanes-th slot of the global
/// schedule. Closed loop: no waiting.
struct OpenLoopSchedule {
    private let nanosecondsPerCall: Double?
    private var scheduled: UInt64
    /// The lane's loop: open-loop waits are its timers (no dispatch timer thread, and the lane
    /// wakes where it runs).
    private let eventLoop: any EventLoop

    init(plan: RunPlan, lane: Int, eventLoop: any EventLoop) {
        nanosecondsPerCall = plan.rate.map { 1e9 / $0 * Double(plan.lanes) }
        scheduled = monotonicNanoseconds() + UInt64(Double(lane) * (nanosecondsPerCall ?? 0) / Double(plan.lanes))
        self.eventLoop = eventLoop
    }

    /// Waits for the lane's next slot (an operation of `calls` calls takes that many) and returns
    /// the time latency counts from: the slot's, when the call should have gone out, in an open
    /// loop; now in a closed one.
    mutating func next(calls: Int) async -> UInt64 {
        let now = monotonicNanoseconds()
        guard let nanosecondsPerCall else { return now }
        if scheduled > now {
            let wait = TimeAmount.nanoseconds(Int64(clamping: scheduled - now))
            try? await eventLoop.scheduleTask(in: wait) {}.futureResult.get()
        }
        let start = scheduled
        scheduled += UInt64(nanosecondsPerCall * Double(calls))
        return start
    }
}

/// Runs `count` lanes spread over `loops` (lane i on loop i % loops.count), each task on its loop
/// (see EventLoopExecutor): on Swift's cooperative pool every call cost two thread wake-ups in
/// ledger-load (the reply resuming the lane on a pool thread, the next request waking the loop)
/// and an open loop's wait a dispatch timer. `lane` gets the lane's index and its loop's, and
/// returns what the lane saw; the lanes' stats come back merged.
func runLanes(
    _ count: Int, on loops: [any EventLoop], _ lane: @escaping @Sendable (_ index: Int, _ loop: Int) async -> LaneStats
) async -> LaneStats {
    await withTaskGroup(of: LaneStats.self) { group in
        let executors = loops.map { EventLoopExecutor($0) }
        for index in 0..<count {
            let loop = index % loops.count
            group.addTask(executorPreference: executors[loop]) { await lane(index, loop) }
        }
        var all = LaneStats()
        for await stats in group { all.merge(stats) }
        return all
    }
}

extension SplitMix64 {
    /// A lane's generator. Lane seeds must be scrambled: SplitMix64 walks its state by a fixed
    /// step, so seeds one step apart would give every lane the same sequence shifted by one.
    static func forLane(_ lane: Int, seed: UInt64) -> SplitMix64 {
        var seeder = SplitMix64(seed: seed ^ (UInt64(lane) &* 0xD1B5_4A32_D192_ED03))
        return SplitMix64(seed: seeder.next())
    }
}

/// What one lane saw; lanes merge theirs at the end.
struct LaneStats: Sendable {
    /// Per call kind (at its `index`), made on the kind's first call and recorded into in place:
    /// `histograms[kind] == nil` on a dictionary copied the histogram out on every call.
    var histograms: [Histogram<UInt64>?] = Array(repeating: nil, count: CallKind.allCases.count)
    /// Reserve+commit pairs, from the reserve's (intended) start to the commit's reply.
    var pairs = latencyHistogram()
    var errors: [String: Int] = [:]
    var calls = 0
    /// Per tenant index: commits the server confirmed and the tokens they captured.
    var commits: [Int: (count: Int, captured: UInt64)] = [:]
    /// Per tenant index: commits whose outcome is unknown (a transport failure after the retries).
    var uncertainCommits: [Int: Int] = [:]
    var touched: Set<Int> = []

    mutating func record(_ kind: CallKind, microseconds: UInt64) {
        calls += 1
        let value = max(1, microseconds)
        // Optional chaining mutates in place; `histograms[index] == nil` would copy it out first.
        if histograms[kind.index]?.record(value) == nil {
            var histogram = latencyHistogram()
            histogram.record(value)
            histograms[kind.index] = histogram
        }
    }

    mutating func merge(_ other: LaneStats) {
        for (index, histogram) in other.histograms.enumerated() {
            guard let histogram else { continue }
            if histograms[index] == nil { histograms[index] = latencyHistogram() }
            histograms[index]!.add(histogram)
        }
        pairs.add(other.pairs)
        for (code, count) in other.errors { errors[code, default: 0] += count }
        calls += other.calls
        for (tenant, commit) in other.commits {
            let current = commits[tenant] ?? (0, 0)
            commits[tenant] = (current.count + commit.count, current.captured + commit.captured)
        }
        for (tenant, count) in other.uncertainCommits { uncertainCommits[tenant, default: 0] += count }
        touched.formUnion(other.touched)
    }
}

/// Microseconds from 1 to an hour, three significant digits.
func latencyHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
}

/// The error's stable name: the ledger's code, or the client's transport failure.
func errorName(_ error: LedgerClientError) -> String {
    switch error {
    case .rejected(let ledgerError): return ledgerError.code.rawValue
    case .timedOut: return "timeout"
    case .connectFailed: return "connect_failed"
    case .connectionClosed: return "connection_closed"
    case .protocolViolation: return "protocol_violation"
    }
}

/// One lane: a loop of operations, one call at a time, on one connection shared with other lanes
/// (so a connection carries `lanes / connections` calls in flight).
struct Lane<Client: LoadClient> {
    let index: Int
    let client: Client
    let plan: RunPlan
    let state: RunState
    var random: SplitMix64
    var stats = LaneStats()
    var iteration = 0
    /// The last hold this lane committed, for refunds: tenant index, hold, captured, refunded.
    var lastCommitted: (tenant: Int, hold: HoldID, captured: Tokens, refunded: Tokens)?

    init(index: Int, client: Client, plan: RunPlan, state: RunState) {
        self.index = index
        self.client = client
        self.plan = plan
        self.state = state
        self.random = SplitMix64.forLane(index, seed: plan.seed)
    }

    mutating func run() async -> LaneStats {
        var schedule = OpenLoopSchedule(plan: plan, lane: index, eventLoop: client.eventLoop)
        while state.take() {
            iteration += 1
            var operation = plan.mix.pick(&random)
            let tenant = plan.distribution.pick(&random)
            if operation == .refund, lastCommitted == nil || lastCommitted!.captured == lastCommitted!.refunded {
                operation = .pair
            }
            let start = await schedule.next(calls: operation.calls)
            stats.touched.insert(operation == .refund ? lastCommitted!.tenant : tenant)
            await perform(operation, tenant: tenant, start: start)
        }
        return stats
    }

    private mutating func perform(_ operation: Operation, tenant index: Int, start: UInt64) async {
        let tenant = plan.tenants[index]
        switch operation {
        case .pair, .release:
            let hold = HoldID("\(plan.holdPrefix)-\(self.index)-\(iteration)")
            let amount = plan.amount
            let ttl = plan.holdTTL
            let client = self.client
            guard
                (await call(.reserve, from: start) { () async throws(LedgerClientError) in
                    try await client.reserve(tenant: tenant, hold: hold, tokens: amount, ttl: ttl, requestID: RequestID("r-\(hold)"))
                    return true
                }) != nil
            else { return }
            let next = monotonicNanoseconds()
            if operation == .release {
                _ = await call(.release, from: next) { () async throws(LedgerClientError) in
                    try await client.release(tenant: tenant, hold: hold, requestID: RequestID("x-\(hold)"))
                    return true
                }
                return
            }
            let used = plan.usedPerPair
            do {
                let captured = try await client.commit(tenant: tenant, hold: hold, amount: used, requestID: RequestID("c-\(hold)"))
                finish(.commit, from: next)
                _ = stats.pairs.record(max(1, (monotonicNanoseconds() - start) / 1000))
                let current = stats.commits[index] ?? (0, 0)
                stats.commits[index] = (current.count + 1, current.captured + captured)
                lastCommitted = (index, hold, captured, 0)
            } catch {
                fail(.commit, from: next, error)
                if case .rejected = error {} else { stats.uncertainCommits[index, default: 0] += 1 }
            }
        case .refund:
            let last = lastCommitted!
            let client = self.client
            let tenantID = plan.tenants[last.tenant]
            if (await call(.refund, from: start) { () async throws(LedgerClientError) in
                try await client.refund(
                    tenant: tenantID, hold: last.hold, amount: 1, requestID: RequestID("f-\(last.hold)-\(last.refunded + 1)"))
                return true
            }) != nil {
                lastCommitted!.refunded += 1
            }
        case .estimate:
            let client = self.client
            _ = await call(.estimate, from: start) { () async throws(LedgerClientError) in
                try await client.estimate(tenant: tenant, items: [PricedItem(feature: "transcription", quantity: 5)])
                return true
            }
        case .charge:
            let hold = HoldID("\(plan.holdPrefix)-\(self.index)-\(iteration)")
            let used = plan.usedPerPair
            do {
                let charged = try await client.charge(tenant: tenant, hold: hold, tokens: used, requestID: RequestID("g-\(hold)"))
                finish(.charge, from: start)
                let current = stats.commits[index] ?? (0, 0)
                stats.commits[index] = (current.count + 1, current.captured + charged)
                lastCommitted = (index, hold, charged, 0)
            } catch {
                fail(.charge, from: start, error)
                if case .rejected = error {} else { stats.uncertainCommits[index, default: 0] += 1 }
            }
        case .balance:
            let client = self.client
            _ = await call(.balance, from: start) { () async throws(LedgerClientError) in
                try await client.balance(tenant: tenant)
                return true
            }
        }
    }

    private mutating func call<T>(
        _ kind: CallKind, from start: UInt64, _ body: () async throws(LedgerClientError) -> T
    ) async -> T? {
        do {
            let value = try await body()
            finish(kind, from: start)
            return value
        } catch {
            fail(kind, from: start, error)
            return nil
        }
    }

    private mutating func finish(_ kind: CallKind, from start: UInt64) {
        let microseconds = (monotonicNanoseconds() - start) / 1000
        stats.record(kind, microseconds: microseconds)
        state.noteCall(microseconds: microseconds)
    }

    private mutating func fail(_ kind: CallKind, from start: UInt64, _ error: LedgerClientError) {
        finish(kind, from: start)
        stats.errors[errorName(error), default: 0] += 1
        state.errors.add(1, ordering: .relaxed)
    }
}
