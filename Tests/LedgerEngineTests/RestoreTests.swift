import Glibc
import LedgerCore
import LedgerEngine
import LedgerStore
import LedgerTesting
import Testing

/// Point-in-time restore on real files: a backup taken under load while snapshots fire and segments
/// are archived, then restored to a moment after it from the archive.
@Suite struct RestoreTests {
    struct Ack: Sendable {
        var tenant: TenantID
        var requestID: RequestID
        var lsn: UInt64
        var time: LedgerTime
    }

    @Test("a backup plus the archive restores to a time in the middle: exactly the commands at or before it")
    func pointInTime() async throws {
        let directory = TemporaryDirectory("restore")
        var storage = BackupTests.storage
        storage.archiveDirectory = directory.path + "/archive"
        let engine = try LedgerEngine(path: directory.path + "/data", shardCount: 2, configuration: storage)
        let tenants = (0..<6).map { TenantID("t\($0)") }
        for tenant in tenants {
            _ = try await engine.execute(.createTenant(tenant, TenantSettings()), requestID: "create")
            _ = try await engine.execute(.grant(tenant, GrantRequest(kind: .purchase, amount: 1_000_000_000)), requestID: "fund")
        }
        let stop = BackupTests.Flag()
        // Commands from 3 tasks until stopped, each acknowledgement with its position and time.
        async let loaded: [Ack] = BackupTests.underLoad(engine, workers: 3, stop: stop) { worker, counter in
            let tenant = tenants[(worker * 2 + counter) % tenants.count]
            let id = RequestID("g-\(worker)-\(counter)")
            let result = try await engine.execute(.grant(tenant, GrantRequest(kind: .promo, amount: 1)), requestID: id)
            if counter % 20 == 0 { try await Task.sleep(for: .milliseconds(2)) }
            return [Ack(tenant: tenant, requestID: id, lsn: result.lsn, time: result.time)]
        }
        try await Task.sleep(for: .milliseconds(200))
        let backup: LedgerEngine.BackupReport
        do {
            backup = try await engine.backup(to: directory.path + "/backup")
            // Go on until every shard has logged a few segments' worth after the backup (16 KB
            // segments hold about 150 of these records), for at most 30 s.
            let deadline = ContinuousClock.now + .seconds(30)
            for shard in engine.shards {
                while await shard.lastAppliedLSN < backup.shards[shard.index].lastLSN + 600, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
        } catch {
            stop.set()
            _ = try? await loaded
            throw error
        }
        stop.set()
        let acks = try await loaded
        try await engine.maintain()
        await engine.close(finalSnapshot: false)

        // The data directory is gone; the backup and the archive remain. What the archive reaches:
        let everything = try Restore.run(
            backup: directory.path + "/backup", archive: storage.archiveDirectory, destination: directory.path + "/all")
        for (index, shard) in everything.shards.enumerated() {
            #expect(shard.availableLSN > backup.shards[index].lastLSN + 50, "shard \(index): the archive adds little")
        }
        // A moment in the middle of what came after the backup and was archived.
        let after = acks.filter { ack in
            let shard = Int(LedgerEngine.stableHash(ack.tenant.rawValue) % 2)
            return ack.lsn > backup.shards[shard].lastLSN && ack.lsn <= everything.shards[shard].availableLSN
        }.sorted { $0.time < $1.time }
        // (A #require: indexing an empty list would crash the whole test process.)
        try #require(after.count > 100, "only \(after.count) archived commands after the backup")
        let moment = after[after.count / 2].time
        let report = try Restore.run(
            backup: directory.path + "/backup", archive: storage.archiveDirectory, destination: directory.path + "/restored",
            untilTime: moment)
        #expect(report.tenants == 6)
        #expect(report.shards.allSatisfy { $0.throughTime.map { $0 <= moment } ?? false })

        let restored = try LedgerEngine(path: directory.path + "/restored", shardCount: 2)
        var inside = 0
        var outside = 0
        for ack in acks where ack.lsn <= everything.shards[restored.shard(for: ack.tenant).index].availableLSN {
            let state = await restored.shard(for: ack.tenant).stateCopy
            let present = state.tenants[ack.tenant]?.rememberedOutcome(ack.requestID) != nil
            if ack.time <= moment {
                #expect(present, "\(ack.requestID) at \(ack.time) (before the moment) is missing")
                inside += 1
            } else {
                #expect(!present, "\(ack.requestID) at \(ack.time) (after the moment) was restored")
                outside += 1
            }
        }
        #expect(inside > 50 && outside > 50, "\(inside) before the moment, \(outside) after")
        // The restored ledger takes new commands after its snapshot.
        _ = try await restored.execute(.grant("t0", GrantRequest(kind: .promo, amount: 5)), requestID: "after-restore")
        await restored.close(finalSnapshot: false)

        // A new directory each time; the backup must be one.
        #expect(throws: LedgerError.self) {
            _ = try Restore.run(backup: directory.path + "/backup", archive: nil, destination: directory.path + "/restored")
        }
        #expect(throws: LedgerError.self) {
            _ = try Restore.run(backup: directory.path + "/nothing", archive: nil, destination: directory.path + "/x")
        }
        // A cut before the backup's snapshot cannot be restored from it.
        #expect(throws: LedgerError.self) {
            _ = try Restore.run(
                backup: directory.path + "/backup", archive: nil, destination: directory.path + "/early",
                untilTime: LedgerTime(millisecondsSinceEpoch: 0))
        }
        #expect(!FileSystem.exists(directory.path + "/early"))
    }

    @Test("with an archive, a snapshot deletes a finished segment only once it is archived")
    func segmentsWaitForTheArchive() async throws {
        let directory = TemporaryDirectory("archive")
        var storage = BackupTests.storage
        storage.archiveDirectory = directory.path + "/archive"
        try FileSystem.makeDirectory(directory.path + "/shard-000")
        let shard = try LedgerShard(directory: directory.path + "/shard-000", index: 0, configuration: storage)
        func segments(_ path: String) throws -> [String] { try FileSystem.list(path).filter { $0.hasPrefix("wal-") }.sorted() }
        _ = try await shard.execute(.createTenant("acme", TenantSettings()), requestID: "create")
        for round in 0..<3 {
            for index in 0..<150 {
                _ = try await shard.execute(.grant("acme", GrantRequest(kind: .promo, amount: 1, note: String(repeating: "n", count: 100))), requestID: RequestID("g\(round)-\(index)"))
            }
            _ = try await shard.snapshot()
        }
        let written = try segments(directory.path + "/shard-000")
        #expect(written.count > 3, "\(written)")
        // Nothing archived yet: every segment is still there, though snapshots cover them.
        #expect(try segments(storage.archiveDirectory! + "/shard-000").isEmpty)
        let archived = try shard.archiveFinishedSegments()
        #expect(archived == written.count - 1)
        #expect(try segments(storage.archiveDirectory! + "/shard-000") == Array(written.dropLast()))
        // Now a snapshot may delete them.
        _ = try await shard.execute(.grant("acme", GrantRequest(kind: .promo, amount: 1)), requestID: "last")
        _ = try await shard.snapshot()
        #expect(try segments(directory.path + "/shard-000").count < written.count)
        await shard.close(finalSnapshot: false)
    }
}
