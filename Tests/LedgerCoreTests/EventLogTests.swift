import LedgerCore
import Testing

/// The numbered, retained event log that Watch and the webhook sink resume from.
@Suite("Event log")
struct EventLogTests {
    /// Drops below the pool threshold of 500 and back: two events per round.
    static func flap(_ ledger: inout TestLedger, _ tenant: TenantID, round: Int) {
        ledger.reserve(tenant, HoldID("h\(round)"), 600)
        ledger.ok(.release(tenant, HoldID("h\(round)")))
    }

    @Test("ids are consecutive per tenant, carried by the command's result, and never given to a replay")
    func numbering() {
        var ledger = TestLedger()
        ledger.createTenant("acme", TenantSettings(lowBalanceThreshold: 500))
        ledger.createTenant("globex", TenantSettings(lowBalanceThreshold: 500))
        ledger.grant("acme", 1_000)
        ledger.grant("globex", 1_000)
        let before = ledger.state.eventLogs["acme"]!.lastID
        let low = ledger.run(.reserve("acme", ReserveRequest(hold: "x", amount: .tokens(600))), requestID: "same")
        #expect(low.events.map(\.id) == [before + 1])
        let replay = ledger.run(.reserve("acme", ReserveRequest(hold: "x", amount: .tokens(600))), requestID: "same")
        #expect(replay.replayed)
        #expect(replay.events.isEmpty)
        ledger.ok(.release("acme", "x"))
        #expect(ledger.state.eventLogs["acme"]!.lastID == before + 2)
        // Another tenant's ids are its own.
        let globexBefore = ledger.state.eventLogs["globex"]!.lastID
        Self.flap(&ledger, "globex", round: 1)
        #expect(ledger.state.eventLogs["globex"]!.events(of: "globex").suffix(2).map(\.id) == [globexBefore + 1, globexBefore + 2])
        #expect(ledger.state.eventLogs["acme"]!.lastID == before + 2)
    }

    @Test("one retained event reads back; across trimming every retained event is one the commands raised, in order, and a snapshot keeps them")
    func contents() throws {
        var ledger = TestLedger()
        // A tenant made and funded, no threshold: the grant's movement event alone.
        ledger.createTenant("solo")
        ledger.grant("solo", 1_000)
        let one = ledger.state.eventLogs["solo"]!
        #expect(one.count == 1)
        let granted = one.events(of: "solo")
        #expect(granted.count == 1 && granted.first?.id == one.lastID)
        if case .granted(_, _, let amount)? = granted.first?.kind { #expect(amount == 1_000) } else { Issue.record("\(granted)") }
        #expect(try ledger.state.events("solo", after: one.lastID - 1, limit: 5).events == granted)

        ledger.createTenant("acme", TenantSettings(lowBalanceThreshold: 500))
        ledger.grant("acme", 1_000)
        var raised = ledger.state.eventLogs["acme"]!.events(of: "acme")
        let rounds = (Limits.eventsRetainedPerTenant + Limits.eventsRetainedPerTenant / 4) / 2 + 10
        for round in 0..<rounds {
            let hold = HoldID("h\(round)")
            raised += ledger.run(.reserve("acme", ReserveRequest(hold: hold, amount: .tokens(600)))).events
            raised += ledger.run(.release("acme", hold)).events
        }
        let log = ledger.state.eventLogs["acme"]!
        #expect(log.oldestRetainedID > 1 && log.count < raised.count)
        let retained = log.events(of: "acme")
        #expect(retained == Array(raised.suffix(log.count)))
        // A page from the middle is the same events.
        let middle = try ledger.state.events("acme", after: log.oldestRetainedID + 100, limit: 10).events
        #expect(middle == Array(retained[101..<111]))
        // The snapshot form carries them as they are.
        let copy = try LedgerState(binary: ledger.state.binaryEncoded)
        #expect(copy.eventLogs["acme"]!.events(of: "acme") == retained)
        #expect(copy.eventLogs["solo"]!.events(of: "solo") == granted)
    }

    @Test("a short log, read by decoding from its start, and a longer one, read through its index, answer every page alike, also from a snapshot")
    func shortAndIndexedLogs() throws {
        var ledger = TestLedger()
        ledger.createTenant("acme")
        var raised: [LedgerEvent] = []
        // One `granted` event per grant: the log crosses the length from which starts are indexed.
        for amount in 1...20 {
            raised += ledger.run(.grant("acme", GrantRequest(kind: .purchase, amount: Tokens(amount)))).events
            let log = ledger.state.eventLogs["acme"]!
            #expect(log.count == amount && log.lastID == UInt64(amount) && log.oldestRetainedID == 1)
            let copy = try LedgerState(binary: ledger.state.binaryEncoded)
            #expect(copy == ledger.state)
            for state in [ledger.state, copy] {
                #expect(state.eventLogs["acme"]!.events(of: "acme") == raised)
                for after in 0...UInt64(amount) {
                    for limit in [1, 3, 256] {
                        let page = try state.events("acme", after: after, limit: limit)
                        #expect(page.events == Array(raised.dropFirst(Int(after)).prefix(limit)), "\(amount) events, after \(after), limit \(limit)")
                        #expect(page.latestID == UInt64(amount) && page.lost == 0)
                    }
                }
            }
        }
        #expect(ledger.state.eventLogs.count == 1 && ledger.state.eventLogs.map(\.key) == ["acme"])
    }

    @Test("a snapshot that lists events under a tenant it does not hold is refused")
    func eventsOfAnUnknownTenant() throws {
        var ledger = TestLedger()
        ledger.createTenant("acme")
        ledger.grant("acme", 10)
        // The id appears in the tenant table, then before the tenant's events and in each event
        // (the last two occurrences): renamed there, the events are those of a tenant not held.
        var bytes = ledger.state.binaryEncoded
        let name = Array("acme".utf8)
        let found = (0...(bytes.count - name.count)).filter { bytes[$0..<($0 + name.count)].elementsEqual(name) }
        try #require(found.count >= 3)
        for at in found.suffix(2) { bytes.replaceSubrange(at..<(at + name.count), with: Array("acmf".utf8)) }
        let error = #expect(throws: BinaryFormatError.self) { try LedgerState(binary: bytes) }
        #expect(error?.reason.contains("events of an unknown tenant") == true, "\(String(describing: error))")
    }

    @Test("retention keeps the newest events; a reader further behind is told how many it lost")
    func retention() throws {
        var ledger = TestLedger()
        ledger.createTenant("acme", TenantSettings(lowBalanceThreshold: 500))
        ledger.grant("acme", 1_000)
        let rounds = (Limits.eventsRetainedPerTenant + Limits.eventsRetainedPerTenant / 4) / 2 + 10
        for round in 0..<rounds { Self.flap(&ledger, "acme", round: round) }
        let log = ledger.state.eventLogs["acme"]!
        #expect(log.count >= Limits.eventsRetainedPerTenant)
        #expect(log.count < Limits.eventsRetainedPerTenant + Limits.eventsRetainedPerTenant / 4)
        #expect(log.oldestRetainedID > 1)
        let fromStart = try ledger.state.events("acme", after: 0, limit: 10)
        #expect(fromStart.lost == log.oldestRetainedID - 1)
        #expect(fromStart.events.map(\.id) == Array(log.oldestRetainedID..<log.oldestRetainedID + 10))
        let inside = try ledger.state.events("acme", after: log.oldestRetainedID + 5, limit: Limits.eventPageMax)
        #expect(inside.lost == 0)
        #expect(inside.events.first?.id == log.oldestRetainedID + 6)
        #expect(inside.events.count == Limits.eventPageMax)
        let atEnd = try ledger.state.events("acme", after: log.lastID, limit: 1)
        #expect(atEnd.events.isEmpty && atEnd.latestID == log.lastID)
        let fromNow = try ledger.state.events("acme", after: nil, limit: 1)
        #expect(fromNow.events.isEmpty && fromNow.latestID == log.lastID)
        #expect(throws: LedgerError.self) { try ledger.state.events("acme", after: log.lastID + 1, limit: 1) }
        #expect(throws: LedgerError.self) { try ledger.state.events("acme", after: 0, limit: 0) }
        #expect(throws: LedgerError.self) { try ledger.state.events("nobody", after: 0, limit: 1) }
    }

    @Test("event logs survive the snapshot encoding; a snapshot from before them still decodes")
    func snapshotEncoding() throws {
        var ledger = TestLedger()
        ledger.createTenant("acme", TenantSettings(lowBalanceThreshold: 500))
        ledger.grant("acme", 1_000)
        ledger.reserve("acme", "brief", 600, ttl: .seconds(60))
        ledger.advance(.seconds(120))
        #expect(ledger.state.eventLogs["acme"]!.events(of: "acme").contains { if case .holdExpired("brief", 600) = $0.kind { true } else { false } })
        let decoded = try LedgerState(binary: ledger.state.binaryEncoded)
        #expect(decoded == ledger.state)

        var old = TestLedger()
        old.createTenant("acme", TenantSettings(movementEvents: false))
        old.grant("acme", 1_000)
        #expect(old.state.eventLogs.isEmpty)
        let bytes = old.state.binaryEncoded
        #expect(bytes.last == 0)
        // Format 1 snapshots ended before the event logs (an empty dictionary is one 0 byte).
        #expect(try LedgerState(binary: Array(bytes.dropLast())) == old.state)
    }

    @Test("a damaged event log in a snapshot is an error, not a trap")
    func damaged() {
        var ledger = TestLedger()
        ledger.createTenant("acme", TenantSettings(lowBalanceThreshold: 500))
        ledger.grant("acme", 1_000)
        Self.flap(&ledger, "acme", round: 0)
        var bytes = ledger.state.binaryEncoded
        // The log is the last field: count 1, tenant "acme", lastID, events. Claim lastID 1 while
        // more events follow.
        let log = ledger.state.eventLogs["acme"]!
        #expect(log.count > 1 && log.lastID < 128)
        let tail = [UInt8(1), 4] + Array("acme".utf8) + [UInt8(log.lastID)]
        guard let at = (0...(bytes.count - tail.count)).last(where: { Array(bytes[$0..<$0 + tail.count]) == tail }) else {
            Issue.record("event log not found in the encoding")
            return
        }
        bytes[at + tail.count - 1] = 1
        #expect(throws: BinaryFormatError.self) { try LedgerState(binary: bytes) }
    }
}
