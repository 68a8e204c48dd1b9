import ArgumentParser
import Foundation
import LedgerClient
import LedgerCore

/// The exit codes of tokenctl, one per class of failure (README.md lists them).
enum ExitClass: Int32, CaseIterable {
    /// Bad flags or files (also ArgumentParser's own usage errors).
    case usage = 64
    /// The server refused the request as malformed or beyond a limit: invalid_argument, limit_exceeded.
    case invalid = 65
    /// not_found.
    case notFound = 66
    /// The request conflicts with the ledger's state: already_exists, already_committed,
    /// already_released, expired, idempotency_conflict.
    case conflict = 67
    /// Not enough to spend: insufficient_balance, budget_exceeded, plan_limit_reached,
    /// quota_exceeded.
    case funds = 68
    /// The server could not be reached or could not serve: connect failures, timeouts, a closed
    /// connection, overloaded, unavailable, wrong_owner (a cluster node that does not serve the
    /// tenant). Safe to retry with the same --request-id.
    case unavailable = 69
    /// A reply that is not valid protocol.
    case protocolError = 76
    /// unauthenticated, permission_denied.
    case denied = 77

    init(_ code: ErrorCode) {
        switch code {
        case .invalidArgument, .limitExceeded: self = .invalid
        case .notFound: self = .notFound
        case .alreadyExists, .alreadyCommitted, .alreadyReleased, .expired, .idempotencyConflict: self = .conflict
        case .insufficientBalance, .budgetExceeded, .planLimitReached, .quotaExceeded: self = .funds
        case .overloaded, .unavailable, .wrongOwner: self = .unavailable
        case .unauthenticated, .permissionDenied: self = .denied
        }
    }
}

/// A failure to report on stderr as `tokenctl: error: <code>: <message>` before exiting.
struct CommandFailure: Error {
    var exitClass: ExitClass
    var code: String
    var message: String

    init(_ exitClass: ExitClass, _ message: String, code: String = "usage") {
        self.exitClass = exitClass
        self.code = code
        self.message = message
    }

    init(_ error: LedgerClientError) {
        switch error {
        case .rejected(let ledgerError):
            self.init(ExitClass(ledgerError.code), ledgerError.message + Self.detail(ledgerError.details), code: ledgerError.code.rawValue)
        case .timedOut: self.init(.unavailable, "no reply within the timeout", code: "timeout")
        case .connectFailed(let reason): self.init(.unavailable, reason, code: "connect_failed")
        case .connectionClosed(let reason): self.init(.unavailable, reason, code: "connection_closed")
        case .protocolViolation(let reason): self.init(.protocolError, reason, code: "protocol_error")
        }
    }

    static func detail(_ details: ErrorDetails?) -> String {
        switch details {
        case .budget(let remaining, let cap, let resetsAt)?:
            return " (budget \(Format.tokens(remaining)) of \(Format.tokens(cap)) left, resets \(resetsAt.iso8601))"
        case .plan(let remaining, let limit, let resetsAt)?:
            return " (plan limit \(Format.tokens(remaining)) of \(Format.tokens(limit)) left, resets \(resetsAt.iso8601))"
        case .balance(let available, let requested)?:
            return " (available \(Format.tokens(available)), requested \(Format.tokens(requested)))"
        case .limit(let name, let value)?:
            return " (\(name) = \(Format.tokens(value)))"
        case .owner(let shard, let address, let epoch)?:
            return " (shard \(shard) is served by \(address) at epoch \(epoch))"
        case .quota(let feature, let used, let limit, let resetsAt, let requested)?:
            return " (quota \(feature): \(used) of \(limit) used, \(requested) asked, resets \(resetsAt.iso8601))"
        case nil:
            return ""
        }
    }

    /// Prints the diagnostic and exits with the class's code.
    func report() -> Never {
        let line = "tokenctl: error: \(code): \(message)\n"
        FileHandle.standardError.write(Data(line.utf8))
        exit(exitClass.rawValue)
    }
}
