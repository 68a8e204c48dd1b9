import LedgerCore
import Testing

@Suite struct IdempotencyTests {
    let acme: TenantID = "acme"

    func ledger() -> TestLedger {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.grant(acme, 1_000)
        return ledger
    }

    @Test func sameRequestReplaysTheOriginalResultAndChangesNothing() {
        var ledger = ledger()
        let reserve = CommandBody.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(100)))
        let first = ledger.run(reserve, requestID: "op-1")
        #expect(!first.replayed)
        let historyCount = ledger.tenant(acme).history.count
        ledger.now = ledger.now.adding(.seconds(5))
        let second = ledger.run(reserve, requestID: "op-1")
        #expect(second.replayed)
        #expect(second.outcome == first.outcome)
        #expect(ledger.tenant(acme).history.count == historyCount)
        #expect(ledger.balance(acme).reserved == 100)

        // Commit retried after the hold changed still answers as the first time.
        let commit = CommandBody.commit(acme, "h", amount: 60, final: true)
        let committed = ledger.run(commit, requestID: "op-2")
        let retried = ledger.run(commit, requestID: "op-2")
        #expect(retried.replayed)
        #expect(retried.outcome == committed.outcome)
        #expect(ledger.balance(acme).spent == 60)
    }

    @Test func rememberedRequestsSurviveASnapshotInTheirCompactForm() throws {
        var ledger = ledger()
        let reserve = CommandBody.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(100), ttl: .seconds(60)))
        let first = ledger.run(reserve, requestID: "op-1")
        let refused = ledger.run(.reserve(acme, ReserveRequest(hold: "big", amount: .tokens(5_000))), requestID: "op-2")
        // Stored as bytes: one small array per request, not a tree of values.
        let stored = ledger.tenant(acme).idempotency.storedBytes
        #expect(stored > 0 && stored < 600)
        ledger.state = try LedgerState(binary: ledger.state.binaryEncoded)
        let again = ledger.run(reserve, requestID: "op-1")
        #expect(again.replayed && again.outcome == first.outcome)
        let refusedAgain = ledger.run(.reserve(acme, ReserveRequest(hold: "big", amount: .tokens(5_000))), requestID: "op-2")
        #expect(refusedAgain.replayed && refusedAgain.outcome == refused.outcome)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(99), ttl: .seconds(60))), .idempotencyConflict, requestID: "op-1")
    }

    /// A record's lengths are written after its bytes, into room left for the usual sizes: shorter
    /// (a small refusal), as left, and longer (a body of thousands of items) must all read back.
    @Test func requestsOfEverySizeReplayTheirOutcomes() throws {
        var ledger = ledger()
        var sent: [(String, CommandBody, CommandResult)] = []
        for n in 0..<12 {
            let items = (0..<(n % 3 == 2 ? 3_000 : n % 3)).map { PricedItem(feature: "feature-\($0)", quantity: 1) }
            let body: CommandBody =
                items.isEmpty
                ? .release(acme, HoldID("missing-\(n)"))
                : .reserve(acme, ReserveRequest(hold: HoldID("h\(n)"), amount: .items(items)))
            let id = "op-\(n)"
            sent.append((id, body, ledger.run(body, requestID: id)))
            let reserve = CommandBody.reserve(acme, ReserveRequest(hold: HoldID("t\(n)"), amount: .tokens(1)))
            let reserveID = "tokens-\(n)"
            sent.append((reserveID, reserve, ledger.run(reserve, requestID: reserveID)))
        }
        #expect(ledger.tenant(acme).idempotency.storedBytes > 3 * 16_384)
        for _ in 0..<2 {
            for (id, body, first) in sent {
                let again = ledger.run(body, requestID: id)
                #expect(again.replayed && again.outcome == first.outcome, "\(id)")
            }
            ledger.fail(.release(acme, "other"), .idempotencyConflict, requestID: "op-2")
            ledger.state = try LedgerState(binary: ledger.state.binaryEncoded)
        }
    }

    @Test func sameIDWithADifferentCommandIsAConflict() {
        var ledger = ledger()
        ledger.ok(.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(100))), requestID: "op-1")
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(101))), .idempotencyConflict, requestID: "op-1")
        ledger.fail(.release(acme, "h"), .idempotencyConflict, requestID: "op-1")
        #expect(ledger.balance(acme).reserved == 100)
    }

    @Test func aFailedFirstAttemptStaysFailed() {
        var ledger = ledger()
        let reserve = CommandBody.reserve(acme, ReserveRequest(hold: "big", amount: .tokens(5_000)))
        ledger.fail(reserve, .insufficientBalance, requestID: "op-1")
        ledger.grant(acme, 10_000)
        let retry = ledger.run(reserve, requestID: "op-1")
        #expect(retry.replayed)
        #expect((try? retry.outcome.get()) == nil)
        // A new request id is a new attempt.
        ledger.ok(reserve, requestID: "op-2")
    }

    @Test func requestIDsAreScopedToTheirTenant() {
        var ledger = ledger()
        ledger.createTenant("globex")
        ledger.grant("globex", 1_000)
        ledger.ok(.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(1))), requestID: "shared")
        let other = ledger.run(.reserve("globex", ReserveRequest(hold: "h", amount: .tokens(1))), requestID: "shared")
        #expect(!other.replayed)
        #expect((try? other.outcome.get()) != nil)
    }

    @Test func requestIDIsRequiredAndValidated() {
        var ledger = ledger()
        let result = ledger.state.apply(LedgerCommand(time: ledger.now, requestID: nil, body: .release(acme, "h")))
        #expect(result.outcome.failureCode == .invalidArgument)
        ledger.fail(.release(acme, "h"), .invalidArgument, requestID: "white space")
    }

    @Test func createTenantIsIdempotentToo() {
        var ledger = TestLedger()
        let create = CommandBody.createTenant("new", TenantSettings(overdraftLimit: 5))
        ledger.ok(create, requestID: "c1")
        #expect(ledger.run(create, requestID: "c1").replayed)
        ledger.fail(create, .alreadyExists, requestID: "c2")
        ledger.fail(.createTenant("new", TenantSettings()), .idempotencyConflict, requestID: "c1")
    }

    @Test func retentionIsBoundedByTimeAndCount() {
        var ledger = ledger()
        let reserve = CommandBody.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(1)))
        ledger.ok(reserve, requestID: "old")
        ledger.ok(.release(acme, "h"), requestID: "release")
        // Within the retention window the request is remembered...
        ledger.now = ledger.now.adding(.hours(23))
        #expect(ledger.run(reserve, requestID: "old").replayed)
        // ...after it, and after another request has been remembered, it is forgotten: the same
        // command runs again (and finds the hold id taken).
        ledger.now = ledger.now.adding(.hours(2))
        ledger.ok(.grant(acme, GrantRequest(kind: .promo, amount: 1)), requestID: "later")
        let again = ledger.run(reserve, requestID: "old")
        #expect(!again.replayed)
        #expect(again.outcome.failureCode == .alreadyExists)

        for index in 0..<(Limits.idempotencyEntriesPerTenantMax + 10) {
            _ = ledger.state.apply(LedgerCommand(time: ledger.now, requestID: RequestID("bulk-\(index)"), body: .release(acme, "none")))
        }
                let first = ledger.run(.release(acme, "none"), requestID: "bulk-0")
        #expect(!first.replayed)  // evicted by count
        let recent = ledger.run(.release(acme, "none"), requestID: "bulk-\(Limits.idempotencyEntriesPerTenantMax + 9)")
        #expect(recent.replayed)
    }
}

extension Result where Failure == LedgerError {
    var failureCode: ErrorCode? {
        if case .failure(let error) = self { return error.code }
        return nil
    }
}

/// Issue 22: behaviours docs/semantics.md now states, pinned.
@Suite struct CheckOrderTests {
    let acme: TenantID = "acme"

    @Test func estimateForAnUnknownMemberAnswersButItsBalanceIsNotFound() throws {
        var ledger = TestLedger()
        ledger.createFunded(acme, amount: 1_000)
        let estimate = try ledger.state.estimate(acme, member: "newcomer", items: [PricedItem(feature: "transcription", quantity: 10)])
        #expect(estimate.total == 80)
        #expect(estimate.affordable)
        #expect(throws: LedgerError.self) { try ledger.state.balance(acme, member: "newcomer") }
        do {
            _ = try ledger.state.balance(acme, member: "newcomer")
        } catch {
            #expect(error.code == .notFound)
        }
    }

    @Test func anOverflowingAmountOnAnUnknownHoldIsNotFoundAndOnAnOpenHoldItsLimit() {
        var ledger = TestLedger()
        ledger.createFunded(acme, amount: 1_000)
        let huge = Limits.amountMax + 1
        ledger.fail(.commit(acme, "nope", amount: huge, final: true), .notFound)
        ledger.fail(.refund(acme, "nope", amount: huge), .notFound)
        ledger.reserve(acme, "job", 10)
        ledger.fail(.commit(acme, "job", amount: huge, final: true), .limitExceeded)
    }

    @Test func aRequestIDFirstUsedByAnInvalidRequestIsRemembered() {
        var ledger = TestLedger()
        ledger.createFunded(acme, amount: 1_000)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "job", amount: .tokens(0))), .invalidArgument, requestID: "r1")
        // Retried as it was: the same error, replayed; the id cannot serve another command.
        let retry = ledger.run(.reserve(acme, ReserveRequest(hold: "job", amount: .tokens(0))), requestID: "r1")
        #expect(retry.replayed)
        #expect(retry.outcome.failureCode == .invalidArgument)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "job", amount: .tokens(5))), .idempotencyConflict, requestID: "r1")
        // Unknown tenants and malformed ids are not remembered.
        ledger.fail(.reserve("ghost", ReserveRequest(hold: "job", amount: .tokens(0))), .notFound, requestID: "r2")
        ledger.createFunded("ghost", amount: 100)
        ledger.ok(.reserve("ghost", ReserveRequest(hold: "job", amount: .tokens(5))), requestID: "r2")
    }
}
