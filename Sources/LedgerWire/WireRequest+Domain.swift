import LedgerCore

// Domain values to wire requests: what a client sends. `LedgerCall.init(_:)` is the inverse, and
// the wire tests check the round trip for every command the generators make.

extension WireRequest {
    /// The request for `call`.
    public init(callID: UInt64, call: LedgerCall) {
        self.init()
        self.callID = callID
        switch call {
        case .command(let body, let requestID): self.call = Self.command(body, requestID: requestID.rawValue)
        case .balance(let tenant, let member):
            self.call = .balance(
                .with {
                    $0.tenant = tenant.rawValue
                    $0.member = member?.rawValue ?? ""
                })
        case .estimate(let tenant, let member, let items):
            self.call = .estimate(
                .with {
                    $0.tenant = tenant.rawValue
                    $0.member = member?.rawValue ?? ""
                    $0.items = items.map(Tokenledger_V1_PricedItem.init)
                })
        case .history(let tenant, let filter): self.call = .history(Tokenledger_V1_HistoryRequest(tenant, filter))
        case .listHolds(let tenant, let member, let after, let limit):
            self.call = .listHolds(
                .with {
                    $0.tenant = tenant.rawValue
                    $0.member = member?.rawValue ?? ""
                    $0.afterHoldID = after?.rawValue ?? ""
                    $0.limit = UInt32(clamping: limit)
                })
        case .listGrants(let tenant, let state, let after, let limit):
            self.call = .listGrants(
                .with {
                    $0.tenant = tenant.rawValue
                    if let state { $0.state = Tokenledger_V1_GrantState(state) }
                    $0.afterGrantID = after.rawValue
                    $0.limit = UInt32(clamping: limit)
                })
        case .listTenants(let after, let limit):
            self.call = .listTenants(
                .with {
                    $0.afterTenant = after?.rawValue ?? ""
                    $0.limit = UInt32(clamping: limit)
                })
        case .catalog: self.call = .catalog(.init())
        case .installCatalog(let catalog): self.call = .installCatalog(.with { $0.json = catalog.json })
        case .health: self.call = .health(.init())
        case .shardMap: self.call = .shardMap(.init())
        case .adminSnapshot: self.call = .adminSnapshot(.init())
        case .adminAudit: self.call = .adminAudit(.init())
        case .adminBackup(let directory): self.call = .adminBackup(.with { $0.directory = directory })
        case .watch(let tenant, let after):
            self.call = .watch(
                .with {
                    $0.tenant = tenant.rawValue
                    if let after { $0.afterEventID = after }
                })
        case .unwatch(let watchCallID): self.call = .unwatch(.with { $0.watchCallID = watchCallID })
        }
    }

    private static func command(_ body: CommandBody, requestID: String) -> OneOf_Call {
        switch body {
        case .createTenant(let tenant, let settings):
            return .createTenant(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.settings = Tokenledger_V1_TenantSettings(settings)
                })
        case .configureTenant(let tenant, let change):
            return .configureTenant(Tokenledger_V1_ConfigureTenantRequest(tenant, change, requestID: requestID))
        case .setMember(let tenant, let member, let settings):
            return .setMember(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.member = member.rawValue
                    if let budget = settings.budget {
                        $0.budget = .with {
                            $0.cap = budget.cap
                            $0.period = Tokenledger_V1_Period(budget.period)
                        }
                    }
                    if let threshold = settings.lowBalanceThreshold { $0.lowBalanceThreshold = threshold }
                    $0.lowBalanceThresholds = settings.lowBalanceThresholds.map(Tokenledger_V1_Threshold.init)
                })
        case .grant(let tenant, let request):
            return .grant(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.kind = Tokenledger_V1_GrantKind(request.kind)
                    $0.amount = request.amount
                    if let effectiveAt = request.effectiveAt { $0.effectiveAtMs = effectiveAt.millisecondsSinceEpoch }
                    if let expiresAt = request.expiresAt { $0.expiresAtMs = expiresAt.millisecondsSinceEpoch }
                    if let priority = request.priority { $0.priority = priority }
                    $0.note = request.note
                    $0.scope = request.scope
                })
        case .purchase(let tenant, let money, let note):
            return .purchase(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.moneyMinor = money
                    $0.note = note
                })
        case .refundPurchase(let tenant, let grant):
            return .refundPurchase(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.grantID = grant.rawValue
                })
        case .voidGrant(let tenant, let grant):
            return .voidGrant(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.grantID = grant.rawValue
                })
        case .reserve(let tenant, let request):
            return .reserve(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.holdID = request.hold.rawValue
                    $0.member = request.member?.rawValue ?? ""
                    $0.setAmount(request.amount)
                    if let ttl = request.ttl { $0.ttlMs = UInt64(clamping: ttl.wholeMilliseconds) }
                })
        case .commit(let tenant, let hold, let amount, let final):
            return .commit(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.holdID = hold.rawValue
                    $0.amount = amount
                    $0.partial = !final
                })
        case .release(let tenant, let hold):
            return .release(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.holdID = hold.rawValue
                })
        case .refund(let tenant, let hold, let amount):
            return .refund(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.holdID = hold.rawValue
                    $0.amount = amount
                })
        case .installCatalog(let catalog):
            return .installCatalog(.with { $0.json = catalog.json })
        case .charge(let tenant, let request):
            return .charge(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.holdID = request.hold.rawValue
                    $0.member = request.member?.rawValue ?? ""
                    $0.setAmount(request.amount)
                })
        case .extendHold(let tenant, let hold, let ttl):
            return .extendHold(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.holdID = hold.rawValue
                    $0.ttlMs = UInt64(clamping: ttl.wholeMilliseconds)
                })
        case .increaseHold(let tenant, let hold, let amount):
            return .increaseHold(
                .with {
                    $0.requestID = requestID
                    $0.tenant = tenant.rawValue
                    $0.holdID = hold.rawValue
                    $0.tokens = amount
                })
        case .tick:
            preconditionFailure("a tick is the server's own maintenance and has no request")
        }
    }
}

extension Tokenledger_V1_TenantSettings {
    init(_ settings: TenantSettings) {
        self.init()
        if let plan = settings.plan { self.plan = Tokenledger_V1_Plan(plan) }
        purchaseRules = Tokenledger_V1_PurchaseRules(settings.purchaseRules)
        overdraftLimit = settings.overdraftLimit
        lowBalanceThreshold = settings.lowBalanceThreshold
        lowBalanceThresholds = settings.lowBalanceThresholds.map(Tokenledger_V1_Threshold.init)
        movementEventsOff = !settings.movementEvents
    }
}

extension Tokenledger_V1_Plan {
    init(_ plan: Plan) {
        self.init()
        allowance = plan.allowance
        period = Tokenledger_V1_Period(plan.period)
        rolloverCap = plan.rolloverCap
        spendLimit = plan.spendLimit
        quotas = plan.quotas.map { quota in
            .with {
                $0.feature = quota.feature
                $0.limit = quota.limit
            }
        }
    }
}

extension Tokenledger_V1_PurchaseRules {
    init(_ rules: PurchaseRules) {
        self.init()
        tokensPerRate = rules.tokensPerRate
        minorUnitsPerRate = rules.minorUnitsPerRate
        minimumMinor = rules.minimumMinor
        bonusTiers = rules.bonusTiers.map { tier in
            .with {
                $0.fromMinor = tier.fromMinor
                $0.basisPoints = tier.basisPoints
            }
        }
    }
}

extension Tokenledger_V1_ConfigureTenantRequest {
    init(_ tenant: TenantID, _ change: TenantSettingsChange, requestID: String) {
        self.init()
        self.requestID = requestID
        self.tenant = tenant.rawValue
        switch change.plan {
        case .set(let plan)?: setPlan = Tokenledger_V1_Plan(plan)
        case .remove?: removePlan = true
        case nil: break
        }
        if let rules = change.purchaseRules { purchaseRules = Tokenledger_V1_PurchaseRules(rules) }
        if let limit = change.overdraftLimit { overdraftLimit = limit }
        if let threshold = change.lowBalanceThreshold { lowBalanceThreshold = threshold }
        if let thresholds = change.lowBalanceThresholds { lowBalanceThresholds = .with { $0.thresholds = thresholds.map(Tokenledger_V1_Threshold.init) } }
        if let movementEvents = change.movementEvents { self.movementEvents = movementEvents }
    }
}

extension Tokenledger_V1_Threshold {
    public init(_ threshold: BalanceThreshold) {
        self.init()
        switch threshold {
        case .tokens(let tokens): self.tokens = tokens
        case .percent(let percent): self.percent = percent
        }
    }
}

extension Tokenledger_V1_HistoryRequest {
    init(_ tenant: TenantID, _ filter: HistoryFilter) {
        self.init()
        self.tenant = tenant.rawValue
        member = filter.member?.rawValue ?? ""
        if let source = filter.source { self.source = Tokenledger_V1_GrantKind(source) }
        if let kinds = filter.kinds { self.kinds = kinds.map(\.wire).sorted { $0.rawValue < $1.rawValue } }
        if let since = filter.since { sinceMs = since.millisecondsSinceEpoch }
        if let until = filter.until { untilMs = until.millisecondsSinceEpoch }
        afterSequence = filter.afterSequence
        limit = UInt32(clamping: filter.limit)
    }
}

/// The requests that name an amount in tokens or in priced items: reserve and charge.
protocol SpendingRequest {
    var tokens: UInt64 { get set }
    var items: Tokenledger_V1_PricedItems { get set }
}

extension Tokenledger_V1_ReserveRequest: SpendingRequest {}
extension Tokenledger_V1_ChargeRequest: SpendingRequest {}

extension SpendingRequest {
    mutating func setAmount(_ amount: ReserveRequest.Amount) {
        switch amount {
        case .tokens(let tokens): self.tokens = tokens
        case .items(let items): self.items = .with { $0.items = items.map(Tokenledger_V1_PricedItem.init) }
        }
    }
}
