import GRPCCore
import GRPCNIOTransportHTTP2Posix
import LedgerServer
import LedgerTLS
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// ledgerd's gRPC port (`--grpc-listen`, docs/grpc.md): `tokenledger.v1.Ledger` and
/// `grpc.health.v1.Health` over HTTP/2 on TLS 1.3 with client certificates, served by the same
/// `LedgerService` as the framed port. A service of ledgerd's group, placed after the framed
/// server so that it drains first (the engine closes with the framed server).
public final class GRPCEndpoint: Service, Sendable {
    public let boundPort: Int
    private let server: GRPCServer<HTTP2ServerTransport.Custom<GRPCListener>>
    private let serving: Task<Void, any Error>
    private let health: HealthService
    private let peers: GRPCPeers
    private let tls: TLSContextBox
    private let configuration: ServerConfiguration
    private let logger: Logger

    private init(
        boundPort: Int, server: GRPCServer<HTTP2ServerTransport.Custom<GRPCListener>>, serving: Task<Void, any Error>,
        health: HealthService, peers: GRPCPeers, tls: TLSContextBox, configuration: ServerConfiguration, logger: Logger
    ) {
        self.boundPort = boundPort
        self.server = server
        self.serving = serving
        self.health = health
        self.peers = peers
        self.tls = tls
        self.configuration = configuration
        self.logger = logger
    }

    /// Binds `host:port` (0: any free port) and starts serving `ledger`'s calls there.
    public static func start(
        host: String, port: Int, ledger: LedgerServer, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) async throws -> GRPCEndpoint {
        let configuration = ledger.configuration
        let limits = configuration.limits
        let tls = TLSContextBox(try makeSSLContext(configuration))
        let peers = GRPCPeers(access: configuration.access, connectionsMax: limits.connectionsMax, metrics: ledger.service.metrics)
        let health = HealthService()
        let (bound, boundContinuation) = AsyncStream.makeStream(of: Int.self)
        let listener = GRPCListener(
            eventLoopGroup: group, host: host, port: port, tls: tls, peers: peers,
            handshakeTimeout: TimeAmount(limits.handshakeTimeout),
            bound: { port in
                boundContinuation.yield(port)
                boundContinuation.finish()
            })
        var transportConfiguration = HTTP2ServerTransport.Custom<GRPCListener>.Config.defaults
        // The framed port's limits, in HTTP/2's terms.
        transportConfiguration.http2.maxConcurrentStreams = limits.inFlightPerConnectionMax
        transportConfiguration.rpc.maxRequestPayloadSize = limits.frameSizeMax
        transportConfiguration.connection.maxIdleTime = limits.idleTimeout
        // Batches the HEADERS, DATA and trailers of replies finishing together into fewer TLS
        // writes (at most 100 µs later): 248 -> 218 µs of server CPU per call in ledger-load --grpc.
        transportConfiguration.connection.flushCoalescing = .defaults
        let transport = HTTP2ServerTransport.Custom(listenerFactory: listener, config: transportConfiguration)
        let server = GRPCServer(
            transport: transport, services: [LedgerGRPCService(service: ledger.service, peers: peers), health])
        let serving = Task {
            defer { boundContinuation.finish() }
            try await server.serve()
        }
        var iterator = bound.makeAsyncIterator()
        guard let boundPort = await iterator.next() else {
            // serve() ended before the socket listened: its error says why.
            try await serving.value
            throw GRPCEndpointError("the gRPC port \(host):\(port) stopped before it listened")
        }
        return GRPCEndpoint(
            boundPort: boundPort, server: server, serving: serving, health: health, peers: peers, tls: tls,
            configuration: configuration, logger: logger)
    }

    /// TokenLedger's TLS policy with ALPN h2, which gRPC clients require.
    static func makeSSLContext(_ configuration: ServerConfiguration) throws -> NIOSSLContext {
        try ServerTLS.context(
            certificatePath: configuration.certificatePath, privateKeyPath: configuration.privateKeyPath,
            clientCAPath: configuration.clientCAPath, applicationProtocols: ["h2"])
    }

    /// Open connections on this port.
    public var connections: Int { peers.count }

    /// Rereads the TLS material (SIGHUP); new connections get it.
    public func reloadTLS() throws {
        tls.replace(with: try Self.makeSSLContext(configuration))
    }

    /// Serves until graceful shutdown: health turns NOT_SERVING, watches end with `unavailable`,
    /// new RPCs are refused, calls in flight finish.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await serving.value
            } onCancel: {
                serving.cancel()
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        logger.info("gRPC port stopped", metadata: ["grpc.port": "\(boundPort)"])
    }

    /// Starts the drain; idempotent.
    public func shutdown() {
        health.beginDraining()
        peers.beginDraining()
        server.beginGracefulShutdown()
    }
}

struct GRPCEndpointError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
