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
public struct EventLog: Hashable, Sendable, Codable {
    /// The id of the newest event (0: none yet). Ids are never reused.
    public internal(set) var lastID: UInt64 = 0
    /// Retained events, oldest first, with consecutive ids ending at `lastID`.
    public internal(set) var events: [LedgerEvent] = []

    public init() {}

    /// The id of the oldest retained event (`lastID + 1` when none is retained).
    public var oldestRetainedID: UInt64 { events.first?.id ?? lastID + 1 }

    mutating func append(_ event: inout LedgerEvent) {
        lastID += 1
        event.id = lastID
        events.append(event)
        let keep = Limits.eventsRetainedPerTenant
        if events.count >= keep + keep / 4 { events.removeFirst(events.count - keep) }
    }

    /// Retained events with an id above `afterID`, oldest first, at most `limit`.
    public func events(after afterID: UInt64, limit: Int) -> ArraySlice<LedgerEvent> {
        let start = afterID < oldestRetainedID ? 0 : Int(min(afterID - oldestRetainedID + 1, UInt64(events.count)))
        return events[start..<min(events.count, start + max(0, limit))]
    }
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
