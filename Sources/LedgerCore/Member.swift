/// A member's spending cap per period.
public struct Budget: Hashable, Sendable, Codable {
    /// Tokens the member may hold plus spend in one period.
    public var cap: Tokens
    public var period: PeriodRule

    public init(cap: Tokens, period: PeriodRule) {
        self.cap = cap
        self.period = period
    }
}

/// What `setMember` configures. It replaces the member's settings as a whole.
public struct MemberSettings: Hashable, Sendable, Codable {
    /// Nil: the member draws on the pool without a cap.
    public var budget: Budget?
    /// Nil: the member follows the tenant's threshold and gets no events of its own.
    public var lowBalanceThreshold: Tokens?
    /// Further thresholds of the member's own (a percentage is of its budget cap, or of the plan
    /// allowance without a budget); at most ``Limits/lowBalanceThresholdsMax``. Format 2.
    public var lowBalanceThresholds: [BalanceThreshold]

    public init(budget: Budget? = nil, lowBalanceThreshold: Tokens? = nil, lowBalanceThresholds: [BalanceThreshold] = []) {
        self.budget = budget
        self.lowBalanceThreshold = lowBalanceThreshold
        self.lowBalanceThresholds = lowBalanceThresholds
    }

    /// Whether the member has thresholds of its own.
    var hasThresholds: Bool { lowBalanceThreshold != nil || !lowBalanceThresholds.isEmpty }
}

/// A user, teacher or API key inside a tenant.
///
/// Invariant: `held` is the sum of `held` over the member's open holds.
public struct Member: Hashable, Sendable, Codable {
    public var id: MemberID
    public var settings: MemberSettings
    /// Tokens captured in the current budget period (net of refunds of captures in this period).
    public var spentInPeriod: Tokens
    /// Tokens the member's open holds still hold.
    public var held: Tokens
    /// The current budget period; meaningful only with a budget.
    public var periodStart: LedgerTime
    public var periodEnd: LedgerTime
    /// Counts budget changes, so that a reset scheduled under an older budget is ignored.
    public var budgetGeneration: UInt64
    /// Whether the member's spendable tokens are below its threshold override.
    public var belowThreshold: Bool
    /// Bit n: below its n-th further threshold (``MemberSettings/lowBalanceThresholds``).
    public var belowThresholds: UInt16 = 0

    /// What the member may still hold or spend in this period, or nil without a budget.
    public var budgetRemaining: Tokens? {
        guard let budget = settings.budget else { return nil }
        return budget.cap.subtractingClamped(spentInPeriod + held)
    }
}
