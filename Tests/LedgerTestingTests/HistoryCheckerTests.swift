import LedgerTesting
import Testing

/// The checker's own tests: a good history passes, and each kind of bad history is flagged.
@Suite("History checker")
struct HistoryCheckerTests {
    typealias Op = HistoryChecker.Operation
    typealias Entry = HistoryChecker.Entry

    /// Tenant acme granted 100: r1 reserves 30 on h1 and is committed 20 (10 released), r2
    /// reserves 50 on h2 and is released, a read in between; one reserve failed, one ended unknown
    /// and was not applied.
    static func good() -> ([Op], [String: HistoryChecker.TenantRecord]) {
        let history: [Op] = [
            Op(process: 0, kind: .invoke, function: .reserve(hold: "h1", amount: 30), tenant: "acme", requestID: "r1"),
            Op(process: 0, kind: .ok, function: .reserve(hold: "h1", amount: 30), tenant: "acme", requestID: "r1", lsn: 3, value: .reserved(held: 30)),
            Op(process: 1, kind: .invoke, function: .reserve(hold: "h2", amount: 50), tenant: "acme", requestID: "r2"),
            Op(process: 1, kind: .info, function: .reserve(hold: "h2", amount: 50), tenant: "acme", requestID: "r2"),
            Op(process: 1, kind: .ok, function: .reserve(hold: "h2", amount: 50), tenant: "acme", requestID: "r2", lsn: 9, replayed: true, value: .reserved(held: 50)),
            Op(process: 0, kind: .ok, function: .commit(hold: "h1", amount: 20), tenant: "acme", requestID: "c1", lsn: 5, value: .committed(captured: 20, released: 10)),
            Op(process: 1, kind: .ok, function: .release(hold: "h2"), tenant: "acme", requestID: "x2", lsn: 10, value: .released(50)),
            Op(process: 2, kind: .ok, function: .balance, tenant: "acme", requestID: "", lsn: 5,
               value: .balance(.init(tenant: "acme", available: 30, reserved: 50, spent: 20, granted: 100))),
            Op(process: 2, kind: .fail, function: .reserve(hold: "h3", amount: 500), tenant: "acme", requestID: "r3", error: "insufficient_balance"),
            Op(process: 2, kind: .info, function: .reserve(hold: "h4", amount: 5), tenant: "acme", requestID: "r4"),
        ]
        let entries: [Entry] = [
            Entry(sequence: 1, kind: .grant, amount: 100, requestID: "g"),
            Entry(sequence: 2, kind: .reserve, hold: "h1", amount: 30, requestID: "r1"),
            Entry(sequence: 3, kind: .capture, hold: "h1", amount: 20, requestID: "c1"),
            Entry(sequence: 4, kind: .release, hold: "h1", amount: 10, requestID: "c1"),
            Entry(sequence: 5, kind: .reserve, hold: "h2", amount: 50, requestID: "r2"),
            Entry(sequence: 6, kind: .release, hold: "h2", amount: 50, requestID: "x2"),
        ]
        let balance = HistoryChecker.Balance(tenant: "acme", available: 80, reserved: 0, spent: 20, granted: 100)
        return (history, ["acme": .init(entries: entries, balance: balance)])
    }

    static func kinds(_ history: [Op], _ tenants: [String: HistoryChecker.TenantRecord]) -> Set<HistoryChecker.Violation.Kind> {
        Set(HistoryChecker.check(history, tenants: tenants).map(\.kind))
    }

    @Test("a good history with retries, a failure and an unknown outcome passes")
    func goodHistory() {
        let (history, tenants) = Self.good()
        #expect(HistoryChecker.check(history, tenants: tenants).isEmpty)
    }

    @Test("a lost acknowledgement: an ok reserve that is not in the ledger")
    func lostAck() {
        var (history, tenants) = Self.good()
        history.append(Op(process: 3, kind: .ok, function: .reserve(hold: "h9", amount: 1), tenant: "acme", requestID: "r9", lsn: 11, value: .reserved(held: 1)))
        #expect(Self.kinds(history, tenants) == [.lostAck])
        tenants["acme"]!.entries.removeAll { $0.requestID == "c1" }
        tenants["acme"]!.balance = .init(tenant: "acme", available: 70, reserved: 30, spent: 0, granted: 100)
        #expect(Self.kinds(history, tenants).contains(.lostAck))
    }

    @Test("a double apply: the same hold reserved twice, and a failed call applied anyway")
    func doubleApply() {
        var (history, tenants) = Self.good()
        tenants["acme"]!.entries.append(Entry(sequence: 7, kind: .reserve, hold: "h1", amount: 30, requestID: "r1"))
        tenants["acme"]!.balance = .init(tenant: "acme", available: 50, reserved: 30, spent: 20, granted: 100)
        #expect(Self.kinds(history, tenants) == [.doubleApply])

        (history, tenants) = Self.good()
        tenants["acme"]!.entries.append(Entry(sequence: 7, kind: .capture, hold: "h1", amount: 5, requestID: "c1b"))
        tenants["acme"]!.balance = .init(tenant: "acme", available: 80, reserved: 0, spent: 25, granted: 100)
        #expect(Self.kinds(history, tenants).contains(.doubleApply))

        (history, tenants) = Self.good()
        tenants["acme"]!.entries.append(Entry(sequence: 7, kind: .reserve, hold: "h3", amount: 5, requestID: "r3"))
        tenants["acme"]!.balance = .init(tenant: "acme", available: 75, reserved: 5, spent: 20, granted: 100)
        #expect(Self.kinds(history, tenants) == [.doubleApply])
    }

    @Test("a negative balance: reserves beyond the tokens granted")
    func negativeBalance() {
        let (history, tenants) = Self.good()
        var record = tenants["acme"]!
        record.entries.append(Entry(sequence: 7, kind: .reserve, hold: "h5", amount: 81, requestID: "r5"))
        record.balance = .init(tenant: "acme", available: 0, reserved: 81, spent: 20, granted: 100)
        #expect(Self.kinds(history, ["acme": record]).contains(.negativeBalance))
    }

    @Test("a wrong total: the server's balance is not what its history adds up to, or not conserved")
    func wrongTotal() {
        var (history, tenants) = Self.good()
        tenants["acme"]!.balance = .init(tenant: "acme", available: 81, reserved: 0, spent: 20, granted: 101)
        #expect(Self.kinds(history, tenants) == [.wrongTotal])
        (history, tenants) = Self.good()
        tenants["acme"]!.balance.granted = 99
        #expect(Self.kinds(history, tenants) == [.wrongTotal])
    }

    @Test("a cross-tenant read: answered with another tenant's balance")
    func crossTenantRead() {
        var (history, tenants) = Self.good()
        history.append(Op(process: 4, kind: .ok, function: .balance, tenant: "acme", requestID: "", lsn: 6,
                          value: .balance(.init(tenant: "initech", available: 500, reserved: 0, spent: 0, granted: 500))))
        #expect(Self.kinds(history, tenants) == [.crossTenantRead])
        (history, tenants) = Self.good()
        history.append(Op(process: 4, kind: .ok, function: .balance, tenant: "acme", requestID: "", lsn: 6,
                          value: .balance(.init(tenant: "acme", available: 500, reserved: 0, spent: 0, granted: 500))))
        #expect(Self.kinds(history, tenants) == [.crossTenantRead])
    }

    @Test("a retry answered differently from the first answer")
    func retryMismatch() {
        var (history, tenants) = Self.good()
        history.append(Op(process: 0, kind: .ok, function: .commit(hold: "h1", amount: 20), tenant: "acme", requestID: "c1", lsn: 12, replayed: true, value: .committed(captured: 25, released: 5)))
        #expect(Self.kinds(history, tenants).contains(.retryMismatch))
    }

    @Test("log order and history order disagree")
    func order() {
        var (history, tenants) = Self.good()
        history = history.map { op in
            var op = op
            if op.requestID == "r1" && op.kind == .ok { op.lsn = 50 }  // acknowledged after the release, yet first in the history
            return op
        }
        #expect(Self.kinds(history, tenants) == [.order])
    }

    @Test("a reply that does not match the ledger's record")
    func unexpectedResult() {
        var (history, tenants) = Self.good()
        history.append(Op(process: 5, kind: .ok, function: .release(hold: "h2"), tenant: "acme", requestID: "x2", lsn: 13, replayed: true, value: .released(40)))
        #expect(Self.kinds(history, tenants).contains(.unexpectedResult))
    }

    // MARK: Cluster mode: the log with its epochs and LSNs

    typealias Batch = HistoryChecker.LogBatch

    /// Shard 0 of one: epochs 1 then 2, LSNs 1-3, 4-4, 5-7; acme's charges acknowledged at 2 and 6.
    static func goodLog() -> ([Batch], [Op]) {
        let batches = [
            Batch(shard: 0, epoch: 1, firstLSN: 1, lastLSN: 3), Batch(shard: 0, epoch: 1, firstLSN: 4, lastLSN: 4),
            Batch(shard: 0, epoch: 2, firstLSN: 5, lastLSN: 7),
        ]
        let history = [
            Op(process: 0, kind: .ok, function: .charge(hold: "a", amount: 5), tenant: "acme", requestID: "ch-a", lsn: 2, value: .charged(5)),
            Op(process: 0, kind: .info, function: .charge(hold: "b", amount: 5), tenant: "acme", requestID: "ch-b"),
            Op(process: 0, kind: .ok, function: .charge(hold: "b", amount: 5), tenant: "acme", requestID: "ch-b", lsn: 6, value: .charged(5)),
            // A retry answered from the idempotency table carries the original's LSN.
            Op(process: 1, kind: .ok, function: .charge(hold: "b", amount: 5), tenant: "acme", requestID: "ch-b", lsn: 6, replayed: true, value: .charged(5)),
        ]
        return (batches, history)
    }

    static func logKinds(_ batches: [Batch], _ history: [Op]) -> Set<HistoryChecker.Violation.Kind> {
        Set(HistoryChecker.checkLog(batches, history: history, shardCount: 1).map(\.kind))
    }

    @Test("a good log: contiguous batches, epochs rising, each acknowledged change within it once")
    func goodLog() {
        let (batches, history) = Self.goodLog()
        #expect(HistoryChecker.checkLog(batches, history: history, shardCount: 1).isEmpty)
        // The oldest batches may have been deleted below a snapshot.
        #expect(HistoryChecker.checkLog(Array(batches.dropFirst()), history: Array(history.dropFirst()), shardCount: 1).isEmpty)
    }

    @Test("a log gap, two batches at one LSN, interleaved epochs, an acknowledgement past the log, two changes at one LSN")
    func badLogs() {
        let (batches, history) = Self.goodLog()
        #expect(Self.logKinds(batches.filter { $0.firstLSN != 4 }, history) == [.logGap])
        #expect(Self.logKinds(batches + [Batch(shard: 0, epoch: 2, firstLSN: 7, lastLSN: 7)], history) == [.logGap])
        // A deposed owner's batch after the new owner's: epochs 1, 2, 1.
        #expect(Self.logKinds(batches + [Batch(shard: 0, epoch: 1, firstLSN: 8, lastLSN: 8)], history) == [.epochOrder])
        #expect(Self.logKinds(Array(batches.dropLast()), history) == [.lostAck])
        var doubled = history
        doubled.append(Op(process: 2, kind: .ok, function: .charge(hold: "c", amount: 1), tenant: "acme", requestID: "ch-c", lsn: 6, value: .charged(1)))
        #expect(Self.logKinds(batches, doubled) == [.doubleApply])
    }

    @Test("the log against the take-overs: a batch of a deposed owner is caught")
    func deposedWrites() {
        let (batches, history) = Self.goodLog()
        // Epoch 1 took the shard at LSN 1, epoch 2 at LSN 5 (where its batch starts).
        let taken = [HistoryChecker.Acquisition(shard: 0, epoch: 1, nextLSN: 1), HistoryChecker.Acquisition(shard: 0, epoch: 2, nextLSN: 5)]
        #expect(HistoryChecker.checkLog(batches, acquisitions: taken, history: history, shardCount: 1).isEmpty)
        // Epoch 2 took it at LSN 4: the batch of epoch 1 at LSN 4 came from the deposed owner.
        let early = [taken[0], HistoryChecker.Acquisition(shard: 0, epoch: 2, nextLSN: 4)]
        #expect(Set(HistoryChecker.checkLog(batches, acquisitions: early, history: history, shardCount: 1).map(\.kind)) == [.deposedWrite])
    }

    @Test("a charge is checked against its reserve and captures")
    func charges() {
        let history = [Op(process: 0, kind: .ok, function: .charge(hold: "a", amount: 5), tenant: "acme", requestID: "ch-a", lsn: 2, value: .charged(5))]
        let entries = [
            Entry(sequence: 1, kind: .grant, amount: 10, requestID: "g"),
            Entry(sequence: 2, kind: .reserve, hold: "a", amount: 5, requestID: "ch-a"),
            Entry(sequence: 3, kind: .capture, hold: "a", amount: 5, requestID: "ch-a"),
        ]
        let balance = HistoryChecker.Balance(tenant: "acme", available: 5, reserved: 0, spent: 5, granted: 10)
        #expect(Self.kinds(history, ["acme": .init(entries: entries, balance: balance)]).isEmpty)
        let lost = HistoryChecker.Balance(tenant: "acme", available: 10, reserved: 0, spent: 0, granted: 10)
        #expect(Self.kinds(history, ["acme": .init(entries: [entries[0]], balance: lost)]) == [.lostAck])
        // Captured only in part: the reply does not fit the ledger.
        let part = [entries[0], entries[1], Entry(sequence: 3, kind: .capture, hold: "a", amount: 3, requestID: "ch-a"),
                    Entry(sequence: 4, kind: .release, hold: "a", amount: 2, requestID: "ch-a")]
        let partBalance = HistoryChecker.Balance(tenant: "acme", available: 7, reserved: 0, spent: 3, granted: 10)
        #expect(Self.kinds(history, ["acme": .init(entries: part, balance: partBalance)]) == [.unexpectedResult])
    }

    @Test("a client's answers on a tenant never go back in the log; replays are left out")
    func clientOrder() {
        let write = Op(process: 0, kind: .ok, function: .charge(hold: "a", amount: 1), tenant: "acme", requestID: "ch-a", lsn: 7, value: .charged(1))
        let balance = HistoryChecker.Balance(tenant: "acme", available: 0, reserved: 0, spent: 1, granted: 1)
        let fresh = Op(process: 0, kind: .ok, function: .balance, tenant: "acme", requestID: "", lsn: 7, value: .balance(balance))
        let stale = Op(process: 0, kind: .ok, function: .balance, tenant: "acme", requestID: "", lsn: 5, value: .balance(balance))
        let replay = Op(process: 0, kind: .ok, function: .charge(hold: "b", amount: 1), tenant: "acme", requestID: "ch-b", lsn: 3, replayed: true, value: .charged(1))
        let otherClient = Op(process: 1, kind: .ok, function: .balance, tenant: "acme", requestID: "", lsn: 2, value: .balance(balance))
        #expect(HistoryChecker.checkClientOrder([write, fresh, replay, otherClient]).isEmpty)
        #expect(HistoryChecker.checkClientOrder([write, stale]).map(\.kind) == [.readWentBack])
    }
}
