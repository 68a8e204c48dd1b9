/// What a history entry records.
public enum HistoryKind: String, Sendable, Codable, CaseIterable {
    case tenantCreated = "tenant_created"
    case tenantConfigured = "tenant_configured"
    case memberConfigured = "member_configured"
    /// Tokens credited by a grant, purchase or bonus.
    case grant
    /// A scheduled grant became effective.
    case grantActivated = "grant_activated"
    /// Tokens reserved from a grant by a hold.
    case reserve
    /// Held tokens captured (spent).
    case capture
    /// Tokens captured beyond the pool on a final commit, covered by the overdraft.
    case overdraft
    /// Overdraft debt paid back from a grant.
    case debtRepaid = "debt_repaid"
    /// Held tokens returned by a final commit or a release.
    case release
    /// Held tokens returned because the hold reached its time-to-live.
    case holdExpired = "hold_expired"
    /// Captured tokens returned.
    case refund
    /// Unused tokens of a grant voided.
    case void
    /// Unused tokens of a grant that expired.
    case grantExpired = "grant_expired"
    /// A plan grant issued for a new period.
    case planRenewal = "plan_renewal"
    /// Tokens of a plan grant carried into the next period's grant.
    case rollover
    /// A member's budget period started over.
    case budgetReset = "budget_reset"
    /// Spendable tokens fell below a low-balance threshold.
    case lowBalance = "low_balance"
    /// Spendable tokens rose back to a low-balance threshold or above it.
    case balanceRecovered = "balance_recovered"
}

/// An append-only record of one change. Corrections are new entries, never edits.
public struct HistoryEntry: Hashable, Sendable, Codable {
    /// 1, 2, 3, ... within the tenant: the cursor for paging.
    public var sequence: UInt64
    public var time: LedgerTime
    public var kind: HistoryKind
    public var member: MemberID?
    public var hold: HoldID?
    public var grant: GrantID?
    /// The kind of the funding grant, when one is involved: the billing source.
    public var source: GrantKind?
    public var amount: Tokens
    /// The request that caused it; nil for what fell due with time.
    public var requestID: RequestID?
}

/// Which entries a history query returns. Nil fields do not filter.
public struct HistoryFilter: Hashable, Sendable, Codable {
    public var member: MemberID?
    public var source: GrantKind?
    public var kinds: Set<HistoryKind>?
    /// Entries at or after this time.
    public var since: LedgerTime?
    /// Entries before this time.
    public var until: LedgerTime?
    /// Entries with a sequence above this one (the cursor of the previous page).
    public var afterSequence: UInt64
    /// At most this many, up to ``Limits/historyPageMax``.
    public var limit: Int

    public init(
        member: MemberID? = nil, source: GrantKind? = nil, kinds: Set<HistoryKind>? = nil, since: LedgerTime? = nil,
        until: LedgerTime? = nil, afterSequence: UInt64 = 0, limit: Int = 100
    ) {
        self.member = member
        self.source = source
        self.kinds = kinds
        self.since = since
        self.until = until
        self.afterSequence = afterSequence
        self.limit = limit
    }
}

/// One page of history.
public struct HistoryPage: Hashable, Sendable {
    public var entries: [HistoryEntry]
    /// Pass as `afterSequence` for the next page; nil when there is none.
    public var nextCursor: UInt64?
}
