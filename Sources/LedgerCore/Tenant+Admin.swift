// Tenant configuration, members, grants, purchases, plans and what falls due for them.

extension Tenant {
    // MARK: - Settings

    static func validate(_ settings: TenantSettings) throws(LedgerError) {
        if let plan = settings.plan { try validate(plan) }
        try validate(settings.purchaseRules)
        try checkAmount(settings.overdraftLimit, "overdraft limit", allowZero: true)
        try checkAmount(settings.lowBalanceThreshold, "low-balance threshold", allowZero: true)
        try validate(settings.lowBalanceThresholds)
    }

    /// Further thresholds: at most ``Limits/lowBalanceThresholdsMax``, each positive (a percentage
    /// 1 to 100), none twice.
    static func validate(_ thresholds: [BalanceThreshold]) throws(LedgerError) {
        guard thresholds.count <= Limits.lowBalanceThresholdsMax else {
            throw LedgerError.limit(
                "low_balance_thresholds_max", UInt64(Limits.lowBalanceThresholdsMax),
                "at most \(Limits.lowBalanceThresholdsMax) further low-balance thresholds")
        }
        for (position, threshold) in thresholds.enumerated() {
            switch threshold {
            case .tokens(let tokens): try checkAmount(tokens, "low-balance threshold")
            case .percent(let percent):
                guard (1...100).contains(percent) else { throw LedgerError(.invalidArgument, "a low-balance threshold percentage is 1 to 100") }
            }
            guard !thresholds[..<position].contains(threshold) else { throw LedgerError(.invalidArgument, "a low-balance threshold appears twice") }
        }
    }

    static func validate(_ plan: Plan) throws(LedgerError) {
        try checkAmount(plan.allowance, "plan allowance", allowZero: true)
        try checkAmount(plan.rolloverCap, "rollover cap", allowZero: true)
        try checkAmount(plan.spendLimit, "plan spend limit", allowZero: true)
        guard plan.quotas.count <= Limits.planQuotasMax else {
            throw LedgerError.limit("plan_quotas_max", UInt64(Limits.planQuotasMax), "a plan has at most \(Limits.planQuotasMax) quotas")
        }
        try checkFeatures(plan.quotas.map(\.feature), "quota feature")
        for quota in plan.quotas where quota.limit > Limits.quotaLimitMax {
            throw LedgerError(.invalidArgument, "quota \(quota.feature): the limit is at most \(Limits.quotaLimitMax)")
        }
    }

    /// Catalog feature names: each valid and named once.
    static func checkFeatures(_ features: [String], _ what: String) throws(LedgerError) {
        var seen: Set<String> = []
        for feature in features {
            try IdentifierRule.check(feature, field: what)
            guard seen.insert(feature).inserted else { throw LedgerError(.invalidArgument, "\(what) \(feature) appears twice") }
        }
    }

    /// The plan as stored: quotas sorted by feature (any order is accepted).
    static func canonical(_ plan: Plan) -> Plan {
        var plan = plan
        plan.quotas.sort { $0.feature < $1.feature }
        return plan
    }

    static func validate(_ rules: PurchaseRules) throws(LedgerError) {
        guard (1...PurchaseRules.tokensPerRateMax).contains(rules.tokensPerRate) else {
            throw LedgerError(.invalidArgument, "tokens per rate must be 1 to \(PurchaseRules.tokensPerRateMax)")
        }
        guard (1...1_000_000).contains(rules.minorUnitsPerRate) else {
            throw LedgerError(.invalidArgument, "minor units per rate must be 1 to 1000000")
        }
        guard rules.minimumMinor <= Limits.purchaseMoneyMax else {
            throw LedgerError(.invalidArgument, "minimum purchase must be at most \(Limits.purchaseMoneyMax)")
        }
        guard rules.bonusTiers.count <= Limits.bonusTiersMax else {
            throw LedgerError.limit("bonus_tiers_max", UInt64(Limits.bonusTiersMax), "at most \(Limits.bonusTiersMax) bonus tiers")
        }
        var previous: UInt64? = nil
        for tier in rules.bonusTiers {
            guard tier.basisPoints <= PurchaseRules.bonusBasisPointsMax else {
                throw LedgerError(.invalidArgument, "a bonus is at most \(PurchaseRules.bonusBasisPointsMax) basis points")
            }
            if let previous, tier.fromMinor <= previous {
                throw LedgerError(.invalidArgument, "bonus tiers must ascend strictly by their threshold")
            }
            previous = tier.fromMinor
        }
    }

    static func checkAmount(_ amount: Tokens, _ what: String, allowZero: Bool = false) throws(LedgerError) {
        if amount == 0, !allowZero { throw LedgerError(.invalidArgument, "\(what) must be positive") }
        guard amount <= Limits.amountMax else {
            throw LedgerError.limit("amount_max", Limits.amountMax, "\(what) must be at most \(Limits.amountMax)")
        }
    }

    static func checkNote(_ note: String) throws(LedgerError) {
        guard note.utf8.count <= Limits.noteLengthMax else {
            throw LedgerError(.invalidArgument, "a note is at most \(Limits.noteLengthMax) bytes")
        }
    }

    mutating func configure(_ change: TenantSettingsChange, _ ctx: inout ApplyContext) throws(LedgerError) {
        if case .set(let plan)? = change.plan { try Self.validate(plan) }
        if let rules = change.purchaseRules { try Self.validate(rules) }
        if let overdraft = change.overdraftLimit { try Self.checkAmount(overdraft, "overdraft limit", allowZero: true) }
        if let threshold = change.lowBalanceThreshold {
            try Self.checkAmount(threshold, "low-balance threshold", allowZero: true)
        }
        if let thresholds = change.lowBalanceThresholds { try Self.validate(thresholds) }
        if planPeriod == nil, case .set(let plan)? = change.plan { try checkGrantable(plan.allowance) }

        if let rules = change.purchaseRules { settings.purchaseRules = rules }
        // New quota limits apply at once to what the running period has counted.
        if let overdraft = change.overdraftLimit { settings.overdraftLimit = overdraft }
        if let threshold = change.lowBalanceThreshold { settings.lowBalanceThreshold = threshold }
        if let thresholds = change.lowBalanceThresholds, thresholds != settings.lowBalanceThresholds {
            // A new list starts with every threshold not crossed; the next change reports those below.
            settings.lowBalanceThresholds = thresholds
            belowThresholds = 0
        }
        if let movementEvents = change.movementEvents { settings.movementEvents = movementEvents }
        record(.tenantConfigured, ctx, amount: 0)
        switch change.plan {
        case .set(let plan)?:
            settings.plan = Self.canonical(plan)
            // A running period keeps its grant; the new terms apply from the next renewal.
            if planPeriod == nil { startPlan(&ctx) }
        case .remove?:
            settings.plan = nil
            planPeriod = nil
            planGeneration += 1
        case nil:
            break
        }
    }

    /// Starts the plan's first period now: issues the full allowance for the period that contains
    /// now (no proration) and schedules the renewal.
    mutating func startPlan(_ ctx: inout ApplyContext) {
        planGeneration += 1
        issuePlanGrant(at: ctx.now, carried: 0, &ctx)
    }

    private mutating func issuePlanGrant(at time: LedgerTime, carried: Tokens, _ ctx: inout ApplyContext) {
        guard let plan = settings.plan else { return }
        let period = plan.period.period(containing: time)
        // The lifetime cap would be reached only after about a thousand periods at the largest
        // allowance; past it the plan issues what is left rather than failing a renewal.
        let amount = min(plan.allowance + carried, Limits.tenantTokensMax - grantedTotal)
        var grant: GrantID? = nil
        if amount > 0 {
            grant = addGrant(
                kind: .plan, amount: amount, effectiveAt: period.start, expiresAt: period.end,
                priority: Grant.defaultPriority, note: "plan period from \(period.start)", &ctx)
            record(.planRenewal, ctx, amount: amount, grant: grant)
            ctx.emit(id, .planRenewed(grant: grant!, amount: amount, periodStart: period.start, periodEnd: period.end))
        }
        planPeriod = PlanPeriod(grant: grant, start: period.start, end: period.end, used: 0, generation: planGeneration)
        ctx.schedule(period.end, .planRenewal(generation: planGeneration))
    }

    /// The plan's period ended: carry over what the rollover cap allows, then issue the next grant.
    /// The old grant's own expiry (ranked after renewal at the same instant) expires the rest.
    mutating func renewPlan(generation: UInt64, _ ctx: inout ApplyContext) {
        guard generation == planGeneration, let current = planPeriod, current.end == ctx.now, let plan = settings.plan
        else { return }
        var carried: Tokens = 0
        if plan.rolloverCap > 0, let old = current.grant, grants[index(old)].state == .active {
            carried = min(grants[index(old)].unheld, plan.rolloverCap)
            if carried > 0 {
                grants[index(old)].remaining -= carried
                grants[index(old)].carriedOver += carried
                record(.rollover, ctx, amount: carried, grant: old)
            }
        }
        issuePlanGrant(at: ctx.now, carried: carried, &ctx)
    }

    // MARK: - Members

    mutating func setMember(_ memberID: MemberID, _ settings: MemberSettings, _ ctx: inout ApplyContext) throws(LedgerError)
        -> Member
    {
        try IdentifierRule.check(memberID.rawValue, field: "member id")
        if let budget = settings.budget { try Self.checkAmount(budget.cap, "budget cap", allowZero: true) }
        if let threshold = settings.lowBalanceThreshold {
            try Self.checkAmount(threshold, "member threshold", allowZero: true)
        }
        try Self.validate(settings.lowBalanceThresholds)
        var member = try member(memberID, creating: true, ctx)
        let hadBudget = member.settings.budget != nil
        let oldThresholds = member.settings.lowBalanceThresholds
        member.settings = settings
        if let budget = settings.budget {
            // Changing a budget keeps what was spent in the running period; a first budget starts
            // from zero because spending without a budget is not tracked per period.
            if !hadBudget { member.spentInPeriod = 0 }
            let period = budget.period.period(containing: ctx.now)
            member.periodStart = period.start
            member.periodEnd = period.end
            member.budgetGeneration += 1
            ctx.schedule(period.end, .budgetReset(memberID, generation: member.budgetGeneration))
        } else {
            member.budgetGeneration += 1
            member.spentInPeriod = 0
        }
        if settings.lowBalanceThreshold == nil { member.belowThreshold = false }
        if settings.lowBalanceThresholds != oldThresholds {
            member.belowThresholds = 0
        }
        members[memberID] = member
        updateThresholdMembership(memberID)
        record(.memberConfigured, ctx, amount: settings.budget?.cap ?? 0, member: memberID)
        return member
    }

    /// The member, created without settings when `creating` is set and it is new.
    func member(_ memberID: MemberID, creating: Bool, _ ctx: ApplyContext) throws(LedgerError) -> Member {
        if let member = members[memberID] { return member }
        guard creating else { throw LedgerError.notFound("member \(memberID)") }
        guard members.count < Limits.membersPerTenantMax else {
            throw LedgerError.limit("members_per_tenant_max", UInt64(Limits.membersPerTenantMax), "tenant \(id) has \(Limits.membersPerTenantMax) members already")
        }
        return Member(
            id: memberID, settings: MemberSettings(), spentInPeriod: 0, held: 0, periodStart: ctx.now, periodEnd: ctx.now,
            budgetGeneration: 0, belowThreshold: false)
    }

    private mutating func updateThresholdMembership(_ memberID: MemberID) {
        let wanted = members[memberID]?.settings.hasThresholds ?? false
        var low = 0
        var high = thresholdMembers.count
        while low < high {
            let middle = (low + high) / 2
            if thresholdMembers[middle] < memberID { low = middle + 1 } else { high = middle }
        }
        let present = low < thresholdMembers.count && thresholdMembers[low] == memberID
        if wanted, !present { thresholdMembers.insert(memberID, at: low) }
        if !wanted, present { thresholdMembers.remove(at: low) }
    }

    mutating func resetBudget(_ memberID: MemberID, generation: UInt64, _ ctx: inout ApplyContext) {
        guard var member = members[memberID], member.budgetGeneration == generation, member.periodEnd == ctx.now,
            let budget = member.settings.budget
        else { return }
        let spent = member.spentInPeriod
        let period = budget.period.period(containing: ctx.now)
        member.spentInPeriod = 0
        member.periodStart = period.start
        member.periodEnd = period.end
        members[memberID] = member
        record(.budgetReset, ctx, amount: spent, member: memberID)
        ctx.emit(id, .budgetReset(member: memberID, periodStart: period.start, periodEnd: period.end))
        ctx.schedule(period.end, .budgetReset(memberID, generation: generation))
    }

    // MARK: - Grants and purchases

    mutating func grant(_ request: GrantRequest, _ ctx: inout ApplyContext) throws(LedgerError) -> Grant {
        guard !request.kind.isLedgerIssued else {
            throw LedgerError(.invalidArgument, "\(request.kind.rawValue) grants are issued by the ledger itself")
        }
        try Self.checkAmount(request.amount, "grant amount")
        try Self.checkNote(request.note)
        let effectiveAt = max(request.effectiveAt ?? ctx.now, ctx.now)
        if let expiresAt = request.expiresAt, expiresAt <= effectiveAt {
            throw LedgerError(.invalidArgument, "a grant must expire after it becomes effective and after now")
        }
        let priority = request.priority ?? Grant.defaultPriority
        guard priority <= Limits.grantPriorityMax else {
            throw LedgerError(.invalidArgument, "priority must be at most \(Limits.grantPriorityMax)")
        }
        guard request.scope.count <= Limits.grantScopeFeaturesMax else {
            throw LedgerError.limit(
                "grant_scope_features_max", UInt64(Limits.grantScopeFeaturesMax), "a grant's scope lists at most \(Limits.grantScopeFeaturesMax) features")
        }
        try Self.checkFeatures(request.scope, "scope feature")
        try checkGrantable(request.amount)
        try checkGrantSlots(1)
        let id = addGrant(
            kind: request.kind, amount: request.amount, effectiveAt: effectiveAt, expiresAt: request.expiresAt,
            priority: priority, note: request.note, scope: request.scope.sorted(), &ctx)
        return grants[index(id)]
    }

    private mutating func checkGrantSlots(_ count: Int) throws(LedgerError) {
        guard liveGrantCount() + count <= Limits.activeGrantsPerTenantMax else {
            throw LedgerError.limit(
                "active_grants_per_tenant_max", UInt64(Limits.activeGrantsPerTenantMax),
                "tenant \(id) has \(Limits.activeGrantsPerTenantMax) live grants already")
        }
    }

    /// Tokens and bonus tokens a purchase of `moneyMinor` buys under the tenant's rules.
    func purchaseTokens(_ moneyMinor: UInt64) throws(LedgerError) -> (tokens: Tokens, bonus: Tokens) {
        let rules = settings.purchaseRules
        guard moneyMinor >= max(rules.minimumMinor, 1) else {
            throw LedgerError(.invalidArgument, "the minimum purchase is \(max(rules.minimumMinor, 1)) minor units")
        }
        guard moneyMinor <= Limits.purchaseMoneyMax else {
            throw LedgerError.limit("purchase_money_max", Limits.purchaseMoneyMax, "a purchase is at most \(Limits.purchaseMoneyMax) minor units")
        }
        // moneyMinor <= 10^13 and tokensPerRate <= 10^5: the product fits in 64 bits.
        let tokens = moneyMinor * rules.tokensPerRate / rules.minorUnitsPerRate
        let basisPoints = rules.bonusTiers.last { moneyMinor >= $0.fromMinor }?.basisPoints ?? 0
        let bonus = tokens.multipliedFullWidth(by: UInt64(basisPoints))
        let bonusTokens = UInt64(10_000).dividingFullWidth(bonus).quotient
        guard tokens >= 1 else { throw LedgerError(.invalidArgument, "the purchase buys less than one token") }
        try Self.checkAmount(tokens, "purchased tokens")
        try Self.checkAmount(bonusTokens, "bonus tokens", allowZero: true)
        return (tokens, bonusTokens)
    }

    mutating func purchase(moneyMinor: UInt64, note: String, _ ctx: inout ApplyContext) throws(LedgerError) -> CommandOutcome {
        try Self.checkNote(note)
        let (tokens, bonus) = try purchaseTokens(moneyMinor)
        try checkGrantable(tokens + bonus)
        try checkGrantSlots(bonus > 0 ? 2 : 1)
        let purchaseID = addGrant(
            kind: .purchase, amount: tokens, effectiveAt: ctx.now, expiresAt: nil, priority: Grant.defaultPriority,
            moneyMinor: moneyMinor, note: note, &ctx)
        guard bonus > 0 else { return .purchased(purchase: grants[index(purchaseID)], bonus: nil) }
        let bonusID = addGrant(
            kind: .bonus, amount: bonus, effectiveAt: ctx.now, expiresAt: nil, priority: Grant.defaultPriority,
            linkedGrant: purchaseID, note: note, &ctx)
        grants[index(purchaseID)].linkedGrant = bonusID
        return .purchased(purchase: grants[index(purchaseID)], bonus: grants[index(bonusID)])
    }

    /// Voids the unheld remainder of an unused purchase and the matching share of its bonus:
    /// `bonusVoided = min(bonus unheld, bonus amount * voided / purchase amount)`. The money to
    /// return is the same share of what was paid, rounded down.
    mutating func refundPurchase(_ grantID: GrantID, _ ctx: inout ApplyContext) throws(LedgerError) -> CommandOutcome {
        guard let purchase = grant(grantID) else { throw LedgerError.notFound("grant \(grantID)") }
        guard purchase.kind == .purchase else { throw LedgerError(.invalidArgument, "grant \(grantID) is not a purchase") }
        guard purchase.state == .active else {
            throw LedgerError(.invalidArgument, "purchase \(grantID) is \(purchase.state.rawValue) and cannot be refunded")
        }
        let unused = purchase.unheld
        guard unused > 0 else { throw LedgerError(.invalidArgument, "purchase \(grantID) has no unused tokens to refund") }
        var bonusVoided: Tokens = 0
        if let bonusID = purchase.linkedGrant, let bonus = grant(bonusID), bonus.state == .active {
            let share = UInt64(purchase.amount).dividingFullWidth(bonus.amount.multipliedFullWidth(by: unused)).quotient
            bonusVoided = min(bonus.unheld, share)
        }
        let money = UInt64(purchase.amount).dividingFullWidth(purchase.moneyMinor.multipliedFullWidth(by: unused)).quotient
        voidUnheld(grantID, amount: unused, markVoided: true, ctx)
        if bonusVoided > 0, let bonusID = purchase.linkedGrant {
            voidUnheld(bonusID, amount: bonusVoided, markVoided: false, ctx)
        }
        let bonus = purchase.linkedGrant.flatMap { grant($0) }
        return .purchaseRefunded(
            purchase: grants[index(grantID)], bonus: bonus, voided: unused, bonusVoided: bonusVoided, moneyRefundMinor: money)
    }

    mutating func voidGrant(_ grantID: GrantID, _ ctx: inout ApplyContext) throws(LedgerError) -> CommandOutcome {
        guard let grant = grant(grantID) else { throw LedgerError.notFound("grant \(grantID)") }
        guard grant.state == .active || grant.state == .pending else {
            throw LedgerError(.invalidArgument, "grant \(grantID) is \(grant.state.rawValue) already")
        }
        let amount = grant.unheld
        if grant.state == .pending { pendingGrantCount -= 1 }
        voidUnheld(grantID, amount: amount, markVoided: true, ctx)
        return .voided(grants[index(grantID)], amount: amount)
    }

    /// Voids `amount` unheld tokens; with `markVoided` the grant is closed (held tokens stay
    /// capturable and are voided when released).
    private mutating func voidUnheld(_ grantID: GrantID, amount: Tokens, markVoided: Bool, _ ctx: ApplyContext) {
        let position = index(grantID)
        grants[position].remaining -= amount
        grants[position].voided += amount
        if markVoided { grants[position].state = .voided }
        record(.void, ctx, amount: amount, grant: grantID)
    }

    mutating func activateGrant(_ grantID: GrantID, _ ctx: inout ApplyContext) {
        guard let grant = grant(grantID), grant.state == .pending, grant.effectiveAt == ctx.now else { return }
        grants[index(grantID)].state = .active
        pendingGrantCount -= 1
        insertActive(grantID)
        record(.grantActivated, ctx, amount: grant.remaining, grant: grantID)
    }

    mutating func expireGrant(_ grantID: GrantID, _ ctx: inout ApplyContext) {
        guard let grant = grant(grantID), grant.state == .active || grant.state == .pending, grant.expiresAt == ctx.now
        else { return }
        let position = index(grantID)
        let amount = grant.unheld
        grants[position].remaining -= amount
        grants[position].expired += amount
        grants[position].state = .expired
        record(.grantExpired, ctx, amount: amount, grant: grantID)
        ctx.emit(id, .grantExpired(grant: grantID, kind: grant.kind, expired: amount))
    }
}
