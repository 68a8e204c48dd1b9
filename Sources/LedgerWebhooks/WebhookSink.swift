// The webhook sink: every tenant's events, POSTed to one HTTP(S) endpoint, at least once.
//
// Invariants:
// - The source of truth is each tenant's event log in the ledger state (durable, retained up to
//   Limits.eventsRetainedPerTenant per tenant); the sink only keeps a cursor per tenant: the last
//   event id the endpoint acknowledged with a 2xx.
// - The cursor is saved at most once a second and at shutdown, and only ever moves forward past
//   acknowledged events: in the local mode a file replaced atomically (temporary file, fsync,
//   rename, directory fsync); in cluster mode rows in PostgreSQL, per tenant, which never move
//   back. After a crash (or a shard's move to another node) the sink starts from the last saved
//   cursor, so some acknowledged events may be sent again (at least once) but none is skipped
//   while the ledger still retains it.
// - Cluster mode: each node delivers the events of the shards it serves. When it takes a shard it
//   reads the shard's cursor (first time: the shard's current events, so that delivery starts
//   from now on); when it loses one, the tenants of that shard are left to the new owner.
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

/// Where the sink keeps its cursor (per tenant, the last event id the endpoint acknowledged):
/// ``WebhookCursorFile`` in the local mode, PostgreSQL in cluster mode.
public protocol WebhookCursorStore: Sendable {
    /// The cursor of the tenants of shard `shard` (every tenant in the local mode, where `shard`
    /// is nil), given their latest event ids now. The first time (no cursor yet) it records
    /// `latest` and returns it with `fresh` true: delivery starts from now on. A tenant with no
    /// entry otherwise is one created since: its events are all delivered.
    func cursor(shard: Int?, latest: [TenantID: UInt64]) async throws -> (cursor: [TenantID: UInt64], fresh: Bool)
    /// Records acknowledged positions: `changed` since the last save, `all` the whole cursor.
    func save(changed: [TenantID: UInt64], all: [TenantID: UInt64]) async throws
}

/// Where and how the sink delivers (ledgerd's `--webhook-*` options).
public struct WebhookConfiguration: Sendable {
    public var url: WebhookURL
    /// The HMAC-SHA256 key of the signature header.
    public var secret: [UInt8]
    /// The sink's cursor (which events each tenant's endpoint acknowledged).
    public var cursor: any WebhookCursorStore
    /// For https: the CA certificates (PEM) the endpoint's certificate must chain to; nil: the
    /// system's trust store.
    public var caPath: String?
    /// One attempt's limit (connect, send, response head).
    public var timeout: Duration = .seconds(10)
    public var backoffMin: Duration = .milliseconds(500)
    public var backoffMax: Duration = .seconds(60)
    /// Events in one POST (at most Limits.eventPageMax).
    public var batchMax: Int = 100

    public init(url: WebhookURL, secret: [UInt8], cursor: any WebhookCursorStore, caPath: String? = nil) {
        self.url = url
        self.secret = secret
        self.cursor = cursor
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

    public init(configuration: WebhookConfiguration, engine: LedgerEngine, logger: Logger, registry: PrometheusCollectorRegistry)
        throws
    {
        self.configuration = configuration
        self.engine = engine
        self.logger = logger
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
        var state = DeliveryState()
        if engine.placement == nil {
            try await state.adopt(shard: nil, latest: try await latestEventIDs(engine.shards), store: configuration.cursor, logger: logger)
        }
        logger.notice("webhook sink running", metadata: ["webhook.url": "\(configuration.url)", "tenants.pending": "\(state.pending.count)"])
        let start = state
        await cancelWhenGracefulShutdown {
            await self.deliverLoop(start, subscription: subscription)
        }
        // Stay until shutdown reaches this service (see Banner in ledgerd).
        try? await gracefulShutdown()
    }

    /// The cursor in memory, the tenants with events to deliver, and (cluster mode) the shards
    /// whose cursors are loaded, with the epoch they were loaded at.
    struct DeliveryState {
        var cursor: [TenantID: UInt64] = [:]
        var changed: [TenantID: UInt64] = [:]
        var pending = PendingTenants()
        var shards: [Int: UInt64] = [:]

        /// Takes the stored cursor of `shard` (nil: every tenant) and queues its tenants behind.
        mutating func adopt(shard: Int?, latest: [TenantID: UInt64], store: any WebhookCursorStore, logger: Logger) async throws {
            let (stored, fresh) = try await store.cursor(shard: shard, latest: latest)
            if fresh {
                logger.notice(
                    "webhook sink starts from the current events",
                    metadata: ["tenants": "\(latest.count)", "shard": "\(shard.map(String.init) ?? "all")"])
            }
            for (tenant, id) in stored where id > cursor[tenant, default: 0] { cursor[tenant] = id }
            for (tenant, id) in latest where id > cursor[tenant, default: 0] { pending.add(tenant) }
        }
    }

    /// Cluster mode: loads the cursors of the shards taken since the last look and drops the
    /// tenants of the shards gone (their new owner delivers them). A shard whose cursor cannot be
    /// read now is tried again at the next wake-up.
    private func followShards(_ state: inout DeliveryState) async {
        guard let placement = engine.placement else { return }
        let owned = Dictionary(uniqueKeysWithValues: placement.ownedEpochs.map { ($0.shard, $0.epoch) })
        let departed = state.shards.filter { owned[$0.key] != $0.value }.map(\.key)
        // What was acknowledged stays acknowledged: saved before those tenants are let go.
        if !departed.isEmpty { await save(&state) }
        for shard in departed {
            state.shards[shard] = nil
            let count = engine.shardCount
            for tenant in state.cursor.keys where tenant.shardIndex(shardCount: count) == shard {
                state.cursor[tenant] = nil
                state.changed[tenant] = nil
            }
        }
        for (shard, epoch) in owned.sorted(by: { $0.key < $1.key }) where state.shards[shard] == nil {
            guard case .owned(let served, _) = placement[shard] else { continue }
            do {
                let latest = try await latestEventIDs([served])
                try await state.adopt(shard: shard, latest: latest, store: configuration.cursor, logger: logger)
                state.shards[shard] = epoch
            } catch {
                logger.warning("webhook cursor of a shard not read; trying again", metadata: ["shard": "\(shard)", "error": "\(error)"])
            }
        }
    }

    /// Saves what changed; a failure is logged and the save tried again later (the endpoint may
    /// see those events again after a crash: at least once).
    private func save(_ state: inout DeliveryState) async {
        guard !state.changed.isEmpty else { return }
        do {
            try await configuration.cursor.save(changed: state.changed, all: state.cursor)
            state.changed = [:]
        } catch {
            logger.error("webhook cursor not saved; acknowledged events may be sent again", metadata: ["error": "\(error)"])
        }
    }

    /// Delivers until the hub ends the subscription (the server drains) or the task is cancelled
    /// (shutdown); the cursor is saved on the way out.
    private func deliverLoop(_ start: DeliveryState, subscription: EventHub.EveryTenant) async {
        var state = start
        var lastSave = ContinuousClock.now
        var signals = subscription.signals.makeAsyncIterator()
        do {
            while true {
                await followShards(&state)
                while let tenant = state.pending.next() {
                    // Cluster mode: only the tenants of shards whose cursor is loaded (a shard taken
                    // since the last look is adopted, its tenants queued again, at the next one).
                    if engine.placement != nil, state.shards[tenant.shardIndex(shardCount: engine.shardCount)] == nil { continue }
                    lagging.set(to: Double(state.pending.count + 1))
                    let page: EventPage
                    do {
                        page = try await engine.events(tenant, after: state.cursor[tenant, default: 0], limit: configuration.batchMax)
                    } catch let error as LedgerError where error.code == .wrongOwner || error.code == .unavailable {
                        continue  // Cluster mode: the shard left this node; its new owner delivers.
                    }
                    if page.lost > 0 {
                        lost.increment(by: Int64(page.lost))
                        logger.error(
                            "webhook events lost: retention dropped them before the endpoint acknowledged them",
                            metadata: ["tenant": "\(tenant)", "events.lost": "\(page.lost)", "next.event": "\(page.oldestRetainedID)"])
                    }
                    guard let last = page.events.last else { continue }
                    try await deliver(tenant, page.events)
                    state.cursor[tenant] = last.id
                    state.changed[tenant] = last.id
                    if page.events.count == configuration.batchMax { state.pending.add(tenant) }
                    if ContinuousClock.now - lastSave >= .seconds(1) {
                        await save(&state)
                        lastSave = .now
                    }
                }
                lagging.set(to: 0)
                await save(&state)
                lastSave = .now
                guard await signals.next() != nil else { break }
                for tenant in subscription.takeChanged().sorted() { state.pending.add(tenant) }
            }
        } catch is CancellationError {
        } catch {
            logger.error("webhook sink stopped", metadata: ["error": "\(error)"])
        }
        await save(&state)
    }

    /// Tenants to visit, each once, in the order they changed.
    struct PendingTenants {
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

    private func latestEventIDs(_ shards: [LedgerShard]) async throws -> [TenantID: UInt64] {
        var latest: [TenantID: UInt64] = [:]
        for shard in shards {
            let ids = try await shard.read { state in state.eventLogs.map { ($0.key, $0.value.lastID) } }
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
}

/// The local mode's cursor: `{"format":1,"tenants":{"acme":12,...}}` in one file, replaced
/// atomically on each save. Read when made, so that a damaged file stops the start (with the file
/// named) instead of the sink guessing where delivery stood.
public final class WebhookCursorFile: WebhookCursorStore {
    public let path: String
    /// The file's content when it was read; nil when there was none (first start).
    private let saved: [TenantID: UInt64]?

    public init(path: String) throws {
        self.path = path
        saved = try Self.load(path)
    }

    public func cursor(shard: Int?, latest: [TenantID: UInt64]) async throws -> (cursor: [TenantID: UInt64], fresh: Bool) {
        if let saved { return (saved, false) }
        try await save(changed: latest, all: latest)
        return (latest, true)
    }

    public func save(changed: [TenantID: UInt64], all: [TenantID: UInt64]) async throws {
        let tenants = all.sorted { $0.key < $1.key }.map { ($0.key.rawValue, OrderedJSON.unsigned($0.value)) }
        let text = OrderedJSON.object([("format", .unsigned(1)), ("tenants", .object(tenants))]).text + "\n"
        try FileSystem.replaceFile(path, Array(text.utf8))
    }

    private static func load(_ path: String) throws -> [TenantID: UInt64]? {
        guard FileSystem.exists(path) else { return nil }
        let bytes = try FileSystem.readFile(path)
        guard case .object(let top) = try JSONValue.parse(bytes), case .integer(1)? = top["format"],
            case .object(let tenants)? = top["tenants"]
        else { throw WebhookSink.WebhookError(description: "\(path) is not a format 1 webhook cursor (delete it to deliver from now on)") }
        var cursor: [TenantID: UInt64] = [:]
        for (name, value) in tenants {
            guard case .integer(let id) = value else {
                throw WebhookSink.WebhookError(description: "\(path): bad entry for \(name)")
            }
            cursor[TenantID(name)] = id
        }
        return cursor
    }
}
