import LedgerCore

// Domain values to wire messages: what the server sends back.

extension WireResponse {
    /// An error reply.
    public init(callID: UInt64, error: LedgerError) {
        self.init()
        self.callID = callID
        self.error = WireError(error)
    }

    /// The reply to a command, from its result.
    public init(callID: UInt64, result: CommandResult) {
        self.init()
        self.callID = callID
        replayed = result.replayed
        lsn = result.lsn
        switch result.outcome {
        case .failure(let error): self.error = WireError(error)
        case .success(let outcome): self.result = Self.result(outcome)
        }
    }

    private static func result(_ outcome: CommandOutcome) -> OneOf_Result {
        switch outcome {
        case .tenantCreated(let tenant):
            return .createTenant(.with { $0.tenant = tenant.rawValue })
        case .tenantConfigured(let tenant):
            return .configureTenant(.with { $0.tenant = tenant.rawValue })
        case .memberSet(let member):
            return .setMember(.with { $0.member = Tokenledger_V1_Member(member) })
        case .granted(let grant):
            return .grant(.with { $0.grant = Tokenledger_V1_Grant(grant) })
        case .purchased(let purchase, let bonus):
            return .purchase(
                .with {
                    $0.purchase = Tokenledger_V1_Grant(purchase)
                    if let bonus { $0.bonus = Tokenledger_V1_Grant(bonus) }
                })
        case .purchaseRefunded(let purchase, let bonus, let voided, let bonusVoided, let money):
            return .refundPurchase(
                .with {
                    $0.purchase = Tokenledger_V1_Grant(purchase)
                    if let bonus { $0.bonus = Tokenledger_V1_Grant(bonus) }
                    $0.voided = voided
                    $0.bonusVoided = bonusVoided
                    $0.moneyRefundMinor = money
                })
        case .voided(let grant, let amount):
            return .voidGrant(
                .with {
                    $0.grant = Tokenledger_V1_Grant(grant)
                    $0.voided = amount
                })
        case .reserved(let hold):
            return .reserve(.with { $0.hold = Tokenledger_V1_Hold(hold) })
        case .holdExtended(let hold):
            return .extendHold(.with { $0.hold = Tokenledger_V1_Hold(hold) })
        case .holdIncreased(let hold, let increased):
            return .increaseHold(
                .with {
                    $0.hold = Tokenledger_V1_Hold(hold)
                    $0.increased = increased
                })
        case .charged(let hold, let charged):
            return .charge(
                .with {
                    $0.hold = Tokenledger_V1_Hold(hold)
                    $0.charged = charged
                })
        case .committed(let hold, let captured, let released):
            return .commit(
                .with {
                    $0.hold = Tokenledger_V1_Hold(hold)
                    $0.captured = captured
                    $0.released = released
                })
        case .released(let hold, let released):
            return .release(
                .with {
                    $0.hold = Tokenledger_V1_Hold(hold)
                    $0.released = released
                })
        case .refunded(let hold, let refunded, let newGrant):
            return .refund(
                .with {
                    $0.hold = Tokenledger_V1_Hold(hold)
                    $0.refunded = refunded
                    $0.newGrantID = newGrant?.rawValue ?? 0
                })
        case .catalogInstalled(let version):
            return .installCatalog(.with { $0.version = version })
        case .ticked:
            preconditionFailure("a tick is the server's own maintenance; no client call produces one")
        }
    }
}

extension WireError {
    public init(_ error: LedgerError) {
        self.init()
        code = WireErrorCode(error.code)
        message = error.message
        switch error.details {
        case .budget(let remaining, let cap, let resetsAt)?:
            budget = .with {
                $0.remaining = remaining
                $0.cap = cap
                $0.resetsAtMs = resetsAt.millisecondsSinceEpoch
            }
        case .plan(let remaining, let limit, let resetsAt)?:
            plan = .with {
                $0.remaining = remaining
                $0.limit = limit
                $0.resetsAtMs = resetsAt.millisecondsSinceEpoch
            }
        case .balance(let available, let requested)?:
            balance = .with {
                $0.available = available
                $0.requested = requested
            }
        case .limit(let name, let value)?:
            limit = .with {
                $0.name = name
                $0.value = value
            }
        case .owner(let shard, let address, let epoch)?:
            owner = .with {
                $0.shard = shard
                $0.address = address
                $0.epoch = epoch
            }
        case .quota(let feature, let used, let limit, let resetsAt, let requested)?:
            quota = Tokenledger_V1_Quota(QuotaView(feature: feature, used: used, limit: limit, resetsAt: resetsAt, requested: requested))
        case nil:
            break
        }
    }
}

extension Tokenledger_V1_Quota {
    public init(_ view: QuotaView) {
        self.init()
        feature = view.feature
        used = view.used
        limit = view.limit
        resetsAtMs = view.resetsAt.millisecondsSinceEpoch
        requested = view.requested
    }
}

extension WireErrorCode {
    /// Domain and wire codes side by side; one table serves both directions.
    static let table: [(domain: ErrorCode, wire: WireErrorCode)] = [
        (.invalidArgument, .invalidArgument), (.unauthenticated, .unauthenticated),
        (.permissionDenied, .permissionDenied), (.notFound, .notFound), (.alreadyExists, .alreadyExists),
        (.insufficientBalance, .insufficientBalance), (.budgetExceeded, .budgetExceeded),
        (.planLimitReached, .planLimitReached), (.alreadyCommitted, .alreadyCommitted),
        (.alreadyReleased, .alreadyReleased), (.expired, .expired), (.idempotencyConflict, .idempotencyConflict),
        (.limitExceeded, .limitExceeded), (.overloaded, .overloaded), (.unavailable, .unavailable),
        (.wrongOwner, .wrongOwner), (.quotaExceeded, .quotaExceeded),
    ]

    public init(_ code: ErrorCode) {
        self = Self.table.first { $0.domain == code }!.wire
    }

    /// The domain code, or nil for `unspecified` and values this build does not know.
    public var domain: ErrorCode? {
        Self.table.first { $0.wire == self }?.domain
    }
}

extension Tokenledger_V1_GrantKind {
    public init(_ kind: GrantKind) {
        switch kind {
        case .plan: self = .plan
        case .purchase: self = .purchase
        case .bonus: self = .bonus
        case .referral: self = .referral
        case .promo: self = .promo
        case .refund: self = .refund
        case .adjustment: self = .adjustment
        }
    }
}

extension Tokenledger_V1_GrantState {
    public init(_ state: GrantState) {
        switch state {
        case .pending: self = .pending
        case .active: self = .active
        case .expired: self = .expired
        case .voided: self = .voided
        }
    }
}

extension Tokenledger_V1_HoldState {
    public init(_ state: HoldState) {
        switch state {
        case .held: self = .held
        case .committed: self = .committed
        case .released: self = .released
        case .expired: self = .expired
        }
    }
}

extension Tokenledger_V1_PeriodUnit {
    public init(_ unit: PeriodUnit) {
        switch unit {
        case .day: self = .day
        case .week: self = .week
        case .month: self = .month
        }
    }
}

extension Tokenledger_V1_Period {
    init(_ rule: PeriodRule) {
        self.init()
        unit = Tokenledger_V1_PeriodUnit(rule.unit)
        anchorMs = rule.anchor.millisecondsSinceEpoch
    }
}

extension Tokenledger_V1_Grant {
    public init(_ grant: Grant) {
        self.init()
        id = grant.id.rawValue
        kind = Tokenledger_V1_GrantKind(grant.kind)
        state = Tokenledger_V1_GrantState(grant.state)
        amount = grant.amount
        remaining = grant.remaining
        held = grant.held
        consumed = grant.consumed
        expired = grant.expired
        voided = grant.voided
        carriedOver = grant.carriedOver
        priority = grant.priority
        createdAtMs = grant.createdAt.millisecondsSinceEpoch
        effectiveAtMs = grant.effectiveAt.millisecondsSinceEpoch
        expiresAtMs = grant.expiresAt?.millisecondsSinceEpoch ?? 0
        moneyMinor = grant.moneyMinor
        linkedGrantID = grant.linkedGrant?.rawValue ?? 0
        note = grant.note
        scope = grant.scope
    }
}

extension Tokenledger_V1_Allocation {
    init(_ allocation: Allocation) {
        self.init()
        grantID = allocation.grant.rawValue
        amount = allocation.amount
    }
}

extension Tokenledger_V1_PricedItem {
    init(_ item: PricedItem) {
        self.init()
        feature = item.feature
        quantity = item.quantity
    }
}

extension Tokenledger_V1_Hold {
    public init(_ hold: Hold) {
        self.init()
        id = hold.id.rawValue
        member = hold.member?.rawValue ?? ""
        state = Tokenledger_V1_HoldState(hold.state)
        amount = hold.amount
        held = hold.held
        captured = hold.captured
        overdraftCaptured = hold.overdraftCaptured
        refunded = hold.refunded
        createdAtMs = hold.createdAt.millisecondsSinceEpoch
        expiresAtMs = hold.expiresAt.millisecondsSinceEpoch
        resolvedAtMs = hold.resolvedAt?.millisecondsSinceEpoch ?? 0
        catalogVersion = hold.catalogVersion ?? ""
        items = hold.items.map(Tokenledger_V1_PricedItem.init)
        allocations = hold.allocations.map(Tokenledger_V1_Allocation.init)
        captures = hold.captures.map(Tokenledger_V1_Allocation.init)
    }
}

extension Tokenledger_V1_Member {
    public init(_ member: Member) {
        self.init()
        id = member.id.rawValue
        if let budget = member.settings.budget {
            self.budget = .with {
                $0.cap = budget.cap
                $0.period = Tokenledger_V1_Period(budget.period)
            }
        }
        if let threshold = member.settings.lowBalanceThreshold { lowBalanceThreshold = threshold }
        lowBalanceThresholds = member.settings.lowBalanceThresholds.map(Tokenledger_V1_Threshold.init)
        spentInPeriod = member.spentInPeriod
        held = member.held
        periodStartMs = member.periodStart.millisecondsSinceEpoch
        periodEndMs = member.periodEnd.millisecondsSinceEpoch
    }
}

extension Tokenledger_V1_BalanceResult {
    public init(_ view: BalanceView) {
        self.init()
        tenant = view.tenant.rawValue
        timeMs = view.time.millisecondsSinceEpoch
        available = view.available
        reserved = view.reserved
        spent = view.spent
        debt = view.debt
        overdraftLimit = view.overdraftLimit
        expired = view.expired
        voided = view.voided
        granted = view.granted
        buckets = view.buckets.map { bucket in
            .with {
                $0.grantID = bucket.id.rawValue
                $0.kind = Tokenledger_V1_GrantKind(bucket.kind)
                $0.state = Tokenledger_V1_GrantState(bucket.state)
                $0.amount = bucket.amount
                $0.remaining = bucket.remaining
                $0.held = bucket.held
                $0.priority = bucket.priority
                $0.effectiveAtMs = bucket.effectiveAt.millisecondsSinceEpoch
                $0.expiresAtMs = bucket.expiresAt?.millisecondsSinceEpoch ?? 0
                $0.scope = bucket.scope
            }
        }
        quotas = view.quotas.map(Tokenledger_V1_Quota.init)
        thresholds = view.thresholds.map { state in
            .with {
                $0.threshold = Tokenledger_V1_Threshold(state.threshold)
                $0.tokens = state.tokens
                $0.below = state.below
            }
        }
        movementEvents = view.movementEvents
        if let meter = view.meter {
            self.meter = .with {
                $0.used = meter.used
                $0.total = meter.total
                $0.periodStartMs = meter.periodStart.millisecondsSinceEpoch
                $0.periodEndMs = meter.periodEnd.millisecondsSinceEpoch
                $0.spendLimit = meter.spendLimit
            }
        }
        if let budget = view.memberBudget {
            memberBudget = .with {
                $0.member = budget.member.rawValue
                $0.cap = budget.cap
                $0.period = Tokenledger_V1_PeriodUnit(budget.period)
                $0.spent = budget.spent
                $0.held = budget.held
                $0.remaining = budget.remaining
                $0.resetsAtMs = budget.resetsAt.millisecondsSinceEpoch
            }
        }
        if let memberAvailable = view.memberAvailable { self.memberAvailable = memberAvailable }
        lowBalanceThreshold = view.lowBalanceThreshold
        belowThreshold = view.belowThreshold
        openHolds = UInt32(clamping: view.openHolds)
    }
}

extension Tokenledger_V1_EstimateResult {
    public init(_ view: EstimateView) {
        self.init()
        catalogVersion = view.catalogVersion
        items = view.items.map { item in
            .with {
                $0.feature = item.feature
                $0.quantity = item.quantity
                $0.cost = item.cost
            }
        }
        total = view.total
        affordable = view.affordable
        itemsAffordable = UInt32(clamping: view.itemsAffordable)
        switch view.binding {
        case .pool: binding = .pool
        case .memberBudget: binding = .memberBudget
        case .plan: binding = .plan
        }
        headroom = view.headroom
        poolHeadroom = view.headroomDetail.pool
        quotas = view.quotas.map(Tokenledger_V1_Quota.init)
        if let budget = view.headroomDetail.budget {
            self.budget = .with {
                $0.remaining = budget.remaining
                $0.cap = budget.cap
                $0.resetsAtMs = budget.resetsAt.millisecondsSinceEpoch
            }
        }
        if let plan = view.headroomDetail.plan {
            self.plan = .with {
                $0.remaining = plan.remaining
                $0.limit = plan.limit
                $0.resetsAtMs = plan.resetsAt.millisecondsSinceEpoch
            }
        }
    }
}

extension Tokenledger_V1_HistoryResult {
    public init(_ page: HistoryPage) {
        self.init()
        entries = page.entries.map { entry in
            .with {
                $0.sequence = entry.sequence
                $0.timeMs = entry.time.millisecondsSinceEpoch
                $0.kind = entry.kind.wire
                $0.member = entry.member?.rawValue ?? ""
                $0.holdID = entry.hold?.rawValue ?? ""
                $0.grantID = entry.grant?.rawValue ?? 0
                $0.source = entry.source.map(Tokenledger_V1_GrantKind.init) ?? .unspecified
                $0.amount = entry.amount
                $0.requestID = entry.requestID?.rawValue ?? ""
            }
        }
        nextCursor = page.nextCursor ?? 0
    }
}

extension Tokenledger_V1_LedgerEvent {
    public init(_ event: LedgerEvent) {
        self.init()
        id = event.id
        tenant = event.tenant.rawValue
        timeMs = event.time.millisecondsSinceEpoch
        func threshold(_ member: MemberID?, _ available: Tokens, _ threshold: Tokens) -> Tokenledger_V1_ThresholdEvent {
            .with {
                $0.member = member?.rawValue ?? ""
                $0.available = available
                $0.threshold = threshold
            }
        }
        switch event.kind {
        case .lowBalance(let member, let available, let limit):
            lowBalance = threshold(member, available, limit)
        case .balanceRecovered(let member, let available, let limit):
            balanceRecovered = threshold(member, available, limit)
        case .budgetExceeded(let member, let requested, let remaining, let cap, let resetsAt):
            budgetExceeded = .with {
                $0.member = member.rawValue
                $0.requested = requested
                $0.remaining = remaining
                $0.cap = cap
                $0.resetsAtMs = resetsAt.millisecondsSinceEpoch
            }
        case .holdExpired(let hold, let released):
            holdExpired = .with {
                $0.holdID = hold.rawValue
                $0.released = released
            }
        case .grantExpired(let grant, let kind, let expired):
            grantExpired = .with {
                $0.grantID = grant.rawValue
                $0.grantKind = Tokenledger_V1_GrantKind(kind)
                $0.expired = expired
            }
        case .planRenewed(let grant, let amount, let periodStart, let periodEnd):
            planRenewed = .with {
                $0.grantID = grant.rawValue
                $0.amount = amount
                $0.periodStartMs = periodStart.millisecondsSinceEpoch
                $0.periodEndMs = periodEnd.millisecondsSinceEpoch
            }
        case .budgetReset(let member, let periodStart, let periodEnd):
            budgetReset = .with {
                $0.member = member.rawValue
                $0.periodStartMs = periodStart.millisecondsSinceEpoch
                $0.periodEndMs = periodEnd.millisecondsSinceEpoch
            }
        case .granted(let grant, let kind, let amount):
            granted = .init(grant, kind, amount)
        case .voided(let grant, let kind, let amount):
            voided = .init(grant, kind, amount)
        case .purchased(let grant, let amount, let bonus, let bonusAmount, let moneyMinor):
            purchased = .with {
                $0.grantID = grant.rawValue
                $0.amount = amount
                $0.bonusGrantID = bonus?.rawValue ?? 0
                $0.bonusAmount = bonusAmount
                $0.moneyMinor = moneyMinor
            }
        case .captured(let hold, let member, let amount, let final):
            captured = .init(hold, member, amount, final: final)
        case .charged(let hold, let member, let amount):
            charged = .init(hold, member, amount)
        case .refunded(let hold, let member, let amount):
            refunded = .init(hold, member, amount)
        }
    }

    /// The event's kind as a snake_case name (`low_balance`, ...), as the webhook and tokenctl
    /// print it.
    public var kindName: String {
        switch kind {
        case .lowBalance?: return "low_balance"
        case .balanceRecovered?: return "balance_recovered"
        case .budgetExceeded?: return "budget_exceeded"
        case .holdExpired?: return "hold_expired"
        case .grantExpired?: return "grant_expired"
        case .planRenewed?: return "plan_renewed"
        case .budgetReset?: return "budget_reset"
        case .granted?: return "granted"
        case .purchased?: return "purchased"
        case .captured?: return "captured"
        case .charged?: return "charged"
        case .refunded?: return "refunded"
        case .voided?: return "voided"
        case nil: return "unknown"
        }
    }
}

extension Tokenledger_V1_GrantMovementEvent {
    init(_ grant: GrantID, _ kind: GrantKind, _ amount: Tokens) {
        self.init()
        grantID = grant.rawValue
        grantKind = Tokenledger_V1_GrantKind(kind)
        self.amount = amount
    }
}

extension Tokenledger_V1_HoldMovementEvent {
    init(_ hold: HoldID, _ member: MemberID?, _ amount: Tokens, final: Bool = false) {
        self.init()
        holdID = hold.rawValue
        self.member = member?.rawValue ?? ""
        self.amount = amount
        self.final = final
    }
}

extension Tokenledger_V1_CatalogResult {
    public init(_ catalog: PriceCatalog) {
        self.init()
        version = catalog.version
        features = catalog.sortedFeatures.map { feature in
            .with {
                $0.name = feature.name
                $0.unit = feature.unit
                $0.baseCost = feature.base
                $0.rate = feature.rate
                $0.per = feature.per
                $0.description_p = feature.description
            }
        }
    }
}

extension LedgerError {
    /// The domain error a wire error stands for. A code this build does not know becomes
    /// `unavailable` with the number in the message, so that a newer server cannot crash an older
    /// client.
    public init(_ wire: WireError) {
        guard let code = wire.code.domain else {
            self.init(.unavailable, "unknown error code \(wire.code.rawValue): \(wire.message)")
            return
        }
        var details: ErrorDetails? = nil
        switch wire.details {
        case .budget(let budget)?:
            details = .budget(
                remaining: budget.remaining, cap: budget.cap,
                resetsAt: LedgerTime(millisecondsSinceEpoch: budget.resetsAtMs))
        case .plan(let plan)?:
            details = .plan(
                remaining: plan.remaining, limit: plan.limit, resetsAt: LedgerTime(millisecondsSinceEpoch: plan.resetsAtMs))
        case .balance(let balance)?:
            details = .balance(available: balance.available, requested: balance.requested)
        case .limit(let limit)?:
            details = .limit(name: limit.name, value: limit.value)
        case .owner(let owner)?:
            details = .owner(shard: owner.shard, address: owner.address, epoch: owner.epoch)
        case .quota(let quota)?:
            details = .quota(
                feature: quota.feature, used: quota.used, limit: quota.limit,
                resetsAt: LedgerTime(millisecondsSinceEpoch: quota.resetsAtMs), requested: quota.requested)
        case nil:
            break
        }
        self.init(code, wire.message, details: details)
    }
}

extension Tokenledger_V1_LedgerEvent {
    /// The event as one JSON object with snake_case keys, as the webhook sink posts it and
    /// `tokenctl watch --json` prints it (docs/operations.md, "Events"):
    /// `{"id":7,"tenant":"acme","type":"low_balance","time":"...Z","time_ms":...,"member":null,
    /// "available":900,"threshold":1000}`.
    public var json: String { jsonValue.text }

    /// ``json`` before it is written out (the webhook sink puts events in an array).
    public var jsonValue: OrderedJSON {
        var fields: [(String, OrderedJSON)] = [
            ("id", .unsigned(id)), ("tenant", .string(tenant)), ("type", .string(kindName)),
            ("time", .string(LedgerTime(millisecondsSinceEpoch: timeMs).iso8601)), ("time_ms", .signed(timeMs)),
        ]
        func member(_ text: String) -> OrderedJSON { text.isEmpty ? .null : .string(text) }
        func time(_ milliseconds: Int64) -> OrderedJSON { .string(LedgerTime(millisecondsSinceEpoch: milliseconds).iso8601) }
        switch kind {
        case .lowBalance(let value)?, .balanceRecovered(let value)?:
            fields += [("member", member(value.member)), ("available", .unsigned(value.available)), ("threshold", .unsigned(value.threshold))]
        case .budgetExceeded(let value)?:
            fields += [
                ("member", member(value.member)), ("requested", .unsigned(value.requested)), ("remaining", .unsigned(value.remaining)),
                ("cap", .unsigned(value.cap)), ("resets_at", time(value.resetsAtMs)),
            ]
        case .holdExpired(let value)?:
            fields += [("hold", .string(value.holdID)), ("released", .unsigned(value.released))]
        case .grantExpired(let value)?:
            fields += [
                ("grant", .unsigned(value.grantID)), ("grant_kind", .string(value.grantKind.domain?.rawValue ?? "unknown")),
                ("expired", .unsigned(value.expired)),
            ]
        case .planRenewed(let value)?:
            fields += [
                ("grant", .unsigned(value.grantID)), ("amount", .unsigned(value.amount)), ("period_start", time(value.periodStartMs)),
                ("period_end", time(value.periodEndMs)),
            ]
        case .budgetReset(let value)?:
            fields += [
                ("member", member(value.member)), ("period_start", time(value.periodStartMs)),
                ("period_end", time(value.periodEndMs)),
            ]
        case .granted(let value)?, .voided(let value)?:
            fields += [
                ("grant", .unsigned(value.grantID)), ("grant_kind", .string(value.grantKind.domain?.rawValue ?? "unknown")),
                ("amount", .unsigned(value.amount)),
            ]
        case .purchased(let value)?:
            fields += [
                ("grant", .unsigned(value.grantID)), ("amount", .unsigned(value.amount)),
                ("bonus_grant", value.bonusGrantID == 0 ? .null : .unsigned(value.bonusGrantID)),
                ("bonus_amount", .unsigned(value.bonusAmount)), ("money_minor", .unsigned(value.moneyMinor)),
            ]
        case .captured(let value)?:
            fields += [
                ("hold", .string(value.holdID)), ("member", member(value.member)), ("amount", .unsigned(value.amount)),
                ("final", .bool(value.final)),
            ]
        case .charged(let value)?, .refunded(let value)?:
            fields += [("hold", .string(value.holdID)), ("member", member(value.member)), ("amount", .unsigned(value.amount))]
        case nil:
            break
        }
        return .object(fields)
    }
}
