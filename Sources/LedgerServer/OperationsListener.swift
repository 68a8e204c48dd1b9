import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The plain-HTTP operations listener (`ledgerd --metrics-listen`, default 127.0.0.1:9464):
///
/// - `GET /metrics` — Prometheus text exposition (503 until the ledger is open);
/// - `GET /healthz` — 200 while the process runs;
/// - `GET /readyz` — 200 once recovery and the audit have finished and the server listens, 503
///   before that and while draining.
///
/// It starts before recovery, so that an orchestrator sees "not ready" instead of nothing while a
/// large log replays. It carries no ledger data, only counts; keep it on loopback or a private
/// network.
public final class OperationsListener: Sendable {
    private let server = Mutex<LedgerServer?>(nil)
    private let channel: any Channel
    public let boundPort: Int

    private init(channel: any Channel) {
        self.channel = channel
        boundPort = channel.localAddress?.port ?? 0
    }

    public static func bind(host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton)
        async throws -> OperationsListener
    {
        let box = ListenerBox()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(OperationsHandler(box: box))
                }
            }
            .bind(host: host, port: port).get()
        let listener = OperationsListener(channel: channel)
        box.listener.withLock { $0 = listener }
        return listener
    }

    /// The ledger is open and listening: readiness and metrics become available.
    public func serve(_ server: LedgerServer) { self.server.withLock { $0 = server } }

    public func close() async { try? await channel.close() }

    func answer(_ path: String) async -> (HTTPResponseStatus, String, [UInt8]) {
        let text = "text/plain; charset=utf-8"
        let server = self.server.withLock { $0 }
        switch path {
        case "/healthz":
            return (.ok, text, Array("ok\n".utf8))
        case "/readyz":
            guard let server else { return (.serviceUnavailable, text, Array("recovering\n".utf8)) }
            if server.isDraining { return (.serviceUnavailable, text, Array("draining\n".utf8)) }
            return (.ok, text, Array("ready\n".utf8))
        case "/metrics":
            guard let server else { return (.serviceUnavailable, text, Array("recovering\n".utf8)) }
            let body = await server.service.metrics.scrape(server.service.engine)
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", body)
        default:
            return (.notFound, text, Array("not found: /metrics, /healthz, /readyz\n".utf8))
        }
    }
}

final class ListenerBox: Sendable {
    let listener = Mutex<OperationsListener?>(nil)
}

final class OperationsHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let box: ListenerBox

    init(box: ListenerBox) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let channel = context.channel
        let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
        let method = head.method
        let keepAlive = head.isKeepAlive
        let listener = box.listener.withLock { $0 }
        Task {
            var (status, type, body): (HTTPResponseStatus, String, [UInt8])
            if method != .GET {
                (status, type, body) = (.methodNotAllowed, "text/plain", Array("GET only\n".utf8))
            } else if let listener {
                (status, type, body) = await listener.answer(path)
            } else {
                (status, type, body) = (.serviceUnavailable, "text/plain", Array("starting\n".utf8))
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: "\(body.count)")
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
            let payload = body
            channel.eventLoop.execute {
                channel.write(HTTPServerResponsePart.head(head), promise: nil)
                channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: payload))), promise: nil)
                channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in
                    if !keepAlive { channel.close(promise: nil) }
                }
            }
        }
    }
}
