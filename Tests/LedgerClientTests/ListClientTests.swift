import LedgerClient
import LedgerCore
import LedgerServerTesting
import LedgerTesting
import LedgerWire
import Testing

@Suite("Listings through the Swift client")
struct ListClientTests {
    @Test("open holds, grants and tenants page in id order; a tenant principal lists only its own tenant")
    func listings() async throws {
        let directory = TemporaryDirectory("client-lists")
        try await withServer(dataPath: directory.path) { server in
            let admin = try await LedgerClient.connect(server.pki.clientConfiguration("admin", port: server.port))
            for tenant in ["acme", "globex", "initech"] as [TenantID] {
                _ = try await admin.createTenant(tenant)
                _ = try await admin.grant(tenant: tenant, GrantRequest(kind: .promo, amount: 1_000))
            }
            for index in 1...5 { _ = try await admin.reserve(tenant: "acme", hold: HoldID("h\(index)"), tokens: 10, member: index % 2 == 0 ? "ana" : nil) }
            _ = try await admin.commit(tenant: "acme", hold: "h5", amount: 10)
            let voided = try await admin.grant(tenant: "acme", GrantRequest(kind: .bonus, amount: 50)).grant.id
            _ = try await admin.voidGrant(tenant: "acme", grant: GrantID(voided))

            // A service restarted: it walks its open holds page by page.
            var seen: [String] = []
            var after: HoldID? = nil
            repeat {
                let page = try await admin.listHolds(tenant: "acme", after: after, limit: 2)
                seen += page.holds.map(\.id)
                after = page.nextAfterHoldID.isEmpty ? nil : HoldID(page.nextAfterHoldID)
            } while after != nil
            #expect(seen == ["h1", "h2", "h3", "h4"])
            #expect(try await admin.listHolds(tenant: "acme", member: "ana").holds.map(\.id) == ["h2", "h4"])
            #expect(try await admin.listGrants(tenant: "acme").grants.count == 2)
            #expect(try await admin.listGrants(tenant: "acme", state: .voided).grants.map(\.id) == [voided])
            let tenants = try await admin.listTenants(limit: 2)
            #expect(tenants.tenants == ["acme", "globex"] && tenants.nextAfterTenant == "globex")
            #expect(try await admin.listTenants(after: "globex").tenants == ["initech"])
            #expect(await errorCode { try await admin.listHolds(tenant: "acme", limit: 1_001) } == .limitExceeded)

            // A tenant principal: its tenant's listings, another tenant's answer as an unknown one's, no tenant list.
            let web = try await LedgerClient.connect(server.pki.clientConfiguration("acme-web", port: server.port))
            #expect(try await web.listHolds(tenant: "acme").holds.count == 4)
            #expect(await errorCode { try await web.listHolds(tenant: "globex") } == .notFound)
            #expect(await errorCode { try await web.listGrants(tenant: "globex") } == .notFound)
            #expect(await errorCode { try await web.listTenants() } == .permissionDenied)
            await web.close()
            await admin.close()
        }
    }
}
