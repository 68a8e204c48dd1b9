import Glibc
import LedgerCore
import LedgerEngine
import LedgerStore
import LedgerTesting
import Synchronization
import Testing

/// Online backups on real files, taken while commands run and snapshots fire on their own.
@Suite struct BackupTests {
    struct Ack: Sendable {
        var tenant: TenantID
        var requestID: RequestID
        var lsn: UInt64
    }

    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .relaxed) }
        func set() { value.store(true, ordering: .relaxed) }
    }

    /// Small segments and frequent snapshots, so that segments rotate and snapshots delete old
    /// files while the backup copies.
    static let storage = ShardConfiguration(segmentSizeMax: 16 << 10, snapshotEveryRecords: 40, snapshotLogPercent: 0)

    /// Runs `step(worker, counter)` in a loop on `workers` tasks, and maintenance every 5 ms,
    /// until `stop` is set; returns what the steps returned, in no particular order.
    static func underLoad<Result: Sendable>(
        _ engine: LedgerEngine, workers: Int, stop: Flag, _ step: @escaping @Sendable (Int, Int) async throws -> [Result]
    ) async throws -> [Result] {
        try await withThrowingTaskGroup(of: [Result].self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var results: [Result] = []
                    var counter = 0
                    while !stop.isSet {
                        counter += 1
                        results += try await step(worker, counter)
                    }
                    return results
                }
            }
            group.addTask {
                while !stop.isSet {
                    try await engine.maintain()
                    try await Task.sleep(for: .milliseconds(5))
                }
                return []
            }
            var all: [Result] = []
            for try await results in group { all += results }
            return all
        }
    }

    /// Reserve/commit pairs on `tenants` from 4 tasks until `stop` is set: every acknowledged command.
    static func load(_ engine: LedgerEngine, tenants: [TenantID], stop: Flag) async throws -> [Ack] {
        try await underLoad(engine, workers: 4, stop: stop) { worker, counter in
            let tenant = tenants[(worker + counter) % tenants.count]
            let hold = HoldID("w\(worker)-\(counter)")
            let reserve = RequestID("r-\(worker)-\(counter)")
            let reserved = try await engine.execute(.reserve(tenant, ReserveRequest(hold: hold, amount: .tokens(10))), requestID: reserve)
            let commit = RequestID("c-\(worker)-\(counter)")
            let committed = try await engine.execute(.commit(tenant, hold, amount: 8, final: true), requestID: commit)
            return [Ack(tenant: tenant, requestID: reserve, lsn: reserved.lsn), Ack(tenant: tenant, requestID: commit, lsn: committed.lsn)]
        }
    }

    @Test("a backup taken under load while snapshots fire recovers to exactly what it reports")
    func backupUnderLoad() async throws {
        let directory = TemporaryDirectory("backup-load")
        let engine = try LedgerEngine(path: directory.path + "/data", shardCount: 2, configuration: Self.storage)
        let tenants = (0..<6).map { TenantID("t\($0)") }
        for tenant in tenants {
            _ = try await engine.execute(.createTenant(tenant, TenantSettings()), requestID: "create")
            _ = try await engine.execute(.grant(tenant, GrantRequest(kind: .purchase, amount: 1_000_000_000)), requestID: "fund")
        }
        let stop = Flag()
        async let loaded = Self.load(engine, tenants: tenants, stop: stop)
        // Enough traffic before and after the backup to see both sides, whatever the machine's
        // speed (at most 30 s of waiting).
        let deadline = ContinuousClock.now + .seconds(30)
        func waitForEachShard(past positions: [UInt64]) async throws {
            for shard in engine.shards {
                while await shard.lastAppliedLSN < positions[shard.index], ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
        }
        let report: LedgerEngine.BackupReport
        do {
            try await waitForEachShard(past: [300, 300])
            report = try await engine.backup(to: directory.path + "/backup")
            try await waitForEachShard(past: report.shards.map { $0.lastLSN + 300 })
        } catch {
            stop.set()
            _ = try? await loaded
            throw error
        }
        stop.set()
        let acks = try await loaded
        #expect(report.shards.count == 2)
        #expect(report.shards.allSatisfy { $0.snapshotLSN > 0 && $0.lastLSN >= $0.snapshotLSN })
        #expect(report.tenants == 6)
        // The data directory and the backup are on one filesystem: whole files are linked.
        #expect(report.shards.reduce(0) { $0 + $1.filesLinked } > 0)

        // The backup opens as a ledger (recovery audits it); every command acknowledged at or
        // before a shard's last LSN is in it, and none after.
        let restored = try LedgerEngine(path: directory.path + "/backup", shardCount: 2)
        var inside = 0
        var outside = 0
        for ack in acks {
            let shard = engine.shard(for: ack.tenant)
            let state = await restored.shards[shard.index].stateCopy
            let remembered = state.tenants[ack.tenant]?.rememberedOutcome(ack.requestID) != nil
            if ack.lsn <= report.shards[shard.index].lastLSN {
                #expect(remembered, "\(ack.requestID) at LSN \(ack.lsn) is missing from the backup")
                inside += 1
            } else {
                #expect(!remembered, "\(ack.requestID) at LSN \(ack.lsn) is in a backup that ends before it")
                outside += 1
            }
        }
        #expect(inside > 50 && outside > 50, "\(inside) commands before the backup, \(outside) after")
        // Snapshots went on during the load: the data directory moved on past the backup.
        for shard in engine.shards { #expect(await shard.latestSnapshotLSN > report.shards[shard.index].snapshotLSN) }
        await restored.close(finalSnapshot: false)
        await engine.close(finalSnapshot: false)
    }

    /// Removes a backup directory (files, shard folders, itself).
    static func removeTree(_ path: String) {
        for name in (try? FileSystem.list(path)) ?? [] {
            let child = path + "/" + name
            for inner in (try? FileSystem.list(child)) ?? [] { _ = unlink(child + "/" + inner) }
            if rmdir(child) != 0 { _ = unlink(child) }
        }
        _ = rmdir(path)
    }

    @Test("a backup to another filesystem copies; bad directories are typed errors")
    func copiesAndRefusals() async throws {
        let directory = TemporaryDirectory("backup-copy")
        let engine = try LedgerEngine(path: directory.path + "/data", shardCount: 1, configuration: Self.storage)
        _ = try await engine.execute(.createTenant("acme", TenantSettings()), requestID: "create")
        _ = try await engine.execute(.grant("acme", GrantRequest(kind: .purchase, amount: 500)), requestID: "fund")

        func code(_ path: String) async -> ErrorCode? {
            do {
                _ = try await engine.backup(to: path)
                return nil
            } catch {
                return (error as? LedgerError)?.code
            }
        }
        #expect(await code("relative/dir") == .invalidArgument)
        #expect(await code(directory.path + "/data") == .alreadyExists)
        #expect(await code(directory.path + "/no/such/parent/backup") == .notFound)

        // /dev/shm is a tmpfs: another filesystem than the data directory's, where links fail.
        var data = stat()
        var shm = stat()
        if stat(directory.path, &data) == 0, stat("/dev/shm", &shm) == 0, data.st_dev != shm.st_dev {
            let target = "/dev/shm/tokenledger-backup-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            defer { Self.removeTree(target) }
            let report = try await engine.backup(to: target)
            #expect(report.shards[0].filesLinked == 0)
            #expect(report.shards[0].filesCopied >= 2)
            #expect(report.tenants == 1)
            let restored = try LedgerEngine(path: target, shardCount: 1)
            #expect(try await restored.shards[0].read { try $0.balance("acme").available } == 500)
            await restored.close(finalSnapshot: false)
        }
        await engine.close(finalSnapshot: false)
    }
}
