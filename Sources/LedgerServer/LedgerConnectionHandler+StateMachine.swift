import LedgerWire
import NIOCore

extension LedgerConnectionHandler {
    /// The decisions of one connection of the framed port, without a channel: which frames start
    /// calls now, when the socket may be read, when the connection closes and when it is over.
    /// It is told what happened (a frame read, the principal resolved, calls finished, the input
    /// ended, the channel closed) and answers with what to do; the handler does it. Tests drive it
    /// table by table without a socket.
    ///
    /// ```
    ///  awaitingPrincipal ──first frame, known principal──▶ serving
    ///        │ unknown principal (refusal reply, then close)      │ drain, framing error
    ///        ▼                                                    ▼
    ///     closing ◀──────── nothing runs or waits ────────── inputEnded
    ///        │ channel closed (from any state)
    ///        ▼
    ///     closed ──nothing runs──▶ over (the registry is told, once)
    /// ```
    ///
    /// Invariants: `callsInFlight` counts calls started and not yet finished, watches included (a
    /// watch finishes when its stream ends), and never goes negative; at most `inFlightMax` run at
    /// once and frames beyond that wait in order; no frame starts once the connection closes.
    struct StateMachine {
        enum State: Equatable {
            /// No frame yet: the principal comes from the client certificate at the first one
            /// (the TLS handshake is over by then).
            case awaitingPrincipal
            case serving
            /// No more frames are read (the server drains, or the stream broke): the calls started
            /// and waiting finish, then the connection closes.
            case inputEnded
            /// The close is under way: the refusal or framing error's reply, if any, then the close.
            case closing
            /// The channel is closed; calls still running finish with nowhere to reply.
            case closed
            /// Closed with no call left: the connection is over (reported once).
            case over
        }

        /// What to do after the first frame came or the principal was resolved.
        enum FrameAction: Equatable {
            case none
            /// Resolve the principal from the peer certificate, then call `principalResolved`.
            case resolvePrincipal
            /// Start the calls `nextCall()` hands out.
            case startCalls
        }

        enum PrincipalAction: Equatable {
            case startCalls
            /// Refuse the connection: answer this frame's call with `unauthenticated`, then close.
            case refuse(ByteBuffer)
        }

        /// What to do once calls finished, the input ended or the channel closed.
        enum Settle: Equatable {
            case none
            /// Close; after a framing error, after writing its reply (if it has one).
            case close(after: FrameError?)
            /// Tell the registry the connection is over: it is closed and none of its calls runs.
            case reportOver
        }

        let inFlightMax: Int
        private(set) var state: State = .awaitingPrincipal
        private(set) var callsInFlight = 0
        /// Bytes of the frames read so far, length prefixes included: the hygiene handler compares
        /// them with the bytes it passed on to know whether a frame is partly in.
        private(set) var framedBytes = 0
        private var queued = CircularBuffer<ByteBuffer>()
        private var frameError: FrameError?
        /// A read was asked for and held back; it is released once reading is allowed again.
        private var readHeld = false

        init(inFlightMax: Int) {
            precondition(inFlightMax > 0)
            self.inFlightMax = inFlightMax
        }

        var queuedFrames: Int { queued.count }

        /// A whole frame was read.
        mutating func frameRead(_ frame: ByteBuffer) -> FrameAction {
            framedBytes += 4 + frame.readableBytes
            switch state {
            case .awaitingPrincipal:
                queued.append(frame)
                return queued.count == 1 ? .resolvePrincipal : .none
            case .serving:
                queued.append(frame)
                return .startCalls
            case .inputEnded, .closing, .closed, .over:
                return .none
            }
        }

        mutating func principalResolved(known: Bool) -> PrincipalAction {
            precondition(state == .awaitingPrincipal && !queued.isEmpty)
            if known {
                state = .serving
                return .startCalls
            }
            state = .closing
            let first = queued.removeFirst()
            queued.removeAll()
            return .refuse(first)
        }

        /// The next frame to start as a call, counted in flight; nil while none may start.
        mutating func nextCall() -> ByteBuffer? {
            guard state == .serving || state == .inputEnded, callsInFlight < inFlightMax, let frame = queued.popFirst() else {
                return nil
            }
            callsInFlight += 1
            return frame
        }

        /// Calls of the connection finished (replied, or their streams ended).
        mutating func callsFinished(_ count: Int) {
            callsInFlight -= count
            precondition(callsInFlight >= 0, "a call of the connection finished twice")
        }

        /// No more frames are read: the server drains (`frameError` nil) or the stream broke.
        /// Returns false when the input had ended already.
        mutating func endInput(frameError: FrameError?) -> Bool {
            if self.frameError == nil { self.frameError = frameError }
            switch state {
            case .awaitingPrincipal, .serving:
                // Frames waiting for the principal cannot be served without one.
                if state == .awaitingPrincipal { queued.removeAll() }
                state = .inputEnded
                return true
            case .inputEnded, .closing, .closed, .over:
                return false
            }
        }

        /// The channel closed (from any state): nothing more starts.
        mutating func channelClosed() {
            guard state != .closed, state != .over else { return }
            state = .closed
            queued.removeAll()
        }

        /// What follows from the current state: a close once the input ended and nothing runs or
        /// waits, the end once the channel closed and nothing runs.
        mutating func settle() -> Settle {
            switch state {
            case .inputEnded where callsInFlight == 0 && queued.isEmpty:
                state = .closing
                return .close(after: frameError)
            case .closed where callsInFlight == 0:
                state = .over
                return .reportOver
            default:
                return .none
            }
        }

        /// Whether the socket may be read now: input open, nothing waiting, below the bound and the
        /// channel writable (a peer that does not read its replies stops being read).
        func mayRead(writable: Bool) -> Bool {
            (state == .serving || state == .awaitingPrincipal) && queued.isEmpty && callsInFlight < inFlightMax && writable
        }

        /// The pipeline asks to read: true to read now; otherwise the read is held.
        mutating func readRequested(writable: Bool) -> Bool {
            if mayRead(writable: writable) { return true }
            readHeld = true
            return false
        }

        /// True when a held read should go ahead now.
        mutating func releaseHeldRead(writable: Bool) -> Bool {
            guard readHeld, mayRead(writable: writable) else { return false }
            readHeld = false
            return true
        }
    }
}
