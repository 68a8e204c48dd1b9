import LedgerCore
import Testing

@Suite struct BudgetTests {
    let school: TenantID = "school"
    let teacher: MemberID = "teacher-7"
    let weekly = Budget(cap: 10_000, period: PeriodRule(unit: .week))

    func ledger() -> TestLedger {
        var ledger = TestLedger()  // Wednesday 2026-07-01
        ledger.createTenant(school)
        ledger.grant(school, 100_000)
        ledger.ok(.setMember(school, teacher, MemberSettings(budget: weekly)))
        return ledger
    }

    @Test func heldPlusSpentNeverExceedTheCap() {
        var ledger = ledger()
        ledger.reserve(school, "a", 6_000, member: teacher)
        let error = ledger.fail(.reserve(school, ReserveRequest(hold: "b", member: teacher, amount: .tokens(5_000))), .budgetExceeded)
        #expect(error?.details == .budget(remaining: 4_000, cap: 10_000, resetsAt: time("2026-07-06")))
        #expect(ledger.results.last!.events.contains {
            if case .budgetExceeded("teacher-7", 5_000, 4_000, 10_000, _) = $0 { true } else { false }
        })
        ledger.ok(.commit(school, "a", amount: 5_500, final: true))
        let view = ledger.balance(school, member: teacher)
        #expect(view.memberBudget?.spent == 5_500)
        #expect(view.memberBudget?.remaining == 4_500)
        #expect(view.memberBudget?.resetsAt == time("2026-07-06"))
        #expect(view.memberAvailable == 4_500)
        // A final over-capture is checked against the budget too.
        ledger.reserve(school, "c", 4_000, member: teacher)
        ledger.fail(.commit(school, "c", amount: 4_501, final: true), .budgetExceeded)
        ledger.ok(.commit(school, "c", amount: 4_500, final: true))
        #expect(ledger.balance(school, member: teacher).memberBudget?.remaining == 0)
        // Other members and the pool are not limited by this member's budget.
        ledger.reserve(school, "d", 50_000, member: "teacher-8")
    }

    @Test func budgetResetsAtTheBoundaryWithAnEntry() {
        var ledger = ledger()
        ledger.reserve(school, "a", 7_000, member: teacher)
        ledger.ok(.commit(school, "a", amount: 7_000, final: true))
        ledger.reserve(school, "open", 2_000, member: teacher, ttl: .days(7))
        ledger.advance(to: time("2026-07-06T00:00:00Z"))
        let reset = ledger.tenant(school).history.last { $0.kind == .budgetReset }
        #expect(reset?.amount == 7_000)
        #expect(reset?.time == time("2026-07-06"))
        let view = ledger.balance(school, member: teacher)
        #expect(view.memberBudget?.spent == 0)
        // A hold that is still open counts against the new period.
        #expect(view.memberBudget?.held == 2_000)
        #expect(view.memberBudget?.remaining == 8_000)
        #expect(view.memberBudget?.resetsAt == time("2026-07-13"))
    }

    @Test func raisingTheCapMidPeriodKeepsWhatWasSpent() {
        var ledger = ledger()
        ledger.reserve(school, "a", 9_000, member: teacher)
        ledger.ok(.commit(school, "a", amount: 9_000, final: true))
        ledger.ok(.setMember(school, teacher, MemberSettings(budget: Budget(cap: 20_000, period: PeriodRule(unit: .week)))))
        #expect(ledger.balance(school, member: teacher).memberBudget?.remaining == 11_000)
        // Removing the budget lifts the cap.
        ledger.ok(.setMember(school, teacher, MemberSettings()))
        #expect(ledger.balance(school, member: teacher).memberBudget == nil)
        ledger.reserve(school, "b", 50_000, member: teacher)
        // A stale reset from the old budget does nothing.
        ledger.advance(to: time("2026-07-07"))
        #expect(!ledger.tenant(school).history.contains { $0.kind == .budgetReset })
    }

    @Test func zeroCapBlocksTheMember() {
        var ledger = ledger()
        ledger.ok(.setMember(school, teacher, MemberSettings(budget: Budget(cap: 0, period: PeriodRule(unit: .day)))))
        ledger.fail(.reserve(school, ReserveRequest(hold: "a", member: teacher, amount: .tokens(1))), .budgetExceeded)
    }

    @Test func membersAreCreatedOnFirstUseAndValidated() {
        var ledger = ledger()
        ledger.reserve(school, "a", 10, member: "api-key:42")
        #expect(ledger.tenant(school).members["api-key:42"] != nil)
        ledger.fail(.setMember(school, "no spaces", MemberSettings()), .invalidArgument)
        ledger.fail(.setMember(school, teacher, MemberSettings(budget: Budget(cap: Limits.amountMax + 1, period: PeriodRule(unit: .day)))), .limitExceeded)
        #expect(throws: LedgerError.self) { try ledger.state.balance(school, member: "unknown") }
    }
}

@Suite struct RefundTests {
    let acme: TenantID = "acme"

    @Test func refundReturnsTokensToTheGrantsTheyCameFromLastFirst() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        let promo = ledger.grant(acme, 100, kind: .promo, expiresAt: time("2026-09-01"))
        let purchase = ledger.grant(acme, 1_000)
        ledger.reserve(acme, "job", 300)
        ledger.ok(.commit(acme, "job", amount: 300, final: true))
        #expect(ledger.tenant(acme).grant(promo)!.consumed == 100)
        #expect(ledger.tenant(acme).grant(purchase)!.consumed == 200)
        guard case .refunded(let hold, 250, nil) = ledger.ok(.refund(acme, "job", amount: 250)) else {
            Issue.record("refund")
            return
        }
        #expect(hold.refunded == 250)
        #expect(ledger.tenant(acme).grant(purchase)!.consumed == 0)
        #expect(ledger.tenant(acme).grant(promo)!.consumed == 50)
        #expect(ledger.balance(acme).spent == 50)
        ledger.fail(.refund(acme, "job", amount: 51), .invalidArgument)
        ledger.ok(.refund(acme, "job", amount: 50))
        ledger.fail(.refund(acme, "job", amount: 1), .invalidArgument)
        ledger.fail(.refund(acme, "job", amount: 0), .invalidArgument)
        ledger.fail(.refund(acme, "nope", amount: 1), .notFound)
        #expect(ledger.balance(acme).available == 1_100)
    }

    /// Issue 22, defect 4: a final over-capture that draws again from a grant captured before
    /// another one keeps that order, and a refund walks it back last first.
    @Test func refundFollowsReverseCaptureOrderWhenAGrantIsDrawnTwice() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        let promo = ledger.grant(acme, 1_480, kind: .promo, expiresAt: time("2026-07-20"))  // burns first
        let purchase = ledger.grant(acme, 20_000)
        ledger.reserve(acme, "other", 1_480)  // all of the promo
        ledger.reserve(acme, "job", 1_001)  // so this one is held on the purchase
        ledger.ok(.release(acme, "other"))  // the promo is free again
        // Captures: purchase 1,001 (held), then from the pool promo 1,480 and purchase 11,290.
        guard case .committed(let hold, _, _) = ledger.ok(.commit(acme, "job", amount: 13_771, final: true)) else {
            Issue.record("commit")
            return
        }
        #expect(hold.captures == [Allocation(grant: purchase, amount: 1_001), Allocation(grant: promo, amount: 1_480), Allocation(grant: purchase, amount: 11_290)])
        ledger.ok(.refund(acme, "job", amount: 673))
        #expect(ledger.tenant(acme).grant(purchase)!.consumed == 12_291 - 673)
        #expect(ledger.tenant(acme).grant(promo)!.consumed == 1_480)
        // The rest of the last capture, then the promo.
        ledger.ok(.refund(acme, "job", amount: 11_290 - 673 + 80))
        #expect(ledger.tenant(acme).grant(purchase)!.consumed == 1_001)
        #expect(ledger.tenant(acme).grant(promo)!.consumed == 1_400)
        #expect(ledger.tenant(acme).holds["job"]!.captures == [Allocation(grant: purchase, amount: 1_001), Allocation(grant: promo, amount: 1_400)])
    }

    @Test func tokensOfAnExpiredGrantComeBackAsANonExpiringRefundGrant() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        let promo = ledger.grant(acme, 500, kind: .promo, expiresAt: time("2026-07-02"))
        ledger.reserve(acme, "job", 400)
        ledger.ok(.commit(acme, "job", amount: 400, final: true))
        ledger.advance(to: time("2026-07-03"))
        guard case .refunded(_, 300, let newGrant?) = ledger.ok(.refund(acme, "job", amount: 300)) else {
            Issue.record("refund to a new grant")
            return
        }
        let grant = ledger.tenant(acme).grant(newGrant)!
        #expect(grant.kind == .refund)
        #expect(grant.amount == 300)
        #expect(grant.expiresAt == nil)
        #expect(ledger.tenant(acme).grant(promo)!.consumed == 400)
        #expect(ledger.balance(acme).available == 300)
        #expect(ledger.balance(acme).spent == 100)
    }

    @Test func refundWithinTheBudgetPeriodGivesBudgetBack() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.grant(acme, 10_000)
        ledger.ok(.setMember(acme, "t", MemberSettings(budget: Budget(cap: 1_000, period: PeriodRule(unit: .day)))))
        ledger.reserve(acme, "a", 800, member: "t")
        ledger.ok(.commit(acme, "a", amount: 800, final: true))
        ledger.ok(.refund(acme, "a", amount: 300))
        #expect(ledger.balance(acme, member: "t").memberBudget?.spent == 500)
        ledger.reserve(acme, "b", 200, member: "t")
        ledger.ok(.commit(acme, "b", amount: 200, final: true))
        ledger.advance(to: time("2026-07-02T01:00:00Z"))
        // A refund of a capture from an earlier period does not lend budget to this one.
        ledger.ok(.refund(acme, "b", amount: 200))
        #expect(ledger.balance(acme, member: "t").memberBudget?.spent == 0)
        ledger.reserve(acme, "c", 1_000, member: "t")
    }

    @Test func refundOfAnOverdraftCaptureReducesTheDebt() {
        var ledger = TestLedger()
        ledger.createTenant(acme, TenantSettings(overdraftLimit: 100))
        ledger.grant(acme, 50)
        ledger.reserve(acme, "job", 50)
        ledger.ok(.commit(acme, "job", amount: 120, final: true))
        #expect(ledger.balance(acme).debt == 70)
        ledger.ok(.refund(acme, "job", amount: 100))
        #expect(ledger.balance(acme).debt == 0)
        #expect(ledger.balance(acme).available == 30)
        #expect(ledger.balance(acme).spent == 20)
    }
}
