import LedgerCore
import Testing

@Suite struct GrantTests {
    let acme: TenantID = "acme"

    @Test func burnDownOrderIsPriorityThenExpiryThenCreation() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        let purchase = ledger.grant(acme, 100, kind: .purchase)
        let promoLate = ledger.grant(acme, 100, kind: .promo, expiresAt: time("2026-09-01"))
        let promoEarly = ledger.grant(acme, 100, kind: .promo, expiresAt: time("2026-08-01"))
        let referral = ledger.grant(acme, 100, kind: .referral)
        let urgent = ledger.grant(acme, 100, kind: .adjustment, priority: 5)
        let order = ledger.balance(acme).buckets.map(\.id)
        #expect(order == [urgent, promoEarly, promoLate, purchase, referral])

        // A 250-token hold takes from the first buckets in that order.
        let hold = ledger.reserve(acme, "h1", 250)
        #expect(hold?.allocations == [
            Allocation(grant: urgent, amount: 100), Allocation(grant: promoEarly, amount: 100),
            Allocation(grant: promoLate, amount: 50),
        ])
    }

    @Test func grantValidation() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.fail(.grant(acme, GrantRequest(kind: .purchase, amount: 0)), .invalidArgument)
        ledger.fail(.grant(acme, GrantRequest(kind: .purchase, amount: Limits.amountMax + 1)), .limitExceeded)
        ledger.fail(.grant(acme, GrantRequest(kind: .plan, amount: 10)), .invalidArgument)
        ledger.fail(.grant(acme, GrantRequest(kind: .refund, amount: 10)), .invalidArgument)
        ledger.fail(.grant(acme, GrantRequest(kind: .promo, amount: 10, expiresAt: july1)), .invalidArgument)
        ledger.fail(.grant(acme, GrantRequest(kind: .promo, amount: 10, priority: Limits.grantPriorityMax + 1)), .invalidArgument)
        ledger.fail(.grant(acme, GrantRequest(kind: .promo, amount: 10, note: String(repeating: "x", count: 257))), .invalidArgument)
        ledger.fail(.grant("nobody", GrantRequest(kind: .promo, amount: 10)), .notFound)
        ledger.fail(.grant("bad id!", GrantRequest(kind: .promo, amount: 10)), .invalidArgument)
        #expect(ledger.balance(acme).granted == 0)
        #expect(ledger.tenant(acme).grants.isEmpty)
    }

    @Test func tenantLifetimeTotalIsBounded() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        for _ in 0..<1000 { ledger.grant(acme, Limits.amountMax) }
        #expect(ledger.balance(acme).granted == Limits.tenantTokensMax)
        let error = ledger.fail(.grant(acme, GrantRequest(kind: .promo, amount: 1)), .limitExceeded)
        #expect(error?.details == .limit(name: "tenant_tokens_max", value: Limits.tenantTokensMax))
    }

    @Test func scheduledGrantBecomesEffectiveAtItsTime() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.ok(.grant(acme, GrantRequest(kind: .promo, amount: 500, effectiveAt: time("2026-07-10"), expiresAt: time("2026-08-01"))))
        #expect(ledger.balance(acme).available == 0)
        #expect(ledger.balance(acme).buckets.first?.state == .pending)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", amount: .tokens(1))), .insufficientBalance)
        ledger.advance(to: time("2026-07-10"))
        #expect(ledger.balance(acme).available == 500)
        #expect(ledger.tenant(acme).history.last?.kind == .grantActivated)
        ledger.advance(to: time("2026-08-01"))
        #expect(ledger.balance(acme).available == 0)
        #expect(ledger.balance(acme).expired == 500)
    }

    @Test func voidingKeepsHeldTokensCapturable() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        let grant = ledger.grant(acme, 1000, kind: .adjustment)
        ledger.reserve(acme, "h1", 300)
        ledger.reserve(acme, "h2", 200)
        guard case .voided(let voided, let amount) = ledger.ok(.voidGrant(acme, grant)) else { return }
        #expect(amount == 500)
        #expect(voided.state == .voided)
        #expect(ledger.balance(acme).available == 0)
        // The held tokens stay capturable; what is released afterwards is voided at once.
        ledger.ok(.commit(acme, "h1", amount: 250, final: true))
        ledger.ok(.release(acme, "h2"))
        let after = ledger.tenant(acme).grant(grant)!
        #expect(after.consumed == 250)
        #expect(after.voided == 750)
        #expect(after.remaining == 0)
        ledger.fail(.voidGrant(acme, grant), .invalidArgument)
        ledger.fail(.voidGrant(acme, GrantID(99)), .notFound)
    }

    @Test func grantExpiryIsAnExplicitEntryAtItsTime() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        let promo = ledger.grant(acme, 700, kind: .promo, expiresAt: time("2026-07-02T12:00:00Z"))
        ledger.advance(to: time("2026-07-05"))
        let entry = ledger.tenant(acme).history.last!
        #expect(entry.kind == .grantExpired)
        #expect(entry.grant == promo)
        #expect(entry.amount == 700)
        #expect(entry.time == time("2026-07-02T12:00:00Z"))
        #expect(ledger.results.last!.events.contains { if case .grantExpired(promo, .promo, 700) = $0 { true } else { false } })
    }

    @Test func heldTokensOfAnExpiredGrantStayCapturableAndExpireWhenReleased() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        let promo = ledger.grant(acme, 1000, kind: .promo, expiresAt: time("2026-07-01T01:00:00Z"))
        ledger.reserve(acme, "h", 600, ttl: .hours(2))
        ledger.advance(.minutes(90))
        #expect(ledger.tenant(acme).grant(promo)!.state == .expired)
        #expect(ledger.tenant(acme).grant(promo)!.expired == 400)
        ledger.ok(.commit(acme, "h", amount: 450, final: true))
        let grant = ledger.tenant(acme).grant(promo)!
        #expect(grant.consumed == 450)
        #expect(grant.expired == 550)
        #expect(grant.remaining == 0)
    }
}
