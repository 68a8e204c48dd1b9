import Glibc
import LedgerStore
import LedgerTesting
import Testing

@Suite struct SnapshotTests {
    @Test func snapshotsRoundTripAndOnlyTheTwoNewestAreKept() throws {
        let directory = TemporaryDirectory()
        let store = SnapshotStore(directory: directory.path)
        #expect(try store.loadNewest() == nil)
        for lsn in [10, 20, 30] as [UInt64] { try store.write(lsn: lsn, body: body(lsn, size: 1_000)) }
        #expect(try store.snapshotLSNs() == [30, 20])
        let newest = try store.loadNewest()
        #expect(newest?.lsn == 30)
        #expect(newest.map { Array($0.body) } == body(30, size: 1_000))
        #expect(newest?.skipped == [])
    }

    @Test func aDamagedNewestSnapshotFallsBackToThePreviousOne() throws {
        let directory = TemporaryDirectory()
        let store = SnapshotStore(directory: directory.path)
        try store.write(lsn: 10, body: body(10, size: 500))
        try store.write(lsn: 20, body: body(20, size: 500))
        let newestPath = directory.path + "/snapshot-00000000000000000020.snap"
        let pristine = try FileSystem.readFile(newestPath)
        // Every kind of damage: a flipped bit anywhere, a truncation anywhere.
        for offset in stride(from: 0, to: pristine.count, by: 7) {
            var flipped = pristine
            flipped[offset] ^= 0x01
            try FileSystem.writeFile(newestPath, flipped)
            let loaded = try store.loadNewest()
            #expect(loaded?.lsn == 10, "flip at \(offset)")
            #expect(loaded?.skipped.count == 1)
            try FileSystem.writeFile(newestPath, Array(pristine.prefix(offset)))
            #expect(try store.loadNewest()?.lsn == 10, "cut at \(offset)")
        }
        // Both damaged: refuse rather than silently start from nothing.
        try FileSystem.writeFile(directory.path + "/snapshot-00000000000000000010.snap", [1, 2, 3])
        #expect(throws: StorageError.self) { try store.loadNewest() }
    }

    /// A body handed over in parts makes the same file, byte for byte, as the body whole (the
    /// header written last, the checksum combined), whatever the parts' sizes; it loads back.
    @Test func aBodyWrittenInPartsMakesTheSameFileAsTheBodyWhole() throws {
        let directory = TemporaryDirectory()
        let whole = SnapshotStore(directory: directory.path + "/whole")
        let parts = SnapshotStore(directory: directory.path + "/parts")
        try FileSystem.makeDirectory(whole.directory)
        try FileSystem.makeDirectory(parts.directory)
        var random = SeededGenerator(state: 7)
        for (lsn, size) in [(1, 0), (2, 1), (3, 5_000), (4, 70_001)] as [(UInt64, Int)] {
            let bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            try whole.write(lsn: lsn, body: bytes)
            let written = try parts.write(lsn: lsn) { sink throws(StorageError) in
                var offset = 0
                while offset < bytes.count {
                    let count = min(bytes.count - offset, Int(random.next() % 3_000))
                    try sink.append(Array(bytes[offset..<(offset + count)]))
                    offset += count
                }
            }
            #expect(written.bodyBytes == size)
            #expect(try FileSystem.readFile(parts.path(lsn: lsn)) == FileSystem.readFile(whole.path(lsn: lsn)), "size \(size)")
            #expect(try parts.loadNewest().map { Array($0.body) } == bytes)
        }
    }

    /// A write that fails partway through a streamed body leaves the snapshots as they were: no new
    /// `.snap`, the previous newest still loaded, the temporary file cleaned up at the next start.
    @Test func aWriteFailingPartwayThroughAStreamedBodyLeavesNoSnapshot() throws {
        let directory = TemporaryDirectory()
        let faults = StorageFaults()
        let store = SnapshotStore(directory: directory.path, faults: faults)
        try store.write(lsn: 10, body: body(10, size: 500))
        faults.failWrites(after: 3, errno: ENOSPC)
        #expect(throws: StorageError.self) {
            try store.write(lsn: 20) { sink throws(StorageError) in
                for part in 0..<10 { try sink.append(body(UInt64(part), size: 100)) }
            }
        }
        #expect(try store.snapshotLSNs() == [10])
        #expect(try store.loadNewest()?.lsn == 10)
        #expect(try store.removeTemporaries() == 1)
    }

    @Test func leftoverTemporaryFilesAreRemoved() throws {
        let directory = TemporaryDirectory()
        let store = SnapshotStore(directory: directory.path)
        try FileSystem.writeFile(directory.path + "/snapshot-00000000000000000099.snap.tmp", [1, 2, 3])
        #expect(try store.removeTemporaries() == 1)
        #expect(try FileSystem.list(directory.path).isEmpty)
    }
}

@Suite struct FailStopTests {
    final class FailureRecorder: @unchecked Sendable {
        private let lock = NSLockLike()
        private var errors: [StorageError] = []
        func record(_ error: StorageError) { lock.withLock { errors.append(error) } }
        var recorded: [StorageError] { lock.withLock { errors } }
    }

    func openLog(_ directory: String, faults: StorageFaults, recorder: FailureRecorder) throws -> WriteAheadLog {
        try WriteAheadLog(
            directory: directory, recovered: try WALRecovery.recover(directory: directory, afterLSN: 0), faults: faults,
            onFailure: { recorder.record($0) })
    }

    @Test(arguments: ["write", "sync"])
    func anIOErrorStopsTheLogAndNothingIsAcknowledged(failing: String) async throws {
        let directory = TemporaryDirectory()
        let faults = StorageFaults()
        let recorder = FailureRecorder()
        let log = try openLog(directory.path, faults: faults, recorder: recorder)
        // Let the segment be created and a few batches through.
        for index in 1...5 { try await log.waitDurable(try log.append(body(UInt64(index)))) }
        if failing == "write" { faults.failWrites(after: 0, errno: ENOSPC) } else { faults.failSyncs(after: 0, errno: EIO) }
        let lsn = try log.append(body(6))
        await #expect(throws: StorageError.self) { try await log.waitDurable(lsn) }
        #expect(log.durableLSN == 5)
        #expect(recorder.recorded.count == 1)
        // Stopped for good: no later append, no later acknowledgement.
        #expect(throws: StorageError.self) { try log.append(body(7)) }
        await #expect(throws: StorageError.self) { try await log.waitDurable(6) }
        log.close()
        // What was acknowledged is all there (a failed write may leave a torn tail, cut on recovery).
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(recovered.records.map(\.lsn).prefix(5) == [1, 2, 3, 4, 5])
    }

    @Test func failureDuringSegmentCreationIsFailStopToo() async throws {
        let directory = TemporaryDirectory()
        let faults = StorageFaults()
        faults.failSyncs(after: 0)
        let recorder = FailureRecorder()
        let log = try openLog(directory.path, faults: faults, recorder: recorder)
        let lsn = try log.append(body(1))
        await #expect(throws: StorageError.self) { try await log.waitDurable(lsn) }
        #expect(recorder.recorded.count == 1)
        log.close()
    }
}

@Suite struct DataDirectoryTests {
    @Test func theManifestRecordsTheShardCountAndALockExcludesASecondOpener() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/data"
        let first = try DataDirectory(path: path, shardCount: 3)
        #expect(FileSystem.exists(first.shardPath(2)))
        #expect(String(decoding: try FileSystem.readFile(path + "/manifest"), as: UTF8.self) == "tokenledger-data\nformat 1\nshards 3\n")
        #expect(throws: StorageError.locked(path: path + "/LOCK")) { try DataDirectory(path: path, shardCount: 3) }
        first.close()
        let again = try DataDirectory(path: path, shardCount: 3)
        again.close()
        do {
            _ = try DataDirectory(path: path, shardCount: 4)
            Issue.record("opened with another shard count")
        } catch {
            guard case .manifest(_, let reason) = error else { Issue.record("\(error)"); return }
            #expect(reason.contains("3 shards but 4 are configured"))
        }
        try FileSystem.writeFile(path + "/manifest", Array("garbage".utf8))
        #expect(throws: StorageError.self) { try DataDirectory(path: path, shardCount: 3) }
    }
}

/// A tiny lock for test bookkeeping.
final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}
