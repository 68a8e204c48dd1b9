import GRPCCore
import GRPCProtobuf
import LedgerCore
import LedgerServer
import LedgerWire
import SwiftProtobuf
import Synchronization

/// `tokenledger.v1.Ledger` (proto/tokenledger/v1/ledger_service.proto): each RPC becomes the framed
/// protocol's `Request`, decoded by the same `LedgerCall(_:)` and served by the same
/// `LedgerService.serve`, so authorization, limits, idempotency and durability are the framed
/// port's. Only the envelope differs: `replayed` and `lsn` go out as response headers, errors as
/// gRPC statuses with google.rpc.Status details (docs/grpc.md).
final class LedgerGRPCService: Tokenledger_V1_Ledger.ServiceProtocol {
    let service: LedgerService
    let peers: GRPCPeers

    init(service: LedgerService, peers: GRPCPeers) {
        self.service = service
        self.peers = peers
    }

    // MARK: The calls

    func reserve(request: ServerRequest<Tokenledger_V1_ReserveRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_ReserveResult>
    { try await call(request, context, { $0.reserve = $1 }, \.reserve) }

    func charge(request: ServerRequest<Tokenledger_V1_ChargeRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_ChargeResult>
    { try await call(request, context, { $0.charge = $1 }, \.charge) }

    func extendHold(request: ServerRequest<Tokenledger_V1_ExtendHoldRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_ExtendHoldResult>
    { try await call(request, context, { $0.extendHold = $1 }, \.extendHold) }

    func increaseHold(request: ServerRequest<Tokenledger_V1_IncreaseHoldRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_IncreaseHoldResult>
    { try await call(request, context, { $0.increaseHold = $1 }, \.increaseHold) }

    func commit(request: ServerRequest<Tokenledger_V1_CommitRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_CommitResult>
    { try await call(request, context, { $0.commit = $1 }, \.commit) }

    func release(request: ServerRequest<Tokenledger_V1_ReleaseRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_ReleaseResult>
    { try await call(request, context, { $0.release = $1 }, \.release) }

    func refund(request: ServerRequest<Tokenledger_V1_RefundRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_RefundResult>
    { try await call(request, context, { $0.refund = $1 }, \.refund) }

    func estimate(request: ServerRequest<Tokenledger_V1_EstimateRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_EstimateResult>
    { try await call(request, context, { $0.estimate = $1 }, \.estimate) }

    func balance(request: ServerRequest<Tokenledger_V1_BalanceRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_BalanceResult>
    { try await call(request, context, { $0.balance = $1 }, \.balance) }

    func createTenant(request: ServerRequest<Tokenledger_V1_CreateTenantRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_CreateTenantResult>
    { try await call(request, context, { $0.createTenant = $1 }, \.createTenant) }

    func configureTenant(request: ServerRequest<Tokenledger_V1_ConfigureTenantRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_ConfigureTenantResult>
    { try await call(request, context, { $0.configureTenant = $1 }, \.configureTenant) }

    func setMember(request: ServerRequest<Tokenledger_V1_SetMemberRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_SetMemberResult>
    { try await call(request, context, { $0.setMember = $1 }, \.setMember) }

    func grant(request: ServerRequest<Tokenledger_V1_GrantRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_GrantResult>
    { try await call(request, context, { $0.grant = $1 }, \.grant) }

    func purchase(request: ServerRequest<Tokenledger_V1_PurchaseRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_PurchaseResult>
    { try await call(request, context, { $0.purchase = $1 }, \.purchase) }

    func voidGrant(request: ServerRequest<Tokenledger_V1_VoidGrantRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_VoidGrantResult>
    { try await call(request, context, { $0.voidGrant = $1 }, \.voidGrant) }

    func refundPurchase(request: ServerRequest<Tokenledger_V1_RefundPurchaseRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_RefundPurchaseResult>
    { try await call(request, context, { $0.refundPurchase = $1 }, \.refundPurchase) }

    func history(request: ServerRequest<Tokenledger_V1_HistoryRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_HistoryResult>
    { try await call(request, context, { $0.history = $1 }, \.history) }

    func listHolds(request: ServerRequest<Tokenledger_V1_ListHoldsRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_ListHoldsResult>
    { try await call(request, context, { $0.listHolds = $1 }, \.listHolds) }

    func listGrants(request: ServerRequest<Tokenledger_V1_ListGrantsRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_ListGrantsResult>
    { try await call(request, context, { $0.listGrants = $1 }, \.listGrants) }

    func listTenants(request: ServerRequest<Tokenledger_V1_ListTenantsRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_ListTenantsResult>
    { try await call(request, context, { $0.listTenants = $1 }, \.listTenants) }

    func catalog(request: ServerRequest<Tokenledger_V1_CatalogRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_CatalogResult>
    { try await call(request, context, { $0.catalog = $1 }, \.catalog) }

    func installCatalog(request: ServerRequest<Tokenledger_V1_InstallCatalogRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_InstallCatalogResult>
    { try await call(request, context, { $0.installCatalog = $1 }, \.installCatalog) }

    func health(request: ServerRequest<Tokenledger_V1_HealthRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_HealthResult>
    { try await call(request, context, { $0.health = $1 }, \.health) }

    func shardMap(request: ServerRequest<Tokenledger_V1_ShardMapRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_ShardMapResult>
    { try await call(request, context, { $0.shardMap = $1 }, \.shardMap) }

    func adminSnapshot(request: ServerRequest<Tokenledger_V1_AdminSnapshotRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_AdminSnapshotResult>
    { try await call(request, context, { $0.adminSnapshot = $1 }, \.adminSnapshot) }

    func adminAudit(request: ServerRequest<Tokenledger_V1_AdminAuditRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_AdminAuditResult>
    { try await call(request, context, { $0.adminAudit = $1 }, \.adminAudit) }

    func adminBackup(request: ServerRequest<Tokenledger_V1_AdminBackupRequest>, context: ServerContext) async throws
        -> ServerResponse<Tokenledger_V1_AdminBackupResult>
    { try await call(request, context, { $0.adminBackup = $1 }, \.adminBackup) }

    // MARK: One call

    /// The connection's principal; an RPC on a connection whose certificate names none is refused
    /// as on the framed port.
    private func peer(_ context: ServerContext) throws -> GRPCPeers.Peer {
        guard let peer = peers.peer(context.remotePeer) else {
            throw RPCError(code: .unavailable, message: "the connection is closing")
        }
        guard peer.principal != nil else {
            throw GRPCErrors.status(LedgerError(.unauthenticated, "the client certificate's subject is not a principal of this server"))
        }
        return peer
    }

    /// The framed request this RPC stands for, decoded as the framed port decodes it
    /// (`LedgerService.decode`); a refusal is counted in the metrics, as there, and becomes the status.
    private func decode(_ fill: (inout WireRequest) -> Void) throws -> LedgerCall {
        var wire = WireRequest()
        fill(&wire)
        do {
            return try LedgerService.decode(wire)
        } catch {
            service.metrics.record(rpc: wire.rpcName, code: error.code.rawValue, duration: .zero)
            throw GRPCErrors.status(error)
        }
    }

    /// The W3C `traceparent` request header, or "".
    private static func traceParent(_ metadata: Metadata) -> String {
        metadata[stringValues: "traceparent"].first(where: { _ in true }) ?? ""
    }

    /// Decodes `request` (`decode`), serves it, and answers with the result `field` reads from the reply, or the error's status.
    private func call<Input: SwiftProtobuf.Message, Output: SwiftProtobuf.Message>(
        _ request: ServerRequest<Input>, _ context: ServerContext, _ set: (inout WireRequest, Input) -> Void,
        _ field: KeyPath<WireResponse, Output>
    ) async throws -> ServerResponse<Output> {
        let peer = try peer(context)
        let call = try decode { set(&$0, request.message) }
        let callID = peers.nextCallID()
        let traceParent = Self.traceParent(request.metadata)
        let response: WireResponse = await withCheckedContinuation { continuation in
            service.serve(
                call, callID: callID, principal: peer.principal!, watches: peer.watches, syncBy: .logWriter,
                traceParent: traceParent,
                replies: LedgerService.Replies(
                    finish: { reply in continuation.resume(returning: reply?.response ?? WireResponse()) },
                    send: { _ in }))
        }
        if case .error(let error)? = response.result { throw GRPCErrors.status(error) }
        var metadata = Metadata()
        if response.replayed { metadata.addString("true", forKey: "tokenledger-replayed") }
        if response.lsn != 0 { metadata.addString("\(response.lsn)", forKey: "tokenledger-lsn") }
        return ServerResponse(message: response[keyPath: field], metadata: metadata)
    }

    // MARK: Watch

    func watch(request: ServerRequest<Tokenledger_V1_WatchRequest>, context: ServerContext) async throws
        -> StreamingServerResponse<Tokenledger_V1_WatchUpdate>
    {
        let peer = try peer(context)
        let call = try decode { $0.watch = request.message }
        let principal = peer.principal!
        // Refused before the stream starts (authorization), so the status carries no messages.
        do {
            try principal.authorize(call)
        } catch {
            throw GRPCErrors.status(error)
        }
        let traceParent = Self.traceParent(request.metadata)
        return StreamingServerResponse { [service, peers] writer in
            let callID = peers.nextCallID()
            let outcome = WatchOutcome()
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    service.serve(
                        call, callID: callID, principal: principal, watches: peer.watches, syncBy: .logWriter,
                        traceParent: traceParent,
                        replies: LedgerService.Replies(
                            finish: { _ in continuation.resume() },
                            send: { response in
                                if case .error(let error)? = response.result {
                                    outcome.fail(error)
                                    return
                                }
                                if case .event(let event)? = response.watch.update { outcome.sent(event.id) }
                                try await writer.write(response.watch)
                            }))
                }
            } onCancel: {
                // The client cancelled: the watch ends as an unwatch would.
                _ = peer.watches.stop(callID, reason: .unwatched)
            }
            if let error = outcome.error { throw GRPCErrors.status(error) }
            if peers.isDraining {
                throw GRPCErrors.status(
                    LedgerError(
                        .unavailable,
                        "the server is draining; resume after event \(outcome.lastEventID.map(String.init) ?? "none") on another server"))
            }
            return [:]
        }
    }
}

/// What a watch's stream ended with, as its sends saw it.
private final class WatchOutcome: Sendable {
    private struct State {
        var error: LedgerError?
        var lastEventID: UInt64?
    }
    private let state = Mutex(State())
    func fail(_ error: WireError) { state.withLock { $0.error = LedgerError(error) } }
    func sent(_ id: UInt64) { state.withLock { $0.lastEventID = id } }
    var error: LedgerError? { state.withLock { $0.error } }
    var lastEventID: UInt64? { state.withLock { $0.lastEventID } }
}
