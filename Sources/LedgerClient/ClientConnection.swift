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
        let hostnameForSNI = HostPort.isIPAddress(serverName) ? nil : serverName
        let frameSizeMax = configuration.frameSizeMax
        let callTimeout = TimeAmount(configuration.callTimeout)
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(TimeAmount(configuration.connectTimeout))
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
        let promise = channel.eventLoop.makePromise(of: WireResponse.self)
        try write(request, waiter: .reply(CallCompletion(promise)))
        do {
            return try await promise.futureResult.get()
        } catch let error as LedgerClientError {
            throw error
        } catch {
            throw .connectionClosed("\(error)")
        }
    }

    /// Sends a request whose replies stream (a watch): every reply with its call id is yielded
    /// until a final one (a `WatchUpdate.ended` or an error reply, which is yielded too) or the
    /// connection's end (which finishes the stream with `connectionClosed`). No call timeout.
    func openStream(_ request: WireRequest) throws(LedgerClientError) -> AsyncThrowingStream<WireResponse, any Error> {
        let (stream, continuation) = AsyncThrowingStream<WireResponse, any Error>.makeStream()
        try write(request, waiter: .stream(continuation))
        return stream
    }

    /// Hands the request to the call handler, which keeps `waiter` until its replies come.
    private func write(_ request: WireRequest, waiter: ClientCallHandler.Waiter) throws(LedgerClientError) {
        var frame = ByteBuffer()
        do {
            try frame.writeFrame(request)
        } catch {
            throw .protocolViolation("could not encode the request: \(error)")
        }
        // If the channel closed before the call reached the handler (which then is no longer in
        // the pipeline), only the write promise learns of it: fail the call from there, or its
        // caller would wait forever.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in waiter.fail(LedgerClientError.connectionClosed("\(error)")) }
        channel.writeAndFlush(ClientCallHandler.Call(callID: request.callID, frame: frame, waiter: waiter), promise: written)
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
        var waiter: Waiter
    }

    /// A call waits for one reply (under the call timeout) or for a stream of them (a watch).
    enum Waiter: Sendable {
        case reply(CallCompletion)
        case stream(AsyncThrowingStream<WireResponse, any Error>.Continuation)

        func fail(_ error: any Error) {
            switch self {
            case .reply(let completion): completion.fail(error)
            case .stream(let continuation): continuation.finish(throwing: error)
            }
        }
    }

    private struct Pending {
        var waiter: Waiter
        var timeout: Scheduled<Void>?
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
            call.waiter.fail(LedgerClientError.connectionClosed(closedReason))
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        let callID = call.callID
        var timeout: Scheduled<Void>? = nil
        if case .reply = call.waiter {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            timeout = context.eventLoop.scheduleTask(in: callTimeout) {
                let (handler, _) = loopBound.value
                handler.pending.removeValue(forKey: callID)?.waiter.fail(LedgerClientError.timedOut)
            }
        }
        pending[callID] = Pending(waiter: call.waiter, timeout: timeout)
        // A failed write fails the call through the sender's write promise.
        context.write(wrapOutboundOut(call.frame), promise: promise)
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
        if case .stream(let continuation)? = pending[response.callID]?.waiter {
            continuation.yield(response)
            var final = false
            if case .error? = response.result { final = true }
            if case .watch(let update)? = response.result, case .ended? = update.update { final = true }
            if final {
                pending.removeValue(forKey: response.callID)
                continuation.finish()
            }
        } else if let entry = pending.removeValue(forKey: response.callID) {
            entry.timeout?.cancel()
            if case .reply(let completion) = entry.waiter { completion.succeed(response) }
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
            entry.timeout?.cancel()
            entry.waiter.fail(error)
        }
    }
}

import LedgerCore
import Synchronization

/// Completes a call's promise once: the reply, the timeout, a closed connection and a failed
/// write may race to finish the same call, and a NIO promise must be completed exactly once.
final class CallCompletion: Sendable {
    private let promise: EventLoopPromise<WireResponse>
    private let completed = Mutex(false)

    init(_ promise: EventLoopPromise<WireResponse>) {
        self.promise = promise
    }

    private func claim() -> Bool {
        completed.withLock { done in
            defer { done = true }
            return !done
        }
    }

    func succeed(_ response: WireResponse) {
        if claim() { promise.succeed(response) }
    }

    func fail(_ error: any Error) {
        if claim() { promise.fail(error) }
    }
}
