import Glibc
import LedgerStore
import LedgerTesting
import Synchronization
import Testing

@Suite struct WALTests {
    @Test func appendedRecordsAreDurableAndRecoveredInOrder() async throws {
        let directory = TemporaryDirectory()
        try await writeLog(directory.path, count: 500)
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(recovered.records.count == 500)
        #expect(recovered.records.map(\.lsn) == Array(1...500))
        #expect(recovered.records.allSatisfy { $0.body == body($0.lsn) })
        #expect(recovered.lastLSN == 500)
        #expect(recovered.tornBytes == 0)
        // Only records after the snapshot's LSN come back.
        let tail = try WALRecovery.recover(directory: directory.path, afterLSN: 450)
        #expect(tail.records.map(\.lsn) == Array(451...500))
    }

    @Test func appendsContinueAfterRecoveryAndSegmentsRotate() async throws {
        let directory = TemporaryDirectory()
        try await writeLog(directory.path, count: 100, segmentSizeMax: 1_000)
        let first = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(first.segments.count > 5)
        let log = try WriteAheadLog(directory: directory.path, recovered: first, configuration: .init(segmentSizeMax: 1_000))
        #expect(log.nextAppendLSN == 101)
        let lsn = try log.append(body(101))
        try await log.waitDurable(lsn)
        log.close()
        let second = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(second.records.map(\.lsn) == Array(1...101))
        // Segment names carry their first LSN and segments chain without gaps.
        for (earlier, later) in zip(second.segments, second.segments.dropFirst()) { #expect(earlier.firstLSN < later.firstLSN) }
    }

    @Test func segmentsCoveredByASnapshotAreRemovedButNeverTheNewest() async throws {
        let directory = TemporaryDirectory()
        try await writeLog(directory.path, count: 100, segmentSizeMax: 1_000)
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        let log = try WriteAheadLog(directory: directory.path, recovered: recovered, configuration: .init(segmentSizeMax: 1_000))
        let before = log.segmentList
        try log.removeSegments(coveredThrough: 60)
        let after = log.segmentList
        #expect(after.count < before.count)
        #expect(after.first!.firstLSN <= 61)
        try log.removeSegments(coveredThrough: 1_000)
        #expect(log.segmentList.count == 1)
        log.close()
        let tail = try WALRecovery.recover(directory: directory.path, afterLSN: 100)
        #expect(tail.records.isEmpty)
        #expect(tail.lastLSN == 100)
    }

    @Test func groupCommitBatchesConcurrentWriters() async throws {
        let directory = TemporaryDirectory()
        let log = try WriteAheadLog(directory: directory.path, recovered: try WALRecovery.recover(directory: directory.path, afterLSN: 0))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<64 {
                group.addTask {
                    for index in 0..<20 {
                        let lsn = try log.append(body(UInt64(writer * 100 + index)))
                        try await log.waitDurable(lsn)
                    }
                }
            }
            try await group.waitForAll()
        }
        let stats = log.stats
        log.close()
        #expect(stats.records == 1_280)
        #expect(stats.syncs < stats.records)
        #expect(try WALRecovery.recover(directory: directory.path, afterLSN: 0).records.count == 1_280)
    }

    @Test func oversizedRecordsAreRefused() throws {
        let directory = TemporaryDirectory()
        let log = try WriteAheadLog(directory: directory.path, recovered: try WALRecovery.recover(directory: directory.path, afterLSN: 0))
        #expect(throws: StorageError.recordTooLarge(size: WALFormat.recordBodyMax + 1, limit: WALFormat.recordBodyMax)) {
            _ = try log.append([UInt8](repeating: 0, count: WALFormat.recordBodyMax + 1))
        }
        log.close()
    }

    /// Records encoded into the pending batch in place (how a shard appends) are the records an
    /// array would have made; an oversized one is taken back out and uses no LSN.
    @Test func recordsEncodedInPlaceReadBackAndAnOversizedOneLeavesNoTrace() async throws {
        let directory = TemporaryDirectory()
        let log = try WriteAheadLog(directory: directory.path, recovered: try WALRecovery.recover(directory: directory.path, afterLSN: 0))
        let bodies = (0..<50).map { n in (0..<(n * 37 % 300)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ n) } }
        for (n, body) in bodies.enumerated() {
            if n == 20 {
                #expect(throws: StorageError.recordTooLarge(size: WALFormat.recordBodyMax + 1, limit: WALFormat.recordBodyMax)) {
                    _ = try log.append(syncBy: .logWriter) { $0.append(contentsOf: repeatElement(7, count: WALFormat.recordBodyMax + 1)) }
                }
            }
            let appended = n.isMultiple(of: 2) ? try log.append(syncBy: .logWriter) { $0.append(contentsOf: body) } : (try log.append(body), body.count)
            #expect(appended == (UInt64(n + 1), body.count))
        }
        try await log.waitDurable(UInt64(bodies.count))
        log.close()
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(recovered.records.map(\.lsn) == Array(1...UInt64(bodies.count)))
        #expect(recovered.records.map(\.body) == bodies)
    }
}

@Suite struct RecoveryTests {
    /// The segment of a freshly written 20-record log, and where each record starts. Written without
    /// preallocation, so that the file ends with the last record (``PreallocationTests`` covers the
    /// same damage with preallocated space after it).
    func sampleLog() async throws -> (TemporaryDirectory, String, [Int]) {
        let directory = TemporaryDirectory()
        try await writeLog(directory.path, count: 20, preallocationStep: 0)
        let segment = directory.path + "/" + (try FileSystem.list(directory.path).first { $0.hasSuffix(".log") }!)
        let starts = (0..<20).map { WALFormat.segmentHeaderSize + $0 * (WALFormat.recordHeaderSize + 40) }
        return (directory, segment, starts)
    }

    @Test func tornTailCutAtEveryByteOfTheLastRecordsRecoversToTheLastWholeRecord() async throws {
        let (directory, segment, starts) = try await sampleLog()
        let fullSize = try FileSystem.readFile(segment).count
        let name = String(segment.split(separator: "/").last!)
        // Every offset from the start of record 17 to the end of the file.
        for cut in starts[16]...fullSize {
            let trial = directory.sub("cut-\(cut)")
            try copyFile(segment, trial + "/" + name, length: cut)
            let recovered = try WALRecovery.recover(directory: trial, afterLSN: 0)
            let whole = starts.filter { $0 + WALFormat.recordHeaderSize + 40 <= cut }.count
            #expect(recovered.records.count == whole, "cut at \(cut)")
            #expect(recovered.lastLSN == UInt64(whole))
            let kept = starts.indices.contains(whole) ? starts[whole] : fullSize
            #expect(try FileSystem.readFile(trial + "/" + name).count == min(kept, cut))
            #expect(recovered.tornBytes == cut - min(kept, cut))
            #expect((recovered.tornFile != nil) == (cut > kept))
            if let torn = recovered.tornFile { #expect(try FileSystem.readFile(torn).count == cut - kept) }
            // The log continues from there.
            let log = try WriteAheadLog(directory: trial, recovered: recovered)
            let lsn = try log.append(body(99))
            #expect(lsn == UInt64(whole) + 1)
            try await log.waitDurable(lsn)
            log.close()
            #expect(try WALRecovery.recover(directory: trial, afterLSN: 0).records.count == whole + 1)
        }
    }

    @Test func garbageTailIsTruncated() async throws {
        let (directory, segment, _) = try await sampleLog()
        var bytes = try FileSystem.readFile(segment)
        bytes += (0..<333).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        try FileSystem.writeFile(segment, bytes)
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(recovered.records.count == 20)
        #expect(recovered.tornBytes == 333)
    }

    @Test func bitFlipsFollowedByValidRecordsRefuseToStart() async throws {
        let (directory, segment, starts) = try await sampleLog()
        let pristine = try FileSystem.readFile(segment)
        let name = String(segment.split(separator: "/").last!)
        // Flip one bit in every byte of records 5 to 7 (header and body).
        for offset in starts[4]..<starts[7] {
            let trial = directory.sub("flip-\(offset)")
            var bytes = pristine
            bytes[offset] ^= 0x10
            try FileSystem.writeFile(trial + "/" + name, bytes)
            do {
                _ = try WALRecovery.recover(directory: trial, afterLSN: 0)
                Issue.record("accepted a flipped bit at \(offset)")
            } catch {
                guard case .corruption(let file, let at, let lsn, _) = error else {
                    Issue.record("\(error)")
                    continue
                }
                let record = starts.lastIndex { $0 <= offset }!
                #expect(file == trial + "/" + name)
                #expect(at == starts[record])
                #expect(lsn == UInt64(record + 1))
            }
            // Nothing was truncated.
            #expect(try FileSystem.readFile(trial + "/" + name) == bytes)
        }
    }

    @Test func damageInAnEarlierSegmentRefusesToStart() async throws {
        let directory = TemporaryDirectory()
        // Without preallocation, so that the segment ends with its last record.
        try await writeLog(directory.path, count: 60, segmentSizeMax: 1_000, preallocationStep: 0)
        let names = try FileSystem.list(directory.path).filter { $0.hasSuffix(".log") }
        let first = directory.path + "/" + names[0]
        var bytes = try FileSystem.readFile(first)
        bytes.removeLast(10)  // looks torn, but later segments exist
        try FileSystem.writeFile(first, bytes)
        #expect(throws: StorageError.self) { try WALRecovery.recover(directory: directory.path, afterLSN: 0) }
        // A missing middle segment is a gap.
        let other = TemporaryDirectory()
        try await writeLog(other.path, count: 60, segmentSizeMax: 1_000)
        let otherNames = try FileSystem.list(other.path).filter { $0.hasSuffix(".log") }
        try FileSystem.remove(other.path + "/" + otherNames[1])
        #expect(throws: StorageError.self) { try WALRecovery.recover(directory: other.path, afterLSN: 0) }
        // A log that starts after the snapshot's LSN + 1 lost records.
        let headless = TemporaryDirectory()
        try await writeLog(headless.path, count: 60, segmentSizeMax: 1_000)
        try FileSystem.remove(headless.path + "/" + (try FileSystem.list(headless.path).first { $0.hasSuffix(".log") }!))
        #expect(throws: StorageError.self) { try WALRecovery.recover(directory: headless.path, afterLSN: 0) }
        // A log that ends before the snapshot's LSN lost records too.
        let third = TemporaryDirectory()
        try await writeLog(third.path, count: 10)
        #expect(throws: StorageError.self) { try WALRecovery.recover(directory: third.path, afterLSN: 50) }
    }

    @Test func aLastSegmentWithATornHeaderIsSetAside() async throws {
        let directory = TemporaryDirectory()
        try await writeLog(directory.path, count: 10)
        try FileSystem.writeFile(directory.path + "/wal-00000000000000000011.log", Array("TLWALS".utf8))
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(recovered.records.count == 10)
        #expect(recovered.segments.count == 1)
        #expect(!FileSystem.exists(directory.path + "/wal-00000000000000000011.log"))
    }
}

/// Segments preallocated ahead of the writes: zeros after the last record are space, not damage.
@Suite struct PreallocationTests {
    static let step = 4_096
    /// Record size with a 40-byte body.
    static let recordSize = WALFormat.recordHeaderSize + 40

    func segments(_ directory: String) throws -> [String] {
        try FileSystem.list(directory).filter { $0.hasSuffix(".log") }.sorted().map { directory + "/" + $0 }
    }

    /// A preallocated log of 10 records: its directory, its segment, where the records end.
    func tenRecords() async throws -> (TemporaryDirectory, String, Int) {
        let directory = TemporaryDirectory()
        try await writeLog(directory.path, count: 10, preallocationStep: Self.step)
        let segment = try #require(try segments(directory.path).first)
        return (directory, segment, WALFormat.segmentHeaderSize + 10 * Self.recordSize)
    }

    @Test func zerosAfterTheLastRecordStayAndAppendsContinueOverThem() async throws {
        let directory = TemporaryDirectory()
        try await writeLog(directory.path, count: 50, preallocationStep: Self.step)
        let segment = try #require(try segments(directory.path).first)
        let end = WALFormat.segmentHeaderSize + 50 * Self.recordSize
        let bytes = try FileSystem.readFile(segment)
        #expect(bytes.count == (end + Self.step - 1) / Self.step * Self.step)
        #expect(bytes[end...].allSatisfy { $0 == 0 })
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(recovered.records.map(\.lsn) == Array(1...50))
        #expect(recovered.tornBytes == 0 && recovered.tornFile == nil)
        #expect(recovered.lastSegmentEnd == end)
        #expect(try FileSystem.readFile(segment).count == bytes.count)  // nothing truncated
        // Appends go after the last record, not after the zeros, and allocate further steps.
        try await writeLog(directory.path, count: 100, preallocationStep: Self.step, firstBody: 51)
        let again = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(again.records.map(\.lsn) == Array(1...150))
        #expect(again.records.allSatisfy { $0.body == body($0.lsn) })
        #expect(again.lastSegmentEnd == end + 100 * Self.recordSize)
        #expect(try FileSystem.readFile(segment).count % Self.step == 0)
        #expect(try FileSystem.list(directory.path).allSatisfy { !$0.contains(".torn") })
    }

    @Test func closedSegmentsMayEndInZerosToo() async throws {
        let directory = TemporaryDirectory()
        try await writeLog(directory.path, count: 100, segmentSizeMax: 1_000, preallocationStep: Self.step)
        let files = try segments(directory.path)
        #expect(files.count > 5)
        for file in files { #expect(try FileSystem.readFile(file).count == Self.step) }
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(recovered.records.map(\.lsn) == Array(1...100))
        #expect(recovered.tornBytes == 0)
        // A gap between segments is still a gap, zeros or not.
        try FileSystem.remove(files[2])
        #expect(throws: StorageError.self) { try WALRecovery.recover(directory: directory.path, afterLSN: 0) }
    }

    @Test func aTornRecordBeforeThePreallocatedZerosIsCutAndTheLogGoesOn() async throws {
        let (directory, segment, end) = try await tenRecords()
        var bytes = try FileSystem.readFile(segment)
        // The first 30 bytes of record 10 again, as if record 11's write was torn.
        let start = end - Self.recordSize
        bytes.replaceSubrange(end..<(end + 30), with: bytes[start..<(start + 30)])
        // And garbage further on inside the zeros: not a clean end either.
        bytes[end + 1_000] = 0x55
        try FileSystem.writeFile(segment, bytes)
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(recovered.records.map(\.lsn) == Array(1...10))
        #expect(recovered.tornBytes == bytes.count - end)
        let torn = try #require(recovered.tornFile)
        #expect(Array(try FileSystem.readFile(torn).prefix(30)) == Array(bytes[end..<(end + 30)]))
        #expect(try FileSystem.readFile(segment).count == end)
        try await writeLog(directory.path, count: 5, preallocationStep: Self.step, firstBody: 11)
        #expect(try WALRecovery.recover(directory: directory.path, afterLSN: 0).records.map(\.lsn) == Array(1...15))
    }

    @Test func garbageAmongThePreallocatedZerosIsATornTailNotACleanEnd() async throws {
        let (directory, segment, end) = try await tenRecords()
        var bytes = try FileSystem.readFile(segment)
        bytes[end + 1_000] = 0x55
        try FileSystem.writeFile(segment, bytes)
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(recovered.records.map(\.lsn) == Array(1...10))
        #expect(recovered.tornBytes == bytes.count - end)
        #expect(recovered.tornFile != nil)
        #expect(try FileSystem.readFile(segment).count == end)
    }

    @Test func zeroCheckLooksAtEveryByte() {
        for length in [0, 1, 7, 8, 9, 63, 64, 65] {
            for offset in 0...min(length, 9) {
                var bytes = [UInt8](repeating: 0, count: length + 3)
                #expect(bytes.withUnsafeBytes { WALFormat.isZero($0, from: offset) })
                for position in offset..<bytes.count {
                    bytes[position] = 1
                    #expect(!bytes.withUnsafeBytes { WALFormat.isZero($0, from: offset) }, "\(length) \(offset) \(position)")
                    bytes[position] = 0
                }
            }
        }
    }
}

/// `syncPending`: the caller's thread writes and syncs the pending batch (the server's event loops
/// do, for the records of their calls), and no record is ever left without a writer.
@Suite struct CallerSyncTests {
    /// Counts completions; `wait` polls until `count` arrived or the deadline passed.
    final class Completions: Sendable {
        private let results = Mutex<[(lsn: UInt64, ok: Bool, thread: pthread_t)]>([])
        /// A success counts as ok only if the batch it names (if any) holds `lsn`.
        func add(_ lsn: UInt64, _ result: Result<DurableBatch?, StorageError>) {
            let ok =
                switch result {
                case .success(nil): true
                case .success(let batch?):
                    batch.firstLSN <= lsn && lsn <= batch.lastLSN && batch.bytes > 0 && batch.syncedAt >= batch.startedAt
                case .failure: false
                }
            results.withLock { $0.append((lsn, ok, pthread_self())) }
        }
        var all: [(lsn: UInt64, ok: Bool, thread: pthread_t)] { results.withLock { $0 } }
        func wait(for count: Int, seconds: Int = 20) async throws -> Bool {
            for _ in 0..<(seconds * 100) {
                if all.count >= count { return true }
                try await Task.sleep(for: .milliseconds(10))
            }
            return all.count >= count
        }
    }

    @Test func theCallerWritesTheBatchAndItsWaitersAreAnsweredOnItsThread() async throws {
        let directory = TemporaryDirectory()
        let log = try WriteAheadLog(directory: directory.path, recovered: try WALRecovery.recover(directory: directory.path, afterLSN: 0))
        // One record the usual way: the writer thread is up and waiting afterwards.
        try await log.waitDurable(try log.append(body(1)))
        #expect(log.stats.syncs == 1 && log.stats.callerSyncs == 0)
        let completions = Completions()
        for index in 2...4 {
            let lsn = try log.append(body(UInt64(index)), syncBy: .caller)
            log.whenDurable(lsn) { completions.add(lsn, $0) }
        }
        // Not woken, the writer thread leaves the records alone.
        usleep(50_000)
        #expect(log.durableLSN == 1)
        #expect(completions.all.isEmpty)
        log.syncPending()
        // Durable, and answered, before syncPending returns, on this thread, by one sync.
        #expect(log.durableLSN == 4)
        let answered = completions.all
        #expect(answered.map(\.lsn) == [2, 3, 4])
        #expect(answered.allSatisfy { $0.ok && pthread_equal($0.thread, pthread_self()) != 0 })
        #expect(log.stats.syncs == 2)
        #expect(log.stats.callerSyncs == 1)
        #expect(log.stats.records == 4)
        // Nothing pending: returns without a sync.
        log.syncPending()
        #expect(log.stats.syncs == 2)
        log.close()
        #expect(try WALRecovery.recover(directory: directory.path, afterLSN: 0).records.map(\.lsn) == [1, 2, 3, 4])
    }

    /// With a sync interval, a batch is not written until the interval has passed since the last
    /// sync ended: the caller is told how long to wait (the records stay pending), the writer thread
    /// waits the interval out, and a close does not wait.
    @Test func theSyncIntervalHoldsTheNextBatchBack() async throws {
        let directory = TemporaryDirectory()
        let interval: UInt64 = 300_000_000  // 300 ms: far longer than a sync here
        let log = try WriteAheadLog(
            directory: directory.path, recovered: try WALRecovery.recover(directory: directory.path, afterLSN: 0),
            configuration: .init(syncInterval: interval))
        // The first batch goes at once (no sync before it), by the caller.
        _ = try log.append(body(1), syncBy: .caller)
        #expect(log.syncPending() == 0)
        #expect(log.durableLSN == 1)
        let syncedAt = monotonicNanoseconds()
        // Right after it: nothing written, and the wait is most of the interval.
        _ = try log.append(body(2), syncBy: .caller)
        let wait = log.syncPending()
        #expect(wait > interval / 2 && wait <= interval, "\(wait) ns")
        #expect(log.durableLSN == 1)
        // Once the wait is over, the caller writes: record 2 in a batch of its own. (Usually the
        // caller's; the writer thread, if a spurious wake-up found the record pending, waited the
        // interval out too and may write it first: seen once in CI under load.)
        usleep(UInt32(wait / 1000) + 1_000)
        #expect(log.syncPending() == 0)
        #expect(log.durableLSN == 2)
        #expect(log.stats.syncs == 2)
        // The writer thread, woken for a record right after a sync, waits the interval out too.
        let appended = monotonicNanoseconds()
        try await log.waitDurable(try log.append(body(3)))
        let waited = monotonicNanoseconds() - appended
        #expect(waited >= interval / 2, "the writer thread wrote after \(waited) ns")
        #expect(monotonicNanoseconds() - syncedAt >= interval)
        // A close writes what is pending without waiting for the interval.
        _ = try log.append(body(4))
        let closing = monotonicNanoseconds()
        log.close()
        #expect(monotonicNanoseconds() - closing < interval / 2)
        #expect(try WALRecovery.recover(directory: directory.path, afterLSN: 0).records.map(\.lsn) == [1, 2, 3, 4])
    }

    /// A caller that finds a batch being written returns at once, and its record is written when
    /// that batch is done: the caller that wrote it wakes the writer thread for what was appended
    /// meanwhile. Nobody else appends or syncs here, so nothing else could write the record.
    @Test func aRecordLeftToTheBatchBeingWrittenIsWrittenAfterIt() async throws {
        let directory = TemporaryDirectory()
        let faults = StorageFaults()
        let log = try WriteAheadLog(
            directory: directory.path, recovered: try WALRecovery.recover(directory: directory.path, afterLSN: 0), faults: faults)
        // One record the usual way: the writer thread is up and waiting afterwards.
        try await log.waitDurable(try log.append(body(1)))
        let completions = Completions()
        faults.pauseSyncs()
        let first = try log.append(body(2), syncBy: .caller)
        log.whenDurable(first) { completions.add(first, $0) }
        let firstCaller = Completions()
        startThread {
            firstCaller.add(0, .success(nil))
            log.syncPending()
        }
        // The first caller is inside its batch's sync.
        for _ in 0..<2_000 where faults.pausedSyncs == 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(faults.pausedSyncs == 1)
        let second = try log.append(body(3), syncBy: .caller)
        log.whenDurable(second) { completions.add(second, $0) }
        log.syncPending()
        // Returned without writing: the batch in progress holds the log.
        #expect(log.stats.syncs == 1)
        #expect(completions.all.isEmpty)
        faults.resumeSyncs()
        #expect(try await completions.wait(for: 2))
        let answered = completions.all
        try #require(answered.map(\.lsn) == [first, second])
        #expect(answered.allSatisfy { $0.ok })
        // The first on the first caller's thread, the second on the writer thread (alive together, so
        // their ids differ; this test's own thread may change across its awaits, so it is not compared).
        #expect(pthread_equal(answered[0].thread, answered[1].thread) == 0)
        let stats = log.stats
        #expect(stats.syncs == 3 && stats.callerSyncs == 1)
        log.close()
        #expect(try WALRecovery.recover(directory: directory.path, afterLSN: 0).records.map(\.lsn) == [1, 2, 3])
    }

    /// Threads appending without waking the writer and syncing themselves, against async appenders
    /// that wake it: callers often find a batch being written and must leave their records to that
    /// writer. Every record must become durable, each exactly once, in LSN order on disk.
    @Test func recordsLeftByACallerThatFoundABatchBeingWrittenAreWrittenByTheOthers() async throws {
        let directory = TemporaryDirectory()
        let log = try WriteAheadLog(directory: directory.path, recovered: try WALRecovery.recover(directory: directory.path, afterLSN: 0))
        let completions = Completions()
        let threads = 4, perThread = 300, asyncWriters = 8, perAsyncWriter = 50
        for thread in 0..<threads {
            startThread {
                for index in 0..<perThread {
                    let lsn = try! log.append(body(UInt64(thread * 10_000 + index)), syncBy: .caller)
                    log.whenDurable(lsn) { completions.add(lsn, $0) }
                    // Several records per sync now and then, as an event loop's tick has.
                    if index % 3 != 0 { log.syncPending() }
                }
                log.syncPending()
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<asyncWriters {
                group.addTask {
                    for index in 0..<perAsyncWriter {
                        let lsn = try log.append(body(UInt64(100_000 + writer * 1_000 + index)))
                        try await log.waitDurable(lsn)
                    }
                }
            }
            try await group.waitForAll()
        }
        let total = threads * perThread
        #expect(try await completions.wait(for: total))
        let answered = completions.all
        #expect(answered.count == total)
        #expect(answered.allSatisfy { $0.ok })
        #expect(Set(answered.map(\.lsn)).count == total)
        let stats = log.stats
        #expect(stats.records == UInt64(total + asyncWriters * perAsyncWriter))
        #expect(stats.callerSyncs > 0)
        #expect(stats.callerSyncs < stats.syncs)
        log.close()
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(recovered.records.map(\.lsn) == Array(1...UInt64(total + asyncWriters * perAsyncWriter)))
    }

    /// Close while callers append and sync: what was appended before the close is written by the
    /// writer thread's last batch (a caller's syncPending returns at once once the log is closing),
    /// and every waiter hears.
    @Test func closeWritesWhatCallersLeftPending() async throws {
        let directory = TemporaryDirectory()
        let log = try WriteAheadLog(directory: directory.path, recovered: try WALRecovery.recover(directory: directory.path, afterLSN: 0))
        let completions = Completions()
        let appended = Completions()
        for thread in 0..<2 {
            startThread {
                for index in 0..<100_000 {
                    guard let lsn = try? log.append(body(UInt64(thread * 100_000 + index)), syncBy: .caller) else { break }
                    appended.add(lsn, .success(nil))
                    log.whenDurable(lsn) { completions.add(lsn, $0) }
                    if index % 2 == 1 { log.syncPending() }
                }
            }
        }
        #expect(try await appended.wait(for: 500))
        log.close()
        // The threads stop at their next append (the log is closed).
        try await Task.sleep(for: .milliseconds(100))
        let appendedLSNs = Set(appended.all.map(\.lsn))
        #expect(try await completions.wait(for: appendedLSNs.count))
        #expect(completions.all.allSatisfy { $0.ok })
        let recovered = try WALRecovery.recover(directory: directory.path, afterLSN: 0)
        #expect(Set(recovered.records.map(\.lsn)) == appendedLSNs)
    }

    /// A failed sync on the caller's thread stops the log as one on the writer thread does.
    @Test func aFailedCallerSyncStopsTheLog() async throws {
        let directory = TemporaryDirectory()
        let faults = StorageFaults()
        let reported = Completions()
        let log = try WriteAheadLog(
            directory: directory.path, recovered: try WALRecovery.recover(directory: directory.path, afterLSN: 0),
            faults: faults, onFailure: { _ in reported.add(0, .success(nil)) })
        let first = try log.append(body(1), syncBy: .caller)
        log.syncPending()
        // (When the writer thread is in the middle of a batch, syncPending leaves the record to it:
        // on a loaded machine durableLSN was once still 0 right after the call.)
        try await log.waitDurable(first)
        #expect(log.durableLSN == first)
        let completions = Completions()
        faults.failSyncs(after: 0)
        let second = try log.append(body(2), syncBy: .caller)
        log.whenDurable(second) { completions.add(second, $0) }
        log.syncPending()
        #expect(try await completions.wait(for: 1))
        #expect(try await reported.wait(for: 1))
        #expect(completions.all.map(\.ok) == [false])
        #expect(log.durableLSN == first)
        #expect(throws: StorageError.self) { try log.append(body(3), syncBy: .caller) }
        log.syncPending()
        log.close()
        #expect(reported.all.count == 1)
    }
}
