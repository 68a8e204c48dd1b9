import LedgerCore
import LedgerEngine
import Prometheus
import Synchronization

/// The server's Prometheus metrics (docs/operations.md lists them and what to alert on). Call
/// metrics are recorded as calls finish; engine figures (log, snapshots, recovery, tenants, holds)
/// are read from the shards when a scrape asks for them, so they cost nothing between scrapes.
public final class LedgerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    private let connections: Gauge
    private let connectionsMax: Gauge
    private let grpcConnections: Gauge
    private let maintenanceFailures: Counter
    private let inFlight: Gauge
    private let watches: Gauge
    private let walRecords: Counter
    private let walSyncs: Counter
    private let walLoopSyncs: Counter
    private let walBytes: Counter
    private let walSyncSeconds: Counter
    private let opsPerSync: Gauge
    private let tenants: Gauge
    private let frozenTenants: Gauge
    private let openHolds: Gauge
    private let tokensHeld: Gauge
    /// What the WAL counters were at the last scrape, per shard: counters only grow by deltas.
    private let lastWAL = Mutex<[Int: WALTotals]>([:])

    struct WALTotals {
        var records: UInt64 = 0, syncs: UInt64 = 0, callerSyncs: UInt64 = 0, bytes: UInt64 = 0, nanoseconds: UInt64 = 0
    }

    static let durationBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(1_000),
    ]

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "tokenledger", metricName: metric, unitName: unit, helpText: help)
    }

    public init() {
        connections = registry.makeGauge(descriptor: Self.name("connections", "", "Open client connections."))
        grpcConnections = registry.makeGauge(
            descriptor: Self.name("grpc_connections", "", "Open connections on the gRPC port (--grpc-listen)."))
        connectionsMax = registry.makeGauge(
            descriptor: Self.name("connections_max", "", "The connection limit (--connections-max): beyond it new connections are refused."))
        maintenanceFailures = registry.makeCounter(
            descriptor: Self.name(
                "maintenance_failures", "total", "Maintenance rounds (ticks, snapshots, idle freezing) that failed; each is logged."))
        inFlight = registry.makeGauge(descriptor: Self.name("calls_in_flight", "", "Calls being served now."))
        watches = registry.makeGauge(descriptor: Self.name("watches", "", "Watch streams open now."))
        walRecords = registry.makeCounter(descriptor: Self.name("wal_records", "total", "Records made durable in the log."))
        walSyncs = registry.makeCounter(descriptor: Self.name("wal_fsyncs", "total", "fdatasync calls of the log."))
        walLoopSyncs = registry.makeCounter(
            descriptor: Self.name(
                "wal_event_loop_fsyncs", "total", "Of the log's fdatasync calls, those made by an event loop's group commit."))
        walBytes = registry.makeCounter(descriptor: Self.name("wal_bytes", "total", "Bytes written to the log."))
        walSyncSeconds = registry.makeCounter(
            descriptor: Self.name("wal_write_fsync", "seconds_total", "Time spent writing and fdatasync'ing the log."))
        opsPerSync = registry.makeGauge(
            descriptor: Self.name("wal_records_per_fsync", "", "Records per fdatasync since start (group commit)."))
        tenants = registry.makeGauge(descriptor: Self.name("tenants", "", "Tenants in the ledger."))
        frozenTenants = registry.makeGauge(
            descriptor: Self.name("tenants_frozen", "", "Tenants kept in their encoded form until a command changes them."))
        openHolds = registry.makeGauge(descriptor: Self.name("open_holds", "", "Holds reserved and not yet resolved."))
        tokensHeld = registry.makeGauge(descriptor: Self.name("tokens_held", "", "Tokens held by open holds."))
    }

    /// One RPC's series: its latency histogram and a counter per result code ("ok" apart).
    private struct RPCSeries {
        var latency: DurationHistogram
        var ok: Counter?
        var failures: [String: Counter] = [:]
    }

    /// The per-call series, made once each: asking the registry on every call (it builds the
    /// name, validates labels and looks up under its lock) was a visible share of ledgerd's CPU at
    /// peak (docs/benchmarks.md). Keyed by RPC alone, so a successful call hashes one string.
    private let callSeries = Mutex<[String: RPCSeries]>([:])

    /// A finished call: its RPC, its result code ("ok" or the error code) and how long it took.
    public func record(rpc: String, code: String, duration: Duration) {
        let (counter, histogram) = callSeries.withLock { series in
            if let entry = series[rpc] {
                if code == "ok", let ok = entry.ok { return (ok, entry.latency) }
                if code != "ok", let failure = entry.failures[code] { return (failure, entry.latency) }
            }
            // The first call of this RPC, or of this code.
            var entry =
                series[rpc]
                ?? RPCSeries(
                    latency: registry.makeDurationHistogram(
                        descriptor: Self.name("call_duration", "seconds", "Call latency from decoded request to reply, by RPC."),
                        labels: [("rpc", rpc)], buckets: Self.durationBuckets))
            let counter = registry.makeCounter(
                descriptor: Self.name("calls", "total", "Calls served, by RPC and result code."), labels: [("rpc", rpc), ("code", code)])
            if code == "ok" { entry.ok = counter } else { entry.failures[code] = counter }
            series[rpc] = entry
            return (counter, entry.latency)
        }
        counter.increment()
        histogram.record(duration)
    }

    func setConnections(_ count: Int) { connections.set(to: Double(count)) }
    func setConnectionsMax(_ count: Int) { connectionsMax.set(to: Double(count)) }
    public func setGRPCConnections(_ count: Int) { grpcConnections.set(to: Double(count)) }
    func maintenanceFailed() { maintenanceFailures.increment() }
    func setInFlight(_ count: Int) { inFlight.set(to: Double(count)) }
    func watchStarted() { watches.increment() }
    func watchEnded() { watches.decrement() }

    /// Reads the engine's figures into the registry, then renders the exposition text.
    public func scrape(_ engine: LedgerEngine) async -> [UInt8] {
        var tenantCount = 0
        var frozenCount = 0
        var holdCount = 0
        var held: UInt64 = 0
        var records: UInt64 = 0
        var syncs: UInt64 = 0
        for shard in engine.shards {
            let stats = await shard.walStatistics
            records += stats.records
            syncs += stats.syncs
            let previous = lastWAL.withLock { last in
                let before = last[shard.index] ?? WALTotals()
                last[shard.index] = WALTotals(
                    records: stats.records, syncs: stats.syncs, callerSyncs: stats.callerSyncs, bytes: stats.bytes,
                    nanoseconds: stats.syncNanoseconds)
                return before
            }
            // A shard retaken in cluster mode has a new log whose counters start again at 0.
            func delta(_ now: UInt64, _ before: UInt64) -> UInt64 { now >= before ? now - before : now }
            walRecords.increment(by: Int64(delta(stats.records, previous.records)))
            walSyncs.increment(by: Int64(delta(stats.syncs, previous.syncs)))
            walLoopSyncs.increment(by: Int64(delta(stats.callerSyncs, previous.callerSyncs)))
            walBytes.increment(by: Int64(delta(stats.bytes, previous.bytes)))
            walSyncSeconds.increment(by: Double(delta(stats.syncNanoseconds, previous.nanoseconds)) / 1e9)
            let labels = [("shard", "\(shard.index)")]
            registry.makeGauge(
                descriptor: Self.name("snapshot_age", "seconds", "Time since the shard's last snapshot (or its start)."),
                labels: labels
            ).set(to: await shard.secondsSinceSnapshot)
            registry.makeGauge(
                descriptor: Self.name("snapshot_duration", "seconds", "How long the shard's last snapshot took to write."),
                labels: labels
            ).set(to: await shard.lastSnapshotSeconds)
            registry.makeGauge(
                descriptor: Self.name("recovery", "seconds", "How long the shard's recovery took at start."), labels: labels
            ).set(to: Double(shard.recovery.nanoseconds) / 1e9)
            if let totals = try? await shard.read({ state in state.totals }) {
                tenantCount += totals.tenants
                frozenCount += totals.frozenTenants
                holdCount += totals.openHolds
                held += totals.tokensHeld
            }
        }
        if let placement = engine.placement { scrapeCluster(placement) }
        opsPerSync.set(to: syncs == 0 ? 0 : Double(records) / Double(syncs))
        tenants.set(to: Double(tenantCount))
        frozenTenants.set(to: Double(frozenCount))
        openHolds.set(to: Double(holdCount))
        tokensHeld.set(to: Double(held))
        return registry.emitToBuffer()
    }

    /// Cluster mode's figures (docs/cluster.md, "Metrics"). The log counters above then count
    /// PostgreSQL statements: a "fsync" is one fenced batch insert acknowledged by the primary and
    /// its synchronous standby, and its seconds are the round trip.
    private func scrapeCluster(_ placement: ShardPlacement) {
        let owned = placement.ownedEpochs
        registry.makeGauge(descriptor: Self.name("cluster_shards_owned", "", "Shards this node serves now.")).set(to: Double(owned.count))
        for (shard, epoch) in owned {
            registry.makeGauge(
                descriptor: Self.name("cluster_shard_epoch", "", "The epoch under which this node serves the shard."),
                labels: [("shard", "\(shard)")]
            ).set(to: Double(epoch))
        }
        let figures = placement.figures.withLock { $0 }
        let totals: [(String, String, UInt64)] = [
            ("cluster_shards_acquired", "Shards this node took, each under a new epoch.", figures.acquired),
            ("cluster_lease_renewals", "Lease renewals sent for the shards served here.", figures.renewals),
            ("cluster_shards_handed_over", "Shards handed over (rebalancing, shutdown).", figures.handedOver),
            ("cluster_shards_lost", "Shards whose log stopped: fenced by a newer epoch, or an append of unknown outcome.", figures.lost),
            ("cluster_fenced_appends", "Of the shards lost, those whose append or snapshot was fenced by a newer epoch.", figures.fenced),
            ("cluster_round_failures", "Ownership rounds that failed (each is logged).", figures.failedRounds),
        ]
        for (name, help, value) in totals {
            // Gauges of running counts: the figures live in the placement, read at each scrape.
            registry.makeGauge(descriptor: Self.name(name, "", help + " Since the node started.")).set(to: Double(value))
        }
    }
}
