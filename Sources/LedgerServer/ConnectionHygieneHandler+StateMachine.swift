import NIOCore

extension ConnectionHygieneHandler {
    /// Decides when a connection has overstayed: a handshake that does not finish, a frame that
    /// stops arriving half way, a connection that sits idle. Pure: it is told what happened and
    /// when, and asked what to do at a given time, so that tests drive it without a socket.
    ///
    /// It follows frame boundaries in the decrypted byte stream itself (4-byte big-endian length,
    /// then the body) so that it knows when a frame is partially in. Whether calls are in flight it
    /// is told at each check by the connection's handler, which counts them (a watch is one for as
    /// long as it streams: counting frames in against replies out took a watch's first reply for
    /// its end, and closed quiet watches at the idle timeout).
    package struct StateMachine {
        package enum Action: Equatable {
            case none
            case close(Reason)
        }

        package enum Reason: String, Equatable {
            case handshakeTimeout = "handshake timeout"
            case frameReadTimeout = "frame read timeout"
            case idleTimeout = "idle timeout"
        }

        package let limits: ConnectionLimits
        package private(set) var handshakeDone = false
        private let openedAt: NIODeadline
        private var lastActivity: NIODeadline
        /// When the first byte of the frame now arriving came; nil between frames.
        private var partialFrameSince: NIODeadline? = nil
        private var headerBytes: [UInt8] = []
        private var bodyRemaining = 0

        package init(limits: ConnectionLimits, now: NIODeadline) {
            self.limits = limits
            openedAt = now
            lastActivity = now
        }

        package mutating func handshakeCompleted(now: NIODeadline) {
            handshakeDone = true
            lastActivity = now
        }

        /// Bytes of the decrypted stream arrived.
        package mutating func received(_ buffer: ByteBuffer, now: NIODeadline) {
            lastActivity = now
            var view = buffer.readableBytesView[...]
            while !view.isEmpty {
                if partialFrameSince == nil { partialFrameSince = now }
                if bodyRemaining > 0 {
                    let taken = min(bodyRemaining, view.count)
                    bodyRemaining -= taken
                    view = view.dropFirst(taken)
                    if bodyRemaining == 0 { partialFrameSince = nil }
                    continue
                }
                headerBytes.append(view.first!)
                view = view.dropFirst()
                if headerBytes.count == 4 {
                    let length = headerBytes.reduce(0) { $0 << 8 | Int($1) }
                    headerBytes.removeAll(keepingCapacity: true)
                    bodyRemaining = length
                    if length == 0 { partialFrameSince = nil }
                }
            }
        }

        /// Replies were written.
        package mutating func wrote(now: NIODeadline) {
            lastActivity = now
        }

        /// `callsInFlight`: the connection's calls started and not yet over (watches included).
        package func check(now: NIODeadline, callsInFlight: Int) -> Action {
            if !handshakeDone {
                return now - openedAt >= .init(limits.handshakeTimeout) ? .close(.handshakeTimeout) : .none
            }
            if let since = partialFrameSince, now - since >= .init(limits.frameReadTimeout) {
                return .close(.frameReadTimeout)
            }
            if partialFrameSince == nil, callsInFlight == 0, now - lastActivity >= .init(limits.idleTimeout) {
                return .close(.idleTimeout)
            }
            return .none
        }
    }
}
