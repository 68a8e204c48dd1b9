// The per-shard write-ahead log with group commit.
//
// Invariants:
// - append() assigns LSNs in call order, strictly increasing by one, and copies the encoded record
//   into the pending batch; it never blocks on I/O.
// - One batch at a time (`writing`): whoever writes takes the whole pending batch, writes it with one
//   write() and makes it durable with one fdatasync(); only then does durableLSN advance and are
//   waiters up to it resumed. The writer is the log's own thread, or a caller of `syncPending()`
//   (the server's event loop, which then answers its calls without a thread hand-off).
// - Every record appended gets written without another call: `append(_:syncBy: .logWriter)` wakes
//   the writer thread, `.caller` leaves that to the caller's `syncPending()`, and a caller that finds a
//   batch being written leaves its records to the writing thread, which checks for records appended
//   meanwhile when it is done (and wakes the writer thread for them).
// - A new segment is created (header written, file fsynced, directory fsynced) before it holds a
//   record that will be acknowledged.
// - Segments are preallocated ahead of the writes (`preallocationStep` at a time), so a batch's
//   fdatasync writes its data alone: appending to the end of a file changes its size, and then every
//   fdatasync writes the inode as well (docs/benchmarks.md has the measurement). Zeros after the
//   last record are space not written yet (see scanSegment).
// - Fail-stop: the first write or sync error stops the log for good. No later acknowledgement,
//   every waiter and every later call gets the error, and `onFailure` is called once. An fsync is
//   never retried (after a failed fsync the kernel may have dropped the dirty pages).

#if canImport(Glibc)
import Glibc
#endif

/// Counters of a log, for benchmarks and metrics.
public struct WALStatistics: Hashable, Sendable {
    /// fdatasync calls that made batches durable.
    public var syncs: UInt64 = 0
    /// Records made durable.
    public var records: UInt64 = 0
    /// Bytes written, headers included.
    public var bytes: UInt64 = 0
    /// Total time spent in write+fdatasync, in nanoseconds.
    public var syncNanoseconds: UInt64 = 0
    /// Of `syncs`, those made by a caller of `syncPending()` rather than the writer thread.
    public var callerSyncs: UInt64 = 0

    /// Records per fdatasync: how well group commit batches.
    public var recordsPerSync: Double { syncs == 0 ? 0 : Double(records) / Double(syncs) }

    public init() {}
}

/// Who writes and syncs a record once it is appended: one name from the connection that reads a
/// call down to the log (`LedgerConnectionHandler` → `LedgerService.serve` → `LedgerShard.submit`
/// → `WriteAheadLog.append`).
public enum SyncBy: Sendable, Hashable {
    /// The log's writer thread, woken for it.
    case logWriter
    /// The caller, soon and on its own thread, with `syncPending()` (an event loop's group commit).
    case caller
}

/// One group commit, as the records it made durable see it: their batch's LSNs and size and when
/// its write+fdatasync ran (wall clock, for trace spans).
public struct DurableBatch: Sendable, Hashable {
    public var firstLSN: UInt64
    public var lastLSN: UInt64
    public var bytes: Int
    /// Nanoseconds since the Unix epoch when the write started and when the fdatasync returned.
    public var startedAt: UInt64
    public var syncedAt: UInt64
    /// False when an event loop's group commit wrote it (`SyncBy.caller`).
    public var byWriterThread: Bool

    public var records: Int { Int(lastLSN - firstLSN + 1) }

    public init(firstLSN: UInt64, lastLSN: UInt64, bytes: Int, startedAt: UInt64, syncedAt: UInt64, byWriterThread: Bool) {
        self.firstLSN = firstLSN
        self.lastLSN = lastLSN
        self.bytes = bytes
        self.startedAt = startedAt
        self.syncedAt = syncedAt
        self.byWriterThread = byWriterThread
    }
}

public final class WriteAheadLog: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// A segment that reaches this size is closed and the next batch starts a new one.
        public var segmentSizeMax: Int
        /// Bytes allocated at a time ahead of the writes; 0: none (every batch then grows the file).
        public var preallocationStep: Int
        /// Nanoseconds from the end of one batch's fdatasync before the next batch may be written
        /// (0: at once). An fdatasync costs about the same CPU however many records it carries (60
        /// to 85 µs on the project's VM, docs/benchmarks.md), so when calls arrive more slowly than
        /// syncs complete, waiting a little gathers more records into each sync; the price is at
        /// most this much latency on a call that arrives right after a sync.
        public var syncInterval: UInt64

        public init(
            segmentSizeMax: Int = StorageLimits.segmentSizeDefault, preallocationStep: Int = StorageLimits.preallocationStepDefault,
            syncInterval: UInt64 = 0
        ) {
            self.segmentSizeMax = segmentSizeMax
            self.preallocationStep = preallocationStep
            self.syncInterval = syncInterval
        }
    }

    public let directory: String
    private let configuration: Configuration
    private let faults: StorageFaults?
    private let onFailure: @Sendable (StorageError) -> Void

    private let mutex = Mutex()
    private let wakeWriter = Condition()
    private let writerDone = Condition()
    // Guarded by `mutex`:
    private var pending: [UInt8] = []
    /// The buffer of the batch written before, emptied with its capacity kept: the next batch's
    /// `pending` (two buffers taking turns, where copying `pending` out and emptying it allocated a
    /// buffer of the same capacity for every batch).
    private var spareBatch: [UInt8] = []
    private var pendingFirstLSN: UInt64
    private var pendingRecords = 0
    private var nextLSN: UInt64
    private var durable: UInt64
    private var waiters: [(lsn: UInt64, waiter: Waiter)] = []
    private var failure: StorageError?
    private var closing = false
    /// A batch is being written (by the writer thread or a caller of `syncPending`).
    private var writing = false
    private var writerRunning = false
    /// No batch is written before this (`monotonicNanoseconds()`): the last sync's end plus the interval.
    private var writeAllowedAt: UInt64 = 0
    private var statistics = WALStatistics()
    private var segments: [SegmentInfo]
    /// The segment the last batch went to (its first LSN) and its bytes of records then: a backup
    /// copies that segment up to there, as it may be growing.
    private var durableSegment: (firstLSN: UInt64, bytes: Int)? = nil
    // Owned by whoever set `writing`:
    private var segment: DurableFile?
    /// Where the next batch goes in `segment`.
    private var segmentSize = 0
    /// The segment's size on disk: up to here, writes change no metadata.
    private var allocatedSize = 0

    /// Opens the log for appending after recovery: `recovered` tells the last LSN and the segments.
    public init(
        directory: String, recovered: RecoveredLog, configuration: Configuration = Configuration(),
        faults: StorageFaults? = nil, onFailure: @escaping @Sendable (StorageError) -> Void = { _ in }
    ) throws(StorageError) {
        self.directory = directory
        self.configuration = configuration
        self.faults = faults
        self.onFailure = onFailure
        nextLSN = recovered.lastLSN + 1
        pendingFirstLSN = nextLSN
        durable = recovered.lastLSN
        segments = recovered.segments
        if let last = recovered.segments.last {
            let file = try DurableFile(path: last.path, flags: O_WRONLY, faults: faults)
            allocatedSize = try file.seekToEnd()
            // Appends continue after the last record, over the zeros of preallocated space.
            segmentSize = recovered.lastSegmentEnd ?? allocatedSize
            try file.seek(to: segmentSize)
            segment = file
            durableSegment = (last.firstLSN, segmentSize)
        }
        writerRunning = true
        startThread { [self] in runWriter() }
    }

    /// The highest LSN known durable.
    public var durableLSN: UInt64 { mutex.withLock { durable } }

    /// Where the durable log ends, for a backup: the segments that hold durable records, oldest
    /// first, each with the bytes to copy (nil: the whole file, sealed; a number: the segment may
    /// still grow, and its records durable now end there).
    public struct DurableEnd: Sendable {
        public var lsn: UInt64
        public var segments: [(segment: SegmentInfo, bytes: Int?)]
    }

    public var durableEnd: DurableEnd {
        mutex.withLock {
            DurableEnd(
                lsn: durable,
                segments: segments.filter { $0.firstLSN <= durable }.map { segment in
                    (segment, durableSegment.flatMap { $0.firstLSN == segment.firstLSN ? $0.bytes : nil })
                })
        }
    }

    /// The LSN the next append gets.
    public var nextAppendLSN: UInt64 { mutex.withLock { nextLSN } }

    public var stats: WALStatistics { mutex.withLock { statistics } }

    /// Segments currently on disk, oldest first.
    public var segmentList: [SegmentInfo] { mutex.withLock { segments } }

    /// Queues one record and returns its LSN. Durable only once ``waitDurable(_:)`` returns.
    /// `syncBy: .caller` leaves the writing to the caller: it must call ``syncPending()`` after (on
    /// the same thread, soon), as the writer thread is not told of the record.
    public func append(_ body: UnsafeRawBufferPointer, syncBy: SyncBy = .logWriter) throws(StorageError) -> UInt64 {
        // Refused before it is copied into the batch (and grows it) when its size is known already.
        guard body.count <= WALFormat.recordBodyMax else {
            throw StorageError.recordTooLarge(size: body.count, limit: WALFormat.recordBodyMax)
        }
        return try append(syncBy: syncBy) { $0.append(contentsOf: body) }.lsn
    }

    /// Queues one record whose body `encodeBody` appends to the pending batch itself (under the
    /// log's lock): no array per record. Returns its LSN and the body's size.
    public func append(
        syncBy: SyncBy = .logWriter, encodingBody encodeBody: (inout [UInt8]) -> Void
    ) throws(StorageError) -> (lsn: UInt64, bodySize: Int) {
        mutex.lock()
        defer { mutex.unlock() }
        if let failure { throw StorageError.stopped(reason: failure.description) }
        guard !closing else { throw StorageError.stopped(reason: "the log is closed") }
        let lsn = nextLSN
        // The pending batch holds exactly the LSNs from its first to the one just assigned.
        assert(lsn == pendingFirstLSN + UInt64(pendingRecords), "WAL LSNs not contiguous in the pending batch")
        let start = pending.count
        let bodySize = try WALFormat.appendRecord(lsn: lsn, to: &pending, encodingBody: encodeBody)
        nextLSN += 1
        // Check the record right after encoding, as recovery will check it after reading.
        let check = pending.withUnsafeBytes { WALFormat.checkRecord($0, at: start) }
        precondition(check == .valid(lsn: lsn, body: (start + WALFormat.recordHeaderSize)..<pending.count), "WAL record failed its own check")
        pendingRecords += 1
        if syncBy == .logWriter { wakeWriter.signal() }
        return (lsn, bodySize)
    }

    public func append(_ body: [UInt8], syncBy: SyncBy = .logWriter) throws(StorageError) -> UInt64 {
        let result: Result<UInt64, StorageError> = body.withUnsafeBytes { buffer in
            do throws(StorageError) { return .success(try append(buffer, syncBy: syncBy)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Writes and syncs the pending records on the caller's thread, then resumes the waiters they
    /// make durable (on this thread, outside the log's lock): the group commit of an event loop,
    /// which thus answers its own calls without waking another thread. Returns at once when nothing
    /// is pending, or when a batch is being written: that writer takes the rest when it is done.
    /// Blocks for one write+fdatasync otherwise. Returns 0, or, when the sync interval since the
    /// last batch has not passed, writes nothing and returns the nanoseconds until it has: the
    /// caller calls again then (the records wait for it, or for whoever writes first).
    @discardableResult
    public func syncPending() -> UInt64 {
        mutex.lock()
        guard !writing, !pending.isEmpty, failure == nil, !closing else {
            // Closing: the writer thread flushes what is pending before it stops.
            mutex.unlock()
            return 0
        }
        if configuration.syncInterval > 0 {
            let now = monotonicNanoseconds()
            if now < writeAllowedAt {
                mutex.unlock()
                return writeAllowedAt - now
            }
        }
        writeOneBatch(byWriterThread: false)
        // Records appended while this batch was written are the writer thread's.
        if !pending.isEmpty || closing { wakeWriter.signal() }
        mutex.unlock()
        return 0
    }

    /// Returns once every record up to `lsn` is durable; throws if the log stopped first.
    public func waitDurable(_ lsn: UInt64) async throws(StorageError) {
        mutex.lock()
        if durable >= lsn {
            mutex.unlock()
            return
        }
        if let failure {
            mutex.unlock()
            throw StorageError.stopped(reason: failure.description)
        }
        let result = await withCheckedContinuation { continuation in
            waiters.append((lsn, .continuation(continuation)))
            mutex.unlock()
        }
        try result.get()
    }

    /// Calls `completion` once every record up to `lsn` is durable (or with the error if the log
    /// stopped first): at once on the caller's thread when it already is (with no batch), otherwise
    /// on the thread that synced right after the fdatasync, outside the log's lock, with the batch
    /// that made `lsn` durable. The completion must be quick (hand the result to another thread):
    /// the next batch waits for it.
    public func whenDurable(_ lsn: UInt64, _ completion: @escaping @Sendable (Result<DurableBatch?, StorageError>) -> Void) {
        mutex.lock()
        if durable >= lsn {
            mutex.unlock()
            return completion(.success(nil))
        }
        if let failure {
            mutex.unlock()
            return completion(.failure(.stopped(reason: failure.description)))
        }
        waiters.append((lsn, .callback(completion)))
        mutex.unlock()
    }

    /// Flushes what is pending, stops the writer and closes the segment.
    public func close() {
        mutex.lock()
        closing = true
        wakeWriter.signal()
        while writerRunning { writerDone.wait(mutex) }
        mutex.unlock()
        segment?.close()
    }

    /// Deletes segments whose records are all at or below `lsn` (covered by a durable snapshot).
    /// The newest segment is never deleted.
    public func removeSegments(
        coveredThrough lsn: UInt64, keeping mustKeep: (SegmentInfo) -> Bool = { _ in false }
    ) throws(StorageError) {
        let doomed: [SegmentInfo] = mutex.withLock {
            var doomed: [SegmentInfo] = []
            while segments.count > 1, segments[1].firstLSN <= lsn + 1, !mustKeep(segments[0]) {
                doomed.append(segments.removeFirst())
            }
            return doomed
        }
        guard !doomed.isEmpty else { return }
        for segment in doomed { try FileSystem.remove(segment.path) }
        try FileSystem.syncDirectory(directory, faults: faults)
    }

    // MARK: - Writer thread

    private func runWriter() {
        mutex.lock()
        while true {
            // While a caller of syncPending writes, wait: it wakes this thread when it is done.
            while writing || (pending.isEmpty && !closing) { wakeWriter.wait(mutex) }
            if pending.isEmpty || failure != nil { break }
            if configuration.syncInterval > 0, !closing, monotonicNanoseconds() < writeAllowedAt {
                // Too soon after the last sync: wait for the interval (or a close), then look again.
                wakeWriter.wait(mutex, until: writeAllowedAt)
                continue
            }
            if !writeOneBatch(byWriterThread: true) { break }
        }
        writerRunning = false
        writerDone.signal()
        mutex.unlock()
    }

    /// Takes the pending batch, writes and syncs it outside the lock and resumes the waiters it makes
    /// durable. Called with the mutex held, `writing` false and `pending` not empty; returns with the
    /// mutex held and `writing` false. Returns false when the log failed.
    @discardableResult
    private func writeOneBatch(byWriterThread: Bool) -> Bool {
        writing = true
        var batch = spareBatch
        spareBatch = []
        swap(&batch, &pending)
        let firstLSN = pendingFirstLSN
        let records = pendingRecords
        pendingRecords = 0
        pendingFirstLSN = nextLSN
        mutex.unlock()

        let startedAt = wallNanoseconds()
        let started = monotonicNanoseconds()
        var outcome: StorageError? = nil
        do throws(StorageError) {
            try writeBatch(batch, firstLSN: firstLSN)
        } catch {
            outcome = error
        }
        let elapsed = monotonicNanoseconds() - started

        mutex.lock()
        writing = false
        let batchBytes = batch.count
        batch.removeAll(keepingCapacity: true)
        spareBatch = batch
        if let outcome {
            fail(outcome)
            // The writer thread, if waiting, sees the failure and stops.
            wakeWriter.signal()
            return false
        }
        // Batches are taken whole and one at a time, so each starts right after the last durable
        // record and durability only moves forward.
        precondition(records > 0 && firstLSN == durable + 1, "WAL batch \(firstLSN) does not follow durable LSN \(durable)")
        durable = firstLSN + UInt64(records) - 1
        // The writer owned `segmentSize` until `writing` was cleared above: it is this batch's end.
        durableSegment = (segments.last!.firstLSN, segmentSize)
        statistics.syncs += 1
        if !byWriterThread { statistics.callerSyncs += 1 }
        statistics.records += UInt64(records)
        statistics.bytes += UInt64(batchBytes)
        statistics.syncNanoseconds += elapsed
        if configuration.syncInterval > 0 { writeAllowedAt = monotonicNanoseconds() + configuration.syncInterval }
        let ready = takeReadyWaiters()
        if !ready.isEmpty {
            mutex.unlock()
            let made = DurableBatch(
                firstLSN: firstLSN, lastLSN: durable, bytes: batchBytes, startedAt: startedAt, syncedAt: startedAt + elapsed,
                byWriterThread: byWriterThread)
            // Resumed where they are (a for-in copied each waiter out of the array).
            for index in ready.indices { ready[index].waiter.resume(.success(made)) }
            mutex.lock()
        }
        return true
    }

    /// Someone waiting for durability: an async caller or a completion callback.
    private enum Waiter {
        case continuation(CheckedContinuation<Result<Void, StorageError>, Never>)
        case callback(@Sendable (Result<DurableBatch?, StorageError>) -> Void)

        func resume(_ result: Result<DurableBatch, StorageError>) {
            switch self {
            case .continuation(let continuation): continuation.resume(returning: result.map { _ in () })
            case .callback(let callback): callback(result.map { $0 })
            }
        }
    }

    /// Removes and returns the waiters whose records are durable, oldest first. Called with the
    /// mutex held; they are resumed after it is released.
    private func takeReadyWaiters() -> [(lsn: UInt64, waiter: Waiter)] {
        // Room for all at once: grown by doubling, a batch of 30 calls cost six allocations.
        var ready: [(lsn: UInt64, waiter: Waiter)] = []
        ready.reserveCapacity(waiters.count)
        // Usually every waiter is ready (a sync covers all that was appended before it): the array
        // is taken whole, no waiter copied, and the new room left for the next batch's waiters.
        if waiters.allSatisfy({ $0.lsn <= durable }) {
            swap(&ready, &waiters)
            return ready
        }
        // Waiters are appended in LSN order almost always (appends and waits come from one shard),
        // so the ready ones are a prefix; the general case is handled all the same.
        var kept = 0
        for index in waiters.indices {
            if waiters[index].lsn <= durable {
                ready.append(waiters[index])
            } else {
                waiters.swapAt(kept, index)
                kept += 1
            }
        }
        waiters.removeLast(waiters.count - kept)
        return ready
    }

    /// Called with the mutex held.
    private func fail(_ error: StorageError) {
        failure = error
        let doomed = waiters.map(\.waiter)
        waiters.removeAll()
        pending.removeAll()
        let onFailure = self.onFailure
        mutex.unlock()
        // Reported before any waiter hears of it, so whoever sees the error sees it reported.
        onFailure(error)
        for waiter in doomed { waiter.resume(.failure(.stopped(reason: error.description))) }
        mutex.lock()
    }

    private func writeBatch(_ batch: [UInt8], firstLSN: UInt64) throws(StorageError) {
        if segment == nil || segmentSize >= configuration.segmentSizeMax {
            try startSegment(firstLSN: firstLSN)
        }
        let step = configuration.preallocationStep
        if step > 0, segmentSize + batch.count > allocatedSize {
            // Rounded up to a whole step; the size change is made durable by this batch's sync.
            let target = (segmentSize + batch.count + step - 1) / step * step
            try segment!.preallocate(from: allocatedSize, to: target)
            allocatedSize = target
        }
        try segment!.write(batch)
        try segment!.dataSync()
        segmentSize += batch.count
        allocatedSize = max(allocatedSize, segmentSize)
    }

    private func startSegment(firstLSN: UInt64) throws(StorageError) {
        segment?.close()
        segment = nil
        let info = SegmentInfo(path: directory + "/" + SegmentInfo.name(firstLSN: firstLSN), firstLSN: firstLSN)
        let file = try DurableFile(path: info.path, flags: O_WRONLY | O_CREAT | O_EXCL, faults: faults)
        let header = WALFormat.segmentHeader(firstLSN: firstLSN)
        try file.write(header)
        try file.fullSync()
        try FileSystem.syncDirectory(directory, faults: faults)
        segment = file
        segmentSize = header.count
        allocatedSize = header.count
        mutex.withLock { segments.append(info) }
    }
}
