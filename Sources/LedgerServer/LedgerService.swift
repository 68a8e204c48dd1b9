import LedgerCore
import LedgerEngine
import LedgerStore
import LedgerWire
import Logging
import Synchronization

/// The calls themselves, for every front door: authorizes a decoded call for a principal, runs it
/// on the engine and builds its replies. It knows nothing of frames, sockets or channels: the framed
/// port (`LedgerConnectionHandler`) decodes frames and hands each call to ``serve(_:callID:principal:watches:syncBy:replies:)``,
/// and any other front door does the same.
public final class LedgerService: Sendable {
    public let engine: LedgerEngine
    let serverVersion: String
    let draining = Mutex(false)
    let logger: Logger
    let callsInFlightMax: Int
    private let callsInFlight = Mutex(0)

    /// Calls, latencies and connections for the metrics listener (docs/operations.md).
    public let metrics: LedgerMetrics
    /// Spans of the calls, when traces are exported (nil: off).
    let tracing: CallTracing?

    public init(
        engine: LedgerEngine, serverVersion: String, callsInFlightMax: Int = ServerLimits.callsInFlightMaxDefault, logger: Logger,
        metrics: LedgerMetrics = LedgerMetrics(), tracing: CallTracing? = nil
    ) {
        self.metrics = metrics
        self.tracing = tracing
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

    /// Where a call's replies go.
    public struct Replies: Sendable {
        /// The call is over: its reply, or nil after a stream whose replies went through `send`.
        /// Called exactly once per call, from whichever thread finished it; it must be quick (a
        /// metering call's completion runs on the thread that made it durable).
        /// The reply is handed over (consumed), not lent: it is stored for the connection's next
        /// write, and a lent one had to be copied there.
        public var finish: @Sendable (consuming CallReply?) -> Void
        /// One reply of a stream (a watch's updates): returns once the front door took it, so that a
        /// slow reader slows the stream down; throws when it cannot take it any more.
        public var send: @Sendable (WireResponse) async throws -> Void

        public init(
            finish: @escaping @Sendable (consuming CallReply?) -> Void, send: @escaping @Sendable (WireResponse) async throws -> Void
        ) {
            self.finish = finish
            self.send = send
        }
    }

    /// Serves one decoded call for `principal`: checks its access, then runs it. Every call ends
    /// with exactly one `replies.finish`; each is counted in the metrics by RPC and result code.
    ///
    /// - Commands, balance, estimate, history, catalog, health and unwatch run now, on the caller's
    ///   thread, without a task: a command is applied and logged under its shard's lock and
    ///   finishes once its record is durable, from the thread that made it durable. With
    ///   `syncBy: .caller` the caller syncs that record itself: the shard it must sync
    ///   (`LedgerShard.syncPending`) is returned. With `.logWriter` the shard's writer thread does.
    /// - Catalog installs and the admin calls run in a task; a watch runs in a task for as long as
    ///   it streams, sending its updates through `replies.send`.
    ///
    /// `traceParent` (W3C `traceparent`, may be empty) parents the call's span when traces are on.
    @discardableResult
    public func serve(
        _ call: LedgerCall, callID: UInt64, principal: Principal, watches: ConnectionWatches, syncBy: SyncBy,
        traceParent: String = "", replies: Replies
    ) -> LedgerShard? {
        let start = ContinuousClock.now
        let rpc = call.rpcName
        let traced = tracing?.begin(call, rpc: rpc, traceParent: traceParent)
        // Local functions, not closure values: the command path's completion below calls them
        // without a context of their own being allocated for every call.
        @Sendable func finishReply(_ reply: consuming CallReply?) {
            if let reply {
                let code = Self.code(of: reply)
                metrics.record(rpc: rpc, code: code, duration: ContinuousClock.now - start)
                traced?.end(reply.response, code: code)
            } else {
                traced?.end(nil, code: "ok")
            }
            replies.finish(reply)
        }
        @Sendable func finish(_ response: WireResponse?) { finishReply(response.map(CallReply.message)) }
        do {
            try principal.authorize(call)
        } catch {
            finish(WireResponse(callID: callID, error: error))
            return nil
        }
        switch call {
        case .command(let body, let requestID):
            guard let tenant = body.tenant else {
                finish(WireResponse(callID: callID, error: LedgerError(.invalidArgument, "the command names no tenant")))
                return nil
            }
            let shard: LedgerShard
            do {
                shard = try engine.route(tenant)
            } catch {
                finish(WireResponse(callID: callID, error: error))
                return nil
            }
            guard admit() else {
                finish(overloaded(callID: callID))
                return nil
            }
            shard.submit(body, requestID: requestID, syncBy: syncBy, trace: traced?.shard) { [self] outcome in
                finishAdmitted()
                switch outcome {
                case .success(let result):
                    // A successful result goes out as the ledger gave it (the framed port writes
                    // it without building the message); a refusal as its message.
                    if case .success = result.outcome {
                        finishReply(.command(callID: callID, result))
                    } else {
                        finish(WireResponse(callID: callID, result: result))
                    }
                case .failure(let error): finish(failure(error, callID: callID))
                }
            }
            return syncBy == .caller ? shard : nil
        case .balance(let tenant, let member):
            read(tenant, callID: callID, traced, finish, { state in try state.balance(tenant, member: member) }) {
                $0.balance = Tokenledger_V1_BalanceResult($1)
            }
        case .estimate(let tenant, let member, let items):
            read(tenant, callID: callID, traced, finish, { state in try state.estimate(tenant, member: member, items: items) }) {
                $0.estimate = Tokenledger_V1_EstimateResult($1)
            }
        case .history(let tenant, let filter):
            read(tenant, callID: callID, traced, finish, { state in try state.history(tenant, filter: filter) }) {
                $0.history = Tokenledger_V1_HistoryResult($1)
            }
        case .listHolds(let tenant, let member, let after, let limit):
            read(tenant, callID: callID, traced, finish, { state in try state.openHolds(tenant, member: member, after: after, limit: limit) }) { response, page in
                response.listHolds = .with {
                    $0.holds = page.holds.map(Tokenledger_V1_Hold.init)
                    $0.nextAfterHoldID = page.nextAfter?.rawValue ?? ""
                }
            }
        case .listGrants(let tenant, let grantState, let after, let limit):
            read(tenant, callID: callID, traced, finish, { state in try state.grants(tenant, state: grantState, after: after, limit: limit) }) { response, page in
                response.listGrants = .with {
                    $0.grants = page.grants.map(Tokenledger_V1_Grant.init)
                    $0.nextAfterGrantID = page.nextAfter?.rawValue ?? 0
                }
            }
        case .listTenants(let after, let limit):
            inTask(callID: callID, finish) { [self] in try await listTenants(after: after, limit: limit, callID: callID) }
        case .catalog:
            // Every shard holds the same catalog (installs are one decision, LedgerEngine.installCatalog).
            guard let first = engine.shards.first else {
                finish(WireResponse(callID: callID, error: LedgerError(.unavailable, "this node serves no shard yet; retry shortly")))
                return nil
            }
            guard admit() else {
                finish(overloaded(callID: callID))
                return nil
            }
            first.submitRead({ state in state.catalog }, trace: traced?.shard) { [self] outcome in
                finishAdmitted()
                switch outcome {
                case .success((let catalog?, _)):
                    finish(WireResponse.with {
                        $0.callID = callID
                        $0.catalog = Tokenledger_V1_CatalogResult(catalog)
                    })
                case .success((nil, _)):
                    finish(WireResponse(callID: callID, error: LedgerError(.notFound, "no price catalog is installed")))
                case .failure(let error):
                    finish(failure(error, callID: callID))
                }
            }
        case .health:
            finish(health(callID: callID, principal: principal))
        case .shardMap:
            finish(shardMap(callID: callID))
        case .unwatch(let watchCallID):
            let stopped = watches.stop(watchCallID, reason: .unwatched)
            finish(WireResponse.with {
                $0.callID = callID
                $0.unwatch = .with { $0.stopped = stopped }
            })
        case .watch(let tenant, let after):
            Task {
                do {
                    try await watch(tenant, after: after, callID: callID, watches: watches, start: start, send: replies.send)
                } catch {
                    logger.debug("watch ended by its connection", metadata: ["call.id": "\(callID)", "error": "\(error)"])
                }
                finish(nil)
            }
        case .installCatalog(let catalog):
            inTask(callID: callID, finish) { [engine] in
                var result = try await engine.installCatalog(catalog)
                // Logged in every shard: no single position describes it.
                result.lsn = 0
                return WireResponse(callID: callID, result: result)
            }
        case .adminSnapshot:
            inTask(callID: callID, finish) { [self] in try await snapshotAll(callID: callID, principal: principal) }
        case .adminAudit:
            inTask(callID: callID, finish) { [self] in try await auditAll(callID: callID) }
        case .adminBackup(let directory):
            inTask(callID: callID, finish) { [self] in try await backup(to: directory, callID: callID, principal: principal) }
        }
        return nil
    }

    /// The call a request stands for, decoded the same way on every port: fields this schema does
    /// not know are refused (a field the server would ignore may be one the client believes changes
    /// the call's meaning), then `LedgerCall(_:)` checks the rest.
    public static func decode(_ request: WireRequest) throws(LedgerError) -> LedgerCall {
        if request.containsUnknownFields {
            throw LedgerError(.invalidArgument, "the request has fields this server does not know; upgrade the server or the client")
        }
        return try LedgerCall(request)
    }

    static func code(of response: WireResponse) -> String {
        if case .error(let error)? = response.result { return error.code.domain?.rawValue ?? "unknown" }
        return "ok"
    }

    /// A reply's code in metrics: a command's reply carries a successful outcome.
    static func code(of reply: CallReply) -> String {
        switch reply {
        case .command: "ok"
        case .message(let response): code(of: response)
        }
    }

    /// Takes one of the server-wide in-flight slots; false when all are taken.
    private func admit() -> Bool {
        callsInFlight.withLock { count in
            guard count < callsInFlightMax else { return false }
            count += 1
            metrics.setInFlight(count)
            return true
        }
    }

    /// Gives back a slot taken by `admit`.
    private func finishAdmitted() {
        callsInFlight.withLock { count in
            precondition(count > 0, "more calls finished than were admitted")
            count -= 1
            metrics.setInFlight(count)
        }
    }

    private func overloaded(callID: UInt64) -> WireResponse {
        WireResponse(
            callID: callID,
            error: LedgerError(
                .overloaded, "the server has \(callsInFlightMax) calls in flight; try again shortly",
                details: .limit(name: "server_calls_in_flight_max", value: UInt64(callsInFlightMax))))
    }

    /// The reply to a call that failed: its ledger error, or `unavailable` when the engine refuses
    /// after a storage failure (fail-stop; nothing was acknowledged).
    private func failure(_ error: any Error, callID: UInt64) -> WireResponse {
        if let error = error as? LedgerError { return WireResponse(callID: callID, error: error) }
        logger.error("call failed", metadata: ["call.id": "\(callID)", "error": "\(error)"])
        return WireResponse(callID: callID, error: LedgerError(.unavailable, "the ledger is unavailable: \(error)"))
    }

    /// A read of one tenant's shard, without a task: `read` runs now, `fill` puts its value into
    /// the reply, which is finished once what it read is durable. A read logs nothing but the rare
    /// tick when something fell due (the writer thread syncs it): it never needs the caller's sync.
    private func read<T: Sendable>(
        _ tenant: TenantID, callID: UInt64, _ traced: TracedCall?, _ finish: @escaping @Sendable (WireResponse?) -> Void,
        _ read: (LedgerState) throws -> T, fill: @escaping @Sendable (inout WireResponse, T) -> Void
    ) {
        let shard: LedgerShard
        do {
            shard = try engine.route(tenant)
        } catch {
            return finish(WireResponse(callID: callID, error: error))
        }
        guard admit() else { return finish(overloaded(callID: callID)) }
        shard.submitRead(read, trace: traced?.shard) { [self] outcome in
            finishAdmitted()
            switch outcome {
            case .success(let (value, lsn)):
                var response = WireResponse.with {
                    $0.callID = callID
                    $0.lsn = lsn
                }
                fill(&response, value)
                finish(response)
            case .failure(let error):
                finish(failure(error, callID: callID))
            }
        }
    }

    /// A rare call that waits on every shard: admitted, then run in a task.
    private func inTask(
        callID: UInt64, _ finish: @escaping @Sendable (WireResponse?) -> Void,
        _ body: @escaping @Sendable () async throws -> WireResponse
    ) {
        guard admit() else { return finish(overloaded(callID: callID)) }
        Task { [self] in
            let response: WireResponse
            do {
                response = try await body()
            } catch {
                response = failure(error, callID: callID)
            }
            finishAdmitted()
            finish(response)
        }
    }

    private func snapshotAll(callID: UInt64, principal: Principal) async throws -> WireResponse {
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
    }

    private func backup(to directory: String, callID: UInt64, principal: Principal) async throws -> WireResponse {
        let report: LedgerEngine.BackupReport
        do {
            report = try await engine.backup(to: directory)
        } catch let error as LedgerError {
            throw error
        } catch {
            // The ledger itself is fine: a backup that cannot be written fails alone.
            logger.error("backup failed", metadata: ["backup.directory": "\(directory)", "error": "\(error)"])
            throw LedgerError(.unavailable, "the backup to \(directory) failed: \(error)")
        }
        logger.notice(
            "backup taken",
            metadata: [
                "backup.directory": "\(report.directory)", "backup.last_lsns": "\(report.shards.map(\.lastLSN))",
                "principal": "\(principal.name)",
            ])
        return WireResponse.with {
            $0.callID = callID
            $0.adminBackup = .with {
                $0.directory = report.directory
                $0.tenants = UInt64(report.tenants)
                $0.bytes = report.shards.reduce(0) { $0 + $1.bytes }
                $0.filesLinked = UInt32(report.shards.reduce(0) { $0 + $1.filesLinked })
                $0.filesCopied = UInt32(report.shards.reduce(0) { $0 + $1.filesCopied })
                $0.shards = report.shards.enumerated().map { index, shard in
                    .with {
                        $0.shard = UInt32(index)
                        $0.snapshotLsn = shard.snapshotLSN
                        $0.lastLsn = shard.lastLSN
                    }
                }
            }
        }
    }

    /// A page of every shard's tenants: each shard's first `limit` after the cursor, merged.
    private func listTenants(after: TenantID?, limit: Int, callID: UInt64) async throws -> WireResponse {
        var all: [TenantID] = []
        var more = false
        for shard in engine.shards {
            let page = try await shard.read { state in try state.tenantIDs(after: after, limit: limit) }
            all += page.tenants
            more = more || page.nextAfter != nil
        }
        all.sort()
        let page = Array(all.prefix(limit))
        // More when a shard had more, or the shards together had more than one page.
        let next = (more || all.count > limit) ? page.last : nil
        return WireResponse.with {
            $0.callID = callID
            $0.listTenants = .with {
                $0.tenants = page.map(\.rawValue)
                $0.nextAfterTenant = next?.rawValue ?? ""
            }
        }
    }

    private func auditAll(callID: UInt64) async throws -> WireResponse {
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

    /// Cluster mode's placement as this node knows it; in local mode only the shard count.
    private func shardMap(callID: UInt64) -> WireResponse {
        WireResponse.with {
            $0.callID = callID
            $0.shardMap = .with { map in
                map.shardCount = UInt32(engine.shardCount)
                guard let placement = engine.placement else { return }
                map.cluster = true
                map.shards = placement.map.map { owner in
                    .with {
                        $0.shard = UInt32(owner.shard)
                        $0.address = owner.address
                        $0.epoch = owner.epoch
                        $0.here = owner.here
                    }
                }
            }
        }
    }

    private func health(callID: UInt64, principal: Principal) -> WireResponse {
        let isDraining = draining.withLock { $0 }
        return WireResponse.with {
            $0.callID = callID
            $0.health = .with {
                $0.status = isDraining ? "draining" : "serving"
                $0.serverVersion = serverVersion
                $0.shardCount = UInt32(engine.shardCount)
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
