/// Where a grant's tokens came from. Every history entry names the kind of the grant that funded
/// it, which is the "billing source" users filter by.
public enum GrantKind: String, Sendable, Codable, CaseIterable {
    /// The periodic allowance of a plan; issued by the ledger, expires at the period's end.
    case plan
    /// Tokens bought with money; issued by `purchase` (or granted directly).
    case purchase
    /// A purchase's volume bonus; issued with the purchase it belongs to.
    case bonus
    case referral
    case promo
    /// Refunded tokens whose original grant had expired or been voided; issued by the ledger.
    case refund
    /// A manual credit by an operator.
    case adjustment

    /// Kinds the ledger issues itself and a `grant` command may not name.
    public var isLedgerIssued: Bool { self == .plan || self == .refund }
}

/// The life of a grant. Only `active` grants fund new holds.
public enum GrantState: String, Sendable, Codable, CaseIterable {
    /// Its effective time has not come yet.
    case pending
    case active
    /// Reached its expiry; tokens it still had held stay capturable until their holds resolve.
    case expired
    /// Voided by an operator (or a purchase refund); held tokens stay capturable as with expiry.
    case voided
}

/// A credit bucket of one tenant.
///
/// Invariants (checked by `audit()`):
/// - `amount == remaining + consumed + expired + voided + carriedOver`
/// - `held <= remaining`
/// - a grant that is `expired` or `voided` has `remaining == held`.
public struct Grant: Hashable, Sendable, Codable {
    // Stored properties are laid out in declaration order: the 8-byte fields first, then the
    // optionals (9 bytes each) and the small fields in their padding, 136 bytes instead of 152.
    public var id: GrantID
    /// Tokens the grant was issued with.
    public var amount: Tokens
    /// Tokens not yet consumed, expired, voided or carried over; includes `held`.
    public var remaining: Tokens
    /// Part of `remaining` that open holds have reserved.
    public var held: Tokens
    /// Tokens captured from this grant (net of refunds returned to it, including overdraft repayments).
    public var consumed: Tokens
    /// Tokens that expired unused.
    public var expired: Tokens
    /// Tokens voided by an operator or a purchase refund.
    public var voided: Tokens
    /// Tokens moved into the next period's plan grant by a rollover (plan grants only).
    public var carriedOver: Tokens
    public var createdAt: LedgerTime
    public var effectiveAt: LedgerTime
    /// For a purchase: the money paid, in minor currency units.
    public var moneyMinor: UInt64
    /// Free text from the operator or the purchase (an order number, a campaign).
    public var note: String
    /// For a bonus: the purchase it came with. For a purchase: its bonus.
    public var linkedGrant: GrantID?
    /// Nil: never expires.
    public var expiresAt: LedgerTime?
    public var kind: GrantKind
    public var state: GrantState
    /// Burn-down priority: lower is consumed first.
    public var priority: UInt32
    /// The catalog features this grant may pay for (sorted, each once); empty: any spending. A
    /// scoped grant pays only for items of its features: never for a reserve or charge by tokens,
    /// nor overdraft debt. Format 2.
    public var scope: [String] = []

    init(
        id: GrantID, kind: GrantKind, state: GrantState, amount: Tokens, remaining: Tokens, held: Tokens,
        consumed: Tokens, expired: Tokens, voided: Tokens, carriedOver: Tokens, priority: UInt32,
        createdAt: LedgerTime, effectiveAt: LedgerTime, expiresAt: LedgerTime?, moneyMinor: UInt64,
        linkedGrant: GrantID?, note: String
    ) {
        self.id = id
        self.amount = amount
        self.remaining = remaining
        self.held = held
        self.consumed = consumed
        self.expired = expired
        self.voided = voided
        self.carriedOver = carriedOver
        self.createdAt = createdAt
        self.effectiveAt = effectiveAt
        self.moneyMinor = moneyMinor
        self.note = note
        self.linkedGrant = linkedGrant
        self.expiresAt = expiresAt
        self.kind = kind
        self.state = state
        self.priority = priority
    }

    /// Tokens this grant can fund right now.
    public var unheld: Tokens { remaining - held }

    /// Whether this grant may pay for spending on `features` (nil: a reserve by tokens, which names
    /// none): an unscoped grant pays for anything, a scoped one only for its own features.
    public func pays(for features: [String]?) -> Bool {
        guard !scope.isEmpty else { return true }
        guard let features, !features.isEmpty else { return false }
        return features.allSatisfy { scope.contains($0) }
    }

    /// The burn-down order: priority ascending, then earliest expiry (never-expiring last), then
    /// creation order.
    package var burnKey: BurnKey {
        BurnKey(priority: priority, expiry: expiresAt?.millisecondsSinceEpoch ?? .max, id: id.rawValue)
    }
}

/// Sort key of the burn-down order; see ``Grant/burnKey``.
package struct BurnKey: Comparable, Sendable {
    var priority: UInt32
    var expiry: Int64
    var id: UInt64

    package static func < (lhs: BurnKey, rhs: BurnKey) -> Bool {
        (lhs.priority, lhs.expiry, lhs.id) < (rhs.priority, rhs.expiry, rhs.id)
    }
}

/// What a `grant` command asks for.
public struct GrantRequest: Hashable, Sendable, Codable {
    public var kind: GrantKind
    public var amount: Tokens
    /// Nil: effective at once.
    public var effectiveAt: LedgerTime?
    /// Nil: never expires.
    public var expiresAt: LedgerTime?
    /// Nil: ``Grant/defaultPriority``.
    public var priority: UInt32?
    public var note: String
    /// Catalog features the grant may pay for; empty: any (see ``Grant/scope``).
    public var scope: [String]

    public init(
        kind: GrantKind, amount: Tokens, effectiveAt: LedgerTime? = nil, expiresAt: LedgerTime? = nil,
        priority: UInt32? = nil, note: String = "", scope: [String] = []
    ) {
        self.kind = kind
        self.amount = amount
        self.effectiveAt = effectiveAt
        self.expiresAt = expiresAt
        self.priority = priority
        self.note = note
        self.scope = scope
    }
}

extension Grant {
    /// The priority of every grant that names none. Equal priorities leave the order to expiry, so
    /// an expiring plan allowance burns before purchased tokens that never expire.
    public static let defaultPriority: UInt32 = 100
}
