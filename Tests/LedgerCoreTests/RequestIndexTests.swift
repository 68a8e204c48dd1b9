@testable import LedgerCore
import LedgerTesting
import Testing

/// The index of a tenant's remembered requests (``RequestIndex``): evicted records stay in it
/// until a rebuild and must never be found; every live one must be.
@Suite struct RequestIndexTests {
    @Test func everyLiveRequestIsFoundAndNoEvictedOneAcrossEvictionsCompactionsAndRebuilds() throws {
        var random = SeededGenerator(state: 99)
        var table = IdempotencyTable()
        var now = LedgerTime(millisecondsSinceEpoch: 1_780_000_000_000)
        // Ids of every length class: short (inline strings), long, multi-byte.
        func id(_ n: Int) -> RequestID {
            switch n % 3 {
            case 0: return RequestID("r\(n)")
            case 1: return RequestID("request-\(n)-" + String(repeating: "x", count: n % 40))
            default: return RequestID("é-\(n)")
            }
        }
        var remembered: [Int] = []  // oldest first, as the table keeps them
        let maxCount = Limits.idempotencyEntriesPerTenantMax
        let total = maxCount * 3
        for n in 0..<total {
            // Now and then a jump past the retention: everything older is forgotten at the next
            // remember.
            if n == maxCount + 500 {
                now = now.adding(milliseconds: Limits.idempotencyRetention.wholeMilliseconds + 1)
                remembered.removeAll()
            }
            let body = CommandBody.release("acme", HoldID("h\(n % 7)"))
            table.remember(id(n), body: body, result: .failure(LedgerError.notFound("hold")), now: now)
            remembered.append(n)
            if remembered.count > maxCount { remembered.removeFirst(remembered.count - maxCount) }
            try #require(table.count == remembered.count, "after \(n)")
            // The newest, the oldest live one, a random live one, and evicted ones.
            for live in [n, remembered.first!, remembered[Int(random.next() % UInt64(remembered.count))]] {
                try #require(table.entry(id(live)) != nil, "\(live) is remembered (after \(n))")
            }
            if remembered.first! > 0 {
                let evicted = Int(random.next() % UInt64(remembered.first!))
                try #require(table.entry(id(evicted)) == nil, "\(evicted) was forgotten (after \(n))")
                try #require(table.entry(id(remembered.first! - 1)) == nil)
            }
            try #require(table.entry(id(n + 1)) == nil)
        }
        // Read back from its snapshot form: the same table, found the same way.
        var writer = BinaryWriter()
        table.encode(to: &writer, tenant: "acme")
        var reader = BinaryReader(writer.bytes)
        let copy = try IdempotencyTable(from: &reader, tenant: "acme")
        #expect(copy == table)
        for live in remembered.suffix(100) { #expect(copy.entry(id(live)) != nil) }
        #expect(copy.entry(id(remembered.first! - 1)) == nil)
    }
}
