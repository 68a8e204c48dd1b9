import LedgerCore

/// The wire's envelopes and messages, under names that read well outside this module. The
/// generated types themselves live in Generated/ and are never edited by hand.
public typealias WireRequest = Tokenledger_V1_Request
public typealias WireResponse = Tokenledger_V1_Response
public typealias WireError = Tokenledger_V1_Error
public typealias WireErrorCode = Tokenledger_V1_ErrorCode

/// A decoded request: what the server is asked to do, in LedgerCore's terms.
public enum LedgerCall: Hashable, Sendable {
    /// A change to one tenant, under its idempotency key.
    case command(CommandBody, RequestID)
    case balance(TenantID, member: MemberID?)
    case estimate(TenantID, member: MemberID?, items: [PricedItem])
    case history(TenantID, HistoryFilter)
    /// Open holds of the tenant (of one member), a page after a hold id.
    case listHolds(TenantID, member: MemberID?, after: HoldID?, limit: Int)
    /// Grants of the tenant (in one state), a page after a grant id (0: from the first).
    case listGrants(TenantID, state: GrantState?, after: GrantID, limit: Int)
    /// Every tenant (admins), a page after a tenant id.
    case listTenants(after: TenantID?, limit: Int)
    case catalog
    case installCatalog(PriceCatalog)
    case health
    /// Cluster mode's placement: which node serves each shard.
    case shardMap
    /// Snapshot every shard now.
    case adminSnapshot
    /// Run the conservation audit on every shard.
    case adminAudit
    /// Take a consistent online backup into a new directory on the server's machine.
    case adminBackup(directory: String)
    /// Stream the tenant's events, from now (nil) or after an event id.
    case watch(TenantID, after: UInt64?)
    /// End the watch started by the call with this id on the same connection.
    case unwatch(watchCallID: UInt64)

    /// What a principal needs to make the call (see docs/protocol.md, "Access").
    public enum Access: Sendable, Hashable {
        /// Reserve, commit, release, refund, estimate, balance, history: the tenant's metering.
        case metering(TenantID)
        /// Creating and configuring tenants and members, grants, purchases, catalogs: admins only.
        case admin
        /// Health and the catalog: any authenticated principal.
        case anyone
    }

    public var access: Access {
        switch self {
        case .command(let body, _):
            switch body {
            case .reserve(let tenant, _), .charge(let tenant, _), .commit(let tenant, _, _, _), .release(let tenant, _),
                .refund(let tenant, _, _), .extendHold(let tenant, _, _), .increaseHold(let tenant, _, _):
                return .metering(tenant)
            default:
                return .admin
            }
        case .balance(let tenant, _), .estimate(let tenant, _, _), .history(let tenant, _), .watch(let tenant, _),
            .listHolds(let tenant, _, _, _), .listGrants(let tenant, _, _, _):
            return .metering(tenant)
        case .installCatalog, .adminSnapshot, .adminAudit, .adminBackup, .listTenants:
            return .admin
        case .catalog, .health, .shardMap, .unwatch:
            return .anyone
        }
    }

    /// The tenant the call acts on, if any.
    public var tenant: TenantID? {
        switch self {
        case .command(let body, _): return body.tenant
        case .balance(let tenant, _), .estimate(let tenant, _, _), .history(let tenant, _), .watch(let tenant, _),
            .listHolds(let tenant, _, _, _), .listGrants(let tenant, _, _, _):
            return tenant
        case .catalog, .installCatalog, .health, .shardMap, .adminSnapshot, .adminAudit, .adminBackup, .unwatch, .listTenants: return nil
        }
    }

    /// Decodes a request's call. Every structural fault is `invalid_argument` naming the field;
    /// business rules (amounts, limits, state) are LedgerCore's to check.
    public init(_ request: WireRequest) throws(LedgerError) {
        guard let call = request.call else { throw LedgerError(.invalidArgument, "the request names no call") }
        try self.init(call)
    }

    /// Decodes a request's call (the envelope's oneof), as the initializer from the envelope does.
    public init(_ call: WireRequest.OneOf_Call) throws(LedgerError) { self = try Self.of(call) }

    /// The initializer's work, as a static function: an initializer takes its argument owned, so
    /// a caller still holding the call (the framed port's decoder) copied all of it to pass it.
    public static func of(_ call: WireRequest.OneOf_Call) throws(LedgerError) -> LedgerCall {
        let decoded: LedgerCall
        switch call {
        case .reserve(let message): decoded = try Self.reserve(message)
        case .charge(let message): decoded = try Self.charge(message)
        case .extendHold(let message):
            decoded = .command(
                .extendHold(try tenantID(message.tenant), try identifier(message.holdID, "hold_id"), ttl: try Self.ttl(message.ttlMs)),
                try requestID(message.requestID))
        case .increaseHold(let message):
            decoded = .command(
                .increaseHold(try tenantID(message.tenant), try identifier(message.holdID, "hold_id"), amount: message.tokens),
                try requestID(message.requestID))
        case .commit(let message):
            decoded = .command(
                .commit(
                    try tenantID(message.tenant), try identifier(message.holdID, "hold_id"), amount: message.amount,
                    final: !message.partial), try requestID(message.requestID))
        case .release(let message):
            decoded = .command(
                .release(try tenantID(message.tenant), try identifier(message.holdID, "hold_id")),
                try requestID(message.requestID))
        case .refund(let message):
            decoded = .command(
                .refund(try tenantID(message.tenant), try identifier(message.holdID, "hold_id"), amount: message.amount),
                try requestID(message.requestID))
        case .estimate(let message):
            decoded = .estimate(
                try tenantID(message.tenant), member: try optionalMember(message.member),
                items: try pricedItems(message.items))
        case .balance(let message):
            decoded = .balance(try tenantID(message.tenant), member: try optionalMember(message.member))
        case .createTenant(let message):
            decoded = .command(
                .createTenant(try tenantID(message.tenant), try tenantSettings(message.settings)),
                try requestID(message.requestID))
        case .configureTenant(let message): decoded = try Self.configureTenant(message)
        case .setMember(let message):
            var settings = MemberSettings()
            if message.hasBudget { settings.budget = try budget(message.budget) }
            if case .lowBalanceThreshold(let threshold)? = message.threshold { settings.lowBalanceThreshold = threshold }
            settings.lowBalanceThresholds = try thresholds(message.lowBalanceThresholds, "low_balance_thresholds")
            decoded = .command(
                .setMember(try tenantID(message.tenant), try identifier(message.member, "member"), settings),
                try requestID(message.requestID))
        case .grant(let message): decoded = try Self.grant(message)
        case .purchase(let message):
            try checkNote(message.note)
            decoded = .command(
                .purchase(try tenantID(message.tenant), moneyMinor: message.moneyMinor, note: message.note),
                try requestID(message.requestID))
        case .voidGrant(let message):
            decoded = .command(
                .voidGrant(try tenantID(message.tenant), try grantID(message.grantID)), try requestID(message.requestID))
        case .refundPurchase(let message):
            decoded = .command(
                .refundPurchase(try tenantID(message.tenant), try grantID(message.grantID)),
                try requestID(message.requestID))
        case .history(let message): decoded = try Self.history(message)
        case .listHolds(let message):
            decoded = .listHolds(
                try tenantID(message.tenant), member: try optionalMember(message.member),
                after: message.afterHoldID.isEmpty ? nil : try identifier(message.afterHoldID, "after_hold_id"),
                limit: try Self.pageLimit(message.limit))
        case .listGrants(let message):
            var state: GrantState? = nil
            if message.state != .unspecified {
                guard let known = message.state.domain else { throw LedgerError(.invalidArgument, "state: unknown grant state") }
                state = known
            }
            decoded = .listGrants(
                try tenantID(message.tenant), state: state, after: GrantID(message.afterGrantID), limit: try Self.pageLimit(message.limit))
        case .listTenants(let message):
            decoded = .listTenants(
                after: message.afterTenant.isEmpty ? nil : try tenantID(message.afterTenant), limit: try Self.pageLimit(message.limit))
        case .catalog: decoded = .catalog
        case .installCatalog(let message):
            guard message.json.utf8.count <= Limits.catalogBytesMax else {
                throw LedgerError(
                    .limitExceeded, "the catalog is larger than \(Limits.catalogBytesMax) bytes",
                    details: .limit(name: "catalog_bytes_max", value: UInt64(Limits.catalogBytesMax)))
            }
            decoded = .installCatalog(try PriceCatalog(json: Array(message.json.utf8)))
        case .health: decoded = .health
        case .shardMap: decoded = .shardMap
        case .adminSnapshot: decoded = .adminSnapshot
        case .adminAudit: decoded = .adminAudit
        case .adminBackup(let message):
            let directory = message.directory
            guard directory.hasPrefix("/"), directory.utf8.count <= 4_096, !directory.contains("\0") else {
                throw LedgerError(.invalidArgument, "directory: give an absolute path of at most 4096 bytes on the server's machine")
            }
            decoded = .adminBackup(directory: directory)
        case .watch(let message):
            switch message.resume {
            case .afterEventID(let id)?: decoded = .watch(try tenantID(message.tenant), after: id)
            case nil: decoded = .watch(try tenantID(message.tenant), after: nil)
            }
        case .unwatch(let message):
            guard message.watchCallID != 0 else { throw LedgerError(.invalidArgument, "watch_call_id: name the watch's call id") }
            decoded = .unwatch(watchCallID: message.watchCallID)
        }
        return decoded
    }

    private static func reserve(_ message: Tokenledger_V1_ReserveRequest) throws(LedgerError) -> LedgerCall {
        let amount: ReserveRequest.Amount
        switch message.amount {
        case .tokens(let tokens)?: amount = .tokens(tokens)
        case .items(let items)?: amount = .items(try pricedItems(items.items))
        case nil: throw LedgerError(.invalidArgument, "amount: give tokens or items")
        }
        let ttl = message.ttlMs == 0 ? nil : try Self.ttl(message.ttlMs)
        let request = ReserveRequest(
            hold: try identifier(message.holdID, "hold_id"), member: try optionalMember(message.member), amount: amount,
            ttl: ttl)
        return .command(.reserve(try tenantID(message.tenant), request), try requestID(message.requestID))
    }

    /// `ttl_ms` as a duration. Far above the longest TTL, so that the conversion cannot overflow; the
    /// core checks the range.
    private static func ttl(_ milliseconds: UInt64) throws(LedgerError) -> Duration {
        guard milliseconds <= 1 << 50 else { throw LedgerError(.invalidArgument, "ttl_ms \(milliseconds) is out of range") }
        return .milliseconds(Int64(milliseconds))
    }

    private static func charge(_ message: Tokenledger_V1_ChargeRequest) throws(LedgerError) -> LedgerCall {
        let amount: ReserveRequest.Amount
        switch message.amount {
        case .tokens(let tokens)?: amount = .tokens(tokens)
        case .items(let items)?: amount = .items(try pricedItems(items.items))
        case nil: throw LedgerError(.invalidArgument, "amount: give tokens or items")
        }
        let request = ReserveRequest(
            hold: try identifier(message.holdID, "hold_id"), member: try optionalMember(message.member), amount: amount, ttl: nil)
        return .command(.charge(try tenantID(message.tenant), request), try requestID(message.requestID))
    }

    private static func configureTenant(_ message: Tokenledger_V1_ConfigureTenantRequest) throws(LedgerError)
        -> LedgerCall
    {
        var change = TenantSettingsChange()
        switch message.planChange {
        case .setPlan(let plan)?: change.plan = .set(try LedgerWire.plan(plan))
        case .removePlan(let remove)?:
            guard remove else { throw LedgerError(.invalidArgument, "remove_plan: set it to true or leave it out") }
            change.plan = .remove
        case nil: break
        }
        if message.hasPurchaseRules { change.purchaseRules = purchaseRules(message.purchaseRules) }
        if case .overdraftLimit(let limit)? = message.overdraft { change.overdraftLimit = limit }
        if case .lowBalanceThreshold(let threshold)? = message.threshold { change.lowBalanceThreshold = threshold }
        if message.hasLowBalanceThresholds {
            change.lowBalanceThresholds = try thresholds(message.lowBalanceThresholds.thresholds, "low_balance_thresholds")
        }
        if case .movementEvents(let on)? = message.movementEventsOption { change.movementEvents = on }
        return .command(.configureTenant(try tenantID(message.tenant), change), try requestID(message.requestID))
    }

    private static func grant(_ message: Tokenledger_V1_GrantRequest) throws(LedgerError) -> LedgerCall {
        try checkNote(message.note)
        var request = GrantRequest(kind: try grantKind(message.kind, "kind"), amount: message.amount, note: message.note)
        if case .effectiveAtMs(let time)? = message.effective { request.effectiveAt = try ledgerTime(time, "effective_at_ms") }
        if case .expiresAtMs(let time)? = message.expiry { request.expiresAt = try ledgerTime(time, "expires_at_ms") }
        if case .priority(let priority)? = message.priorityOption { request.priority = priority }
        request.scope = message.scope
        return .command(.grant(try tenantID(message.tenant), request), try requestID(message.requestID))
    }

    /// A listing's page size: 0 is the default, above the maximum is `limit_exceeded`.
    private static func pageLimit(_ limit: UInt32) throws(LedgerError) -> Int {
        if limit == 0 { return Limits.listPageDefault }
        guard limit <= UInt32(Limits.listPageMax) else {
            throw LedgerError(
                .limitExceeded, "limit \(limit) is above the page size limit of \(Limits.listPageMax)",
                details: .limit(name: "list_page_max", value: UInt64(Limits.listPageMax)))
        }
        return Int(limit)
    }

    private static func history(_ message: Tokenledger_V1_HistoryRequest) throws(LedgerError) -> LedgerCall {
        var filter = HistoryFilter(member: try optionalMember(message.member), afterSequence: message.afterSequence)
        if case .source(let source)? = message.sourceOption { filter.source = try grantKind(source, "source") }
        if !message.kinds.isEmpty {
            var kinds = Set<HistoryKind>()
            for kind in message.kinds { kinds.insert(try historyKind(kind)) }
            filter.kinds = kinds
        }
        if case .sinceMs(let time)? = message.sinceOption { filter.since = try ledgerTime(time, "since_ms") }
        if case .untilMs(let time)? = message.untilOption { filter.until = try ledgerTime(time, "until_ms") }
        if message.limit != 0 {
            guard message.limit <= UInt32(Limits.historyPageMax) else {
                throw LedgerError(
                    .limitExceeded, "limit \(message.limit) is above the page size limit of \(Limits.historyPageMax)",
                    details: .limit(name: "history_page_max", value: UInt64(Limits.historyPageMax)))
            }
            filter.limit = Int(message.limit)
        }
        return .history(try tenantID(message.tenant), filter)
    }
}

// MARK: - Field decoders

private func identifier<ID: LedgerIdentifier>(_ text: String, _ field: String) throws(LedgerError) -> ID {
    try IdentifierRule.check(text, field: field)
    return ID(text)
}

private func tenantID(_ text: String) throws(LedgerError) -> TenantID { try identifier(text, "tenant") }

private func requestID(_ text: String) throws(LedgerError) -> RequestID { try identifier(text, "request_id") }

private func optionalMember(_ text: String) throws(LedgerError) -> MemberID? {
    text.isEmpty ? nil : try identifier(text, "member")
}

private func grantID(_ value: UInt64) throws(LedgerError) -> GrantID {
    guard value != 0 else { throw LedgerError(.invalidArgument, "grant_id: required (grant ids start at 1)") }
    return GrantID(value)
}

private func checkNote(_ note: String) throws(LedgerError) {
    guard note.utf8.count <= Limits.noteLengthMax else {
        throw LedgerError(
            .limitExceeded, "note is longer than \(Limits.noteLengthMax) bytes",
            details: .limit(name: "note_length_max", value: UInt64(Limits.noteLengthMax)))
    }
}

func ledgerTime(_ milliseconds: Int64, _ field: String) throws(LedgerError) -> LedgerTime {
    guard (Limits.timeMin.millisecondsSinceEpoch...Limits.timeMax.millisecondsSinceEpoch).contains(milliseconds) else {
        throw LedgerError(
            .invalidArgument, "\(field): \(milliseconds) is outside \(Limits.timeMin.iso8601) ... \(Limits.timeMax.iso8601)")
    }
    return LedgerTime(millisecondsSinceEpoch: milliseconds)
}

private func pricedItems(_ items: [Tokenledger_V1_PricedItem]) throws(LedgerError) -> [PricedItem] {
    guard items.count <= Limits.estimateItemsMax else {
        throw LedgerError(
            .limitExceeded, "\(items.count) items, above the limit of \(Limits.estimateItemsMax)",
            details: .limit(name: "estimate_items_max", value: UInt64(Limits.estimateItemsMax)))
    }
    return items.map { PricedItem(feature: $0.feature, quantity: $0.quantity) }
}

private func periodUnit(_ unit: Tokenledger_V1_PeriodUnit, _ field: String) throws(LedgerError) -> PeriodUnit {
    guard let domain = unit.domain else {
        throw LedgerError(.invalidArgument, "\(field): a period unit (day, week or month) is required")
    }
    return domain
}

private func period(_ message: Tokenledger_V1_Period, _ field: String) throws(LedgerError) -> PeriodRule {
    let unit = try periodUnit(message.unit, "\(field).unit")
    var anchor: LedgerTime? = nil
    if case .anchorMs(let time)? = message.anchor { anchor = try ledgerTime(time, "\(field).anchor_ms") }
    return PeriodRule(unit: unit, anchor: anchor)
}

private func plan(_ message: Tokenledger_V1_Plan) throws(LedgerError) -> Plan {
    guard message.hasPeriod else { throw LedgerError(.invalidArgument, "plan.period: required") }
    return Plan(
        allowance: message.allowance, period: try period(message.period, "plan.period"),
        rolloverCap: message.rolloverCap, spendLimit: message.spendLimit,
        quotas: message.quotas.map { PlanQuota(feature: $0.feature, limit: $0.limit) })
}

private func purchaseRules(_ message: Tokenledger_V1_PurchaseRules) -> PurchaseRules {
    PurchaseRules(
        tokensPerRate: message.tokensPerRate, minorUnitsPerRate: message.minorUnitsPerRate,
        minimumMinor: message.minimumMinor,
        bonusTiers: message.bonusTiers.map { BonusTier(fromMinor: $0.fromMinor, basisPoints: $0.basisPoints) })
}

private func tenantSettings(_ message: Tokenledger_V1_TenantSettings) throws(LedgerError) -> TenantSettings {
    TenantSettings(
        plan: message.hasPlan ? try plan(message.plan) : nil,
        purchaseRules: message.hasPurchaseRules ? purchaseRules(message.purchaseRules) : .default,
        overdraftLimit: message.overdraftLimit, lowBalanceThreshold: message.lowBalanceThreshold,
        lowBalanceThresholds: try thresholds(message.lowBalanceThresholds, "settings.low_balance_thresholds"),
        movementEvents: !message.movementEventsOff)
}

private func thresholds(_ messages: [Tokenledger_V1_Threshold], _ field: String) throws(LedgerError) -> [BalanceThreshold] {
    var result: [BalanceThreshold] = []
    for message in messages {
        switch message.kind {
        case .tokens(let tokens)?: result.append(.tokens(tokens))
        case .percent(let percent)?: result.append(.percent(percent))
        case nil: throw LedgerError(.invalidArgument, "\(field): a threshold needs tokens or percent")
        }
    }
    return result
}

private func budget(_ message: Tokenledger_V1_Budget) throws(LedgerError) -> Budget {
    guard message.hasPeriod else { throw LedgerError(.invalidArgument, "budget.period: required") }
    return Budget(cap: message.cap, period: try period(message.period, "budget.period"))
}

func grantKind(_ kind: Tokenledger_V1_GrantKind, _ field: String) throws(LedgerError) -> GrantKind {
    guard let domain = kind.domain else { throw LedgerError(.invalidArgument, "\(field): a grant kind is required") }
    return domain
}

private func historyKind(_ kind: Tokenledger_V1_HistoryKind) throws(LedgerError) -> HistoryKind {
    guard let domain = kind.domain else { throw LedgerError(.invalidArgument, "kinds: \(kind) is not a history kind") }
    return domain
}

extension LedgerCall {
    /// The RPC's name in metrics and logs: the request's call field (`reserve`, `create_tenant`,
    /// ...), the same as ``WireRequest/rpcName`` of the request it was decoded from (tested).
    public var rpcName: String {
        switch self {
        case .command(let body, _):
            switch body {
            case .createTenant: return "create_tenant"
            case .configureTenant: return "configure_tenant"
            case .setMember: return "set_member"
            case .grant: return "grant"
            case .purchase: return "purchase"
            case .refundPurchase: return "refund_purchase"
            case .voidGrant: return "void_grant"
            case .reserve: return "reserve"
            case .charge: return "charge"
            case .extendHold: return "extend_hold"
            case .increaseHold: return "increase_hold"
            case .commit: return "commit"
            case .release: return "release"
            case .refund: return "refund"
            case .installCatalog: return "install_catalog"
            case .tick: return "tick"
            }
        case .balance: return "balance"
        case .estimate: return "estimate"
        case .history: return "history"
        case .listHolds: return "list_holds"
        case .listGrants: return "list_grants"
        case .listTenants: return "list_tenants"
        case .catalog: return "catalog"
        case .installCatalog: return "install_catalog"
        case .health: return "health"
        case .shardMap: return "shard_map"
        case .adminSnapshot: return "admin_snapshot"
        case .adminAudit: return "admin_audit"
        case .adminBackup: return "admin_backup"
        case .watch: return "watch"
        case .unwatch: return "unwatch"
        }
    }
}

extension WireRequest {
    /// The RPC's name in metrics for a request that may not decode into a ``LedgerCall``.
    public var rpcName: String { Self.rpcName(of: call) }

    /// The RPC's name of a call (the envelope's oneof), "none" without one.
    public static func rpcName(of call: OneOf_Call?) -> String {
        switch call {
        case .reserve?: return "reserve"
        case .charge?: return "charge"
        case .extendHold?: return "extend_hold"
        case .increaseHold?: return "increase_hold"
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
        case .listHolds?: return "list_holds"
        case .listGrants?: return "list_grants"
        case .listTenants?: return "list_tenants"
        case .catalog?: return "catalog"
        case .installCatalog?: return "install_catalog"
        case .health?: return "health"
        case .shardMap?: return "shard_map"
        case .adminSnapshot?: return "admin_snapshot"
        case .adminAudit?: return "admin_audit"
        case .adminBackup?: return "admin_backup"
        case .watch?: return "watch"
        case .unwatch?: return "unwatch"
        case nil: return "none"
        }
    }
}

extension HistoryKind {
    /// Domain and wire kinds side by side; one table serves both directions.
    static let wireOrder: [(domain: HistoryKind, wire: Tokenledger_V1_HistoryKind)] = [
        (.tenantCreated, .tenantCreated), (.tenantConfigured, .tenantConfigured),
        (.memberConfigured, .memberConfigured), (.grant, .grant), (.grantActivated, .grantActivated),
        (.reserve, .reserve), (.capture, .capture), (.overdraft, .overdraft), (.debtRepaid, .debtRepaid),
        (.release, .release), (.holdExpired, .holdExpired), (.refund, .refund), (.void, .void),
        (.grantExpired, .grantExpired), (.planRenewal, .planRenewal), (.rollover, .rollover),
        (.budgetReset, .budgetReset), (.lowBalance, .lowBalance), (.balanceRecovered, .balanceRecovered),
    ]

    public var wire: Tokenledger_V1_HistoryKind {
        Self.wireOrder.first { $0.domain == self }!.wire
    }
}
