// Read-only views: balance, estimate, history. They read the state as it is; the engine applies a
// tick first when `nextDueTime` has passed, so that expiries show.

/// A grant as a balance shows it.
public struct BucketView: Hashable, Sendable {
    public var id: GrantID
    public var kind: GrantKind
    public var state: GrantState
    public var amount: Tokens
    public var remaining: Tokens
    public var held: Tokens
    public var priority: UInt32
    public var effectiveAt: LedgerTime
    public var expiresAt: LedgerTime?
    /// The features the grant may pay for; empty: any spending.
    public var scope: [String] = []
}

/// A plan quota in the current period: `used` of `limit` units until `resetsAt`; in an estimate,
/// `requested` is what the items would count.
public struct QuotaView: Hashable, Sendable {
    public var feature: String
    public var used: UInt64
    public var limit: UInt64
    public var resetsAt: LedgerTime
    public var requested: UInt64

    public init(feature: String, used: UInt64, limit: UInt64, resetsAt: LedgerTime, requested: UInt64 = 0) {
        self.feature = feature
        self.used = used
        self.limit = limit
        self.resetsAt = resetsAt
        self.requested = requested
    }
}

/// The plan meter: `used` of `total` in the current plan period (e.g. 500,000/3,000,000 used).
/// `total` is what was used plus every token still in the pool, so a purchase raises it and an
/// expiry lowers it.
public struct MeterView: Hashable, Sendable {
    public var used: Tokens
    public var total: Tokens
    public var periodStart: LedgerTime
    public var periodEnd: LedgerTime
    /// The plan's spend limit, 0 when none.
    public var spendLimit: Tokens
}

/// A member's budget as a balance shows it.
public struct MemberBudgetView: Hashable, Sendable {
    public var member: MemberID
    public var cap: Tokens
    public var period: PeriodUnit
    public var spent: Tokens
    public var held: Tokens
    public var remaining: Tokens
    public var resetsAt: LedgerTime
}

/// A tenant's balance at the ledger's current time.
public struct BalanceView: Hashable, Sendable {
    public var tenant: TenantID
    public var time: LedgerTime
    /// Unheld tokens of active grants.
    public var available: Tokens
    /// Tokens held by open holds.
    public var reserved: Tokens
    /// Tokens captured, net of refunds.
    public var spent: Tokens
    /// Overdraft used and not yet paid back.
    public var debt: Tokens
    public var overdraftLimit: Tokens
    /// Expired and voided tokens over the tenant's life.
    public var expired: Tokens
    public var voided: Tokens
    /// Every grant minus tokens moved between plan grants by rollover.
    public var granted: Tokens
    /// Active and pending grants with tokens left, in burn-down order (pending last).
    public var buckets: [BucketView]
    public var meter: MeterView?
    /// With a member: its budget, when it has one.
    public var memberBudget: MemberBudgetView?
    /// With a member: what the member can spend now (the smaller of pool and budget).
    public var memberAvailable: Tokens?
    public var lowBalanceThreshold: Tokens
    public var belowThreshold: Bool
    public var openHolds: Int
    /// Each quota of the plan in the current period.
    public var quotas: [QuotaView] = []
    /// The pool's further thresholds; with a member that has its own, the member's.
    public var thresholds: [ThresholdView] = []
    public var movementEvents = true
}

/// A further low-balance threshold: in tokens now (a percentage of the plan allowance or budget
/// cap; 0 when inactive), and whether spendable tokens are below it.
public struct ThresholdView: Hashable, Sendable {
    public var threshold: BalanceThreshold
    public var tokens: Tokens
    public var below: Bool

    public init(threshold: BalanceThreshold, tokens: Tokens, below: Bool) {
        self.threshold = threshold
        self.tokens = tokens
        self.below = below
    }
}

/// One priced item of an estimate.
public struct EstimateItem: Hashable, Sendable {
    public var feature: String
    public var quantity: UInt64
    public var cost: Tokens
}

/// What a list of items costs and whether it can run now.
public struct EstimateView: Hashable, Sendable {
    public var catalogVersion: String
    public var items: [EstimateItem]
    public var total: Tokens
    /// Whether every item fits now.
    public var affordable: Bool
    /// How many leading items fit now.
    public var itemsAffordable: Int
    /// The limit that binds first and what it allows.
    public var binding: BindingLimit
    public var headroom: Tokens
    public var headroomDetail: Headroom
    /// Each plan quota the items count against, with the units they would count; an exceeded one
    /// makes the estimate unaffordable.
    public var quotas: [QuotaView] = []
}

extension LedgerState {
    /// The tenant, or `not_found`.
    public func tenant(_ tenantID: TenantID) throws(LedgerError) -> Tenant {
        try IdentifierRule.check(tenantID.rawValue, field: "tenant id")
        guard let tenant = tenants[tenantID] else { throw LedgerError.notFound("tenant \(tenantID)") }
        return tenant
    }

    public func balance(_ tenantID: TenantID, member memberID: MemberID? = nil) throws(LedgerError) -> BalanceView {
        let tenant = try tenant(tenantID)
        var buckets: [BucketView] = []
        var expired: Tokens = 0
        var voided: Tokens = 0
        var carried: Tokens = 0
        // Every token still in the pool: what active grants have left, and what holds still
        // reserve on grants that expired or were voided while held (their `remaining` is that).
        // Counted over all grants, not `activeGrants`, which drops an expired or voided grant only
        // at its next change: the meter must not depend on when that happens.
        var inPool: Tokens = 0
        for grant in tenant.grants {
            expired += grant.expired
            voided += grant.voided
            carried += grant.carriedOver
            switch grant.state {
            case .active, .expired, .voided: inPool += grant.remaining
            case .pending: break
            }
        }
        let ordered = tenant.activeGrants.map { tenant.grants[tenant.index($0)] }
            + tenant.grants.filter { $0.state == .pending }
        for grant in ordered where grant.remaining > 0 && (grant.state == .active || grant.state == .pending) {
            buckets.append(
                BucketView(
                    id: grant.id, kind: grant.kind, state: grant.state, amount: grant.amount, remaining: grant.remaining,
                    held: grant.held, priority: grant.priority, effectiveAt: grant.effectiveAt, expiresAt: grant.expiresAt,
                    scope: grant.scope))
        }
        let available = tenant.available
        var view = BalanceView(
            tenant: tenantID, time: time, available: available, reserved: tenant.heldTotal, spent: tenant.spent,
            debt: tenant.debt, overdraftLimit: tenant.settings.overdraftLimit, expired: expired, voided: voided,
            granted: tenant.grantedTotal - carried, buckets: buckets, meter: nil, memberBudget: nil, memberAvailable: nil,
            lowBalanceThreshold: tenant.settings.lowBalanceThreshold, belowThreshold: tenant.belowThreshold,
            openHolds: tenant.openHoldCount)
        view.movementEvents = tenant.settings.movementEvents
        func views(_ thresholds: [BalanceThreshold], base: Tokens?, below: UInt16) -> [ThresholdView] {
            thresholds.enumerated().map { position, threshold in
                ThresholdView(threshold: threshold, tokens: threshold.tokens(of: base), below: below & (UInt16(1) << position) != 0)
            }
        }
        view.thresholds = views(tenant.settings.lowBalanceThresholds, base: tenant.settings.plan?.allowance, below: tenant.belowThresholds)
        if let period = tenant.planPeriod, let plan = tenant.settings.plan {
            view.meter = MeterView(
                used: period.used, total: period.used + inPool, periodStart: period.start, periodEnd: period.end,
                spendLimit: plan.spendLimit)
            view.quotas = plan.quotas.map {
                QuotaView(feature: $0.feature, used: period.used($0.feature), limit: $0.limit, resetsAt: period.end)
            }
        }
        if let memberID {
            try IdentifierRule.check(memberID.rawValue, field: "member id")
            guard let member = tenant.members[memberID] else { throw LedgerError.notFound("member \(memberID)") }
            if let budget = member.settings.budget {
                view.memberBudget = MemberBudgetView(
                    member: memberID, cap: budget.cap, period: budget.period.unit, spent: member.spentInPeriod,
                    held: member.held, remaining: member.budgetRemaining!, resetsAt: member.periodEnd)
            }
            view.memberAvailable = tenant.headroom(member: member).binding.remaining
            if !member.settings.lowBalanceThresholds.isEmpty {
                view.thresholds = views(
                    member.settings.lowBalanceThresholds, base: member.settings.budget?.cap ?? tenant.settings.plan?.allowance,
                    below: member.belowThresholds)
            }
        }
        return view
    }

    /// Prices `items` with the installed catalog and checks them against the pool (the grants that
    /// may pay for them), the member's budget (when `member` is given and has one), the plan's spend
    /// limit and its quotas, as a reserve of the items would. An unknown member is estimated as one
    /// without a budget, as a reserve would create it.
    public func estimate(_ tenantID: TenantID, member memberID: MemberID? = nil, items: [PricedItem]) throws(LedgerError)
        -> EstimateView
    {
        let tenant = try tenant(tenantID)
        guard let catalog else { throw LedgerError(.invalidArgument, "no price catalog is installed") }
        if let memberID { try IdentifierRule.check(memberID.rawValue, field: "member id") }
        let costs = try catalog.price(items)
        let pool = tenant.available(payingFor: Tenant.features(of: items), anyOne: true)
        let headroom = tenant.headroom(member: memberID.flatMap { tenant.members[$0] }, pool: pool)
        let (binding, remaining) = headroom.binding
        // Leading items the grants' scopes cover, item by item as a reserve draws.
        let (_, covered) = tenant.planDraw(items: items, costs: costs)
        let quotas = tenant.quotaViews(tenant.quotaUnits(items))
        var countedUnits: [String: UInt64] = [:]
        var total: Tokens = 0
        var fitting = 0
        var estimateItems: [EstimateItem] = []
        for (position, (item, cost)) in zip(items, costs).enumerated() {
            total += cost
            if quotas.contains(where: { $0.feature == item.feature }) { countedUnits[item.feature, default: 0] += item.quantity }
            let quotasFit = quotas.allSatisfy { countedUnits[$0.feature, default: 0] <= $0.limit.subtractingClamped($0.used) }
            if total <= remaining, position < covered, quotasFit, fitting == estimateItems.count { fitting += 1 }
            estimateItems.append(EstimateItem(feature: item.feature, quantity: item.quantity, cost: cost))
        }
        let quotasFit = quotas.allSatisfy { $0.requested <= $0.limit.subtractingClamped($0.used) }
        return EstimateView(
            catalogVersion: catalog.version, items: estimateItems, total: total,
            affordable: total <= remaining && covered == items.count && quotasFit, itemsAffordable: fitting, binding: binding,
            headroom: remaining, headroomDetail: headroom, quotas: quotas)
    }

    /// One page of the tenant's history, oldest first.
    /// The tenant's retained events after `afterID` (nil: none, only where the log stands, for a
    /// subscriber that starts from now), at most `limit` (1 to ``Limits/eventPageMax``).
    public func events(_ tenantID: TenantID, after afterID: UInt64?, limit: Int) throws(LedgerError) -> EventPage {
        _ = try tenant(tenantID)
        guard limit >= 1, limit <= Limits.eventPageMax else {
            throw LedgerError(.invalidArgument, "an event page holds 1 to \(Limits.eventPageMax) events")
        }
        let log = eventLogs[tenantID] ?? EventLog()
        guard let afterID else {
            return EventPage(events: [], oldestRetainedID: log.oldestRetainedID, latestID: log.lastID, lost: 0)
        }
        guard afterID <= log.lastID else {
            throw LedgerError(.invalidArgument, "event id \(afterID) is after the newest event of tenant \(tenantID) (\(log.lastID))")
        }
        let lost = afterID + 1 < log.oldestRetainedID ? log.oldestRetainedID - afterID - 1 : 0
        return EventPage(
            events: log.events(of: tenantID, after: afterID, limit: limit), oldestRetainedID: log.oldestRetainedID, latestID: log.lastID,
            lost: lost)
    }

    public func history(_ tenantID: TenantID, filter: HistoryFilter) throws(LedgerError) -> HistoryPage {
        let tenant = try tenant(tenantID)
        guard filter.limit >= 1, filter.limit <= Limits.historyPageMax else {
            throw LedgerError(.invalidArgument, "a history page holds 1 to \(Limits.historyPageMax) entries")
        }
        var entries: [HistoryEntry] = []
        // Sequence n is at index n - 1, so the cursor is a direct index.
        let start = Int(min(filter.afterSequence, UInt64(tenant.history.count)))
        var nextCursor: UInt64? = nil
        for entry in IteratorSequence(tenant.history.entries(from: start)) {
            if let member = filter.member, entry.member != member { continue }
            if let source = filter.source, entry.source != source { continue }
            if let kinds = filter.kinds, !kinds.contains(entry.kind) { continue }
            if let since = filter.since, entry.time < since { continue }
            if let until = filter.until, entry.time >= until { break }
            if entries.count == filter.limit {
                nextCursor = entries.last!.sequence
                break
            }
            entries.append(entry)
        }
        return HistoryPage(entries: entries, nextCursor: nextCursor)
    }
}

extension LedgerState {
    /// Counts for metrics: tenants, frozen tenants, open holds and the tokens they hold (a pass over
    /// the tenants that decodes none).
    public var totals: (tenants: Int, frozenTenants: Int, openHolds: Int, tokensHeld: Tokens) {
        let (holds, held) = tenants.openHoldTotals
        return (tenants.count, tenants.frozenCount, holds, held)
    }
}

extension LedgerState {
    /// Freezes tenants left unchanged since the previous visit (see
    /// ``TenantTable/freezeIdle(cursor:visits:freezesMax:)``): their representation changes, their
    /// value does not. Returns how many tenants it visited and how many it froze.
    public mutating func freezeIdleTenants(cursor: inout Int, visits: Int, freezesMax: Int) -> (visited: Int, frozen: Int) {
        tenants.freezeIdle(cursor: &cursor, visits: visits, freezesMax: freezesMax)
    }

    /// Freezes every tenant that may be frozen (tests).
    package mutating func freezeAllTenants() -> Int { tenants.freezeAll() }
}
