import LedgerCore
import LedgerEngine
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
///                         -> NIOAsyncChannel (one task per connection, one child task per call)
public final class LedgerServer: Service, Sendable {
    public let configuration: ServerConfiguration
    public let service: LedgerService
    /// The port the server listens on (the configured one, or the one the system chose for 0).
    public let boundPort: Int
    private let serverChannel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let logger: Logger
    private let registry = Mutex(ConnectionRegistry())
    /// The TLS context new connections get; `reloadTLS()` replaces it (SIGHUP in ledgerd).
    private let tls: TLSContextBox

    private struct ConnectionRegistry {
        var shuttingDown = false
        var nextID = 0
        var channels: [Int: any Channel] = [:]
    }

    private init(
        configuration: ServerConfiguration, service: LedgerService, logger: Logger,
        serverChannel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, boundPort: Int,
        tls: TLSContextBox
    ) {
        self.tls = tls
        self.configuration = configuration
        self.service = service
        self.logger = logger
        self.serverChannel = serverChannel
        self.boundPort = boundPort
    }

    /// Loads the TLS material and listens. Fails with a clear error for unreadable certificates
    /// or an address in use.
    public static func bind(
        configuration: ServerConfiguration, engine: LedgerEngine, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> LedgerServer {
        let tls = TLSContextBox(try makeSSLContext(configuration))
        let limits = configuration.limits
        let serverChannel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(
                .writeBufferWaterMark,
                value: .init(low: limits.writeBufferLowWaterMark, high: limits.writeBufferHighWaterMark)
            )
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(NIOSSLServerHandler(context: tls.current))
                    try operations.addHandler(ConnectionHygieneHandler(limits: limits, logger: logger))
                    try operations.addHandler(ByteToMessageHandler(FrameDecoder(frameSizeMax: limits.frameSizeMax)))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let port = serverChannel.channel.localAddress?.port ?? configuration.port
        let service = LedgerService(
            engine: engine, serverVersion: configuration.serverVersion,
            callsInFlightMax: configuration.limits.serverCallsInFlightMax, logger: logger)
        return LedgerServer(
            configuration: configuration, service: service, logger: logger, serverChannel: serverChannel, boundPort: port,
            tls: tls)
    }

    /// True once shutdown has begun (readiness reports it).
    public var isDraining: Bool { registry.withLock { $0.shuttingDown } }

    /// Reads the certificate chain, key and client CA files again and uses them for every new
    /// handshake; connections already open keep the material they started with. When the new
    /// material does not load (a missing file, a key that does not match) the server keeps the old
    /// one and throws, so a bad rotation never takes the listener down.
    public func reloadTLS() throws {
        let context = try Self.makeSSLContext(configuration)
        tls.replace(with: context)
        logger.notice(
            "TLS material reloaded",
            metadata: ["tls.cert": "\(configuration.certificatePath)", "tls.ca": "\(configuration.clientCAPath)"])
    }

    final class TLSContextBox: Sendable {
        private let context: Mutex<NIOSSLContext>
        init(_ context: NIOSSLContext) { self.context = Mutex(context) }
        var current: NIOSSLContext { context.withLock { $0 } }
        func replace(with new: NIOSSLContext) { context.withLock { $0 = new } }
    }

    /// TLS 1.3 only; the client must present a certificate that chains to the client CA.
    public static func makeSSLContext(_ configuration: ServerConfiguration) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(configuration.certificatePath)
        let key = try NIOSSLPrivateKey(file: configuration.privateKeyPath, format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv13
        tls.maximumTLSVersion = .tlsv13
        tls.certificateVerification = .noHostnameVerification
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(configuration.clientCAPath))
        return try NIOSSLContext(configuration: tls)
    }

    /// Serves until shutdown, then closes the engine. See the type's documentation.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await self.maintain() }
                try await self.acceptConnections()
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
        let channels: [any Channel]? = registry.withLock { registry in
            guard !registry.shuttingDown else { return nil }
            registry.shuttingDown = true
            return Array(registry.channels.values)
        }
        guard let channels else { return }
        logger.info("draining", metadata: ["connections.open": "\(channels.count)"])
        service.beginDraining()
        serverChannel.channel.close(promise: nil)
        let drainTimeout = TimeAmount(configuration.limits.drainTimeout)
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(ConnectionHygieneHandler.Drain())
            channel.eventLoop.scheduleTask(in: drainTimeout) { channel.close(promise: nil) }
        }
    }

    private func acceptConnections() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            do {
                try await serverChannel.executeThenClose { inbound in
                    for try await connection in inbound {
                        guard let id = register(connection.channel) else {
                            // Refused (full or draining): close it through its async wrapper, which
                            // must always be finished (NIOAsyncChannel traps if it never is).
                            group.addTask { try? await connection.executeThenClose { _, _ in } }
                            continue
                        }
                        group.addTask {
                            await self.serve(connection)
                            let open = self.registry.withLock { registry in
                                _ = registry.channels.removeValue(forKey: id)
                                return registry.channels.count
                            }
                            self.service.metrics.setConnections(open)
                        }
                    }
                }
            } catch {
                // Closing the listening socket to drain ends the accept loop; only other errors matter.
                let draining = registry.withLock { $0.shuttingDown }
                if !draining { throw error }
            }
        }
    }

    /// Registers an accepted connection; nil when the server is full or draining (the caller closes it).
    private func register(_ channel: any Channel) -> Int? {
        enum Decision { case accept(Int), full, draining }
        let decision: Decision = registry.withLock { registry in
            if registry.shuttingDown { return .draining }
            if registry.channels.count >= configuration.limits.connectionsMax { return .full }
            registry.nextID += 1
            registry.channels[registry.nextID] = channel
            return .accept(registry.nextID)
        }
        switch decision {
        case .accept(let id):
            service.metrics.setConnections(registry.withLock { $0.channels.count })
            return id
        case .full:
            logger.warning(
                "connection refused: connection limit reached",
                metadata: ["connection.peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")",
                    "limit": "\(configuration.limits.connectionsMax)"])
            return nil
        case .draining:
            return nil
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
                logger.error("maintenance failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

// MARK: - One connection

extension LedgerServer {
    /// Reads frames until the peer closes, a frame is bad or the server drains; each call runs
    /// in its own child task and writes its reply when done, so replies may leave out of order.
    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let channel = connection.channel
        let peer = channel.remoteAddress.map { "\($0)" } ?? "?"
        let inFlightMax = configuration.limits.inFlightPerConnectionMax
        do {
            try await connection.executeThenClose { inbound, outbound in
                var principal: Principal? = nil
                let watches = ConnectionWatches()
                defer { watches.stopAll() }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    var running = 0
                    var frames = inbound.makeAsyncIterator()
                    while true {
                        let frame: ByteBuffer
                        do {
                            guard let next = try await frames.next() else { break }
                            frame = next
                        } catch let error as FrameError {
                            watches.stopAll()
                            try await group.waitForAll()
                            if let reply = Self.reply(to: error) { try await outbound.write(try Self.encode(reply)) }
                            logger.debug("closing connection", metadata: ["connection.peer": "\(peer)", "error": "\(error)"])
                            return
                        }
                        if principal == nil {
                            principal = await self.principal(of: channel)
                            if principal == nil {
                                let callID = (try? WireRequest(frame: frame))?.callID ?? 0
                                let error = LedgerError(
                                    .unauthenticated, "the client certificate's subject is not a principal of this server")
                                try await outbound.write(try Self.encode(WireResponse(callID: callID, error: error)))
                                logger.info("unknown principal refused", metadata: ["connection.peer": "\(peer)"])
                                return
                            }
                        }
                        if running >= inFlightMax {
                            try await group.next()
                            running -= 1
                        }
                        running += 1
                        let caller = principal!
                        group.addTask {
                            try await self.service.serve(frame: frame, principal: caller, watches: watches) { reply in
                                try await outbound.write(try Self.encode(reply))
                            }
                        }
                    }
                    watches.stopAll()
                    try await group.waitForAll()
                }
            }
        } catch {
            // A peer that vanishes (reset, close without close_notify) ends its calls' replies; the
            // ledger is unaffected: every change was applied and logged before its reply was due.
            logger.debug("connection ended", metadata: ["connection.peer": "\(peer)", "error": "\(error)"])
        }
    }

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

    /// The principal named by the peer's certificate (its last subject common name), or nil.
    private func principal(of channel: any Channel) async -> Principal? {
        guard let certificate = try? await channel.nioSSL_peerCertificate().get(),
            let der = try? certificate.toDERBytes(),
            let parsed = try? Certificate(derEncoded: der)
        else { return nil }
        var commonName: String? = nil
        for relativeName in parsed.subject {
            for attribute in relativeName where attribute.type == .RDNAttributeType.commonName {
                commonName = String(attribute.value)
            }
        }
        guard let commonName else { return nil }
        return configuration.access.principal(commonName: commonName)
    }
}
