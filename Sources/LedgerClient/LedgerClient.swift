import Instrumentation
import LedgerCore
import LedgerWire
import NIOCore
import NIOPosix
import Synchronization

/// The async Swift client. One TLS connection, many calls in flight on it (bounded by
/// `inFlightMax`), replies matched by call id. A call that fails for a retryable reason (the
/// connection dropped, a timeout, `overloaded`, `unavailable`) is sent again, on a new connection
/// if need be, with the same request id, so the ledger never applies it twice. Against a cluster
/// (docs/cluster.md) the client keeps a connection per node and the shard map: which node serves
/// each shard, learnt from `ShardMap` (fetched after the first `wrong_owner`, or by
/// ``shardMap()``) and from each `wrong_owner`. A call goes to its tenant's node; one answered
/// `wrong_owner` goes to the node it names, and a retry goes to the next of `servers`
/// (``ClientConfiguration/servers``).
///
///     let client = try await LedgerClient.connect(.development())
///     let hold = try await client.reserve(tenant: "acme", hold: "job-1", tokens: 296)
///     _ = try await client.commit(tenant: "acme", hold: "job-1", amount: 280)
public final class LedgerClient: Sendable {
    public let configuration: ClientConfiguration
    private let group: any EventLoopGroup
    private let state: Mutex<State>
    private let slots: CallSlots

    private struct State {
        /// Open connections by node address (`home` first; the others in cluster mode).
        var connections: [String: ClientConnection] = [:]
        /// Cluster mode: the shard count, once a `ShardMap` told it.
        var shardCount: Int?
        /// Cluster mode: the node that serves each shard as far as this client knows.
        var shardOwners: [Int: String] = [:]
        /// A `ShardMap` call is on its way (one at a time).
        var mapRequested = false
        var nextCallID: UInt64 = 0
        var closed = false

        /// The node to send `tenant`'s calls to, if the map names one.
        func owner(of tenant: TenantID) -> String? {
            guard let shardCount else { return nil }
            return shardOwners[tenant.shardIndex(shardCount: shardCount)]
        }
    }

    /// The node that answered `connect` first, then the others of `host`:`port` and `servers`,
    /// without repeats.
    private let addresses: [String]

    private init(configuration: ClientConfiguration, group: any EventLoopGroup, addresses: [String], connection: ClientConnection) {
        self.configuration = configuration
        self.group = group
        slots = CallSlots(count: max(1, configuration.inFlightMax))
        self.addresses = addresses
        state = Mutex(State(connections: [addresses[0]: connection]))
    }

    private var home: String { addresses[0] }

    /// `host`:`port`, then `servers`, without repeats.
    private static func addresses(_ configuration: ClientConfiguration) -> [String] {
        var addresses = ["\(configuration.host):\(configuration.port)"]
        for server in configuration.servers where !addresses.contains(server) { addresses.append(server) }
        return addresses
    }

    /// Connects (TLS 1.3, client certificate) and returns a ready client. With `servers` (cluster
    /// mode), a `host`:`port` that does not answer is not the end: each of `servers` is tried in
    /// turn, and the first that answers is the client's home node. When none does, the error is the
    /// only address's, or a `connectFailed` naming each address and why.
    public static func connect(
        _ configuration: ClientConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(LedgerClientError) -> LedgerClient {
        let candidates = addresses(configuration)
        var failures: [(address: String, error: LedgerClientError)] = []
        for address in candidates {
            do {
                let connection = try await ClientConnection.connect(try configuration.aimed(at: address), group: group)
                let addresses = [address] + candidates.filter { $0 != address }
                return LedgerClient(configuration: configuration, group: group, addresses: addresses, connection: connection)
            } catch {
                failures.append((address, error))
            }
        }
        guard failures.count > 1 else { throw failures[0].error }
        throw .connectFailed("no server answered: " + failures.map { "\($0.address): \($0.error)" }.joined(separator: "; "))
    }

    /// Closes the connection; calls in flight fail with `connectionClosed`.
    public func close() async {
        let connections = state.withLock { state in
            state.closed = true
            defer { state.connections = [:] }
            return Array(state.connections.values)
        }
        for connection in connections { await connection.close() }
    }

    /// Makes a call and returns the server's reply; an error reply throws `.rejected`.
    public func call(_ call: LedgerCall) async throws(LedgerClientError) -> WireResponse {
        await slots.acquire()
        defer { slots.release() }
        var attempt = 1
        var backoff = configuration.retry.backoff
        let tenant = call.tenant
        var address = self.address(for: tenant)
        var redirects = 0
        while true {
            do {
                let response = try await send(call, to: address)
                if case .error(let wire)? = response.result {
                    let error = LedgerError(wire)
                    // Cluster mode: the node that serves the tenant is elsewhere; go there.
                    if tenant != nil, redirects < configuration.redirectsMax, let owner = await learn(error) {
                        redirects += 1
                        address = owner
                        continue
                    }
                    throw LedgerClientError.rejected(error)
                }
                return response
            } catch let error as LedgerClientError {
                // The node that served the tenant may be gone: forget it (the next call asks again).
                if error.isRetryable, let tenant { forget(address, for: tenant) }
                guard error.isRetryable, attempt < configuration.retry.attempts, !isClosed else { throw error }
                attempt += 1
                if addresses.count > 1 {
                    // The next address, which serves the tenant or redirects.
                    address = addresses[((addresses.firstIndex(of: address) ?? -1) + 1) % addresses.count]
                } else {
                    address = home
                }
                try? await Task.sleep(for: backoff)
                backoff *= 2
            } catch {
                throw .protocolViolation("\(error)")
            }
        }
    }

    private var isClosed: Bool { state.withLock { $0.closed } }

    /// The node to send a call on `tenant` to: its shard's node if the map names one, else home.
    private func address(for tenant: TenantID?) -> String {
        guard let tenant else { return home }
        return state.withLock { $0.owner(of: tenant) } ?? home
    }

    /// Cluster mode: a `wrong_owner` reply names the shard's node; it goes into the map (with the
    /// whole map, fetched from that node, the first time). Returns the node, or nil when `error`
    /// names none.
    func learn(_ error: LedgerError) async -> String? {
        guard error.code == .wrongOwner, case .owner(let shard, let owner, _)? = error.details, !owner.isEmpty else { return nil }
        let fetchMap = state.withLock { state in
            state.shardOwners[Int(shard)] = owner
            guard state.shardCount == nil, !state.mapRequested else { return false }
            state.mapRequested = true
            return true
        }
        if fetchMap {
            if let response = try? await send(.shardMap, to: owner), case .shardMap(let map)? = response.result {
                install(map)
            }
            state.withLock { $0.mapRequested = false }
        }
        return owner
    }

    /// Puts a `ShardMap` answer into the map (a node that serves no shard now is left out).
    func install(_ map: Tokenledger_V1_ShardMapResult) {
        guard map.cluster, map.shardCount > 0 else { return }
        state.withLock { state in
            state.shardCount = Int(map.shardCount)
            for owner in map.shards where !owner.address.isEmpty { state.shardOwners[Int(owner.shard)] = owner.address }
        }
    }

    /// The node at `address` failed a call on `tenant`: its shard's entry goes (the next call
    /// starts from home or the next address).
    private func forget(_ address: String, for tenant: TenantID) {
        state.withLock { state in
            guard let shardCount = state.shardCount else { return }
            let shard = tenant.shardIndex(shardCount: shardCount)
            if state.shardOwners[shard] == address { state.shardOwners[shard] = nil }
        }
    }

    /// The event loop of the current connection (one of the group's when there is none): where its
    /// replies arrive. A task that prefers it as executor (see `EventLoopExecutor`) makes its calls
    /// without a thread hop either way.
    public var eventLoop: any EventLoop {
        state.withLock { $0.connections[home]?.channel.eventLoop } ?? group.next()
    }

    /// The W3C trace context (`traceparent` value) that the calls made in this task carry
    /// (`Request.trace_parent`), so that the server's span of each call is a child of the caller's:
    ///
    ///     try await LedgerClient.$traceParent.withValue("00-\(traceID)-\(spanID)-01") {
    ///         try await client.reserve(tenant: "acme", hold: "job-1", tokens: 296)
    ///     }
    ///
    /// When it is nil and the task has a `ServiceContext` (swift-distributed-tracing), the
    /// bootstrapped instrument injects that context's `traceparent` instead.
    @TaskLocal public static var traceParent: String? = nil

    private func send(_ call: LedgerCall, to address: String) async throws(LedgerClientError) -> WireResponse {
        let connection = try await connection(to: address)
        var request = WireRequest(callID: nextCallID(), call: call)
        if let parent = Self.traceParent ?? Self.injectedTraceParent() { request.traceParent = parent }
        return try await connection.send(request)
    }

    /// The current `ServiceContext`'s `traceparent`, as the bootstrapped instrument writes it.
    private static func injectedTraceParent() -> String? {
        guard let context = ServiceContext.current else { return nil }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryInjector())
        return carrier["traceparent"]
    }

    func nextCallID() -> UInt64 {
        state.withLock { state in
            state.nextCallID += 1
            return state.nextCallID
        }
    }

    /// The open connection to the node at `address` (`home` or, in cluster mode, another node),
    /// or a new one when there is none or it closed.
    func connection(to address: String) async throws(LedgerClientError) -> ClientConnection {
        let current: ClientConnection? = try state.withLock { (state) throws(LedgerClientError) in
            if state.closed { throw .connectionClosed("the client was closed") }
            return state.connections[address]
        }
        if let current, current.isActive { return current }
        let fresh = try await ClientConnection.connect(try configuration.aimed(at: address), group: group)
        let (winner, loser): (ClientConnection, ClientConnection?) = state.withLock { state in
            if let existing = state.connections[address], existing.isActive, existing !== current { return (existing, fresh) }
            state.connections[address] = fresh
            return (fresh, nil)
        }
        if let loser { await loser.close() }
        return winner
    }
}

// MARK: - Watch

/// One watch stream (see `LedgerClient.watch`).
public struct LedgerWatch: Sendable {
    /// The call id the server streams under (what `stop` names).
    public let callID: UInt64
    /// `started`, then events (and gaps) as they become durable, until `stop()` (the stream then
    /// yields `ended` and finishes). An error reply (e.g. `unavailable` when the server drains)
    /// or the connection's end finishes it with an error: watch again with `after:` the last
    /// event id seen to resume without loss.
    public let updates: AsyncThrowingStream<Tokenledger_V1_WatchUpdate, any Error>
    let connection: ClientConnection
    let client: LedgerClient

    /// Asks the server to end the watch; false when it had ended already.
    @discardableResult
    public func stop() async throws(LedgerClientError) -> Bool {
        let response = try await connection.send(WireRequest(callID: client.nextCallID(), call: .unwatch(watchCallID: callID)))
        switch response.result {
        case .unwatch(let result)?: return result.stopped
        case .error(let error)?: throw .rejected(LedgerError(error))
        default: throw .protocolViolation("unwatch answered with \(String(describing: response.result))")
        }
    }
}

extension LedgerClient {
    /// Streams the tenant's events: from now (`after` nil) or after an event id (0: every event the
    /// server still keeps). In cluster mode the watch opens on the tenant's node (following
    /// `wrong_owner` like a call). Not retried: when the stream ends with an error (`wrong_owner`
    /// or `unavailable` when the tenant's shard moves, `unavailable` when the server drains, a
    /// lost connection), watch again after the last event id received; event ids are the same
    /// on every node.
    public func watch(tenant: TenantID, after: UInt64? = nil) async throws(LedgerClientError) -> LedgerWatch {
        var address = address(for: tenant)
        var redirects = 0
        while true {
            let connection = try await connection(to: address)
            let callID = nextCallID()
            let replies = try connection.openStream(WireRequest(callID: callID, call: .watch(tenant, after: after)))
            let (updates, output) = AsyncThrowingStream<Tokenledger_V1_WatchUpdate, any Error>.makeStream()
            // The first reply decides: `started` (the stream goes on) or an error (nothing streams).
            let refusal: LedgerClientError? = await withCheckedContinuation { (decided: CheckedContinuation<LedgerClientError?, Never>) in
                let task = Task {
                    var pending: CheckedContinuation<LedgerClientError?, Never>? = decided
                    do {
                        for try await response in replies {
                            switch response.result {
                            case .watch(let update)?:
                                pending?.resume(returning: nil)
                                pending = nil
                                output.yield(update)
                            case .error(let wire)?:
                                let error = LedgerError(wire)
                                if let first = pending {
                                    pending = nil
                                    first.resume(returning: .rejected(error))
                                } else {
                                    _ = await learn(error)
                                }
                                throw LedgerClientError.rejected(error)
                            default: throw LedgerClientError.protocolViolation("a watch reply without an update")
                            }
                        }
                        pending?.resume(returning: .connectionClosed("the watch ended before it started"))
                        output.finish()
                    } catch {
                        pending?.resume(returning: error as? LedgerClientError ?? .protocolViolation("\(error)"))
                        output.finish(throwing: error)
                    }
                }
                output.onTermination = { _ in task.cancel() }
            }
            // Refused by a node that does not serve the tenant: open it again at the owner. Any other
            // refusal ends the stream with it, as it would end later.
            if case .rejected(let error)? = refusal, redirects < configuration.redirectsMax, let owner = await learn(error) {
                redirects += 1
                address = owner
                continue
            }
            return LedgerWatch(callID: callID, updates: updates, connection: connection, client: self)
        }
    }
}

/// A counting semaphore for calls in flight: `acquire` waits while all slots are taken.
final class CallSlots: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []

        /// Takes a free slot if there is one.
        mutating func take() -> Bool {
            guard available > 0 else { return false }
            available -= 1
            return true
        }
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(available: count))
    }

    func acquire() async {
        // A free slot is taken without suspending (a suspension is a trip through the executor).
        if state.withLock({ $0.take() }) { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state in
                if state.take() { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func release() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume()
    }
}

/// Writes injected headers into a dictionary.
private struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

extension ClientConfiguration {
    /// This configuration aimed at the node at `address` (`host:port`); itself for its own address.
    func aimed(at address: String) throws(LedgerClientError) -> ClientConfiguration {
        guard address != "\(host):\(port)" else { return self }
        var configuration = self
        do {
            let target = try HostPort(parsing: address, emptyHost: "127.0.0.1", ports: 1...65_535)
            configuration.host = target.host
            configuration.port = target.port
        } catch {
            throw .connectFailed("\(address) is not host:port: \(error)")
        }
        return configuration
    }
}
