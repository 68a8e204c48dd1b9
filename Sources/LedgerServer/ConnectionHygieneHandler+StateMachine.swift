import NIOCore

extension ConnectionHygieneHandler {
    /// Decides when a connection has overstayed: a handshake that does not finish, a frame that
    /// stops arriving half way, a connection that sits idle. Pure: it is told what happened and
    /// when, and asked what to do at a given time, so that tests drive it without a socket.
    ///
    /// It parses no frame header: a frame is partly in when more bytes came in than the whole
    /// frames the connection's handler has read (`ConnectionProgress.framedBytes`), and calls are
    /// in flight when that handler says so (a watch is one for as long as it streams; counting
    /// frames in against replies out took a watch's first reply for its end).
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
        /// Bytes of the decrypted stream passed on so far, and of whole frames read at the last.
        private var bytesIn = 0
        private var framedBefore = 0

        package init(limits: ConnectionLimits, now: NIODeadline) {
            self.limits = limits
            openedAt = now
            lastActivity = now
        }

        package mutating func handshakeCompleted(now: NIODeadline) {
            handshakeDone = true
            lastActivity = now
        }

        /// `byteCount` bytes of the decrypted stream were passed on, after which the connection
        /// had read `framedBytes` bytes of whole frames in all.
        package mutating func received(_ byteCount: Int, framedBytes: Int, now: NIODeadline) {
            lastActivity = now
            bytesIn += byteCount
            if bytesIn > framedBytes {
                // A frame began in these bytes if none was partly in before, or if the one that
                // was has been completed by them.
                if partialFrameSince == nil || framedBytes > framedBefore { partialFrameSince = now }
            } else {
                partialFrameSince = nil
            }
            framedBefore = framedBytes
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
