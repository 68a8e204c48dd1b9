import LedgerServer
import Logging
import NIOCore
import NIOEmbedded
import NIOTLS
import Testing

@Suite("Connection hygiene: deadlines decided without a socket")
struct HygieneStateMachineTests {
    static var limits: ConnectionLimits {
        var limits = ConnectionLimits()
        limits.handshakeTimeout = .seconds(10)
        limits.frameReadTimeout = .seconds(30)
        limits.idleTimeout = .seconds(300)
        return limits
    }

    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static func at(_ seconds: Int64) -> NIODeadline { start + .seconds(seconds) }

    static func frame(_ bodyLength: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(bodyLength), endianness: .big)
        buffer.writeBytes(Array(repeating: 1, count: bodyLength))
        return buffer
    }

    typealias Machine = ConnectionHygieneHandler.StateMachine

    @Test(
        "each deadline closes at its time and not before",
        arguments: [
            // (what happens, when we look, what must be decided)
            ("no handshake", 9, Machine.Action.none),
            ("no handshake", 10, .close(.handshakeTimeout)),
            ("handshake, nothing else", 299, .none),
            ("handshake, nothing else", 300, .close(.idleTimeout)),
            ("half a frame at 5", 34, .none),
            ("half a frame at 5", 35, .close(.frameReadTimeout)),
            ("a call in flight since 5", 1_000, .none),
            ("a call answered at 20", 319, .none),
            ("a call answered at 20", 320, .close(.idleTimeout)),
            ("a watch streaming since 5, its first reply at 6", 10_000, .none),
        ] as [(String, Int64, Machine.Action)])
    func deadlines(scenario: String, lookAt: Int64, expected: Machine.Action) {
        var machine = Machine(limits: Self.limits, now: Self.start)
        if scenario != "no handshake" { machine.handshakeCompleted(now: Self.start) }
        var callsInFlight = 0
        switch scenario {
        case "half a frame at 5":
            machine.received(50, framedBytes: 0, now: Self.at(5))
        case "a call in flight since 5":
            machine.received(14, framedBytes: 14, now: Self.at(5))
            callsInFlight = 1
        case "a call answered at 20":
            machine.received(14, framedBytes: 14, now: Self.at(5))
            machine.wrote(now: Self.at(20))
        case "a watch streaming since 5, its first reply at 6":
            // The connection's handler counts the watch in flight until it ends.
            machine.received(14, framedBytes: 14, now: Self.at(5))
            machine.wrote(now: Self.at(6))
            callsInFlight = 1
        default:
            break
        }
        #expect(machine.check(now: Self.at(lookAt), callsInFlight: callsInFlight) == expected, "\(scenario) at \(lookAt)")
    }

    @Test("a frame is partly in while more bytes came than whole frames were read; its deadline starts with its first byte")
    func partialFrames() {
        var machine = Machine(limits: Self.limits, now: Self.start)
        machine.handshakeCompleted(now: Self.start)
        // Half a frame at 1, the rest of it and the start of the next at 20, nothing more.
        machine.received(50, framedBytes: 0, now: Self.at(1))
        #expect(machine.check(now: Self.at(30), callsInFlight: 0) == .none)
        machine.received(70, framedBytes: 104, now: Self.at(20))
        // The first frame's deadline (1 + 30) no longer applies; the second's runs from 20.
        #expect(machine.check(now: Self.at(31), callsInFlight: 1) == .none)
        #expect(machine.check(now: Self.at(50), callsInFlight: 1) == .close(.frameReadTimeout))
        // Its last bytes came: no frame deadline, only idleness.
        machine.received(4, framedBytes: 124, now: Self.at(40))
        #expect(machine.check(now: Self.at(1_000), callsInFlight: 2) == .none)
        #expect(machine.check(now: Self.at(340), callsInFlight: 0) == .close(.idleTimeout))
    }

    @Test("the handler turns Drain into the end of input and passes nothing after it")
    func drainOnEmbeddedChannel() throws {
        let recorder = EventRecorder()
        let channel = EmbeddedChannel(
            handlers: [ConnectionHygieneHandler(limits: Self.limits, now: .now(), logger: Logger(label: "test"), progress: NoCalls()), recorder])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: nil))
        try channel.writeInbound(Self.frame(1))
        #expect(try channel.readInbound(as: ByteBuffer.self) != nil)
        #expect(!recorder.inputClosed)
        channel.pipeline.fireUserInboundEventTriggered(ConnectionHygieneHandler.Drain())
        #expect(recorder.inputClosed)
        try channel.writeInbound(Self.frame(1))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        #expect(channel.isActive)
        _ = try? channel.finish()
    }
}

final class NoCalls: ConnectionProgress {
    var callsInFlight: Int { 0 }
    var framedBytes: Int { 0 }
}

final class EventRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var inputClosed = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { inputClosed = true }
        context.fireUserInboundEventTriggered(event)
    }
}
