// The seam between a shard and where its log lives (docs/cluster.md, "The seam"): the local
// `WriteAheadLog` (the default) and, in cluster mode, a log kept in PostgreSQL
// (`LedgerCluster.PostgresShardLog`). The shard applies a command and appends its record under its
// own lock, and answers the call once the log says the record is durable; the protocol is what it
// needs for that, nothing of how or where the bytes are kept.

/// A shard's log: LSNs assigned in append order, durability learnt by callback or await, and
/// fail-stop (after the first failure nothing more is acknowledged).
public protocol ShardLog: AnyObject, Sendable {
    /// Queues one record, whose body `encodeBody` appends to the bytes it is given (the log's
    /// pending batch, so the record is encoded in place), and returns its LSN and the body's size;
    /// never waits for I/O. Called under the shard's lock.
    func append(syncBy: SyncBy, encodingBody encodeBody: (inout [UInt8]) -> Void) throws(StorageError) -> (lsn: UInt64, bodySize: Int)
    /// Makes what is pending durable on the caller's thread (`SyncBy.caller`); a log that cannot
    /// (a remote one) hands it to its own writer instead. Returns 0, or the nanoseconds to wait
    /// before calling again when the log's sync interval has not passed since its last batch (the
    /// records stay pending until then).
    @discardableResult
    func syncPending() -> UInt64
    /// Returns once every record up to `lsn` is durable; throws if the log stopped first.
    func waitDurable(_ lsn: UInt64) async throws(StorageError)
    /// Calls `completion` once every record up to `lsn` is durable, or with the failure.
    func whenDurable(_ lsn: UInt64, _ completion: @escaping @Sendable (Result<DurableBatch?, StorageError>) -> Void)
    /// Throws when the shard may not answer from memory now: a remote log whose lease may have
    /// run out (another node may own the shard). Always passes for the local log.
    func checkReadable() throws(StorageError)
    var stats: WALStatistics { get }
    /// Flushes what is pending and stops.
    func close()
}

/// A log that also keeps the shard's snapshots (the local mode keeps them in `SnapshotStore` files
/// beside the WAL, which the shard manages itself).
public protocol ExternalShardLog: ShardLog {
    /// Stores a snapshot of the state at `lsn` (the log is durable through it) and drops the log
    /// records and snapshots it makes unneeded.
    func writeSnapshot(lsn: UInt64, body: [UInt8]) async throws
}

extension WriteAheadLog: ShardLog {
    public func checkReadable() throws(StorageError) {}
}
