import LedgerServerTesting
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

    /// The event loop that reads a metering call syncs its record itself (the group commit of the
    /// loop), so the reply goes out without a hand-off to the log's writer thread and back. Calls
    /// made one after another each need their own sync: nearly all of them must be the loop's.
    @Test("metering calls are made durable by the event loop that read them")
    func eventLoopGroupCommit() async throws {
        let directory = TemporaryDirectory("server-loop-sync")
        try await withServer(dataPath: directory.path, shards: 1) { server in
            let client = try await server.client()
            _ = try await client.createTenant("acme")
            _ = try await client.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 10_000))
            let shard = server.engine.shards[0]
            let before = await shard.walStatistics
            let rounds = 100
            for round in 0..<rounds {
                _ = try await client.reserve(tenant: "acme", hold: HoldID("h\(round)"), tokens: 10)
                _ = try await client.commit(tenant: "acme", hold: HoldID("h\(round)"), amount: 7)
            }
            let balance = try await client.balance(tenant: "acme")
            #expect(balance.spent == UInt64(7 * rounds))
            let after = await shard.walStatistics
            let calls = UInt64(2 * rounds)
            #expect(after.records - before.records >= calls)
            // The maintenance tick's own records (none due here) would be the writer thread's.
            #expect(after.callerSyncs - before.callerSyncs >= calls * 9 / 10)
            #expect(after.syncs - before.syncs <= after.records - before.records)
            await client.close()
        }
    }
}
