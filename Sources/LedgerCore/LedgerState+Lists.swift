/// Listings, paged by id (ids are ASCII, so their order is their byte order): the open holds a service that restarted must find, a tenant's grants,
/// and (per shard; the server merges shards) the tenants.
public struct HoldPage: Hashable, Sendable {
    /// Open holds, in id order.
    public var holds: [Hold]
    /// Pass as `after` for the next page; nil when this page is the last.
    public var nextAfter: HoldID?
}

public struct GrantPage: Hashable, Sendable {
    /// In id order (the order they were made).
    public var grants: [Grant]
    public var nextAfter: GrantID?
}

public struct TenantPage: Hashable, Sendable {
    /// In id order (byte order of the ids).
    public var tenants: [TenantID]
    public var nextAfter: TenantID?
}

extension LedgerState {
    static func checkPageLimit(_ limit: Int) throws(LedgerError) {
        guard limit >= 1, limit <= Limits.listPageMax else {
            throw LedgerError(.invalidArgument, "a page holds 1 to \(Limits.listPageMax) entries")
        }
    }

    /// The tenant's open holds (of `member` only, when given), after the hold id `after`, at most
    /// `limit`. Reads the tenant's open holds (resolved ones are kept apart): O(open holds) per page.
    public func openHolds(_ tenantID: TenantID, member: MemberID?, after: HoldID?, limit: Int) throws(LedgerError) -> HoldPage {
        let tenant = try tenant(tenantID)
        try Self.checkPageLimit(limit)
        if let member { try IdentifierRule.check(member.rawValue, field: "member id") }
        var open = tenant.holds.open.values.filter { hold in
            (member == nil || hold.member == member)
                && (after == nil || after! < hold.id)
        }
        open.sort { $0.id < $1.id }
        let page = Array(open.prefix(limit))
        return HoldPage(holds: page, nextAfter: open.count > limit ? page.last!.id : nil)
    }

    /// The tenant's grants in `state` (all when nil), after grant id `after` (0: from the first).
    public func grants(_ tenantID: TenantID, state: GrantState?, after: GrantID, limit: Int) throws(LedgerError) -> GrantPage {
        let tenant = try tenant(tenantID)
        try Self.checkPageLimit(limit)
        var page: [Grant] = []
        var more = false
        for grant in tenant.grants where grant.id.rawValue > after.rawValue && (state == nil || grant.state == state) {
            if page.count == limit {
                more = true
                break
            }
            page.append(grant)
        }
        return GrantPage(grants: page, nextAfter: more ? page.last!.id : nil)
    }

    /// This state's tenants after `after`, at most `limit`, in id order.
    public func tenantIDs(after: TenantID?, limit: Int) throws(LedgerError) -> TenantPage {
        try Self.checkPageLimit(limit)
        var ids = tenants.keys.filter { after == nil || after! < $0 }
        ids.sort()
        let page = Array(ids.prefix(limit))
        return TenantPage(tenants: page, nextAfter: ids.count > limit ? page.last : nil)
    }
}
