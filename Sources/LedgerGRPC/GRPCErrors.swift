import GRPCCore
import GRPCProtobuf
import LedgerCore
import LedgerWire
import SwiftProtobuf

/// Ledger errors as gRPC statuses (docs/grpc.md, "Errors"): the status code from the table below,
/// the ledger's message, and in `grpc-status-details-bin` a google.rpc.Status whose details are a
/// google.rpc.ErrorInfo (reason: the ledger's code in capitals, domain "tokenledger.v1", metadata:
/// the error's details as text) and the ledger's own `tokenledger.v1.Error`.
public enum GRPCErrors {
    public static let domain = "tokenledger.v1"

    /// The status code of each ledger error code.
    public static func statusCode(_ code: ErrorCode) -> RPCError.Code {
        switch code {
        case .invalidArgument: .invalidArgument
        case .unauthenticated: .unauthenticated
        case .permissionDenied: .permissionDenied
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .insufficientBalance, .alreadyCommitted, .alreadyReleased, .expired, .idempotencyConflict: .failedPrecondition
        case .budgetExceeded, .planLimitReached, .limitExceeded, .quotaExceeded: .resourceExhausted
        // Both are worth retrying with backoff, which is what gRPC clients do with UNAVAILABLE.
        case .overloaded, .unavailable: .unavailable
        // Cluster mode: not to be retried here but at the owner the metadata names.
        case .wrongOwner: .failedPrecondition
        }
    }

    static func status(_ error: LedgerError) -> GoogleRPCStatus {
        status(WireResponse(callID: 0, error: error).error)
    }

    static func status(_ error: WireError) -> GoogleRPCStatus {
        let ledger = LedgerError(error)
        var metadata: [String: String] = [:]
        switch error.details {
        case .budget(let budget)?:
            metadata = ["remaining": "\(budget.remaining)", "cap": "\(budget.cap)", "resets_at_ms": "\(budget.resetsAtMs)"]
        case .plan(let plan)?:
            metadata = ["remaining": "\(plan.remaining)", "limit": "\(plan.limit)", "resets_at_ms": "\(plan.resetsAtMs)"]
        case .balance(let balance)?:
            metadata = ["available": "\(balance.available)", "requested": "\(balance.requested)"]
        case .limit(let limit)?:
            metadata = ["limit_name": limit.name, "limit_value": "\(limit.value)"]
        case .owner(let owner)?:
            metadata = ["shard": "\(owner.shard)", "owner_address": owner.address, "epoch": "\(owner.epoch)"]
        case .quota(let quota)?:
            metadata = [
                "feature": quota.feature, "used": "\(quota.used)", "limit": "\(quota.limit)", "resets_at_ms": "\(quota.resetsAtMs)",
                "requested": "\(quota.requested)",
            ]
        case nil:
            break
        }
        var details: [GRPCProtobuf.ErrorDetails] = [.errorInfo(reason: ledger.code.rawValue.uppercased(), domain: domain, metadata: metadata)]
        if let packed = try? Google_Protobuf_Any(message: error) { details.append(.any(packed)) }
        return GoogleRPCStatus(code: statusCode(ledger.code), message: ledger.message, details: details)
    }
}
