import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerClient
import LedgerGRPC
import LedgerCore
import LedgerTesting
import Synchronization
import Testing

/// Traces (ledgerd --otel-endpoint): the real ledgerd exports its spans over OTLP/gRPC to a small
/// collector run here on grpc-swift-2, which decodes the protobuf itself (no OTel library on this
/// side, so the test does not read back what the exporter's own types wrote).
@Suite("traces over OTLP")
struct TracingTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let parentSpanID = "00f067aa0ba902b7"
    static let grpcTraceID = "0af7651916cd43dd8448eb211c80319c"

    @Test("a call's span is the child of the client's traceparent (framed field or gRPC header), with apply and WAL batch children; tenant ids only when asked")
    func spansReachTheCollector() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            let collector = OTLPCollector()
            let server = GRPCServer(
                transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
                services: [collector])
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            let port = try #require(try await server.listeningAddress?.ipv4?.port)

            let directory = TemporaryDirectory("tracing")
            for (index, tenantIDs) in [false, true].enumerated() {
                let dataPath = directory.path + "/data\(index)"
                var arguments = ["--shards", "2", "--otel-endpoint", "http://127.0.0.1:\(port)", "--metrics-listen", "off"]
                if tenantIDs { arguments.append("--trace-tenant-ids") }
                let ledgerd = try StartedLedgerd(
                    dataPath: dataPath, arguments: arguments, logPath: dataPath + ".log",
                    environment: ["OTEL_BSP_SCHEDULE_DELAY": "100"])
                let client = try await LedgerClient.connect(.development(dataDirectory: dataPath, port: ledgerd.port))
                let tenant = TenantID("acme\(index)")
                _ = try await client.createTenant(tenant)
                _ = try await client.purchase(tenant: tenant, moneyMinor: 5_000)
                let hold = try await LedgerClient.$traceParent.withValue("00-\(Self.traceID)-\(Self.parentSpanID)-01") {
                    try await client.call(.command(.reserve(tenant, ReserveRequest(hold: "h", amount: .tokens(100))), RequestID("r-1")))
                }
                #expect(hold.lsn > 0)
                _ = try await client.balance(tenant: tenant)
                await client.close()
                // The gRPC port takes the parent from the `traceparent` header.
                let grpcPort = try #require(ledgerd.grpcPort)
                let tls = dataPath + "/tls/"
                let transport = try HTTP2ClientTransport.Posix(
                    target: .ipv4(address: "127.0.0.1", port: grpcPort),
                    transportSecurity: .mTLS(
                        certificateChain: [.file(path: tls + "admin.pem", format: .pem)],
                        privateKey: .file(path: tls + "admin-key.pem", format: .pem)
                    ) { $0.trustRoots = .certificates([.file(path: tls + "ca.pem", format: .pem)]) })
                try await withGRPCClient(transport: transport) { grpc in
                    let metadata: Metadata = ["traceparent": "00-\(Self.grpcTraceID)-\(Self.parentSpanID)-01"]
                    _ = try await Tokenledger_V1_Ledger.Client(wrapping: grpc).balance(.with { $0.tenant = tenant.rawValue }, metadata: metadata)
                }

                // The batch processor exports every 100 ms; SIGTERM flushes what is left.
                let spans = try await collector.waitFor(seconds: 20) { spans in
                    spans.contains { $0.name == "wal.batch" && $0.traceID == Self.traceID && $0.attributes["tokenledger.wal.last_lsn"] == "\(hold.lsn)" }
                        && spans.contains { $0.traceID == Self.grpcTraceID }
                }
                ledgerd.process.kill(SIGTERM)
                #expect(ledgerd.process.wait() == 0)

                let reserve = try #require(
                    spans.first { $0.name == "tokenledger/reserve" && $0.traceID == Self.traceID && $0.attributes["tokenledger.lsn"] == "\(hold.lsn)" })
                #expect(reserve.parentSpanID == Self.parentSpanID)
                #expect(reserve.kind == 2)  // SPAN_KIND_SERVER
                #expect(reserve.attributes["rpc.method"] == "reserve")
                #expect(reserve.attributes["tokenledger.result_code"] == "ok")
                #expect(reserve.attributes["tokenledger.shard"] != nil)
                #expect(reserve.attributes["tokenledger.tenant"] == (tenantIDs ? tenant.rawValue : nil))
                #expect(reserve.end >= reserve.start)

                let children = spans.filter { $0.parentSpanID == reserve.spanID }
                let apply = try #require(children.first { $0.name == "apply" })
                let batch = try #require(children.first { $0.name == "wal.batch" })
                #expect(apply.traceID == Self.traceID && batch.traceID == Self.traceID)
                #expect(apply.start >= reserve.start && apply.end <= reserve.end)
                #expect(batch.end <= reserve.end && batch.end >= apply.end)
                let first = try #require(batch.attributes["tokenledger.wal.first_lsn"].flatMap { UInt64($0) })
                let last = try #require(batch.attributes["tokenledger.wal.last_lsn"].flatMap { UInt64($0) })
                #expect(first <= hold.lsn && hold.lsn <= last)
                #expect(batch.attributes["tokenledger.wal.records"] == "\(last - first + 1)")

                let grpcBalance = try #require(spans.first { $0.name == "tokenledger/balance" && $0.traceID == Self.grpcTraceID })
                #expect(grpcBalance.parentSpanID == Self.parentSpanID)

                // A call without a traceparent starts a trace of its own, and no span names the tenant
                // unless asked.
                let balance = try #require(spans.first { $0.name == "tokenledger/balance" && $0.traceID != Self.traceID })
                #expect(balance.parentSpanID.isEmpty)
                if !tenantIDs { #expect(spans.allSatisfy { $0.attributes["tokenledger.tenant"] == nil }) }
                collector.reset()
            }
        }
    }
}

/// A span as the collector decoded it; ids in hex, attribute values as text.
struct ReceivedSpan: Sendable {
    var traceID = ""
    var spanID = ""
    var parentSpanID = ""
    var name = ""
    var kind: UInt64 = 0
    var start: UInt64 = 0
    var end: UInt64 = 0
    var attributes: [String: String] = [:]
}

/// opentelemetry.proto.collector.trace.v1.TraceService/Export, decoding each request's spans.
final class OTLPCollector: RegistrableRPCService, Sendable {
    private let received = Mutex<[ReceivedSpan]>([])

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService", method: "Export"),
            deserializer: RawBytes(), serializer: RawBytes()
        ) { [self] request, _ in
            for try await message in request.messages {
                let spans = try Self.spans(in: message)
                received.withLock { $0 += spans }
            }
            // An empty ExportTraceServiceResponse: everything accepted.
            return StreamingServerResponse(single: ServerResponse(message: []))
        }
    }

    func reset() { received.withLock { $0.removeAll() } }

    /// Polls until `done` holds for the spans received (or the time is up), then returns them.
    func waitFor(seconds: Int, _ done: ([ReceivedSpan]) -> Bool) async throws -> [ReceivedSpan] {
        for _ in 0..<(seconds * 20) {
            let spans = received.withLock { $0 }
            if done(spans) { return spans }
            try await Task.sleep(for: .milliseconds(50))
        }
        return received.withLock { $0 }
    }

    /// ExportTraceServiceRequest{1: ResourceSpans{2: ScopeSpans{2: Span}}}.
    static func spans(in request: [UInt8]) throws -> [ReceivedSpan] {
        var spans: [ReceivedSpan] = []
        for resourceSpans in try Protobuf.fields(request) where resourceSpans.number == 1 {
            for scopeSpans in try Protobuf.fields(resourceSpans.bytes) where scopeSpans.number == 2 {
                for span in try Protobuf.fields(scopeSpans.bytes) where span.number == 2 {
                    spans.append(try Self.span(span.bytes))
                }
            }
        }
        return spans
    }

    static func span(_ bytes: [UInt8]) throws -> ReceivedSpan {
        var span = ReceivedSpan()
        for field in try Protobuf.fields(bytes) {
            switch field.number {
            case 1: span.traceID = hex(field.bytes)
            case 2: span.spanID = hex(field.bytes)
            case 4: span.parentSpanID = hex(field.bytes)
            case 5: span.name = String(decoding: field.bytes, as: UTF8.self)
            case 6: span.kind = field.varint
            case 7: span.start = field.fixed
            case 8: span.end = field.fixed
            case 9:
                // KeyValue{1: key, 2: AnyValue{1: string, 2: bool, 3: int, 4: double}}
                var key = ""
                var value = ""
                for part in try Protobuf.fields(field.bytes) {
                    if part.number == 1 { key = String(decoding: part.bytes, as: UTF8.self) }
                    if part.number == 2 {
                        for any in try Protobuf.fields(part.bytes) {
                            switch any.number {
                            case 1: value = String(decoding: any.bytes, as: UTF8.self)
                            case 2: value = any.varint != 0 ? "true" : "false"
                            case 3: value = "\(Int64(bitPattern: any.varint))"
                            case 4: value = "\(Double(bitPattern: any.fixed))"
                            default: value = "?"
                            }
                        }
                    }
                }
                span.attributes[key] = value
            default: break
            }
        }
        return span
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}

/// The protobuf wire format, enough to walk a message's fields.
enum Protobuf {
    struct Field {
        var number: Int
        var varint: UInt64 = 0
        var fixed: UInt64 = 0
        var bytes: [UInt8] = []
    }

    struct Malformed: Error {}

    static func fields(_ message: [UInt8]) throws -> [Field] {
        var fields: [Field] = []
        var index = 0
        func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard index < message.count, shift < 64 else { throw Malformed() }
                let byte = message[index]
                index += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
        }
        func fixed(_ size: Int) throws -> UInt64 {
            guard index + size <= message.count else { throw Malformed() }
            var value: UInt64 = 0
            for offset in 0..<size { value |= UInt64(message[index + offset]) << (8 * UInt64(offset)) }
            index += size
            return value
        }
        while index < message.count {
            let key = try varint()
            var field = Field(number: Int(key >> 3))
            switch key & 7 {
            case 0: field.varint = try varint()
            case 1: field.fixed = try fixed(8)
            case 2:
                let length = Int(try varint())
                guard length >= 0, index + length <= message.count else { throw Malformed() }
                field.bytes = Array(message[index..<(index + length)])
                index += length
            case 5: field.fixed = try fixed(4)
            default: throw Malformed()
            }
            fields.append(field)
        }
        return fields
    }
}

/// Messages as they come: the collector decodes them itself.
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}
