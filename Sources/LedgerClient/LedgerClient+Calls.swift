import Foundation
import LedgerCore
import LedgerWire

// One method per call. Every change takes a `requestID` (default: a fresh UUID): pass your own
// to make a retry of the same business action safe across processes and restarts.

extension LedgerClient {
    /// A fresh request id.
    public static func newRequestID() -> RequestID { RequestID(UUID().uuidString.lowercased()) }

    private func result<T>(
        _ call: LedgerCall, _ extract: (WireResponse.OneOf_Result) -> T?
    ) async throws(LedgerClientError) -> (T, replayed: Bool) {
        let response = try await self.call(call)
        guard let result = response.result, let value = extract(result) else {
            throw .protocolViolation("the reply to call \(response.callID) has the wrong result type")
        }
        return (value, response.replayed)
    }

    // MARK: Metering

    /// Reserves `tokens` under hold id `hold`.
    public func reserve(
        tenant: TenantID, hold: HoldID, tokens: Tokens, member: MemberID? = nil, ttl: Duration? = nil,
        requestID: RequestID = newRequestID()
    ) async throws(LedgerClientError) -> Tokenledger_V1_ReserveResult {
        try await reserve(tenant, ReserveRequest(hold: hold, member: member, amount: .tokens(tokens), ttl: ttl), requestID)
    }

    /// Reserves what the catalog prices `items` at.
    public func reserve(
        tenant: TenantID, hold: HoldID, items: [PricedItem], member: MemberID? = nil, ttl: Duration? = nil,
        requestID: RequestID = newRequestID()
    ) async throws(LedgerClientError) -> Tokenledger_V1_ReserveResult {
        try await reserve(tenant, ReserveRequest(hold: hold, member: member, amount: .items(items), ttl: ttl), requestID)
    }

    /// Reserves an amount given either way (`.tokens` or `.items`).
    public func reserve(
        tenant: TenantID, hold: HoldID, amount: ReserveRequest.Amount, member: MemberID? = nil, ttl: Duration? = nil,
        requestID: RequestID = newRequestID()
    ) async throws(LedgerClientError) -> Tokenledger_V1_ReserveResult {
        try await reserve(tenant, ReserveRequest(hold: hold, member: member, amount: amount, ttl: ttl), requestID)
    }

    private func reserve(_ tenant: TenantID, _ request: ReserveRequest, _ requestID: RequestID)
        async throws(LedgerClientError) -> Tokenledger_V1_ReserveResult
    {
        try await result(.command(.reserve(tenant, request), requestID)) {
            if case .reserve(let value) = $0 { return value } else { return nil }
        }.0
    }

    /// Spends `tokens` at once under id `hold` (budget, plan and balance checked as for a reserve,
    /// no hold left open); refundable later by that id.
    public func charge(
        tenant: TenantID, hold: HoldID, tokens: Tokens, member: MemberID? = nil, requestID: RequestID = newRequestID()
    ) async throws(LedgerClientError) -> Tokenledger_V1_ChargeResult {
        try await charge(tenant, ReserveRequest(hold: hold, member: member, amount: .tokens(tokens), ttl: nil), requestID)
    }

    /// Spends what the catalog prices `items` at, at once.
    public func charge(
        tenant: TenantID, hold: HoldID, items: [PricedItem], member: MemberID? = nil, requestID: RequestID = newRequestID()
    ) async throws(LedgerClientError) -> Tokenledger_V1_ChargeResult {
        try await charge(tenant, ReserveRequest(hold: hold, member: member, amount: .items(items), ttl: nil), requestID)
    }

    /// Spends an amount given either way (`.tokens` or `.items`), at once.
    public func charge(
        tenant: TenantID, hold: HoldID, amount: ReserveRequest.Amount, member: MemberID? = nil, requestID: RequestID = newRequestID()
    ) async throws(LedgerClientError) -> Tokenledger_V1_ChargeResult {
        try await charge(tenant, ReserveRequest(hold: hold, member: member, amount: amount, ttl: nil), requestID)
    }

    private func charge(_ tenant: TenantID, _ request: ReserveRequest, _ requestID: RequestID)
        async throws(LedgerClientError) -> Tokenledger_V1_ChargeResult
    {
        try await result(.command(.charge(tenant, request), requestID)) {
            if case .charge(let value) = $0 { return value } else { return nil }
        }.0
    }

    /// Gives an open hold a new expiry `ttl` from now (1 s to 7 days).
    public func extendHold(tenant: TenantID, hold: HoldID, ttl: Duration, requestID: RequestID = newRequestID())
        async throws(LedgerClientError) -> Tokenledger_V1_ExtendHoldResult
    {
        try await result(.command(.extendHold(tenant, hold, ttl: ttl), requestID)) {
            if case .extendHold(let value) = $0 { return value } else { return nil }
        }.0
    }

    /// Holds `tokens` more on an open hold, with a reserve's checks (refused with the binding
    /// limit's error, the hold unchanged).
    public func increaseHold(tenant: TenantID, hold: HoldID, tokens: Tokens, requestID: RequestID = newRequestID())
        async throws(LedgerClientError) -> Tokenledger_V1_IncreaseHoldResult
    {
        try await result(.command(.increaseHold(tenant, hold, amount: tokens), requestID)) {
            if case .increaseHold(let value) = $0 { return value } else { return nil }
        }.0
    }

    /// A page of the tenant's open holds (of `member`), in id order, after hold id `after`.
    public func listHolds(tenant: TenantID, member: MemberID? = nil, after: HoldID? = nil, limit: Int = Limits.listPageDefault)
        async throws(LedgerClientError) -> Tokenledger_V1_ListHoldsResult
    {
        try await result(.listHolds(tenant, member: member, after: after, limit: limit)) {
            if case .listHolds(let value) = $0 { return value } else { return nil }
        }.0
    }

    /// A page of the tenant's grants (in `state`), in id order, after grant id `after`.
    public func listGrants(
        tenant: TenantID, state: GrantState? = nil, after: GrantID = GrantID(0), limit: Int = Limits.listPageDefault
    ) async throws(LedgerClientError) -> Tokenledger_V1_ListGrantsResult {
        try await result(.listGrants(tenant, state: state, after: after, limit: limit)) {
            if case .listGrants(let value) = $0 { return value } else { return nil }
        }.0
    }

    /// A page of every tenant, in id order, after tenant `after` (admins only).
    public func listTenants(after: TenantID? = nil, limit: Int = Limits.listPageDefault)
        async throws(LedgerClientError) -> Tokenledger_V1_ListTenantsResult
    {
        try await result(.listTenants(after: after, limit: limit)) {
            if case .listTenants(let value) = $0 { return value } else { return nil }
        }.0
    }

    /// Captures `amount` of the hold; a final commit (the default) releases the rest.
    public func commit(
        tenant: TenantID, hold: HoldID, amount: Tokens, final: Bool = true, requestID: RequestID = newRequestID()
    ) async throws(LedgerClientError) -> Tokenledger_V1_CommitResult {
        try await result(.command(.commit(tenant, hold, amount: amount, final: final), requestID)) {
            if case .commit(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func release(tenant: TenantID, hold: HoldID, requestID: RequestID = newRequestID())
        async throws(LedgerClientError) -> Tokenledger_V1_ReleaseResult
    {
        try await result(.command(.release(tenant, hold), requestID)) {
            if case .release(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func refund(tenant: TenantID, hold: HoldID, amount: Tokens, requestID: RequestID = newRequestID())
        async throws(LedgerClientError) -> Tokenledger_V1_RefundResult
    {
        try await result(.command(.refund(tenant, hold, amount: amount), requestID)) {
            if case .refund(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func estimate(tenant: TenantID, member: MemberID? = nil, items: [PricedItem])
        async throws(LedgerClientError) -> Tokenledger_V1_EstimateResult
    {
        try await result(.estimate(tenant, member: member, items: items)) {
            if case .estimate(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func balance(tenant: TenantID, member: MemberID? = nil) async throws(LedgerClientError)
        -> Tokenledger_V1_BalanceResult
    {
        try await result(.balance(tenant, member: member)) {
            if case .balance(let value) = $0 { return value } else { return nil }
        }.0
    }

    // MARK: Administration

    public func createTenant(
        _ tenant: TenantID, settings: TenantSettings = TenantSettings(), requestID: RequestID = newRequestID()
    ) async throws(LedgerClientError) -> Tokenledger_V1_CreateTenantResult {
        try await result(.command(.createTenant(tenant, settings), requestID)) {
            if case .createTenant(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func configureTenant(
        _ tenant: TenantID, change: TenantSettingsChange, requestID: RequestID = newRequestID()
    ) async throws(LedgerClientError) -> Tokenledger_V1_ConfigureTenantResult {
        try await result(.command(.configureTenant(tenant, change), requestID)) {
            if case .configureTenant(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func setMember(
        tenant: TenantID, member: MemberID, settings: MemberSettings, requestID: RequestID = newRequestID()
    ) async throws(LedgerClientError) -> Tokenledger_V1_SetMemberResult {
        try await result(.command(.setMember(tenant, member, settings), requestID)) {
            if case .setMember(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func grant(tenant: TenantID, _ request: GrantRequest, requestID: RequestID = newRequestID())
        async throws(LedgerClientError) -> Tokenledger_V1_GrantResult
    {
        try await result(.command(.grant(tenant, request), requestID)) {
            if case .grant(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func purchase(tenant: TenantID, moneyMinor: UInt64, note: String = "", requestID: RequestID = newRequestID())
        async throws(LedgerClientError) -> Tokenledger_V1_PurchaseResult
    {
        try await result(.command(.purchase(tenant, moneyMinor: moneyMinor, note: note), requestID)) {
            if case .purchase(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func voidGrant(tenant: TenantID, grant: GrantID, requestID: RequestID = newRequestID())
        async throws(LedgerClientError) -> Tokenledger_V1_VoidGrantResult
    {
        try await result(.command(.voidGrant(tenant, grant), requestID)) {
            if case .voidGrant(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func refundPurchase(tenant: TenantID, grant: GrantID, requestID: RequestID = newRequestID())
        async throws(LedgerClientError) -> Tokenledger_V1_RefundPurchaseResult
    {
        try await result(.command(.refundPurchase(tenant, grant), requestID)) {
            if case .refundPurchase(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func history(tenant: TenantID, filter: HistoryFilter = HistoryFilter()) async throws(LedgerClientError)
        -> Tokenledger_V1_HistoryResult
    {
        try await result(.history(tenant, filter)) {
            if case .history(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func catalog() async throws(LedgerClientError) -> Tokenledger_V1_CatalogResult {
        try await result(.catalog) {
            if case .catalog(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func installCatalog(_ catalog: PriceCatalog) async throws(LedgerClientError)
        -> Tokenledger_V1_InstallCatalogResult
    {
        try await result(.installCatalog(catalog)) {
            if case .installCatalog(let value) = $0 { return value } else { return nil }
        }.0
    }

    /// Snapshots every shard now (admins only); the positions each snapshot covers.
    public func adminSnapshot() async throws(LedgerClientError) -> Tokenledger_V1_AdminSnapshotResult {
        try await result(.adminSnapshot) {
            if case .adminSnapshot(let value) = $0 { return value } else { return nil }
        }.0
    }

    /// Runs the conservation audit on every shard (admins only).
    public func adminAudit() async throws(LedgerClientError) -> Tokenledger_V1_AdminAuditResult {
        try await result(.adminAudit) {
            if case .adminAudit(let value) = $0 { return value } else { return nil }
        }.0
    }

    /// Takes a consistent online backup into `directory` on the server's machine (admins only).
    public func adminBackup(directory: String) async throws(LedgerClientError) -> Tokenledger_V1_AdminBackupResult {
        try await result(.adminBackup(directory: directory)) {
            if case .adminBackup(let value) = $0 { return value } else { return nil }
        }.0
    }

    public func health() async throws(LedgerClientError) -> Tokenledger_V1_HealthResult {
        try await result(.health) {
            if case .health(let value) = $0 { return value } else { return nil }
        }.0
    }

    /// Cluster mode's placement as the answering node knows it: which node serves each shard
    /// (docs/cluster.md). In the embedded mode `cluster` is false and `shards` empty.
    /// The answer also becomes this client's map, so that each call then goes to its tenant's
    /// node at once.
    public func shardMap() async throws(LedgerClientError) -> Tokenledger_V1_ShardMapResult {
        let map = try await result(.shardMap) {
            if case .shardMap(let value) = $0 { return value } else { return nil }
        }.0
        install(map)
        return map
    }
}
