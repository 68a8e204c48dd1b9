// One connection of the framed port, on its event loop: the NIO side of the connection. Its
// decisions (which frames start, when to read, when to close, when it is over) are the pure
// ``LedgerConnectionHandler/StateMachine``'s; the calls themselves are `LedgerService.serve`'s.
//
// A request frame is decoded on the event loop and handed to the service. A metering call is
// applied by its shard right there, under the shard's lock, and its reply comes back after the
// fdatasync that covers it (this loop's group commit, or the shard's writer thread): no task, no
// actor. Catalog installs, the admin calls and watches run in tasks. Replies that are ready
// together go out as one buffer, one TLS record and one write.
//
// Invariants (all state is confined to the event loop, except the outbox):
// - Every started call reports to the outbox exactly once: with its reply, or without one after a
//   watch wrote its stream itself; the state machine counts the started and not yet reported.
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
    var reply: CallReply?
}

final class LedgerConnectionHandler: ChannelDuplexHandler, ConnectionProgress {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let service: LedgerService
    private let access: AccessPolicy
    /// The event loop's group commit: syncs the shards its metering calls logged to.
    private let groupCommit: EventLoopGroupCommit
    private let logger: Logger
    /// Called once, when the connection is closed and none of its calls runs any more.
    private let onOver: @Sendable () -> Void

    /// Every decision (``StateMachine``); the handler carries them out. On the event loop only.
    private var machine: StateMachine
    /// Calls that finished, handed from whichever thread finished them to the event loop.
    private let outbox = EventLoopBatch<FinishedCall>()
    /// The outbox's calls while `deliver` writes them; empty otherwise (its room is reused, up to
    /// `clearDelivering`'s bound).
    private var delivering: [FinishedCall] = []
    /// Adds a finished call to the outbox and schedules `deliver` when it was empty; nil once the
    /// connection is over.
    private var report: (@Sendable (consuming FinishedCall) -> Void)?
    /// How every call of this connection answers (through `report`; a watch's stream through the
    /// channel): made once per connection rather than two closures per call; nil once it is over.
    private var replies: LedgerService.Replies?
    private let watches = ConnectionWatches()
    private var principal: Principal?
    private var peer = "?"
    /// Queued frames wait for the loop's next turn (``yieldCalls(context:)``).
    private var resumeScheduled = false

    var callsInFlight: Int { machine.callsInFlight }
    var framedBytes: Int { machine.framedBytes }

    init(
        service: LedgerService, access: AccessPolicy, inFlightMax: Int, groupCommit: EventLoopGroupCommit,
        logger: Logger, onOver: @escaping @Sendable () -> Void
    ) {
        self.service = service
        self.access = access
        machine = StateMachine(inFlightMax: inFlightMax)
        self.groupCommit = groupCommit
        self.logger = logger
        self.onOver = onOver
    }

    func handlerAdded(context: ChannelHandlerContext) {
        peer = context.channel.remoteAddress.map { "\($0)" } ?? "?"
        let (outbox, loop) = (outbox, context.eventLoop)
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let report: @Sendable (consuming FinishedCall) -> Void = { call in
            guard outbox.add(consume call) else { return }
            loop.execute {
                let (handler, context) = bound.value
                handler.deliver(context: context)
            }
        }
        self.report = report
        let channel = context.channel
        replies = LedgerService.Replies(
            finish: { response in report(FinishedCall(reply: consume response)) },
            send: { response in try await channel.writeAndFlush(try LedgerServer.encode(response)).get() })
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch machine.frameRead(unwrapInboundIn(data)) {
        case .none:
            return
        case .resolvePrincipal:
            principal = resolvePrincipal(context: context)
            switch machine.principalResolved(known: principal != nil) {
            case .startCalls:
                break
            case .refuse(let frame):
                let callID = (try? WireRequest(frame: frame))?.callID ?? 0
                let error = LedgerError(.unauthenticated, "the client certificate's subject is not a principal of this server")
                logger.info("unknown principal refused", metadata: ["connection.peer": "\(peer)"])
                return writeThenClose(WireResponse(callID: callID, error: error), context: context)
            }
        case .startCalls:
            break
        }
        // Frames also come in tasks (TLS hands on buffered input when a reply is written).
        if groupCommit.turn.isOver { return yieldCalls(context: context) }
        startCalls(context: context, syncBy: .caller)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            // The server drains (ConnectionHygieneHandler turns its request into this event): the
            // calls already read finish, then the connection closes. Watches are left to end by
            // themselves: the drain ends their subscriptions and they send `unavailable` last.
            endInput(frameError: nil, context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? FrameError {
            // After a bad length the stream cannot be resynchronised: the calls before it finish,
            // then the error's reply goes out and the connection closes.
            logger.debug("closing connection", metadata: ["connection.peer": "\(peer)", "error": "\(error)"])
            endInput(frameError: error, context: context)
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
        machine.channelClosed()
        watches.stopAll()
        settle(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if machine.releaseHeldRead(writable: context.channel.isWritable) { context.read() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Outbound

    func read(context: ChannelHandlerContext) {
        if machine.readRequested(writable: context.channel.isWritable) { context.read() }
    }

    // MARK: Calls

    private func endInput(frameError: FrameError?, context: ChannelHandlerContext) {
        guard machine.endInput(frameError: frameError) else { return }
        if frameError != nil { watches.stopAll() }
        startCalls(context: context)
        settle(context: context)
    }

    /// Starts the frames the state machine lets start. `syncBy: .caller` from `channelRead`, in
    /// the loop's I/O phase: only such calls use the loop's group commit. Calls started later in
    /// the tick (by `deliver`, from the task phase) are synced by the shard's writer thread
    /// (`.logWriter`): a group commit's sync there would answer calls whose delivery starts more
    /// calls whose sync is one more task of the same tick, and NIO runs the tasks of a tick until
    /// none is left: a connection with many queued frames (a client that does not read its replies)
    /// would keep the loop from its I/O for one fdatasync per `inFlightMax` of them (seen: the
    /// slowloris test's deadlines fired seconds late).
    private func startCalls(context: ChannelHandlerContext, syncBy: SyncBy = .logWriter) {
        while let frame = machine.nextCall() {
            start(frame, context: context, syncBy: syncBy)
        }
    }

    private func start(_ frame: ByteBuffer, context: ChannelHandlerContext, syncBy: SyncBy) {
        let report = report!
        let call: LedgerCall
        let callID: UInt64
        let traceParent: String
        switch Self.decode(frame) {
        case .refused(let response, let rpc):
            service.metrics.record(rpc: rpc, code: LedgerService.code(of: response), duration: .zero)
            return report(FinishedCall(reply: .message(response)))
        case .call(let decoded, let id, let parent):
            (call, callID, traceParent) = (decoded, id, parent)
        }
        if let shard = service.serve(
            call, callID: callID, principal: principal!, watches: watches, syncBy: syncBy, traceParent: traceParent, replies: replies!)
        {
            groupCommit.needsSync(shard)
        }
    }

    /// Writes what the outbox holds (one buffer, one flush), then starts waiting frames, reads more
    /// or closes, as the state machine now allows.
    private func deliver(context: ChannelHandlerContext) {
        outbox.take(into: &delivering)
        machine.callsFinished(delivering.count)
        // Calls that finished after the connection closed: their replies have nowhere to go.
        if machine.state == .closed || machine.state == .over {
            clearDelivering()
            return settle(context: context)
        }
        // The replies written where they are (not gathered into an array of their own first), each
        // taken out of its place (`for call in delivering`, or reading an element, copied the call:
        // a walk of its result with a retain per reference in it).
        var buffer: ByteBuffer? = nil
        for index in delivering.indices {
            guard let reply = delivering[index].reply.take() else { continue }
            if buffer == nil { buffer = context.channel.allocator.buffer(capacity: 128 * delivering.count) }
            do {
                try buffer!.writeFrame(reply)
            } catch {
                logger.error("reply not encoded", metadata: ["call.id": "\(reply.callID)", "error": "\(error)"])
            }
        }
        clearDelivering()
        if let buffer { context.writeAndFlush(wrapOutboundOut(buffer), promise: nil) }
        continueCalls(context: context)
    }

    /// Empties `delivering` for the next delivery, keeping room for up to 64 calls (each a few
    /// hundred bytes); a larger burst's room is given back rather than held for the connection's life.
    private func clearDelivering() {
        if delivering.capacity > 64 { delivering = [] } else { delivering.removeAll(keepingCapacity: true) }
    }

    /// Starts the queued frames that may start, reads more or closes; or, when the loop's turn is
    /// over and frames wait, leaves them for its next turn (``EventLoopTurn``).
    private func continueCalls(context: ChannelHandlerContext) {
        if machine.queuedFrames > 0, groupCommit.turn.isOver { return yieldCalls(context: context) }
        startCalls(context: context)
        if machine.releaseHeldRead(writable: context.channel.isWritable) { context.read() }
        settle(context: context)
    }

    /// Leaves the queued frames for the loop's next turn.
    private func yieldCalls(context: ChannelHandlerContext) {
        guard !resumeScheduled else { return }
        resumeScheduled = true
        groupCommit.turn.yield { [self] in
            resumeScheduled = false
            continueCalls(context: context)
        }
    }

    /// Carries out what the state machine decides once calls finished or the connection's input
    /// or channel ended.
    private func settle(context: ChannelHandlerContext) {
        switch machine.settle() {
        case .none:
            return
        case .close(let frameError):
            if let frameError, let reply = LedgerServer.reply(to: frameError) {
                writeThenClose(reply, context: context)
            } else {
                context.close(promise: nil)
            }
        case .reportOver:
            // Breaks the cycle handler -> report -> handler (kept until now: calls that finish
            // after the close still report through it; `replies` holds the channel).
            report = nil
            replies = nil
            onOver()
        }
    }

    private func writeThenClose(_ response: WireResponse, context: ChannelHandlerContext) {
        guard let buffer = try? LedgerServer.encode(response) else {
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in context.close(promise: nil) }
    }

    enum Decoded {
        /// Not served: the frame is not a request, or a field is wrong or unknown.
        case refused(WireResponse, rpc: String)
        case call(LedgerCall, callID: UInt64, traceParent: String)
    }

    /// Decodes a request frame into a call, or the error reply.
    static func decode(_ frame: ByteBuffer) -> Decoded {
        // The metering calls' plain requests without SwiftProtobuf's decoder (they carry no
        // unknown field by construction); every other frame through it.
        if let plain = RequestDecoder.decode(frame) {
            do {
                return .call(try LedgerCall.of(plain.call), callID: plain.callID, traceParent: plain.traceParent)
            } catch {
                return .refused(WireResponse(callID: plain.callID, error: error), rpc: plain.rpcName)
            }
        }
        let request: WireRequest
        do {
            request = try WireRequest(frame: frame)
        } catch {
            return .refused(
                WireResponse(callID: 0, error: LedgerError(.invalidArgument, "the frame is not a valid Request message: \(error)")),
                rpc: "unreadable")
        }
        do {
            return .call(try LedgerService.decode(request), callID: request.callID, traceParent: request.traceParent)
        } catch {
            return .refused(WireResponse(callID: request.callID, error: error), rpc: request.rpcName)
        }
    }

    /// The principal named by the peer's certificate, or nil.
    private func resolvePrincipal(context: ChannelHandlerContext) -> Principal? {
        guard let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate() else { return nil }
        return access.principal(peerCertificate: certificate)
    }
}
