// The webhook sink: every tenant's events, POSTed to one HTTP(S) endpoint, at least once.
//
// Invariants:
// - The source of truth is each tenant's event log in the ledger state (durable, retained up to
//   Limits.eventsRetainedPerTenant per tenant); the sink only keeps a cursor per tenant: the last
//   event id the endpoint acknowledged with a 2xx.
// - The cursor file is replaced atomically (temporary file, fsync, rename, directory fsync), at most
//   once a second and at shutdown, and only ever moves forward past acknowledged events. After a
//   crash the sink starts from the last written cursor, so some acknowledged events may be sent
//   again (at least once) but none is skipped while the ledger still retains it.
// - A delivery that fails (connection error, timeout, any status but 2xx) is retried with the same
//   body and delivery id, with exponential backoff, until it succeeds or the server stops. Batches
//   of one tenant go out in id order; one failing endpoint holds back every tenant (it is one
//   endpoint).
// - Events lost to retention while the endpoint was down are counted and logged, never invented.

import Crypto
import Foundation
import LedgerCore
import LedgerEngine
import LedgerStore
import LedgerWire
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle

/// Where and how the sink delivers (ledgerd's `--webhook-*` options).
public struct WebhookConfiguration: Sendable {
    public var url: WebhookURL
    /// The HMAC-SHA256 key of the signature header.
    public var secret: [UInt8]
    /// The sink's cursor (which events each tenant's endpoint acknowledged).
    public var cursorPath: String
    /// For https: the CA certificates (PEM) the endpoint's certificate must chain to; nil: the
    /// system's trust store.
    public var caPath: String?
    /// One attempt's limit (connect, send, response head).
    public var timeout: Duration = .seconds(10)
    public var backoffMin: Duration = .milliseconds(500)
    public var backoffMax: Duration = .seconds(60)
    /// Events in one POST (at most Limits.eventPageMax).
    public var batchMax: Int = 100

    public init(url: WebhookURL, secret: [UInt8], cursorPath: String, caPath: String? = nil) {
        self.url = url
        self.secret = secret
        self.cursorPath = cursorPath
        self.caPath = caPath
    }
}

/// `http://HOST[:PORT]/PATH` or `https://...`; IPv6 hosts in brackets.
public struct WebhookURL: Sendable, Hashable, CustomStringConvertible {
    public var secure: Bool
    public var host: String
    public var port: Int
    public var path: String

    public init(parsing text: String) throws(HostPortError) {
        let rest: Substring
        if text.hasPrefix("http://") {
            secure = false
            rest = text.dropFirst(7)
        } else if text.hasPrefix("https://") {
            secure = true
            rest = text.dropFirst(8)
        } else {
            throw HostPortError("a webhook URL starts with http:// or https://, not \(text)")
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        path = slash == rest.endIndex ? "/" : String(rest[slash...])
        guard !authority.isEmpty, !authority.contains("@") else { throw HostPortError("\(text) names no host (or has user info)") }
        let hasPort = authority.hasPrefix("[") ? authority.contains("]:") : authority.contains(":")
        let address = try HostPort(parsing: hasPort ? authority : "\(authority):\(secure ? 443 : 80)", emptyHost: "", ports: 1...65_535)
        guard !address.host.isEmpty else { throw HostPortError("\(text) names no host") }
        host = address.host
        port = address.port
        guard !path.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else {
            throw HostPortError("the path of \(text) has spaces or line breaks")
        }
    }

    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(secure ? "https" : "http")://\(shownHost):\(port)\(path)"
    }
}

public final class WebhookSink: Service, Sendable {
    let configuration: WebhookConfiguration
    let engine: LedgerEngine
    let logger: Logger
    private let tls: NIOSSLContext?
    private let delivered: Counter
    private let attempts: Counter
    private let failures: Counter
    private let lost: Counter
    private let lagging: Gauge
    /// The cursor file's content when the sink was made; nil when there was none (first start).
    private let savedCursor: [TenantID: UInt64]?

    /// Reads the cursor file now, so that a damaged one stops the start (with the file named)
    /// instead of the sink guessing where delivery stood.
    public init(configuration: WebhookConfiguration, engine: LedgerEngine, logger: Logger, registry: PrometheusCollectorRegistry)
        throws
    {
        self.configuration = configuration
        self.engine = engine
        self.logger = logger
        savedCursor = try Self.loadCursor(configuration.cursorPath)
        if configuration.url.secure {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let caPath = configuration.caPath { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caPath)) }
            self.tls = try NIOSSLContext(configuration: tls)
        } else {
            tls = nil
        }
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "tokenledger", metricName: metric, unitName: unit, helpText: help)
        }
        delivered = registry.makeCounter(descriptor: name("webhook_events_delivered", "total", "Events the webhook endpoint acknowledged."))
        attempts = registry.makeCounter(descriptor: name("webhook_attempts", "total", "POSTs to the webhook endpoint."))
        failures = registry.makeCounter(descriptor: name("webhook_failures", "total", "POSTs that failed and will be retried."))
        lost = registry.makeCounter(
            descriptor: name("webhook_events_lost", "total", "Events dropped by retention before the endpoint acknowledged them."))
        lagging = registry.makeGauge(descriptor: name("webhook_tenants_pending", "", "Tenants with events not yet delivered."))
    }

    public func run() async throws {
        // Subscribe before scanning, so an event between the two is seen by one or the other.
        let subscription = engine.eventHub.subscribeEveryTenant()
        defer { subscription.cancel() }
        var pending = PendingTenants()
        var cursor = savedCursor ?? [:]
        if savedCursor == nil {
            // First start: deliver from now on.
            cursor = try await latestEventIDs()
            try saveCursor(cursor)
            logger.notice("webhook sink starts from the current events", metadata: ["tenants": "\(cursor.count)"])
        } else {
            for (tenant, latest) in try await latestEventIDs() where latest > cursor[tenant, default: 0] { pending.add(tenant) }
        }
        logger.notice("webhook sink running", metadata: ["webhook.url": "\(configuration.url)", "tenants.pending": "\(pending.count)"])
        let start = pending
        let cursorAtStart = cursor
        await cancelWhenGracefulShutdown {
            await self.deliverLoop(cursor: cursorAtStart, pending: start, subscription: subscription)
        }
        // Stay until shutdown reaches this service (see Banner in ledgerd).
        try? await gracefulShutdown()
    }

    /// Delivers until the hub ends the subscription (the server drains) or the task is cancelled
    /// (shutdown); the cursor is saved on the way out.
    private func deliverLoop(cursor: [TenantID: UInt64], pending: PendingTenants, subscription: EventHub.EveryTenant) async {
        var cursor = cursor
        var pending = pending
        var dirty = false
        var lastSave = ContinuousClock.now
        var signals = subscription.signals.makeAsyncIterator()
        do {
            while true {
                while let tenant = pending.next() {
                    lagging.set(to: Double(pending.count + 1))
                    let page = try await engine.events(tenant, after: cursor[tenant, default: 0], limit: configuration.batchMax)
                    if page.lost > 0 {
                        lost.increment(by: Int64(page.lost))
                        logger.error(
                            "webhook events lost: retention dropped them before the endpoint acknowledged them",
                            metadata: ["tenant": "\(tenant)", "events.lost": "\(page.lost)", "next.event": "\(page.oldestRetainedID)"])
                    }
                    guard let last = page.events.last else { continue }
                    try await deliver(tenant, page.events)
                    cursor[tenant] = last.id
                    dirty = true
                    if page.events.count == configuration.batchMax { pending.add(tenant) }
                    if ContinuousClock.now - lastSave >= .seconds(1) {
                        try saveCursor(cursor)
                        (dirty, lastSave) = (false, .now)
                    }
                }
                lagging.set(to: 0)
                if dirty {
                    try saveCursor(cursor)
                    (dirty, lastSave) = (false, .now)
                }
                guard await signals.next() != nil else { break }
                for tenant in subscription.takeChanged().sorted() { pending.add(tenant) }
            }
        } catch is CancellationError {
        } catch {
            logger.error("webhook sink stopped", metadata: ["error": "\(error)"])
        }
        if dirty {
            do {
                try saveCursor(cursor)
            } catch {
                logger.error("webhook cursor not saved; acknowledged events will be sent again", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Tenants to visit, each once, in the order they changed.
    private struct PendingTenants {
        private var queue: [TenantID] = []
        private var head = 0
        private var queued: Set<TenantID> = []

        var count: Int { queued.count }

        mutating func add(_ tenant: TenantID) {
            if queued.insert(tenant).inserted { queue.append(tenant) }
        }

        mutating func next() -> TenantID? {
            guard head < queue.count else { return nil }
            let tenant = queue[head]
            head += 1
            queued.remove(tenant)
            if head == queue.count { (queue, head) = ([], 0) }
            return tenant
        }
    }

    private func latestEventIDs() async throws -> [TenantID: UInt64] {
        var latest: [TenantID: UInt64] = [:]
        for shard in engine.shards {
            let ids = try await shard.read { state in state.eventLogs.mapValues(\.lastID) }
            latest.merge(ids) { first, _ in first }
        }
        return latest
    }

    // MARK: - Delivery

    /// POSTs one batch until the endpoint answers 2xx (or the task is cancelled).
    private func deliver(_ tenant: TenantID, _ events: [LedgerEvent]) async throws {
        let deliveryID = "\(tenant.rawValue):\(events.first!.id)-\(events.last!.id)"
        let body = Array(
            OrderedJSON.object([
                ("tenant", .string(tenant.rawValue)), ("delivery", .string(deliveryID)),
                ("events", .array(events.map { Tokenledger_V1_LedgerEvent($0).jsonValue })),
            ]).text.utf8)
        var backoff = configuration.backoffMin
        var attempt = 1
        while true {
            try Task.checkCancellation()
            attempts.increment()
            let timestamp = Int64(Date().timeIntervalSince1970)
            let signature = Self.signature(secret: configuration.secret, timestamp: timestamp, body: body)
            do {
                let status = try await post(body, headers: [
                    ("X-TokenLedger-Delivery", deliveryID), ("X-TokenLedger-Attempt", String(attempt)),
                    ("X-TokenLedger-Timestamp", String(timestamp)), ("X-TokenLedger-Signature", "v1=\(signature)"),
                ])
                if (200..<300).contains(status) {
                    delivered.increment(by: Int64(events.count))
                    return
                }
                logger.warning(
                    "webhook delivery refused; retrying",
                    metadata: ["delivery": "\(deliveryID)", "http.status": "\(status)", "attempt": "\(attempt)", "retry.in": "\(backoff)"])
            } catch {
                logger.warning(
                    "webhook delivery failed; retrying",
                    metadata: ["delivery": "\(deliveryID)", "error": "\(error)", "attempt": "\(attempt)", "retry.in": "\(backoff)"])
            }
            failures.increment()
            // Jitter (half to all of the backoff) keeps many ledgers from retrying in step.
            let milliseconds = max(2, Int64(backoff / .milliseconds(1)))
            let jittered = Duration.milliseconds(Int64.random(in: (milliseconds / 2)...milliseconds))
            try await Task.sleep(for: jittered)
            backoff = min(backoff * 2, configuration.backoffMax)
            attempt += 1
        }
    }

    /// Hex HMAC-SHA256 of "TIMESTAMP." followed by the body: what receivers recompute
    /// (docs/operations.md, "Webhook").
    public static func signature(secret: [UInt8], timestamp: Int64, body: [UInt8]) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Array("\(timestamp).".utf8) + body, using: SymmetricKey(data: secret))
        return code.map { String(format: "%02x", $0) }.joined()
    }

    struct WebhookError: Error, CustomStringConvertible {
        var description: String
    }

    /// One POST on a fresh connection; returns the response status.
    private func post(_ body: [UInt8], headers extra: [(String, String)]) async throws -> UInt {
        let url = configuration.url
        let tls = self.tls
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(TimeAmount(configuration.timeout))
            .connect(host: url.host, port: url.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        let serverName = HostPort.isIPAddress(url.host) ? nil : url.host
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        // The deadline closes the connection, which ends the exchange below with an error.
        let deadline = channel.channel.eventLoop.scheduleTask(in: TimeAmount(configuration.timeout)) {
            channel.channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: url.path)
            head.headers.add(name: "Host", value: url.host.contains(":") ? "[\(url.host)]:\(url.port)" : "\(url.host):\(url.port)")
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: String(body.count))
            head.headers.add(name: "User-Agent", value: "tokenledger-webhook/1")
            head.headers.add(name: "Connection", value: "close")
            for (name, value) in extra { head.headers.add(name: name, value: value) }
            try await outbound.write(.head(head))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
            try await outbound.write(.end(nil))
            for try await part in inbound {
                if case .head(let response) = part { return response.status.code }
            }
            throw WebhookError(description: "the endpoint closed the connection without a response")
        }
    }

    // MARK: - Cursor

    /// `{"format":1,"tenants":{"acme":12,...}}`: per tenant, the last acknowledged event id; nil
    /// when there is no file.
    private static func loadCursor(_ path: String) throws -> [TenantID: UInt64]? {
        guard FileSystem.exists(path) else { return nil }
        let bytes = try FileSystem.readFile(path)
        guard case .object(let top) = try JSONValue.parse(bytes), case .integer(1)? = top["format"],
            case .object(let tenants)? = top["tenants"]
        else { throw WebhookError(description: "\(path) is not a format 1 webhook cursor (delete it to deliver from now on)") }
        var cursor: [TenantID: UInt64] = [:]
        for (name, value) in tenants {
            guard case .integer(let id) = value else {
                throw WebhookError(description: "\(path): bad entry for \(name)")
            }
            cursor[TenantID(name)] = id
        }
        return cursor
    }

    private func saveCursor(_ cursor: [TenantID: UInt64]) throws {
        let tenants = cursor.sorted { $0.key < $1.key }.map { ($0.key.rawValue, OrderedJSON.unsigned($0.value)) }
        let text = OrderedJSON.object([("format", .unsigned(1)), ("tenants", .object(tenants))]).text + "\n"
        try FileSystem.replaceFile(configuration.cursorPath, Array(text.utf8))
    }
}
