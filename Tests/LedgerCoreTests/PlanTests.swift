import LedgerCore
import Testing

@Suite struct PlanTests {
    let acme: TenantID = "acme"
    let monthly = PeriodRule(unit: .month)

    @Test func planIssuesAGrantPerPeriodThatExpiresAtItsEnd() {
        var ledger = TestLedger(at: time("2026-07-14T09:00:00Z"))
        ledger.createTenant(acme, TenantSettings(plan: Plan(allowance: 3_000_000, period: monthly)))
        let july = ledger.balance(acme)
        #expect(july.available == 3_000_000)
        #expect(july.buckets.first?.kind == .plan)
        #expect(july.buckets.first?.expiresAt == time("2026-08-01"))
        #expect(july.meter?.used == 0)
        #expect(july.meter?.total == 3_000_000)
        #expect(july.meter?.periodStart == time("2026-07-01"))
        #expect(july.meter?.periodEnd == time("2026-08-01"))

        ledger.advance(to: time("2026-08-01T00:00:01Z"))
        let august = ledger.balance(acme)
        #expect(august.available == 3_000_000)
        #expect(august.expired == 3_000_000)
        #expect(august.buckets.count == 1)
        #expect(august.buckets.first?.expiresAt == time("2026-09-01"))
        let kinds = ledger.tenant(acme).history.suffix(3).map(\.kind)
        #expect(kinds == [.grant, .planRenewal, .grantExpired])
        #expect(ledger.results.last!.events.contains { if case .planRenewed(_, 3_000_000, _, _) = $0 { true } else { false } })

        // Several periods pass without traffic: one renewal and one expiry each.
        ledger.advance(to: time("2026-12-15"))
        #expect(ledger.balance(acme).expired == 3_000_000 * 5)  // July to November
        #expect(ledger.balance(acme).meter?.periodStart == time("2026-12-01"))
    }

    /// Issue 22, defect 3: tokens still held on a grant that was voided or expired stay in the
    /// meter's total (total = used + every token still in the pool, held included), before and
    /// after the next change prunes that grant from the burn-down order.
    @Test func meterKeepsTokensHeldOnAVoidedOrExpiredGrant() {
        for ending in ["void", "expiry"] {
            var ledger = TestLedger(at: time("2026-07-01T00:00:00Z"))
            ledger.createTenant(acme, TenantSettings(plan: Plan(allowance: 250_000, period: monthly)))
            let purchase = ledger.grant(acme, 5_000, expiresAt: time("2026-07-01T01:00:00Z"))  // burns first
            ledger.reserve(acme, "job", 400, ttl: .hours(2))
            #expect(ledger.balance(acme).meter?.total == 255_000, "\(ending)")
            if ending == "void" {
                ledger.ok(.voidGrant(acme, purchase))
            } else {
                ledger.advance(to: time("2026-07-01T01:00:00Z"))
            }
            #expect(ledger.tenant(acme).grant(purchase)!.held == 400)
            #expect(ledger.balance(acme).meter?.total == 250_400, "\(ending)")
            ledger.grant(acme, 1_000, kind: .adjustment)
            let balance = ledger.balance(acme)
            #expect(balance.reserved == 400)
            #expect(balance.meter?.used == 0)
            #expect(balance.meter?.total == 251_400, "\(ending): the held 400 left the total")
            // Captured from the ended grant: used rises by what the total keeps.
            ledger.ok(.commit(acme, "job", amount: 300, final: true))
            #expect(ledger.balance(acme).meter?.used == 300)
            #expect(ledger.balance(acme).meter?.total == 251_300, "\(ending)")
        }
    }

    @Test func meterFollowsTheSeedExample() {
        // A 2,000,000 monthly plan; 500,000 used by July 14.
        var ledger = TestLedger(at: time("2026-07-01T00:00:00Z"))
        ledger.createTenant(acme, TenantSettings(plan: Plan(allowance: 2_000_000, period: monthly)))
        ledger.now = time("2026-07-14T10:00:00Z")
        ledger.reserve(acme, "a", 500_000)
        ledger.ok(.commit(acme, "a", amount: 500_000, final: true))
        #expect(ledger.balance(acme).meter.map { [$0.used, $0.total] } == [500_000, 2_000_000])

        ledger.grant(acme, 1_000_000, kind: .purchase)
        #expect(ledger.balance(acme).meter.map { [$0.used, $0.total] } == [500_000, 3_000_000])

        ledger.reserve(acme, "b", 1_000_000)
        ledger.ok(.commit(acme, "b", amount: 1_000_000, final: true))
        #expect(ledger.balance(acme).meter.map { [$0.used, $0.total] } == [1_500_000, 3_000_000])

        // The plan allowance burned first, so all 1,000,000 purchased tokens are still there on
        // August 1: the meter shows the new allowance plus them.
        ledger.advance(to: time("2026-08-01"))
        #expect(ledger.balance(acme).meter.map { [$0.used, $0.total] } == [0, 3_000_000])
        #expect(ledger.balance(acme).expired == 500_000)
    }

    @Test func rolloverCarriesUpToTheCap() {
        var ledger = TestLedger()
        ledger.createTenant(acme, TenantSettings(plan: Plan(allowance: 1_000, period: monthly, rolloverCap: 300)))
        ledger.reserve(acme, "a", 200)
        ledger.ok(.commit(acme, "a", amount: 200, final: true))
        ledger.advance(to: time("2026-08-01"))
        let balance = ledger.balance(acme)
        #expect(balance.available == 1_300)
        #expect(balance.expired == 500)
        #expect(balance.granted == 2_000)  // rollover moves tokens; it does not grant them twice
        let julyGrant = ledger.tenant(acme).grants[0]
        #expect(julyGrant.carriedOver == 300)
        #expect(julyGrant.expired == 500)
        #expect(ledger.tenant(acme).history.contains { $0.kind == .rollover && $0.amount == 300 })
    }

    @Test func planSpendLimitBindsAcrossSources() {
        var ledger = TestLedger()
        ledger.createTenant(acme, TenantSettings(plan: Plan(allowance: 1_000, period: monthly, spendLimit: 1_500)))
        ledger.grant(acme, 5_000)
        ledger.reserve(acme, "a", 1_400)
        let error = ledger.fail(.reserve(acme, ReserveRequest(hold: "b", amount: .tokens(200))), .planLimitReached)
        #expect(error?.details == .plan(remaining: 100, limit: 1_500, resetsAt: time("2026-08-01")))
        ledger.ok(.commit(acme, "a", amount: 1_000, final: true))
        ledger.reserve(acme, "c", 500)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "d", amount: .tokens(1))), .planLimitReached)
        ledger.advance(to: time("2026-08-01"))
        ledger.reserve(acme, "e", 1_000)
    }

    @Test func holdSpanningARenewalCapturesFromTheOldGrant() {
        var ledger = TestLedger(at: time("2026-07-31T23:00:00Z"))
        ledger.createTenant(acme, TenantSettings(plan: Plan(allowance: 1_000, period: monthly)))
        ledger.reserve(acme, "late", 600, ttl: .hours(2))
        ledger.advance(to: time("2026-08-01T00:30:00Z"))
        #expect(ledger.balance(acme).available == 1_000)  // the new grant is untouched
        #expect(ledger.tenant(acme).grants[0].expired == 400)
        ledger.ok(.commit(acme, "late", amount: 500, final: true))
        #expect(ledger.tenant(acme).grants[0].consumed == 500)
        #expect(ledger.tenant(acme).grants[0].expired == 500)
        #expect(ledger.balance(acme).meter?.used == 500)
        #expect(ledger.balance(acme).available == 1_000)
    }

    @Test func changingAPlanAppliesFromTheNextPeriodAndRemovingStopsRenewals() {
        var ledger = TestLedger()
        ledger.createTenant(acme, TenantSettings(plan: Plan(allowance: 1_000, period: monthly)))
        ledger.ok(.configureTenant(acme, TenantSettingsChange(plan: .set(Plan(allowance: 5_000, period: PeriodRule(unit: .week))))))
        #expect(ledger.balance(acme).available == 1_000)
        ledger.advance(to: time("2026-08-01"))
        // August 1, 2026 is a Saturday: the weekly period runs from Monday July 27 to Monday August 3.
        #expect(ledger.balance(acme).available == 5_000)
        #expect(ledger.balance(acme).meter?.periodEnd == time("2026-08-03"))
        ledger.ok(.configureTenant(acme, TenantSettingsChange(plan: .remove)))
        #expect(ledger.balance(acme).meter == nil)
        ledger.advance(to: time("2026-09-01"))
        #expect(ledger.balance(acme).available == 0)
        #expect(ledger.tenant(acme).grants.count == 2)
    }

    @Test func planIsAddedToATenantWithoutOne() {
        var ledger = TestLedger(at: time("2026-07-20T00:00:00Z"))
        ledger.createTenant(acme)
        ledger.ok(.configureTenant(acme, TenantSettingsChange(plan: .set(Plan(allowance: 1_200, period: monthly)))))
        // No proration: the full allowance for the running period.
        #expect(ledger.balance(acme).available == 1_200)
        ledger.fail(.configureTenant(acme, TenantSettingsChange(plan: .set(Plan(allowance: Limits.amountMax + 1, period: monthly)))), .limitExceeded)
    }
}
