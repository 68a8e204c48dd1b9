import LedgerClient
import LedgerCore
import LedgerTesting
import LedgerWire
import Testing

@Suite("Log positions in replies")
struct LSNTests {
    @Test("commands carry their record's position, reads the position they include, in per-tenant order")
    func positions() async throws {
        let directory = TemporaryDirectory("server-lsn")
        try await withServer(dataPath: directory.path) { server in
            let client = try await server.client()
            _ = try await client.createTenant("acme")
            _ = try await client.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 100))
            let reserve = try await client.call(.command(.reserve("acme", ReserveRequest(hold: "h", amount: .tokens(10))), "lsn-r"))
            let commit = try await client.call(.command(.commit("acme", "h", amount: 8, final: true), "lsn-c"))
            #expect(reserve.lsn > 0 && commit.lsn > reserve.lsn)
            // A replay is logged too (it changes nothing): a later position, the first result.
            let replay = try await client.call(.command(.commit("acme", "h", amount: 8, final: true), "lsn-c"))
            #expect(replay.replayed && replay.lsn > commit.lsn && replay.commit == commit.commit)
            // A read shows everything up to its position.
            let balance = try await client.call(.balance("acme", member: nil))
            #expect(balance.lsn >= replay.lsn && balance.balance.spent == 8)
            #expect(try await client.call(.health).lsn == 0)
            await client.close()
        }
    }
}
