/// Something a subscriber may want to be told about. Events come out of `apply` with the command
/// that caused them (or with the time that made them fall due); they are also history entries.
public struct LedgerEvent: Hashable, Sendable, Codable {
    public enum Kind: Hashable, Sendable, Codable {
        /// Spendable tokens fell below the threshold (`member` nil: the pool's threshold).
        case lowBalance(member: MemberID?, available: Tokens, threshold: Tokens)
        /// Spendable tokens are back at or above the threshold.
        case balanceRecovered(member: MemberID?, available: Tokens, threshold: Tokens)
        /// A reserve or commit was refused by the member's budget.
        case budgetExceeded(member: MemberID, requested: Tokens, remaining: Tokens, cap: Tokens, resetsAt: LedgerTime)
        case holdExpired(hold: HoldID, released: Tokens)
        case grantExpired(grant: GrantID, kind: GrantKind, expired: Tokens)
        case planRenewed(grant: GrantID, amount: Tokens, periodStart: LedgerTime, periodEnd: LedgerTime)
        case budgetReset(member: MemberID, periodStart: LedgerTime, periodEnd: LedgerTime)
        // Movements: one event per command that moved tokens in or out (format 2).
        /// A `grant` command credited tokens.
        case granted(grant: GrantID, kind: GrantKind, amount: Tokens)
        /// A purchase: its grant and, when a tier applied, its bonus grant.
        case purchased(grant: GrantID, amount: Tokens, bonus: GrantID?, bonusAmount: Tokens, moneyMinor: UInt64)
        /// A commit captured `amount` (0 for a final commit of nothing more); `final`: the hold closed.
        case captured(hold: HoldID, member: MemberID?, amount: Tokens, final: Bool)
        /// A charge spent `amount`.
        case charged(hold: HoldID, member: MemberID?, amount: Tokens)
        /// A refund gave `amount` of a hold's captured tokens back.
        case refunded(hold: HoldID, member: MemberID?, amount: Tokens)
        /// A grant's unheld tokens were voided (a void, or a purchase refund: the purchase and its
        /// bonus each).
        case voided(grant: GrantID, kind: GrantKind, amount: Tokens)
    }

    /// 1, 2, 3, ... within the tenant, assigned when the event is retained; a subscriber resumes
    /// after the last id it saw. 0 only before the state machine has numbered it.
    public var id: UInt64 = 0
    public var tenant: TenantID
    public var time: LedgerTime
    public var kind: Kind

    public init(id: UInt64 = 0, tenant: TenantID, time: LedgerTime, kind: Kind) {
        self.id = id
        self.tenant = tenant
        self.time = time
        self.kind = kind
    }
}

/// A tenant's recent events, numbered, for subscribers that resume after a disconnect (Watch and
/// the webhook sink). Bounded: at least the newest ``Limits/eventsRetainedPerTenant`` are kept;
/// older ones are dropped in blocks so that trimming stays amortized O(1).
///
/// Kept in their binary form (time and kind, back to back, with the start of each): with an event
/// for every movement a busy tenant retains thousands, and as values they took about three times
/// the memory (a `LedgerEvent` is 100-odd bytes, a capture's binary form about 25).
public struct EventLog: Hashable, Sendable {
    /// The id of the newest event (0: none yet). Ids are never reused.
    public internal(set) var lastID: UInt64 = 0
    /// The retained events' time and kind, oldest first (ids consecutive, ending at `lastID`).
    private var bytes: [UInt8] = []
    /// Where each retained event starts in `bytes`.
    private var starts: [UInt32] = []

    public init() {}

    /// How many events are retained.
    public var count: Int { starts.count }

    /// The id of the oldest retained event (`lastID + 1` when none is retained).
    public var oldestRetainedID: UInt64 { lastID + 1 - UInt64(starts.count) }

    mutating func append(_ event: inout LedgerEvent) {
        lastID += 1
        event.id = lastID
        starts.append(UInt32(bytes.count))
        var writer = BinaryWriter(appendingTo: &bytes)
        writer.write(event.time)
        writer.write(event.kind)
        bytes = writer.bytes
        let keep = Limits.eventsRetainedPerTenant
        if starts.count >= keep + keep / 4 { dropOldest(starts.count - keep) }
    }

    private mutating func dropOldest(_ count: Int) {
        let cut = Int(starts[count])
        bytes.removeFirst(cut)
        starts.removeFirst(count)
        for index in starts.indices { starts[index] -= UInt32(cut) }
    }

    /// The retained event at `position` (0: the oldest) of `tenant`.
    private func event(at position: Int, tenant: TenantID) -> LedgerEvent {
        var reader = BinaryReader(bytes, offset: Int(starts[position]))
        // Written by `append` from values: cannot fail.
        let time = try! reader.read(LedgerTime.self)
        let kind = try! reader.read(LedgerEvent.Kind.self)
        return LedgerEvent(id: oldestRetainedID + UInt64(position), tenant: tenant, time: time, kind: kind)
    }

    /// Retained events of `tenant` with an id above `afterID`, oldest first, at most `limit`.
    public func events(of tenant: TenantID, after afterID: UInt64, limit: Int) -> [LedgerEvent] {
        let start = afterID < oldestRetainedID ? 0 : Int(min(afterID - oldestRetainedID + 1, UInt64(starts.count)))
        return (start..<min(starts.count, start + max(0, limit))).map { event(at: $0, tenant: tenant) }
    }

    /// Every retained event of `tenant`, oldest first.
    public func events(of tenant: TenantID) -> [LedgerEvent] { events(of: tenant, after: 0, limit: starts.count) }
}

extension EventLog: Codable {
    private enum CodingKeys: String, CodingKey { case lastID, bytes, starts }
}

/// One page of a tenant's retained events and where the log stands.
public struct EventPage: Hashable, Sendable {
    public var events: [LedgerEvent]
    /// The id of the oldest event still retained (`latestID + 1` when none is).
    public var oldestRetainedID: UInt64
    /// The id of the tenant's newest event (0: none yet).
    public var latestID: UInt64
    /// Events after the requested id that are no longer retained (a subscriber that fell behind
    /// the retention window lost these).
    public var lost: UInt64
}
