import LedgerCore

/// A call's reply as the service hands it to a front door.
///
/// A command that succeeded carries its result as the ledger gave it: the framed port writes the
/// metering results straight from it (``ReplyEncoder``) without building SwiftProtobuf's
/// `Response` first, whose storage and nested hold were 3-4% of ledgerd's CPU at peak (perf).
/// Everything else, and anyone who wants the message (gRPC, traces), has the message.
public enum CallReply: Sendable {
    /// A command that was applied (or replayed) with a successful outcome.
    case command(callID: UInt64, CommandResult)
    case message(WireResponse)

    /// The reply as the wire's message.
    public var response: WireResponse {
        switch self {
        case .command(let callID, let result): WireResponse(callID: callID, result: result)
        case .message(let response): response
        }
    }

    public var callID: UInt64 {
        switch self {
        case .command(let callID, _): callID
        case .message(let response): response.callID
        }
    }
}
