@testable import LedgerCore
import LedgerTesting
import Testing

/// A tenant's holds (``HoldTable``): open ones as values, resolved ones as records in one byte
/// array behind an index. Checked against a plain dictionary through reserves, resolutions and
/// refunds (which replace records and, often enough, compact them), and through its snapshot form,
/// which must stay the dictionary form older builds wrote.
@Suite struct HoldTableTests {
    static let start = LedgerTime(millisecondsSinceEpoch: 1_780_000_000_000)

    /// Ids of every length class: short, long, multi-byte.
    static func id(_ n: Int) -> HoldID {
        switch n % 3 {
        case 0: return HoldID("h\(n)")
        case 1: return HoldID("hold-\(n)-" + String(repeating: "x", count: n % 50))
        default: return HoldID("é-\(n)")
        }
    }

    static func open(_ n: Int, amount: Tokens) -> Hold {
        Hold(
            id: id(n), member: n % 4 == 0 ? MemberID("m\(n % 7)") : nil, state: .held, amount: amount,
            allocations: [Allocation(grant: GrantID(UInt64(1 + n % 3)), amount: amount)], held: amount, captured: 0, captures: [],
            overdraftCaptured: 0, refunded: 0, createdAt: start.adding(milliseconds: Int64(n)),
            expiresAt: start.adding(milliseconds: Int64(n) + 900_000), resolvedAt: nil, catalogVersion: n % 5 == 0 ? "v\(n % 3)" : nil,
            items: n % 5 == 0 ? [PricedItem(feature: "transcription", quantity: UInt64(n % 90))] : [],
            budgetPeriodOfCapture: nil, planPeriodOfCapture: nil,
            quota: n % 10 == 0 ? HoldQuota(periodStart: start, generation: 1, units: [FeatureUnits(feature: "images", units: 2)]) : nil)
    }

    static func resolved(_ hold: Hold, _ state: HoldState, captured: Tokens, at n: Int) -> Hold {
        var hold = hold
        hold.state = state
        hold.allocations = []
        hold.held = 0
        hold.captured = captured
        hold.captures = captured == 0 ? [] : [Allocation(grant: GrantID(1), amount: captured)]
        hold.resolvedAt = start.adding(milliseconds: Int64(n) + 1_000)
        return hold
    }

    /// The snapshot form read back, and read as the dictionary form older builds read.
    static func checkSnapshotForm(_ table: HoldTable, _ model: [HoldID: Hold]) throws {
        var writer = BinaryWriter()
        table.encode(to: &writer)
        var reader = BinaryReader(writer.bytes)
        let copy = try HoldTable(from: &reader)
        #expect(reader.isAtEnd)
        #expect(copy == table)
        #expect(copy.values.count == model.count)
        for (id, hold) in model { try #require(copy[id] == hold) }
        var asDictionary = BinaryReader(writer.bytes)
        #expect(try asDictionary.readDictionary(HoldID.self, Hold.self) == model)
        // And the dictionary form written by older builds reads as the same table.
        var older = BinaryWriter()
        older.write(model)
        var olderReader = BinaryReader(older.bytes)
        #expect(try HoldTable(from: &olderReader) == table)
    }

    @Test func everyHoldIsFoundAsItWasLastStoredThroughResolutionsRefundsAndCompactions() throws {
        var random = SeededGenerator(state: 7)
        var table = HoldTable()
        var model: [HoldID: Hold] = [:]
        var openIDs: [Int] = []
        var resolvedIDs: [Int] = []
        var compactions = 0
        var largest = 0
        for n in 0..<6_000 {
            let choice = random.next() % 10
            if choice < 3 || openIDs.isEmpty {
                let hold = Self.open(n, amount: 10 + Tokens(random.next() % 1_000))
                try #require(!table.contains(hold.id), "\(hold.id) is new")
                table.update(hold)
                model[hold.id] = hold
                openIDs.append(n)
            } else if choice < 5 {
                // Resolve an open hold: committed, released or expired.
                let n = openIDs.remove(at: Int(random.next() % UInt64(openIDs.count)))
                let hold = model[Self.id(n)]!
                let state: HoldState = [.committed, .released, .expired][Int(random.next() % 3)]
                let resolved = Self.resolved(hold, state, captured: state == .committed ? hold.amount / 2 : 0, at: n)
                table.update(resolved)
                model[resolved.id] = resolved
                resolvedIDs.append(n)
            } else if !resolvedIDs.isEmpty {
                // A refund of a resolved hold: its record is replaced.
                let n = resolvedIDs[Int(random.next() % UInt64(resolvedIDs.count))]
                var hold = model[Self.id(n)]!
                hold.refunded += 1
                hold.captured += 1
                table.update(hold)
                model[hold.id] = hold
            }
            let before = largest
            largest = max(largest, table.resolvedBytes)
            if table.resolvedBytes < before { compactions += 1 }
            try #require(table.count == model.count && table.open.count == openIDs.count, "after \(n)")
            // A random known hold, the newest, and one that does not exist.
            for known in [Int(random.next() % UInt64(n + 1)), n] where model[Self.id(known)] != nil {
                try #require(table[Self.id(known)] == model[Self.id(known)], "\(Self.id(known)) after \(n)")
                try #require(table.contains(Self.id(known)))
            }
            try #require(table[Self.id(n + 1)] == nil && !table.contains(Self.id(n + 1)))
            if n % 1_000 == 0 { try Self.checkSnapshotForm(table, model) }
        }
        for (id, hold) in model { try #require(table[id] == hold, "\(id)") }
        #expect(Set(table.open.keys) == Set(openIDs.map(Self.id)))
        #expect(table.open.values.allSatisfy { $0.state == .held })
        #expect(Set(table.values.map(\.id)) == Set(model.keys))
        // Refunds replaced records often enough for dead ones to be compacted away.
        #expect(compactions > 0)
        try Self.checkSnapshotForm(table, model)
    }

    @Test func aFewResolvedHoldsAreFoundWithoutAnIndexAndManyWithOne() throws {
        for total in [1, HoldTable.indexedFrom - 1, HoldTable.indexedFrom, 100] {
            var table = HoldTable()
            var model: [HoldID: Hold] = [:]
            for n in 0..<total {
                let hold = Self.resolved(Self.open(n, amount: 100), .released, captured: 0, at: n)
                table.update(hold)
                model[hold.id] = hold
            }
            for (id, hold) in model { #expect(table[id] == hold) }
            #expect(table[Self.id(total)] == nil)
            try Self.checkSnapshotForm(table, model)
        }
    }

    @Test func theFirstFormatsHoldsAreReadAndWrittenInTheCurrentOne() throws {
        // Format 1 had no `quota`, the last field of a hold.
        var holds: [Hold] = []
        for n in [1, 2, 3, 4, 5, 6, 7, 8, 9, 11] {
            let hold = Self.open(n, amount: 50)
            holds.append(n % 2 == 0 ? hold : Self.resolved(hold, .committed, captured: 20, at: n))
        }
        var writer = BinaryWriter()
        writer.writeVarint(UInt64(holds.count))
        for hold in holds {
            writer.write(hold.id)
            var current = BinaryWriter()
            hold.encode(to: &current)
            #expect(current.bytes.last == 0)  // no quota
            current.bytes.dropLast().withUnsafeBufferPointer { writer.appendBytes($0) }
        }
        var reader = BinaryReader(writer.bytes)
        reader.version = 1
        let table = try HoldTable(from: &reader)
        #expect(reader.isAtEnd)
        for hold in holds { #expect(table[hold.id] == hold) }
        try Self.checkSnapshotForm(table, Dictionary(uniqueKeysWithValues: holds.map { ($0.id, $0) }))
    }

    @Test func aHoldUnderAnotherIdOrTwiceIsRefused() {
        let hold = Self.resolved(Self.open(3, amount: 10), .released, captured: 0, at: 3)
        for (key, count) in [(HoldID("other"), 1), (hold.id, 2)] {
            var writer = BinaryWriter()
            writer.writeVarint(UInt64(count))
            for _ in 0..<count {
                writer.write(key)
                writer.write(hold)
            }
            var reader = BinaryReader(writer.bytes)
            #expect(throws: BinaryFormatError.self) { try HoldTable(from: &reader) }
        }
    }
}
