/// A plan: a periodic allowance issued as a `plan` grant that expires at the period's end.
public struct Plan: Hashable, Sendable, Codable {
    /// Tokens issued at the start of each period.
    public var allowance: Tokens
    public var period: PeriodRule
    /// Most tokens of the ending period's plan grant carried into the next one; 0: no rollover.
    public var rolloverCap: Tokens
    /// Most tokens the tenant may hold plus spend per plan period from any source; 0: no limit.
    /// Exceeding it is `plan_limit_reached`.
    public var spendLimit: Tokens
    /// Units of catalog features the plan grants per period (sorted by feature, each once; at most
    /// ``Limits/planQuotasMax``). Reserves and charges by items count them; exceeding one is
    /// `quota_exceeded`. Format 2.
    public var quotas: [PlanQuota]

    public init(allowance: Tokens, period: PeriodRule, rolloverCap: Tokens = 0, spendLimit: Tokens = 0, quotas: [PlanQuota] = []) {
        self.allowance = allowance
        self.period = period
        self.rolloverCap = rolloverCap
        self.spendLimit = spendLimit
        self.quotas = quotas
    }

    /// The quota of `feature`, if the plan has one.
    public func quota(_ feature: String) -> PlanQuota? { quotas.first { $0.feature == feature } }
}

/// Units of one catalog feature a plan grants per period ("30 cover images a month"): the sum of
/// the quantities of that feature's items in reserves and charges, in the feature's unit. A limit
/// of 0 leaves the feature out of the plan.
public struct PlanQuota: Hashable, Sendable, Codable {
    public var feature: String
    public var limit: UInt64

    public init(feature: String, limit: UInt64) {
        self.feature = feature
        self.limit = limit
    }
}

/// A volume bonus: purchases of at least `fromMinor` earn `basisPoints` / 10,000 extra tokens.
public struct BonusTier: Hashable, Sendable, Codable {
    public var fromMinor: UInt64
    public var basisPoints: UInt32

    public init(fromMinor: UInt64, basisPoints: UInt32) {
        self.fromMinor = fromMinor
        self.basisPoints = basisPoints
    }
}

/// How money converts to tokens for one tenant.
public struct PurchaseRules: Hashable, Sendable, Codable {
    /// Tokens for every `minorUnitsPerRate` minor units of money (default 100 tokens per 100 cents).
    public var tokensPerRate: UInt64
    public var minorUnitsPerRate: UInt64
    /// Smallest purchase in minor units (default 500: 5.00).
    public var minimumMinor: UInt64
    /// Ascending by `fromMinor`; the highest tier a purchase reaches applies.
    public var bonusTiers: [BonusTier]

    public init(tokensPerRate: UInt64, minorUnitsPerRate: UInt64, minimumMinor: UInt64, bonusTiers: [BonusTier]) {
        self.tokensPerRate = tokensPerRate
        self.minorUnitsPerRate = minorUnitsPerRate
        self.minimumMinor = minimumMinor
        self.bonusTiers = bonusTiers
    }

    /// 100 tokens per 1.00; minimum 5.00; +5% from 50.00, +7.5% from 100.00, +10% from 200.00.
    public static let `default` = PurchaseRules(
        tokensPerRate: 100, minorUnitsPerRate: 100, minimumMinor: 500,
        bonusTiers: [
            BonusTier(fromMinor: 5_000, basisPoints: 500),
            BonusTier(fromMinor: 10_000, basisPoints: 750),
            BonusTier(fromMinor: 20_000, basisPoints: 1_000),
        ])

    /// Largest `tokensPerRate`: with ``Limits/purchaseMoneyMax`` the product stays below 2^64.
    public static let tokensPerRateMax: UInt64 = 100_000
    /// Largest bonus, in basis points (100%).
    public static let bonusBasisPointsMax: UInt32 = 10_000
}

/// A low-balance threshold beyond the first: a number of tokens, or a percentage of the plan
/// allowance (of a member's budget cap, for a member with a budget). Format 2.
public enum BalanceThreshold: Hashable, Sendable, Codable {
    case tokens(Tokens)
    /// 1 to 100.
    case percent(UInt32)

    /// The threshold in tokens against `base` (the plan allowance or the budget cap; nil: none, and
    /// a percentage is then inactive, 0).
    public func tokens(of base: Tokens?) -> Tokens {
        switch self {
        case .tokens(let tokens): return tokens
        case .percent(let percent): return (base ?? 0) / 100 * Tokens(percent) + (base ?? 0) % 100 * Tokens(percent) / 100
        }
    }
}

/// Settings most tenants leave at their defaults, out of line (see ``OutOfLine``).
struct TenantSettingsExtras: Hashable, Sendable {
    var movementEvents = true
    var lowBalanceThresholds: [BalanceThreshold] = []
}

/// A tenant's configuration.
///
/// The plan and the purchase rules are kept out of line (see ``OutOfLine``): a tenant without a plan
/// pays one pointer for it, and every tenant on the default purchase rules shares one copy of them.
/// With a million tenants side by side this is 32 bytes a tenant instead of 88.
public struct TenantSettings: Hashable, Sendable {
    private var planStorage: OutOfLine<Plan>
    private var rulesStorage: OutOfLine<PurchaseRules>
    /// How far a final commit may capture beyond the pool (default 0: never).
    public var overdraftLimit: Tokens
    /// The pool's low-balance threshold; 0: no alerts.
    public var lowBalanceThreshold: Tokens
    /// Nil: the defaults (movement events on, no further thresholds).
    private var extrasStorage: OutOfLine<TenantSettingsExtras>

    private var extras: TenantSettingsExtras {
        get { extrasStorage.value ?? TenantSettingsExtras() }
        set {
            if newValue == TenantSettingsExtras() {
                extrasStorage = OutOfLine(nil)
            } else if newValue == Self.formatOneExtras.value {
                // Every tenant of format 1 has these: one shared copy.
                extrasStorage = Self.formatOneExtras
            } else {
                extrasStorage.value = newValue
            }
        }
    }

    /// The extras of every tenant created in format 1 (movement events off), shared.
    private static let formatOneExtras = OutOfLine(TenantSettingsExtras(movementEvents: false))

    /// Whether grants, purchases, captures, charges, refunds and voids produce events (default on;
    /// off for tenants created before format 2, which had none).
    public var movementEvents: Bool {
        get { extras.movementEvents }
        set { extras.movementEvents = newValue }
    }

    /// The pool's low-balance thresholds beyond `lowBalanceThreshold` (at most
    /// ``Limits/lowBalanceThresholdsMax``), each crossing its own event.
    public var lowBalanceThresholds: [BalanceThreshold] {
        get { extras.lowBalanceThresholds }
        set { extras.lowBalanceThresholds = newValue }
    }

    /// The one copy of the default rules that tenants on them share.
    private static let defaultRules = OutOfLine(PurchaseRules.default)

    public var plan: Plan? {
        get { planStorage.value }
        set { planStorage.value = newValue }
    }

    public var purchaseRules: PurchaseRules {
        // Never nil: every initializer and setter stores rules.
        get { rulesStorage.value! }
        set { rulesStorage = newValue == .default ? Self.defaultRules : OutOfLine(newValue) }
    }

    /// Whether these settings use the shared copy of the default rules (tests of sharing).
    package var sharesDefaultRules: Bool { rulesStorage.isSameStorage(as: Self.defaultRules) }

    public init(
        plan: Plan? = nil, purchaseRules: PurchaseRules = .default, overdraftLimit: Tokens = 0,
        lowBalanceThreshold: Tokens = 0, lowBalanceThresholds: [BalanceThreshold] = [], movementEvents: Bool = true
    ) {
        planStorage = OutOfLine(plan)
        rulesStorage = purchaseRules == .default ? Self.defaultRules : OutOfLine(purchaseRules)
        self.overdraftLimit = overdraftLimit
        self.lowBalanceThreshold = lowBalanceThreshold
        extrasStorage = OutOfLine(nil)
        self.lowBalanceThresholds = lowBalanceThresholds
        self.movementEvents = movementEvents
    }
}

extension TenantSettings: Codable {
    private enum CodingKeys: String, CodingKey {
        case plan, purchaseRules, overdraftLimit, lowBalanceThreshold, lowBalanceThresholds, movementEvents
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            plan: try container.decodeIfPresent(Plan.self, forKey: .plan),
            purchaseRules: try container.decode(PurchaseRules.self, forKey: .purchaseRules),
            overdraftLimit: try container.decode(Tokens.self, forKey: .overdraftLimit),
            lowBalanceThreshold: try container.decode(Tokens.self, forKey: .lowBalanceThreshold),
            lowBalanceThresholds: try container.decodeIfPresent([BalanceThreshold].self, forKey: .lowBalanceThresholds) ?? [],
            movementEvents: try container.decodeIfPresent(Bool.self, forKey: .movementEvents) ?? true)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(plan, forKey: .plan)
        try container.encode(purchaseRules, forKey: .purchaseRules)
        try container.encode(overdraftLimit, forKey: .overdraftLimit)
        try container.encode(lowBalanceThreshold, forKey: .lowBalanceThreshold)
        try container.encode(lowBalanceThresholds, forKey: .lowBalanceThresholds)
        try container.encode(movementEvents, forKey: .movementEvents)
    }
}

/// A partial change of a tenant's configuration: nil fields stay as they are.
public struct TenantSettingsChange: Hashable, Sendable, Codable {
    public enum PlanChange: Hashable, Sendable, Codable {
        case set(Plan)
        case remove
    }

    public var plan: PlanChange?
    public var purchaseRules: PurchaseRules?
    public var overdraftLimit: Tokens?
    public var lowBalanceThreshold: Tokens?
    /// The whole list of further thresholds (empty: none).
    public var lowBalanceThresholds: [BalanceThreshold]?
    public var movementEvents: Bool?

    public init(
        plan: PlanChange? = nil, purchaseRules: PurchaseRules? = nil, overdraftLimit: Tokens? = nil,
        lowBalanceThreshold: Tokens? = nil, lowBalanceThresholds: [BalanceThreshold]? = nil, movementEvents: Bool? = nil
    ) {
        self.plan = plan
        self.purchaseRules = purchaseRules
        self.overdraftLimit = overdraftLimit
        self.lowBalanceThreshold = lowBalanceThreshold
        self.lowBalanceThresholds = lowBalanceThresholds
        self.movementEvents = movementEvents
    }
}
