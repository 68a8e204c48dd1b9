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

    /// A snapshot's history is written from the compact encoding by copying bytes
    /// (`HistoryLog.encodeEntries`): it must be exactly the entries' own binary forms, every
    /// optional field present and absent, ids over 15 bytes and non-ASCII, times going backwards,
    /// across checkpoints, and the empty log.
    @Test func historyIsWrittenForASnapshotExactlyAsItsEntriesEncode() throws {
        for count in [0, 1, 31, 32, 33, 300] {
            let entries = count == 0 ? [] : sampleEntries(count)
            var log = HistoryLog()
            for entry in entries { log.append(entry) }
            var expected = BinaryWriter()
            expected.write(entries)
            var written = BinaryWriter()
            log.encodeEntries(to: &written)
            #expect(written.bytes == expected.bytes, "\(count) entries")
            var reader = BinaryReader(written.bytes)
            #expect(try reader.readArray(HistoryEntry.self) == entries)
        }
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
        entry.encode(to: &writer, tenant: "acme")
        entry.encode(to: &writer, tenant: "acme")
        var reader = BinaryReader(writer.bytes)
        #expect(throws: BinaryFormatError.self) { try IdempotencyTable(from: &reader, tenant: "acme") }
        #expect(try roundTrip(table, tenant: "acme") == table)
    }

    func roundTrip(_ table: IdempotencyTable, tenant: TenantID, readAs other: TenantID? = nil) throws -> IdempotencyTable {
        var writer = BinaryWriter()
        table.encode(to: &writer, tenant: tenant)
        var reader = BinaryReader(writer.bytes)
        let decoded = try IdempotencyTable(from: &reader, tenant: other ?? tenant)
        #expect(reader.isAtEnd)
        return decoded
    }

    @Test func rememberedRequestsLeaveTheirTenantsIDOutAndPutItBackInSnapshots() throws {
        let long = TenantID("0b4cfa58-91d2-4f0e-8f7c-3c2a9d6e1b70")
        var ledger = TestLedger()
        for tenant in ["a", long] {
            ledger.ok(.createTenant(tenant, TenantSettings()), requestID: "create")
            ledger.ok(.grant(tenant, GrantRequest(kind: .purchase, amount: 1_000)), requestID: "fund")
            ledger.run(.reserve(tenant, ReserveRequest(hold: "h", amount: .tokens(5))), requestID: "op-1")
        }
        // The same requests take the same room whatever the tenant's id (only its outcomes that
        // name the tenant, like tenant creation's, grow with it).
        let short = ledger.tenant("a").idempotency, longer = ledger.tenant(long).idempotency
        let idLengthDifference = long.rawValue.utf8.count - 1
        #expect(longer.storedBytes - short.storedBytes == idLengthDifference)
        // Replays and conflicts still work, before and after a snapshot, which holds full bodies.
        let decoded = try LedgerState(binary: ledger.state.binaryEncoded)
        #expect(decoded == ledger.state)
        for state in [ledger.state, decoded] {
            let table = try #require(state.tenants[long]).idempotency
            let entry = try #require(table.entry("op-1"))
            #expect(entry.matches(.reserve(long, ReserveRequest(hold: "h", amount: .tokens(5)))))
            #expect(!entry.matches(.reserve(long, ReserveRequest(hold: "h", amount: .tokens(6)))))
            #expect(!entry.matches(.release(long, "h")))
        }
        var replayed = TestLedger()
        replayed.state = decoded
        #expect(replayed.run(.reserve(long, ReserveRequest(hold: "h", amount: .tokens(5))), requestID: "op-1").replayed)
        replayed.fail(.reserve(long, ReserveRequest(hold: "h", amount: .tokens(6))), .idempotencyConflict, requestID: "op-1")
        // A snapshot whose remembered request names another tenant is refused.
        #expect(try roundTrip(longer, tenant: long) == longer)
        #expect(throws: BinaryFormatError.self) { try roundTrip(longer, tenant: long, readAs: "a") }
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
            #expect(settings.sharesDefaultRules)
            settings.purchaseRules.bonusTiers.withUnsafeBufferPointer { tiers in
                PurchaseRules.default.bonusTiers.withUnsafeBufferPointer { #expect(tiers.baseAddress == $0.baseAddress) }
            }
        }
        // Other rules get their own copy; changing one tenant's settings leaves the others' alone.
        var changed = fresh
        changed.purchaseRules.minimumMinor = 100
        #expect(!changed.sharesDefaultRules)
        #expect(fresh.purchaseRules == .default && fresh.sharesDefaultRules)
        #expect(changed != fresh && changed.purchaseRules.minimumMinor == 100)
        var planned = changed
        planned.plan = Plan(allowance: 10, period: PeriodRule(unit: .month))
        #expect(changed.plan == nil && planned.plan?.allowance == 10)
        #expect(try! TenantSettings(binary: planned.binaryEncoded) == planned)
        planned.purchaseRules = .default
        #expect(planned.sharesDefaultRules)
    }

    @Test func tenantIndexFindsEveryTenantThroughGrowthAndNoOther() {
        var table = TenantTable()
        var ids: [TenantID] = []
        for index in 0..<5_000 {
            // Ids sharing long prefixes, of several lengths.
            let id = TenantID(index % 3 == 0 ? "tenant-\(index)" : "tenant-\(String(repeating: "x", count: index % 40))-\(index)")
            ids.append(id)
            #expect(table.position(of: id) == nil)
            #expect(table.insert(Tenant(id: id, settings: TenantSettings(), createdAt: july1)) == index)
            if index % 997 == 0 {
                for (position, earlier) in ids.enumerated() { #expect(table.position(of: earlier) == position) }
            }
        }
        for (position, id) in ids.enumerated() {
            #expect(table.position(of: id) == position)
            #expect(table[id]?.id == id)
        }
        for absent in ["tenant-5000", "tenant-", "", "tenant-x-2", "TENANT-0"] { #expect(table.position(of: TenantID(absent)) == nil) }
        #expect(table.keys == ids)
        // Reserving room first gives the same table.
        var reserved = TenantTable()
        reserved.reserveCapacity(ids.count)
        for id in ids.reversed() { reserved.insert(Tenant(id: id, settings: TenantSettings(), createdAt: july1)) }
        #expect(reserved == table)
        #expect(ids.allSatisfy { reserved.position(of: $0) == ids.count - 1 - table.position(of: $0)! })
    }

    @Test func countsKeptInFourBytesAreCheckedWhenASnapshotIsRead() throws {
        func tenant(pendingGrants: Int, openHolds: Int) -> [UInt8] {
            var writer = BinaryWriter()
            writer.write(TenantID("acme"))
            writer.write(TenantSettings())
            writer.write(july1)
            writer.write([Grant]())
            writer.write([GrantID]())
            writer.write(pendingGrants)
            writer.write([HoldID: Hold]())
            writer.write(openHolds)
            for _ in 0..<5 { writer.write(Tokens(0)) }  // held, debt, granted, captured, refunded
            writer.write([MemberID: Member]())
            writer.write([MemberID]())
            writer.write(false)
            writer.write(PlanPeriod?.none)
            writer.write(UInt64(0))
            writer.writeVarint(0)  // history
            writer.writeVarint(0)  // remembered request ids
            writer.writeVarint(0)  // remembered requests
            writer.writeVarint(0)  // further thresholds crossed (format 2)
            return writer.bytes
        }
        let read = try Tenant(binary: tenant(pendingGrants: 3, openHolds: 5))
        #expect(read.pendingGrantCount == 3 && read.openHoldCount == 5)
        for (pending, open) in [(Int(Int32.max) + 1, 0), (0, Int(Int32.max) + 1), (-1, 0), (0, -1)] {
            #expect(throws: BinaryFormatError.self) { try Tenant(binary: tenant(pendingGrants: pending, openHolds: open)) }
        }
    }

    @Test func grantIDListsActAsArrays() {
        var random = SeededGenerator(state: 11)
        var list = GrantIDList()
        var model: [GrantID] = []
        for _ in 0..<2_000 {
            switch random.next() % 5 {
            case 4:
                let id = GrantID(random.next() % 50 + 1)
                list.append(id)
                model.append(id)
            case 0, 1:
                let id = GrantID(random.next() % 50 + 1)
                let at = Int(random.next() % UInt64(model.count + 1))
                list.insert(id, at: at)
                model.insert(id, at: at)
            case 2:
                let cut = GrantID(random.next() % 50 + 1)
                list.removeAll { $0 < cut }
                model.removeAll { $0 < cut }
            default:
                if !model.isEmpty {
                    let at = Int(random.next() % UInt64(model.count))
                    list.remove(at: at)
                    model.remove(at: at)
                }
            }
            #expect(Array(list) == model)
            #expect(list.count == model.count)
            #expect(list == GrantIDList(model))
        }
    }

    @Test func outOfLineValuesAreCopiedOnWrite() {
        var first = OutOfLine<PlanPeriod>(nil)
        #expect(first.value == nil)
        let period = PlanPeriod(grant: GrantID(1), start: july1, end: july1.adding(.seconds(60)), used: 5, generation: 1)
        first.value = period
        var second = first
        #expect(second.isSameStorage(as: first) && second == first)
        second.value!.used += 10
        #expect(first.value?.used == 5 && second.value?.used == 15)
        #expect(!second.isSameStorage(as: first) && second != first)
        var alone = OutOfLine(period)
        let probe = alone
        alone.value!.used = 7
        #expect(probe.value?.used == 5 && alone.value?.used == 7)
        second.value = nil
        #expect(second.value == nil && second != first)
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
        #expect(storage(tenant.holds.open) == storage([HoldID: Hold]()) && tenant.holds.resolvedBytes == 0)
        #expect(storage(tenant.members) == storage([MemberID: Member]()))
        #expect(storage(tenant.thresholdMembers) == storage([MemberID]()))
        #expect(tenant.grants.count == 1)
    }
}
