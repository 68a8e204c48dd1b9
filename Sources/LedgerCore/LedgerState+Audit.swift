// The conservation audit. It recomputes every derived total from the grants and holds and compares.

/// One broken invariant found by ``LedgerState/audit()``.
public struct AuditViolation: Hashable, Sendable, CustomStringConvertible {
    public var tenant: TenantID?
    public var message: String
    public var description: String { tenant.map { "tenant \($0): \(message)" } ?? message }
}

extension LedgerState {
    /// Checks every invariant of every tenant; an empty result means the ledger is consistent:
    /// per grant `amount == remaining + consumed + expired + voided + carriedOver` and
    /// `held <= remaining`; per tenant the held, granted, spent and debt totals match the grants and
    /// holds; every hold resolved at most once and holding nothing once resolved. Frozen tenants
    /// (see `TenantTable`) were checked when they were frozen and are not decoded again.
    public func audit() -> [AuditViolation] {
        var violations: [AuditViolation] = []
        // Frozen tenants were audited when they were frozen and their bytes cannot change since
        // (see TenantTable.freezes); decoding a million of them again would double recovery.
        for position in 0..<tenants.count where !tenants.isFrozen(at: position) {
            tenants[at: position].audit(into: &violations)
        }
        for (tenantID, log) in eventLogs {
            let events = log.events(of: tenantID)
            let ids = events.map(\.id)
            let consecutive = zip(ids, ids.dropFirst()).allSatisfy { $0 + 1 == $1 }
            let times = events.map(\.time)
            if !consecutive || (ids.last.map { $0 != log.lastID } ?? false) || times != times.sorted() {
                violations.append(AuditViolation(tenant: tenantID, message: "event log out of order (last id \(log.lastID))"))
            }
        }
        return violations
    }
}

extension Tenant {
    func audit(into violations: inout [AuditViolation]) {
        func fail(_ message: String) { violations.append(AuditViolation(tenant: id, message: message)) }
        var granted: Tokens = 0
        var consumed: Tokens = 0
        var refundGrants: Tokens = 0
        var heldOnGrants: Tokens = 0
        var unheldActive: Tokens = 0
        let inBurnOrder = Set(activeGrants)
        for position in grants.indices {
            let grant = grants[position]
            if grant.id.rawValue != UInt64(position + 1) { fail("grant at index \(position) has id \(grant.id)") }
            let parts = [grant.remaining, grant.consumed, grant.expired, grant.voided, grant.carriedOver]
            if Tokens.checkedSum(parts) != grant.amount {
                fail("grant \(grant.id): amount \(grant.amount) != remaining \(grant.remaining) + consumed \(grant.consumed) + expired \(grant.expired) + voided \(grant.voided) + carried \(grant.carriedOver)")
            }
            if grant.held > grant.remaining { fail("grant \(grant.id): held \(grant.held) > remaining \(grant.remaining)") }
            if (grant.state == .expired || grant.state == .voided), grant.remaining != grant.held {
                fail("grant \(grant.id) is \(grant.state.rawValue) but has \(grant.remaining - min(grant.held, grant.remaining)) unheld tokens")
            }
            if grant.state == .pending, grant.held > 0 { fail("pending grant \(grant.id) has held tokens") }
            if grant.state == .active, grant.remaining > 0, !inBurnOrder.contains(grant.id) {
                fail("active grant \(grant.id) with tokens is missing from the burn-down order")
            }
            // Scoped grants never pay debt back.
            if grant.state == .active, grant.scope.isEmpty { unheldActive += grant.unheld }
            if !grant.scope.isEmpty, grant.scope != grant.scope.sorted() || Set(grant.scope).count != grant.scope.count {
                fail("grant \(grant.id): scope not sorted or not unique")
            }
            granted += grant.amount
            consumed += grant.consumed
            heldOnGrants += grant.held
            if grant.kind == .refund { refundGrants += grant.amount }
        }
        if grants.count(where: { $0.state == .pending }) != pendingGrantCount {
            fail("pending grant count \(pendingGrantCount) is out of date")
        }
        for position in activeGrants.indices.dropFirst() {
            let (earlier, later) = (activeGrants[position - 1], activeGrants[position])
            if !(grants[index(earlier)].burnKey < grants[index(later)].burnKey) {
                fail("burn-down order has \(earlier) before \(later)")
            }
        }
        if granted != grantedTotal { fail("granted total \(grantedTotal) != sum of grant amounts \(granted)") }
        if granted > Limits.tenantTokensMax { fail("granted \(granted) above the tenant limit") }
        if heldOnGrants != heldTotal { fail("held total \(heldTotal) != held on grants \(heldOnGrants)") }
        if refundedTotal > capturedTotal { fail("refunded \(refundedTotal) > captured \(capturedTotal)") }
        else if spent + refundGrants != consumed + debt {
            fail("spent \(spent) + refund grants \(refundGrants) != consumed \(consumed) + debt \(debt)")
        }
        if debt > 0, unheldActive > 0 { fail("debt \(debt) outstanding while \(unheldActive) tokens are unheld") }

        var heldByHolds: Tokens = 0
        var open = 0
        var heldByMember: [MemberID: Tokens] = [:]
        var heldPerGrant: [GrantID: Tokens] = [:]
        let allHolds = holds.values
        for hold in allHolds {
            let allocated = hold.allocations.reduce(Tokens(0)) { $0 + $1.amount }
            let captures = hold.captures.reduce(Tokens(0)) { $0 + $1.amount }
            if allocated != hold.held { fail("hold \(hold.id): held \(hold.held) != allocations \(allocated)") }
            if hold.captured < hold.refunded { fail("hold \(hold.id): refunded more than captured") }
            else if captures + hold.overdraftCaptured != hold.captured - hold.refunded {
                fail("hold \(hold.id): captures \(captures) + overdraft \(hold.overdraftCaptured) != net captured \(hold.captured - hold.refunded)")
            }
            if hold.state == .held {
                open += 1
                heldByHolds += hold.held
                if hold.resolvedAt != nil { fail("open hold \(hold.id) has a resolution time") }
                if let member = hold.member { heldByMember[member, default: 0] += hold.held }
                for allocation in hold.allocations { heldPerGrant[allocation.grant, default: 0] += allocation.amount }
            } else {
                if hold.held != 0 || !hold.allocations.isEmpty { fail("resolved hold \(hold.id) still holds tokens") }
                if hold.resolvedAt == nil { fail("resolved hold \(hold.id) has no resolution time") }
            }
        }
        if open != openHoldCount { fail("open hold count \(openHoldCount) != \(open)") }
        if let period = planPeriod {
            // The period's quota units are those its holds still count.
            var counted: [String: UInt64] = [:]
            for hold in allHolds {
                guard let quota = hold.quota, quota.periodStart == period.start, quota.generation == period.generation else { continue }
                for units in quota.units { counted[units.feature, default: 0] += units.units }
            }
            let used = Dictionary(uniqueKeysWithValues: period.quotaUsed.map { ($0.feature, $0.units) })
            if used != counted { fail("quota units used \(used) != counted by the period's holds \(counted)") }
            if period.quotaUsed.map(\.feature) != period.quotaUsed.map(\.feature).sorted() || period.quotaUsed.contains(where: { $0.units == 0 }) {
                fail("quota units not sorted by feature or with zeros")
            }
        }
        if heldByHolds != heldTotal { fail("held total \(heldTotal) != held by open holds \(heldByHolds)") }
        for grant in grants where heldPerGrant[grant.id, default: 0] != grant.held {
            fail("grant \(grant.id): held \(grant.held) != held by holds \(heldPerGrant[grant.id, default: 0])")
        }
        for member in members.values where member.held != heldByMember[member.id, default: 0] {
            fail("member \(member.id): held \(member.held) != held by its holds \(heldByMember[member.id, default: 0])")
        }
        let withThreshold = Set(thresholdMembers)
        for member in members.values where member.settings.hasThresholds != withThreshold.contains(member.id) {
            fail("member \(member.id): threshold membership out of date")
        }
    }
}
