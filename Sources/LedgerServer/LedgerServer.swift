import LedgerCore
import LedgerEngine
import LedgerTLS
import LedgerWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization
import X509

/// The TokenLedger server: accepts TLS 1.3 connections with client certificates, reads
/// length-prefixed request frames, runs them on the engine (pipelined, bounded per connection)
/// and writes each reply when its change is durable. A watch call streams replies until it is
/// unwatched or the connection ends (it holds one in-flight slot meanwhile).
///
/// Lifecycle: `bind` listens; `run` serves until graceful shutdown (SIGTERM/SIGINT through a
/// `ServiceGroup`) or `shutdown()`: it then stops accepting, stops reading every connection,
/// lets the calls in flight finish and their replies go out, stops maintenance and closes the
/// engine (the WAL is flushed and a final snapshot written).
///
///   connection pipeline:  NIOSSLServerHandler -> ConnectionHygieneHandler -> FrameDecoder
///                         -> LedgerConnectionHandler (metering calls on the event loop and the
///                            shards; other calls in a task each)
public final class LedgerServer: Service, Sendable {
    public let configuration: ServerConfiguration
    public let service: LedgerService
    /// The port the server listens on (the configured one, or the one the system chose for 0).
    public let boundPort: Int
    private let serverChannel: any Channel
    private let logger: Logger
    private let registry: ConnectionRegistry
    /// The TLS context new connections get; `reloadTLS()` replaces it (SIGHUP in ledgerd).
    private let tls: TLSContextBox

    private init(
        configuration: ServerConfiguration, service: LedgerService, logger: Logger, serverChannel: any Channel,
        boundPort: Int, tls: TLSContextBox, registry: ConnectionRegistry
    ) {
        self.tls = tls
        self.configuration = configuration
        self.service = service
        self.logger = logger
        self.serverChannel = serverChannel
        self.boundPort = boundPort
        self.registry = registry
    }

    /// Loads the TLS material and listens. Fails with a clear error for unreadable certificates
    /// or an address in use.
    public static func bind(
        configuration: ServerConfiguration, engine: LedgerEngine, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, ticks: EventLoopTicks? = nil
    ) async throws -> LedgerServer {
        let tls = TLSContextBox(try makeSSLContext(configuration))
        let limits = configuration.limits
        let service = LedgerService(
            engine: engine, serverVersion: configuration.serverVersion,
            callsInFlightMax: configuration.limits.serverCallsInFlightMax, logger: logger, tracing: configuration.tracing)
        let registry = ConnectionRegistry(connectionsMax: limits.connectionsMax, metrics: service.metrics)
        service.metrics.setConnectionsMax(limits.connectionsMax)
        let access = configuration.access
        let groupCommits = EventLoopGroupCommits(ticks: ticks, coalescing: configuration.coalescing)
        let serverChannel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(
                .writeBufferWaterMark,
                value: .init(low: limits.writeBufferLowWaterMark, high: limits.writeBufferHighWaterMark)
            )
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let id: Int
                    switch registry.register(channel) {
                    case .accepted(let accepted):
                        id = accepted
                    case .full:
                        logger.warning(
                            "connection refused: connection limit reached",
                            metadata: ["connection.peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")",
                                "limit": "\(limits.connectionsMax)"])
                        channel.close(promise: nil)
                        return
                    case .draining:
                        channel.close(promise: nil)
                        return
                    }
                    do {
                        let operations = channel.pipeline.syncOperations
                        let groupCommit = groupCommits.forLoop(channel.eventLoop)
                        try operations.addHandler(EventLoopTurnMarker(groupCommit.turn))
                        try operations.addHandler(NIOSSLServerHandler(context: tls.current))
                        let connection = LedgerConnectionHandler(
                            service: service, access: access, inFlightMax: limits.inFlightPerConnectionMax,
                            groupCommit: groupCommit, logger: logger, onOver: { registry.remove(id) })
                        try operations.addHandler(
                            ConnectionHygieneHandler(limits: limits, logger: logger, progress: connection))
                        try operations.addHandler(ByteToMessageHandler(FrameDecoder(frameSizeMax: limits.frameSizeMax)))
                        try operations.addHandler(connection)
                    } catch {
                        registry.remove(id)
                        throw error
                    }
                }
            }
            .bind(host: configuration.host, port: configuration.port).get()
        let port = serverChannel.localAddress?.port ?? configuration.port
        return LedgerServer(
            configuration: configuration, service: service, logger: logger, serverChannel: serverChannel, boundPort: port,
            tls: tls, registry: registry)
    }

    /// True once shutdown has begun (readiness reports it).
    public var isDraining: Bool { registry.isShuttingDown }

    /// Reads the certificate chain, key and client CA files again and uses them for every new
    /// handshake; connections already open keep the material they started with. When the new
    /// material does not load (a missing file, a key that does not match) the server keeps the old
    /// one and throws, so a bad rotation never takes the listener down.
    /// The TLS context new connections get (replaced by `reloadTLS`): for every port of this server.
    public var currentTLSContext: NIOSSLContext { tls.current }

    public func reloadTLS() throws {
        let context = try Self.makeSSLContext(configuration)
        tls.replace(with: context)
        logger.notice(
            "TLS material reloaded",
            metadata: ["tls.cert": "\(configuration.certificatePath)", "tls.ca": "\(configuration.clientCAPath)"])
    }


    /// TLS 1.3 only; the client must present a certificate that chains to the client CA.
    public static func makeSSLContext(_ configuration: ServerConfiguration) throws -> NIOSSLContext {
        try ServerTLS.context(
            certificatePath: configuration.certificatePath, privateKeyPath: configuration.privateKeyPath,
            clientCAPath: configuration.clientCAPath)
    }

    /// Serves until shutdown, then closes the engine. See the type's documentation.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await self.maintain() }
                try? await serverChannel.closeFuture.get()
                if !registry.isShuttingDown {
                    logger.error("the listening socket closed by itself; draining")
                    shutdown()
                }
                // Every connection is closed and none of its calls runs any more.
                await registry.waitUntilEmpty()
                group.cancelAll()
                try await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        await service.engine.close(finalSnapshot: true)
        logger.info("server stopped", metadata: ["server.port": "\(boundPort)"])
    }

    /// Starts the drain: no new connections, no new calls; calls in flight finish. Idempotent and
    /// callable from any thread; `run` returns once everything is done.
    public func shutdown() {
        guard let channels = registry.beginShutdown() else { return }
        logger.info("draining", metadata: ["connections.open": "\(channels.count)"])
        service.beginDraining()
        serverChannel.close(promise: nil)
        let drainTimeout = TimeAmount(configuration.limits.drainTimeout)
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(ConnectionHygieneHandler.Drain())
            channel.eventLoop.scheduleTask(in: drainTimeout) { channel.close(promise: nil) }
        }
    }

    /// Ticks what fell due and writes due snapshots, every `maintenanceInterval`, until cancelled.
    private func maintain() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.maintenanceInterval)
            } catch {
                return
            }
            do {
                try await service.engine.maintain()
            } catch {
                service.metrics.maintenanceFailed()
                logger.error("maintenance failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

// MARK: - Connections

/// The open connections: admits new ones under the limit, tells the drain which to end, and lets
/// `run` wait until every one is over (closed, with none of its calls running).
final class ConnectionRegistry: Sendable {
    enum Registration { case accepted(Int), full, draining }

    private struct State {
        var shuttingDown = false
        var nextID = 0
        var channels: [Int: any Channel] = [:]
        var emptyWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())
    private let connectionsMax: Int
    private let metrics: LedgerMetrics

    init(connectionsMax: Int, metrics: LedgerMetrics) {
        self.connectionsMax = connectionsMax
        self.metrics = metrics
    }

    var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    func register(_ channel: any Channel) -> Registration {
        let (registration, count): (Registration, Int) = state.withLock { state in
            if state.shuttingDown { return (.draining, state.channels.count) }
            if state.channels.count >= connectionsMax { return (.full, state.channels.count) }
            state.nextID += 1
            state.channels[state.nextID] = channel
            return (.accepted(state.nextID), state.channels.count)
        }
        metrics.setConnections(count)
        return registration
    }

    func remove(_ id: Int) {
        let (count, waiters): (Int, [CheckedContinuation<Void, Never>]) = state.withLock { state in
            state.channels[id] = nil
            guard state.channels.isEmpty else { return (state.channels.count, []) }
            defer { state.emptyWaiters = [] }
            return (0, state.emptyWaiters)
        }
        metrics.setConnections(count)
        for waiter in waiters { waiter.resume() }
    }

    /// Marks the shutdown; returns the open connections, or nil when it had begun already.
    func beginShutdown() -> [any Channel]? {
        state.withLock { state in
            guard !state.shuttingDown else { return nil }
            state.shuttingDown = true
            return Array(state.channels.values)
        }
    }

    /// Returns once no connection is open.
    func waitUntilEmpty() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let empty = state.withLock { state in
                if state.channels.isEmpty { return true }
                state.emptyWaiters.append(continuation)
                return false
            }
            if empty { continuation.resume() }
        }
    }
}

extension LedgerServer {
    /// The reply to a framing error, sent before the connection closes (none for a stream that
    /// ended: nobody is left to read it).
    static func reply(to error: FrameError) -> WireResponse? {
        switch error {
        case .emptyFrame:
            return WireResponse(callID: 0, error: LedgerError(.invalidArgument, "a frame of length 0; closing the connection"))
        case .frameTooLarge(let length, let frameSizeMax):
            return WireResponse(
                callID: 0,
                error: LedgerError(
                    .limitExceeded, "a frame of \(length) bytes is above the limit of \(frameSizeMax); closing the connection",
                    details: .limit(name: "frame_size_max", value: UInt64(frameSizeMax))))
        case .truncated:
            return nil
        }
    }

    static func encode(_ response: WireResponse) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        try buffer.writeFrame(response)
        return buffer
    }
}

/// A listener's current TLS context; SIGHUP replaces it (new connections get the new one).
public final class TLSContextBox: Sendable {
    private let context: Mutex<NIOSSLContext>
    public init(_ context: NIOSSLContext) { self.context = Mutex(context) }
    public var current: NIOSSLContext { context.withLock { $0 } }
    public func replace(with new: NIOSSLContext) { context.withLock { $0 = new } }
}
