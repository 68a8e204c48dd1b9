import LedgerServerTesting
import LedgerClient
import LedgerCore
import LedgerTesting
import LedgerWire
import Testing

@Suite("Access: principals, tenant isolation, refused connections")
struct AccessTests {
    /// Every call that names a tenant, made for `tenant`.
    static func meteringCalls(_ tenant: TenantID) -> [(String, LedgerCall)] {
        [
            ("reserve", .command(.reserve(tenant, ReserveRequest(hold: "h1", amount: .tokens(5))), RequestID("r-\(tenant)-1"))),
            ("commit", .command(.commit(tenant, "h0", amount: 1, final: true), RequestID("r-\(tenant)-2"))),
            ("release", .command(.release(tenant, "h0"), RequestID("r-\(tenant)-3"))),
            ("refund", .command(.refund(tenant, "h0", amount: 1), RequestID("r-\(tenant)-4"))),
            ("estimate", .estimate(tenant, member: nil, items: [PricedItem(feature: "transcription", quantity: 1)])),
            ("balance", .balance(tenant, member: nil)),
            ("history", .history(tenant, HistoryFilter())),
        ]
    }

    static func adminCalls(_ tenant: TenantID) -> [(String, LedgerCall)] {
        [
            ("create_tenant", .command(.createTenant(tenant, TenantSettings()), "a1")),
            ("configure_tenant", .command(.configureTenant(tenant, TenantSettingsChange(overdraftLimit: 5)), "a2")),
            ("set_member", .command(.setMember(tenant, "m", MemberSettings()), "a3")),
            ("grant", .command(.grant(tenant, GrantRequest(kind: .promo, amount: 5)), "a4")),
            ("purchase", .command(.purchase(tenant, moneyMinor: 1_000, note: ""), "a5")),
            ("void_grant", .command(.voidGrant(tenant, GrantID(1)), "a6")),
            ("refund_purchase", .command(.refundPurchase(tenant, GrantID(1)), "a7")),
            ("install_catalog", .installCatalog(.demo)),
        ]
    }

    @Test("a principal never sees another tenant: forbidden and unknown look the same")
    func isolation() async throws {
        let directory = TemporaryDirectory("server-access")
        try await withServer(dataPath: directory.path) { server in
            let admin = try await server.client()
            for tenant: TenantID in ["acme", "globex"] {
                _ = try await admin.createTenant(tenant)
                _ = try await admin.grant(tenant: tenant, GrantRequest(kind: .promo, amount: 1_000))
                _ = try await admin.reserve(tenant: tenant, hold: "h0", tokens: 10)
            }
            let globexBefore = try await admin.balance(tenant: "globex")

            // "meter" may meter acme and initech (which does not exist); globex exists but is not its.
            let meter = try await server.client("meter")
            let web = try await server.client("acme-web")
            for (name, call) in Self.meteringCalls("globex") {
                let forbidden = await rejection { try await meter.call(call) }
                let unknown = await rejection {
                    try await meter.call(Self.meteringCalls("initech").first { $0.0 == name }!.1)
                }
                #expect(forbidden?.code == .notFound, "\(name)")
                #expect(unknown?.code == .notFound, "\(name)")
                #expect(
                    forbidden?.message.replacingOccurrences(of: "globex", with: "X")
                        == unknown?.message.replacingOccurrences(of: "initech", with: "X"), "\(name)")
                #expect(await rejection { try await web.call(call) }?.code == .notFound, "\(name)")
            }
            // Their own tenant works for both.
            for client in [meter, web] {
                _ = try await client.balance(tenant: "acme")
                _ = try await client.history(tenant: "acme")
            }
            _ = try await web.reserve(tenant: "acme", hold: "web-1", tokens: 3)
            _ = try await meter.commit(tenant: "acme", hold: "web-1", amount: 3)
            // A service for every tenant meters globex; an admin call is still refused to it.
            let meterAll = try await server.client("meter-all")
            _ = try await meterAll.balance(tenant: "globex")
            for client in [meter, web, meterAll] {
                for (name, call) in Self.adminCalls("acme") {
                    #expect(await rejection { try await client.call(call) }?.code == .permissionDenied, "\(name)")
                }
                #expect(try await client.catalog().version == PriceCatalog.demo.version)
                _ = try await client.health()
            }
            #expect(try await web.health().role == .tenant)
            #expect(try await meter.health().role == .service)
            // Nothing the refused calls asked for happened.
            #expect(try await admin.balance(tenant: "globex") == globexBefore)
            for client in [admin, meter, web, meterAll] { await client.close() }
        }
    }

    @Test("connections without an acceptable certificate are refused; the server serves on")
    func refusedConnections() async throws {
        let directory = TemporaryDirectory("server-refusals")
        try await withServer(dataPath: directory.path) { server in
            let health = try RawConnection.frame(WireRequest(callID: 1, call: .health))
            // Each refused connection either fails outright or ends with no reply (under TLS 1.3 a
            // rejected client certificate surfaces on the client's first read, not at connect).
            func refused(_ principal: String, _ variant: RawConnection.TLSVariant) async -> Bool {
                do {
                    let connection = try await RawConnection.connect(port: server.port, principal: principal, variant: variant)
                    let outcome = try await connection.exchange(health, expecting: 1)
                    return outcome.responses.isEmpty && outcome.closed
                } catch {
                    return true
                }
            }
            #expect(await refused("admin", .noClientCertificate), "no client certificate")
            #expect(await refused("foreign-admin", .normal), "a certificate from another CA")
            #expect(await refused("admin", .tls12Only), "a TLS 1.2-only client")

            // A valid certificate whose name the access file does not know: unauthenticated, then closed.
            let stranger = try await RawConnection.connect(port: server.port, principal: "stranger")
            let strangerOutcome = try await stranger.exchange(health + health, expecting: 2)
            #expect(strangerOutcome.responses.map(\.error.code) == [.unauthenticated])
            #expect(strangerOutcome.responses.first?.callID == 1)
            #expect(strangerOutcome.closed)

            // The client library reports the same refusals as typed errors.
            var configuration = server.pki.clientConfiguration("admin", port: server.port)
            configuration.certificatePath = nil
            configuration.privateKeyPath = nil
            configuration.retry = RetryPolicy(attempts: 1)
            let noCertificate = try? await LedgerClient.connect(configuration)
            if let noCertificate {
                await #expect(throws: LedgerClientError.self) { try await noCertificate.health() }
                await noCertificate.close()
            }

            let admin = try await server.client()
            #expect(try await admin.health().status == "serving")
            await admin.close()
        }
    }
}
