import Glibc
import LedgerCore
import LedgerEngine
import LedgerStore
import LedgerTesting
import Testing

/// A clock tests move by hand.
final class ManualClock: LedgerClock, @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var current: LedgerTime
    init(_ start: LedgerTime) {
        current = start
        pthread_mutex_init(&mutex, nil)
    }
    func now() -> LedgerTime {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return current
    }
    func advance(_ duration: Duration) {
        pthread_mutex_lock(&mutex)
        current = current.adding(duration)
        pthread_mutex_unlock(&mutex)
    }
    /// Sets the time (a command's own, so that a shard stamps it as a replay would).
    func set(_ time: LedgerTime) {
        pthread_mutex_lock(&mutex)
        current = time
        pthread_mutex_unlock(&mutex)
    }
}

let start = LedgerTime(iso8601: "2026-07-01T00:00:00Z")!

@Suite struct ShardTests {
    func run(_ shard: LedgerShard, _ commands: [LedgerCommand]) async throws {
        for command in commands { _ = try await shard.execute(command.body, requestID: command.requestID) }
    }

    @Test func stateSurvivesAReopenWithAndWithoutSnapshots() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock(start)
        var generator = CommandGenerator(seed: 3)
        let commands = generator.setupCommands() + (0..<300).map { _ in generator.next() }
        let first = try LedgerShard(directory: directory.path, index: 0, clock: clock)
        try await run(first, commands)
        let expected = await first.stateCopy
        let lsn = await first.lastAppliedLSN
        #expect(lsn == UInt64(commands.count))
        await first.close(finalSnapshot: false)

        // No snapshot: the whole log replays.
        let second = try LedgerShard(directory: directory.path, index: 0, clock: clock)
        #expect(await second.stateCopy == expected)
        #expect(second.recovery.recordsReplayed == commands.count)
        #expect(second.recovery.snapshotLSN == 0)
        try await second.snapshot()
        _ = try await second.execute(.tick, requestID: nil)
        let afterTick = await second.stateCopy
        await second.close(finalSnapshot: false)

        // Snapshot plus a one-record tail.
        let third = try LedgerShard(directory: directory.path, index: 0, clock: clock)
        #expect(third.recovery.snapshotLSN == lsn)
        #expect(third.recovery.recordsReplayed == 1)
        #expect(await third.stateCopy == afterTick)
        await third.close()
    }

    @Test func idleTenantsAreFrozenByTheSweepAndThawedByCommandsAcrossAReopen() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock(start)
        let configuration = ShardConfiguration(idleTenantFreezeAfter: .milliseconds(40))
        let shard = try LedgerShard(directory: directory.path, index: 0, configuration: configuration, clock: clock)
        let tenants = (0..<20).map { TenantID("t\($0)") }
        for tenant in tenants {
            _ = try await shard.execute(.createTenant(tenant, TenantSettings()), requestID: RequestID("create-\(tenant)"))
            _ = try await shard.execute(.grant(tenant, GrantRequest(kind: .purchase, amount: 1_000)), requestID: RequestID("fund-\(tenant)"))
        }
        _ = try await shard.execute(.reserve("t0", ReserveRequest(hold: "open", amount: .tokens(5))), requestID: "hold")
        #expect(try await shard.read { $0.totals.frozenTenants } == 0)
        // Called as maintenance calls it: each call visits the share of the tenants the time since the
        // last one is of the period; idle for one to two periods, they are frozen (t0 holds tokens).
        var frozen = 0
        let deadline = ContinuousClock.now + .seconds(10)
        while frozen < 19, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            frozen += shard.freezeIdleTenants()
        }
        #expect(frozen == 19)
        #expect(try await shard.read { $0.totals } == (20, 19, 1, 5))
        let before = await shard.stateCopy
        // A command on a frozen tenant thaws it and is logged as any other; a replay answers the same.
        let first = try await shard.execute(.reserve("t7", ReserveRequest(hold: "h", amount: .tokens(30))), requestID: "r7")
        #expect(try await shard.read { $0.totals.frozenTenants } == 18)
        let replay = try await shard.execute(.reserve("t7", ReserveRequest(hold: "h", amount: .tokens(30))), requestID: "r7")
        #expect(replay.replayed && replay.outcome == first.outcome)
        #expect(before != (await shard.stateCopy))
        let expected = await shard.stateCopy
        await shard.close()

        // Reopened from its snapshot: the same ledger, every tenant without open holds frozen.
        let reopened = try LedgerShard(
            directory: directory.path, index: 0, configuration: ShardConfiguration(idleTenantFreezeAfter: nil), clock: clock)
        #expect(await reopened.stateCopy == expected)
        #expect(try await reopened.read { $0.totals } == (20, 18, 2, 35))
        _ = try await reopened.execute(.grant("t3", GrantRequest(kind: .purchase, amount: 10)), requestID: "more")
        // Without a period the sweep freezes nothing, however long tenants stay idle.
        try await Task.sleep(for: .milliseconds(50))
        #expect(reopened.freezeIdleTenants() == 0 && reopened.freezeIdleTenants() == 0)
        #expect(try await reopened.read { $0.totals.frozenTenants } == 17)
        await reopened.close()
    }

    @Test func snapshotsWaitForLogInProportionToTheStateNotJustForARecordCount() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock(start)
        let configuration = ShardConfiguration(snapshotEveryRecords: 10, snapshotLogPercent: 50)
        let shard = try LedgerShard(directory: directory.path, index: 0, configuration: configuration, clock: clock)
        // A large state: 300 tenants with a grant each.
        for index in 0..<300 {
            let tenant = TenantID("tenant-\(index)")
            _ = try await shard.execute(.createTenant(tenant, TenantSettings()), requestID: RequestID("c\(index)"))
            _ = try await shard.execute(.grant(tenant, GrantRequest(kind: .purchase, amount: 1_000)), requestID: RequestID("g\(index)"))
        }
        #expect(try await shard.snapshotIfDue())
        let firstLSN = await shard.latestSnapshotLSN
        // Ten small records reach the record count but are far from half the snapshot's size.
        for index in 0..<10 {
            _ = try await shard.execute(.release("tenant-0", HoldID("none-\(index)")), requestID: RequestID("r\(index)"))
        }
        #expect(try await shard.snapshotIfDue() == false)
        #expect(await shard.latestSnapshotLSN == firstLSN)
        // Enough log to make up half of it: due.
        var count = 10
        while try await shard.snapshotIfDue() == false {
            _ = try await shard.execute(.release("tenant-0", HoldID("none-\(count)")), requestID: RequestID("r\(count)"))
            count += 1
            #expect(count < 20_000)
        }
        // The snapshot holds about 600 requests' worth of state; each release record is about 40
        // bytes, so it took hundreds of them, not 10.
        #expect(count > 100)
        #expect(await shard.latestSnapshotLSN > firstLSN)
        for index in 0..<10 {
            _ = try await shard.execute(.release("tenant-0", HoldID("tail-\(index)")), requestID: RequestID("t\(index)"))
        }
        await shard.close(finalSnapshot: false)

        // After a restart the replayed tail (10 records) counts, and the loaded snapshot's size
        // sets the bar: not due.
        let reopened = try LedgerShard(directory: directory.path, index: 0, configuration: configuration, clock: clock)
        #expect(reopened.recovery.recordsReplayed == 10)
        #expect(try await reopened.snapshotIfDue() == false)
        await reopened.close(finalSnapshot: false)

        // Without the proportion the record count alone decides: the same tail makes it due.
        let plain = try LedgerShard(
            directory: directory.path, index: 0, configuration: ShardConfiguration(snapshotEveryRecords: 10, snapshotLogPercent: 0),
            clock: clock)
        #expect(try await plain.snapshotIfDue())
        await plain.close(finalSnapshot: false)
    }

    @Test func aDamagedNewestSnapshotFallsBackToThePreviousWithALongerReplay() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock(start)
        var generator = CommandGenerator(seed: 5)
        let shard = try LedgerShard(directory: directory.path, index: 0, clock: clock)
        try await run(shard, generator.setupCommands() + (0..<100).map { _ in generator.next() })
        try await shard.snapshot()
        let olderLSN = await shard.lastAppliedLSN
        try await run(shard, (0..<100).map { _ in generator.next() })
        try await shard.snapshot()
        try await run(shard, (0..<10).map { _ in generator.next() })
        let expected = await shard.stateCopy
        await shard.close(finalSnapshot: false)

        let snapshots = try FileSystem.list(directory.path).filter { $0.hasSuffix(".snap") }
        #expect(snapshots.count == 2)
        let newest = directory.path + "/" + snapshots.last!
        var bytes = try FileSystem.readFile(newest)
        bytes[bytes.count / 2] ^= 0xFF
        try FileSystem.writeFile(newest, bytes)

        let reopened = try LedgerShard(directory: directory.path, index: 0, clock: clock)
        #expect(reopened.recovery.snapshotLSN == olderLSN)
        #expect(reopened.recovery.skippedSnapshots.count == 1)
        #expect(reopened.recovery.recordsReplayed == 110)
        #expect(await reopened.stateCopy == expected)
        await reopened.close(finalSnapshot: false)
    }

    @Test func snapshotsDeleteSegmentsTheOlderSnapshotCovers() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock(start)
        var generator = CommandGenerator(seed: 8)
        let configuration = ShardConfiguration(segmentSizeMax: 4_096)
        let shard = try LedgerShard(directory: directory.path, index: 0, configuration: configuration, clock: clock)
        try await run(shard, generator.setupCommands())
        for _ in 0..<4 {
            for _ in 0..<150 { _ = try await shard.execute(generator.next().body, requestID: RequestID("r\(generator.int(0...UInt64.max))")) }
            try await shard.snapshot()
        }
        let expected = await shard.stateCopy
        await shard.close(finalSnapshot: false)
        let names = try FileSystem.list(directory.path)
        let segments = names.filter { $0.hasSuffix(".log") }
        #expect(names.filter { $0.hasSuffix(".snap") }.count == 2)
        // The oldest remaining segment starts at or before the older snapshot's LSN + 1.
        let olderSnapshot = UInt64(names.filter { $0.hasSuffix(".snap") }.first!.dropFirst(9).dropLast(5))!
        let oldestSegment = UInt64(segments.first!.dropFirst(4).dropLast(4))!
        #expect(oldestSegment <= olderSnapshot + 1)
        #expect(oldestSegment > 1)
        let reopened = try LedgerShard(directory: directory.path, index: 0, configuration: configuration, clock: clock)
        #expect(await reopened.stateCopy == expected)
        await reopened.close(finalSnapshot: false)
    }

    @Test func aStorageFailureStopsTheShardAndNothingIsAcknowledged() async throws {
        let directory = TemporaryDirectory()
        let faults = StorageFaults()
        let failures = FailureBox()
        let shard = try LedgerShard(
            directory: directory.path, index: 0, configuration: ShardConfiguration(faults: faults), clock: ManualClock(start),
            onFailure: { failures.add($0) })
        _ = try await shard.execute(.createTenant("acme", TenantSettings()), requestID: "c1")
        _ = try await shard.execute(.grant("acme", GrantRequest(kind: .purchase, amount: 100)), requestID: "g1")
        faults.failSyncs(after: 0)
        await #expect(throws: EngineError.self) {
            _ = try await shard.execute(.grant("acme", GrantRequest(kind: .purchase, amount: 50)), requestID: "g2")
        }
        #expect(failures.count == 1)
        #expect(await shard.isFailed)
        await #expect(throws: EngineError.self) { _ = try await shard.execute(.release("acme", "h"), requestID: "x") }
        await #expect(throws: EngineError.self) { _ = try await shard.read { try $0.balance("acme") } }
        await shard.close()
        // After a restart the acknowledged grant is there; the unacknowledged one may or may not be.
        let reopened = try LedgerShard(directory: directory.path, index: 0, clock: ManualClock(start))
        let balance = try await reopened.read { try $0.balance("acme") }
        #expect(balance.available == 100 || balance.available == 150)
        await reopened.close()
    }

    @Test func readsTickWhatFellDueFirst() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock(start)
        let shard = try LedgerShard(directory: directory.path, index: 0, clock: clock)
        _ = try await shard.execute(.createTenant("acme", TenantSettings()), requestID: "c1")
        _ = try await shard.execute(.grant("acme", GrantRequest(kind: .purchase, amount: 100)), requestID: "g1")
        _ = try await shard.execute(.reserve("acme", ReserveRequest(hold: "h", amount: .tokens(60), ttl: .seconds(60))), requestID: "r1")
        #expect(try await shard.read { try $0.balance("acme") }.available == 40)
        clock.advance(.seconds(61))
        #expect(try await shard.read { try $0.balance("acme") }.available == 100)
        let lsn = await shard.lastAppliedLSN
        await shard.close(finalSnapshot: false)
        #expect(lsn == 4)  // the tick was logged
    }
}

@Suite struct EngineTests {
    @Test func tenantsRouteToStableShardsAndTheDirectoryIsExclusive() async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/data"
        let engine = try LedgerEngine(path: path, shardCount: 3, clock: ManualClock(start))
        var placements: [TenantID: Int] = [:]
        for index in 0..<30 {
            let tenant = TenantID("tenant-\(index)")
            _ = try await engine.execute(.createTenant(tenant, TenantSettings()), requestID: "c")
            placements[tenant] = engine.shard(for: tenant).index
        }
        #expect(Set(placements.values).count == 3)
        _ = try await engine.execute(.installCatalog(.demo), requestID: nil)
        for shard in engine.shards { #expect(await shard.stateCopy.catalog?.version == "demo-2026-11") }
        #expect(throws: StorageError.self) { try LedgerEngine(path: path, shardCount: 3) }
        await engine.close()
        #expect(throws: StorageError.self) { try LedgerEngine(path: path, shardCount: 2) }
        let reopened = try LedgerEngine(path: path, shardCount: 3, clock: ManualClock(start))
        for (tenant, index) in placements {
            #expect(reopened.shard(for: tenant).index == index)
            #expect(await reopened.shard(for: tenant).stateCopy.tenants[tenant] != nil)
        }
        await reopened.close()
    }

    @Test func stableHashIsFNV1a() {
        // Published FNV-1a 64 test values.
        #expect(LedgerEngine.stableHash("") == 0xcbf2_9ce4_8422_2325)
        #expect(LedgerEngine.stableHash("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(LedgerEngine.stableHash("foobar") == 0x8594_4171_f739_67e8)
    }
}

final class FailureBox: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var errors: [StorageError] = []
    init() { pthread_mutex_init(&mutex, nil) }
    func add(_ error: StorageError) {
        pthread_mutex_lock(&mutex)
        errors.append(error)
        pthread_mutex_unlock(&mutex)
    }
    var count: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return errors.count
    }
}
