import GRPCCore
import GRPCNIOTransportHTTP2Posix
import LedgerServer
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// The gRPC port's listening socket, through grpc-swift-nio-transport's custom-listener path: the
/// stock `http2NIOPosix` TLS settings accept TLS 1.2, so each accepted connection gets TokenLedger's
/// own TLS context (TLS 1.3 only, a client certificate required, ALPN h2) and a handler that maps
/// its certificate to a principal before the gRPC pipeline is added behind them.
struct GRPCListener: HTTP2ServerTransport.ListenerFactory {
    let eventLoopGroup: any EventLoopGroup
    let host: String
    let port: Int
    let tls: TLSContextBox
    let peers: GRPCPeers
    let handshakeTimeout: TimeAmount
    /// Learns the bound port once the socket listens.
    let bound: @Sendable (Int) -> Void

    func makeListeningChannel(
        listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
        connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
    ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
        let channel = try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in listenerConfigurator.configure(channel: channel) }
            .bind(host: host, port: port) { [tls, peers, handshakeTimeout] channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(NIOSSLServerHandler(context: tls.current))
                    try operations.addHandler(GRPCPeerHandler(peers: peers, handshakeTimeout: handshakeTimeout))
                }.flatMap {
                    connectionConfigurator.configure(channel: channel, tls: .configured(requireALPN: false))
                }
            }
        bound(channel.channel.localAddress?.port ?? port)
        return channel
    }
}

/// Registers the connection's principal once the TLS handshake is done, so that the RPC handlers
/// (which see only the peer's address) find it; closes a connection whose handshake takes longer
/// than the limit; removes the registration when the connection closes.
final class GRPCPeerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Any

    private let peers: GRPCPeers
    private let handshakeTimeout: TimeAmount
    private var key: String?
    private var timeout: Scheduled<Void>?

    init(peers: GRPCPeers, handshakeTimeout: TimeAmount) {
        self.peers = peers
        self.handshakeTimeout = handshakeTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startTimer(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startTimer(context: context)
        context.fireChannelActive()
    }

    private func startTimer(context: ChannelHandlerContext) {
        guard timeout == nil else { return }
        let channel = context.channel
        timeout = context.eventLoop.scheduleTask(in: handshakeTimeout) { channel.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            timeout?.cancel()
            timeout = nil
            let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
            let key = GRPCPeers.key(context.channel.remoteAddress)
            if peers.register(key, certificate: certificate) {
                self.key = key
            } else {
                // Over the connection limit, or draining.
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        if let key { peers.remove(key) }
        key = nil
        context.fireChannelInactive()
    }
}
