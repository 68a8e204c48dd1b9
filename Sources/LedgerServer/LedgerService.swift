import LedgerCore
import LedgerEngine
import LedgerWire
import Logging
import NIOCore
import Synchronization

/// The calls themselves: decodes a request frame, checks the principal's access, runs the call
/// on the engine and builds the reply. Knows nothing of sockets; the server hands it frames.
public final class LedgerService: Sendable {
    public let engine: LedgerEngine
    let serverVersion: String
    let draining = Mutex(false)
    let logger: Logger
    let callsInFlightMax: Int
    private let callsInFlight = Mutex(0)

    /// Calls, latencies and connections for the metrics listener (docs/operations.md).
    public let metrics: LedgerMetrics

    public init(
        engine: LedgerEngine, serverVersion: String, callsInFlightMax: Int = 65_536, logger: Logger,
        metrics: LedgerMetrics = LedgerMetrics()
    ) {
        self.metrics = metrics
        self.engine = engine
        self.serverVersion = serverVersion
        self.callsInFlightMax = callsInFlightMax
        self.logger = logger
    }

    /// Health reports "draining" from now on.
    /// Watches end with `unavailable`.
    func beginDraining() {
        draining.withLock { $0 = true }
        engine.eventHub.finishAll()
    }

    /// The reply to one request frame. Never throws: every failure is an error reply. Each call is
    /// counted by RPC and result code, and its latency recorded. A watch needs a connection to
    /// stream on (`serve(frame:principal:watches:send:)`); here it is refused.
    public func respond(to frame: ByteBuffer, principal: Principal) async -> WireResponse {
        let start = ContinuousClock.now
        let response: WireResponse
        let rpc: String
        switch decode(frame, principal: principal) {
        case .reply(let reply, let name):
            (response, rpc) = (reply, name)
        case .call(.watch, let callID, let name), .call(.unwatch, let callID, let name):
            (response, rpc) = (WireResponse(callID: callID, error: Self.watchNeedsConnection), name)
        case .call(let call, let callID, let name):
            (response, rpc) = (await admitAndPerform(call, callID: callID, principal: principal), name)
        }
        metrics.record(rpc: rpc, code: Self.code(of: response), duration: ContinuousClock.now - start)
        return response
    }

    /// A watch or unwatch outside a connection (`respond`, `perform`): it has nowhere to stream.
    static let watchNeedsConnection = LedgerError(.invalidArgument, "watch streams need a connection")

    static func code(of response: WireResponse) -> String {
        if case .error(let error)? = response.result { return error.code.domain?.rawValue ?? "unknown" }
        return "ok"
    }

    enum Decoded {
        /// Answered without running: the frame is not a request, or the call is refused.
        case reply(WireResponse, rpc: String)
        case call(LedgerCall, callID: UInt64, rpc: String)
    }

    /// Decodes a frame into an authorized call, or the error reply.
    func decode(_ frame: ByteBuffer, principal: Principal) -> Decoded {
        let request: WireRequest
        do {
            request = try WireRequest(frame: frame)
        } catch {
            return .reply(
                WireResponse(callID: 0, error: LedgerError(.invalidArgument, "the frame is not a valid Request message: \(error)")),
                rpc: "unreadable")
        }
        let rpc = Self.rpcName(request.call)
        if request.containsUnknownFields {
            return .reply(
                WireResponse(
                    callID: request.callID,
                    error: LedgerError(
                        .invalidArgument, "the request has fields this server does not know; upgrade the server or the client")),
                rpc: rpc)
        }
        do {
            let call = try LedgerCall(request)
            try principal.authorize(call)
            return .call(call, callID: request.callID, rpc: rpc)
        } catch {
            return .reply(WireResponse(callID: request.callID, error: error), rpc: rpc)
        }
    }

    /// Runs a call under the server-wide in-flight bound (over it: `overloaded`).
    func admitAndPerform(_ call: LedgerCall, callID: UInt64, principal: Principal) async -> WireResponse {
        guard admit() else { return overloaded(callID: callID) }
        defer { finishAdmitted() }
        return await perform(call, callID: callID, principal: principal)
    }

    /// Takes one of the server-wide in-flight slots; false when all are taken.
    func admit() -> Bool {
        callsInFlight.withLock { count in
            guard count < callsInFlightMax else { return false }
            count += 1
            metrics.setInFlight(count)
            return true
        }
    }

    /// Gives back a slot taken by `admit`.
    func finishAdmitted() {
        callsInFlight.withLock { count in
            count -= 1
            metrics.setInFlight(count)
        }
    }

    func overloaded(callID: UInt64) -> WireResponse {
        WireResponse(
            callID: callID,
            error: LedgerError(
                .overloaded, "the server has \(callsInFlightMax) calls in flight; try again shortly",
                details: .limit(name: "server_calls_in_flight_max", value: UInt64(callsInFlightMax))))
    }

    /// The reply to a call that failed: its ledger error, or `unavailable` when the engine refuses
    /// after a storage failure (fail-stop; nothing was acknowledged).
    func failure(_ error: any Error, callID: UInt64) -> WireResponse {
        if let error = error as? LedgerError { return WireResponse(callID: callID, error: error) }
        logger.error("call failed", metadata: ["call.id": "\(callID)", "error": "\(error)"])
        return WireResponse(callID: callID, error: LedgerError(.unavailable, "the ledger is unavailable: \(error)"))
    }

    /// A read of `startWithoutTask`: `read` runs now, `fill` puts its value into the reply.
    private func startRead<T: Sendable>(
        _ tenant: TenantID, callID: UInt64, reply: @escaping @Sendable (WireResponse) -> Void,
        _ read: (LedgerState) throws -> T, fill: @escaping @Sendable (inout WireResponse, T) -> Void
    ) {
        guard admit() else { return reply(overloaded(callID: callID)) }
        // No group commit: a read logs nothing but the rare tick when something fell due (left to
        // the writer thread), and what it waits for was appended by calls that sync it themselves.
        engine.shard(for: tenant).submitRead(read) { [self] outcome in
            finishAdmitted()
            switch outcome {
            case .success(let (value, lsn)):
                var response = WireResponse.with {
                    $0.callID = callID
                    $0.lsn = lsn
                }
                fill(&response, value)
                reply(response)
            case .failure(let error):
                reply(failure(error, callID: callID))
            }
        }
    }

    /// Starts a metering call (a command on one tenant, balance, estimate) without a task: it is
    /// applied (or read) now on the caller's thread, and `reply` is called with its reply once that
    /// is durable, from the thread that made it durable (or at once when nothing needs to wait).
    /// With `groupCommit` (the caller is that event loop) a command's record is synced by the loop's
    /// group commit after this tick's I/O; without, by the shard's log writer thread.
    /// Returns false, without doing anything, for the other calls: they run in a task
    /// (`serve(_:principal:watches:start:send:)`).
    func startWithoutTask(
        _ call: LedgerCall, callID: UInt64, groupCommit: EventLoopGroupCommit? = nil,
        reply: @escaping @Sendable (WireResponse) -> Void
    ) -> Bool {
        switch call {
        case .command(let body, let requestID):
            guard let tenant = body.tenant else { return false }
            guard admit() else {
                reply(overloaded(callID: callID))
                return true
            }
            let shard = engine.shard(for: tenant)
            defer { groupCommit?.needsSync(shard) }
            shard.submit(body, requestID: requestID, deferSync: groupCommit != nil) { [self] outcome in
                finishAdmitted()
                switch outcome {
                case .success(let result): reply(WireResponse(callID: callID, result: result))
                case .failure(let error): reply(failure(error, callID: callID))
                }
            }
            return true
        case .balance(let tenant, let member):
            startRead(tenant, callID: callID, reply: reply, { state in try state.balance(tenant, member: member) }) {
                $0.balance = Tokenledger_V1_BalanceResult($1)
            }
            return true
        case .estimate(let tenant, let member, let items):
            startRead(tenant, callID: callID, reply: reply, { state in try state.estimate(tenant, member: member, items: items) }) {
                $0.estimate = Tokenledger_V1_EstimateResult($1)
            }
            return true
        default:
            return false
        }
    }

    /// The RPC's name in metrics: the request's call field (`reserve`, `create_tenant`, ...).
    static func rpcName(_ call: WireRequest.OneOf_Call?) -> String {
        switch call {
        case .reserve?: return "reserve"
        case .commit?: return "commit"
        case .release?: return "release"
        case .refund?: return "refund"
        case .estimate?: return "estimate"
        case .balance?: return "balance"
        case .createTenant?: return "create_tenant"
        case .configureTenant?: return "configure_tenant"
        case .setMember?: return "set_member"
        case .grant?: return "grant"
        case .purchase?: return "purchase"
        case .voidGrant?: return "void_grant"
        case .refundPurchase?: return "refund_purchase"
        case .history?: return "history"
        case .catalog?: return "catalog"
        case .installCatalog?: return "install_catalog"
        case .health?: return "health"
        case .adminSnapshot?: return "admin_snapshot"
        case .adminAudit?: return "admin_audit"
        case .watch?: return "watch"
        case .unwatch?: return "unwatch"
        case nil: return "none"
        }
    }

    /// Runs a decoded, authorized call.
    public func perform(_ call: LedgerCall, callID: UInt64, principal: Principal) async -> WireResponse {
        do {
            switch call {
            case .command(let body, let requestID):
                return WireResponse(callID: callID, result: try await engine.execute(body, requestID: requestID))
            case .installCatalog(let catalog):
                // Logged in every shard: no single position describes it.
                var result = try await engine.execute(.installCatalog(catalog), requestID: nil)
                result.lsn = 0
                return WireResponse(callID: callID, result: result)
            case .balance(let tenant, let member):
                let (view, lsn) = try await engine.shard(for: tenant).readWithLSN { state in
                    try state.balance(tenant, member: member)
                }
                return WireResponse.with {
                    $0.callID = callID
                    $0.lsn = lsn
                    $0.balance = Tokenledger_V1_BalanceResult(view)
                }
            case .estimate(let tenant, let member, let items):
                let (view, lsn) = try await engine.shard(for: tenant).readWithLSN { state in
                    try state.estimate(tenant, member: member, items: items)
                }
                return WireResponse.with {
                    $0.callID = callID
                    $0.lsn = lsn
                    $0.estimate = Tokenledger_V1_EstimateResult(view)
                }
            case .history(let tenant, let filter):
                let (page, lsn) = try await engine.shard(for: tenant).readWithLSN { state in
                    try state.history(tenant, filter: filter)
                }
                return WireResponse.with {
                    $0.callID = callID
                    $0.lsn = lsn
                    $0.history = Tokenledger_V1_HistoryResult(page)
                }
            case .catalog:
                guard let catalog = try await engine.shards[0].read({ state in state.catalog }) else {
                    return WireResponse(callID: callID, error: LedgerError(.notFound, "no price catalog is installed"))
                }
                return WireResponse.with {
                    $0.callID = callID
                    $0.catalog = Tokenledger_V1_CatalogResult(catalog)
                }
            case .health:
                return health(callID: callID, principal: principal)
            case .watch, .unwatch:
                return WireResponse(callID: callID, error: Self.watchNeedsConnection)
            case .adminSnapshot:
                var positions: [UInt64] = []
                for shard in engine.shards {
                    _ = try await shard.snapshot()
                    positions.append(await shard.latestSnapshotLSN)
                }
                logger.notice("snapshot on request", metadata: ["snapshot.lsns": "\(positions)", "principal": "\(principal.name)"])
                return WireResponse.with {
                    $0.callID = callID
                    $0.adminSnapshot = .with { $0.snapshotLsns = positions }
                }
            case .adminAudit:
                var violations: [String] = []
                var tenants: UInt64 = 0
                for shard in engine.shards {
                    let (found, count) = try await shard.read { state in (state.audit().map { "\($0)" }, state.tenants.count) }
                    violations += found.map { "shard \(shard.index): \($0)" }
                    tenants += UInt64(count)
                }
                if !violations.isEmpty {
                    logger.critical("audit on request found violations", metadata: ["violations": "\(violations.count)"])
                }
                return WireResponse.with {
                    $0.callID = callID
                    $0.adminAudit = .with {
                        $0.shards = UInt32(engine.shards.count)
                        $0.tenants = tenants
                        $0.violations = Array(violations.prefix(100))
                    }
                }
            }
        } catch {
            return failure(error, callID: callID)
        }
    }

    private func health(callID: UInt64, principal: Principal) -> WireResponse {
        let isDraining = draining.withLock { $0 }
        return WireResponse.with {
            $0.callID = callID
            $0.health = .with {
                $0.status = isDraining ? "draining" : "serving"
                $0.serverVersion = serverVersion
                $0.shardCount = UInt32(engine.shards.count)
                $0.timeMs = SystemClock().now().millisecondsSinceEpoch
                $0.principal = principal.name
                switch principal.role {
                case .admin: $0.role = .admin
                case .service: $0.role = .service
                case .tenant: $0.role = .tenant
                }
            }
        }
    }
}
