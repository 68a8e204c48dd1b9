import LedgerWire
import NIOCore
import NIOPosix
import NIOSSL

/// One TLS connection to the server. Calls are written from any thread; the handler, on the
/// channel's event loop, keeps the pending calls by call id and completes each when its reply
/// comes, whatever the order.
///
/// Requests made together leave together: a caller encodes its frame on its own thread and puts
/// it in the connection's outbox; one event-loop task writes everything the outbox holds as one
/// buffer with one flush (one TLS record, one write) instead of a hop, a record and a system call
/// per request.
final class ClientConnection: Sendable {
    let channel: any Channel
    private let outbox = EventLoopBatch<ClientCallHandler.Call>()

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
        let call = ClientCallHandler.Call(callID: request.callID, frame: frame, waiter: waiter)
        if outbox.add(call) { channel.eventLoop.execute { self.writeOutbox() } }
    }

    /// On the event loop: everything in the outbox, to the call handler in one write and one flush.
    private func writeOutbox() {
        let calls = outbox.take()
        guard !calls.isEmpty else { return }
        // A channel that closed has no call handler left to keep (and later fail) the calls; and
        // a write that fails tells only its promise: either way the calls fail here, or their
        // callers would wait forever (a call completes once, so a second failure is harmless).
        guard channel.isActive else {
            for call in calls { call.waiter.fail(LedgerClientError.connectionClosed("the connection is closed")) }
            return
        }
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            for call in calls { call.waiter.fail(LedgerClientError.connectionClosed("\(error)")) }
        }
        channel.writeAndFlush(calls, promise: written)
    }

    func close() async {
        try? await channel.close()
    }
}

/// Keeps the calls in flight on one connection and matches replies to them by call id.
final class ClientCallHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    /// The calls the connection's outbox held, written together.
    typealias OutboundIn = [Call]
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
        /// When a single-reply call times out (nil for streams: no call timeout).
        var deadline: NIODeadline?
    }

    private let callTimeout: TimeAmount
    private var pending: [UInt64: Pending] = [:]
    private var closedReason: String? = nil
    private var sweep: RepeatedTask?

    init(callTimeout: TimeAmount) {
        self.callTimeout = callTimeout
    }

    /// How often timed-out calls are looked for: a quarter of the call timeout, between 10 ms and
    /// 1 s. One repeated task per connection instead of a timer per call (a timer per call cost an
    /// allocation, and cancelling it a search of the event loop's timer heap, on every reply), so
    /// a call times out between the call timeout and a quarter more.
    static func sweepInterval(_ callTimeout: TimeAmount) -> TimeAmount {
        max(.milliseconds(10), min(.seconds(1), .nanoseconds(callTimeout.nanoseconds / 4)))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let interval = Self.sweepInterval(callTimeout)
        sweep = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            loopBound.value.failTimedOut(now: .now())
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        sweep?.cancel()
        sweep = nil
    }

    private func failTimedOut(now: NIODeadline) {
        let late = pending.filter { $0.value.deadline.map { $0 <= now } ?? false }
        for (callID, entry) in late {
            pending.removeValue(forKey: callID)
            entry.waiter.fail(LedgerClientError.timedOut)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let calls = unwrapOutboundIn(data)
        if let closedReason {
            for call in calls { call.waiter.fail(LedgerClientError.connectionClosed(closedReason)) }
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        let deadline = NIODeadline.now() + callTimeout
        var frames = context.channel.allocator.buffer(capacity: calls.reduce(0) { $0 + $1.frame.readableBytes })
        for var call in calls {
            var callDeadline: NIODeadline? = nil
            if case .reply = call.waiter { callDeadline = deadline }
            pending[call.callID] = Pending(waiter: call.waiter, deadline: callDeadline)
            frames.writeBuffer(&call.frame)
        }
        // A failed write fails the calls through the outbox's write promise.
        context.write(wrapOutboundOut(frames), promise: promise)
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
        for entry in entries.values { entry.waiter.fail(error) }
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
