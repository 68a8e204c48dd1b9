import LedgerCore
import Testing

/// Per-feature plan quotas and grants scoped to features.
@Suite struct QuotaTests {
    let acme: TenantID = "acme"

    /// A monthly plan of 1,000 tokens with 3 cover images and 60 minutes of transcription, plus
    /// 10,000 purchased tokens.
    func ledger(limit images: UInt64 = 3) -> TestLedger {
        var ledger = TestLedger()
        let plan = Plan(
            allowance: 1_000, period: PeriodRule(unit: .month),
            quotas: [PlanQuota(feature: "transcription", limit: 60), PlanQuota(feature: "cover_image", limit: images)])
        ledger.createTenant(acme, TenantSettings(plan: plan))
        ledger.grant(acme, 10_000)
        return ledger
    }

    func images(_ count: UInt64) -> ReserveRequest.Amount { .items([PricedItem(feature: "cover_image", quantity: count)]) }

    func reserve(_ hold: HoldID, _ amount: ReserveRequest.Amount) -> CommandBody {
        .reserve(acme, ReserveRequest(hold: hold, amount: amount))
    }

    func charge(_ hold: HoldID, _ amount: ReserveRequest.Amount) -> CommandBody {
        .charge(acme, ReserveRequest(hold: hold, amount: amount))
    }

    func used(_ ledger: TestLedger, _ feature: String) -> UInt64? {
        ledger.balance(acme).quotas.first { $0.feature == feature }?.used
    }

    @Test func reservesAndChargesByItemsCountUnitsAndTheQuotaRefusesWithItsDetails() {
        var ledger = ledger()
        // Stored sorted by feature, whatever order they came in.
        #expect(ledger.tenant(acme).settings.plan?.quotas.map(\.feature) == ["cover_image", "transcription"])
        ledger.ok(charge("img-1", images(1)))
        ledger.ok(reserve("img-2", images(1)))
        #expect(used(ledger, "cover_image") == 2)
        let refused = ledger.fail(charge("img-3", images(2)), .quotaExceeded)
        #expect(refused?.details == .quota(feature: "cover_image", used: 2, limit: 3, resetsAt: time("2026-08-01"), requested: 2))
        // Refused: nothing counted, nothing spent.
        #expect(used(ledger, "cover_image") == 2)
        #expect(ledger.tenant(acme).holds["img-3"] == nil)
        ledger.ok(charge("img-3", images(1)))
        ledger.fail(charge("img-4", images(1)), .quotaExceeded)
        // Tokens are not a feature: a reserve by tokens counts no quota.
        ledger.ok(reserve("tokens", .tokens(50)))
        // A feature without a quota is not limited.
        ledger.ok(charge("qa", .items([PricedItem(feature: "report.qa", quantity: 5)])))
        let balance = ledger.balance(acme)
        #expect(
            balance.quotas == [
                QuotaView(feature: "cover_image", used: 3, limit: 3, resetsAt: time("2026-08-01")),
                QuotaView(feature: "transcription", used: 0, limit: 60, resetsAt: time("2026-08-01")),
            ])
    }

    @Test func releaseExpiryAndFullRefundsGiveUnitsBackButSpendingKeepsThem() {
        var ledger = ledger()
        ledger.ok(reserve("released", images(1)))
        ledger.ok(.release(acme, "released"))
        #expect(used(ledger, "cover_image") == 0)

        ledger.ok(.reserve(acme, ReserveRequest(hold: "expires", amount: images(1), ttl: .seconds(60))))
        ledger.advance(.minutes(2))
        #expect(used(ledger, "cover_image") == 0)

        // Committed (even partly): the work ran and counts.
        ledger.ok(reserve("partial", images(2)))
        ledger.ok(.commit(acme, "partial", amount: 10, final: true))
        #expect(used(ledger, "cover_image") == 2)
        // A partial refund keeps the units; the rest of the refund gives them back.
        ledger.ok(.refund(acme, "partial", amount: 4))
        #expect(used(ledger, "cover_image") == 2)
        ledger.ok(.refund(acme, "partial", amount: 6))
        #expect(used(ledger, "cover_image") == 0)
        // Units are given back once: the hold no longer counts any.
        #expect(ledger.tenant(acme).holds["partial"]?.quota == nil)
        ledger.ok(charge("three", images(3)))
        #expect(used(ledger, "cover_image") == 3)
    }

    @Test func quotasRenewWithThePlanPeriodAndOldHoldsDoNotGiveBackIntoTheNewOne() {
        var ledger = ledger()
        ledger.ok(charge("july-1", images(2)))
        ledger.advance(to: time("2026-07-28T00:00:00Z"))
        ledger.ok(.reserve(acme, ReserveRequest(hold: "july-open", amount: images(1), ttl: .days(7))))
        #expect(used(ledger, "cover_image") == 3)
        ledger.advance(to: time("2026-08-01T00:00:00Z"))
        let renewed = ledger.balance(acme).quotas.first { $0.feature == "cover_image" }
        #expect(renewed == QuotaView(feature: "cover_image", used: 0, limit: 3, resetsAt: time("2026-09-01")))
        // July's hold released in August gives nothing back to August, and July's refund neither.
        ledger.ok(charge("aug-1", images(1)))
        ledger.ok(.release(acme, "july-open"))
        ledger.ok(.refund(acme, "july-1", amount: 50))
        #expect(used(ledger, "cover_image") == 1)
    }

    /// A monthly plan with only a cover-image quota of `limit`.
    func imagePlan(_ limit: UInt64, allowance: Tokens = 1_000) -> CommandBody {
        .configureTenant(
            acme,
            TenantSettingsChange(plan: .set(Plan(allowance: allowance, period: PeriodRule(unit: .month), quotas: [PlanQuota(feature: "cover_image", limit: limit)]))))
    }

    @Test func aPlanChangeAppliesNewLimitsAtOnceAndRemovingThePlanEndsTheQuotas() {
        var ledger = ledger()
        ledger.ok(charge("a", images(3)))
        ledger.ok(imagePlan(5))
        #expect(used(ledger, "cover_image") == 3)
        ledger.ok(charge("b", images(2)))
        ledger.fail(charge("c", images(1)), .quotaExceeded)
        // A limit of 0 leaves the feature out of the plan.
        ledger.ok(imagePlan(0))
        ledger.fail(charge("d", images(1)), .quotaExceeded)
        ledger.ok(.configureTenant(acme, TenantSettingsChange(plan: .remove)))
        #expect(ledger.balance(acme).quotas.isEmpty)
        ledger.ok(charge("e", images(10)))
        // Set again in the same month: a new period (a new generation) starts from nothing, and the
        // holds of the old one stay out of it.
        ledger.ok(imagePlan(2, allowance: 0))
        #expect(used(ledger, "cover_image") == 0)
        ledger.ok(.refund(acme, "b", amount: 50))
        #expect(used(ledger, "cover_image") == 0)
        ledger.ok(charge("f", images(2)))
        ledger.fail(charge("g", images(1)), .quotaExceeded)
    }

    @Test func invalidQuotasAreRefused() {
        var ledger = TestLedger()
        func plan(_ quotas: [PlanQuota]) -> TenantSettings {
            TenantSettings(plan: Plan(allowance: 0, period: PeriodRule(unit: .month), quotas: quotas))
        }
        ledger.fail(.createTenant(acme, plan([PlanQuota(feature: "x", limit: 1), PlanQuota(feature: "x", limit: 2)])), .invalidArgument)
        ledger.fail(.createTenant(acme, plan([PlanQuota(feature: "bad name", limit: 1)])), .invalidArgument)
        ledger.fail(.createTenant(acme, plan([PlanQuota(feature: "x", limit: Limits.quotaLimitMax + 1)])), .invalidArgument)
        let many = (0...Limits.planQuotasMax).map { PlanQuota(feature: "f\($0)", limit: 1) }
        let tooMany = ledger.fail(.createTenant(acme, plan(many)), .limitExceeded)
        #expect(tooMany?.details == .limit(name: "plan_quotas_max", value: UInt64(Limits.planQuotasMax)))
        ledger.ok(.createTenant(acme, plan(Array(many.prefix(Limits.planQuotasMax)))))
    }

    @Test func anEstimateShowsTheQuotasItsItemsCountAndIsUnaffordableBeyondOne() throws {
        var ledger = ledger()
        ledger.ok(charge("two", images(2)))
        let items = [PricedItem(feature: "transcription", quantity: 10), PricedItem(feature: "cover_image", quantity: 1), PricedItem(feature: "cover_image", quantity: 1)]
        let estimate = try ledger.state.estimate(acme, items: items)
        #expect(estimate.total == 80 + 25 + 25)
        #expect(!estimate.affordable)
        #expect(estimate.itemsAffordable == 2)
        #expect(
            estimate.quotas == [
                QuotaView(feature: "cover_image", used: 2, limit: 3, resetsAt: time("2026-08-01"), requested: 2),
                QuotaView(feature: "transcription", used: 0, limit: 60, resetsAt: time("2026-08-01"), requested: 10),
            ])
        let fits = try ledger.state.estimate(acme, items: Array(items.prefix(2)))
        #expect(fits.affordable && fits.itemsAffordable == 2)
    }
}

@Suite struct ScopedGrantTests {
    let acme: TenantID = "acme"

    func scoped(_ ledger: inout TestLedger, _ amount: Tokens, _ scope: [String], priority: UInt32? = nil) -> GrantID {
        guard case .granted(let grant) = ledger.ok(.grant(acme, GrantRequest(kind: .promo, amount: amount, priority: priority, scope: scope))) else {
            return GrantID(0)
        }
        return grant.id
    }

    func minutes(_ count: UInt64) -> PricedItem { PricedItem(feature: "transcription", quantity: count) }

    @Test func aScopedGrantPaysOnlyForItsFeaturesInBurnDownOrder() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        let general = ledger.grant(acme, 100)
        // Burns first (lower priority number), but only for transcription.
        let promo = scoped(&ledger, 80, ["transcription", "report.qa", "transcription"].uniqued(), priority: 10)
        #expect(ledger.tenant(acme).grant(promo)?.scope == ["report.qa", "transcription"])

        // By tokens: the promo cannot pay.
        ledger.fail(.reserve(acme, ReserveRequest(hold: "t", amount: .tokens(150))), .insufficientBalance)
        guard case .reserved(let byTokens) = ledger.ok(.reserve(acme, ReserveRequest(hold: "t", amount: .tokens(30)))) else { return }
        #expect(byTokens.allocations == [Allocation(grant: general, amount: 30)])
        ledger.ok(.release(acme, "t"))

        // Transcription: the promo first, then the general grant.
        guard case .charged(let hold, 96) = ledger.ok(.charge(acme, ReserveRequest(hold: "c", amount: .items([minutes(12)])))) else { return }
        #expect(hold.captures == [Allocation(grant: promo, amount: 80), Allocation(grant: general, amount: 16)])
        // An image cannot use the promo even when it has tokens left.
        let more = scoped(&ledger, 50, ["transcription"], priority: 10)
        let refused = ledger.fail(
            .charge(acme, ReserveRequest(hold: "img", amount: .items([PricedItem(feature: "cover_image", quantity: 4)]))), .insufficientBalance)
        #expect(refused?.details == .balance(available: 84, requested: 100))
        // The balance shows every bucket with its scope.
        let buckets = ledger.balance(acme).buckets
        #expect(buckets.map(\.scope) == [["transcription"], []])
        #expect(buckets.map(\.id) == [more, general])
    }

    @Test func itemsArePaidInOrderEachFromTheGrantsItsFeatureMayUse() throws {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        let general = ledger.grant(acme, 30)
        let promo = scoped(&ledger, 40, ["transcription"], priority: 10)
        // 25 for the image (general only), 40 for five minutes (the promo), 5 more minutes: the
        // general grant's 5 left.
        let items = [PricedItem(feature: "cover_image", quantity: 1), minutes(5), PricedItem(feature: "report.qa", quantity: 1)]
        let estimate = try ledger.state.estimate(acme, items: items)
        // report.qa costs 40: beyond the 5 the general grant has left after the image.
        #expect(!estimate.affordable && estimate.itemsAffordable == 2)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", amount: .items(items))), .insufficientBalance)
        guard case .reserved(let hold) = ledger.ok(.reserve(acme, ReserveRequest(hold: "h", amount: .items(Array(items.prefix(2)))))) else { return }
        #expect(hold.allocations == [Allocation(grant: promo, amount: 40), Allocation(grant: general, amount: 25)])
        // Growing the hold draws from grants that may pay for every item of it: the general one.
        ledger.fail(.increaseHold(acme, "h", amount: 6), .insufficientBalance)
        ledger.ok(.increaseHold(acme, "h", amount: 5))
        // Committing beyond the hold likewise: nothing unscoped is left.
        ledger.fail(.commit(acme, "h", amount: 71, final: true), .insufficientBalance)
        ledger.ok(.commit(acme, "h", amount: 70, final: true))
    }

    @Test func debtIsNeverPaidBackFromAScopedGrant() {
        var ledger = TestLedger()
        ledger.createTenant(acme, TenantSettings(overdraftLimit: 100))
        ledger.grant(acme, 10)
        ledger.reserve(acme, "h", 10)
        ledger.ok(.commit(acme, "h", amount: 50, final: true))
        #expect(ledger.balance(acme).debt == 40)
        _ = scoped(&ledger, 100, ["transcription"])
        #expect(ledger.balance(acme).debt == 40)
        ledger.grant(acme, 30)
        #expect(ledger.balance(acme).debt == 10)
    }

    @Test func invalidScopesAreRefused() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.fail(.grant(acme, GrantRequest(kind: .promo, amount: 1, scope: ["a", "a"])), .invalidArgument)
        ledger.fail(.grant(acme, GrantRequest(kind: .promo, amount: 1, scope: ["no spaces"])), .invalidArgument)
        let many = (0...Limits.grantScopeFeaturesMax).map { "f\($0)" }
        ledger.fail(.grant(acme, GrantRequest(kind: .promo, amount: 1, scope: many)), .limitExceeded)
        ledger.ok(.grant(acme, GrantRequest(kind: .promo, amount: 1, scope: Array(many.prefix(Limits.grantScopeFeaturesMax)))))
    }
}

extension Array where Element: Hashable {
    fileprivate func uniqued() -> [Element] {
        var seen: Set<Element> = []
        return filter { seen.insert($0).inserted }
    }
}
