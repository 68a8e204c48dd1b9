/// A shard's tenants: the `Tenant` values side by side in one array, in creation order, and an
/// index from id to position.
///
/// Why not `[TenantID: Tenant]`: a dictionary stores its values in a table sized to a power of two
/// at most three quarters full, so each tenant's 300-odd bytes were paid for up to 2.7 times (688
/// bytes per tenant with 500,000 tenants in a shard). Here the values are stored once, the array
/// exactly sized after a snapshot is read, and only the index (an id and a 4-byte position) pays the
/// dictionary's slack. Creation order is also a deterministic order for snapshots and audits.
///
/// Tenants are never removed, so positions are stable for the life of the state.
public struct TenantTable: Sendable {
    /// The tenants in creation order.
    public private(set) var values: [Tenant] = []
    private var positions: [TenantID: Int32] = [:]

    public init() {}

    public var count: Int { values.count }
    public var isEmpty: Bool { values.isEmpty }

    /// Tenant ids in creation order.
    public var keys: [TenantID] { values.map(\.id) }

    /// Where the tenant is in ``values``, or nil when there is no such tenant.
    public func position(of id: TenantID) -> Int? {
        positions[id].map { Int($0) }
    }

    /// A copy of the tenant, or nil when there is none. Mutations go through ``subscript(at:)``.
    public subscript(id: TenantID) -> Tenant? {
        guard let position = positions[id] else { return nil }
        return values[Int(position)]
    }

    /// The tenant at a position from ``position(of:)``, in place.
    subscript(at position: Int) -> Tenant {
        _read { yield values[position] }
        _modify { yield &values[position] }
    }

    /// Adds a tenant whose id is not in the table yet; returns its position.
    @discardableResult
    mutating func insert(_ tenant: Tenant) -> Int {
        precondition(positions[tenant.id] == nil, "tenant \(tenant.id) is in the table already")
        precondition(values.count < Int(Int32.max), "too many tenants in one shard")
        positions[tenant.id] = Int32(values.count)
        values.append(tenant)
        return values.count - 1
    }

    /// Room for `count` tenants in all, without growing.
    mutating func reserveCapacity(_ count: Int) {
        values.reserveCapacity(count)
        positions.reserveCapacity(count)
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
            guard let position = rhs.positions[tenant.id], rhs.values[Int(position)] == tenant else { return false }
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

extension TenantTable: Codable {
    public init(from decoder: any Decoder) throws {
        self.init()
        var container = try decoder.unkeyedContainer()
        while !container.isAtEnd {
            let tenant = try container.decode(Tenant.self)
            guard positions[tenant.id] == nil else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "tenant \(tenant.id) appears twice")
            }
            insert(tenant)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for tenant in values { try container.encode(tenant) }
    }
}
