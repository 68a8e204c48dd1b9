// Reservations: reserve, commit, release, expiry and refund.

/// The limit that binds first for a requested amount.
public enum BindingLimit: String, Hashable, Sendable, Codable {
    /// The tenant's shared pool (plus the overdraft, for a final over-capture).
    case pool
    case memberBudget = "member_budget"
    /// The plan's per-period spend limit.
    case plan
}

/// How much more each limit allows right now.
public struct Headroom: Hashable, Sendable {
    public var pool: Tokens
    /// Nil without a member budget.
    public var budget: (remaining: Tokens, cap: Tokens, resetsAt: LedgerTime)?
    /// Nil without a plan spend limit.
    public var plan: (remaining: Tokens, limit: Tokens, resetsAt: LedgerTime)?

    public static func == (lhs: Headroom, rhs: Headroom) -> Bool {
        lhs.pool == rhs.pool && lhs.budget?.remaining == rhs.budget?.remaining && lhs.budget?.cap == rhs.budget?.cap
            && lhs.budget?.resetsAt == rhs.budget?.resetsAt && lhs.plan?.remaining == rhs.plan?.remaining
            && lhs.plan?.limit == rhs.plan?.limit && lhs.plan?.resetsAt == rhs.plan?.resetsAt
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(pool)
        hasher.combine(budget?.remaining)
        hasher.combine(plan?.remaining)
    }

    /// The smallest of the limits and which it is; on a tie the pool, then the budget, binds.
    public var binding: (limit: BindingLimit, remaining: Tokens) {
        var result = (BindingLimit.pool, pool)
        if let budget, budget.remaining < result.1 { result = (.memberBudget, budget.remaining) }
        if let plan, plan.remaining < result.1 { result = (.plan, plan.remaining) }
        return result
    }

    /// The typed error for asking `amount`, or nil when every limit allows it.
    func refusal(_ amount: Tokens, poolAvailable: Tokens) -> LedgerError? {
        let (limit, remaining) = binding
        guard amount > remaining else { return nil }
        switch limit {
        case .pool:
            return LedgerError(
                .insufficientBalance, "\(amount) tokens requested, \(remaining) available",
                details: .balance(available: poolAvailable, requested: amount))
        case .memberBudget:
            let budget = budget!
            return LedgerError(
                .budgetExceeded, "\(amount) tokens requested, \(budget.remaining) of the budget of \(budget.cap) left until \(budget.resetsAt)",
                details: .budget(remaining: budget.remaining, cap: budget.cap, resetsAt: budget.resetsAt))
        case .plan:
            let plan = plan!
            return LedgerError(
                .planLimitReached, "\(amount) tokens requested, \(plan.remaining) of the plan's limit of \(plan.limit) left until \(plan.resetsAt)",
                details: .plan(remaining: plan.remaining, limit: plan.limit, resetsAt: plan.resetsAt))
        }
    }
}

extension Tenant {
    /// What each limit allows now for `member`; `overdraft` adds the unused overdraft to the pool.
    /// `pool`: the unheld tokens that may pay (nil: those of unscoped grants, for spending by tokens).
    public func headroom(member: Member?, overdraft: Bool = false, pool: Tokens? = nil) -> Headroom {
        var pool = pool ?? available(payingFor: nil)
        if overdraft { pool += settings.overdraftLimit.subtractingClamped(debt) }
        var result = Headroom(pool: pool)
        if let member, let budget = member.settings.budget {
            result.budget = (member.budgetRemaining!, budget.cap, member.periodEnd)
        }
        if let plan = settings.plan, plan.spendLimit > 0, let period = planPeriod {
            result.plan = (plan.spendLimit.subtractingClamped(period.used + heldTotal), plan.spendLimit, period.end)
        }
        return result
    }

    func refuse(_ error: LedgerError, member: MemberID?, requested: Tokens, _ ctx: inout ApplyContext) -> LedgerError {
        if error.code == .budgetExceeded, let member, case .budget(let remaining, let cap, let resetsAt)? = error.details {
            ctx.emit(id, .budgetExceeded(member: member, requested: requested, remaining: remaining, cap: cap, resetsAt: resetsAt))
        }
        return error
    }

    // MARK: - Reserve

    /// The amount a reserve asks for, pricing items with the installed catalog: the total, the
    /// catalog's version, the items and each item's cost.
    static func price(_ amount: ReserveRequest.Amount, catalog: PriceCatalog?) throws(LedgerError)
        -> (Tokens, String?, [PricedItem], [Tokens])
    {
        switch amount {
        case .tokens(let tokens):
            try checkAmount(tokens, "reserve amount")
            return (tokens, nil, [], [])
        case .items(let items):
            guard let catalog else { throw LedgerError(.invalidArgument, "no price catalog is installed") }
            var total: Tokens = 0
            let costs = try catalog.price(items)
            for cost in costs { total += cost }  // <= 1,000 x 10^15: no overflow
            guard total <= Limits.amountMax else {
                throw LedgerError.limit("amount_max", Limits.amountMax, "the items cost \(total), above \(Limits.amountMax)")
            }
            return (total, catalog.version, items, costs)
        }
    }

    /// The features of items, each once, in order (nil for none: spending by tokens).
    static func features(of items: [PricedItem]) -> [String]? {
        guard !items.isEmpty else { return nil }
        var features: [String] = []
        for item in items where !features.contains(item.feature) { features.append(item.feature) }
        return features
    }

    // MARK: - Quotas

    /// The units `items` count against the plan's quotas, per quota feature (sorted); empty without
    /// a plan period or a quota among the items' features.
    func quotaUnits(_ items: [PricedItem]) -> [FeatureUnits] {
        guard let plan = settings.plan, !plan.quotas.isEmpty, planPeriod != nil else { return [] }
        var units: [FeatureUnits] = []
        for quota in plan.quotas {
            var count: UInt64 = 0
            for item in items where item.feature == quota.feature { count += item.quantity }  // <= 1,000 x 10^12
            if count > 0 { units.append(FeatureUnits(feature: quota.feature, units: count)) }
        }
        return units
    }

    /// Each plan quota `units` touch: what the period counted, the limit, the reset and the units
    /// asked.
    func quotaViews(_ units: [FeatureUnits]) -> [QuotaView] {
        guard let plan = settings.plan, let period = planPeriod else { return [] }
        return units.compactMap { asked in
            plan.quota(asked.feature).map {
                QuotaView(feature: $0.feature, used: period.used($0.feature), limit: $0.limit, resetsAt: period.end, requested: asked.units)
            }
        }
    }

    /// `quota_exceeded` for the first quota that cannot count `units`, or nil.
    func quotaRefusal(_ units: [FeatureUnits]) -> LedgerError? {
        for view in quotaViews(units) where view.requested > view.limit.subtractingClamped(view.used) {
            return LedgerError(
                .quotaExceeded,
                "\(view.requested) \(view.feature) asked, \(view.used) of the plan's \(view.limit) used until \(view.resetsAt)",
                details: .quota(feature: view.feature, used: view.used, limit: view.limit, resetsAt: view.resetsAt, requested: view.requested))
        }
        return nil
    }

    /// Gives a hold's quota units back to the period that counted them, if it is still running and
    /// the hold ended with nothing spent (never captured, or refunded in full): the work did not
    /// count.
    private mutating func returnQuotaIfUnspent(_ hold: inout Hold) {
        guard hold.state != .held, hold.captured == hold.refunded, let quota = hold.quota, let period = planPeriod,
            period.start == quota.periodStart, period.generation == quota.generation
        else { return }
        for units in quota.units { planPeriod!.count(units, adding: false) }
        hold.quota = nil
    }

    static func holdTTLMilliseconds(_ ttl: Duration?) throws(LedgerError) -> Int64 {
        let ttl = ttl ?? Limits.holdTTLDefault
        guard ttl >= Limits.holdTTLMin, ttl <= Limits.holdTTLMax else {
            throw LedgerError(
                .invalidArgument,
                "hold TTL must be \(Limits.holdTTLMin.wholeMilliseconds / 1000) s to \(Limits.holdTTLMax.wholeMilliseconds / 1000) s")
        }
        return ttl.wholeMilliseconds
    }

    mutating func reserve(_ request: ReserveRequest, _ ctx: inout ApplyContext) throws(LedgerError) -> Hold {
        try place(request, charging: false, &ctx)
    }

    /// A charge: the checks of a reserve, then a final commit of the whole amount, in one command.
    /// The hold exists only to be refunded by its id later: it is never open, holds no tokens, and
    /// has no expiry. Its history is the reserve and the captures of its hold, as for a reserve
    /// and commit.
    mutating func charge(_ request: ReserveRequest, _ ctx: inout ApplyContext) throws(LedgerError) -> CommandOutcome {
        let hold = try place(request, charging: true, &ctx)
        let outcome = try commit(hold.id, amount: hold.amount, final: true, &ctx)
        guard case .committed(let committed, let captured, let released) = outcome, released == 0 else {
            preconditionFailure("a charge's commit of its whole amount left \(outcome)")
        }
        return .charged(committed, charged: captured)
    }

    /// Places a hold (a reserve, or the first half of a charge, which the caller commits at once:
    /// no TTL, no open-hold limit, no expiry scheduled).
    private mutating func place(_ request: ReserveRequest, charging: Bool, _ ctx: inout ApplyContext) throws(LedgerError) -> Hold {
        try IdentifierRule.check(request.hold.rawValue, field: "hold id")
        if let member = request.member { try IdentifierRule.check(member.rawValue, field: "member id") }
        let ttl = charging ? 0 : try Self.holdTTLMilliseconds(request.ttl)
        let (amount, catalogVersion, items, costs) = try Self.price(request.amount, catalog: ctx.catalog)
        guard !holds.contains(request.hold) else { throw LedgerError(.alreadyExists, "hold \(request.hold) exists already") }
        guard charging || openHoldCount < Limits.openHoldsPerTenantMax else {
            throw LedgerError.limit("open_holds_per_tenant_max", UInt64(Limits.openHoldsPerTenantMax), "tenant \(id) has \(Limits.openHoldsPerTenantMax) open holds already")
        }
        var member = try request.member.map { (memberID) throws(LedgerError) in try self.member(memberID, creating: true, ctx) }
        let units = quotaUnits(items)
        if let refusal = quotaRefusal(units) { throw refusal }
        // Items may draw on the grants scoped to their features; tokens only on unscoped grants.
        let pool = available(payingFor: Self.features(of: items), anyOne: true)
        if let refusal = headroom(member: member, pool: pool).refusal(amount, poolAvailable: pool) {
            throw refuse(refusal, member: request.member, requested: amount, &ctx)
        }
        let draws = items.isEmpty ? planDraw(amount, payingFor: nil) : planDraw(items: items, costs: costs).draws
        guard let allocations = draws else {
            // The pool covers the total, but not item by item within the grants' scopes.
            throw LedgerError(
                .insufficientBalance, "\(amount) tokens requested; the grants that may pay for each item cover less",
                details: .balance(available: pool, requested: amount))
        }

        for allocation in allocations {
            grants[index(allocation.grant)].held += allocation.amount
            record(.reserve, ctx, amount: allocation.amount, member: request.member, hold: request.hold, grant: allocation.grant)
        }
        if member != nil {
            member!.held += amount
            members[member!.id] = member!
        }
        heldTotal += amount
        openHoldCount += 1
        var hold = Hold(
            id: request.hold, member: request.member, state: .held, amount: amount, allocations: allocations, held: amount,
            captured: 0, captures: [], overdraftCaptured: 0, refunded: 0, createdAt: ctx.now,
            expiresAt: ctx.now.adding(milliseconds: ttl), resolvedAt: nil, catalogVersion: catalogVersion, items: items,
            budgetPeriodOfCapture: nil, planPeriodOfCapture: nil)
        if !units.isEmpty, let period = planPeriod {
            for count in units { planPeriod!.count(count, adding: true) }
            hold.quota = HoldQuota(periodStart: period.start, generation: period.generation, units: units)
        }
        holds.update(hold)
        if !charging { ctx.schedule(hold.expiresAt, .holdExpiry(request.hold)) }
        return hold
    }

    // MARK: - Commit, release, expiry

    /// The open hold, or the error that says why it is not open.
    func openHold(_ holdID: HoldID) throws(LedgerError) -> Hold {
        try IdentifierRule.check(holdID.rawValue, field: "hold id")
        guard let hold = holds[holdID] else { throw LedgerError.notFound("hold \(holdID)") }
        switch hold.state {
        case .held: return hold
        case .committed: throw LedgerError(.alreadyCommitted, "hold \(holdID) was committed at \(hold.resolvedAt!)")
        case .released: throw LedgerError(.alreadyReleased, "hold \(holdID) was released at \(hold.resolvedAt!)")
        case .expired: throw LedgerError(.expired, "hold \(holdID) expired at \(hold.resolvedAt!)")
        }
    }

    mutating func commit(_ holdID: HoldID, amount: Tokens, final: Bool, _ ctx: inout ApplyContext) throws(LedgerError)
        -> CommandOutcome
    {
        var hold = try openHold(holdID)
        try Self.checkAmount(amount, "commit amount", allowZero: final && hold.captured > 0)
        var extraDraws: [Allocation] = []
        var extraDebt: Tokens = 0
        if amount > hold.held {
            guard final else {
                throw LedgerError(
                    .invalidArgument, "a partial commit of \(amount) exceeds the \(hold.held) tokens still held; only a final commit may capture more")
            }
            let extra = amount - hold.held
            let member = hold.member.flatMap { members[$0] }
            // Beyond the hold: from the grants that may pay for every item of the hold.
            let features = Self.features(of: hold.items)
            let pool = available(payingFor: features)
            if let refusal = headroom(member: member, overdraft: true, pool: pool).refusal(extra, poolAvailable: pool) {
                throw refuse(refusal, member: hold.member, requested: extra, &ctx)
            }
            let fromPool = min(extra, pool)
            extraDraws = planDraw(fromPool, payingFor: features)!
            extraDebt = extra - fromPool
        }

        // Every check is behind: the table's copy of the hold goes, so that its allocations are
        // this value's alone and change in place below (they were copied, an allocation every
        // commit); `holds.update(_:droppedOpen:)` stores the hold again at the end.
        holds.dropOpen(holdID)
        // Capture from the hold's own allocations, in the order they were reserved.
        var toCapture = min(amount, hold.held)
        var index = 0
        while toCapture > 0 {
            let take = min(hold.allocations[index].amount, toCapture)
            let grantID = hold.allocations[index].grant
            grants[self.index(grantID)].held -= take
            capture(Allocation(grant: grantID, amount: take), into: &hold, ctx)
            hold.allocations[index].amount -= take
            hold.held -= take
            heldTotal -= take
            if let memberID = hold.member { members[memberID]!.held -= take }
            toCapture -= take
            index += 1
        }
        hold.allocations.removeAll { $0.amount == 0 }
        for draw in extraDraws { capture(draw, into: &hold, ctx) }
        if extraDebt > 0 {
            debt += extraDebt
            hold.overdraftCaptured += extraDebt
            hold.captured += extraDebt
            capturedTotal += extraDebt
            countSpending(extraDebt, hold: &hold)
            record(.overdraft, ctx, amount: extraDebt, member: hold.member, hold: holdID)
        }
        var released: Tokens = 0
        if final {
            released = hold.held
            resolve(&hold, as: .committed, returning: .release, ctx)
            returnQuotaIfUnspent(&hold)
        }
        holds.update(hold, droppedOpen: true)
        return .committed(hold, captured: amount, released: released)
    }

    /// A new expiry for an open hold: `ttl` from now, within the TTL limits (it may come sooner
    /// than the old one). The old expiry's due entry finds the hold changed and does nothing.
    mutating func extendHold(_ holdID: HoldID, ttl: Duration, _ ctx: inout ApplyContext) throws(LedgerError) -> Hold {
        var hold = try openHold(holdID)
        let milliseconds = try Self.holdTTLMilliseconds(ttl)
        hold.expiresAt = ctx.now.adding(milliseconds: milliseconds)
        holds.update(hold)
        ctx.schedule(hold.expiresAt, .holdExpiry(holdID))
        return hold
    }

    /// Holds `amount` more tokens on an open hold, checked as a reserve of `amount` would be (pool,
    /// the hold's member's budget, the plan limit; the binding limit's error, nothing changed). The
    /// tokens come from grants in burn-down order, after the hold's earlier allocations.
    mutating func increaseHold(_ holdID: HoldID, amount: Tokens, _ ctx: inout ApplyContext) throws(LedgerError) -> CommandOutcome {
        var hold = try openHold(holdID)
        try Self.checkAmount(amount, "increase amount")
        guard amount <= Limits.amountMax - hold.amount else {
            throw LedgerError.limit(
                "amount_max", Limits.amountMax, "the hold would hold \(hold.amount) + \(amount), above \(Limits.amountMax)")
        }
        let member = hold.member.flatMap { members[$0] }
        // From the grants that may pay for every item of the hold (unscoped ones for a hold by tokens).
        let features = Self.features(of: hold.items)
        let pool = available(payingFor: features)
        if let refusal = headroom(member: member, pool: pool).refusal(amount, poolAvailable: pool) {
            throw refuse(refusal, member: hold.member, requested: amount, &ctx)
        }
        for allocation in planDraw(amount, payingFor: features)! {
            grants[index(allocation.grant)].held += allocation.amount
            record(.reserve, ctx, amount: allocation.amount, member: hold.member, hold: holdID, grant: allocation.grant)
            if let last = hold.allocations.indices.last, hold.allocations[last].grant == allocation.grant {
                hold.allocations[last].amount += allocation.amount
            } else {
                hold.allocations.append(allocation)
            }
        }
        if let memberID = hold.member { members[memberID]!.held += amount }
        heldTotal += amount
        hold.amount += amount
        hold.held += amount
        holds.update(hold)
        return .holdIncreased(hold, increased: amount)
    }

    /// Captures unheld-or-held tokens already taken off the grant's `held` by the caller.
    private mutating func capture(_ draw: Allocation, into hold: inout Hold, _ ctx: ApplyContext) {
        let position = index(draw.grant)
        grants[position].remaining -= draw.amount
        grants[position].consumed += draw.amount
        // One entry per run of captures from the same grant, in capture order, so that a refund
        // walks them back last first (a grant drawn again after another keeps two entries).
        if let last = hold.captures.indices.last, hold.captures[last].grant == draw.grant {
            hold.captures[last].amount += draw.amount
        } else {
            hold.captures.append(draw)
        }
        hold.captured += draw.amount
        capturedTotal += draw.amount
        countSpending(draw.amount, hold: &hold)
        record(.capture, ctx, amount: draw.amount, member: hold.member, hold: hold.id, grant: draw.grant)
    }

    /// Adds captured tokens to the member's budget period and the plan meter, and notes the periods
    /// on the hold for later refunds.
    private mutating func countSpending(_ amount: Tokens, hold: inout Hold) {
        if let memberID = hold.member, members[memberID]!.settings.budget != nil {
            members[memberID]!.spentInPeriod += amount
            hold.budgetPeriodOfCapture = members[memberID]!.periodStart
        }
        if planPeriod != nil {
            planPeriod!.used += amount
            hold.planPeriodOfCapture = planPeriod!.start
        }
    }

    /// Returns everything the hold still holds and closes it.
    private mutating func resolve(_ hold: inout Hold, as state: HoldState, returning kind: HistoryKind, _ ctx: ApplyContext) {
        for allocation in hold.allocations { returnHeld(allocation, as: kind, hold: hold, ctx) }
        heldTotal -= hold.held
        if let memberID = hold.member { members[memberID]!.held -= hold.held }
        hold.allocations = []
        hold.held = 0
        hold.state = state
        hold.resolvedAt = ctx.now
        openHoldCount -= 1
    }

    mutating func release(_ holdID: HoldID, _ ctx: inout ApplyContext) throws(LedgerError) -> CommandOutcome {
        var hold = try openHold(holdID)
        let released = hold.held
        resolve(&hold, as: .released, returning: .release, ctx)
        returnQuotaIfUnspent(&hold)
        holds.update(hold)
        return .released(hold, released: released)
    }

    mutating func expireHold(_ holdID: HoldID, _ ctx: inout ApplyContext) {
        guard var hold = holds.open[holdID], hold.expiresAt == ctx.now else { return }
        let released = hold.held
        resolve(&hold, as: .expired, returning: .holdExpired, ctx)
        returnQuotaIfUnspent(&hold)
        holds.update(hold)
        ctx.emit(id, .holdExpired(hold: holdID, released: released))
    }

    // MARK: - Refund

    /// Returns captured tokens: the overdraft part first (reducing debt), then grant by grant in
    /// reverse capture order. Tokens whose grant is no longer active go to one new non-expiring
    /// refund grant.
    mutating func refund(_ holdID: HoldID, amount: Tokens, _ ctx: inout ApplyContext) throws(LedgerError) -> CommandOutcome {
        try IdentifierRule.check(holdID.rawValue, field: "hold id")
        guard var hold = holds[holdID] else { throw LedgerError.notFound("hold \(holdID)") }
        try Self.checkAmount(amount, "refund amount")
        let refundable = hold.captured - hold.refunded
        guard amount <= refundable else {
            throw LedgerError(.invalidArgument, "refund of \(amount) exceeds the \(refundable) captured tokens not yet refunded")
        }
        // Worst case every token goes to a new grant.
        try checkGrantable(amount)

        var left = amount
        var toNewGrant: Tokens = 0
        if hold.overdraftCaptured > 0 {
            let take = min(hold.overdraftCaptured, left)
            hold.overdraftCaptured -= take
            left -= take
            let fromDebt = min(take, debt)
            debt -= fromDebt
            toNewGrant += take - fromDebt
            if fromDebt > 0 { record(.refund, ctx, amount: fromDebt, member: hold.member, hold: holdID) }
        }
        var position = hold.captures.count - 1
        while left > 0 {
            let grantID = hold.captures[position].grant
            let take = min(hold.captures[position].amount, left)
            hold.captures[position].amount -= take
            left -= take
            position -= 1
            guard grants[index(grantID)].state == .active else {
                toNewGrant += take
                continue
            }
            grants[index(grantID)].remaining += take
            grants[index(grantID)].consumed -= take
            insertActive(grantID)
            record(.refund, ctx, amount: take, member: hold.member, hold: holdID, grant: grantID)
        }
        hold.captures.removeAll { $0.amount == 0 }
        var newGrant: GrantID? = nil
        if toNewGrant > 0 {
            newGrant = addGrant(
                kind: .refund, amount: toNewGrant, effectiveAt: ctx.now, expiresAt: nil, priority: Grant.defaultPriority,
                note: "refund of hold \(holdID)", &ctx)
            record(.refund, ctx, amount: toNewGrant, member: hold.member, hold: holdID, grant: newGrant)
        }
        hold.refunded += amount
        refundedTotal += amount
        if let memberID = hold.member, let member = members[memberID], member.settings.budget != nil,
            hold.budgetPeriodOfCapture == member.periodStart
        {
            members[memberID]!.spentInPeriod -= min(amount, member.spentInPeriod)
        }
        if let period = planPeriod, hold.planPeriodOfCapture == period.start {
            planPeriod!.used -= min(amount, period.used)
        }
        returnQuotaIfUnspent(&hold)
        holds.update(hold)
        return .refunded(hold, refunded: amount, newGrant: newGrant)
    }
}
