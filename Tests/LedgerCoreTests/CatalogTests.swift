import LedgerCore
import Testing

@Suite struct CatalogTests {
    let acme: TenantID = "acme"

    @Test func demoCatalogPrices() throws {
        let catalog = PriceCatalog.demo
        #expect(catalog.version == "demo-2026-11")
        #expect(catalog.features.count == 10)
        let costs = try catalog.price([
            PricedItem(feature: "transcription", quantity: 37),
            PricedItem(feature: "transcription", quantity: 60),
            PricedItem(feature: "report.qa", quantity: 3),
            PricedItem(feature: "ai_question", quantity: 1),
            PricedItem(feature: "ai_question", quantity: 201),
            PricedItem(feature: "classification", quantity: 1_500 * 2),
            PricedItem(feature: "cover_image", quantity: 1),
        ])
        #expect(costs == [296, 480, 120, 3, 4, 3_000, 25])
    }

    @Test(arguments: [
        (Tokens(0), Tokens(8), UInt64(60), UInt64(1), Tokens(1)),  // 8 tokens a minute, billed by the second: rounds up
        (0, 8, 60, 60, 8),
        (0, 8, 60, 61, 9),
        (5, 0, 1, 1_000, 5),  // base only
        (5, 1, 1_000, 1, 6),
    ])
    func costRoundsUpToWholeTokens(base: Tokens, rate: Tokens, per: UInt64, quantity: UInt64, cost: Tokens) throws {
        let price = FeaturePrice(name: "f", unit: "u", base: base, rate: rate, per: per)
        #expect(try price.cost(quantity: quantity) == cost)
    }

    @Test func costsAboveTheAmountLimitAreRefused() throws {
        let price = FeaturePrice(name: "f", unit: "u", rate: Limits.amountMax, per: 1)
        #expect(try price.cost(quantity: 1) == Limits.amountMax)
        let error = #expect(throws: LedgerError.self) { try price.cost(quantity: 2) }
        #expect(error?.code == .limitExceeded)
        #expect(error?.details == .limit(name: "amount_max", value: Limits.amountMax))
        // A product far beyond 64 bits is caught, not wrapped.
        #expect(throws: LedgerError.self) { try price.cost(quantity: Limits.itemQuantityMax) }
    }

    @Test(arguments: [
        ("[]", "must be a JSON object"),
        ("{\"version\": \"v1\"}", "needs an object \"features\""),
        ("{\"version\": \"v 1\", \"features\": {}}", "catalog version"),
        ("{\"version\": \"v1\", \"features\": {\"x\": {\"unit\": \"u\", \"rate\": 1.5}}}", "only whole numbers"),
        ("{\"version\": \"v1\", \"features\": {\"x\": {\"unit\": \"u\", \"rate\": -1}}}", "negative"),
        ("{\"version\": \"v1\", \"features\": {\"x\": {\"unit\": \"u\", \"rate\": 1, \"rate\": 2}}}", "duplicate key"),
        ("{\"version\": \"v1\", \"features\": {\"x\": {\"unit\": \"u\", \"rate\": 1, \"colour\": 2}}}", "unknown field"),
        ("{\"version\": \"v1\", \"features\": {\"x\": {\"unit\": \"u\"}}}", "neither a base nor a rate"),
        ("{\"version\": \"v1\", \"features\": {\"x\": {\"rate\": 1}}}", "needs a \"unit\""),
        ("{\"version\": \"v1\", \"features\": {\"x\": {\"unit\": \"u\", \"rate\": 1, \"per\": 0}}}", "per must be"),
        ("{\"version\": \"v1\", \"features\": {\"x\": {\"unit\": \"u\", \"rate\": 99999999999999999999}}}", "64 bits"),
        ("{\"version\": \"v1\", \"features\": {\"x\": {\"unit\": \"u\", \"rate\": 1}}} x", "after the document"),
        ("{\"version\": \"v1\", \"features\": {\"bad name\": {\"unit\": \"u\", \"rate\": 1}}}", "feature name"),
        ("{\"version\": \"v1\", \"features\": {\"x\": {\"unit\": \"\\ud800\", \"rate\": 1}}}", "surrogate"),
        (String(repeating: "[", count: 40), "nesting"),
        ("{\"version\": \"v1\", \"features\": {\"x\": {\"unit\": \"u\", \"rate\": 1}}", "unterminated"),
    ])
    func malformedCatalogsAreRefusedWithAReason(json: String, reason: String) {
        do {
            _ = try PriceCatalog(json: Array(json.utf8))
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains(reason), "\(error.message)")
        }
    }

    @Test func catalogParsesEscapesAndUnicode() throws {
        let json = #"{"version": "v2", "features": {"t": {"unit": "min\u00fcte \ud83d\ude00 \"q\"", "rate": 8, "description": "a\nb"}}}"#
        let catalog = try PriceCatalog(json: Array(json.utf8))
        #expect(catalog.features["t"]?.unit == "minüte 😀 \"q\"")
        #expect(catalog.features["t"]?.description == "a\nb")
    }

    @Test func estimateReportsTotalsAffordabilityAndTheBindingLimit() throws {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.grant(acme, 1_000)
        ledger.ok(.setMember(acme, "t", MemberSettings(budget: Budget(cap: 500, period: PeriodRule(unit: .week)))))
        let items = [
            PricedItem(feature: "transcription", quantity: 30),  // 240
            PricedItem(feature: "report.qa", quantity: 2),  // 80
            PricedItem(feature: "report.custom", quantity: 3),  // 240
        ]
        let pool = try ledger.state.estimate(acme, items: items)
        #expect(pool.items.map(\.cost) == [240, 80, 240])
        #expect(pool.total == 560)
        #expect(pool.affordable)
        #expect(pool.itemsAffordable == 3)
        #expect(pool.binding == .pool)
        #expect(pool.headroom == 1_000)

        let member = try ledger.state.estimate(acme, member: "t", items: items)
        #expect(!member.affordable)
        #expect(member.itemsAffordable == 2)
        #expect(member.binding == .memberBudget)
        #expect(member.headroom == 500)

        #expect(throws: LedgerError.self) { try ledger.state.estimate(acme, items: [PricedItem(feature: "teleport", quantity: 1)]) }
        #expect(throws: LedgerError.self) { try ledger.state.estimate(acme, items: [PricedItem(feature: "transcription", quantity: 0)]) }
        #expect(throws: LedgerError.self) { try ledger.state.estimate(acme, items: []) }
        let tooMany = Array(repeating: PricedItem(feature: "cover_image", quantity: 1), count: Limits.estimateItemsMax + 1)
        #expect(throws: LedgerError.self) { try ledger.state.estimate(acme, items: tooMany) }
        #expect(throws: LedgerError.self) { try ledger.state.estimate("nobody", items: items) }
    }

    @Test func reserveByItemsRecordsTheCatalogVersion() throws {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.grant(acme, 1_000)
        guard case .reserved(let hold) = ledger.ok(.reserve(acme, ReserveRequest(hold: "h", amount: .items([PricedItem(feature: "transcription", quantity: 37)])))) else {
            return
        }
        #expect(hold.amount == 296)
        #expect(hold.catalogVersion == "demo-2026-11")
        #expect(hold.items == [PricedItem(feature: "transcription", quantity: 37)])
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h2", amount: .items([PricedItem(feature: "nope", quantity: 1)]))), .invalidArgument)

        // A new catalog version prices later reserves; the same version with other prices is refused.
        let v2 = try PriceCatalog(version: "v2", features: [FeaturePrice(name: "transcription", unit: "minute", rate: 10)])
        ledger.ok(.installCatalog(v2))
        guard case .reserved(let priced) = ledger.ok(.reserve(acme, ReserveRequest(hold: "h3", amount: .items([PricedItem(feature: "transcription", quantity: 37)])))) else {
            return
        }
        #expect(priced.amount == 370)
        #expect(priced.catalogVersion == "v2")
        let conflicting = try PriceCatalog(version: "v2", features: [FeaturePrice(name: "transcription", unit: "minute", rate: 11)])
        ledger.fail(.installCatalog(conflicting), .alreadyExists)
        ledger.ok(.installCatalog(v2))
    }

    @Test func withoutACatalogPricedCallsAreRefused() {
        var ledger = TestLedger(catalog: nil)
        ledger.createTenant(acme)
        ledger.grant(acme, 100)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "h", amount: .items([PricedItem(feature: "transcription", quantity: 1)]))), .invalidArgument)
        #expect(throws: LedgerError.self) { try ledger.state.estimate(acme, items: [PricedItem(feature: "transcription", quantity: 1)]) }
    }
}
