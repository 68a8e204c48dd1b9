@testable import LedgerCore
import LedgerTesting
import Testing

/// The compact in-memory forms (history bytes, remembered requests in one array, tenants side by
/// side) answer exactly as the plain collections they replaced.
@Suite struct CompactStateTests {
    /// Entries with every optional field present or not, times going forwards, jumping and (as a
    /// decoded snapshot could hold) backwards, and ids of several lengths.
    func sampleEntries(_ count: Int) -> [HistoryEntry] {
        var random = SeededGenerator(state: 7)
        var time: Int64 = 1_751_328_000_000
        return (1...count).map { sequence in
            time += Int64(random.next() % 5 == 0 ? -Int64(random.next() % 1_000) : Int64(random.next() % 100_000_000))
            let bits = random.next()
            return HistoryEntry(
                sequence: UInt64(sequence), time: LedgerTime(millisecondsSinceEpoch: time),
                kind: HistoryKind.allCases[Int(bits % UInt64(HistoryKind.allCases.count))],
                member: bits & 0x100 != 0 ? MemberID("member-\(bits % 97)") : nil,
                hold: bits & 0x200 != 0 ? HoldID("hold-\(bits)-ü") : nil,
                grant: bits & 0x400 != 0 ? GrantID(bits % 1_000 + 1) : nil,
                source: bits & 0x800 != 0 ? GrantKind.allCases[Int(bits % 7)] : nil,
                amount: bits & 0x1000 != 0 ? UInt64.max - bits % 3 : bits % 10_000,
                requestID: bits & 0x2000 != 0 ? RequestID("6f1c2e9a-\(bits)-4b7e-9c1d-\(sequence)") : nil)
        }
    }

    @Test func historyLogReadsBackEveryEntryInOrderAndAtRandom() throws {
        let entries = sampleEntries(300)
        var log = HistoryLog()
        for entry in entries { log.append(entry) }
        #expect(log.count == 300)
        #expect(Array(log) == entries)
        for position in [0, 1, 31, 32, 33, 63, 64, 150, 299] {
            #expect(log[position] == entries[position])
            #expect(Array(IteratorSequence(log.entries(from: position))) == Array(entries[position...]))
        }
        #expect(Array(IteratorSequence(log.entries(from: 300))).isEmpty)
        // At the end of a log whose length is a multiple of the checkpoint interval (no checkpoint
        // for the position after the last entry yet), and past the end.
        var exact = HistoryLog()
        for entry in entries.prefix(2 * HistoryLog.checkpointInterval) { exact.append(entry) }
        for start in [exact.count, exact.count + 5] { #expect(Array(IteratorSequence(exact.entries(from: start))).isEmpty) }
        #expect(exact[exact.count - 1] == entries[exact.count - 1])
        // Built at once from a snapshot's entries: the same log, with less memory than the structs.
        let rebuilt = try #require(HistoryLog(entries))
        #expect(rebuilt == log)
        #expect(HistoryLog(Array(entries.dropFirst())) == nil)
        var renumbered = entries
        renumbered[40].sequence = 42
        #expect(HistoryLog(renumbered) == nil)
    }

    @Test func historySurvivesASnapshotAndPagesFromACursor() throws {
        var ledger = TestLedger()
        let acme: TenantID = "acme"
        ledger.createTenant(acme)
        ledger.grant(acme, 1_000_000)
        for index in 0..<100 {
            ledger.reserve(acme, HoldID("h\(index)"), 10, member: MemberID("m\(index % 3)"))
            ledger.ok(.commit(acme, HoldID("h\(index)"), amount: 7, final: true))
            ledger.now = ledger.now.adding(.seconds(index))
        }
        let all = try ledger.state.history(acme, filter: HistoryFilter(limit: 1_000)).entries
        #expect(all.map(\.sequence) == Array(1...UInt64(all.count)))
        let page = try ledger.state.history(acme, filter: HistoryFilter(afterSequence: 70, limit: 5)).entries
        #expect(page == Array(all[70..<75]))
        let decoded = try LedgerState(binary: ledger.state.binaryEncoded)
        #expect(decoded == ledger.state)
        #expect(try decoded.history(acme, filter: HistoryFilter(limit: 1_000)).entries == all)
    }

    @Test func rememberedRequestsAreFoundBeforeAndAfterTheIndexAndAfterCompaction() throws {
        var ledger = TestLedger()
        let acme: TenantID = "acme"
        ledger.createTenant(acme)
        ledger.grant(acme, 1_000_000)
        // Few requests: found by scanning; ids of equal length that differ only at the end.
        let first = ledger.run(.reserve(acme, ReserveRequest(hold: "a", amount: .tokens(5))), requestID: "op-1")
        let second = ledger.run(.reserve(acme, ReserveRequest(hold: "b", amount: .tokens(6))), requestID: "op-2")
        #expect(ledger.tenant(acme).idempotency.count == 4)
        #expect(ledger.run(.reserve(acme, ReserveRequest(hold: "a", amount: .tokens(5))), requestID: "op-1").outcome == first.outcome)
        #expect(ledger.run(.reserve(acme, ReserveRequest(hold: "b", amount: .tokens(6))), requestID: "op-2").outcome == second.outcome)
        ledger.fail(.reserve(acme, ReserveRequest(hold: "b", amount: .tokens(6))), .idempotencyConflict, requestID: "op-1")

        // Past the count limit: the index takes over, the oldest are forgotten and the front of the
        // array is compacted away, more than once.
        let total = Limits.idempotencyEntriesPerTenantMax * 2 + 500
        for index in 0..<total {
            _ = ledger.state.apply(LedgerCommand(time: ledger.now, requestID: RequestID("bulk-\(index)"), body: .release(acme, "none")))
        }
        let table = ledger.tenant(acme).idempotency
        #expect(table.count == Limits.idempotencyEntriesPerTenantMax)
        let ids = table.entries.map(\.id)
        #expect(ids == (total - Limits.idempotencyEntriesPerTenantMax..<total).map { RequestID("bulk-\($0)") })
        for index in [0, total - Limits.idempotencyEntriesPerTenantMax - 1] { #expect(table.entry(RequestID("bulk-\(index)")) == nil) }
        for index in [total - Limits.idempotencyEntriesPerTenantMax, total - 2, total - 1] {
            let entry = try #require(table.entry(RequestID("bulk-\(index)")))
            #expect(entry.matches(.release(acme, "none")))
            #expect(entry.outcome.result.failureCode == .notFound)
        }
        // A snapshot keeps the same requests in the same order, and the copy finds them.
        let decoded = try LedgerState(binary: ledger.state.binaryEncoded)
        #expect(decoded == ledger.state)
        #expect(decoded.tenants[acme]!.idempotency.entry(RequestID("bulk-\(total - 1)")) != nil)
        #expect(decoded.tenants[acme]!.idempotency.entry(RequestID("bulk-\(total - Limits.idempotencyEntriesPerTenantMax - 1)")) == nil)
    }

    @Test func aSnapshotWithARepeatedRequestIDIsRefused() throws {
        var table = IdempotencyTable()
        table.remember("x", body: .release("acme", "h"), result: .success(.ticked), now: .epoch)
        var writer = BinaryWriter()
        // Two ids, the same twice, with two entries.
        writer.write([RequestID("x"), RequestID("x")])
        writer.writeVarint(2)
        let entry = try #require(table.entry("x"))
        writer.write(entry)
        writer.write(entry)
        #expect(throws: BinaryFormatError.self) { try IdempotencyTable(binary: writer.bytes) }
        #expect(try IdempotencyTable(binary: table.binaryEncoded) == table)
    }

    @Test func tenantTablesCompareByContentAndKeepCreationOrderThroughASnapshot() throws {
        func ledger(_ order: [TenantID]) -> TestLedger {
            var ledger = TestLedger()
            for id in order { ledger.ok(.createTenant(id, TenantSettings()), requestID: "create-\(id)") }
            return ledger
        }
        let forwards = ledger(["a", "b", "c"])
        let backwards = ledger(["c", "b", "a"])
        #expect(forwards.state.tenants == backwards.state.tenants)
        #expect(forwards.state.tenants.hashValue == backwards.state.tenants.hashValue)
        #expect(forwards.state.tenants != ledger(["a", "b"]).state.tenants)
        #expect(backwards.state.tenants.keys == ["c", "b", "a"])
        let decoded = try LedgerState(binary: backwards.state.binaryEncoded)
        #expect(decoded.tenants.keys == ["c", "b", "a"])
        #expect(decoded == backwards.state)
    }

    @Test func defaultPurchaseRulesAreShared() {
        let decoded = try! TenantSettings(binary: TenantSettings().binaryEncoded)
        let fresh = TenantSettings(purchaseRules: PurchaseRules(
            tokensPerRate: 100, minorUnitsPerRate: 100, minimumMinor: 500,
            bonusTiers: PurchaseRules.default.bonusTiers.map { $0 }))
        for settings in [decoded, fresh] {
            settings.purchaseRules.bonusTiers.withUnsafeBufferPointer { tiers in
                PurchaseRules.default.bonusTiers.withUnsafeBufferPointer { #expect(tiers.baseAddress == $0.baseAddress) }
            }
        }
    }
}

extension CompactStateTests {
    @Test func aTenantReadFromASnapshotAllocatesNothingForItsEmptyCollections() throws {
        var ledger = TestLedger()
        ledger.createTenant("acme")
        ledger.grant("acme", 1_000)
        let decoded = try LedgerState(binary: ledger.state.binaryEncoded)
        let tenant = try #require(decoded.tenants["acme"])
        // Reserving room on an empty dictionary allocates a table (about 500 bytes a tenant for
        // its holds and members): empty collections must be the shared empty storage.
        func storage<T>(_ value: T) -> UInt { unsafeBitCast(value, to: UInt.self) }
        #expect(storage(tenant.holds) == storage([HoldID: Hold]()))
        #expect(storage(tenant.members) == storage([MemberID: Member]()))
        #expect(storage(tenant.thresholdMembers) == storage([MemberID]()))
        #expect(tenant.grants.count == 1)
    }
}
