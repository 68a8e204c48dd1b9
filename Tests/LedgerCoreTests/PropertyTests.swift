import LedgerCore
import LedgerTesting
import Testing

@Suite struct PropertyTests {
    /// 2,000 sequences in 4 parallel chunks of 500.
    static let chunkCount: UInt64 = 4
    static let sequencesPerChunk: UInt64 = 500
    static let commandsPerSequence = 60

    /// Runs one random sequence; returns the commands (including the ticks it inserted), or records
    /// the first broken property with the seed that reproduces it.
    func run(seed: UInt64) -> (commands: [LedgerCommand], results: [CommandResult], state: LedgerState)? {
        var generator = CommandGenerator(seed: seed)
        var state = LedgerState(time: generator.time)
        var commands: [LedgerCommand] = []
        var results: [CommandResult] = []
        func apply(_ command: LedgerCommand) -> CommandResult {
            commands.append(command)
            let result = state.apply(command)
            results.append(result)
            return result
        }
        for command in generator.setupCommands() { _ = apply(command) }
        var resolved: [TenantID: [HoldID: HoldState]] = [:]
        for step in 0..<Self.commandsPerSequence {
            let command = generator.next()
            // Tick first so that the command's own effect can be isolated from what fell due.
            _ = apply(LedgerCommand(time: command.time, requestID: nil, body: .tick))
            let before = state
            let result = apply(command)
            let violations = state.audit()
            guard violations.isEmpty else {
                Issue.record("seed \(seed) step \(step) \(command.body): \(violations)")
                return nil
            }
            // The meter's identity (docs/semantics.md): total = used + every token still in the
            // pool, held included, whatever the state of the grants that hold them.
            for (tenantID, _) in state.tenants {
                guard let view = try? state.balance(tenantID), let meter = view.meter else { continue }
                if meter.total != meter.used + view.available + view.reserved {
                    Issue.record(
                        "seed \(seed) step \(step) \(command.body): meter \(meter.used)/\(meter.total) with \(view.available) available and \(view.reserved) reserved")
                    return nil
                }
            }
            if state.time < before.time {
                Issue.record("seed \(seed) step \(step): time moved backwards")
                return nil
            }
            if case .failure = result.outcome, let tenantID = command.body.tenant, let old = before.tenants[tenantID] {
                let new = state.tenants[tenantID]!
                if old.grants != new.grants || old.holds != new.holds || old.members != new.members || old.history != new.history
                    || old.debt != new.debt
                {
                    Issue.record("seed \(seed) step \(step): failed \(command.body) changed tenant \(tenantID)")
                    return nil
                }
            }
            if result.replayed, let tenantID = command.body.tenant, before.tenants[tenantID] != state.tenants[tenantID] {
                Issue.record("seed \(seed) step \(step): a replay changed tenant \(tenantID)")
                return nil
            }
            // A resolved hold never changes state again.
            for (tenantID, tenant) in state.tenants {
                for hold in tenant.holds.values {
                    let holdID = hold.id
                    if let earlier = resolved[tenantID]?[holdID], earlier != hold.state {
                        Issue.record("seed \(seed) step \(step): hold \(holdID) went from \(earlier) to \(hold.state)")
                        return nil
                    }
                    if hold.state != .held { resolved[tenantID, default: [:]][holdID] = hold.state }
                }
            }
        }
        return (commands, results, state)
    }

    @Test(arguments: 0..<chunkCount)
    func randomSequencesKeepEveryInvariantAndReplayIdentically(chunk: UInt64) {
        var commandsApplied = 0
        var outcomes: [String: Int] = [:]
        for seed in (chunk * Self.sequencesPerChunk + 1)...((chunk + 1) * Self.sequencesPerChunk) {
            guard let (commands, results, state) = run(seed: seed) else { return }
            commandsApplied += commands.count
            for result in results {
                switch result.outcome {
                case .success(let outcome): outcomes[outcome.name, default: 0] += 1
                case .failure(let error): outcomes[error.code.rawValue, default: 0] += 1
                }
            }
            // Replay from scratch: equal state, equal results, event for event.
            var replayed = LedgerState(time: LedgerTime(iso8601: "2026-06-28T10:00:00Z")!)
            var replayResults: [CommandResult] = []
            for command in commands { replayResults.append(replayed.apply(command)) }
            guard replayed == state, replayResults == results else {
                Issue.record("seed \(seed): replay diverged")
                return
            }
        }
        // The generator must actually exercise the interesting paths, or the test proves little.
        for expected in ["reserved", "charged", "holdExtended", "holdIncreased", "committed", "released", "refunded", "purchased", "purchaseRefunded", "voided", "granted",
            "insufficient_balance", "budget_exceeded", "already_committed", "already_released", "expired", "idempotency_conflict",
            "not_found", "invalid_argument", "plan_limit_reached", "quota_exceeded"]
        {
            #expect(outcomes[expected, default: 0] > 0, "no \(expected) in \(outcomes)")
        }
        #expect(commandsApplied > Int(Self.sequencesPerChunk) * Self.commandsPerSequence)
    }
}

extension CommandOutcome {
    /// The case name, for counting what a run exercised.
    var name: String {
        switch self {
        case .tenantCreated: "tenantCreated"
        case .tenantConfigured: "tenantConfigured"
        case .memberSet: "memberSet"
        case .granted: "granted"
        case .purchased: "purchased"
        case .purchaseRefunded: "purchaseRefunded"
        case .voided: "voided"
        case .reserved: "reserved"
        case .charged: "charged"
        case .holdExtended: "holdExtended"
        case .holdIncreased: "holdIncreased"
        case .committed: "committed"
        case .released: "released"
        case .refunded: "refunded"
        case .catalogInstalled: "catalogInstalled"
        case .ticked: "ticked"
        }
    }
}
