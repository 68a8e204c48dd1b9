// A shard: one LedgerState, its write-ahead log and its snapshots.
//
// Invariants:
// - Commands are applied in the order they are logged: apply and append happen under the shard's
//   lock, together; the LSN of the state is `appliedLSN`.
// - A reply (execute's return) happens only after the log is durable through the command's LSN;
//   a read waits for `appliedLSN`, so no caller ever sees state a crash could lose.
// - A snapshot at LSN S is written only after the log is durable through S, outside the lock (from
//   a copy-on-write copy of the state); segments are deleted only when the older kept snapshot
//   covers them.
// - After a storage failure the shard is failed for good (fail-stop).

import LedgerCore
import LedgerStore
import Synchronization

public struct ShardConfiguration: Sendable {
    /// A WAL segment that reaches this size is closed and a new one started.
    public var segmentSizeMax: Int
    /// Take a snapshot after this many logged commands...
    public var snapshotEveryRecords: Int
    /// ...or after this long with at least one logged command...
    public var snapshotInterval: Duration
    /// ...and, either way, only once the records logged since the last snapshot add up to this
    /// percentage of that snapshot's size. A snapshot costs in proportion to the whole state, so
    /// this keeps its cost per logged byte constant however large the state grows (at most
    /// 100/percent snapshot bytes per log byte), and recovery replays at most that much log after
    /// loading the snapshot. 0: no such condition.
    public var snapshotLogPercent: Int
    /// Tenants left unchanged for between this long and twice this long are frozen (kept in their
    /// encoded form, see `TenantTable`) by ``LedgerShard/freezeIdleTenants()``; nil: never (a
    /// snapshot read still freezes the tenants it reads).
    public var idleTenantFreezeAfter: Duration?
    /// The storage seam for tests; nil in production.
    public var faults: StorageFaults?
    /// Where every finished WAL segment is kept for point-in-time recovery (`ledgerd
    /// --archive-dir`): the engine gives each shard its own folder below it. nil: none kept.
    public var archiveDirectory: String? = nil
    /// Nanoseconds from the end of one fdatasync of the shard's log to the start of the next
    /// batch's write at the earliest (see `WriteAheadLog.Configuration.syncInterval`); 0: none.
    public var syncIntervalNanoseconds: UInt64 = 0

    public init(
        segmentSizeMax: Int = StorageLimits.segmentSizeDefault, snapshotEveryRecords: Int = 100_000, snapshotInterval: Duration = .seconds(300),
        snapshotLogPercent: Int = 50, idleTenantFreezeAfter: Duration? = .seconds(60), faults: StorageFaults? = nil
    ) {
        self.segmentSizeMax = segmentSizeMax
        self.snapshotEveryRecords = snapshotEveryRecords
        self.snapshotInterval = snapshotInterval
        self.snapshotLogPercent = snapshotLogPercent
        self.idleTenantFreezeAfter = idleTenantFreezeAfter
        self.faults = faults
    }
}

/// What recovery did, for logs and metrics.
public struct RecoveryReport: Sendable {
    public var snapshotLSN: UInt64
    /// Damaged snapshots passed over (the previous one was used).
    public var skippedSnapshots: [String]
    public var recordsReplayed: Int
    public var lastLSN: UInt64
    public var tornBytes: Int
    public var tornFile: String?
    public var temporariesRemoved: Int
    public var nanoseconds: UInt64
}

/// A shard is a class around a lock, not an actor: a call applies its command and appends its
/// record under the lock on whatever thread it arrives (the server's event loop), and is answered
/// right after the fdatasync that covers it, by the thread that made it (the log's writer thread,
/// or with `syncBy: .caller` the event loop itself, see `syncPending`). An actor would add two
/// executor hops per call (onto the actor, and back onto it when the log resumes it) for the same
/// mutual exclusion; docs/benchmarks.md measures the difference.
public final class LedgerShard: Sendable {
    public let index: Int
    /// The shard's folder in the data directory; empty for a shard whose log is external.
    public let directory: String
    public let recovery: RecoveryReport
    /// Where records go (the seam: `ShardLog`).
    private let log: any ShardLog
    /// The local mode's WAL and snapshot files (segments, archive, backups); nil when the log is
    /// external (cluster mode), which keeps the snapshots itself.
    private let local: (wal: WriteAheadLog, snapshots: SnapshotStore)?
    private let clock: any LedgerClock
    private let hub: EventHub?
    private let configuration: ShardConfiguration
    private let core: Mutex<Core>

    /// Everything that changes, guarded by `core`'s lock.
    private struct Core: ~Copyable {
        var state: LedgerState
        var appliedLSN: UInt64
        var failure: String?
        var recordsSinceSnapshot = 0
        /// Record bytes logged since the last snapshot began, and that snapshot's size.
        var logBytesSinceSnapshot = 0
        var lastSnapshotBytes = 0
        var lastSnapshotAt: UInt64
        var snapshotInProgress = false
        /// A backup is copying the shard's files: no snapshot is written (and so no snapshot or
        /// segment deleted) until it is done.
        var backupInProgress = false
        /// First LSNs of the segments already in the archive (with an archive configured).
        var archived: Set<UInt64> = []
        var lastSnapshotNanoseconds: UInt64 = 0
        var snapshotLSN: UInt64
        /// Where the idle-tenant sweep goes on, and when it last ran (monotonic).
        var freezeCursor = 0
        var lastFreezeSweep: UInt64 = monotonicNanoseconds()
    }

    /// Recovers the shard in `directory` (newest valid snapshot, then the log after it), audits the
    /// result and opens the log for appending.
    public init(
        directory: String, index: Int, configuration: ShardConfiguration = ShardConfiguration(),
        clock: any LedgerClock = SystemClock(), hub: EventHub? = nil,
        onFailure: @escaping @Sendable (StorageError) -> Void = { _ in }
    ) throws {
        let started = monotonicNanoseconds()
        self.hub = hub
        self.index = index
        self.directory = directory
        self.configuration = configuration
        self.clock = clock
        let snapshots = SnapshotStore(directory: directory, faults: configuration.faults)
        let temporaries = try snapshots.removeTemporaries()
        let newest = try snapshots.loadNewest()
        let snapshotLSN = newest?.lsn ?? 0
        let log = try WALRecovery.recover(directory: directory, afterLSN: snapshotLSN, faults: configuration.faults)
        let state = try Self.restore(
            snapshot: newest.map { ($0.lsn, $0.body, $0.format) }, records: log.records, shard: index, place: directory)
        let snapshotBytes = newest?.body.count ?? 0
        let skipped = newest?.skipped ?? []
        let wal = try WriteAheadLog(
            directory: directory, recovered: log, configuration: .init(
                segmentSizeMax: configuration.segmentSizeMax, syncInterval: configuration.syncIntervalNanoseconds),
            faults: configuration.faults, onFailure: onFailure)
        self.log = wal
        local = (wal, snapshots)
        // The replayed tail counts toward the next snapshot as if it had just been logged.
        core = Mutex(
            Core(
                state: state, appliedLSN: log.lastLSN, recordsSinceSnapshot: log.records.count,
                logBytesSinceSnapshot: log.records.reduce(0) { $0 + $1.body.count }, lastSnapshotBytes: snapshotBytes,
                lastSnapshotAt: monotonicNanoseconds(), snapshotLSN: snapshotLSN))
        recovery = RecoveryReport(
            snapshotLSN: snapshotLSN, skippedSnapshots: skipped, recordsReplayed: log.records.count, lastLSN: log.lastLSN,
            tornBytes: log.tornBytes, tornFile: log.tornFile, temporariesRemoved: temporaries,
            nanoseconds: monotonicNanoseconds() - started)
        if let root = configuration.archiveDirectory, let archive = shardArchive {
            try FileSystem.makeDirectory(root)
            try FileSystem.makeDirectory(archive)
            // Finished segments archived by an earlier run (a partial copy has another size).
            var archived: Set<UInt64> = []
            for segment in log.segments.dropLast() {
                let name = String(segment.path[segment.path.index(after: segment.path.lastIndex(of: "/")!)...])
                let copy = archive + "/" + name
                if FileSystem.exists(copy), try FileSystem.size(copy) == FileSystem.size(segment.path) {
                    archived.insert(segment.firstLSN)
                }
            }
            core.withLock { $0.archived = archived }
        }
    }

    /// A shard whose log is external (cluster mode): its owner loaded `snapshot` and the records
    /// after it (contiguous from the snapshot's LSN + 1); they are replayed and audited here as
    /// local recovery does, and `log` takes the records from `lastLSN + 1` on.
    public init(
        index: Int, snapshot: (lsn: UInt64, body: ArraySlice<UInt8>, format: UInt32)?, records: [(lsn: UInt64, body: [UInt8])],
        skippedSnapshots: [String] = [], log: any ExternalShardLog, place: String,
        configuration: ShardConfiguration = ShardConfiguration(),
        clock: any LedgerClock = SystemClock(), hub: EventHub? = nil
    ) throws {
        let started = monotonicNanoseconds()
        self.index = index
        directory = ""
        self.configuration = configuration
        self.clock = clock
        self.hub = hub
        self.log = log
        local = nil
        let state = try Self.restore(snapshot: snapshot, records: records, shard: index, place: place)
        let snapshotLSN = snapshot?.lsn ?? 0
        let lastLSN = records.last?.lsn ?? snapshotLSN
        core = Mutex(
            Core(
                state: state, appliedLSN: lastLSN, recordsSinceSnapshot: records.count,
                logBytesSinceSnapshot: records.reduce(0) { $0 + $1.body.count }, lastSnapshotBytes: snapshot?.body.count ?? 0,
                lastSnapshotAt: monotonicNanoseconds(), snapshotLSN: snapshotLSN))
        recovery = RecoveryReport(
            snapshotLSN: snapshotLSN, skippedSnapshots: skippedSnapshots, recordsReplayed: records.count, lastLSN: lastLSN, tornBytes: 0,
            tornFile: nil, temporariesRemoved: 0, nanoseconds: monotonicNanoseconds() - started)
    }

    /// The state a snapshot and the records after it make, audited. `place` names where they came
    /// from in errors.
    public static func restore(
        snapshot: (lsn: UInt64, body: ArraySlice<UInt8>, format: UInt32)?, records: [(lsn: UInt64, body: [UInt8])], shard: Int, place: String
    ) throws -> LedgerState {
        var state = LedgerState()
        var expected: UInt64 = 1
        if let snapshot {
            do {
                state = try LedgerState(binary: Array(snapshot.body), version: snapshot.format)
            } catch {
                throw EngineError.recoveryFailed("snapshot at LSN \(snapshot.lsn) in \(place) does not decode: \(error)")
            }
            expected = snapshot.lsn + 1
        }
        for record in records {
            guard record.lsn == expected else {
                throw EngineError.recoveryFailed("the log of shard \(shard) in \(place) has LSN \(record.lsn) where \(expected) belongs")
            }
            expected += 1
            let command: LedgerCommand
            do {
                command = try LedgerCommand(binary: record.body)
            } catch {
                throw EngineError.recoveryFailed("record LSN \(record.lsn) in \(place) does not decode: \(error)")
            }
            _ = state.apply(command)
        }
        let violations = state.audit()
        guard violations.isEmpty else {
            throw EngineError.recoveryFailed("audit of shard \(shard) failed: \(violations.prefix(5))")
        }
        return state
    }

    /// Applies a command at the clock's time, logs it, and returns once it is durable.
    public func execute(_ body: CommandBody, requestID: RequestID?) async throws -> CommandResult {
        try await withCheckedThrowingContinuation { continuation in
            submit(body, requestID: requestID) { continuation.resume(with: $0) }
        }
    }

    /// `execute` without a task: applies and logs the command now, on the caller's thread, and
    /// calls `completion` once it is durable, from the thread that made it durable (or at once, on
    /// the caller's thread, when the command is refused before it is logged). The completion must be
    /// quick: the log's next batch waits for it.
    ///
    /// `syncBy: .caller`: the caller makes the record durable itself with ``syncPending()`` (soon, on
    /// its thread); the log's writer thread is not woken for it. `.logWriter`: the writer thread does.
    ///
    /// `trace`, when the call is traced, learns when the command was applied and logged and which
    /// batch made it durable (before `completion` runs).
    public func submit(
        _ body: consuming CommandBody, requestID: consuming RequestID?, syncBy: SyncBy = .logWriter, trace: ShardTrace? = nil,
        completion: @escaping @Sendable (Result<CommandResult, any Error>) -> Void
    ) {
        let result: CommandResult
        do {
            // The body and id moved into the command, which is handed on in place (each copy of a
            // body walks its payload); its time is read under the lock, in the log's order.
            var command = LedgerCommand(time: .epoch, requestID: requestID, body: body)
            result = try core.withLock { core in
                try Self.applyAndLog(&command, at: clock.now(), core: &core, log: log, syncBy: syncBy)
            }
        } catch {
            return completion(.failure(error))
        }
        trace?.applied(shard: index)
        // The log's callback itself, not a wrapper around one, and not through the generic
        // `answer`: there `completion` is passed at its most general abstraction, which cost a
        // thunk's context per call besides the callback's own. The result is moved into it: each
        // copy of a `CommandResult` (a tuple with the position, then the value with it set) cost
        // a walk of its payload with a retain per reference in it, and a destroy later.
        log.whenDurable(result.lsn) { [self, result = consume result] outcome in
            // Not `Result.map`: it is not specialized here, and called generically it cost an
            // allocation of its own.
            switch durable(outcome, trace: trace, events: result.events) {
            case .success: completion(.success(result))
            case .failure(let error): completion(.failure(error))
            }
        }
    }

    /// Calls `completion` with `value` once the log is durable through `lsn`, after publishing the
    /// events that became durable with it (or with the log's failure).
    private func answer<T: Sendable>(
        _ value: T, at lsn: UInt64, events: [LedgerEvent], trace: ShardTrace? = nil,
        _ completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        log.whenDurable(lsn) { [self] outcome in
            completion(durable(outcome, trace: trace, events: events).map { value })
        }
    }

    /// What the log's callback says for the calls it made durable: the batch noted in their trace
    /// and their events published, or the shard's failure.
    private func durable(
        _ outcome: Result<DurableBatch?, StorageError>, trace: ShardTrace?, events: [LedgerEvent]
    ) -> Result<Void, any Error> {
        switch outcome {
        case .success(let batch):
            trace?.batch = batch
            hub?.publish(events)
            return .success(())
        case .failure(let error):
            return .failure(durabilityFailed(error))
        }
    }

    /// Called with the lock held: apply and append happen together, so commands are logged in the
    /// order they are applied. The result carries the position of the record that logged it.
    private static func applyAndLog(
        _ command: inout LedgerCommand, at time: LedgerTime, core: inout Core, log: any ShardLog, syncBy: SyncBy = .logWriter
    ) throws -> CommandResult {
        if let failure = core.failure { throw EngineError.unavailable(failure) }
        command.time = time
        var result = core.state.apply(command)
        do {
            // Encoded into the log's pending batch itself (the command is a value: the same bytes
            // as before it was applied).
            let (lsn, bodySize) = try log.append(syncBy: syncBy) { command.encode(appendingTo: &$0) }
            // Applied in log order: each command applied gets the next position of the log.
            precondition(lsn == core.appliedLSN + 1, "shard applied LSN \(core.appliedLSN) but logged \(lsn)")
            core.appliedLSN = lsn
            core.recordsSinceSnapshot += 1
            core.logBytesSinceSnapshot += bodySize
        } catch {
            // The state now holds a change the log does not: this shard must never answer again.
            core.failure = "\(error)"
            throw EngineError.unavailable("\(error)")
        }
        result.lsn = core.appliedLSN
        return result
    }

    /// Writes and syncs the log's pending records on the caller's thread and answers the calls they
    /// make durable (see `WriteAheadLog.syncPending`). The partner of `syncBy: .caller`.
    @discardableResult
    public func syncPending() -> UInt64 {
        log.syncPending()
    }

    private func durable(_ lsn: UInt64) async throws {
        do {
            try await log.waitDurable(lsn)
        } catch {
            throw durabilityFailed(error)
        }
    }

    /// The log could not make a record durable: the shard answers nothing more.
    private func durabilityFailed(_ error: StorageError) -> EngineError {
        core.withLock { core in core.failure = core.failure ?? "\(error)" }
        return EngineError.unavailable("\(error)")
    }

    /// Reads the state after applying whatever fell due, once everything it shows is durable.
    public func read<T: Sendable>(_ body: (LedgerState) throws -> T) async throws -> T {
        try await readWithLSN(body).value
    }

    /// `read`, and the log position of the last record the state read includes.
    public func readWithLSN<T: Sendable>(_ body: (LedgerState) throws -> T) async throws -> (value: T, lsn: UInt64) {
        try await withCheckedThrowingContinuation { continuation in
            submitRead(body) { continuation.resume(with: $0) }
        }
    }

    /// `readWithLSN` without a task: reads now, on the caller's thread, and calls `completion` once
    /// what it read is durable (at once when it already is; otherwise from the thread that made it
    /// durable).
    public func submitRead<T: Sendable>(
        _ body: (LedgerState) throws -> T, trace: ShardTrace? = nil,
        completion: @escaping @Sendable (Result<(value: T, lsn: UInt64), any Error>) -> Void
    ) {
        let read: (T, UInt64, [LedgerEvent])
        do {
            read = try readNow(body)
        } catch {
            return completion(.failure(error))
        }
        trace?.applied(shard: index)
        let (value, lsn, events) = read
        answer((value: value, lsn: lsn), at: lsn, events: events, trace: trace, completion)
    }

    /// Applies what fell due (a tick) and runs `body` on the state, under the lock.
    private func readNow<T: Sendable>(_ body: (LedgerState) throws -> T) throws -> (T, UInt64, [LedgerEvent]) {
        try core.withLock { core in
            do { try log.checkReadable() } catch { throw EngineError.unavailable("\(error)") }
            var lsn = core.appliedLSN
            var events: [LedgerEvent] = []
            if let due = core.state.nextDueTime, due <= clock.now() {
                var command = LedgerCommand(time: .epoch, requestID: nil, body: .tick)
                let tick = try Self.applyAndLog(&command, at: clock.now(), core: &core, log: log)
                (lsn, events) = (tick.lsn, tick.events)
            }
            return (try body(core.state), lsn, events)
        }
    }

    /// Applies what fell due, if anything did (the periodic tick that makes expiry eager).
    public func tickIfDue() async throws {
        let due = core.withLock { core in core.state.nextDueTime.map { $0 <= clock.now() } ?? false }
        guard due else { return }
        _ = try await execute(.tick, requestID: nil)
    }

    /// Takes a snapshot when enough records or time have passed since the last one. Returns whether
    /// it took one.
    @discardableResult
    public func snapshotIfDue() async throws -> Bool {
        let due = core.withLock { core in
            let elapsed = Duration.nanoseconds(Int64(monotonicNanoseconds() - core.lastSnapshotAt))
            guard core.recordsSinceSnapshot >= configuration.snapshotEveryRecords
                || (core.recordsSinceSnapshot > 0 && elapsed >= configuration.snapshotInterval)
            else { return false }
            return core.logBytesSinceSnapshot * 100 >= core.lastSnapshotBytes * configuration.snapshotLogPercent
        }
        guard due else { return false }
        return try await snapshot()
    }

    /// Writes a snapshot of the current state now (unless one is being written). Encoding and
    /// writing happen outside the lock; under it the shard only hands over a copy-on-write copy.
    @discardableResult
    public func snapshot() async throws -> Bool {
        let taken: (state: LedgerState, lsn: UInt64, estimate: Int)? = try core.withLock { core in
            if let failure = core.failure { throw EngineError.unavailable(failure) }
            guard !core.snapshotInProgress, !core.backupInProgress, core.appliedLSN > core.snapshotLSN else { return nil }
            // The state grew by at most about what was logged since the last snapshot: room for
            // that is reserved (pages untouched past the end cost nothing), not grown by doubling.
            let estimate = core.lastSnapshotBytes + core.logBytesSinceSnapshot + 4_096
            core.snapshotInProgress = true
            core.recordsSinceSnapshot = 0
            core.logBytesSinceSnapshot = 0
            core.lastSnapshotAt = monotonicNanoseconds()
            return (core.state, core.appliedLSN, estimate)
        }
        guard let (copy, lsn, estimate) = taken else { return false }
        defer { core.withLock { $0.snapshotInProgress = false } }
        try await durable(lsn)
        let started = monotonicNanoseconds()
        guard let (wal, snapshots) = local else {
            let body = copy.binaryEncoded(capacity: estimate)
            try await (log as! any ExternalShardLog).writeSnapshot(lsn: lsn, body: body)
            snapshotWritten(lsn: lsn, bytes: body.count, started: started)
            return true
        }
        let (kept, bytes) = try snapshots.write(lsn: lsn, state: copy)
        snapshotWritten(lsn: lsn, bytes: bytes, started: started)
        if kept.count == SnapshotStore.keptCount {
            // With an archive, a segment is deleted only once it is archived.
            let archived: Set<UInt64>? = shardArchive == nil ? nil : core.withLock { $0.archived }
            try wal.removeSegments(coveredThrough: kept.last!) { segment in
                archived.map { !$0.contains(segment.firstLSN) } ?? false
            }
        }
        return true
    }

    private func snapshotWritten(lsn: UInt64, bytes: Int, started: UInt64) {
        core.withLock { core in
            core.lastSnapshotNanoseconds = monotonicNanoseconds() - started
            core.lastSnapshotBytes = bytes
            core.snapshotLSN = lsn
        }
    }

    /// This shard's folder in the archive, if there is one (local mode only).
    var shardArchive: String? {
        local == nil ? nil : configuration.archiveDirectory.map { DataDirectory.shardPath($0, index) }
    }

    /// Copies (or hard-links) every finished segment not archived yet into the archive, fsynced,
    /// so that a backup plus the archive restores to any point after it. Run by maintenance; the
    /// segment being written is archived once a newer one starts. Returns how many it archived.
    @discardableResult
    public func archiveFinishedSegments() throws -> Int {
        guard let archive = shardArchive, let wal = local?.wal else { return 0 }
        let segments = wal.segmentList
        let pending = core.withLock { core in segments.dropLast().filter { !core.archived.contains($0.firstLSN) } }
        guard !pending.isEmpty else { return 0 }
        for segment in pending {
            let name = String(segment.path[segment.path.index(after: segment.path.lastIndex(of: "/")!)...])
            let target = archive + "/" + name
            // A copy left by a crash before it was counted may be partial: replaced.
            if FileSystem.exists(target) { try FileSystem.remove(target) }
            _ = try FileSystem.linkOrCopy(from: segment.path, to: target)
        }
        try FileSystem.syncDirectory(archive)
        core.withLock { core in for segment in pending { core.archived.insert(segment.firstLSN) } }
        return pending.count
    }

    /// The state a shard directory holds (newest snapshot, then its log), without changing a file
    /// (a torn tail is an error here, not cut), and the log position it ends at.
    static func recoverReadOnly(_ directory: String) throws -> (LedgerState, UInt64) {
        var state = LedgerState()
        var lsn: UInt64 = 0
        if let snapshot = try SnapshotStore(directory: directory).loadNewest() {
            state = try LedgerState(binary: Array(snapshot.body), version: snapshot.format)
            lsn = snapshot.lsn
        }
        let log = try WALRecovery.scan(directory: directory, afterLSN: lsn)
        for record in log.records { _ = state.apply(try LedgerCommand(binary: record.body)) }
        return (state, max(lsn, log.lastLSN))
    }

    /// What one shard's backup holds.
    public struct BackupReport: Sendable {
        public var snapshotLSN: UInt64
        public var lastLSN: UInt64
        public var bytes: UInt64
        public var filesLinked: Int
        public var filesCopied: Int
    }

    /// Copies the shard into `destination` (an existing, empty directory): a snapshot taken now,
    /// then, while no snapshot is written and so nothing is deleted, the newest snapshot and every
    /// log segment with records after it, the last one only up to where its records are durable.
    /// Whole files are hard-linked when `destination` is on the data directory's filesystem.
    /// Commands go on meanwhile; what they log after the copy started is not in it.
    public func backup(into destination: String) async throws -> BackupReport {
        guard let (wal, snapshots) = local else {
            throw LedgerError(.invalidArgument, "a cluster-mode shard is backed up with its PostgreSQL cluster (docs/cluster.md)")
        }
        _ = try await snapshot()
        // Hold snapshots; wait for one under way (it may be deleting files) to finish.
        while true {
            let held = try core.withLock { core -> Bool in
                if let failure = core.failure { throw EngineError.unavailable(failure) }
                guard !core.snapshotInProgress, !core.backupInProgress else { return false }
                core.backupInProgress = true
                return true
            }
            if held { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        defer { core.withLock { $0.backupInProgress = false } }
        let snapshotLSN = try snapshots.snapshotLSNs().max() ?? 0
        let end = wal.durableEnd
        var report = BackupReport(snapshotLSN: snapshotLSN, lastLSN: end.lsn, bytes: 0, filesLinked: 0, filesCopied: 0)
        func take(_ path: String, bytes: Int?) throws {
            let name = String(path[path.index(after: path.lastIndex(of: "/")!)...])
            let target = destination + "/" + name
            if try FileSystem.linkOrCopy(from: path, to: target, bytes: bytes) {
                report.filesLinked += 1
            } else {
                report.filesCopied += 1
            }
            report.bytes += UInt64(try bytes ?? FileSystem.size(target))
        }
        if snapshotLSN > 0 { try take(snapshots.path(lsn: snapshotLSN), bytes: nil) }
        // Segments from the one that holds snapshotLSN + 1 (recovery reads from the first segment
        // and needs the log to reach back to there).
        let segments = end.segments
        for (index, entry) in segments.enumerated() {
            if index + 1 < segments.count, segments[index + 1].segment.firstLSN <= snapshotLSN + 1 { continue }
            try take(entry.segment.path, bytes: entry.bytes)
        }
        try FileSystem.syncDirectory(destination)
        return report
    }

    /// Freezes the tenants left unchanged for about `idleTenantFreezeAfter` (see `TenantTable`):
    /// visits the share of the tenants that the time since the last call is of that period, so
    /// that each tenant is visited once a period, under the lock at most 4,096 visits and 64 freezes
    /// (encode and audit, a few microseconds each) at a time. Returns how many tenants it froze.
    /// The state's value does not change, so nothing is logged.
    @discardableResult
    public func freezeIdleTenants() -> Int {
        guard let period = configuration.idleTenantFreezeAfter else { return 0 }
        let periodNanoseconds = UInt64(max(1, period.wholeMilliseconds)) * 1_000_000
        var budget = core.withLock { core -> Int in
            let now = monotonicNanoseconds()
            let elapsed = now - min(now, core.lastFreezeSweep)
            core.lastFreezeSweep = now
            // count * elapsed / period, rounded up, at most count.
            let count = UInt64(core.state.tenants.count)
            let (product, overflow) = count.multipliedReportingOverflow(by: elapsed)
            let share = overflow ? count : product / periodNanoseconds + (product % periodNanoseconds == 0 ? 0 : 1)
            return Int(min(count, share))
        }
        var frozen = 0
        while budget > 0 {
            let (visited, froze) = core.withLock { core -> (visited: Int, frozen: Int) in
                guard core.failure == nil else { return (budget, 0) }
                return core.state.freezeIdleTenants(cursor: &core.freezeCursor, visits: min(budget, EngineLimits.idleSweepVisitsPerLock),
                    freezesMax: EngineLimits.idleSweepFreezesPerLock)
            }
            budget -= max(visited, 1)
            frozen += froze
        }
        return frozen
    }

    /// Flushes the log, writes a final snapshot and closes the log.
    public func close(finalSnapshot: Bool = true) async {
        if finalSnapshot, !isFailedNow { _ = try? await snapshot() }
        log.close()
    }

    private var isFailedNow: Bool { core.withLock { $0.failure != nil } }

    /// Closes the log without a snapshot, synchronously (an engine that failed to open).
    func closeLog() { log.close() }

    /// The installed catalog, now (start-up's check of an interrupted install).
    public func catalogNow() -> PriceCatalog? { core.withLock { $0.state.catalog } }

    // MARK: - Introspection for tests, tools and metrics (async, as they were on the actor)

    public var lastAppliedLSN: UInt64 { get async { core.withLock { $0.appliedLSN } } }
    /// The log position the newest snapshot covers (0: none).
    public var latestSnapshotLSN: UInt64 { get async { core.withLock { $0.snapshotLSN } } }
    /// Seconds since the last snapshot was started (or since the shard opened).
    public var secondsSinceSnapshot: Double {
        get async { Double(monotonicNanoseconds() - core.withLock { $0.lastSnapshotAt }) / 1e9 }
    }
    /// How long the last snapshot took to encode and write; 0 before the first.
    public var lastSnapshotSeconds: Double { get async { Double(core.withLock { $0.lastSnapshotNanoseconds }) / 1e9 } }
    public var walStatistics: WALStatistics { get async { log.stats } }
    public var isFailed: Bool { get async { isFailedNow } }
    /// A copy of the state (tests and the admin audit).
    public var stateCopy: LedgerState { get async { core.withLock { $0.state } } }
}

/// What a traced call learns from its shard: when it was applied (and logged) and the batch that
/// made it durable, nil when what it read already was. Allocated only for traced calls. Written by
/// the shard before it calls the call's completion (`applied` on the caller's thread, `batch` on
/// the thread that made it durable, ordered by the log's lock), read by the completion.
public final class ShardTrace: @unchecked Sendable {
    public private(set) var shard = 0
    /// Wall-clock nanoseconds when the command or read was done under the shard's lock.
    public private(set) var appliedAt: UInt64 = 0
    public fileprivate(set) var batch: DurableBatch?

    public init() {}

    fileprivate func applied(shard: Int) {
        self.shard = shard
        appliedAt = wallNanoseconds()
    }
}

extension SnapshotStore {
    /// Bytes of a state's encoding gathered before they are written to the snapshot's file: large
    /// enough that the writes are few (a 500 MB state in 500), small enough to stay in the
    /// processor's cache between being encoded, checksummed and copied to the file.
    static let encodingChunk = 1 << 20

    /// Writes `state` as the snapshot at `lsn`, encoded straight into the file in parts of about
    /// `encodingChunk` bytes (at least a tenant each), never whole in memory. Returns the
    /// snapshots kept, newest first, and the body's size.
    @discardableResult
    func write(lsn: UInt64, state: LedgerState) throws(StorageError) -> (kept: [UInt64], bodyBytes: Int) {
        try write(lsn: lsn) { sink throws(StorageError) in
            var writer = BinaryWriter(capacity: Self.encodingChunk + Self.encodingChunk / 4)
            try state.encode(to: &writer, flushingAt: Self.encodingChunk) { writer throws(StorageError) in
                try writer.drain { bytes throws(StorageError) in try sink.append(bytes) }
            }
            try writer.drain { bytes throws(StorageError) in try sink.append(bytes) }
        }
    }
}
