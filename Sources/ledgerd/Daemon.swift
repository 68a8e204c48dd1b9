import Foundation
import LedgerCluster
import LedgerCore
import LedgerEngine
import LedgerGRPC
import LedgerServer
import LedgerStore
import LedgerTLS
import LedgerWebhooks
import Logging
import NIOPosix
import OTel
import ServiceLifecycle
import Tracing
import UnixSignals

/// The start-up sequence: TLS material, access policy, engine (recovery), catalog, listen, serve.
/// Every failure is a log line and a documented exit code, never a crash.
struct Daemon {
    let options: DaemonOptions
    let logger: Logger

    func run() async -> Int32 {
        // ledgerd's own event loops, for the framed and gRPC ports and the operations listener: a
        // group with a tick counter, so that a connection that yielded its turn resumes after the
        // loop's I/O (EventLoopTurn in LedgerServer).
        let ticks = EventLoopTicks()
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: options.eventLoopCount, metricsDelegate: ticks)
        let code = await run(loops: loops, ticks: ticks)
        try? await loops.shutdownGracefully()
        return code
    }

    private func run(loops: MultiThreadedEventLoopGroup, ticks: EventLoopTicks) async -> Int32 {
        logger.info("allocator", metadata: ["glibc.tunables": "\(MallocTuning.current ?? "")"])
        do {
            try FileManager.default.createDirectory(atPath: options.dataDirectory, withIntermediateDirectories: true)
        } catch {
            logger.critical("cannot create the data directory", metadata: ["data.dir": "\(options.dataDirectory)", "error": "\(error)"])
            return StorageExitCode.storageFailure
        }
        var configuration: ServerConfiguration
        let catalog: PriceCatalog?
        var tracingService: (any Service)? = nil
        do {
            configuration = try serverConfiguration()
            catalog = try catalogToInstall()
            if let endpoint = options.otelEndpoint {
                let backend = try OTel.makeTracingBackend(configuration: otelConfiguration(endpoint: endpoint))
                configuration.tracing = CallTracing(tracer: backend.factory, tenantIDs: options.traceTenantIDs)
                tracingService = backend.service
                logger.notice("exporting traces", metadata: ["otel.endpoint": "\(endpoint)"])
            }
        } catch {
            logger.critical("bad configuration", metadata: ["error": "\(error)"])
            return 1
        }
        let shardCount = DataDirectory.recordedShardCount(path: options.dataDirectory)
            ?? options.shardCount ?? options.eventLoopCount
        if options.storage == "local", let requested = options.shardCount, requested != shardCount {
            logger.critical(
                "the data directory has a different shard count",
                metadata: ["data.dir": "\(options.dataDirectory)", "shards.recorded": "\(shardCount)", "shards.requested": "\(requested)"])
            return StorageExitCode.dataDirectory
        }
        // The operations listener comes up before recovery, so readiness says "recovering" meanwhile.
        var operations: OperationsListener? = nil
        if let host = options.metricsHost {
            do {
                operations = try await OperationsListener.bind(host: host, port: options.metricsPort, group: loops)
                logger.notice(
                    "operations listener up", metadata: ["metrics.listen": "\(host):\(operations!.boundPort)"])
            } catch {
                if options.metricsExplicit {
                    logger.critical(
                        "cannot listen for metrics", metadata: ["metrics.listen": "\(host):\(options.metricsPort)", "error": "\(error)"])
                    return 1
                }
                logger.warning(
                    "no operations listener: the default metrics address is taken (set --metrics-listen)",
                    metadata: ["metrics.listen": "\(host):\(options.metricsPort)", "error": "\(error)"])
            }
        }
        defer { if let operations { Task { await operations.close() } } }
        let engine: LedgerEngine
        var clusterDatabase: ClusterDatabase? = nil
        if options.storage == "postgres" {
            do {
                let database = try ClusterDatabase(url: try ClusterDatabaseURL(options.postgresURL!), logger: logger)
                clusterDatabase = database
                engine = LedgerEngine(cluster: ShardPlacement(shardCount: try await database.open()))
            } catch {
                logger.critical("cannot join the cluster", metadata: ["error": "\(String(reflecting: error))"])
                return StorageExitCode.storageFailure
            }
        } else { do {
            let failureLogger = logger
            var storage = ShardConfiguration()
            storage.archiveDirectory = options.archiveDirectory
            storage.syncIntervalNanoseconds = UInt64(options.syncIntervalMicroseconds ?? DaemonOptions.syncIntervalMicrosecondsDefault) * 1_000
            engine = try LedgerEngine(
                path: options.dataDirectory, shardCount: shardCount, configuration: storage,
                onFailure: { error in
                    // Fail-stop: nothing more is acknowledged; calls in flight get `unavailable`. Exit
                    // shortly after so those replies can leave, and let a supervisor restart us.
                    failureLogger.critical("storage failure; stopping", metadata: ["error": "\(error)"])
                    Thread.detachNewThread {
                        Thread.sleep(forTimeInterval: 0.2)
                        exit(StorageExitCode.storageFailure)
                    }
                })
        } catch {
            logger.critical("cannot open the ledger", metadata: ["data.dir": "\(options.dataDirectory)", "error": "\(error)"])
            return Self.exitCode(for: error)
        } }
        for shard in engine.shards {
            let report = shard.recovery
            logger.info(
                "shard recovered",
                metadata: [
                    "shard": "\(shard.index)", "snapshot.lsn": "\(report.snapshotLSN)", "wal.records_replayed": "\(report.recordsReplayed)",
                    "wal.lsn": "\(report.lastLSN)", "wal.torn_bytes": "\(report.tornBytes)",
                    "recovery.ms": "\(report.nanoseconds / 1_000_000)",
                ])
        }
        do {
            let server = try await LedgerServer.bind(configuration: configuration, engine: engine, logger: logger, group: loops, ticks: ticks)
            // Cluster mode: the node joins once the port is known (it is the address clients are
            // sent to); until its first round took shards, calls get `unavailable`.
            var cluster: ClusterNode? = nil
            if let clusterDatabase { cluster = await joinCluster(clusterDatabase, engine: engine, port: server.boundPort) }
            try await install(catalog, engine: engine)
            operations?.serve(server)
            var grpc: GRPCEndpoint? = nil
            if let host = options.grpcHost {
                do {
                    grpc = try await GRPCEndpoint.start(host: host, port: options.grpcPort, ledger: server, group: loops, logger: logger)
                } catch {
                    guard !options.grpcExplicit else {
                        logger.critical(
                            "cannot listen for gRPC", metadata: ["grpc.listen": "\(host):\(options.grpcPort)", "error": "\(error)"])
                        server.shutdown()
                        try? await server.run()
                        return 1
                    }
                    logger.warning(
                        "no gRPC port: the default address is taken (set --grpc-listen)",
                        metadata: ["grpc.listen": "\(host):\(options.grpcPort)", "error": "\(error)"])
                }
            }
            // The banner is printed by a service: by then the group traps SIGTERM/SIGINT, so a
            // supervisor (or test) that signals as soon as it reads the banner gets a clean stop.
            let banner = Banner(text: welcome(server: server, grpc: grpc, cluster: cluster, configuration: configuration))
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            if let tracingService {
                // First, so it stops last: the spans of the calls drained at shutdown are exported.
                services.append(.init(service: tracingService, successTerminationBehavior: .ignore))
            }
            if let cluster {
                // Before the server, so that it stops after it: the server drains its calls, then
                // the node hands its shards over.
                services.append(.init(service: ClusterNodeService(node: cluster), successTerminationBehavior: .ignore))
            }
            services.append(.init(service: server))
            // After the framed server, so that it drains first: the engine closes with the framed server.
            if let grpc { services.append(.init(service: grpc)) }
            services += [
                .init(service: banner, successTerminationBehavior: .ignore),
                // Its end (at shutdown) must never cancel the group: the server drains first.
                .init(service: ReloadOnHangup(server: server, grpc: grpc, logger: logger), successTerminationBehavior: .ignore),
            ]
            if let webhook = try await webhookConfiguration(cluster: clusterDatabase, shardCount: engine.shardCount) {
                // Last, so shutdown reaches it first: it saves its cursor before the server drains.
                let sink = try WebhookSink(configuration: webhook, engine: engine, logger: logger, registry: server.service.metrics.registry)
                services.append(.init(service: sink, successTerminationBehavior: .ignore))
            }
            let group = ServiceGroup(
                configuration: .init(
                    services: services,
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            return 0
        } catch {
            logger.critical("server failed", metadata: ["error": "\(error)"])
            await engine.close(finalSnapshot: false)
            return 1
        }
    }

    static func exitCode(for error: any Error) -> Int32 {
        switch error {
        case StorageError.locked, StorageError.manifest: return StorageExitCode.dataDirectory
        case StorageError.corruption, StorageError.noUsableSnapshot, EngineError.recoveryFailed: return StorageExitCode.corruption
        default: return StorageExitCode.storageFailure
        }
    }

    private func serverConfiguration() throws -> ServerConfiguration {
        var configuration: ServerConfiguration
        if let certificate = options.certificatePath, let key = options.privateKeyPath, let ca = options.clientCAPath {
            configuration = ServerConfiguration(certificatePath: certificate, privateKeyPath: key, clientCAPath: ca)
        } else {
            let development = DevelopmentTLS(dataDirectory: options.dataDirectory)
            if try development.createIfMissing() {
                logger.notice("created development TLS material", metadata: ["tls.dir": "\(development.directory)"])
            }
            configuration = ServerConfiguration(
                certificatePath: development.serverCertificatePath, privateKeyPath: development.serverKeyPath,
                clientCAPath: development.caPath)
        }
        configuration.host = options.host
        configuration.port = options.port
        if let path = options.accessPath {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw DaemonError("cannot read the access file \(path)")
            }
            do {
                configuration.access = try AccessPolicy(json: Array(data))
            } catch {
                throw DaemonError("access file \(path): \(error)")
            }
        }
        if let value = options.frameSizeMax { configuration.limits.frameSizeMax = value }
        if let value = options.inFlightMax { configuration.limits.inFlightPerConnectionMax = value }
        if let value = options.connectionsMax { configuration.limits.connectionsMax = value }
        if let value = options.idleTimeoutSeconds { configuration.limits.idleTimeout = .seconds(value) }
        if let value = options.handshakeTimeoutSeconds { configuration.limits.handshakeTimeout = .seconds(value) }
        if let value = options.frameReadTimeoutSeconds { configuration.limits.frameReadTimeout = .seconds(value) }
        configuration.coalescing = .microseconds(options.coalesceMicroseconds ?? DaemonOptions.coalesceMicrosecondsDefault)
        return configuration
    }

    /// Traces only (no OTel metrics or logs: Prometheus and the log handler cover those), over
    /// OTLP/gRPC. The standard OTEL_* variables (OTEL_BSP_SCHEDULE_DELAY, OTEL_TRACES_SAMPLER, ...)
    /// still tune the exporter; OTEL_EXPORTER_OTLP_* would override the endpoint.
    private func otelConfiguration(endpoint: String) -> OTel.Configuration {
        var otel = OTel.Configuration.default
        otel.serviceName = "ledgerd"
        otel.diagnosticLogger = .custom(logger)
        otel.metrics.enabled = false
        otel.logs.enabled = false
        otel.traces.enabled = true
        otel.traces.exporter = .otlp
        otel.traces.otlpExporter.protocol = .grpc
        otel.traces.otlpExporter.endpoint = endpoint
        return otel
    }

    /// The webhook sink's settings, or nil when it is off. The secret file's trailing newline is not
    /// part of the key.
    private func webhookConfiguration(cluster: ClusterDatabase?, shardCount: Int) async throws -> WebhookConfiguration? {
        guard let text = options.webhookURL, let secretPath = options.webhookSecretPath else { return nil }
        let url = try WebhookURL(parsing: text)
        guard var secret = FileManager.default.contents(atPath: secretPath).map(Array.init) else {
            throw DaemonError("cannot read the webhook secret file \(secretPath)")
        }
        while let last = secret.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { secret.removeLast() }
        guard secret.count >= 16 else { throw DaemonError("the webhook secret in \(secretPath) is shorter than 16 bytes") }
        let cursor: any WebhookCursorStore
        if let cluster {
            cursor = ClusterWebhookCursor(database: cluster, shardCount: shardCount)
        } else {
            cursor = try WebhookCursorFile(path: options.dataDirectory + "/webhook-cursor.json")
        }
        return WebhookConfiguration(url: url, secret: secret, cursor: cursor, caPath: options.webhookCAPath)
    }

    /// The catalog from `--catalog`, or nil to keep what is installed (the demo on a fresh ledger).
    private func catalogToInstall() throws -> PriceCatalog? {
        guard let path = options.catalogPath else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else { throw DaemonError("cannot read the catalog \(path)") }
        do {
            return try PriceCatalog(json: Array(data))
        } catch {
            throw DaemonError("catalog \(path): \(error)")
        }
    }

    /// Installs the configured catalog when its version is not the installed one; on a ledger with
    /// no catalog at all, installs the demo catalog.
    private func install(_ configured: PriceCatalog?, engine: LedgerEngine) async throws {
        guard let first = engine.shards.first else {
            // Cluster mode, no shard taken yet: the node installs the cluster's stored catalog on
            // every shard it takes; a --catalog waits for a restart or `tokenctl catalog install`.
            if configured != nil { logger.warning("no shard served yet; --catalog not installed (use tokenctl catalog install)") }
            return
        }
        let installed = try await first.read { state in state.catalog?.version }
        let wanted: PriceCatalog
        if let configured {
            guard configured.version != installed else { return }
            wanted = configured
        } else {
            guard installed == nil else { return }
            wanted = .demo
        }
        let result = try await engine.execute(.installCatalog(wanted), requestID: nil)
        if case .failure(let error) = result.outcome { throw DaemonError("installing catalog \(wanted.version): \(error)") }
        logger.notice("installed price catalog", metadata: ["catalog.version": "\(wanted.version)"])
    }

    /// Cluster mode: the node, and its first round (it takes its share of the shards whose lease ran
    /// out) before the banner.
    private func joinCluster(_ database: ClusterDatabase, engine: LedgerEngine, port: Int) async -> ClusterNode {
        // Listening on every interface: the host name is what other machines can reach.
        let wildcard = ["", "0.0.0.0", "::", "[::]"].contains(options.host)
        let advertise = options.advertise ?? "\(wildcard ? ProcessInfo.processInfo.hostName : options.host):\(port)"
        let nodeID = options.nodeID ?? "\(ProcessInfo.processInfo.hostName):\(port)"
        var node = ClusterNodeConfiguration(nodeID: nodeID, advertise: advertise)
        if let milliseconds = options.leaseMilliseconds {
            node.lease = .milliseconds(milliseconds)
            node.round = .milliseconds(max(200, milliseconds / 5))
            node.margin = .milliseconds(milliseconds / 5)
        }
        let cluster = ClusterNode(database: database, engine: engine, configuration: node, logger: logger)
        do {
            try await cluster.round()
        } catch {
            logger.warning("the first cluster round failed; the node keeps trying", metadata: ["error": "\(String(reflecting: error))"])
        }
        logger.notice(
            "joined the cluster",
            metadata: [
                "postgres": "\(database.url)", "node.id": "\(nodeID)", "shards": "\(engine.shardCount)",
                "shards.served": "\(engine.shards.count)",
            ])
        return cluster
    }

    private func welcome(server: LedgerServer, grpc: GRPCEndpoint?, cluster: ClusterNode?, configuration: ServerConfiguration) -> String {
        let tls = DevelopmentTLS(dataDirectory: options.dataDirectory)
        var lines = ["ledgerd listening on \(configuration.host):\(server.boundPort) (TLS 1.3, client certificates required)"]
        if let grpc, let host = options.grpcHost {
            lines.append("  gRPC on \(host):\(grpc.boundPort) (tokenledger.v1.Ledger, grpc.health.v1.Health; proto/tokenledger.protoset)")
        }
        if let cluster {
            lines.append(
                "  cluster mode: node \(cluster.configuration.nodeID) (advertised as \(cluster.configuration.advertise)) on "
                    + "\(cluster.database.url), \(server.service.engine.shardCount) shards, serving \(server.service.engine.shards.count)")
        } else {
            let shards = server.service.engine.shards.count
            lines.append("  data directory: \(options.dataDirectory) (\(shards) shard\(shards == 1 ? "" : "s"))")
        }
        if options.certificatePath == nil {
            lines.append("  connect as admin with: --ca \(tls.caPath) --cert \(tls.adminCertificatePath) --key \(tls.adminKeyPath)")
            lines.append("  Swift: try await LedgerClient.connect(.development(dataDirectory: \"\(options.dataDirectory)\"))")
        }
        lines.append("  stop with Ctrl-C or SIGTERM (drains connections, writes a final snapshot)")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// SIGHUP reloads the TLS material (certificate rotation without a restart: docs/operations.md).
struct ReloadOnHangup: Service {
    let server: LedgerServer
    let grpc: GRPCEndpoint?
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                // Both ports read the same files; the framed port logs the reload.
                try grpc?.reloadTLS()
                try server.reloadTLS()
            } catch {
                logger.error("TLS reload failed; the previous material stays in use", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Prints how to connect, once the server is up and signals are trapped.
struct Banner: Service {
    let text: String

    func run() async throws {
        // Written straight to the descriptor: stdout may be a pipe, where print() would buffer it.
        FileHandle.standardOutput.write(Data(text.utf8))
        SystemdNotify.send("READY=1")
        // Then stay until shutdown reaches this service: a service that ends while the group is
        // shutting down another one makes the group throw (swift-service-lifecycle), so a SIGTERM
        // right after the banner could turn a clean stop into exit 1.
        try? await gracefulShutdown()
        SystemdNotify.send("STOPPING=1")
    }
}

struct DaemonError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs the cluster node's rounds; at shutdown (after the server drained) hands every shard over.
struct ClusterNodeService: Service {
    let node: ClusterNode

    func run() async throws {
        // Cancelled when the group's shutdown reaches this service, after the server drained.
        try? await cancelWhenGracefulShutdown { await node.run() }
        await node.handOver()
    }
}

/// Cluster mode's webhook cursor: rows in PostgreSQL (ClusterDatabase, "The webhook cursor"), per
/// tenant, read per shard when this node takes the shard.
struct ClusterWebhookCursor: WebhookCursorStore {
    let database: ClusterDatabase
    let shardCount: Int

    func cursor(shard: Int?, latest: [TenantID: UInt64]) async throws -> (cursor: [TenantID: UInt64], fresh: Bool) {
        guard let shard else { preconditionFailure("cluster mode reads the cursor per shard") }
        let stored = try await database.webhookCursor(
            shard: shard, latest: Dictionary(uniqueKeysWithValues: latest.map { ($0.key.rawValue, $0.value) }))
        return (Dictionary(uniqueKeysWithValues: stored.cursor.map { (TenantID($0.key), $0.value) }), stored.fresh)
    }

    func save(changed: [TenantID: UInt64], all: [TenantID: UInt64]) async throws {
        try await database.saveWebhookCursor(
            changed.map { ($0.key.rawValue, $0.key.shardIndex(shardCount: shardCount), $0.value) })
    }
}
