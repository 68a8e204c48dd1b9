import LedgerCore
import Testing

/// The worked example of docs/semantics.md, step by step. If this test changes, the document must
/// change with it.
@Suite struct WorkedExampleTests {
    @Test func companyPlanTopUpTeacherBudgetAndATranscription() throws {
        let company: TenantID = "northwind"
        let teacher: MemberID = "teacher-ana"
        var ledger = TestLedger(at: time("2026-07-14T09:00:00Z"))  // a Tuesday

        // 1. A company on a 3,000,000-token monthly plan.
        ledger.ok(.createTenant(company, TenantSettings(plan: Plan(allowance: 3_000_000, period: PeriodRule(unit: .month)))))
        // 2. A 1,000,000-token top-up that never expires.
        let topUp = ledger.grant(company, 1_000_000, kind: .purchase)
        // 3. A teacher with a weekly cap of 10,000 tokens.
        ledger.ok(.setMember(company, teacher, MemberSettings(budget: Budget(cap: 10_000, period: PeriodRule(unit: .week)))))

        var balance = ledger.balance(company, member: teacher)
        #expect(balance.available == 4_000_000)
        #expect(balance.buckets.map(\.kind) == [.plan, .purchase])
        #expect(balance.meter?.used == 0)
        #expect(balance.meter?.total == 4_000_000)
        #expect(balance.memberBudget?.remaining == 10_000)
        #expect(balance.memberBudget?.resetsAt == time("2026-07-20T00:00:00Z"))

        // 4. Estimate a 37-minute transcription: 37 x 8 = 296 tokens, affordable.
        let estimate = try ledger.state.estimate(company, member: teacher, items: [PricedItem(feature: "transcription", quantity: 37)])
        #expect(estimate.total == 296)
        #expect(estimate.affordable)
        #expect(estimate.binding == .memberBudget)
        #expect(estimate.headroom == 10_000)

        // 5. Reserve it by items: the hold takes 296 tokens from the plan grant.
        guard case .reserved(let hold) = ledger.ok(.reserve(company, ReserveRequest(hold: "transcribe-1", member: teacher, amount: .items([PricedItem(feature: "transcription", quantity: 37)]), ttl: .minutes(60)))) else {
            return
        }
        #expect(hold.amount == 296)
        #expect(hold.allocations == [Allocation(grant: GrantID(1), amount: 296)])
        balance = ledger.balance(company, member: teacher)
        #expect(balance.available == 3_999_704)
        #expect(balance.reserved == 296)
        #expect(balance.memberBudget?.remaining == 9_704)

        // 6. The audio turned out to be 35 minutes: commit 280 as final; 16 go back to the plan grant.
        ledger.now = ledger.now.adding(.minutes(40))
        guard case .committed(let committed, 280, 16) = ledger.ok(.commit(company, "transcribe-1", amount: 280, final: true)) else {
            Issue.record("commit")
            return
        }
        #expect(committed.captures == [Allocation(grant: GrantID(1), amount: 280)])
        balance = ledger.balance(company, member: teacher)
        #expect(balance.available == 3_999_720)
        #expect(balance.spent == 280)
        #expect(balance.meter?.used == 280)
        #expect(balance.meter?.total == 4_000_000)
        #expect(balance.memberBudget?.spent == 280)
        #expect(balance.memberBudget?.remaining == 9_720)
        #expect(ledger.tenant(company).grant(GrantID(1))!.remaining == 2_999_720)
        #expect(ledger.tenant(company).grant(topUp)!.remaining == 1_000_000)

        let history = try ledger.state.history(company, filter: HistoryFilter(kinds: [.reserve, .capture, .release])).entries
        #expect(history.map(\.kind) == [.reserve, .capture, .release])
        #expect(history.map(\.amount) == [296, 280, 16])
        #expect(history.allSatisfy { $0.source == .plan && $0.member == teacher })
    }
}
