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
/// Kept in their binary form (time and kind, back to back): with an event for every movement a
/// busy tenant retains thousands, and as values they took about three times the memory (a
/// `LedgerEvent` is 100-odd bytes, a capture's binary form about 25). Where each event starts is
/// indexed only from ``indexedFrom`` events on: most tenants of a large ledger have one or two (the
/// `granted` of their funding), and an index for those was a second allocation of 48 bytes each;
/// below that, the few events are found by decoding from the start.
public struct EventLog: Hashable, Sendable {
    /// The id of the newest event (0: none yet). Ids are never reused.
    public internal(set) var lastID: UInt64 = 0
    /// The retained events' time and kind, oldest first (ids consecutive, ending at `lastID`).
    private var bytes: [UInt8] = []
    /// Where each retained event starts in `bytes`, once ``indexedFrom`` are retained; empty while
    /// fewer are.
    private var starts: [UInt32] = []

    /// Retained events found by decoding before an index of their starts is kept.
    static let indexedFrom = 8

    public init() {}

    /// How many events are retained.
    public var count: Int { starts.isEmpty ? scannedStarts().count : starts.count }

    /// The id of the oldest retained event (`lastID + 1` when none is retained).
    public var oldestRetainedID: UInt64 { lastID + 1 - UInt64(count) }

    /// Where each retained event starts, found by decoding them (while there is no index).
    private func scannedStarts() -> [Int] {
        var found: [Int] = []
        var reader = BinaryReader(bytes)
        while !reader.isAtEnd {
            found.append(reader.offset)
            // Written by `append` from values: cannot fail.
            _ = try! reader.read(LedgerTime.self)
            _ = try! reader.read(LedgerEvent.Kind.self)
        }
        return found
    }

    mutating func append(_ event: inout LedgerEvent) {
        lastID += 1
        event.id = lastID
        let start = bytes.count
        var writer = BinaryWriter(appendingTo: &bytes)
        writer.write(event.time)
        writer.write(event.kind)
        bytes = writer.bytes
        if !starts.isEmpty {
            starts.append(UInt32(start))
        } else {
            let scanned = scannedStarts()
            if scanned.count >= Self.indexedFrom { starts = scanned.map(UInt32.init) }
        }
        let keep = Limits.eventsRetainedPerTenant
        if starts.count >= keep + keep / 4 { dropOldest(starts.count - keep) }
    }

    private mutating func dropOldest(_ count: Int) {
        let cut = Int(starts[count])
        bytes.removeFirst(cut)
        starts.removeFirst(count)
        for index in starts.indices { starts[index] -= UInt32(cut) }
    }

    /// Gives up growth slack (a log read from a snapshot, which a million tenants may each have).
    mutating func trimCapacity() {
        bytes = bytes.exactlySized()
        starts = starts.exactlySized()
    }

    /// The retained event that starts at `offset`, `position`-th (0: the oldest) of `tenant`.
    private func event(at offset: Int, position: Int, oldestID: UInt64, tenant: TenantID) -> LedgerEvent {
        var reader = BinaryReader(bytes, offset: offset)
        // Written by `append` from values: cannot fail.
        let time = try! reader.read(LedgerTime.self)
        let kind = try! reader.read(LedgerEvent.Kind.self)
        return LedgerEvent(id: oldestID + UInt64(position), tenant: tenant, time: time, kind: kind)
    }

    /// Retained events of `tenant` with an id above `afterID`, oldest first, at most `limit`.
    public func events(of tenant: TenantID, after afterID: UInt64, limit: Int) -> [LedgerEvent] {
        if starts.isEmpty {
            let scanned = scannedStarts()
            return events(of: tenant, after: afterID, limit: limit, count: scanned.count) { scanned[$0] }
        }
        return events(of: tenant, after: afterID, limit: limit, count: starts.count) { Int(starts[$0]) }
    }

    /// The page of ``events(of:after:limit:)`` from `count` retained events, the n-th at `offset(n)`.
    private func events(
        of tenant: TenantID, after afterID: UInt64, limit: Int, count: Int, offset: (Int) -> Int
    ) -> [LedgerEvent] {
        let oldestID = lastID + 1 - UInt64(count)
        let first = afterID < oldestID ? 0 : Int(min(afterID - oldestID + 1, UInt64(count)))
        return (first..<(first + min(max(0, limit), count - first))).map {
            event(at: offset($0), position: $0, oldestID: oldestID, tenant: tenant)
        }
    }

    /// Every retained event of `tenant`, oldest first.
    public func events(of tenant: TenantID) -> [LedgerEvent] { events(of: tenant, after: 0, limit: count) }
}

/// The tenants' event logs, read through the tenant table that keeps them
/// (``LedgerState/eventLogs``): the logs of tenants that have had an event, in creation order.
public struct EventLogs: Sequence, Sendable {
    let tenants: TenantTable

    /// The tenant's log, or nil when it never had an event (or there is no such tenant).
    public subscript(tenant: TenantID) -> EventLog? {
        guard let position = tenants.position(of: tenant) else { return nil }
        let log = tenants.eventLog(at: position)
        return log.lastID == 0 ? nil : log
    }

    private var positions: some Sequence<Int> { (0..<tenants.count).lazy.filter { tenants.eventLog(at: $0).lastID > 0 } }

    /// How many tenants have had an event.
    public var count: Int { positions.reduce(0) { count, _ in count + 1 } }

    public var isEmpty: Bool { positions.first { _ in true } == nil }

    public func makeIterator() -> some IteratorProtocol<(key: TenantID, value: EventLog)> {
        positions.map { [tenants] in (key: tenants.id(at: $0), value: tenants.eventLog(at: $0)) }.makeIterator()
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
