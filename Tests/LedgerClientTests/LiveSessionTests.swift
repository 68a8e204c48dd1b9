import LedgerClient
import LedgerCore
import LedgerServerTesting
import LedgerTesting
import LedgerWire
import Testing

@Suite("Holds that grow and last, over TLS")
struct LiveSessionTests {
    /// docs/semantics.md's worked example through the Swift client and the real server: an
    /// interview at 8 tokens a minute, the hold raised and extended each minute until a raise is
    /// refused by the member's budget, then what was used committed.
    @Test("a live session priced per minute stops at the refused raise and commits what was used")
    func liveSession() async throws {
        let directory = TemporaryDirectory("client-live-session")
        try await withServer(dataPath: directory.path) { server in
            let client = try await LedgerClient.connect(server.pki.clientConfiguration("admin", port: server.port))
            _ = try await client.createTenant("acme")
            _ = try await client.grant(tenant: "acme", GrantRequest(kind: .purchase, amount: 1_000))
            _ = try await client.setMember(
                tenant: "acme", member: "ana", settings: MemberSettings(budget: Budget(cap: 100, period: PeriodRule(unit: .day))))
            let perMinute = try await client.estimate(tenant: "acme", items: [PricedItem(feature: "transcription", quantity: 1)]).total
            #expect(perMinute == 8)
            _ = try await client.reserve(tenant: "acme", hold: "interview", tokens: perMinute, member: "ana", ttl: .seconds(120))
            var minutes: UInt64 = 1
            while true {
                do {
                    let raised = try await client.increaseHold(tenant: "acme", hold: "interview", tokens: perMinute)
                    minutes += 1
                    #expect(raised.increased == perMinute && raised.hold.amount == perMinute * minutes)
                    let extended = try await client.extendHold(tenant: "acme", hold: "interview", ttl: .seconds(120))
                    #expect(extended.hold.expiresAtMs > raised.hold.createdAtMs)
                } catch {
                    let refusal = try #require((error as? LedgerClientError)?.ledgerError)
                    #expect(refusal.code == .budgetExceeded)
                    guard case .budget(let remaining, let cap, _)? = refusal.details else {
                        Issue.record("no budget details: \(refusal)")
                        break
                    }
                    #expect((remaining, cap) == (4, 100))
                    break
                }
                if minutes > 20 { Issue.record("the budget never refused a raise"); break }
            }
            #expect(minutes == 12)
            let committed = try await client.commit(tenant: "acme", hold: "interview", amount: perMinute * minutes)
            #expect((committed.captured, committed.released) == (96, 0))
            let balance = try await client.balance(tenant: "acme", member: "ana")
            #expect((balance.available, balance.reserved, balance.spent, balance.memberBudget.spent) == (904, 0, 96, 96))
            #expect(await errorCode { try await client.increaseHold(tenant: "acme", hold: "interview", tokens: 1) } == .alreadyCommitted)
            #expect(await errorCode { try await client.extendHold(tenant: "acme", hold: "nope", ttl: .seconds(60)) } == .notFound)
            await client.close()
        }
    }
}
