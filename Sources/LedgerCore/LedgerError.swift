/// The stable error codes of the ledger. Each maps one to one onto the wire's `ErrorCode` enum;
/// docs/semantics.md says when each is returned. The raw values are part of the contract.
public enum ErrorCode: String, Sendable, Codable, CaseIterable {
    /// A field is missing, malformed, zero where a positive amount is needed, or out of range.
    case invalidArgument = "invalid_argument"
    case unauthenticated
    case permissionDenied = "permission_denied"
    /// The tenant, member, hold or grant does not exist (or the caller may not see it).
    case notFound = "not_found"
    /// A tenant or hold with this id exists already.
    case alreadyExists = "already_exists"
    /// The tenant's pool (plus its overdraft limit, for a final commit) cannot cover the amount.
    case insufficientBalance = "insufficient_balance"
    /// The member's budget for the current period cannot cover the amount.
    case budgetExceeded = "budget_exceeded"
    /// The plan's spending limit for the current period cannot cover the amount.
    case planLimitReached = "plan_limit_reached"
    case alreadyCommitted = "already_committed"
    case alreadyReleased = "already_released"
    /// The hold reached its time-to-live before this call.
    case expired
    /// The request id was used before with a different command.
    case idempotencyConflict = "idempotency_conflict"
    /// A declared limit (``Limits``) would be exceeded.
    case limitExceeded = "limit_exceeded"
    case overloaded
    case unavailable
    /// Cluster mode: the tenant's shard is served by another node (`ErrorDetails.owner` says
    /// which); send the call there with the same request id.
    case wrongOwner = "wrong_owner"
    /// A plan quota for the period cannot cover the items' units (`ErrorDetails.quota` says which).
    case quotaExceeded = "quota_exceeded"
}

/// Structured facts that come with some errors, so that a client can show them without parsing
/// the message.
public enum ErrorDetails: Hashable, Sendable, Codable {
    /// `budget_exceeded`: what is left of the member's cap in this period, the cap, and when the
    /// period resets.
    case budget(remaining: Tokens, cap: Tokens, resetsAt: LedgerTime)
    /// `plan_limit_reached`: what is left of the plan's period spending limit, the limit and when it
    /// resets.
    case plan(remaining: Tokens, limit: Tokens, resetsAt: LedgerTime)
    /// `insufficient_balance`: what the pool could cover and what was asked.
    case balance(available: Tokens, requested: Tokens)
    /// `limit_exceeded`: the limit that was hit and its value.
    case limit(name: String, value: UInt64)
    /// `wrong_owner`: the shard, the address of the node that serves it and that node's epoch.
    case owner(shard: UInt32, address: String, epoch: UInt64)
    /// `quota_exceeded`: the feature, the units counted in this period, the plan's limit, when the
    /// period resets, and the units asked.
    case quota(feature: String, used: UInt64, limit: UInt64, resetsAt: LedgerTime, requested: UInt64)
}

/// A typed, expected failure of a command: bad input or a business rule. Never a crash.
public struct LedgerError: Error, Hashable, Sendable, Codable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public var details: ErrorDetails?

    public init(_ code: ErrorCode, _ message: String, details: ErrorDetails? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code.rawValue): \(message)" }

    static func notFound(_ what: String) -> LedgerError { LedgerError(.notFound, "\(what) not found") }

    static func limit(_ name: String, _ value: UInt64, _ message: String) -> LedgerError {
        LedgerError(.limitExceeded, message, details: .limit(name: name, value: value))
    }
}
