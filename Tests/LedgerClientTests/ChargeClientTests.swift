import LedgerClient
import LedgerCore
import LedgerServerTesting
import LedgerTesting
import LedgerWire
import Testing

@Suite("The Swift client's charge")
struct ChargeClientTests {
    @Test("charge by tokens and by items over TLS, refunded by its id; its errors are typed")
    func charge() async throws {
        let directory = TemporaryDirectory("client-charge")
        try await withServer(dataPath: directory.path) { server in
            let client = try await LedgerClient.connect(server.pki.clientConfiguration("admin", port: server.port))
            _ = try await client.createTenant("acme")
            _ = try await client.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 1_000))
            let byItems = try await client.charge(
                tenant: "acme", hold: "interview-1", items: [PricedItem(feature: "transcription", quantity: 37)], requestID: "c-1")
            #expect(byItems.charged == 296 && byItems.hold.state == .committed && byItems.hold.held == 0)
            let byTokens = try await client.charge(tenant: "acme", hold: "image-1", tokens: 100)
            #expect(byTokens.charged == 100)
            #expect(try await client.refund(tenant: "acme", hold: "image-1", amount: 100).refunded == 100)
            let balance = try await client.balance(tenant: "acme")
            #expect((balance.available, balance.reserved, balance.spent) == (704, 0, 296))
            // The same request id replays; a taken id and too large an amount are refused with details.
            let again = try await client.call(
                .command(
                    .charge("acme", ReserveRequest(hold: "interview-1", amount: .items([PricedItem(feature: "transcription", quantity: 37)]))),
                    "c-1"))
            #expect(again.replayed && again.charge.charged == 296)
            #expect(await errorCode { try await client.charge(tenant: "acme", hold: "image-1", tokens: 1) } == .alreadyExists)
            do {
                _ = try await client.charge(tenant: "acme", hold: "big", tokens: 5_000)
                Issue.record("a charge beyond the balance went through")
            } catch let error as LedgerClientError {
                #expect(error.ledgerError?.details == .balance(available: 704, requested: 5_000))
            }
            await client.close()
        }
    }
}
