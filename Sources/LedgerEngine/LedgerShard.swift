// A shard: one LedgerState, its write-ahead log and its snapshots.
//
// Invariants:
// - Commands are applied in the order they are logged: apply and append happen in one actor turn
//   with no suspension between them; the LSN of the state is `appliedLSN`.
// - A reply (execute's return) happens only after the log is durable through the command's LSN;
//   a read waits for `appliedLSN`, so no caller ever sees state a crash could lose.
// - A snapshot at LSN S is written only after the log is durable through S, off the actor (from a
//   copy-on-write copy of the state); segments are deleted only when the older kept snapshot
//   covers them.
// - After a storage failure the shard is failed for good (fail-stop).

import LedgerCore
import LedgerStore

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
    /// The storage seam for tests; nil in production.
    public var faults: StorageFaults?

    public init(
        segmentSizeMax: Int = 64 << 20, snapshotEveryRecords: Int = 100_000, snapshotInterval: Duration = .seconds(300),
        snapshotLogPercent: Int = 50, faults: StorageFaults? = nil
    ) {
        self.segmentSizeMax = segmentSizeMax
        self.snapshotEveryRecords = snapshotEveryRecords
        self.snapshotInterval = snapshotInterval
        self.snapshotLogPercent = snapshotLogPercent
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

public actor LedgerShard {
    public nonisolated let index: Int
    public nonisolated let directory: String
    public nonisolated let recovery: RecoveryReport
    private var state: LedgerState
    private var appliedLSN: UInt64
    private let wal: WriteAheadLog
    private let snapshots: SnapshotStore
    private let clock: any LedgerClock
    private let hub: EventHub?
    private let configuration: ShardConfiguration
    private var failure: String?
    private var recordsSinceSnapshot = 0
    /// Record bytes logged since the last snapshot began, and that snapshot's size.
    private var logBytesSinceSnapshot = 0
    private var lastSnapshotBytes = 0
    private var lastSnapshotAt: UInt64
    private var snapshotInProgress = false
    private var lastSnapshotNanoseconds: UInt64 = 0
    private var snapshotLSN: UInt64

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
        snapshots = SnapshotStore(directory: directory, faults: configuration.faults)
        let temporaries = try snapshots.removeTemporaries()
        var state = LedgerState()
        var snapshotLSN: UInt64 = 0
        var skipped: [String] = []
        var snapshotBytes = 0
        if let snapshot = try snapshots.loadNewest() {
            snapshotBytes = snapshot.body.count
            do {
                state = try LedgerState(binary: Array(snapshot.body))
            } catch {
                throw EngineError.recoveryFailed("snapshot at LSN \(snapshot.lsn) in \(directory) does not decode: \(error)")
            }
            snapshotLSN = snapshot.lsn
            skipped = snapshot.skipped
        }
        let log = try WALRecovery.recover(directory: directory, afterLSN: snapshotLSN, faults: configuration.faults)
        for record in log.records {
            let command: LedgerCommand
            do {
                command = try LedgerCommand(binary: record.body)
            } catch {
                throw EngineError.recoveryFailed("record LSN \(record.lsn) in \(directory) does not decode: \(error)")
            }
            _ = state.apply(command)
        }
        let violations = state.audit()
        guard violations.isEmpty else {
            throw EngineError.recoveryFailed("audit of shard \(index) failed: \(violations.prefix(5))")
        }
        self.state = state
        self.snapshotLSN = snapshotLSN
        // The replayed tail counts toward the next snapshot as if it had just been logged.
        lastSnapshotBytes = snapshotBytes
        recordsSinceSnapshot = log.records.count
        logBytesSinceSnapshot = log.records.reduce(0) { $0 + $1.body.count }
        appliedLSN = log.lastLSN
        wal = try WriteAheadLog(
            directory: directory, recovered: log, configuration: .init(segmentSizeMax: configuration.segmentSizeMax),
            faults: configuration.faults, onFailure: onFailure)
        lastSnapshotAt = monotonicNanoseconds()
        recovery = RecoveryReport(
            snapshotLSN: snapshotLSN, skippedSnapshots: skipped, recordsReplayed: log.records.count, lastLSN: log.lastLSN,
            tornBytes: log.tornBytes, tornFile: log.tornFile, temporariesRemoved: temporaries,
            nanoseconds: monotonicNanoseconds() - started)
    }

    /// Applies a command at the clock's time, logs it, and returns once it is durable.
    public func execute(_ body: CommandBody, requestID: RequestID?) async throws -> CommandResult {
        var (result, lsn) = try applyAndLog(LedgerCommand(time: clock.now(), requestID: requestID, body: body))
        try await durable(lsn)
        hub?.publish(result.events)
        result.lsn = lsn
        return result
    }

    private func applyAndLog(_ command: LedgerCommand) throws -> (CommandResult, UInt64) {
        if let failure { throw EngineError.unavailable(failure) }
        let bytes = command.binaryEncoded
        let result = state.apply(command)
        do {
            appliedLSN = try wal.append(bytes)
        } catch {
            // The state now holds a change the log does not: this shard must never answer again.
            failure = "\(error)"
            throw EngineError.unavailable("\(error)")
        }
        recordsSinceSnapshot += 1
        logBytesSinceSnapshot += bytes.count
        return (result, appliedLSN)
    }

    private func durable(_ lsn: UInt64) async throws {
        do {
            try await wal.waitDurable(lsn)
        } catch {
            failure = failure ?? "\(error)"
            throw EngineError.unavailable("\(error)")
        }
    }

    /// Reads the state after applying whatever fell due, once everything it shows is durable.
    public func read<T: Sendable>(_ body: (LedgerState) throws -> T) async throws -> T {
        try await readWithLSN(body).value
    }

    /// `read`, and the log position of the last record the state read includes.
    public func readWithLSN<T: Sendable>(_ body: (LedgerState) throws -> T) async throws -> (value: T, lsn: UInt64) {
        var lsn = appliedLSN
        var events: [LedgerEvent] = []
        if let due = state.nextDueTime, due <= clock.now() {
            let tick: CommandResult
            (tick, lsn) = try applyAndLog(LedgerCommand(time: clock.now(), requestID: nil, body: .tick))
            events = tick.events
        }
        let value = try body(state)
        try await durable(lsn)
        hub?.publish(events)
        return (value, lsn)
    }

    /// Applies what fell due, if anything did (the periodic tick that makes expiry eager).
    public func tickIfDue() async throws {
        guard let due = state.nextDueTime, due <= clock.now() else { return }
        _ = try await execute(.tick, requestID: nil)
    }

    /// Takes a snapshot when enough records or time have passed since the last one. Returns whether
    /// it took one.
    @discardableResult
    public func snapshotIfDue() async throws -> Bool {
        let elapsed = Duration.nanoseconds(Int64(monotonicNanoseconds() - lastSnapshotAt))
        guard recordsSinceSnapshot >= configuration.snapshotEveryRecords
            || (recordsSinceSnapshot > 0 && elapsed >= configuration.snapshotInterval)
        else { return false }
        guard logBytesSinceSnapshot * 100 >= lastSnapshotBytes * configuration.snapshotLogPercent else { return false }
        return try await snapshot()
    }

    /// Writes a snapshot of the current state now (unless one is being written). Encoding and
    /// writing happen off the actor; the actor only hands over a copy-on-write copy.
    @discardableResult
    public func snapshot() async throws -> Bool {
        if let failure { throw EngineError.unavailable(failure) }
        guard !snapshotInProgress, appliedLSN > snapshotLSN else { return false }
        snapshotInProgress = true
        defer { snapshotInProgress = false }
        let copy = state
        let lsn = appliedLSN
        recordsSinceSnapshot = 0
        logBytesSinceSnapshot = 0
        lastSnapshotAt = monotonicNanoseconds()
        try await durable(lsn)
        let started = monotonicNanoseconds()
        let (kept, size) = try await Self.write(copy, lsn: lsn, store: snapshots)
        lastSnapshotNanoseconds = monotonicNanoseconds() - started
        lastSnapshotBytes = size
        snapshotLSN = lsn
        if kept.count == SnapshotStore.keptCount { try wal.removeSegments(coveredThrough: kept.last!) }
        return true
    }

    /// Encodes and writes the snapshot; returns the kept snapshots' positions and the body's size.
    private nonisolated static func write(_ state: LedgerState, lsn: UInt64, store: SnapshotStore) async throws -> ([UInt64], Int) {
        let body = state.binaryEncoded
        return (try store.write(lsn: lsn, body: body), body.count)
    }

    /// Flushes the log, writes a final snapshot and closes the log.
    public func close(finalSnapshot: Bool = true) async {
        if finalSnapshot, failure == nil { _ = try? await snapshot() }
        wal.close()
    }

    // MARK: - Introspection for tests, tools and metrics

    public var lastAppliedLSN: UInt64 { appliedLSN }
    /// The log position the newest snapshot covers (0: none).
    public var latestSnapshotLSN: UInt64 { snapshotLSN }
    /// Seconds since the last snapshot was started (or since the shard opened).
    public var secondsSinceSnapshot: Double { Double(monotonicNanoseconds() - lastSnapshotAt) / 1e9 }
    /// How long the last snapshot took to encode and write; 0 before the first.
    public var lastSnapshotSeconds: Double { Double(lastSnapshotNanoseconds) / 1e9 }
    public var walStatistics: WALStatistics { wal.stats }
    public var isFailed: Bool { failure != nil }
    /// A copy of the state (tests and the admin audit).
    public var stateCopy: LedgerState { state }
}
