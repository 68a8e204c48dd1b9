/// A shard's tenants in creation order, an index from id to position, and each tenant in one of
/// two forms: hot (a `Tenant` value in its own box) or frozen (its snapshot encoding, one byte
/// array).
///
/// Why frozen tenants: a `Tenant` is about 240 bytes of fields plus an allocation for each of its
/// grants, history and remembered requests (712 bytes for a tenant with one grant and two remembered
/// requests), where its encoding is about 340 bytes in one allocation. Most of a large ledger's
/// tenants are idle at any moment; they are kept frozen and thawed (decoded, once) by the first
/// command that changes them. Reads of a frozen tenant decode a copy and leave it frozen. A
/// snapshot read freezes every tenant it may, and the idle sweep
/// (``freezeIdle(cursor:visits:freezesMax:)``) those unchanged between two of its visits (see
/// ``freezes(_:encodedCount:)`` for which may be). Which tenants are frozen is not part of the
/// ledger's state: equality, snapshots and every answer are the same in either form.
///
/// Why boxes for hot tenants: the slot arrays hold 8-byte references, so copying the table (a
/// snapshot takes a copy-on-write copy of the state) and the first change after it copy 16 bytes a
/// tenant instead of every tenant's fields; a box shared with such a copy is copied when its tenant
/// changes (copy on write).
///
/// Why not `[TenantID: Tenant]`: a dictionary stores its values in a table sized to a power of two
/// at most three quarters full, so each tenant's 300-odd bytes were paid for up to 2.7 times.
///
/// The index is an open-addressing hash table of 4-byte positions (linear probing, at most three
/// quarters full): the ids it compares are the tenants' own, so it stores no key. 8 to 16 bytes a
/// tenant, where a `[TenantID: Int32]` dictionary took 40 to 55.
///
/// Each tenant's event log (``EventLog``) is kept here too, at the tenant's position: 24 bytes a
/// tenant, where a `[TenantID: EventLog]` dictionary took 60 to 105 (its table sized like the
/// index above, 40 bytes a slot, keys included). Logs are not frozen: they change with every
/// movement, and most hold one or two events.
///
/// Tenants are never removed, so positions are stable for the life of the state.
public struct TenantTable: Sendable {
    /// A hot tenant. Changed only while the table's reference is the only one (see
    /// ``subscript(at:)``), so sharing a box between copies of a table is safe.
    private final class Box: @unchecked Sendable {
        var tenant: Tenant
        /// Set by every change, cleared by ``freezeIdle(cursor:visits:freezesMax:)``'s visit: a
        /// tenant found unchanged since the previous visit is idle. Not part of the tenant's value.
        var changed = true
        init(_ tenant: Tenant) { self.tenant = tenant }
    }

    /// Per position: the hot tenant, or nil when it is frozen.
    private var hot: [Box?] = []
    /// Per position: the frozen tenant's encoding (`Tenant.encode`), or empty when it is hot.
    private var frozen: [[UInt8]] = []
    /// The index: a power-of-two number of slots, each 0 (empty) or a position plus 1.
    private var slots: [Int32] = []
    /// Per position: the tenant's event log (``EventLog/lastID`` 0: it never had an event).
    private var logs: [EventLog] = []

    /// Tenants whose encoding is larger stay hot: a read of a frozen tenant decodes it, which must
    /// stay cheap, and for a large tenant the fields' overhead is small next to its data.
    public static let frozenBytesMax = 4_096

    public init() {}

    public var count: Int { hot.count }
    public var isEmpty: Bool { hot.isEmpty }

    /// How many tenants are frozen (metrics and tests).
    public var frozenCount: Int { hot.count(where: { $0 == nil }) }

    /// Whether the tenant at a position is frozen (the audit skips those; tests).
    package func isFrozen(at position: Int) -> Bool { hot[position] == nil }

    /// Tenant ids in creation order.
    public var keys: [TenantID] { hot.indices.map(id(at:)) }

    /// Where the tenant is, or nil when there is no such tenant.
    public func position(of id: TenantID) -> Int? {
        switch probe(id) {
        case .found(let position): return position
        case .empty: return nil
        }
    }

    /// A copy of the tenant, or nil when there is none. Mutations go through ``subscript(at:)``.
    public subscript(id: TenantID) -> Tenant? {
        position(of: id).map { self[at: $0] }
    }

    /// The id of the tenant at a position, without decoding a frozen tenant.
    func id(at position: Int) -> TenantID {
        if let box = hot[position] { return box.tenant.id }
        var reader = BinaryReader(frozen[position])
        // Written by `Tenant.encode` (id first): cannot fail.
        return try! reader.read(TenantID.self)
    }

    /// Whether the tenant at a position has this id (its UTF-8 bytes; a frozen tenant's encoding
    /// starts with the id's length and bytes).
    private func has(_ wanted: UnsafeBufferPointer<UInt8>, _ id: TenantID, at position: Int) -> Bool {
        if let box = hot[position] { return box.tenant.id == id }
        let bytes = frozen[position]
        var reader = BinaryReader(bytes)
        guard let length = try? reader.readVarint(), length == UInt64(wanted.count),
            bytes.count - reader.offset >= wanted.count
        else { return false }
        return bytes[reader.offset..<(reader.offset + wanted.count)].elementsEqual(wanted)
    }

    private enum Probe {
        case found(Int)
        /// Not in the table; the empty slot where it would go.
        case empty(slot: Int)
    }

    /// Walks the slots from the id's hash until the id or an empty slot.
    private func probe(_ id: TenantID) -> Probe {
        guard !slots.isEmpty else { return .empty(slot: 0) }
        let mask = slots.count - 1
        var key = id.rawValue
        return key.withUTF8 { wanted in
            var slot = id.hashValue & mask
            while true {
                let stored = slots[slot]
                if stored == 0 { return .empty(slot: slot) }
                let position = Int(stored) - 1
                if has(wanted, id, at: position) { return .found(position) }
                slot = (slot + 1) & mask
            }
        }
    }

    /// Slots for `count` tenants at most three quarters full (a power of two, at least 16).
    private static func slotCount(for count: Int) -> Int {
        var slots = 16
        while slots / 4 * 3 < count { slots *= 2 }
        return slots
    }

    /// Rebuilds the index with `slotCount` slots.
    private mutating func rehash(_ slotCount: Int) {
        var rebuilt = [Int32](repeating: 0, count: slotCount)
        let mask = slotCount - 1
        for position in hot.indices {
            var slot = id(at: position).hashValue & mask
            while rebuilt[slot] != 0 { slot = (slot + 1) & mask }
            rebuilt[slot] = Int32(position + 1)
        }
        slots = rebuilt
    }

    /// The tenant at a position from ``position(of:)``. Reading a frozen tenant decodes a copy and
    /// leaves it frozen; changing one thaws it.
    subscript(at position: Int) -> Tenant {
        _read {
            if let box = hot[position] {
                yield box.tenant
            } else {
                yield Self.thaw(frozen[position])
            }
        }
        _modify {
            if hot[position] == nil {
                hot[position] = Box(Self.thaw(frozen[position]))
                frozen[position] = []
            } else if !isKnownUniquelyReferenced(&hot[position]) {
                // Shared with a copy of the table (a snapshot being written): this one gets its own.
                hot[position] = Box(hot[position]!.tenant)
            } else {
                hot[position]!.changed = true
            }
            yield &hot[position]!.tenant
        }
    }

    private static func thaw(_ bytes: [UInt8]) -> Tenant {
        // Bytes that decoded to a valid tenant when it was frozen (by `freeze`, or read from a
        // snapshot by `insertFreezing`): cannot fail.
        try! Tenant(binary: bytes)
    }

    /// Whether a tenant may be frozen: no open holds (so metrics' totals of open holds and held
    /// tokens need not decode frozen tenants, and no hold expiry is waiting to thaw it), an encoding
    /// of at most ``frozenBytesMax`` bytes, and a clean audit (a frozen tenant's bytes never change,
    /// so ``LedgerState/audit()`` need not decode it again; a tenant that fails stays hot for that
    /// audit to report).
    static func freezes(_ tenant: Tenant, encodedCount: Int) -> Bool {
        guard tenant.openHoldCount == 0, tenant.heldTotal == 0, encodedCount <= frozenBytesMax else { return false }
        var violations: [AuditViolation] = []
        tenant.audit(into: &violations)
        return violations.isEmpty
    }

    /// Freezes the hot tenant at a position if ``freezes(_:encodedCount:)`` allows; returns whether
    /// it did.
    private mutating func freeze(at position: Int) -> Bool {
        guard let box = hot[position], box.tenant.openHoldCount == 0,
            box.tenant.encodedCountLowerBound <= Self.frozenBytesMax  // a large tenant is not encoded to find out
        else { return false }
        let bytes = box.tenant.binaryEncoded
        guard Self.freezes(box.tenant, encodedCount: bytes.count) else { return false }
        frozen[position] = bytes.exactlySized()
        hot[position] = nil
        return true
    }

    /// Visits up to `visits` tenants from `cursor` on (going round to the start after the last),
    /// and freezes each hot one that was not changed since the previous visit, until `freezesMax`
    /// are frozen. Visiting every tenant once per period P freezes those idle for P to 2P. Returns
    /// how many tenants it visited and how many it froze.
    mutating func freezeIdle(cursor: inout Int, visits: Int, freezesMax: Int) -> (visited: Int, frozen: Int) {
        guard !hot.isEmpty else { return (0, 0) }
        var visited = 0
        var frozenCount = 0
        while visited < visits, frozenCount < freezesMax {
            if cursor >= hot.count { cursor = 0 }
            if let box = hot[cursor] {
                if box.changed {
                    box.changed = false
                } else if freeze(at: cursor) {
                    frozenCount += 1
                }
            }
            cursor += 1
            visited += 1
        }
        return (visited, frozenCount)
    }

    /// Freezes every tenant that may be frozen, changed lately or not (tests); returns how many.
    package mutating func freezeAll() -> Int {
        hot.indices.reduce(0) { count, position in count + (freeze(at: position) ? 1 : 0) }
    }

    /// Adds a tenant whose id is not in the table yet, hot; returns its position.
    @discardableResult
    mutating func insert(_ tenant: Tenant) -> Int {
        insert(Box(tenant), [], id: tenant.id)
    }

    /// Adds a tenant read from a snapshot, whose id is not in the table yet: frozen as `encoding`
    /// (the bytes it was decoded from: snapshots are written in the current encoding, which is
    /// what a frozen tenant holds) when ``freezes(_:encodedCount:)`` allows, else hot.
    @discardableResult
    mutating func insertFreezing(_ tenant: Tenant, encoding: ArraySlice<UInt8>) -> Int {
        guard Self.freezes(tenant, encodedCount: encoding.count) else { return insert(tenant) }
        return insert(nil, Array(encoding), id: tenant.id)
    }

    private mutating func insert(_ box: Box?, _ bytes: [UInt8], id: TenantID) -> Int {
        precondition(hot.count < Int(Int32.max) - 1, "too many tenants in one shard")
        if slots.count / 4 * 3 <= hot.count { rehash(Self.slotCount(for: hot.count + 1)) }
        guard case .empty(let slot) = probe(id) else {
            preconditionFailure("tenant \(id) is in the table already")
        }
        hot.append(box)
        frozen.append(bytes)
        logs.append(EventLog())
        slots[slot] = Int32(hot.count)
        return hot.count - 1
    }

    /// Room for `count` tenants in all, without growing.
    mutating func reserveCapacity(_ count: Int) {
        hot.reserveCapacity(count)
        frozen.reserveCapacity(count)
        logs.reserveCapacity(count)
        let needed = Self.slotCount(for: count)
        if slots.count < needed { rehash(needed) }
    }

    /// The event log of the tenant at a position.
    func eventLog(at position: Int) -> EventLog { logs[position] }

    /// Numbers `event` and retains it in the log of the tenant at a position (in place).
    mutating func appendEvent(_ event: inout LedgerEvent, at position: Int) {
        logs[position].append(&event)
    }

    /// Sets the log of the tenant at a position (snapshot decoding), without growth slack.
    mutating func setEventLog(_ log: EventLog, at position: Int) {
        logs[position] = log
        logs[position].trimCapacity()
    }

    /// Open holds and the tokens they hold, over every tenant (frozen tenants have none).
    public var openHoldTotals: (openHolds: Int, tokensHeld: Tokens) {
        var holds = 0
        var held: Tokens = 0
        for case let box? in hot {
            holds += box.tenant.openHoldCount
            held &+= box.tenant.heldTotal
        }
        return (holds, held)
    }

    /// Writes every tenant's id and encoding in creation order; a frozen tenant's encoding is
    /// copied as it is. `flush` is called between tenants whenever the writer holds `chunk` bytes
    /// or more (`LedgerState.encode(to:flushingAt:_:)`).
    func encodeTenants<E: Error>(
        to writer: inout BinaryWriter, flushingAt chunk: Int, _ flush: (inout BinaryWriter) throws(E) -> Void
    ) throws(E) {
        for position in hot.indices {
            if let box = hot[position] {
                writer.write(box.tenant.id)
                writer.write(box.tenant)
            } else {
                writer.write(id(at: position))
                frozen[position].withUnsafeBufferPointer { writer.appendBytes($0) }
            }
            if writer.bytes.count >= chunk { try flush(&writer) }
        }
    }
}

extension TenantTable: Sequence {
    public func makeIterator() -> some IteratorProtocol<(key: TenantID, value: Tenant)> {
        hot.indices.lazy.map { (key: id(at: $0), value: self[at: $0]) }.makeIterator()
    }
}

extension TenantTable: Hashable {
    /// Equal when the same tenants are held, whatever order they were created or read in and
    /// whichever are frozen.
    public static func == (lhs: TenantTable, rhs: TenantTable) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for position in lhs.hot.indices {
            guard let other = rhs.position(of: lhs.id(at: position)), lhs.logs[position] == rhs.logs[other] else { return false }
            if lhs.hot[position] == nil, rhs.hot[other] == nil, lhs.frozen[position] == rhs.frozen[other] { continue }
            guard lhs[at: position] == rhs[at: other] else { return false }
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        // Order-independent, like `==`: combine the ids' hashes commutatively.
        var combined = 0
        for position in hot.indices { combined ^= id(at: position).hashValue }
        hasher.combine(count)
        hasher.combine(combined)
    }
}

extension Tenant {
    /// At most the size of the tenant's encoding, found without encoding it: the snapshot forms of
    /// history entries and remembered requests take at least half their in-memory bytes, and each
    /// grant, hold and member at least 8 bytes.
    var encodedCountLowerBound: Int {
        history.storedBytes / 2 + idempotency.storedBytes / 2 + 8 * (grants.count + members.count) + holds.encodedCountLowerBound
    }
}
