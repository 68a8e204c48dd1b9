import LedgerCore
import Testing

/// Listings: open holds, grants, tenants, paged in id order.
@Suite struct ListTests {
    let acme: TenantID = "acme"

    @Test func openHoldsArePagedInIDOrderAndFilteredByMember() throws {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.grant(acme, 1_000)
        for (hold, member) in [("h3", "ana"), ("h1", nil), ("h2", "ana"), ("h5", nil), ("h4", "bo")] as [(HoldID, MemberID?)] {
            ledger.reserve(acme, hold, 10, member: member)
        }
        ledger.ok(.commit(acme, "h5", amount: 10, final: true))
        ledger.ok(.release(acme, "h4"))
        ledger.ok(.charge(acme, ReserveRequest(hold: "h0", amount: .tokens(5))))

        let first = try ledger.state.openHolds(acme, member: nil, after: nil, limit: 2)
        #expect(first.holds.map(\.id) == ["h1", "h2"] && first.nextAfter == "h2")
        let second = try ledger.state.openHolds(acme, member: nil, after: first.nextAfter, limit: 2)
        #expect(second.holds.map(\.id) == ["h3"] && second.nextAfter == nil)
        let ana = try ledger.state.openHolds(acme, member: "ana", after: nil, limit: 10)
        #expect(ana.holds.map(\.id) == ["h2", "h3"] && ana.nextAfter == nil)
        #expect(throws: LedgerError.self) { try ledger.state.openHolds(acme, member: nil, after: nil, limit: 0) }
        #expect(throws: LedgerError.self) { try ledger.state.openHolds("nobody", member: nil, after: nil, limit: 10) }
    }

    @Test func grantsArePagedInTheOrderMadeAndFilteredByState() throws {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        let a = ledger.grant(acme, 100, kind: .promo)
        let b = ledger.grant(acme, 200)
        let c = ledger.grant(acme, 300)
        ledger.ok(.voidGrant(acme, b))
        let all = try ledger.state.grants(acme, state: nil, after: GrantID(0), limit: 2)
        #expect(all.grants.map(\.id) == [a, b] && all.nextAfter == b)
        let rest = try ledger.state.grants(acme, state: nil, after: b, limit: 2)
        #expect(rest.grants.map(\.id) == [c] && rest.nextAfter == nil)
        #expect(try ledger.state.grants(acme, state: .voided, after: GrantID(0), limit: 10).grants.map(\.id) == [b])
        #expect(try ledger.state.grants(acme, state: .active, after: GrantID(0), limit: 10).grants.map(\.id) == [a, c])
    }

    @Test func tenantsArePagedInIDByteOrder() throws {
        var ledger = TestLedger()
        for tenant in ["b", "B", "a", "a-1", "c"] as [TenantID] { ledger.createTenant(tenant) }
        let first = try ledger.state.tenantIDs(after: nil, limit: 3)
        #expect(first.tenants == ["B", "a", "a-1"] && first.nextAfter == "a-1")
        let second = try ledger.state.tenantIDs(after: first.nextAfter, limit: 3)
        #expect(second.tenants == ["b", "c"] && second.nextAfter == nil)
    }
}
