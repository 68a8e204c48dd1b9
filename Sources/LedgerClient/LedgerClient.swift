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
/// (docs/cluster.md) a call answered `wrong_owner` goes to the node it names, on a connection of
/// its own, and a retry goes to the next of `servers` (``ClientConfiguration/servers``).
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
        /// The connection to `host`:`port`.
        var connection: ClientConnection?
        /// Cluster mode: connections to the other nodes, by address.
        var others: [String: ClientConnection] = [:]
        /// Cluster mode: the node that last served each tenant (learnt from `wrong_owner`).
        var owners: [TenantID: String] = [:]
        var nextCallID: UInt64 = 0
        var closed = false
    }

    /// `host`:`port`, then `servers`, without repeats.
    private let addresses: [String]

    private init(configuration: ClientConfiguration, group: any EventLoopGroup, connection: ClientConnection) {
        self.configuration = configuration
        self.group = group
        state = Mutex(State(connection: connection))
        slots = CallSlots(count: max(1, configuration.inFlightMax))
        var addresses = ["\(configuration.host):\(configuration.port)"]
        for server in configuration.servers where !addresses.contains(server) { addresses.append(server) }
        self.addresses = addresses
    }

    private var home: String { addresses[0] }

    /// Connects (TLS 1.3, client certificate) and returns a ready client.
    public static func connect(
        _ configuration: ClientConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(LedgerClientError) -> LedgerClient {
        let connection = try await ClientConnection.connect(configuration, group: group)
        return LedgerClient(configuration: configuration, group: group, connection: connection)
    }

    /// Closes the connection; calls in flight fail with `connectionClosed`.
    public func close() async {
        let connections = state.withLock { state in
            state.closed = true
            defer {
                state.connection = nil
                state.others = [:]
            }
            return [state.connection].compactMap { $0 } + Array(state.others.values)
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
        var address = tenant.flatMap { tenant in state.withLock { $0.owners[tenant] } } ?? home
        var redirects = 0
        while true {
            do {
                let response = try await send(call, to: address)
                if case .error(let wire)? = response.result {
                    let error = LedgerError(wire)
                    // Cluster mode: the node that serves the tenant is elsewhere; go there.
                    if error.code == .wrongOwner, case .owner(_, let owner, _)? = error.details, let tenant,
                        redirects < configuration.redirectsMax, !owner.isEmpty
                    {
                        redirects += 1
                        address = owner
                        state.withLock { $0.owners[tenant] = owner }
                        continue
                    }
                    throw LedgerClientError.rejected(error)
                }
                return response
            } catch let error as LedgerClientError {
                // The node that served the tenant may be gone: forget it (the next call asks again).
                if error.isRetryable, let tenant {
                    state.withLock { state in if state.owners[tenant] == address { state.owners[tenant] = nil } }
                }
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

    /// The event loop of the current connection (one of the group's when there is none): where its
    /// replies arrive. A task that prefers it as executor (see `EventLoopExecutor`) makes its calls
    /// without a thread hop either way.
    public var eventLoop: any EventLoop {
        state.withLock { $0.connection?.channel.eventLoop } ?? group.next()
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
        let connection = address == home ? try await liveConnection() : try await otherConnection(address)
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

    /// The open connection to another node (cluster mode), or a new one.
    func otherConnection(_ address: String) async throws(LedgerClientError) -> ClientConnection {
        let current: ClientConnection? = try state.withLock { (state) throws(LedgerClientError) in
            if state.closed { throw .connectionClosed("the client was closed") }
            return state.others[address]
        }
        if let current, current.isActive { return current }
        var configuration = configuration
        do {
            let target = try HostPort(parsing: address, emptyHost: "127.0.0.1", ports: 1...65_535)
            configuration.host = target.host
            configuration.port = target.port
        } catch {
            throw .connectFailed("\(address) is not host:port: \(error)")
        }
        let fresh = try await ClientConnection.connect(configuration, group: group)
        let (winner, loser): (ClientConnection, ClientConnection?) = state.withLock { state in
            if let existing = state.others[address], existing.isActive, existing !== current { return (existing, fresh) }
            state.others[address] = fresh
            return (fresh, nil)
        }
        if let loser { await loser.close() }
        return winner
    }

    /// The open connection, or a new one when the last one closed.
    func liveConnection() async throws(LedgerClientError) -> ClientConnection {
        let current: ClientConnection? = try state.withLock { (state) throws(LedgerClientError) in
            if state.closed { throw .connectionClosed("the client was closed") }
            return state.connection
        }
        if let current, current.isActive { return current }
        let fresh = try await ClientConnection.connect(configuration, group: group)
        let (winner, loser): (ClientConnection, ClientConnection?) = state.withLock { state in
            if let existing = state.connection, existing.isActive, existing !== current { return (existing, fresh) }
            state.connection = fresh
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
    /// Streams the tenant's events on this client's connection: from now (`after` nil) or after an
    /// event id (0: every event the server still keeps). Not retried: when the stream ends with an
    /// error, watch again after the last event id received.
    public func watch(tenant: TenantID, after: UInt64? = nil) async throws(LedgerClientError) -> LedgerWatch {
        let connection = try await liveConnection()
        let callID = nextCallID()
        let replies = try connection.openStream(WireRequest(callID: callID, call: .watch(tenant, after: after)))
        let updates = AsyncThrowingStream<Tokenledger_V1_WatchUpdate, any Error> { continuation in
            let task = Task {
                do {
                    for try await response in replies {
                        switch response.result {
                        case .watch(let update)?: continuation.yield(update)
                        case .error(let error)?: throw LedgerClientError.rejected(LedgerError(error))
                        default: throw LedgerClientError.protocolViolation("a watch reply without an update")
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        return LedgerWatch(callID: callID, updates: updates, connection: connection, client: self)
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
