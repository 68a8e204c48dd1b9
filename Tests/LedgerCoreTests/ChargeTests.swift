import LedgerCore
import Testing

/// Charge: spend in one command, with a reserve's checks and a final commit's burn-down.
@Suite struct ChargeTests {
    let acme: TenantID = "acme"

    func funded(_ amount: Tokens = 1_000) -> TestLedger {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.grant(acme, amount)
        return ledger
    }

    func charge(_ hold: HoldID, _ amount: ReserveRequest.Amount, member: MemberID? = nil) -> CommandBody {
        .charge(acme, ReserveRequest(hold: hold, member: member, amount: amount, ttl: nil))
    }

    @Test func aChargeSpendsAtOnceLeavesNothingHeldAndIsRefundableByItsID() {
        var ledger = funded()
        let dueBefore = ledger.state.nextDueTime
        guard case .charged(let hold, 296) = ledger.ok(charge("interview-1", .items([PricedItem(feature: "transcription", quantity: 37)])))
        else {
            Issue.record("charge by items")
            return
        }
        #expect(hold.state == .committed && hold.amount == 296 && hold.captured == 296 && hold.held == 0)
        #expect(hold.items == [PricedItem(feature: "transcription", quantity: 37)])
        let balance = ledger.balance(acme)
        #expect((balance.available, balance.reserved, balance.spent) == (704, 0, 296))
        #expect(ledger.tenant(acme).openHoldCount == 0)
        // No expiry was scheduled for a hold that never stays open.
        #expect(ledger.state.nextDueTime == dueBefore)
        // History: the hold's reserve and capture, from the grant that paid.
        let kinds = ledger.tenant(acme).history.suffix(2).map(\.kind)
        #expect(kinds == [.reserve, .capture])

        guard case .refunded(_, 96, _) = ledger.ok(.refund(acme, "interview-1", amount: 96)) else {
            Issue.record("refund of a charge")
            return
        }
        #expect(ledger.balance(acme).spent == 200)
        ledger.fail(.commit(acme, "interview-1", amount: 1, final: true), .alreadyCommitted)
        ledger.fail(.release(acme, "interview-1"), .alreadyCommitted)
    }

    @Test func aChargeIsRefusedLikeAReserveAndChangesNothing() {
        var ledger = funded(500)
        let poor = ledger.fail(charge("big", .tokens(600)), .insufficientBalance)
        #expect(poor?.details == .balance(available: 500, requested: 600))
        ledger.ok(.setMember(acme, "ana", MemberSettings(budget: Budget(cap: 100, period: PeriodRule(unit: .day)))))
        let capped = ledger.fail(charge("capped", .tokens(150), member: "ana"), .budgetExceeded)
        #expect(capped?.details == .budget(remaining: 100, cap: 100, resetsAt: time("2026-07-02")))
        ledger.fail(charge("zero", .tokens(0)), .invalidArgument)
        ledger.fail(charge("bad id!", .tokens(1)), .invalidArgument)
        ledger.fail(charge("x", .items([PricedItem(feature: "nope", quantity: 1)])), .invalidArgument)
        #expect(ledger.balance(acme).available == 500 && ledger.balance(acme).spent == 0)
        #expect(ledger.tenant(acme).holds.isEmpty)

        // Within the budget it goes through and counts against it.
        ledger.ok(charge("small", .tokens(80), member: "ana"))
        ledger.fail(charge("more", .tokens(30), member: "ana"), .budgetExceeded)
        // A charge id is a hold id: taken by a hold or another charge, it is refused.
        ledger.reserve(acme, "held", 10)
        ledger.fail(charge("held", .tokens(5)), .alreadyExists)
        ledger.fail(charge("small", .tokens(5)), .alreadyExists)
    }

    @Test func aChargeIsIdempotentByItsRequestID() {
        var ledger = funded()
        let first = ledger.run(charge("c1", .tokens(100)), requestID: "charge-1")
        let again = ledger.run(charge("c1", .tokens(100)), requestID: "charge-1")
        #expect(!first.replayed && again.replayed)
        #expect(again.outcome == first.outcome)
        #expect(ledger.balance(acme).spent == 100)
        ledger.fail(charge("c2", .tokens(100)), .idempotencyConflict, requestID: "charge-1")
    }

    @Test func aChargeSurvivesTheBinaryFormatAndReplay() throws {
        var ledger = funded()
        ledger.ok(charge("c1", .tokens(120)))
        ledger.ok(.refund(acme, "c1", amount: 20))
        var replayed = LedgerState(time: july1)
        for command in ledger.log {
            let decoded = try LedgerCommand(binary: command.binaryEncoded)
            #expect(decoded == command)
            replayed.apply(decoded)
        }
        #expect(replayed == ledger.state)
        let state = try LedgerState(binary: ledger.state.binaryEncoded)
        #expect(state == ledger.state)
    }
}
