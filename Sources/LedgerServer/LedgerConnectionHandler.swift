// One connection's calls, on its event loop.
//
// A request frame is decoded and authorized on the event loop. A metering call (reserve, commit,
// release, refund and the other commands on one tenant; balance; estimate) is then applied by its
// shard right there, under the shard's lock, and its reply is handed back by the shard's log writer
// thread after the fdatasync that covers it: no task, no actor, two thread hand-offs per batch of
// calls instead of five per call. Every other call (admin, history, catalog, watch) runs in a task
// as before. Replies that are ready together go out as one buffer, one TLS record and one write.
//
// Invariants (all state is confined to the event loop, except the outbox):
// - At most `inFlightMax` calls of the connection run at once; frames read beyond that wait in
//   `queued`, and no more bytes are read while any wait, while the bound is reached or while the
//   channel is not writable (a peer that does not read its replies stops being read).
// - Every started call reports to the outbox exactly once: with its reply (metering calls and
//   refusals) or without one (a task that wrote its own replies, when it ends); `inFlight` counts
//   the started and not yet reported.
// - The end of input (the drain, a framing error) lets the started and queued calls finish and
//   their replies go out, then closes (after the framing error's reply, if it has one).
// - The registry hears that the connection is over once it is closed and no call runs, so the
//   server closes the engine only after every call's reply was written or dropped.

import LedgerCore
import LedgerEngine
import LedgerStore
import LedgerWire
import Logging
import NIOCore
import NIOSSL
import Synchronization
import X509

/// A call of the connection that finished: its reply to write, or nil after a stream (a watch)
/// that wrote its replies itself.
struct FinishedCall: Sendable {
    var reply: WireResponse?
}

final class LedgerConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let service: LedgerService
    private let access: AccessPolicy
    private let inFlightMax: Int
    /// The event loop's group commit: syncs the shards its metering calls logged to.
    private let groupCommit: EventLoopGroupCommit
    private let logger: Logger
    /// Called once, when the connection is closed and none of its calls runs any more.
    private let onOver: @Sendable () -> Void

    /// Calls that finished, handed from whichever thread finished them to the event loop.
    private let outbox = EventLoopBatch<FinishedCall>()
    /// Adds a finished call to the outbox and schedules `deliver` when it was empty; nil once the
    /// connection is over.
    private var report: (@Sendable (FinishedCall) -> Void)?
    private let watches = ConnectionWatches()
    private var principal: Principal?
    private var inFlight = 0
    /// Calls started and not yet over, watches included (they hold a slot while they stream);
    /// the hygiene handler's idle timeout asks it. On the event loop only.
    var callsInFlight: Int { inFlight }
    private var queued = CircularBuffer<ByteBuffer>()
    private var readHeld = false
    /// No more frames are read (drain, framing error, refused principal).
    private var inputEnded = false
    private var frameError: FrameError?
    private var closing = false
    private var inactive = false
    private var over = false
    private var peer = "?"

    init(
        service: LedgerService, access: AccessPolicy, inFlightMax: Int, groupCommit: EventLoopGroupCommit,
        logger: Logger, onOver: @escaping @Sendable () -> Void
    ) {
        self.service = service
        self.access = access
        self.inFlightMax = inFlightMax
        self.groupCommit = groupCommit
        self.logger = logger
        self.onOver = onOver
    }

    func handlerAdded(context: ChannelHandlerContext) {
        peer = context.channel.remoteAddress.map { "\($0)" } ?? "?"
        let (outbox, loop) = (outbox, context.eventLoop)
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        report = { call in
            guard outbox.add(call) else { return }
            loop.execute {
                let (handler, context) = bound.value
                handler.deliver(context: context)
            }
        }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !inputEnded else { return }
        queued.append(unwrapInboundIn(data))
        startQueued(context: context, syncBy: .caller)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            // The server drains (ConnectionHygieneHandler turns its request into this event): the
            // calls already read finish, then the connection closes. Watches are left to end by
            // themselves: the drain ends their subscriptions and they send `unavailable` last.
            endInput(context: context, stopWatches: false)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? FrameError {
            // After a bad length the stream cannot be resynchronised: the calls before it finish,
            // then the error's reply goes out and the connection closes.
            logger.debug("closing connection", metadata: ["connection.peer": "\(peer)", "error": "\(error)"])
            if frameError == nil { frameError = error }
            endInput(context: context, stopWatches: true)
            return
        }
        // A peer that vanishes (reset, close without close_notify) ends its calls' replies; the
        // ledger is unaffected: every change was applied and logged before its reply was due.
        logger.debug("connection ended", metadata: ["connection.peer": "\(peer)", "error": "\(error)"])
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed(context: context)
        context.fireChannelInactive()
    }

    /// Also the end of a channel that closed before it was ever active (no channelInactive then).
    func handlerRemoved(context: ChannelHandlerContext) {
        closed(context: context)
    }

    private func closed(context: ChannelHandlerContext) {
        guard !inactive else { return }
        inactive = true
        inputEnded = true
        queued.removeAll()
        watches.stopAll()
        finishIfDone(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        releaseRead(context: context)
        context.fireChannelWritabilityChanged()
    }

    // MARK: Outbound

    func read(context: ChannelHandlerContext) {
        if mayRead(context: context) {
            context.read()
        } else {
            readHeld = true
        }
    }

    private func mayRead(context: ChannelHandlerContext) -> Bool {
        !inputEnded && queued.isEmpty && inFlight < inFlightMax && context.channel.isWritable
    }

    private func releaseRead(context: ChannelHandlerContext) {
        guard readHeld, mayRead(context: context) else { return }
        readHeld = false
        context.read()
    }

    // MARK: Calls

    private func endInput(context: ChannelHandlerContext, stopWatches: Bool) {
        guard !inputEnded else { return }
        inputEnded = true
        if stopWatches { watches.stopAll() }
        startQueued(context: context)
        finishIfDone(context: context)
    }

    /// `syncBy: .caller` from `channelRead`, in the loop's I/O phase: only such calls use the loop's
    /// group commit. Calls started later in the tick (by `deliver`, from the task phase) are synced
    /// by the shard's writer thread (`.logWriter`): a group commit's sync there would answer calls whose
    /// delivery starts more calls whose sync is one more task of the same tick, and NIO runs the
    /// tasks of a tick until none is left: a connection with many queued frames (a client that does
    /// not read its replies) would keep the loop from its I/O for one fdatasync per `inFlightMax`
    /// of them (seen: the slowloris test's deadlines fired seconds late).
    private func startQueued(context: ChannelHandlerContext, syncBy: SyncBy = .logWriter) {
        while !closing, inFlight < inFlightMax, let frame = queued.popFirst() {
            start(frame, context: context, syncBy: syncBy)
        }
    }

    private func start(_ frame: ByteBuffer, context: ChannelHandlerContext, syncBy: SyncBy) {
        if principal == nil {
            principal = resolvePrincipal(context: context)
            if principal == nil {
                let callID = (try? WireRequest(frame: frame))?.callID ?? 0
                let error = LedgerError(.unauthenticated, "the client certificate's subject is not a principal of this server")
                logger.info("unknown principal refused", metadata: ["connection.peer": "\(peer)"])
                closing = true
                inputEnded = true
                queued.removeAll()
                writeThenClose(WireResponse(callID: callID, error: error), context: context)
                return
            }
        }
        let principal = principal!
        inFlight += 1
        let report = report!
        let call: LedgerCall
        let callID: UInt64
        switch Self.decode(frame) {
        case .refused(let response, let rpc):
            service.metrics.record(rpc: rpc, code: LedgerService.code(of: response), duration: .zero)
            return report(FinishedCall(reply: response))
        case .call(let decoded, let id):
            (call, callID) = (decoded, id)
        }
        let channel = context.channel
        let replies = LedgerService.Replies(
            finish: { response in report(FinishedCall(reply: response)) },
            send: { response in try await channel.writeAndFlush(try LedgerServer.encode(response)).get() })
        if let shard = service.serve(call, callID: callID, principal: principal, watches: watches, syncBy: syncBy, replies: replies) {
            groupCommit.needsSync(shard)
        }
    }

    enum Decoded {
        /// Not served: the frame is not a request, or a field is wrong or unknown.
        case refused(WireResponse, rpc: String)
        case call(LedgerCall, callID: UInt64)
    }

    /// Decodes a request frame into a call, or the error reply.
    static func decode(_ frame: ByteBuffer) -> Decoded {
        let request: WireRequest
        do {
            request = try WireRequest(frame: frame)
        } catch {
            return .refused(
                WireResponse(callID: 0, error: LedgerError(.invalidArgument, "the frame is not a valid Request message: \(error)")),
                rpc: "unreadable")
        }
        if request.containsUnknownFields {
            return .refused(
                WireResponse(
                    callID: request.callID,
                    error: LedgerError(
                        .invalidArgument, "the request has fields this server does not know; upgrade the server or the client")),
                rpc: request.rpcName)
        }
        do {
            return .call(try LedgerCall(request), callID: request.callID)
        } catch {
            return .refused(WireResponse(callID: request.callID, error: error), rpc: request.rpcName)
        }
    }

    /// Writes what the outbox holds (one buffer, one flush), then starts queued frames, reads more
    /// or closes, as the connection now allows.
    private func deliver(context: ChannelHandlerContext) {
        let finished = outbox.take()
        inFlight -= finished.count
        precondition(inFlight >= 0, "a call of the connection finished twice")
        let replies = finished.compactMap(\.reply)
        // Calls that finished after the connection closed: their replies have nowhere to go.
        if inactive { return finishIfDone(context: context) }
        if !replies.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: 128 * replies.count)
            for reply in replies {
                do {
                    try buffer.writeFrame(reply)
                } catch {
                    logger.error("reply not encoded", metadata: ["call.id": "\(reply.callID)", "error": "\(error)"])
                }
            }
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
        startQueued(context: context)
        releaseRead(context: context)
        finishIfDone(context: context)
    }

    /// Once input has ended and no call runs or waits: closed connections are reported over,
    /// open ones are closed (after the framing error's reply).
    private func finishIfDone(context: ChannelHandlerContext) {
        guard inputEnded, inFlight == 0, queued.isEmpty else { return }
        if inactive {
            guard !over else { return }
            over = true
            // Breaks the cycle handler -> report -> handler (kept until now: calls that finish
            // after the close still report through it).
            report = nil
            onOver()
            return
        }
        guard !closing else { return }
        closing = true
        if let error = frameError, let reply = LedgerServer.reply(to: error) {
            writeThenClose(reply, context: context)
        } else {
            context.close(promise: nil)
        }
    }

    private func writeThenClose(_ response: WireResponse, context: ChannelHandlerContext) {
        guard let buffer = try? LedgerServer.encode(response) else {
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in context.close(promise: nil) }
    }

    /// The principal named by the peer's certificate (its last subject common name), or nil.
    private func resolvePrincipal(context: ChannelHandlerContext) -> Principal? {
        guard let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate(),
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
        return access.principal(commonName: commonName)
    }
}
