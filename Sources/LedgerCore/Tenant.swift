// A tenant's state and the helpers every operation shares.
//
// Invariants (checked by LedgerState.audit()):
// - per grant: amount == remaining + consumed + expired + voided + carriedOver; held <= remaining;
//   an expired or voided grant has remaining == held.
// - per tenant: sum of grant held == heldTotal == sum of open holds' held; openHoldCount is the
//   number of holds in state held; grantedTotal == sum of grant amounts;
//   capturedTotal - refundedTotal == sum(consumed) + debt - sum(amount of refund grants);
//   debt > 0 only while no active grant has unheld tokens.
// - per member: held == sum of its open holds' held.
// - activeGrants is in burn-down order and holds every active grant that has tokens left.

/// The plan's current period as the ledger tracks it.
public struct PlanPeriod: Hashable, Sendable, Codable {
    /// The plan grant of the current period, if one was issued.
    public var grant: GrantID?
    public var start: LedgerTime
    public var end: LedgerTime
    /// Tokens captured in this period from any source, net of refunds of this period's captures.
    public var used: Tokens
    /// Counts plan removals and first settings, so that a renewal scheduled under an older plan is
    /// ignored.
    public var generation: UInt64
    /// Units of each quota feature counted in this period (sorted by feature; features with none
    /// left out). Format 2.
    public var quotaUsed: [FeatureUnits] = []

    /// Units of `feature` counted in this period.
    public func used(_ feature: String) -> UInt64 { quotaUsed.first { $0.feature == feature }?.units ?? 0 }

    /// Adds (or, with `adding: false`, takes away, never below 0) units of a feature.
    mutating func count(_ units: FeatureUnits, adding: Bool) {
        if let position = quotaUsed.firstIndex(where: { $0.feature >= units.feature }), quotaUsed[position].feature == units.feature {
            quotaUsed[position].units = adding ? quotaUsed[position].units + units.units : quotaUsed[position].units.subtractingClamped(units.units)
            if quotaUsed[position].units == 0 { quotaUsed.remove(at: position) }
        } else if adding, units.units > 0 {
            let position = quotaUsed.firstIndex(where: { $0.feature > units.feature }) ?? quotaUsed.count
            quotaUsed.insert(units, at: position)
        }
    }
}

/// A number of units of one catalog feature.
public struct FeatureUnits: Hashable, Sendable, Codable {
    public var feature: String
    public var units: UInt64

    public init(feature: String, units: UInt64) {
        self.feature = feature
        self.units = units
    }
}

/// One company's pool, members, holds and history.
public struct Tenant: Hashable, Sendable {
    public let id: TenantID
    public internal(set) var settings: TenantSettings
    public let createdAt: LedgerTime
    /// Every grant ever issued; `grants[n - 1]` has id `n`.
    public internal(set) var grants: [Grant] = []
    /// Active grants in burn-down order (may still list some with nothing left; pruned lazily).
    var activeGrants = GrantIDList()
    public internal(set) var holds = HoldTable()
    // Counts bounded by ``Limits/activeGrantsPerTenantMax`` and ``Limits/openHoldsPerTenantMax``:
    // 4 bytes each, side by side.
    private var storedPendingGrantCount: Int32 = 0
    private var storedOpenHoldCount: Int32 = 0
    /// Tokens held by open holds.
    public internal(set) var heldTotal: Tokens = 0
    /// Tokens captured through the overdraft and not yet paid back.
    public internal(set) var debt: Tokens = 0
    /// Sum of every grant's amount (bounded by ``Limits/tenantTokensMax``).
    public internal(set) var grantedTotal: Tokens = 0
    /// Tokens captured over the tenant's life.
    public internal(set) var capturedTotal: Tokens = 0
    /// Tokens refunded over the tenant's life.
    public internal(set) var refundedTotal: Tokens = 0
    public internal(set) var members: [MemberID: Member] = [:]
    /// Members with a threshold override, sorted, so that evaluation order is deterministic.
    var thresholdMembers: [MemberID] = []
    /// Out of line: most tenants have no plan (see ``OutOfLine``).
    private var planPeriodStorage = OutOfLine<PlanPeriod>(nil)
    /// Plan generation counter (survives plan removal so stale renewals stay stale).
    var planGeneration: UInt64 = 0
    public internal(set) var history = HistoryLog()
    package internal(set) var idempotency = IdempotencyTable()
    // Last: stored properties are laid out in declaration order, and a Bool between 8-byte fields
    // would cost 8 bytes a tenant.
    public internal(set) var belowThreshold = false
    /// Bit n: below the n-th further threshold (``TenantSettings/lowBalanceThresholds``).
    public internal(set) var belowThresholds: UInt16 = 0

    /// Grants waiting for their effective time.
    var pendingGrantCount: Int {
        get { Int(storedPendingGrantCount) }
        set { storedPendingGrantCount = Int32(newValue) }
    }

    public internal(set) var openHoldCount: Int {
        get { Int(storedOpenHoldCount) }
        set { storedOpenHoldCount = Int32(newValue) }
    }

    public internal(set) var planPeriod: PlanPeriod? {
        get { planPeriodStorage.value }
        set { planPeriodStorage.value = newValue }
    }

    init(id: TenantID, settings: TenantSettings, createdAt: LedgerTime) {
        self.id = id
        self.settings = settings
        self.createdAt = createdAt
    }

    // MARK: - Reading

    /// Unheld tokens of active grants, scoped ones included: what new holds can take right now.
    public var available: Tokens {
        var total: Tokens = 0
        for id in activeGrants { total += grants[index(id)].unheld }
        return total
    }

    /// Unheld tokens of active grants that may pay for `features` (``Grant/pays(for:)``; nil: a
    /// reserve by tokens, unscoped grants only). With `anyOne`, a grant that pays for any one of the
    /// features counts: the most the items of a reserve could draw.
    public func available(payingFor features: [String]?, anyOne: Bool = false) -> Tokens {
        var total: Tokens = 0
        for id in activeGrants {
            let grant = grants[index(id)]
            guard grant.scope.isEmpty || (anyOne ? features?.contains(where: grant.scope.contains) ?? false : grant.pays(for: features)) else { continue }
            total += grant.unheld
        }
        return total
    }

    /// The remembered outcome of a request, while idempotency retention keeps it.
    public func rememberedOutcome(_ requestID: RequestID) -> Result<CommandOutcome, LedgerError>? {
        idempotency.entry(requestID)?.outcome.result
    }

    /// Net tokens spent: captured minus refunded.
    public var spent: Tokens { capturedTotal - refundedTotal }

    func index(_ id: GrantID) -> Int { Int(id.rawValue - 1) }

    /// The grant with this id, or nil when it is not this tenant's.
    public func grant(_ id: GrantID) -> Grant? {
        guard id.rawValue >= 1, id.rawValue <= UInt64(grants.count) else { return nil }
        return grants[index(id)]
    }

    // MARK: - Recording

    mutating func record(
        _ kind: HistoryKind, _ ctx: ApplyContext, amount: Tokens, member: MemberID? = nil, hold: HoldID? = nil,
        grant: GrantID? = nil
    ) {
        let source = grant.map { grants[index($0)].kind }
        history.append(
            HistoryEntry(
                sequence: UInt64(history.count + 1), time: ctx.now, kind: kind, member: member, hold: hold, grant: grant,
                source: source, amount: amount, requestID: ctx.requestID))
    }

    // MARK: - Grants

    /// Adds a grant (checked by the caller against the limits) and schedules what it needs.
    mutating func addGrant(
        kind: GrantKind, amount: Tokens, effectiveAt: LedgerTime, expiresAt: LedgerTime?, priority: UInt32,
        moneyMinor: UInt64 = 0, linkedGrant: GrantID? = nil, note: String = "", scope: [String] = [],
        _ ctx: inout ApplyContext
    ) -> GrantID {
        let id = GrantID(UInt64(grants.count + 1))
        let pending = effectiveAt > ctx.now
        var grant = Grant(
            id: id, kind: kind, state: pending ? .pending : .active, amount: amount, remaining: amount, held: 0,
            consumed: 0, expired: 0, voided: 0, carriedOver: 0, priority: priority, createdAt: ctx.now,
            effectiveAt: effectiveAt, expiresAt: expiresAt, moneyMinor: moneyMinor, linkedGrant: linkedGrant,
            note: note)
        grant.scope = scope
        grants.append(grant)
        grantedTotal += amount
        record(.grant, ctx, amount: amount, grant: id)
        if pending {
            pendingGrantCount += 1
            ctx.schedule(effectiveAt, .grantActivation(id))
        } else {
            insertActive(id)
        }
        if let expiresAt { ctx.schedule(expiresAt, .grantExpiry(id)) }
        return id
    }

    /// Puts an active grant into the burn-down order unless it is there already.
    mutating func insertActive(_ id: GrantID) {
        let key = grants[index(id)].burnKey
        var low = 0
        var high = activeGrants.count
        while low < high {
            let middle = (low + high) / 2
            if grants[index(activeGrants[middle])].burnKey < key { low = middle + 1 } else { high = middle }
        }
        if low < activeGrants.count, activeGrants[low] == id { return }
        activeGrants.insert(id, at: low)
    }

    /// Drops grants that are no longer active or have nothing left.
    mutating func pruneActive() {
        let grants = self.grants
        activeGrants.removeAll { id in
            let grant = grants[Int(id.rawValue - 1)]
            return grant.state != .active || grant.remaining == 0
        }
    }

    /// Number of grants that count against ``Limits/activeGrantsPerTenantMax``.
    mutating func liveGrantCount() -> Int {
        pruneActive()
        return activeGrants.count + pendingGrantCount
    }

    /// Checks that `amount` more tokens may be granted to this tenant.
    func checkGrantable(_ amount: Tokens) throws(LedgerError) {
        guard amount <= Limits.tenantTokensMax - grantedTotal else {
            throw LedgerError.limit(
                "tenant_tokens_max", Limits.tenantTokensMax,
                "tenant \(id) would be granted more than \(Limits.tenantTokensMax) tokens in total")
        }
    }

    /// Plans how to take `amount` unheld tokens in burn-down order from the grants that may pay for
    /// `features` (nil: unscoped grants only), without changing anything.
    func planDraw(_ amount: Tokens, payingFor features: [String]?) -> [Allocation]? {
        var left = amount
        var draws: [Allocation] = []
        for id in activeGrants where left > 0 {
            let grant = grants[index(id)]
            guard grant.unheld > 0, grant.pays(for: features) else { continue }
            let take = min(grant.unheld, left)
            draws.append(Allocation(grant: id, amount: take))
            left -= take
        }
        return left == 0 ? draws : nil
    }

    /// Plans the draws of priced items: each item, in the order given, from the grants that may pay
    /// for its feature, in burn-down order. Returns the allocations (in burn-down order) and how
    /// many leading items were covered; the allocations are nil unless every item was.
    func planDraw(items: [PricedItem], costs: [Tokens]) -> (draws: [Allocation]?, covered: Int) {
        let total = costs.reduce(0, +)
        // Without a scoped grant every grant pays for every item: one draw of the total.
        if !activeGrants.contains(where: { !grants[index($0)].scope.isEmpty }) {
            let draws = planDraw(total, payingFor: nil)
            if draws != nil { return (draws, items.count) }
            var covered = 0
            var sum: Tokens = 0
            let pool = available
            for cost in costs {
                sum += cost
                guard sum <= pool else { break }
                covered += 1
            }
            return (nil, covered)
        }
        var taken = [Tokens](repeating: 0, count: activeGrants.count)
        var covered = 0
        for (item, cost) in zip(items, costs) {
            var left = cost
            for (position, id) in activeGrants.enumerated() where left > 0 {
                let grant = grants[index(id)]
                guard grant.pays(for: [item.feature]) else { continue }
                let take = min(grant.unheld - taken[position], left)
                taken[position] += take
                left -= take
            }
            guard left == 0 else { return (nil, covered) }
            covered += 1
        }
        var draws: [Allocation] = []
        for (position, id) in activeGrants.enumerated() where taken[position] > 0 {
            draws.append(Allocation(grant: id, amount: taken[position]))
        }
        return (draws, covered)
    }

    /// Returns held tokens of a grant; what comes back to an expired or voided grant is expired or
    /// voided at once.
    mutating func returnHeld(_ allocation: Allocation, as kind: HistoryKind, hold: Hold, _ ctx: ApplyContext) {
        let position = index(allocation.grant)
        grants[position].held -= allocation.amount
        record(kind, ctx, amount: allocation.amount, member: hold.member, hold: hold.id, grant: allocation.grant)
        switch grants[position].state {
        case .expired:
            grants[position].remaining -= allocation.amount
            grants[position].expired += allocation.amount
            record(.grantExpired, ctx, amount: allocation.amount, hold: hold.id, grant: allocation.grant)
        case .voided:
            grants[position].remaining -= allocation.amount
            grants[position].voided += allocation.amount
            record(.void, ctx, amount: allocation.amount, hold: hold.id, grant: allocation.grant)
        case .active, .pending:
            break
        }
    }

    // MARK: - After every change

    /// Pays overdraft debt back from unheld tokens, then reports threshold crossings.
    mutating func settle(_ ctx: inout ApplyContext) {
        if debt > 0 {
            for id in activeGrants where debt > 0 && grants[index(id)].scope.isEmpty {
                let position = index(id)
                let take = min(grants[position].unheld, debt)
                guard take > 0 else { continue }
                grants[position].remaining -= take
                grants[position].consumed += take
                debt -= take
                record(.debtRepaid, ctx, amount: take, grant: id)
            }
        }
        evaluateThresholds(&ctx)
    }

    private mutating func evaluateThresholds(_ ctx: inout ApplyContext) {
        let pool = available
        let threshold = settings.lowBalanceThreshold
        if threshold > 0 {
            belowThreshold = crossing(wasBelow: belowThreshold, value: pool, threshold: threshold, member: nil, &ctx)
        } else {
            belowThreshold = false
        }
        let allowance = settings.plan?.allowance
        if !settings.lowBalanceThresholds.isEmpty {
            belowThresholds = crossings(settings.lowBalanceThresholds, below: belowThresholds, value: pool, base: allowance, member: nil, &ctx)
        }
        for memberID in thresholdMembers {
            guard var member = members[memberID], member.settings.hasThresholds else { continue }
            let spendable = min(pool, member.budgetRemaining ?? .max)
            if let memberThreshold = member.settings.lowBalanceThreshold {
                member.belowThreshold = crossing(
                    wasBelow: member.belowThreshold, value: spendable, threshold: memberThreshold, member: memberID, &ctx)
            }
            if !member.settings.lowBalanceThresholds.isEmpty {
                // A member's percentage is of its budget cap, or of the plan allowance without one.
                member.belowThresholds = crossings(
                    member.settings.lowBalanceThresholds, below: member.belowThresholds, value: spendable,
                    base: member.settings.budget?.cap ?? allowance, member: memberID, &ctx)
            }
            members[memberID] = member
        }
    }

    /// Evaluates further thresholds (bit n of `below`: the n-th is crossed); a percentage without a
    /// base (no plan, no budget) is inactive. Returns the new bits.
    private mutating func crossings(
        _ thresholds: [BalanceThreshold], below: UInt16, value: Tokens, base: Tokens?, member: MemberID?, _ ctx: inout ApplyContext
    ) -> UInt16 {
        var bits: UInt16 = 0
        for (position, threshold) in thresholds.enumerated() {
            let tokens = threshold.tokens(of: base)
            let bit = UInt16(1) << position
            guard tokens > 0 else { continue }
            if crossing(wasBelow: below & bit != 0, value: value, threshold: tokens, member: member, &ctx) { bits |= bit }
        }
        return bits
    }

    /// Records and emits a crossing of `threshold`; returns whether `value` is now below it.
    private mutating func crossing(
        wasBelow: Bool, value: Tokens, threshold: Tokens, member: MemberID?, _ ctx: inout ApplyContext
    ) -> Bool {
        if value < threshold, !wasBelow {
            record(.lowBalance, ctx, amount: value, member: member)
            ctx.emit(id, .lowBalance(member: member, available: value, threshold: threshold))
            return true
        }
        if value >= threshold, wasBelow {
            record(.balanceRecovered, ctx, amount: value, member: member)
            ctx.emit(id, .balanceRecovered(member: member, available: value, threshold: threshold))
            return false
        }
        return wasBelow
    }
}

/// What one command (or one due item) needs while it runs, and what it leaves to the state.
struct ApplyContext {
    let now: LedgerTime
    let requestID: RequestID?
    let catalog: PriceCatalog?
    var events: [LedgerEvent] = []
    /// What the command asked to schedule, in order: the first item inline (a command schedules
    /// one at most, as a reserve its expiry, or none; an array made for it was an allocation per
    /// reserve), any others after it.
    private(set) var firstScheduled: (LedgerTime, DueKind)?
    private(set) var moreScheduled: [(LedgerTime, DueKind)] = []

    mutating func schedule(_ time: LedgerTime, _ kind: DueKind) {
        // `case .none`, not `== nil`: comparing with nil copied the optional to compare it.
        if case .none = firstScheduled { firstScheduled = (time, kind) } else { moreScheduled.append((time, kind)) }
    }

    /// The first scheduled item, moved out (the context ends after `finish` takes it).
    mutating func takeFirstScheduled() -> (LedgerTime, DueKind)? { firstScheduled.take() }

    mutating func emit(_ tenant: TenantID, _ kind: LedgerEvent.Kind) {
        events.append(LedgerEvent(tenant: tenant, time: now, kind: kind))
    }

    /// The movement event of a command's outcome, if it moved tokens in or out of the tenant.
    mutating func emitMovement(_ tenant: TenantID, _ outcome: CommandOutcome) {
        switch outcome {
        case .granted(let grant):
            emit(tenant, .granted(grant: grant.id, kind: grant.kind, amount: grant.amount))
        case .purchased(let purchase, let bonus):
            emit(
                tenant,
                .purchased(
                    grant: purchase.id, amount: purchase.amount, bonus: bonus?.id, bonusAmount: bonus?.amount ?? 0,
                    moneyMinor: purchase.moneyMinor))
        case .committed(let hold, let captured, _):
            emit(tenant, .captured(hold: hold.id, member: hold.member, amount: captured, final: hold.state != .held))
        case .charged(let hold, let charged):
            emit(tenant, .charged(hold: hold.id, member: hold.member, amount: charged))
        case .refunded(let hold, let refunded, _):
            emit(tenant, .refunded(hold: hold.id, member: hold.member, amount: refunded))
        case .voided(let grant, let amount):
            emit(tenant, .voided(grant: grant.id, kind: grant.kind, amount: amount))
        case .purchaseRefunded(let purchase, let bonus, let voided, let bonusVoided, _):
            emit(tenant, .voided(grant: purchase.id, kind: purchase.kind, amount: voided))
            if let bonus, bonusVoided > 0 { emit(tenant, .voided(grant: bonus.id, kind: bonus.kind, amount: bonusVoided)) }
        case .tenantCreated, .tenantConfigured, .memberSet, .reserved, .holdExtended, .holdIncreased, .released,
            .catalogInstalled, .ticked:
            break
        }
    }
}
