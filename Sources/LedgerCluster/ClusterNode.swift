// One ledgerd node of a cluster (docs/cluster.md, "Ownership by lease"): every round it says it is
// alive, renews the leases of the shards it serves (through their logs, fenced like appends),
// learns who serves the others, takes shards whose lease ran out up to its share
// (ceil(shards / live nodes)), hands over what is above its share, and brings its shards' price
// catalog up to the one stored in the database. A shard whose log stopped (fenced, or an outcome
// it cannot know) is dropped at once; the node may take it again only through a new epoch of its
// own, once the lease it may still hold has run out.

import Dispatch
import LedgerCore
import LedgerEngine
import LedgerStore
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

public struct ClusterNodeConfiguration: Sendable {
    /// This node's name in the cluster (unique; stable across restarts).
    public var nodeID: String
    /// Where clients reach this node's framed port (host:port), told to clients sent elsewhere.
    public var advertise: String
    /// How long a shard's lease lasts from its last renewal (each append renews it too).
    public var lease: Duration = .seconds(5)
    /// How often the node renews, rebalances and looks at the others.
    public var round: Duration = .seconds(1)
    /// Reads are answered from memory until `renewal sent + lease - margin`.
    public var margin: Duration = .seconds(1)
    public var shard = ShardConfiguration()

    public init(nodeID: String, advertise: String) {
        self.nodeID = nodeID
        self.advertise = advertise
    }
}

public final class ClusterNode: Sendable {
    public let database: ClusterDatabase
    public let engine: LedgerEngine
    public let configuration: ClusterNodeConfiguration
    private let placement: ShardPlacement
    private let clock: any LedgerClock
    private let logger: Logger
    /// The logs of the shards served here, by shard.
    private let logs = Mutex<[Int: (log: PostgresShardLog, shard: LedgerShard)]>([:])
    private let stopping = Atomic<Bool>(false)
    /// Sends the batches of all the shards served here, one statement at a time.
    private let writer: ClusterLogWriter
    /// The step the current round is in and since when: a watchdog logs a round that spends more
    /// than a lease in one step (a database call that does not return), naming it.
    private let step = Mutex<(name: String, since: ContinuousClock.Instant)?>(nil)

    public init(
        database: ClusterDatabase, engine: LedgerEngine, configuration: ClusterNodeConfiguration,
        clock: any LedgerClock = SystemClock(), logger: Logger
    ) {
        precondition(engine.placement != nil, "a cluster node needs an engine in cluster mode")
        self.database = database
        self.engine = engine
        self.configuration = configuration
        placement = engine.placement!
        self.clock = clock
        self.logger = logger
        writer = ClusterLogWriter(database: database, lease: configuration.lease, logger: logger)
        placement.setCatalogInstaller { [self] catalog in try await installCatalog(catalog) }
        placement.address = configuration.advertise
    }

    /// Rounds until the task is cancelled or ``handOver()`` ran.
    public func run() async {
        let watchdog = Task { [self] in
            var reported: ContinuousClock.Instant? = nil
            while !Task.isCancelled {
                try? await Task.sleep(for: configuration.lease)
                guard let (name, since) = step.withLock({ $0 }), ContinuousClock.now - since > configuration.lease, reported != since
                else { continue }
                reported = since
                logger.warning(
                    "cluster round stuck", metadata: ["step": "\(name)", "ms": "\((ContinuousClock.now - since).wholeMilliseconds)"])
            }
        }
        defer { watchdog.cancel() }
        while !Task.isCancelled, !stopping.load(ordering: .relaxed) {
            do {
                try await round()
            } catch {
                placement.figures.withLock { $0.failedRounds += 1 }
                logger.warning("cluster round failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await Task.sleep(for: configuration.round)
        }
    }

    /// One round (tests call it directly to step a node).
    public func round() async throws {
        guard !stopping.load(ordering: .relaxed) else { return }
        defer { enter(nil) }
        enter("heartbeat")
        let live = try await database.heartbeat(nodeID: configuration.nodeID, address: configuration.advertise, lease: configuration.lease)
        let share = (placement.shardCount + live - 1) / live
        // Drop what stopped; renew the rest.
        for (index, entry) in logs.withLock({ $0 }) {
            if entry.log.isFailed {
                drop(index, entry.shard)
            } else {
                entry.log.renew()
                placement.figures.withLock { $0.renewals += 1 }
            }
        }
        enter("heads")
        let heads = try await database.heads()
        let mine = logs.withLock { Set($0.keys) }
        for head in heads where !mine.contains(head.shard) {
            if !head.leaseExpired, let address = head.ownerAddress, head.owner != configuration.nodeID {
                placement.set(head.shard, .elsewhere(address: address, epoch: head.epoch))
            } else {
                placement.set(head.shard, .unowned)
            }
        }
        var owned = mine.count
        if owned < share {
            // Start the search at a place of this node's own, so that nodes starting together do
            // not all race for shard 0 first.
            let start = Int(LedgerEngine.stableHash(configuration.nodeID) % UInt64(heads.count))
            for offset in 0..<heads.count where owned < share {
                let head = heads[(start + offset) % heads.count]
                guard head.leaseExpired, !mine.contains(head.shard), !stopping.load(ordering: .relaxed) else { continue }
                enter("take shard \(head.shard)")
                if try await take(head.shard) { owned += 1 }
            }
        } else if owned > share {
            for index in mine.sorted().suffix(owned - share) {
                enter("hand shard \(index) over")
                await handOver(index)
            }
        }
        enter("catalog")
        try await syncCatalog()
        // The webhook sink, if any, follows the shards taken and lost.
        engine.eventHub.wakeEveryTenant()
    }

    private func enter(_ name: String?) {
        step.withLock { $0 = name.map { ($0, ContinuousClock.now) } }
    }

    /// Takes and loads `index` if its lease ran out. Returns whether this node serves it now.
    @discardableResult
    public func take(_ index: Int) async throws -> Bool {
        let sent = monotonicNanoseconds()
        guard
            let head = try await database.acquire(
                shard: index, nodeID: configuration.nodeID, address: configuration.advertise, lease: configuration.lease)
        else { return false }
        placement.figures.withLock { $0.acquired += 1 }
        do {
            let started = monotonicNanoseconds()
            let stored = try await database.load(head)
            let holder = Mutex<LedgerShard?>(nil)
            let log = PostgresShardLog(
                shard: index, epoch: head.epoch, nextLSN: head.nextLSN, acquiredAt: sent, writer: writer,
                database: database, lease: configuration.lease, margin: configuration.margin, logger: logger
            ) { [self] error in
                if let shard = holder.withLock({ $0 }) { lost(index, shard, error) }
            }
            let shard = try LedgerShard(
                index: index, snapshot: stored.snapshot, records: stored.records, skippedSnapshots: stored.skipped, log: log,
                place: "PostgreSQL shard \(index) at epoch \(head.epoch)", configuration: configuration.shard, clock: clock,
                hub: engine.eventHub)
            holder.withLock { $0 = shard }
            logs.withLock { $0[index] = (log, shard) }
            placement.set(index, .owned(shard, epoch: head.epoch))
            logger.notice(
                "took shard",
                metadata: [
                    "shard": "\(index)", "epoch": "\(head.epoch)", "snapshot_lsn": "\(head.snapshotLSN)",
                    "records_replayed": "\(stored.records.count)", "bytes": "\(stored.bytes)",
                    "snapshots_skipped": "\(stored.skipped)",
                    "ms": "\((monotonicNanoseconds() - started) / 1_000_000)",
                ])
            if log.isFailed { lost(index, shard, .stopped(reason: "the log stopped while the shard was loaded")) }
            return true
        } catch {
            // Not served: let another node (or this one, next round) try under a newer epoch.
            logger.error("could not load shard", metadata: ["shard": "\(index)", "error": "\(String(reflecting: error))"])
            try? await database.release(shard: index, epoch: head.epoch)
            throw error
        }
    }

    /// The log of a served shard stopped: no more calls go to it.
    private func lost(_ index: Int, _ shard: LedgerShard, _ error: StorageError) {
        let fenced = logs.withLock { $0[index].map { $0.shard === shard && $0.log.fenced.load(ordering: .relaxed) } ?? false }
        placement.figures.withLock {
            $0.lost += 1
            if fenced { $0.fenced += 1 }
        }
        drop(index, shard)
    }

    private func drop(_ index: Int, _ shard: LedgerShard) {
        if placement.vacate(index, ifHolding: shard, with: .unowned) { endWatches(index) }
        let removed = logs.withLock { logs -> PostgresShardLog? in
            guard let entry = logs[index], entry.shard === shard else { return nil }
            logs[index] = nil
            return entry.log
        }
        if let removed {
            logger.warning("dropped shard", metadata: ["shard": "\(index)", "epoch": "\(removed.epoch)"])
            DispatchQueue.global().async { removed.close() }
        }
    }

    /// Hands `index` over: no new call reaches it, what it logged becomes durable, then its lease
    /// is set to the past so that another node takes it at once.
    public func handOver(_ index: Int) async {
        guard let entry = logs.withLock({ $0.removeValue(forKey: index) }) else { return }
        placement.set(index, .unowned)
        endWatches(index)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                entry.log.close()
                continuation.resume()
            }
        }
        do {
            try await database.release(shard: index, epoch: entry.log.epoch)
            placement.figures.withLock { $0.handedOver += 1 }
            logger.notice("handed shard over", metadata: ["shard": "\(index)", "epoch": "\(entry.log.epoch)"])
        } catch {
            logger.warning("could not release shard; its lease runs out instead", metadata: ["shard": "\(index)", "error": "\(error)"])
        }
    }

    /// Ends the watches of the shard's tenants once its slot no longer holds it: each watcher is
    /// told where the shard went (`wrong_owner`) or to retry (`unavailable`) and resumes after its
    /// last event at the new owner, which serves the same event ids.
    private func endWatches(_ index: Int) {
        let engine = engine
        engine.eventHub.finish { engine.shardIndex(for: $0) == index }
    }

    /// SIGTERM: stop taking shards, hand over every shard served here, leave the cluster.
    public func handOver() async {
        stopping.store(true, ordering: .relaxed)
        for index in logs.withLock({ $0.keys.sorted() }) { await handOver(index) }
        writer.close()
        try? await database.leave(nodeID: configuration.nodeID)
    }

    // MARK: The catalog

    /// Cluster mode's install: checked by a shard served here (the state machine refuses the same
    /// version with other prices), then stored as the decision in the database, then applied on
    /// the shards served here; every other node applies it within a round.
    func installCatalog(_ catalog: PriceCatalog) async throws -> CommandResult {
        guard let first = placement.owned.first else {
            throw LedgerError(.unavailable, "this node serves no shard yet; retry shortly")
        }
        let result = try await first.execute(.installCatalog(catalog), requestID: nil)
        if case .failure = result.outcome { return result }
        _ = try await database.storeCatalog(catalog)
        try await syncCatalog()
        return result
    }

    /// Installs the stored catalog on every shard served here that holds another.
    func syncCatalog() async throws {
        let version = try await database.storedCatalogVersion()
        guard !version.isEmpty else { return }
        let behind = placement.owned.filter { $0.catalogNow()?.version != version }
        guard !behind.isEmpty, let catalog = try await database.storedCatalog() else { return }
        for shard in behind {
            _ = try await shard.execute(.installCatalog(catalog), requestID: nil)
        }
    }
}
