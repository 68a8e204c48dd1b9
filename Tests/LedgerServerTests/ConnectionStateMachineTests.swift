@testable import LedgerServer
import LedgerWire
import NIOCore
import Testing

/// The framed port's connection decisions, driven without a socket.
@Suite("Connection: state machine")
struct ConnectionStateMachineTests {
    typealias Machine = LedgerConnectionHandler.StateMachine

    static func frame(_ byte: UInt8, length: Int = 3) -> ByteBuffer { ByteBuffer(bytes: Array(repeating: byte, count: length)) }

    /// Steps of a scenario, applied in order to a machine with a bound of 2 calls.
    enum Step {
        case frame(UInt8)
        case principal(known: Bool)
        case startAll
        case finish(Int)
        case endInput(FrameError?)
        case closed
        case settle
    }

    struct Expected {
        var state: Machine.State
        var inFlight: Int
        var queued: Int
        var started: [UInt8]
        var mayRead: Bool
        var lastSettle: Machine.Settle = .none
    }

    static func run(_ steps: [Step]) -> (machine: Machine, started: [UInt8], lastSettle: Machine.Settle, refused: [UInt8]) {
        var machine = Machine(inFlightMax: 2)
        var started: [UInt8] = []
        var refused: [UInt8] = []
        var lastSettle = Machine.Settle.none
        for step in steps {
            switch step {
            case .frame(let byte): _ = machine.frameRead(frame(byte))
            case .principal(let known):
                if case .refuse(let first) = machine.principalResolved(known: known) { refused.append(first.readableBytesView.first!) }
            case .startAll:
                while let next = machine.nextCall() { started.append(next.readableBytesView.first!) }
            case .finish(let count): machine.callsFinished(count)
            case .endInput(let error): _ = machine.endInput(frameError: error)
            case .closed: machine.channelClosed()
            case .settle: lastSettle = machine.settle()
            }
        }
        return (machine, started, lastSettle, refused)
    }

    @Test(
        "each scenario ends in its state, with its calls started, waiting and settled",
        arguments: [
            ("nothing yet", [], Expected(state: .awaitingPrincipal, inFlight: 0, queued: 0, started: [], mayRead: true)),
            ("a first frame waits for the principal", [.frame(1)],
             Expected(state: .awaitingPrincipal, inFlight: 0, queued: 1, started: [], mayRead: false)),
            ("known principal: the frame starts", [.frame(1), .principal(known: true), .startAll],
             Expected(state: .serving, inFlight: 1, queued: 0, started: [1], mayRead: true)),
            ("the bound holds the third frame back, and reading", [.frame(1), .principal(known: true), .frame(2), .frame(3), .startAll],
             Expected(state: .serving, inFlight: 2, queued: 1, started: [1, 2], mayRead: false)),
            ("a finished call lets the waiting frame start", [.frame(1), .principal(known: true), .frame(2), .frame(3), .startAll, .finish(1), .startAll],
             Expected(state: .serving, inFlight: 2, queued: 0, started: [1, 2, 3], mayRead: false)),
            ("the drain lets started and waiting calls finish before the close",
             [.frame(1), .principal(known: true), .frame(2), .frame(3), .startAll, .endInput(nil), .settle],
             Expected(state: .inputEnded, inFlight: 2, queued: 1, started: [1, 2], mayRead: false)),
            ("frames after the drain are not served",
             [.frame(1), .principal(known: true), .startAll, .endInput(nil), .frame(2), .startAll],
             Expected(state: .inputEnded, inFlight: 1, queued: 0, started: [1], mayRead: false)),
            ("the drain closes once everything finished",
             [.frame(1), .principal(known: true), .frame(2), .frame(3), .startAll, .endInput(nil), .finish(2), .startAll, .settle, .finish(1), .settle],
             Expected(state: .closing, inFlight: 0, queued: 0, started: [1, 2, 3], mayRead: false, lastSettle: .close(after: nil))),
            ("a framing error closes after its reply",
             [.frame(1), .principal(known: true), .startAll, .endInput(.emptyFrame), .finish(1), .settle],
             Expected(state: .closing, inFlight: 0, queued: 0, started: [1], mayRead: false, lastSettle: .close(after: .emptyFrame))),
            ("an unknown principal is refused, nothing starts", [.frame(1), .frame(2), .principal(known: false), .startAll],
             Expected(state: .closing, inFlight: 0, queued: 0, started: [], mayRead: false)),
            ("a closed channel with calls running is not over yet",
             [.frame(1), .principal(known: true), .frame(2), .frame(3), .startAll, .closed, .startAll, .settle],
             Expected(state: .closed, inFlight: 2, queued: 0, started: [1, 2], mayRead: false)),
            ("it is over once its last call finished",
             [.frame(1), .principal(known: true), .startAll, .closed, .finish(1), .settle],
             Expected(state: .over, inFlight: 0, queued: 0, started: [1], mayRead: false, lastSettle: .reportOver)),
            ("a connection closed before any frame is over at once", [.closed, .settle],
             Expected(state: .over, inFlight: 0, queued: 0, started: [], mayRead: false, lastSettle: .reportOver)),
        ] as [(String, [Step], Expected)])
    func scenarios(name: String, steps: [Step], expected: Expected) {
        let (machine, started, lastSettle, _) = Self.run(steps)
        #expect(machine.state == expected.state, "\(name)")
        #expect(machine.callsInFlight == expected.inFlight, "\(name)")
        #expect(machine.queuedFrames == expected.queued, "\(name)")
        #expect(started == expected.started, "\(name)")
        #expect(machine.mayRead(writable: true) == expected.mayRead, "\(name)")
        #expect(lastSettle == expected.lastSettle, "\(name)")
    }

    @Test("the refusal answers the first frame's call")
    func refusalAnswersTheFirstFrame() {
        let (_, _, _, refused) = Self.run([.frame(7), .frame(8), .principal(known: false)])
        #expect(refused == [7])
    }

    @Test("a read asked for while it may not happen is held, and released once it may")
    func heldReads() {
        var machine = Machine(inFlightMax: 1)
        _ = machine.frameRead(Self.frame(1))
        _ = machine.principalResolved(known: true)
        _ = machine.nextCall()
        let heldWhileFull = machine.readRequested(writable: true)
        #expect(!heldWhileFull)
        let releasedWhileFull = machine.releaseHeldRead(writable: true)
        #expect(!releasedWhileFull)
        machine.callsFinished(1)
        let releasedUnwritable = machine.releaseHeldRead(writable: false)
        #expect(!releasedUnwritable, "an unwritable channel holds reading")
        let released = machine.releaseHeldRead(writable: true)
        #expect(released)
        let releasedAgain = machine.releaseHeldRead(writable: true)
        #expect(!releasedAgain, "released once")
        let readNow = machine.readRequested(writable: true)
        #expect(readNow)
    }

    @Test("whole frames are counted in bytes, length prefixes included, in every state")
    func framedBytes() {
        var machine = Machine(inFlightMax: 1)
        _ = machine.frameRead(Self.frame(1, length: 10))
        _ = machine.principalResolved(known: true)
        _ = machine.endInput(frameError: nil)
        _ = machine.frameRead(Self.frame(2, length: 0))
        #expect(machine.framedBytes == 14 + 4)
    }
}
