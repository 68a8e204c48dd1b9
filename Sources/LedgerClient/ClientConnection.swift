import LedgerWire
import NIOCore
import NIOPosix
import NIOSSL

/// One TLS connection to the server. Calls are written from any thread; the handler, on the
/// channel's event loop, keeps the pending calls by call id and completes each when its reply
/// comes, whatever the order.
final class ClientConnection: Sendable {
    let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    static func connect(_ configuration: ClientConfiguration, group: any EventLoopGroup) async throws(LedgerClientError)
        -> ClientConnection
    {
        let sslContext: NIOSSLContext
        do {
            sslContext = try makeSSLContext(configuration)
        } catch {
            throw .connectFailed("TLS material: \(error)")
        }
        let serverName = configuration.serverName ?? configuration.host
        let hostnameForSNI = CertificateHostname.isIPAddress(serverName) ? nil : serverName
        let frameSizeMax = configuration.frameSizeMax
        let callTimeout = TimeAmount.nanoseconds(configuration.callTimeout.nanoseconds)
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(.nanoseconds(configuration.connectTimeout.nanoseconds))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let operations = channel.pipeline.syncOperations
                        try operations.addHandler(
                            try NIOSSLClientHandler(context: sslContext, serverHostname: hostnameForSNI))
                        try operations.addHandler(ByteToMessageHandler(FrameDecoder(frameSizeMax: frameSizeMax)))
                        try operations.addHandler(ClientCallHandler(callTimeout: callTimeout))
                    }
                }
                .connect(host: configuration.host, port: configuration.port).get()
            return ClientConnection(channel: channel)
        } catch {
            throw .connectFailed("\(configuration.host):\(configuration.port): \(error)")
        }
    }

    static func makeSSLContext(_ configuration: ClientConfiguration) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.maximumTLSVersion = .tlsv13
        tls.certificateVerification = .fullVerification
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(configuration.caPath))
        if let certificatePath = configuration.certificatePath {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) }
        }
        if let keyPath = configuration.privateKeyPath {
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
        }
        return try NIOSSLContext(configuration: tls)
    }

    var isActive: Bool { channel.isActive }

    /// Sends a request and waits for its reply.
    func send(_ request: WireRequest) async throws(LedgerClientError) -> WireResponse {
        var frame = ByteBuffer()
        do {
            try frame.writeFrame(request)
        } catch {
            throw .protocolViolation("could not encode the request: \(error)")
        }
        let promise = channel.eventLoop.makePromise(of: WireResponse.self)
        channel.writeAndFlush(ClientCallHandler.Call(callID: request.callID, frame: frame, promise: promise), promise: nil)
        do {
            return try await promise.futureResult.get()
        } catch let error as LedgerClientError {
            throw error
        } catch {
            throw .connectionClosed("\(error)")
        }
    }

    func close() async {
        try? await channel.close()
    }
}

/// Keeps the calls in flight on one connection and matches replies to them by call id.
final class ClientCallHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Call
    typealias OutboundOut = ByteBuffer

    struct Call {
        var callID: UInt64
        var frame: ByteBuffer
        var promise: EventLoopPromise<WireResponse>
    }

    private struct Pending {
        var promise: EventLoopPromise<WireResponse>
        var timeout: Scheduled<Void>
    }

    private let callTimeout: TimeAmount
    private var pending: [UInt64: Pending] = [:]
    private var closedReason: String? = nil

    init(callTimeout: TimeAmount) {
        self.callTimeout = callTimeout
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        if let closedReason {
            call.promise.fail(LedgerClientError.connectionClosed(closedReason))
            return
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let callID = call.callID
        let timeout = context.eventLoop.scheduleTask(in: callTimeout) {
            let (handler, _) = loopBound.value
            handler.pending.removeValue(forKey: callID)?.promise.fail(LedgerClientError.timedOut)
        }
        pending[callID] = Pending(promise: call.promise, timeout: timeout)
        context.write(wrapOutboundOut(call.frame)).whenFailure { error in
            let (handler, _) = loopBound.value
            if let entry = handler.pending.removeValue(forKey: callID) {
                entry.timeout.cancel()
                entry.promise.fail(LedgerClientError.connectionClosed("write failed: \(error)"))
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let response: WireResponse
        do {
            response = try WireResponse(frame: unwrapInboundIn(data))
        } catch {
            failAll(LedgerClientError.protocolViolation("a reply that is not a Response: \(error)"))
            context.close(promise: nil)
            return
        }
        if let entry = pending.removeValue(forKey: response.callID) {
            entry.timeout.cancel()
            entry.promise.succeed(response)
        } else if response.callID == 0, case .error(let error)? = response.result {
            // A connection-level refusal (bad frame, unknown principal): every call on it fails.
            failAll(LedgerClientError.rejected(LedgerError(error)))
        }
        // A reply for a call that already timed out is dropped.
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(LedgerClientError.connectionClosed("\(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(LedgerClientError.connectionClosed("closed by the server"))
        context.fireChannelInactive()
    }

    private func failAll(_ error: LedgerClientError) {
        closedReason = closedReason ?? error.description
        let entries = pending
        pending.removeAll()
        for entry in entries.values {
            entry.timeout.cancel()
            entry.promise.fail(error)
        }
    }
}

import LedgerCore

enum CertificateHostname {
    /// Whether `name` is an IPv4 or IPv6 literal (no SNI is sent for those).
    static func isIPAddress(_ name: String) -> Bool {
        (try? SocketAddress(ipAddress: name, port: 0)) != nil
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
