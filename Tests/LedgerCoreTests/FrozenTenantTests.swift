@testable import LedgerCore
import LedgerTesting
import Testing

/// Frozen tenants (kept as their encoding until a command changes them) answer exactly as hot ones,
/// and only idle tenants without open holds are frozen.
@Suite struct FrozenTenantTests {
    /// Random command sequences applied twice: to a state that never freezes, and to one that
    /// freezes every tenant it may after every command (and is read back from its snapshot form
    /// now and then). Every result, every audit and the final states must agree.
    @Test(arguments: 0..<4)
    func randomSequencesAnswerTheSameWithEveryIdleTenantFrozen(chunk: Int) throws {
        var frozenAtSomePoint = 0
        var thawedByACommand = 0
        for seed in UInt64(chunk * 25 + 1)...UInt64(chunk * 25 + 25) {
            var generator = CommandGenerator(seed: seed)
            var plain = LedgerState(time: generator.time)
            var frozen = plain
            var commands = generator.setupCommands()
            for _ in 0..<80 { commands.append(generator.next()) }
            for (step, command) in commands.enumerated() {
                let wasFrozen = command.body.tenant.flatMap { tenant in
                    frozen.tenants.position(of: tenant).map { frozen.tenants.isFrozen(at: $0) }
                } ?? false
                let expected = plain.apply(command)
                let got = frozen.apply(command)
                try #require(got == expected, "seed \(seed) step \(step) \(command.body)")
                if wasFrozen, case .success = got.outcome, !got.replayed,
                    let position = frozen.tenants.position(of: command.body.tenant!), !frozen.tenants.isFrozen(at: position)
                {
                    thawedByACommand += 1
                }
                frozenAtSomePoint += frozen.freezeAllTenants()
                if step % 20 == 19 { frozen = try LedgerState(binary: frozen.binaryEncoded) }
                try #require(frozen.audit().isEmpty, "seed \(seed) step \(step)")
            }
            #expect(frozen == plain, "seed \(seed)")
            for (_, tenant) in plain.tenants { #expect(tenant.encodedCountLowerBound <= tenant.binaryEncoded.count) }
            // Snapshots hold frozen tenants' bytes as they are: read back, the same ledger.
            #expect(try LedgerState(binary: frozen.binaryEncoded) == plain, "seed \(seed)")
            #expect(frozen.totals.openHolds == plain.totals.openHolds && frozen.totals.tokensHeld == plain.totals.tokensHeld)
        }
        #expect(frozenAtSomePoint > 500)
        #expect(thawedByACommand > 50)
    }

    @Test func theIdleSweepFreezesTenantsUnchangedSinceItsPreviousVisitAndNoneWithOpenHolds() throws {
        var ledger = TestLedger()
        ledger.createFunded("a", "b", "c", amount: 1_000)
        ledger.reserve("c", "open", 10)
        var cursor = 0
        // First visit: every tenant changed since it was made.
        #expect(ledger.state.freezeIdleTenants(cursor: &cursor, visits: 3, freezesMax: 10) == (3, 0))
        #expect(cursor == 3)
        // Second: a and b are idle; c has an open hold and stays hot.
        #expect(ledger.state.freezeIdleTenants(cursor: &cursor, visits: 3, freezesMax: 10) == (3, 2))
        #expect(ledger.state.totals.frozenTenants == 2)
        #expect(ledger.state.totals.openHolds == 1 && ledger.state.totals.tokensHeld == 10)
        let positions = ["a", "b", "c"].map { ledger.state.tenants.position(of: TenantID($0))! }
        #expect(positions.map { ledger.state.tenants.isFrozen(at: $0) } == [true, true, false])

        // A read leaves a frozen tenant frozen; a command thaws it, and the next visit finds it changed.
        #expect(try ledger.state.balance("a").available == 1_000)
        #expect(ledger.state.tenants.isFrozen(at: positions[0]))
        ledger.reserve("a", "h", 100)
        ledger.ok(.commit("a", "h", amount: 60, final: true))
        #expect(!ledger.state.tenants.isFrozen(at: positions[0]))
        #expect(try ledger.state.balance("a").available == 940)
        #expect(ledger.state.freezeIdleTenants(cursor: &cursor, visits: 3, freezesMax: 10) == (3, 0))
        // c's hold resolved: c was changed since the previous visit, a was not.
        ledger.ok(.release("c", "open"))
        #expect(ledger.state.freezeIdleTenants(cursor: &cursor, visits: 3, freezesMax: 10) == (3, 1))
        #expect(positions.map { ledger.state.tenants.isFrozen(at: $0) } == [true, true, false])
        #expect(ledger.state.freezeIdleTenants(cursor: &cursor, visits: 3, freezesMax: 10) == (3, 1))
        #expect(ledger.state.totals.frozenTenants == 3 && ledger.state.totals.openHolds == 0)
        #expect(ledger.state.audit().isEmpty)
        #expect(try ledger.state.balance("c").available == 1_000)
    }

    @Test func theIdleSweepStopsAtItsFreezeLimitAndGoesRound() {
        var ledger = TestLedger()
        for tenant in ["a", "b", "c"] { ledger.createTenant(TenantID(tenant)) }
        var cursor = 0
        #expect(ledger.state.freezeIdleTenants(cursor: &cursor, visits: 3, freezesMax: 10) == (3, 0))
        #expect(ledger.state.freezeIdleTenants(cursor: &cursor, visits: 3, freezesMax: 1) == (1, 1))
        #expect(cursor == 1)
        // From b on, round to a (frozen already) and on to b again (frozen now).
        #expect(ledger.state.freezeIdleTenants(cursor: &cursor, visits: 4, freezesMax: 10) == (4, 2))
        #expect(cursor == 2 && ledger.state.totals.frozenTenants == 3)
        var empty = LedgerState()
        var none = 0
        #expect(empty.freezeIdleTenants(cursor: &none, visits: 10, freezesMax: 10) == (0, 0))
    }

    @Test func aSnapshotReadFreezesIdleTenantsButNotOpenHoldsOrLargeTenants() throws {
        var ledger = TestLedger()
        ledger.createFunded("small", "holding", amount: 1_000)
        ledger.reserve("holding", "open", 10)
        ledger.createFunded("large", amount: 1_000_000)
        for index in 0..<100 {
            ledger.reserve("large", HoldID("hold-\(index)"), 10)
            ledger.ok(.commit("large", HoldID("hold-\(index)"), amount: 5, final: true))
        }
        #expect(ledger.state.tenants["large"]!.binaryEncoded.count > TenantTable.frozenBytesMax)
        // The sweep passes over it without encoding it.
        #expect(ledger.state.tenants["large"]!.encodedCountLowerBound > TenantTable.frozenBytesMax)
        #expect(ledger.state.freezeAllTenants() == 1)  // "small" only ("holding" holds tokens)
        let read = try LedgerState(binary: ledger.state.binaryEncoded)
        #expect(read == ledger.state)
        func frozen(_ tenant: TenantID) -> Bool { read.tenants.isFrozen(at: read.tenants.position(of: tenant)!) }
        #expect(frozen("small") && !frozen("holding") && !frozen("large"))
        // The copy answers as the original, frozen or not.
        for tenant: TenantID in ["small", "holding", "large"] {
            #expect(try read.balance(tenant) == ledger.state.balance(tenant))
            #expect(read.tenants[tenant] == ledger.state.tenants[tenant])
        }
        #expect(read.tenants.keys == ["small", "holding", "large"])
        #expect(read.tenants.position(of: "smal") == nil && read.tenants.position(of: "small2") == nil)
    }

    @Test func aCopyKeepsItsTenantsWhileTheOriginalThawsChangesAndFreezes() throws {
        var ledger = TestLedger()
        ledger.createFunded("a", "b", amount: 1_000)
        #expect(ledger.state.freezeAllTenants() == 2)
        ledger.reserve("b", "h", 1)
        let copy = ledger.state  // what a snapshot takes
        let before = try LedgerState(binary: copy.binaryEncoded)
        ledger.reserve("a", "x", 100)  // thaws a in the original only
        ledger.ok(.commit("b", "h", amount: 1, final: true))  // b's box is shared: copied first
        #expect(ledger.state.freezeAllTenants() == 1)  // b again (a holds tokens)
        #expect(copy == before)
        #expect(copy.tenants.isFrozen(at: 0) && !copy.tenants.isFrozen(at: 1))
        #expect(try copy.balance("a").available == 1_000 && ledger.state.balance("a").available == 900)
        #expect(try copy.balance("b").reserved == 1 && ledger.state.balance("b").reserved == 0)
    }

    @Test func frozenTenantsCompareByValue() {
        func ledger(granting amount: Tokens) -> LedgerState {
            var ledger = TestLedger()
            ledger.createFunded("a", amount: amount)
            return ledger.state
        }
        var one = ledger(granting: 1_000), other = ledger(granting: 1_001)
        let hotOne = one
        #expect(one.freezeAllTenants() == 1 && other.freezeAllTenants() == 1)
        #expect(one != other && one.tenants != other.tenants)
        #expect(one == hotOne && hotOne == one)
        var same = ledger(granting: 1_000)
        _ = same.freezeAllTenants()
        #expect(same == one && same.tenants.hashValue == one.tenants.hashValue)
    }
}
