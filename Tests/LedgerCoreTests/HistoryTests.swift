import LedgerCore
import Testing

@Suite struct HistoryTests {
    let acme: TenantID = "acme"

    func ledger() -> TestLedger {
        var ledger = TestLedger()
        ledger.createTenant(acme, TenantSettings(plan: Plan(allowance: 1_000, period: PeriodRule(unit: .month))))
        ledger.grant(acme, 5_000)
        ledger.reserve(acme, "a", 1_200, member: "alice")
        ledger.ok(.commit(acme, "a", amount: 1_200, final: true))
        ledger.now = ledger.now.adding(.hours(1))
        ledger.reserve(acme, "b", 300, member: "bob")
        ledger.ok(.release(acme, "b"))
        return ledger
    }

    @Test func everyChangeIsAnEntryWithItsFundingSource() throws {
        let ledger = ledger()
        let all = try ledger.state.history(acme, filter: HistoryFilter(limit: 1_000)).entries
        #expect(all.map(\.sequence) == Array(1...UInt64(all.count)))
        let captures = all.filter { $0.kind == .capture }
        #expect(captures.map(\.source) == [.plan, .purchase])
        #expect(captures.map(\.amount) == [1_000, 200])
        #expect(captures.allSatisfy { $0.hold == "a" && $0.member == "alice" && $0.requestID != nil })
    }

    @Test func filtersCombine() throws {
        let ledger = ledger()
        let alice = try ledger.state.history(acme, filter: HistoryFilter(member: "alice")).entries
        #expect(alice.allSatisfy { $0.member == "alice" })
        #expect(Set(alice.map(\.kind)) == [.reserve, .capture])
        let plan = try ledger.state.history(acme, filter: HistoryFilter(source: .plan)).entries
        #expect(plan.allSatisfy { $0.source == .plan })
        #expect(plan.map(\.kind) == [.grant, .planRenewal, .reserve, .capture])
        let releases = try ledger.state.history(acme, filter: HistoryFilter(kinds: [.release])).entries
        #expect(releases.map(\.member) == ["bob"])
        let later = try ledger.state.history(acme, filter: HistoryFilter(since: july1.adding(.minutes(30)))).entries
        #expect(later.allSatisfy { $0.hold == "b" })
        let earlier = try ledger.state.history(acme, filter: HistoryFilter(until: july1.adding(.minutes(30)))).entries
        #expect(earlier.allSatisfy { $0.hold != "b" })
    }

    @Test func pagesFollowTheCursorWithoutGapsOrRepeats() throws {
        let ledger = ledger()
        let everything = try ledger.state.history(acme, filter: HistoryFilter(limit: 1_000)).entries
        var collected: [HistoryEntry] = []
        var cursor: UInt64 = 0
        while true {
            let page = try ledger.state.history(acme, filter: HistoryFilter(afterSequence: cursor, limit: 3))
            collected += page.entries
            guard let next = page.nextCursor else { break }
            cursor = next
        }
        #expect(collected == everything)
        #expect(throws: LedgerError.self) { try ledger.state.history(acme, filter: HistoryFilter(limit: 0)) }
        #expect(throws: LedgerError.self) { try ledger.state.history(acme, filter: HistoryFilter(limit: Limits.historyPageMax + 1)) }
        #expect(try ledger.state.history(acme, filter: HistoryFilter(afterSequence: 1_000_000)).entries.isEmpty)
    }
}

@Suite struct ThresholdTests {
    let acme: TenantID = "acme"

    @Test func crossingsAreReportedOncePerCrossing() {
        var ledger = TestLedger()
        ledger.createTenant(acme, TenantSettings(lowBalanceThreshold: 500))
        // A fresh tenant is below its threshold at once.
        #expect(ledger.results.last!.events.contains { if case .lowBalance(nil, 0, 500) = $0 { true } else { false } })
        let recovered = ledger.run(.grant(acme, GrantRequest(kind: .purchase, amount: 1_000)))
        #expect(recovered.events.contains { if case .balanceRecovered(nil, 1_000, 500) = $0 { true } else { false } })
        ledger.reserve(acme, "a", 400)
        let down = ledger.run(.reserve(acme, ReserveRequest(hold: "b", amount: .tokens(200))))
        #expect(down.events.count == 1)
        #expect(down.events.contains { if case .lowBalance(nil, 400, 500) = $0 { true } else { false } })
        let still = ledger.run(.reserve(acme, ReserveRequest(hold: "c", amount: .tokens(100))))
        #expect(still.events.isEmpty)
        let up = ledger.run(.release(acme, "a"))
        #expect(up.events.contains { if case .balanceRecovered(nil, 700, 500) = $0 { true } else { false } })
        #expect(ledger.tenant(acme).history.filter { $0.kind == .lowBalance }.count == 2)
    }

    @Test func memberOverridesWatchTheMembersSpendableTokens() {
        var ledger = TestLedger()
        ledger.createTenant(acme, TenantSettings(lowBalanceThreshold: 100))
        ledger.grant(acme, 10_000)
        ledger.ok(.setMember(acme, "t", MemberSettings(budget: Budget(cap: 1_000, period: PeriodRule(unit: .week)), lowBalanceThreshold: 300)))
        let down = ledger.run(.reserve(acme, ReserveRequest(hold: "a", member: "t", amount: .tokens(800), ttl: .days(7))))
        #expect(down.events.contains { if case .lowBalance("t", 200, 300) = $0 { true } else { false } })
        #expect(!down.events.contains { if case .lowBalance(nil, _, _) = $0 { true } else { false } })
        let reset = ledger.advance(to: time("2026-07-06"))
        // The hold still counts against the new period: no recovery yet.
        #expect(!reset.events.contains { if case .balanceRecovered("t", _, _) = $0 { true } else { false } })
        let up = ledger.run(.release(acme, "a"))
        #expect(up.events.contains { if case .balanceRecovered("t", 1_000, 300) = $0 { true } else { false } })
    }
}
