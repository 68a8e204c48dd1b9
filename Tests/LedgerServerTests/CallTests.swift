import LedgerServerTesting
import LedgerClient
import LedgerCore
import LedgerTesting
import LedgerWire
import Testing

@Suite("Every call over TLS")
struct CallTests {
    @Test("the worked example and every call's happy path")
    func happyPaths() async throws {
        let directory = TemporaryDirectory("server-calls")
        try await withServer(dataPath: directory.path) { server in
            let client = try await server.client()

            let health = try await client.health()
            #expect(health.status == "serving")
            #expect(health.principal == "admin")
            #expect(health.role == .admin)
            #expect(health.shardCount == 2)

            let catalog = try await client.catalog()
            #expect(catalog.version == PriceCatalog.demo.version)
            #expect(catalog.features.contains { $0.name == "transcription" && $0.rate == 8 })

            let plan = Plan(allowance: 3_000_000, period: PeriodRule(unit: .month))
            let created = try await client.createTenant("acme", settings: TenantSettings(plan: plan))
            #expect(created.tenant == "acme")
            _ = try await client.configureTenant("acme", change: TenantSettingsChange(lowBalanceThreshold: 1_000))
            let member = try await client.setMember(
                tenant: "acme", member: "ana",
                settings: MemberSettings(budget: Budget(cap: 10_000, period: PeriodRule(unit: .day))))
            #expect(member.member.id == "ana")
            #expect(member.member.budget.cap == 10_000)

            // The worked example: 37 minutes of transcription estimated at 296, reserved,
            // committed at 35 minutes = 280 from the plan grant.
            let items = [PricedItem(feature: "transcription", quantity: 37)]
            let estimate = try await client.estimate(tenant: "acme", member: "ana", items: items)
            #expect(estimate.total == 296)
            #expect(estimate.affordable)
            #expect(estimate.items.map(\.cost) == [296])
            let reserved = try await client.reserve(tenant: "acme", hold: "interview-1", items: items, member: "ana")
            #expect(reserved.hold.amount == 296)
            #expect(reserved.hold.state == .held)
            #expect(reserved.hold.catalogVersion == PriceCatalog.demo.version)
            let committed = try await client.commit(tenant: "acme", hold: "interview-1", amount: 280)
            #expect(committed.captured == 280)
            #expect(committed.released == 16)
            #expect(committed.hold.state == .committed)

            let balance = try await client.balance(tenant: "acme", member: "ana")
            #expect(balance.spent == 280)
            #expect(balance.available == 3_000_000 - 280)
            #expect(balance.meter.used == 280)
            #expect(balance.meter.total == 3_000_000)
            #expect(balance.memberBudget.spent == 280)
            #expect(balance.memberBudget.remaining == 10_000 - 280)
            #expect(balance.buckets.first?.kind == .plan)

            // Grants, purchases, voids and purchase refunds.
            let promo = try await client.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 500, note: "welcome"))
            #expect(promo.grant.kind == .promo)
            #expect(promo.grant.remaining == 500)
            let purchase = try await client.purchase(tenant: "acme", moneyMinor: 10_000)
            #expect(purchase.purchase.amount == 10_000)
            #expect(purchase.hasBonus)
            #expect(purchase.bonus.amount == 750)
            let voided = try await client.voidGrant(tenant: "acme", grant: GrantID(promo.grant.id))
            #expect(voided.voided == 500)
            let refunded = try await client.refundPurchase(tenant: "acme", grant: GrantID(purchase.purchase.id))
            #expect(refunded.voided == 10_000)
            #expect(refunded.bonusVoided == 750)
            #expect(refunded.moneyRefundMinor == 10_000)

            // Partial commit, release, refund.
            _ = try await client.reserve(tenant: "acme", hold: "report-1", tokens: 100)
            let partial = try await client.commit(tenant: "acme", hold: "report-1", amount: 30, final: false)
            #expect(partial.captured == 30)
            #expect(partial.hold.state == .held)
            let released = try await client.release(tenant: "acme", hold: "report-1")
            #expect(released.released == 70)
            #expect(released.hold.state == .released)
            let refund = try await client.refund(tenant: "acme", hold: "interview-1", amount: 80)
            #expect(refund.refunded == 80)
            #expect(refund.hold.refunded == 80)

            // History with paging: the pages join up to the whole history, in order.
            var sequences: [UInt64] = []
            var filter = HistoryFilter(limit: 3)
            while true {
                let page = try await client.history(tenant: "acme", filter: filter)
                sequences += page.entries.map(\.sequence)
                guard page.nextCursor != 0 else { break }
                filter.afterSequence = page.nextCursor
            }
            let whole = try await client.history(tenant: "acme", filter: HistoryFilter(limit: 1_000))
            #expect(sequences == whole.entries.map(\.sequence))
            #expect(sequences.count > 10)
            let captures = try await client.history(tenant: "acme", filter: HistoryFilter(kinds: [.capture]))
            #expect(captures.entries.map(\.amount).reduce(0, +) == 280 + 30)

            // A new catalog version prices later estimates.
            let newCatalog = try PriceCatalog(
                version: "v2", features: [FeaturePrice(name: "transcription", unit: "minute", rate: 10)])
            #expect(try await client.installCatalog(newCatalog).version == "v2")
            #expect(try await client.estimate(tenant: "acme", items: items).total == 370)
            await client.close()
        }
    }

    @Test("a retried change with the same request id is answered, not applied, again")
    func idempotentRetry() async throws {
        let directory = TemporaryDirectory("server-retry")
        try await withServer(dataPath: directory.path) { server in
            let client = try await server.client()
            _ = try await client.createTenant("acme")
            _ = try await client.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 1_000))
            let id = RequestID("job-77")
            let first = try await client.call(.command(.reserve("acme", ReserveRequest(hold: "h", amount: .tokens(400))), id))
            let again = try await client.call(.command(.reserve("acme", ReserveRequest(hold: "h", amount: .tokens(400))), id))
            #expect(!first.replayed)
            #expect(again.replayed)
            #expect(again.reserve == first.reserve)
            #expect(try await client.balance(tenant: "acme").reserved == 400)
            await client.close()
        }
    }
}
