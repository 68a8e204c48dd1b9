// A shard's log in PostgreSQL (docs/cluster.md, "One statement per round trip, fenced per shard").
//
// Invariants:
// - append() assigns LSNs in call order (under the shard's lock, as the local WAL does) and copies
//   the record, framed and checksummed as in a WAL segment, into the pending batch; it never waits.
// - At most one batch of a shard is in flight. The node's `ClusterLogWriter` sends the pending batches
//   of all its shards in one statement (one round trip, one commit); each shard's batch is inserted
//   only if the same statement finds that shard's head at this node's epoch and at the batch's first
//   LSN, and advances the head (next LSN and lease) with it. Records appended meanwhile go in the
//   next statement: group commit, across shards.
// - Applied: the batch is durable on the primary and the synchronous standby; its waiters are
//   answered. Not applied: another node took the shard (the fence). The statement failed or its
//   connection was lost: the outcome is unknown. Either way the log stops for good (fail-stop):
//   every waiter and every later append fails, and `onFailure` tells the node, which drops the shard
//   (its memory may hold changes the log does not) and may take it again only through a new epoch.
// - Reads are answered from memory only while the lease this node last renewed is surely still its
//   own: until `sent + lease - margin` on the monotonic clock, where `sent` is when the renewing
//   statement was sent (PostgreSQL computed the lease from its own later `now()`).

import Dispatch
import Foundation
import LedgerCore
import LedgerEngine
import LedgerStore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
import Synchronization

public final class PostgresShardLog: ExternalShardLog, @unchecked Sendable {
    public let shard: Int
    public let epoch: UInt64
    private let writer: ClusterLogWriter
    private let database: ClusterDatabase
    private let lease: Duration
    private let margin: Duration
    private let logger: Logger
    private let onFailure: @Sendable (StorageError) -> Void
    /// Stopped because another node holds a newer epoch (an append or a snapshot found the head
    /// moved on), as opposed to an unknown outcome.
    public let fenced = Atomic<Bool>(false)
    private let lock = NIOLock()

    // Guarded by `lock`.
    private var nextLSN: UInt64
    private var durable: UInt64
    private var pending: [UInt8] = []
    private var pendingFirstLSN: UInt64
    private var inFlight = false
    /// Queued with the writer (which takes the batch in its next statement).
    private var queued = false
    private var renewalWanted = false
    private var failure: StorageError?
    private var closing = false
    /// Closed for good: nothing more is sent.
    private var shut = false
    private var waiters: [(lsn: UInt64, completion: @Sendable (Result<DurableBatch?, StorageError>) -> Void)] = []
    /// Monotonic nanoseconds until which reads may be answered.
    private var readableUntil: UInt64
    private var statistics = WALStatistics()

    /// The log of `shard` from `nextLSN` on, under `epoch` (just acquired, with its lease renewed at
    /// `acquiredAt`, monotonic nanoseconds taken before the acquiring statement was sent).
    init(
        shard: Int, epoch: UInt64, nextLSN: UInt64, acquiredAt: UInt64, writer: ClusterLogWriter,
        database: ClusterDatabase, lease: Duration, margin: Duration, logger: Logger,
        onFailure: @escaping @Sendable (StorageError) -> Void
    ) {
        self.shard = shard
        self.epoch = epoch
        self.nextLSN = nextLSN
        durable = nextLSN - 1
        pendingFirstLSN = nextLSN
        self.writer = writer
        self.database = database
        self.lease = lease
        self.margin = margin
        self.logger = logger
        self.onFailure = onFailure
        readableUntil = acquiredAt + Self.nanoseconds(lease - margin)
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds)) / 1_000_000_000
    }

    // MARK: ShardLog

    /// Queues one record whose body `encodeBody` appends to the pending batch itself.
    public func append(syncBy: SyncBy, encodingBody encodeBody: (inout [UInt8]) -> Void) throws(StorageError) -> (lsn: UInt64, bodySize: Int) {
        lock.lock()
        if let failure {
            lock.unlock()
            throw failure
        }
        guard !closing else {
            lock.unlock()
            throw StorageError.stopped(reason: "shard \(shard) is being handed over")
        }
        let lsn = nextLSN
        let bodySize: Int
        do {
            bodySize = try WALFormat.appendRecord(lsn: lsn, to: &pending, encodingBody: encodeBody)
        } catch {
            lock.unlock()
            throw error
        }
        nextLSN += 1
        let wake = queueLocked()
        lock.unlock()
        if wake { writer.wake(self) }
        return (lsn, bodySize)
    }

    /// Nothing to do on the caller's thread: the node's writer sends the batch.
    @discardableResult
    public func syncPending() -> UInt64 { 0 }

    public func waitDurable(_ lsn: UInt64) async throws(StorageError) {
        let result: Result<DurableBatch?, StorageError> = await withCheckedContinuation { continuation in
            whenDurable(lsn) { continuation.resume(returning: $0) }
        }
        _ = try result.get()
    }

    public func whenDurable(_ lsn: UInt64, _ completion: @escaping @Sendable (Result<DurableBatch?, StorageError>) -> Void) {
        lock.lock()
        if durable >= lsn {
            lock.unlock()
            return completion(.success(nil))
        }
        if let failure {
            lock.unlock()
            return completion(.failure(failure))
        }
        waiters.append((lsn, completion))
        lock.unlock()
    }

    public func checkReadable() throws(StorageError) {
        let (until, failure) = lock.withLock { (readableUntil, self.failure) }
        if let failure { throw failure }
        guard monotonicNanoseconds() < until else {
            throw StorageError.stopped(reason: "shard \(shard): this node's lease may have run out; not answering from memory")
        }
    }

    public var stats: WALStatistics { lock.withLock { statistics } }

    /// Stops taking records and waits until what was appended is durable (or failed). The shard is
    /// handed over after this.
    /// Closing twice is harmless (the engine closes its shards at shutdown, then the node hands
    /// them over).
    public func close() {
        // Called from a task or the node's thread, never from the writer's event loop.
        let done = DispatchSemaphore(value: 0)
        let wait = lock.withLock { () -> Bool? in
            guard !shut else { return nil }
            closing = true
            guard inFlight || !pending.isEmpty else { return false }
            closedWaiters.append(done)
            return true
        }
        guard let wait else { return }
        if wait, done.wait(timeout: .now() + .seconds(Int(lease.components.seconds) + 5)) == .timedOut {
            logger.warning("a log write did not finish while closing", metadata: ["shard": "\(shard)"])
        }
        lock.withLock { shut = true }
    }

    private var closedWaiters: [DispatchSemaphore] = []

    /// Renews the lease through the same pipeline (ordered after the batches in flight): the idle
    /// shard's heartbeat. Fenced like an append.
    public func renew() {
        let wake = lock.withLock { () -> Bool in
            // A closing log takes no more records: its lease need only last until it is released.
            guard !closing, failure == nil else { return false }
            renewalWanted = true
            return queueLocked()
        }
        if wake { writer.wake(self) }
    }

    public var isFailed: Bool { lock.withLock { failure != nil } }

    // MARK: Snapshots

    /// Stores the snapshot in chunks, then, in one short transaction fenced by the epoch, points the
    /// head at it and deletes the snapshot before the previous one and the log rows it covers (the
    /// previous snapshot and the log after it stay, for a load that finds the new one damaged).
    public func writeSnapshot(lsn: UInt64, body: [UInt8]) async throws {
        let client = database.client
        let index = Int32(shard)
        let epoch = Int64(epoch)
        let chunkSize = ClusterSchema.snapshotChunkBytes
        let chunks = max(1, (body.count + chunkSize - 1) / chunkSize)
        for chunk in 0..<chunks {
            let part = Array(body[(chunk * chunkSize)..<min(body.count, (chunk + 1) * chunkSize)])
            let crc = Int64(CRC32C.checksum(part))
            try await client.query(
                """
                INSERT INTO tokenledger_shard_snapshot (shard, lsn, chunk, chunks, crc, format, body)
                SELECT \(index), \(Int64(lsn)), \(Int32(chunk)), \(Int32(chunks)), \(crc), \(Int32(SnapshotStore.formatVersion)), \(ByteBuffer(bytes: part))
                FROM tokenledger_shard_head WHERE shard = \(index) AND epoch = \(epoch)
                ON CONFLICT (shard, lsn, chunk) DO UPDATE
                    SET chunks = EXCLUDED.chunks, crc = EXCLUDED.crc, format = EXCLUDED.format, body = EXCLUDED.body
                """, logger: logger)
        }
        let fenced = try await client.withTransaction(logger: logger) { connection -> Bool in
            var previous: Int64? = nil
            for try await value in try await connection.query(
                "SELECT snapshot_lsn FROM tokenledger_shard_head WHERE shard = \(index) AND epoch = \(epoch) FOR UPDATE",
                logger: logger
            ).decode(Int64.self) { previous = value }
            guard let previous else { return true }
            guard previous < Int64(lsn) else { return false }
            try await connection.query(
                "UPDATE tokenledger_shard_head SET snapshot_lsn = \(Int64(lsn)) WHERE shard = \(index) AND epoch = \(epoch)",
                logger: logger)
            try await connection.query(
                "DELETE FROM tokenledger_shard_snapshot WHERE shard = \(index) AND lsn < \(previous)", logger: logger)
            try await connection.query(
                "DELETE FROM tokenledger_shard_log WHERE shard = \(index) AND last_lsn <= \(previous)", logger: logger)
            return false
        }
        if fenced {
            self.fenced.store(true, ordering: .relaxed)
            throw StorageError.stopped(reason: "shard \(shard): fenced (another node holds a newer epoch)")
        }
    }

    // MARK: The writer's side

    /// With the lock held: whether the writer must be told (something to send, nothing in flight,
    /// not queued yet).
    private func queueLocked() -> Bool {
        guard !queued, !inFlight, !shut, failure == nil, !pending.isEmpty || renewalWanted else { return false }
        queued = true
        return true
    }

    /// What the writer sends for this shard: the pending batch, or a lease renewal (no records).
    struct Batch {
        let log: PostgresShardLog
        let shard: Int32
        let epoch: Int64
        let first: UInt64
        let last: UInt64
        let body: [UInt8]
        let startedAt: UInt64
    }

    /// Called by the writer as it builds a statement: hands over the pending batch (nil when there
    /// is nothing to send, or the log stopped).
    func takeBatch() -> Batch? {
        lock.lock()
        queued = false
        guard !inFlight, failure == nil, !shut, !pending.isEmpty || renewalWanted else {
            finishCloseLocked()
            lock.unlock()
            return nil
        }
        renewalWanted = false
        inFlight = true
        let batch = Batch(
            log: self, shard: Int32(shard), epoch: Int64(epoch), first: pendingFirstLSN, last: nextLSN - 1, body: pending,
            startedAt: wallNanoseconds())
        pending = []
        pendingFirstLSN = nextLSN
        #if DEBUG
            // The sabotage of scripts/cluster-faults --sabotage ack-before-commit: the calls are
            // answered as the batch leaves, before PostgreSQL committed it (the checker must see
            // the acknowledgements lost). Debug builds only: a release ledgerd cannot do this.
            if Self.sabotage == "ack-before-commit", !batch.body.isEmpty {
                durable = batch.last
                let ready = takeWaitersLocked(upTo: batch.last)
                lock.unlock()
                for completion in ready { completion(.success(nil)) }
                return batch
            }
        #endif
        lock.unlock()
        return batch
    }

    /// With the lock held: removes and returns the completions of the waiters up to `lsn`.
    private func takeWaitersLocked(upTo lsn: UInt64) -> [@Sendable (Result<DurableBatch?, StorageError>) -> Void] {
        var ready: [@Sendable (Result<DurableBatch?, StorageError>) -> Void] = []
        waiters.removeAll { waiter in
            guard waiter.lsn <= lsn else { return false }
            ready.append(waiter.completion)
            return true
        }
        return ready
    }

    #if DEBUG
        static let sabotage = ProcessInfo.processInfo.environment["TOKENLEDGER_SABOTAGE"] ?? ""
    #endif

    /// The statement that carried `batch` committed; `applied`: this shard's part matched its head
    /// (otherwise another node holds a newer epoch).
    func finished(_ batch: Batch, applied: Bool, sent: UInt64) {
        guard applied else {
            fenced.store(true, ordering: .relaxed)
            return fail(.stopped(reason: "shard \(shard): fenced, another node holds a newer epoch than \(epoch)"))
        }
        let durableBatch = batch.body.isEmpty ? nil : DurableBatch(
            firstLSN: batch.first, lastLSN: batch.last, bytes: batch.body.count, startedAt: batch.startedAt,
            syncedAt: wallNanoseconds(), byWriterThread: true)
        lock.lock()
        inFlight = false
        readableUntil = sent + Self.nanoseconds(lease - margin)
        var ready: [@Sendable (Result<DurableBatch?, StorageError>) -> Void] = []
        if let durableBatch {
            durable = durableBatch.lastLSN
            statistics.syncs += 1
            statistics.records += UInt64(durableBatch.records)
            statistics.bytes += UInt64(durableBatch.bytes)
            statistics.syncNanoseconds += durableBatch.syncedAt - min(durableBatch.syncedAt, durableBatch.startedAt)
            ready = takeWaitersLocked(upTo: durableBatch.lastLSN)
        }
        let wake = queueLocked()
        finishCloseLocked()
        lock.unlock()
        if wake { writer.wake(self) }
        for completion in ready { completion(.success(durableBatch)) }
    }

    /// The statement that carried this shard's batch failed: its outcome is unknown.
    func unknownOutcome(_ error: any Error) {
        fail(.stopped(reason: "shard \(shard): the outcome of a log write is unknown (\(String(reflecting: error)))"))
    }

    private func fail(_ error: StorageError) {
        lock.lock()
        inFlight = false
        let first = failure == nil
        if first { failure = error }
        let all = waiters.map(\.completion)
        waiters = []
        pending = []
        finishCloseLocked()
        lock.unlock()
        if first {
            logger.error("shard log stopped", metadata: ["shard": "\(shard)", "epoch": "\(epoch)", "error": "\(error)"])
            onFailure(error)
        }
        for completion in all { completion(.failure(error)) }
    }

    /// With the lock held: wakes a closer once nothing is in flight or pending.
    private func finishCloseLocked() {
        guard closing, !inFlight, pending.isEmpty || failure != nil else { return }
        for waiter in closedWaiters { waiter.signal() }
        closedWaiters = []
    }

    // MARK: Batch bodies

    /// The records of a stored batch, each checked (frame, CRC32C, LSN) as recovery checks a WAL
    /// segment's.
    static func decodeBatch(_ bytes: [UInt8], firstLSN: UInt64, lastLSN: UInt64, shard: Int) throws -> [(lsn: UInt64, body: [UInt8])] {
        var records: [(lsn: UInt64, body: [UInt8])] = []
        var offset = 0
        var expected = firstLSN
        try bytes.withUnsafeBytes { buffer in
            while offset < buffer.count {
                switch WALFormat.checkRecord(buffer, at: offset) {
                case .valid(let lsn, let body) where lsn == expected:
                    records.append((lsn, Array(buffer[body])))
                    offset = body.upperBound
                    expected += 1
                default:
                    throw ClusterError("shard \(shard): the batch at LSN \(firstLSN) is damaged at offset \(offset)")
                }
            }
        }
        guard expected == lastLSN + 1 else {
            throw ClusterError("shard \(shard): the batch at LSN \(firstLSN) holds \(expected - firstLSN) records, not \(lastLSN - firstLSN + 1)")
        }
        return records
    }
}
