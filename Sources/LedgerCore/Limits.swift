/// Every limit of the ledger core, declared once. Each is checked before work or allocation and
/// exceeding it is a typed error (`limit_exceeded` or `invalid_argument`), never a crash.
/// docs/semantics.md lists them with their reasons.
public enum Limits {
    /// Longest identifier (tenant, member, hold, request id), in UTF-8 bytes.
    public static let idLengthMax = 128
    /// Largest amount in a single command (grant, reserve, commit, refund, budget cap, threshold,
    /// plan allowance): 10^15 tokens.
    public static let amountMax: Tokens = 1_000_000_000_000_000
    /// Largest total a tenant may ever be granted, counting every grant it received (plan grants,
    /// purchases, bonuses, refunds to new grants): 10^18 tokens. With it no sum inside a tenant can
    /// overflow `UInt64` (1.8 x 10^19).
    public static let tenantTokensMax: Tokens = 1_000_000_000_000_000_000
    /// Largest purchase, in minor currency units (10^13, i.e. 100 billion in a two-decimal currency).
    public static let purchaseMoneyMax: UInt64 = 10_000_000_000_000
    /// Open (unresolved) holds per tenant.
    public static let openHoldsPerTenantMax = 100_000
    /// Active grants per tenant (grants with tokens left or held).
    public static let activeGrantsPerTenantMax = 10_000
    /// Members per tenant.
    public static let membersPerTenantMax = 100_000
    /// Shortest hold time-to-live.
    public static let holdTTLMin: Duration = .seconds(1)
    /// Longest hold time-to-live.
    public static let holdTTLMax: Duration = .seconds(7 * 86_400)
    /// Time-to-live of a hold that names none.
    public static let holdTTLDefault: Duration = .seconds(15 * 60)
    /// Items in one estimate or priced reserve.
    public static let estimateItemsMax = 1_000
    /// Largest quantity of one priced item.
    public static let itemQuantityMax: UInt64 = 1_000_000_000_000
    /// Features in one price catalog.
    public static let catalogFeaturesMax = 1_000
    /// Largest price catalog document, in bytes.
    public static let catalogBytesMax = 1 << 20
    /// Nesting depth of a price catalog document.
    public static let catalogDepthMax = 16
    /// Requests remembered for idempotency per tenant; the oldest is forgotten first.
    public static let idempotencyEntriesPerTenantMax = 10_000
    /// How long a request is remembered for idempotency.
    public static let idempotencyRetention: Duration = .seconds(24 * 3600)
    /// Purchase bonus tiers per tenant.
    public static let bonusTiersMax = 16
    /// Largest grant priority (lower burns first).
    public static let grantPriorityMax: UInt32 = 1_000_000
    /// Entries returned by one history page.
    public static let historyPageMax = 1_000
    /// Entries in a history page that names no limit (tokenctl's `--limit` default too).
    public static let historyPageDefault = 100
    /// Entries of one listing page (open holds, grants, tenants), and the default when none is named.
    public static let listPageMax = 1_000
    public static let listPageDefault = 100
    /// Earliest time a request may name (an anchor, an effective or expiry time, a history bound):
    /// 1970-01-01T00:00:00Z. With ``timeMax`` it keeps every calendar computation far from `Int64`
    /// overflow.
    public static let timeMin = LedgerTime(millisecondsSinceEpoch: 0)
    /// Latest time a request may name: 9999-12-31T23:59:59.999Z.
    public static let timeMax = LedgerTime(millisecondsSinceEpoch: 253_402_300_799_999)
    /// Events kept per tenant for subscribers that resume (Watch, the webhook sink): at least this
    /// many of the newest; a subscriber further behind is told how many it lost.
    public static let eventsRetainedPerTenant = 4_096
    /// Events in one page of a Watch stream or one webhook delivery.
    public static let eventPageMax = 256
    /// Length of a free-text note or reference on a grant, in UTF-8 bytes.
    /// Low-balance thresholds beyond the first, per tenant and per member.
    public static let lowBalanceThresholdsMax = 8
    /// Quotas in one plan.
    public static let planQuotasMax = 32
    /// Largest quota limit, in units per period.
    public static let quotaLimitMax: UInt64 = 1_000_000_000_000_000
    /// Features one grant's scope lists.
    public static let grantScopeFeaturesMax = 16
    public static let noteLengthMax = 256
}
