/// A change to the ledger, as the write-ahead log records it: the ledger time it applies at, the
/// client's request id (the idempotency key) and what to do.
public struct LedgerCommand: Hashable, Sendable, Codable {
    /// When the command applies. A time earlier than the ledger's is taken as the ledger's time.
    public var time: LedgerTime
    /// Required for every tenant command; ``CommandBody/tick`` and
    /// ``CommandBody/installCatalog(_:)`` take none.
    public var requestID: RequestID?
    public var body: CommandBody

    public init(time: LedgerTime, requestID: RequestID?, body: CommandBody) {
        self.time = time
        self.requestID = requestID
        self.body = body
    }
}

/// What a command does. Every case but `tick` and `installCatalog` acts on exactly one tenant.
public enum CommandBody: Hashable, Sendable, Codable {
    case createTenant(TenantID, TenantSettings)
    case configureTenant(TenantID, TenantSettingsChange)
    case setMember(TenantID, MemberID, MemberSettings)
    case grant(TenantID, GrantRequest)
    /// Money in minor currency units, converted by the tenant's purchase rules; a bonus grant is
    /// issued beside the purchase grant when a tier applies.
    case purchase(TenantID, moneyMinor: UInt64, note: String)
    /// Refund an unused purchase: void its unheld remainder and the matching share of its bonus.
    case refundPurchase(TenantID, GrantID)
    case voidGrant(TenantID, GrantID)
    case reserve(TenantID, ReserveRequest)
    /// Spend a known amount (or priced items) at once, with a reserve's checks and a final
    /// commit's burn-down: the hold is committed in the same command and refundable by its id.
    /// The request's TTL is not used.
    case charge(TenantID, ReserveRequest)
    case commit(TenantID, HoldID, amount: Tokens, final: Bool)
    /// Give an open hold a new expiry `ttl` from now (within the TTL limits).
    case extendHold(TenantID, HoldID, ttl: Duration)
    /// Hold `amount` more tokens on an open hold, with a reserve's checks.
    case increaseHold(TenantID, HoldID, amount: Tokens)
    case release(TenantID, HoldID)
    case refund(TenantID, HoldID, amount: Tokens)
    /// Install a price catalog; it prices every later estimate and priced reserve.
    case installCatalog(PriceCatalog)
    /// Only advance time: apply whatever fell due.
    case tick

    /// The tenant this command acts on, if any.
    public var tenant: TenantID? {
        switch self {
        case .createTenant(let tenant, _), .configureTenant(let tenant, _), .setMember(let tenant, _, _),
            .grant(let tenant, _), .purchase(let tenant, _, _), .refundPurchase(let tenant, _),
            .voidGrant(let tenant, _), .reserve(let tenant, _), .charge(let tenant, _), .commit(let tenant, _, _, _),
            .extendHold(let tenant, _, _), .increaseHold(let tenant, _, _),
            .release(let tenant, _), .refund(let tenant, _, _):
            return tenant
        case .installCatalog, .tick:
            return nil
        }
    }
}

/// The successful result of a command.
public enum CommandOutcome: Hashable, Sendable, Codable {
    case tenantCreated(TenantID)
    case tenantConfigured(TenantID)
    case memberSet(Member)
    case granted(Grant)
    case purchased(purchase: Grant, bonus: Grant?)
    /// `moneyRefundMinor` is the money share of the voided tokens, rounded down.
    case purchaseRefunded(purchase: Grant, bonus: Grant?, voided: Tokens, bonusVoided: Tokens, moneyRefundMinor: UInt64)
    case voided(Grant, amount: Tokens)
    case reserved(Hold)
    /// `captured`: captured by this call; `released`: returned by this call (final commits).
    case committed(Hold, captured: Tokens, released: Tokens)
    /// A charge: its hold, committed, and the tokens it spent.
    case charged(Hold, charged: Tokens)
    /// The hold with its new expiry.
    case holdExtended(Hold)
    /// The hold with its new amount, and the tokens added.
    case holdIncreased(Hold, increased: Tokens)
    case released(Hold, released: Tokens)
    /// `newGrant`: the refund grant issued for tokens whose grant had expired or been voided.
    case refunded(Hold, refunded: Tokens, newGrant: GrantID?)
    case catalogInstalled(version: String)
    case ticked
}

/// What `apply` returns.
public struct CommandResult: Hashable, Sendable {
    public var outcome: Result<CommandOutcome, LedgerError>
    /// True when the request id had been seen with the same command: `outcome` is the original one
    /// and nothing changed.
    public var replayed: Bool
    /// Events raised while applying, including those of what fell due before the command.
    public var events: [LedgerEvent]
    /// The ledger time the command applied at.
    public var time: LedgerTime
    /// The log position of the record that carried the command: set by the engine, 0 from the
    /// state machine alone.
    public var lsn: UInt64 = 0
}
