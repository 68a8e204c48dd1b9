/// A shard's tenants: the `Tenant` values side by side in one array, in creation order, and an
/// index from id to position.
///
/// Why not `[TenantID: Tenant]`: a dictionary stores its values in a table sized to a power of two
/// at most three quarters full, so each tenant's 300-odd bytes were paid for up to 2.7 times (688
/// bytes per tenant with 500,000 tenants in a shard). Here the values are stored once, the array
/// exactly sized after a snapshot is read. Creation order is also a deterministic order for
/// snapshots and audits.
///
/// The index is an open-addressing hash table of 4-byte positions (linear probing, at most three
/// quarters full): the ids it compares are the tenants' own, so it stores no key. 8 to 16 bytes a
/// tenant, where a `[TenantID: Int32]` dictionary took 40 to 55 (a 16-byte key and a 4-byte value
/// per slot).
///
/// Tenants are never removed, so positions are stable for the life of the state.
public struct TenantTable: Sendable {
    /// The tenants in creation order.
    public private(set) var values: [Tenant] = []
    /// The index: a power-of-two number of slots, each 0 (empty) or a position in `values` plus 1.
    private var slots: [Int32] = []

    public init() {}

    public var count: Int { values.count }
    public var isEmpty: Bool { values.isEmpty }

    /// Tenant ids in creation order.
    public var keys: [TenantID] { values.map(\.id) }

    /// Where the tenant is in ``values``, or nil when there is no such tenant.
    public func position(of id: TenantID) -> Int? {
        switch probe(id) {
        case .found(let position): return position
        case .empty: return nil
        }
    }

    /// A copy of the tenant, or nil when there is none. Mutations go through ``subscript(at:)``.
    public subscript(id: TenantID) -> Tenant? {
        position(of: id).map { values[$0] }
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
        var slot = id.hashValue & mask
        while true {
            let stored = slots[slot]
            if stored == 0 { return .empty(slot: slot) }
            let position = Int(stored) - 1
            if values[position].id == id { return .found(position) }
            slot = (slot + 1) & mask
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
        slots = [Int32](repeating: 0, count: slotCount)
        let mask = slotCount - 1
        for (position, tenant) in values.enumerated() {
            var slot = tenant.id.hashValue & mask
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(position + 1)
        }
    }

    /// The tenant at a position from ``position(of:)``, in place.
    subscript(at position: Int) -> Tenant {
        _read { yield values[position] }
        _modify { yield &values[position] }
    }

    /// Adds a tenant whose id is not in the table yet; returns its position.
    @discardableResult
    mutating func insert(_ tenant: Tenant) -> Int {
        precondition(values.count < Int(Int32.max) - 1, "too many tenants in one shard")
        if slots.count / 4 * 3 <= values.count { rehash(Self.slotCount(for: values.count + 1)) }
        guard case .empty(let slot) = probe(tenant.id) else {
            preconditionFailure("tenant \(tenant.id) is in the table already")
        }
        values.append(tenant)
        slots[slot] = Int32(values.count)
        return values.count - 1
    }

    /// Room for `count` tenants in all, without growing.
    mutating func reserveCapacity(_ count: Int) {
        values.reserveCapacity(count)
        let needed = Self.slotCount(for: count)
        if slots.count < needed { rehash(needed) }
    }
}

extension TenantTable: Sequence {
    public func makeIterator() -> some IteratorProtocol<(key: TenantID, value: Tenant)> {
        values.lazy.map { (key: $0.id, value: $0) }.makeIterator()
    }
}

extension TenantTable: Hashable {
    /// Equal when the same tenants are held, whatever order they were created or read in.
    public static func == (lhs: TenantTable, rhs: TenantTable) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for tenant in lhs.values {
            guard let position = rhs.position(of: tenant.id), rhs.values[position] == tenant else { return false }
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        // Order-independent, like `==`: combine the ids' hashes commutatively.
        var combined = 0
        for tenant in values { combined ^= tenant.id.hashValue }
        hasher.combine(count)
        hasher.combine(combined)
    }
}
