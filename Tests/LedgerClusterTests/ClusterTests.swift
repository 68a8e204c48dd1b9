// Cluster mode against a real PostgreSQL primary with a synchronous standby (scripts/postgres-pair,
// started by scripts/test). Serialized: one test stops the standby, and leases are timed.

import Foundation
import LedgerCore
import LedgerStore
import LedgerTesting
import PostgresNIO
import Synchronization
import Testing

@testable import LedgerCluster
@testable import LedgerEngine

@Suite(.serialized)
struct ClusterTests {
    let pair: PostgresPair

    init() throws { pair = try PostgresPair.fromEnvironment() }

    @Test func twoNodesRaceForAShardAndExactlyOneWinsEachEpoch() async throws {
        let url = try await pair.freshCluster(shards: 1)
        let a = try ClusterDatabase(url: url, logger: quietLogger)
        let b = try ClusterDatabase(url: url, logger: quietLogger)
        defer {
            a.shutdown()
            b.shutdown()
        }
        for round in 1...20 {
            async let takenByA = a.acquire(shard: 0, nodeID: "a", address: "a:1", lease: .seconds(60))
            async let takenByB = b.acquire(shard: 0, nodeID: "b", address: "b:1", lease: .seconds(60))
            let winners = [try await takenByA, try await takenByB].compactMap { $0 }
            #expect(winners.count == 1, "round \(round): \(winners.count) winners")
            let winner = try #require(winners.first)
            #expect(winner.epoch == UInt64(round))
            // Held: nobody takes it until it is released (or its lease runs out).
            #expect(try await a.acquire(shard: 0, nodeID: "a", address: "a:1", lease: .seconds(60)) == nil)
            try await (winner.owner == "a" ? a : b).release(shard: 0, epoch: winner.epoch)
        }
        #expect(try await a.heads().first?.epoch == 20)
    }

    @Test func aNodeThatLostItsLeaseAcknowledgesNothingMore() async throws {
        let url = try await pair.freshCluster(shards: 2)
        let a = try await InProcessNode(url, id: "a")
        try await a.node.round()
        #expect(a.engine.shards.count == 2)
        let tenant: TenantID = "acme"
        _ = try await a.engine.execute(.createTenant(tenant, TenantSettings()), requestID: "c1")
        _ = try await a.engine.execute(.grant(tenant, GrantRequest(kind: .purchase, amount: 1_000)), requestID: "g1")
        let first = try await a.engine.execute(.reserve(tenant, ReserveRequest(hold: "h1", amount: .tokens(10))), requestID: "r1")
        guard case .success(.reserved) = first.outcome else { Issue.record("reserve: \(first.outcome)"); return }

        // A stops renewing (as if paused); once its lease ran out, B takes both shards.
        try await Task.sleep(for: .milliseconds(1_300))
        let b = try await InProcessNode(url, id: "b")
        try await b.node.round()
        #expect(b.engine.shards.count == 2)
        let shard = a.engine.shardIndex(for: tenant)
        let epochB = try #require(try await b.database.heads()[shard].epoch)
        #expect(epochB == 2)
        // B loaded what A acknowledged.
        #expect(try await b.engine.route(tenant).read { try $0.balance(tenant) }.reserved == 10)

        // A resumes: its read is refused (its lease may be gone), and its write is fenced.
        await #expect(throws: EngineError.self) { _ = try await a.engine.route(tenant).read { try $0.balance(tenant) } }
        do {
            let late = try await a.engine.execute(.reserve(tenant, ReserveRequest(hold: "late", amount: .tokens(5))), requestID: "r2")
            Issue.record("a fenced node acknowledged \(late.outcome)")
        } catch {
            #expect("\(error)".contains("fenced"), "\(error)")
        }
        // It dropped the shard; nothing of epoch 1 was written after epoch 2 began.
        #expect(throws: LedgerError.self) { _ = try a.engine.route(tenant) }
        #expect(a.engine.placement!.figures.withLock { ($0.lost, $0.fenced) } == (1, 1))
        let epochs = try await logEpochs(url, shard: shard)
        #expect(epochs.map(\.epoch) == epochs.map(\.epoch).sorted())
        #expect(try await b.engine.route(tenant).read { state in try state.openHolds(tenant, member: nil, after: nil, limit: 10) }
            .holds.map(\.id) == ["h1"])
        await b.stop()
        await a.stop()
    }

    /// The checker against a sabotaged fence: with the epoch left out of `tokenledger_append`, an
    /// owner that lost its lease still lands a write (its LSN still matches: the new owner has not
    /// written yet), and `HistoryChecker.checkLog` holds that batch against the take-overs and
    /// calls it a deposed write. With the real fence the same steps leave a clean log.
    @Test(arguments: [false, true]) func theCheckerCatchesADeposedWriteWhenTheFenceIgnoresTheEpoch(sabotaged: Bool) async throws {
        let url = try await pair.freshCluster(shards: 1)
        let a = try await InProcessNode(url, id: "a")
        if sabotaged {
            try await a.database.client.query(
                """
                DO $$ BEGIN EXECUTE replace(pg_get_functiondef('tokenledger_append'::regproc), ' AND epoch = p_epochs[i]', ''); END $$
                """, logger: quietLogger)
            let definition = try await a.database.client.query(
                "SELECT pg_get_functiondef('tokenledger_append'::regproc)", logger: quietLogger
            ).collect().first?.decode(String.self) ?? ""
            #expect(!definition.contains("epoch = p_epochs"))
        }
        try await a.node.round()
        _ = try await a.engine.execute(.createTenant("acme", TenantSettings()), requestID: "c1")
        _ = try await a.engine.execute(.grant("acme", GrantRequest(kind: .purchase, amount: 100)), requestID: "g1")
        try await Task.sleep(for: .milliseconds(1_300))
        let b = try await InProcessNode(url, id: "b")
        try await b.node.round()
        let late = try? await a.engine.execute(.reserve("acme", ReserveRequest(hold: "late", amount: .tokens(5))), requestID: "r2")
        #expect((late != nil) == sabotaged, "the late write landed: \(late != nil)")
        let violations = HistoryChecker.checkLog(try await logBatches(url), acquisitions: try await acquisitions(url), history: [], shardCount: 1)
        #expect(Set(violations.map(\.kind)) == (sabotaged ? [.deposedWrite] : []), "\(violations)")
        await b.stop()
        await a.stop()
    }

    @Test func writesWaitForTheSynchronousStandbyAndNothingAcknowledgedIsLost() async throws {
        let url = try await pair.freshCluster(shards: 1)
        // A long lease: the stall below must not look like a lost node.
        let node = try await InProcessNode(url, id: "a", lease: .seconds(30), margin: .seconds(5))
        try await node.node.round()
        _ = try await node.engine.execute(.createTenant("acme", TenantSettings()), requestID: "c1")
        try pair.script("stop-standby")
        let answered = Atomic<Bool>(false)
        let call = Task {
            let result = try await node.engine.execute(.grant("acme", GrantRequest(kind: .purchase, amount: 500)), requestID: "g1")
            answered.store(true, ordering: .sequentiallyConsistent)
            return result
        }
        try await Task.sleep(for: .seconds(2))
        let early = answered.load(ordering: .sequentiallyConsistent)
        #expect(!early, "a write was acknowledged without the synchronous standby")
        try pair.script("start-standby")
        let result = try await call.value
        guard case .success(.granted) = result.outcome else { Issue.record("grant: \(result.outcome)"); return }
        await node.stop()
        let replayed = try await replayAll(url)
        #expect(try replayed[0].state.balance("acme").available == 500)
    }

    @Test func snapshotsGoToPostgresAndAHandOverLoadsTheSameState() async throws {
        let url = try await pair.freshCluster(shards: 1)
        let a = try await InProcessNode(url, id: "a", lease: .seconds(10), margin: .seconds(2))
        try await a.node.round()
        let shard = try #require(a.engine.shards.first)
        _ = try await shard.execute(.createTenant("acme", TenantSettings()), requestID: "c")
        _ = try await shard.execute(.grant("acme", GrantRequest(kind: .purchase, amount: 1_000_000)), requestID: "g")
        for round in 0..<3 {
            for index in 0..<40 {
                _ = try await shard.execute(.charge("acme", ReserveRequest(hold: HoldID("c\(round)-\(index)"), amount: .tokens(3))), requestID: nil)
            }
            #expect(try await shard.snapshot())
        }
        _ = try await shard.execute(.charge("acme", ReserveRequest(hold: "tail", amount: .tokens(7))), requestID: nil)
        let expected = await shard.stateCopy.binaryEncoded
        let head = try #require(try await a.database.heads().first)
        #expect(head.snapshotLSN == 122)
        // Only the log after the older kept snapshot stays.
        let rows = try await logEpochs(url, shard: 0)
        #expect(rows.first.map { $0.first > 1 } == true, "\(rows.prefix(3))")
        await a.node.handOver()

        let b = try await InProcessNode(url, id: "b")
        try await b.node.round()
        let taken = try #require(b.engine.shards.first)
        #expect(taken.recovery.snapshotLSN == 122)
        #expect(taken.recovery.recordsReplayed == 1)
        #expect(await taken.stateCopy.binaryEncoded == expected)
        await b.node.handOver()

        // The newest snapshot damaged: the next owner loads the one before it and the log after it.
        try await b.database.client.query(
            "UPDATE tokenledger_shard_snapshot SET body = '\\x00' WHERE shard = 0 AND lsn = 122", logger: quietLogger)
        let c = try await InProcessNode(url, id: "c")
        try await c.node.round()
        let retaken = try #require(c.engine.shards.first)
        #expect(retaken.recovery.snapshotLSN == 82)
        #expect(retaken.recovery.skippedSnapshots.count == 1)
        #expect(retaken.recovery.recordsReplayed == 41)
        #expect(await retaken.stateCopy.binaryEncoded == expected)
        await c.stop()
        b.database.shutdown()
        a.database.shutdown()
    }
}
