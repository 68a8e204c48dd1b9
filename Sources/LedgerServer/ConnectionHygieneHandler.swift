import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// What the hygiene handler asks of the connection it watches (its handler, on the event loop).
package protocol ConnectionProgress: AnyObject {
    /// Calls started and not yet over, watches included.
    var callsInFlight: Int { get }
    /// Bytes of the whole frames read so far, length prefixes included.
    var framedBytes: Int { get }
}

/// Sits between TLS and the frame decoder and closes connections that overstay: handshake
/// timeout, frame read deadline, idle timeout (decisions in ``StateMachine``). It also turns the
/// server's drain request into the end of the connection's input, so that the calls in flight
/// finish and nothing new is read.
package final class ConnectionHygieneHandler: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    /// Fired into the pipeline by the server when it shuts down.
    package struct Drain {
        package init() {}
    }

    private var machine: StateMachine
    private var timer: RepeatedTask?
    private var draining = false
    private let logger: Logger
    /// The connection's handler, asked on the event loop.
    private let progress: any ConnectionProgress

    package init(limits: ConnectionLimits, now: NIODeadline = .now(), logger: Logger, progress: any ConnectionProgress) {
        machine = StateMachine(limits: limits, now: now)
        self.logger = logger
        self.progress = progress
    }

    /// How often the deadlines are checked: a quarter of the shortest, between 10 ms and 1 s.
    static func checkInterval(_ limits: ConnectionLimits) -> TimeAmount {
        let shortest = min(limits.handshakeTimeout, limits.frameReadTimeout, limits.idleTimeout)
        let quarter = TimeAmount(shortest / 4)
        return max(.milliseconds(10), min(.seconds(1), quarter))
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(
            initialDelay: Self.checkInterval(machine.limits), delay: Self.checkInterval(machine.limits)
        ) { _ in
            let (handler, context) = loopBound.value
            handler.checkDeadlines(context: context)
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    package func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    private func checkDeadlines(context: ChannelHandlerContext) {
        guard case .close(let reason) = machine.check(now: .now(), callsInFlight: progress.callsInFlight) else { return }
        logger.debug("closing connection", metadata: ["connection.close_reason": "\(reason.rawValue)"])
        timer?.cancel()
        timer = nil
        context.close(promise: nil)
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !draining else { return }
        let byteCount = unwrapInboundIn(data).readableBytes
        // The frame decoder and the connection's handler take whole frames out of these bytes
        // before this returns.
        context.fireChannelRead(data)
        machine.received(byteCount, framedBytes: progress.framedBytes, now: .now())
    }

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        machine.wrote(now: .now())
        context.write(data, promise: promise)
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case TLSUserEvent.handshakeCompleted:
            machine.handshakeCompleted(now: .now())
            context.fireUserInboundEventTriggered(event)
        case is Drain:
            guard !draining else { return }
            draining = true
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }
}
