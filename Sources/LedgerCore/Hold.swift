/// The life of a reservation. A hold resolves at most once: from `held` to one of the others.
public enum HoldState: String, Sendable, Codable, CaseIterable {
    case held, committed, released, expired
}

/// Tokens of one grant that a hold has reserved or captured.
public struct Allocation: Hashable, Sendable, Codable {
    public var grant: GrantID
    public var amount: Tokens

    public init(grant: GrantID, amount: Tokens) {
        self.grant = grant
        self.amount = amount
    }
}

/// A priced line of an estimate or a reserve: a catalog feature and a quantity in its unit.
public struct PricedItem: Hashable, Sendable, Codable {
    public var feature: String
    public var quantity: UInt64
    public init(feature: String, quantity: UInt64) {
        self.feature = feature
        self.quantity = quantity
    }
}

/// A reservation of tokens for work about to run.
///
/// Invariants: `held == allocations.sum`, `captured == captures.sum + overdraftCaptured`,
/// `refunded <= captured`, and a resolved hold holds nothing.
public struct Hold: Hashable, Sendable, Codable {
    public var id: HoldID
    public var member: MemberID?
    public var state: HoldState
    /// Tokens reserved at the start.
    public var amount: Tokens
    /// Tokens still held, per grant, in burn-down order.
    public var allocations: [Allocation]
    /// Tokens still held: the sum of `allocations`.
    public var held: Tokens
    /// Tokens captured so far, including any captured beyond the hold on the final commit.
    public var captured: Tokens
    /// Captured tokens (net of refunds) in capture order: one entry per run of captures from the
    /// same grant, so a grant drawn again after another has two. Refunds walk them last first.
    public var captures: [Allocation]
    /// Tokens of a final over-capture that the tenant's overdraft covered (net of refunds).
    public var overdraftCaptured: Tokens
    /// Tokens refunded so far.
    public var refunded: Tokens
    public var createdAt: LedgerTime
    public var expiresAt: LedgerTime
    /// When the hold was committed, released or expired.
    public var resolvedAt: LedgerTime?
    /// The catalog version that priced `items`, when the hold was reserved by items.
    public var catalogVersion: String?
    public var items: [PricedItem]
    /// Start of the member-budget period of the latest capture: refunds give budget back only
    /// within that same period.
    public var budgetPeriodOfCapture: LedgerTime?
    /// Start of the plan period of the latest capture: refunds reduce the plan meter only within
    /// that same period.
    public var planPeriodOfCapture: LedgerTime?
    /// The plan quota units this hold's items counted, while they count: given back (and cleared)
    /// when the hold ends with nothing spent or is refunded in full, within the same plan period.
    /// Format 2.
    public var quota: HoldQuota? = nil
}

/// Quota units a hold counted in one plan period.
public struct HoldQuota: Hashable, Sendable, Codable {
    /// The plan period's start and generation (``PlanPeriod/generation``): a period is both.
    public var periodStart: LedgerTime
    public var generation: UInt64
    /// Per quota feature of the items, sorted by feature.
    public var units: [FeatureUnits]
}

/// What a `reserve` command asks for.
public struct ReserveRequest: Hashable, Sendable, Codable {
    public enum Amount: Hashable, Sendable, Codable {
        case tokens(Tokens)
        /// Priced by the installed catalog at reserve time.
        case items([PricedItem])
    }

    public var hold: HoldID
    public var member: MemberID?
    public var amount: Amount
    /// Nil: ``Limits/holdTTLDefault``.
    public var ttl: Duration?

    public init(hold: HoldID, member: MemberID? = nil, amount: Amount, ttl: Duration? = nil) {
        self.hold = hold
        self.member = member
        self.amount = amount
        self.ttl = ttl
    }
}
