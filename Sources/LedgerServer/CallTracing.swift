import LedgerCore
import LedgerEngine
import LedgerStore
import LedgerWire
import Tracing

/// Traces of the calls (ledgerd `--otel-endpoint`, docs/operations.md "Traces"): a server span per
/// call, with a child span for its apply under the shard's lock and one for the WAL batch (group
/// commit) that made it durable. `LedgerService.tracing` is nil when tracing is off: calls then
/// allocate and record nothing for it.
public struct CallTracing: Sendable {
    let tracer: any Tracer
    /// Tenant ids go into spans only when asked (`--trace-tenant-ids`): traces often
    /// leave the ledger's trust boundary.
    let tenantIDs: Bool

    public init(tracer: any Tracer, tenantIDs: Bool = false) {
        self.tracer = tracer
        self.tenantIDs = tenantIDs
    }

    /// Starts the span of one call, as a child of `traceParent` (W3C `traceparent`) when it parses.
    func begin(_ call: LedgerCall, rpc: String, traceParent: String) -> TracedCall {
        var context = ServiceContext.topLevel
        if !traceParent.isEmpty {
            tracer.extract(["traceparent": traceParent], into: &context, using: TraceParentExtractor())
        }
        let startedAt = wallNanoseconds()
        let span = tracer.startSpan(
            "tokenledger/\(rpc)", context: context, ofKind: .server, at: WallInstant(startedAt), function: "serve",
            file: #fileID, line: #line)
        span.attributes["rpc.system"] = "tokenledger"
        span.attributes["rpc.method"] = rpc
        if tenantIDs, let tenant = call.tenant { span.attributes["tokenledger.tenant"] = tenant.rawValue }
        return TracedCall(tracer: tracer, span: span, startedAt: startedAt)
    }
}

/// One call's span and what its shard reports for its child spans.
final class TracedCall: Sendable {
    let tracer: any Tracer
    let span: any Span
    let startedAt: UInt64
    /// Filled in by the shard for commands and reads.
    let shard = ShardTrace()

    init(tracer: any Tracer, span: any Span, startedAt: UInt64) {
        self.tracer = tracer
        self.span = span
        self.startedAt = startedAt
    }

    /// Records the reply and the shard's report, then ends the span (and its children).
    func end(_ response: WireResponse?, code: String) {
        let endedAt = wallNanoseconds()
        span.attributes["tokenledger.result_code"] = code
        if let response {
            if response.lsn != 0 { span.attributes["tokenledger.lsn"] = Int64(bitPattern: response.lsn) }
            if response.replayed { span.attributes["tokenledger.replayed"] = true }
            // The ledger's own refusals (budget, balance, arguments) are the caller's business;
            // only the server's failures mark the span as an error.
            if case .error(let error)? = response.result, code == "unavailable" || code == "overloaded" {
                span.setStatus(SpanStatus(code: .error, message: error.message))
            }
        }
        if shard.appliedAt != 0 {
            span.attributes["tokenledger.shard"] = shard.shard
            let context = span.context
            let apply = tracer.startSpan(
                "apply", context: context, ofKind: .internal, at: WallInstant(startedAt), function: "serve", file: #fileID,
                line: #line)
            apply.attributes["tokenledger.shard"] = shard.shard
            apply.end(at: WallInstant(shard.appliedAt))
            if let batch = shard.batch {
                let wal = tracer.startSpan(
                    "wal.batch", context: context, ofKind: .internal, at: WallInstant(batch.startedAt), function: "serve",
                    file: #fileID, line: #line)
                wal.attributes["tokenledger.wal.first_lsn"] = Int64(bitPattern: batch.firstLSN)
                wal.attributes["tokenledger.wal.last_lsn"] = Int64(bitPattern: batch.lastLSN)
                wal.attributes["tokenledger.wal.records"] = batch.records
                wal.attributes["tokenledger.wal.bytes"] = batch.bytes
                wal.attributes["tokenledger.wal.synced_by"] = batch.byWriterThread ? "log_writer" : "event_loop"
                wal.end(at: WallInstant(batch.syncedAt))
            }
        }
        span.end(at: WallInstant(max(endedAt, startedAt)))
    }
}

/// A wall-clock instant for spans whose times were taken elsewhere (the shard, the log).
struct WallInstant: TracerInstant {
    let nanosecondsSinceEpoch: UInt64
    init(_ nanoseconds: UInt64) { nanosecondsSinceEpoch = nanoseconds }
    static func < (lhs: Self, rhs: Self) -> Bool { lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch }
}

/// Reads the `traceparent` out of a one-entry dictionary.
struct TraceParentExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}
