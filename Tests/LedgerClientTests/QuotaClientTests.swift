import LedgerClient
import LedgerCore
import LedgerServerTesting
import LedgerTesting
import LedgerWire
import Testing

@Suite("The Swift client with plan quotas and scoped grants")
struct QuotaClientTests {
    @Test("quotas count, refuse with details, show in balance and estimate; scoped grants pay only for their features; all across a restart")
    func quotasAndScopes() async throws {
        let directory = TemporaryDirectory("client-quota")
        let plan = Plan(allowance: 0, period: PeriodRule(unit: .month), quotas: [PlanQuota(feature: "cover_image", limit: 2)])
        try await withServer(dataPath: directory.path) { server in
            let client = try await LedgerClient.connect(server.pki.clientConfiguration("admin", port: server.port))
            _ = try await client.createTenant("acme", settings: TenantSettings(plan: plan))
            _ = try await client.grant(tenant: "acme", GrantRequest(kind: .purchase, amount: 100))
            let promo = try await client.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 80, priority: 10, scope: ["transcription"]))
            #expect(promo.grant.scope == ["transcription"])

            let images = [PricedItem(feature: "cover_image", quantity: 2)]
            #expect(try await client.estimate(tenant: "acme", items: images).affordable)
            _ = try await client.charge(tenant: "acme", hold: "img", items: images)
            let estimate = try await client.estimate(tenant: "acme", items: [PricedItem(feature: "cover_image", quantity: 1)])
            #expect(!estimate.affordable)
            #expect(estimate.quotas.map { [$0.feature, "\($0.used)", "\($0.limit)", "\($0.requested)"] } == [["cover_image", "2", "2", "1"]])
            do {
                _ = try await client.charge(tenant: "acme", hold: "img-2", items: [PricedItem(feature: "cover_image", quantity: 1)])
                Issue.record("a charge beyond the quota went through")
            } catch let error as LedgerClientError {
                #expect(error.ledgerError?.code == .quotaExceeded)
                guard case .quota(let feature, let used, let limit, let resetsAt, let requested)? = error.ledgerError?.details else {
                    Issue.record("quota_exceeded without its details: \(error)")
                    return
                }
                #expect((feature, used, limit, requested) == ("cover_image", 2, 2, 1))
                #expect(resetsAt > LedgerTime(iso8601: "2026-01-01T00:00:00Z")!)
            }
            // Transcription draws on the promo first; tokens never do.
            let minutes = try await client.charge(tenant: "acme", hold: "t", items: [PricedItem(feature: "transcription", quantity: 5)])
            #expect(minutes.hold.captures.map(\.grantID) == [promo.grant.id])
            #expect(await errorCode { try await client.charge(tenant: "acme", hold: "tok", tokens: 60) } == .insufficientBalance)
            let balance = try await client.balance(tenant: "acme")
            #expect(balance.quotas.map { "\($0.feature) \($0.used)/\($0.limit)" } == ["cover_image 2/2"])
            #expect(balance.buckets.first { $0.grantID == promo.grant.id }?.scope == ["transcription"])
            await client.close()
        }
        // The quota counts and scopes come back from the WAL (and the snapshot the close wrote).
        try await withServer(dataPath: directory.path) { server in
            let client = try await LedgerClient.connect(server.pki.clientConfiguration("admin", port: server.port))
            let balance = try await client.balance(tenant: "acme")
            #expect(balance.quotas.map { "\($0.feature) \($0.used)/\($0.limit)" } == ["cover_image 2/2"])
            #expect(balance.buckets.contains { $0.scope == ["transcription"] })
            #expect(await errorCode { try await client.charge(tenant: "acme", hold: "img-3", items: [PricedItem(feature: "cover_image", quantity: 1)]) } == .quotaExceeded)
            _ = try await client.refund(tenant: "acme", hold: "img", amount: 50)
            _ = try await client.charge(tenant: "acme", hold: "img-3", items: [PricedItem(feature: "cover_image", quantity: 1)])
            for shard in server.engine.shards { #expect(await shard.stateCopy.audit().isEmpty) }
            await client.close()
        }
    }
}
