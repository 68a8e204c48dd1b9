import LedgerCore
import Testing

/// ExtendHold and IncreaseHold: holds that grow and last (docs/semantics.md, "Holds that grow and last").
@Suite struct HoldGrowthTests {
    let acme: TenantID = "acme"

    func funded(_ amount: Tokens = 1_000) -> TestLedger {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.grant(acme, amount)
        return ledger
    }

    /// The worked example: an interview at 8 tokens a minute against a member budget of 100 a day.
    /// The application holds one minute, raises the hold by a minute each minute (and pushes the
    /// expiry), stops when a raise is refused, and commits what was used.
    @Test func aLiveSessionRaisesItsHoldEachMinuteAndStopsWhenARaiseIsRefused() {
        var ledger = funded()
        ledger.ok(.setMember(acme, "ana", MemberSettings(budget: Budget(cap: 100, period: PeriodRule(unit: .day)))))
        ledger.reserve(acme, "interview", 8, member: "ana", ttl: .minutes(2))
        var minutes: Tokens = 1
        var refusal: LedgerError?
        while refusal == nil {
            ledger.now = ledger.now.adding(.minutes(1))
            let result = ledger.run(.increaseHold(acme, "interview", amount: 8))
            switch result.outcome {
            case .success(.holdIncreased(let hold, 8)):
                minutes += 1
                #expect(hold.amount == 8 * minutes && hold.held == 8 * minutes)
                ledger.ok(.extendHold(acme, "interview", ttl: .minutes(2)))
            case .success(let other):
                Issue.record("unexpected \(other)")
                return
            case .failure(let error):
                refusal = error
            }
        }
        #expect(minutes == 12)
        #expect(refusal?.code == .budgetExceeded)
        #expect(refusal?.details == .budget(remaining: 4, cap: 100, resetsAt: time("2026-07-02")))
        #expect(ledger.tenant(acme).holds["interview"]!.held == 96)
        guard case .committed(_, 96, 0) = ledger.ok(.commit(acme, "interview", amount: 96, final: true)) else {
            Issue.record("commit what was used")
            return
        }
        let balance = ledger.balance(acme, member: "ana")
        #expect((balance.available, balance.reserved, balance.spent) == (904, 0, 96))
    }

    @Test func anExtendedHoldExpiresAtItsNewTimeNotTheOld() {
        var ledger = funded()
        ledger.reserve(acme, "job", 100, ttl: .minutes(10))
        ledger.now = ledger.now.adding(.minutes(5))
        guard case .holdExtended(let hold) = ledger.ok(.extendHold(acme, "job", ttl: .minutes(30))) else {
            Issue.record("extend")
            return
        }
        #expect(hold.expiresAt == july1.adding(.minutes(35)))
        ledger.advance(to: july1.adding(.minutes(20)))  // past the old expiry
        #expect(ledger.tenant(acme).holds["job"]!.state == .held)
        ledger.advance(to: july1.adding(.minutes(35)))
        #expect(ledger.tenant(acme).holds["job"]!.state == .expired)
        #expect(ledger.balance(acme).available == 1_000)
        // Out of the TTL range, on a resolved hold, on an unknown hold: refused.
        ledger.reserve(acme, "other", 1)
        ledger.fail(.extendHold(acme, "other", ttl: .milliseconds(10)), .invalidArgument)
        ledger.fail(.extendHold(acme, "other", ttl: .days(8)), .invalidArgument)
        ledger.fail(.extendHold(acme, "job", ttl: .minutes(1)), .expired)
        ledger.fail(.extendHold(acme, "nope", ttl: .minutes(1)), .notFound)
    }

    @Test func anIncreaseIsCheckedLikeAReserveAndCommitsCaptureInOrder() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        let first = ledger.grant(acme, 100, kind: .promo)
        ledger.reserve(acme, "job", 60)
        let second = ledger.grant(acme, 500, kind: .purchase)
        guard case .holdIncreased(let hold, 100) = ledger.ok(.increaseHold(acme, "job", amount: 100)) else {
            Issue.record("increase")
            return
        }
        // 40 more from the promo (burned first), then 60 from the purchase.
        #expect(hold.allocations.map(\.grant) == [first, second] && hold.allocations.map(\.amount) == [100, 60])
        let poor = ledger.fail(.increaseHold(acme, "job", amount: 1_000), .insufficientBalance)
        #expect(poor?.details == .balance(available: 440, requested: 1_000))
        ledger.fail(.increaseHold(acme, "job", amount: 0), .invalidArgument)
        ledger.fail(.increaseHold(acme, "job", amount: Limits.amountMax), .limitExceeded)
        #expect(ledger.tenant(acme).holds["job"]!.amount == 160)
        ledger.ok(.commit(acme, "job", amount: 120, final: true))
        let balance = ledger.balance(acme)
        #expect((balance.available, balance.reserved, balance.spent) == (480, 0, 120))
        ledger.fail(.increaseHold(acme, "job", amount: 1), .alreadyCommitted)
    }

    @Test func growthSurvivesTheBinaryFormatAndReplay() throws {
        var ledger = funded()
        ledger.reserve(acme, "job", 10)
        ledger.ok(.increaseHold(acme, "job", amount: 5))
        ledger.ok(.extendHold(acme, "job", ttl: .hours(1)))
        var replayed = LedgerState(time: july1)
        for command in ledger.log {
            let decoded = try LedgerCommand(binary: command.binaryEncoded)
            #expect(decoded == command)
            replayed.apply(decoded)
        }
        #expect(replayed == ledger.state)
        #expect(try LedgerState(binary: ledger.state.binaryEncoded) == ledger.state)
    }
}
