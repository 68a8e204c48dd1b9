import LedgerCore

/// Why a call failed.
public enum LedgerClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The server answered with an error: its code, message and details.
    case rejected(LedgerError)
    /// No reply came within the call timeout.
    case timedOut
    /// The connection could not be made (refused, TLS handshake failed, timeout).
    case connectFailed(String)
    /// The connection closed before the reply came.
    case connectionClosed(String)
    /// The server sent something that is not a valid reply.
    case protocolViolation(String)

    /// The server's error, when it answered with one.
    public var ledgerError: LedgerError? {
        if case .rejected(let error) = self { return error }
        return nil
    }

    /// Whether trying again may succeed: the transport failed, or the server was overloaded or
    /// unavailable. Business errors (insufficient balance, not found, ...) are final.
    public var isRetryable: Bool {
        switch self {
        case .rejected(let error): return error.code == .overloaded || error.code == .unavailable
        case .timedOut, .connectFailed, .connectionClosed: return true
        case .protocolViolation: return false
        }
    }

    public var description: String {
        switch self {
        case .rejected(let error): return "\(error.code.rawValue): \(error.message)"
        case .timedOut: return "timed out waiting for the reply"
        case .connectFailed(let reason): return "could not connect: \(reason)"
        case .connectionClosed(let reason): return "the connection closed: \(reason)"
        case .protocolViolation(let reason): return "protocol violation: \(reason)"
        }
    }
}
