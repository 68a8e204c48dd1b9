import LedgerCore
import Testing

/// Hold expiries of holds resolved before they fell due are pruned in bulk (LedgerState.pruneDue):
/// the queue stays bounded under steady load, and nothing observable changes.
@Suite struct DuePruningTests {
    /// Reserve+commit pairs on one tenant, every `keepOpenEvery`-th hold left open; one
    /// millisecond between commands. Returns every command applied.
    static func pairs(_ count: Int, keepOpenEvery: Int, from start: LedgerTime) -> [LedgerCommand] {
        var commands: [LedgerCommand] = [
            LedgerCommand(time: start, requestID: "create", body: .createTenant("acme", TenantSettings())),
            LedgerCommand(time: start, requestID: "fund", body: .grant("acme", GrantRequest(kind: .purchase, amount: 100_000_000))),
        ]
        var now = start
        for index in 0..<count {
            now = now.adding(.milliseconds(1))
            let hold = HoldID("h-\(index)")
            commands.append(
                LedgerCommand(
                    time: now, requestID: RequestID("r-\(index)"),
                    body: .reserve("acme", ReserveRequest(hold: hold, amount: .tokens(10), ttl: .seconds(60)))))
            if index % keepOpenEvery != 0 {
                commands.append(
                    LedgerCommand(time: now, requestID: RequestID("c-\(index)"), body: .commit("acme", hold, amount: 8, final: true)))
            }
        }
        return commands
    }

    @Test("moot hold expiries are pruned: 20,000 pairs leave a bounded queue, open holds still expire")
    func boundedAndStillExpiring() {
        let start = LedgerTime(iso8601: "2026-07-01T00:00:00Z")!
        var state = LedgerState(time: start)
        var largest = 0
        for command in Self.pairs(20_000, keepOpenEvery: 100, from: start) {
            _ = state.apply(command)
            largest = max(largest, state.dueCount)
        }
        // 200 holds are open; without pruning the queue would hold all 20,000 expiries.
        #expect(largest <= 8_192, "the queue reached \(largest) items")
        #expect(state.dueCount >= 200)
        #expect(state.audit().isEmpty)
        // The open holds expire at their time, each with its event; the tokens come back.
        let expiry = state.apply(LedgerCommand(time: start.adding(.seconds(120)), requestID: nil, body: .tick))
        let expired = expiry.events.filter { if case .holdExpired = $0.kind { return true } else { return false } }
        #expect(expired.count == 200)
        #expect(state.dueCount == 0)
        let balance = try? state.balance("acme", member: nil)
        #expect(balance?.reserved == 0)
        #expect(balance?.available == 100_000_000 - 8 * (20_000 - 200))
        #expect(state.audit().isEmpty)
    }

    @Test("a ledger recovered from a snapshot prunes at other moments and answers identically")
    func recoveredLedgerAnswersIdentically() throws {
        let start = LedgerTime(iso8601: "2026-07-01T00:00:00Z")!
        let commands = Self.pairs(12_000, keepOpenEvery: 7, from: start)
            + [LedgerCommand(time: start.adding(.seconds(90)), requestID: nil, body: .tick)]
        var live = LedgerState(time: start)
        var recovered = LedgerState(time: start)
        var liveResults: [CommandResult] = []
        var recoveredResults: [CommandResult] = []
        for (index, command) in commands.enumerated() {
            liveResults.append(live.apply(command))
            recoveredResults.append(recovered.apply(command))
            if index == 5_000 {
                // A snapshot and recovery: the queue decodes in its layout with a fresh prune size.
                recovered = try LedgerState(binary: recovered.binaryEncoded)
            }
        }
        // The first difference, not both arrays (a failure would print megabytes).
        let firstDifference = liveResults.indices.first { liveResults[$0] != recoveredResults[$0] }
        #expect(firstDifference == nil, "command \(firstDifference ?? 0) answered differently after recovery")
        #expect(live == recovered)
    }
}
