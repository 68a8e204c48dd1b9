import LedgerCore
import Testing

@Suite struct HoldTests {
    let acme: TenantID = "acme"

    func funded(_ amount: Tokens = 1_000, settings: TenantSettings = TenantSettings()) -> TestLedger {
        var ledger = TestLedger()
        ledger.createTenant(acme, settings)
        ledger.grant(acme, amount)
        return ledger
    }

    @Test func partialCapturesKeepTheRestHeldAndTheFinalReleasesIt() {
        var ledger = funded()
        ledger.reserve(acme, "job", 600)
        #expect(ledger.balance(acme).available == 400)
        #expect(ledger.balance(acme).reserved == 600)
        guard case .committed(let partial, 100, 0) = ledger.ok(.commit(acme, "job", amount: 100, final: false)) else {
            Issue.record("partial commit")
            return
        }
        #expect(partial.state == .held)
        #expect(partial.held == 500)
        ledger.ok(.commit(acme, "job", amount: 150, final: false))
        guard case .committed(let final, 200, 150) = ledger.ok(.commit(acme, "job", amount: 200, final: true)) else {
            Issue.record("final commit")
            return
        }
        #expect(final.state == .committed)
        #expect(final.captured == 450)
        let balance = ledger.balance(acme)
        #expect(balance.available == 550)
        #expect(balance.reserved == 0)
        #expect(balance.spent == 450)
    }

    @Test func finalCommitOfZeroClosesAHoldWithCaptures() {
        var ledger = funded()
        ledger.reserve(acme, "job", 600)
        ledger.fail(.commit(acme, "job", amount: 0, final: true), .invalidArgument)
        ledger.fail(.commit(acme, "job", amount: 0, final: false), .invalidArgument)
        ledger.ok(.commit(acme, "job", amount: 100, final: false))
        ledger.ok(.commit(acme, "job", amount: 0, final: true))
        #expect(ledger.balance(acme).available == 900)
    }

    @Test func overCaptureOnlyOnAFinalCommitAndOnlyFromAvailableFunds() {
        var ledger = funded()
        ledger.reserve(acme, "job", 300)
        ledger.reserve(acme, "other", 500)
        ledger.fail(.commit(acme, "job", amount: 301, final: false), .invalidArgument)
        // 200 unheld tokens left: a final commit may take up to 300 + 200.
        let error = ledger.fail(.commit(acme, "job", amount: 501, final: true), .insufficientBalance)
        #expect(error?.details == .balance(available: 200, requested: 201))
        #expect(ledger.tenant(acme).holds["job"]?.state == .held)
        guard case .committed(let hold, 500, 0) = ledger.ok(.commit(acme, "job", amount: 500, final: true)) else {
            Issue.record("over-capture")
            return
        }
        #expect(hold.captured == 500)
        #expect(ledger.balance(acme).available == 0)
        #expect(ledger.balance(acme).reserved == 500)
    }

    @Test func overdraftCoversAFinalOverCaptureAndIsRepaidByTheNextGrant() {
        var ledger = funded(100, settings: TenantSettings(overdraftLimit: 50))
        ledger.reserve(acme, "job", 100)
        ledger.fail(.commit(acme, "job", amount: 151, final: true), .insufficientBalance)
        ledger.ok(.commit(acme, "job", amount: 140, final: true))
        #expect(ledger.balance(acme).debt == 40)
        #expect(ledger.balance(acme).spent == 140)
        #expect(ledger.tenant(acme).history.last?.kind == .overdraft)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "next", amount: .tokens(1))), .insufficientBalance)
        ledger.grant(acme, 100)
        #expect(ledger.balance(acme).debt == 0)
        #expect(ledger.balance(acme).available == 60)
        #expect(ledger.tenant(acme).history.contains { $0.kind == .debtRepaid && $0.amount == 40 })
    }

    @Test func aHoldResolvesAtMostOnce() {
        var ledger = funded()
        ledger.reserve(acme, "c", 100)
        ledger.reserve(acme, "r", 100)
        ledger.reserve(acme, "e", 100, ttl: .seconds(30))
        ledger.ok(.commit(acme, "c", amount: 100, final: true))
        ledger.ok(.release(acme, "r"))
        ledger.advance(.seconds(30))
        for (hold, code) in [("c", ErrorCode.alreadyCommitted), ("r", .alreadyReleased), ("e", .expired)] {
            ledger.fail(.commit(acme, HoldID(hold), amount: 10, final: true), code)
            ledger.fail(.release(acme, HoldID(hold)), code)
        }
        ledger.fail(.commit(acme, "missing", amount: 10, final: true), .notFound)
        ledger.fail(.release(acme, "missing"), .notFound)
        ledger.fail(.release(acme, "bad/id"), .invalidArgument)
        #expect(ledger.balance(acme).available == 900)
    }

    @Test func expiryIsAnExplicitEntryAtTheTTLAndCommitsAtTheInstantAreTooLate() {
        var ledger = funded()
        ledger.reserve(acme, "job", 400, ttl: .minutes(15))
        ledger.now = july1.adding(.minutes(15)).adding(milliseconds: -1)
        ledger.ok(.commit(acme, "job", amount: 100, final: false))
        ledger.now = july1.adding(.minutes(15))
        ledger.fail(.commit(acme, "job", amount: 100, final: true), .expired)
        let hold = ledger.tenant(acme).holds["job"]!
        #expect(hold.state == .expired)
        #expect(hold.resolvedAt == july1.adding(.minutes(15)))
        #expect(hold.captured == 100)  // partial captures stay captured
        #expect(ledger.balance(acme).available == 900)
        let expiry = ledger.tenant(acme).history.first { $0.kind == .holdExpired }
        #expect(expiry?.amount == 300)
        #expect(expiry?.requestID == nil)
        #expect(ledger.results.last!.events.contains { if case .holdExpired("job", 300) = $0 { true } else { false } })
    }

    @Test func reserveValidation() {
        var ledger = funded()
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(0))), .invalidArgument)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(Limits.amountMax + 1))), .limitExceeded)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(1), ttl: .milliseconds(999))), .invalidArgument)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(1), ttl: .days(8))), .invalidArgument)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "", amount: .tokens(1))), .invalidArgument)
        ledger.fail(.reserve(acme, ReserveRequest(hold: HoldID(String(repeating: "h", count: 129)), amount: .tokens(1))), .invalidArgument)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", member: "bad member", amount: .tokens(1))), .invalidArgument)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(1_001))), .insufficientBalance)
        ledger.reserve(acme, HoldID(String(repeating: "h", count: 128)), 1)
        ledger.reserve(acme, "h", 1)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(1))), .alreadyExists)
        #expect(ledger.balance(acme).reserved == 2)
        #expect(ledger.tenant(acme).members.isEmpty)
    }

    @Test func openHoldsPerTenantAreBounded() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.grant(acme, Tokens(Limits.openHoldsPerTenantMax) + 10)
        for index in 0..<Limits.openHoldsPerTenantMax {
            _ = ledger.state.apply(LedgerCommand(time: ledger.now, requestID: RequestID("r\(index)"), body: .reserve(acme, ReserveRequest(hold: HoldID("h\(index)"), amount: .tokens(1)))))
        }
        ledger.fail(.reserve(acme, ReserveRequest(hold: "one-more", amount: .tokens(1))), .limitExceeded)
        ledger.ok(.release(acme, "h0"))
        ledger.reserve(acme, "one-more", 1)
    }

    @Test func holdsOfDifferentTenantsAreSeparate() {
        var ledger = funded()
        ledger.createTenant("globex")
        ledger.grant("globex", 50)
        ledger.reserve(acme, "same-id", 10)
        ledger.reserve("globex", "same-id", 20)
        ledger.ok(.commit("globex", "same-id", amount: 20, final: true))
        #expect(ledger.tenant(acme).holds["same-id"]?.state == .held)
        ledger.fail(.commit("globex", "same-id", amount: 5, final: true), .alreadyCommitted)
        ledger.fail(.voidGrant("globex", GrantID(2)), .notFound)
    }
}
