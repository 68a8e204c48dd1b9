import LedgerCore

/// A Jepsen-style checker for the ledger: a history of operations as clients saw them (invoke,
/// then ok, fail or info — info meaning the outcome is unknown, e.g. the server died mid-call),
/// the ledger's final state as the server reports it, and a small reference model, written apart
/// from LedgerCore on purpose, that replays the server's history to find every violation:
///
/// - lost acknowledgement: a change a client saw succeed is not in the ledger;
/// - double apply: a hold reserved twice, more captured or released than held, a request id
///   applied twice, or a change that failed for the client applied anyway;
/// - negative balance: a reserve the tenant's tokens could not cover;
/// - wrong total: the final balance differs from the model's, or does not conserve tokens;
/// - cross-tenant read: a read answered with another tenant's data;
/// - retry mismatch: a repeated request id answered with a different result than the first;
/// - order: changes the server acknowledged in one log order appear in another in the history;
/// - unexpected result: a reply that does not match what the ledger recorded for it.
///
/// Cluster mode adds the log itself (``checkLog(_:acquisitions:history:shardCount:)``): each shard's
/// batches as PostgreSQL holds them, with their epochs and LSN ranges, and its take-overs:
///
/// - log gap: a shard's batches do not follow each other (a hole, or two batches at one LSN);
/// - epoch order: a batch of an older epoch after one of a newer (two owners interleaved);
/// - deposed write: a batch of an epoch at or after the LSN where a newer epoch took the shard
///   (an owner that lost the shard still wrote);
/// - lost acknowledgement: a change acknowledged at an LSN the log does not reach;
/// - double apply: two different changes acknowledged at one LSN of a shard.
///
/// And per client (``checkClientOrder(_:)``): the log positions a client is answered with on one
/// tenant never go back (a node serving a stale state shows up as a read that went back).
public enum HistoryChecker {
    public struct Operation: Sendable, Hashable {
        public enum Kind: String, Sendable { case invoke, ok, fail, info }
        public enum Function: Sendable, Hashable {
            case reserve(hold: String, amount: UInt64)
            case commit(hold: String, amount: UInt64)
            case release(hold: String)
            /// A charge: reserve and final commit in one call.
            case charge(hold: String, amount: UInt64)
            case balance
        }
        public enum Value: Sendable, Hashable {
            case reserved(held: UInt64)
            case committed(captured: UInt64, released: UInt64)
            case released(UInt64)
            case charged(UInt64)
            case balance(Balance)
        }

        public var process: Int
        public var kind: Kind
        public var function: Function
        public var tenant: String
        /// Empty for reads.
        public var requestID: String
        /// The server's log position (ok replies).
        public var lsn: UInt64
        public var replayed: Bool
        public var value: Value?
        /// The error code of a fail.
        public var error: String?

        public init(
            process: Int, kind: Kind, function: Function, tenant: String, requestID: String, lsn: UInt64 = 0,
            replayed: Bool = false, value: Value? = nil, error: String? = nil
        ) {
            self.process = process
            self.kind = kind
            self.function = function
            self.tenant = tenant
            self.requestID = requestID
            self.lsn = lsn
            self.replayed = replayed
            self.value = value
            self.error = error
        }
    }

    public struct Balance: Sendable, Hashable {
        public var tenant: String
        public var available: UInt64
        public var reserved: UInt64
        public var spent: UInt64
        public var expired: UInt64
        public var voided: UInt64
        public var granted: UInt64
        public init(
            tenant: String, available: UInt64, reserved: UInt64, spent: UInt64, expired: UInt64 = 0, voided: UInt64 = 0,
            granted: UInt64
        ) {
            self.tenant = tenant
            self.available = available
            self.reserved = reserved
            self.spent = spent
            self.expired = expired
            self.voided = voided
            self.granted = granted
        }
    }

    /// One entry of the server's history of a tenant (the kinds the model knows; others are
    /// ignored).
    public struct Entry: Sendable, Hashable {
        public enum Kind: String, Sendable { case grant, reserve, capture, release, other }
        public var sequence: UInt64
        public var kind: Kind
        public var hold: String
        public var amount: UInt64
        public var requestID: String
        public init(sequence: UInt64, kind: Kind, hold: String = "", amount: UInt64, requestID: String) {
            self.sequence = sequence
            self.kind = kind
            self.hold = hold
            self.amount = amount
            self.requestID = requestID
        }
    }

    /// What the server reports for a tenant at the end.
    public struct TenantRecord: Sendable {
        public var entries: [Entry]
        public var balance: Balance
        public init(entries: [Entry], balance: Balance) {
            self.entries = entries
            self.balance = balance
        }
    }

    public struct Violation: Sendable, Hashable, CustomStringConvertible {
        public enum Kind: String, Sendable {
            case lostAck = "lost acknowledgement"
            case doubleApply = "double apply"
            case negativeBalance = "negative balance"
            case wrongTotal = "wrong total"
            case crossTenantRead = "cross-tenant read"
            case retryMismatch = "retry mismatch"
            case order
            case unexpectedResult = "unexpected result"
            case logGap = "log gap"
            case epochOrder = "epoch order"
            case deposedWrite = "deposed write"
            case readWentBack = "read went back"
        }
        public var kind: Kind
        public var tenant: String
        public var detail: String
        public var description: String { "\(kind.rawValue) (\(tenant)): \(detail)" }
    }

    /// Checks `history` against `tenants` (every tenant the history touches must be there).
    public static func check(_ history: [Operation], tenants: [String: TenantRecord]) -> [Violation] {
        var violations: [Violation] = []
        let byTenant = Dictionary(grouping: history, by: \.tenant)
        for tenant in Set(byTenant.keys).union(tenants.keys).sorted() {
            guard let record = tenants[tenant] else {
                violations.append(Violation(kind: .lostAck, tenant: tenant, detail: "the server has no such tenant"))
                continue
            }
            violations += check(tenant, byTenant[tenant] ?? [], record)
        }
        return violations
    }

    private struct Applied {
        var reserves: [String: (hold: String, amount: UInt64, sequence: UInt64)] = [:]
        var captured: [String: UInt64] = [:]
        var released: [String: UInt64] = [:]
        var firstSequence: [String: UInt64] = [:]
        var granted: UInt64 = 0
    }

    private static func check(_ tenant: String, _ operations: [Operation], _ record: TenantRecord) -> [Violation] {
        var violations: [Violation] = []
        func flag(_ kind: Violation.Kind, _ detail: String) {
            violations.append(Violation(kind: kind, tenant: tenant, detail: detail))
        }

        // The model replays the server's history in its order.
        var available: UInt64 = 0
        var reserved: UInt64 = 0
        var spent: UInt64 = 0
        var held: [String: UInt64] = [:]
        var applied = Applied()
        var lastSequence: UInt64 = 0
        for entry in record.entries.sorted(by: { $0.sequence < $1.sequence }) {
            if entry.sequence == lastSequence { flag(.doubleApply, "history sequence \(entry.sequence) appears twice") }
            lastSequence = entry.sequence
            if !entry.requestID.isEmpty, applied.firstSequence[entry.requestID] == nil {
                applied.firstSequence[entry.requestID] = entry.sequence
            }
            switch entry.kind {
            case .grant:
                available += entry.amount
                applied.granted += entry.amount
            case .reserve:
                if held[entry.hold] != nil { flag(.doubleApply, "hold \(entry.hold) reserved twice (sequence \(entry.sequence))") }
                if let earlier = applied.reserves[entry.requestID] {
                    flag(.doubleApply, "request \(entry.requestID) reserved \(earlier.hold) and again \(entry.hold)")
                }
                if entry.amount > available {
                    flag(.negativeBalance, "reserve of \(entry.amount) on hold \(entry.hold) with \(available) available")
                }
                available &-= entry.amount
                reserved &+= entry.amount
                held[entry.hold] = entry.amount
                applied.reserves[entry.requestID] = (entry.hold, entry.amount, entry.sequence)
            case .capture, .release:
                let holding = held[entry.hold] ?? 0
                if entry.amount > holding {
                    flag(.doubleApply, "\(entry.kind.rawValue) of \(entry.amount) from hold \(entry.hold) holding \(holding)")
                }
                held[entry.hold] = holding &- entry.amount
                reserved &-= entry.amount
                if entry.kind == .capture {
                    spent &+= entry.amount
                    applied.captured[entry.requestID, default: 0] += entry.amount
                } else {
                    available &+= entry.amount
                    applied.released[entry.requestID, default: 0] += entry.amount
                }
            case .other:
                break
            }
        }

        // The final balance: the model's, and conserved.
        let balance = record.balance
        if balance.tenant != tenant { flag(.crossTenantRead, "the final balance is of tenant \(balance.tenant)") }
        if (balance.available, balance.reserved, balance.spent) != (available, reserved, spent) {
            flag(
                .wrongTotal,
                "the server reports available \(balance.available), reserved \(balance.reserved), spent \(balance.spent); "
                    + "its history gives \(available), \(reserved), \(spent)")
        }
        if !conserves(balance) {
            flag(.wrongTotal, "granted \(balance.granted) != the sum of available, reserved, spent, expired and voided")
        }

        // Every acknowledged change is in the ledger, as the client was told; every refused one is not.
        var answers: [String: Operation.Value] = [:]
        var acknowledged: [(lsn: UInt64, requestID: String)] = []
        for operation in operations {
            switch (operation.kind, operation.function) {
            case (.ok, .balance):
                guard case .balance(let read) = operation.value else {
                    flag(.unexpectedResult, "a balance read without a balance")
                    continue
                }
                // Another tenant's answer: its name, or more granted than this tenant was ever given.
                if read.tenant != tenant || read.granted > applied.granted {
                    flag(.crossTenantRead, "a read of \(tenant) answered with \(read.tenant)'s balance (granted \(read.granted))")
                } else if !conserves(read) {
                    flag(.wrongTotal, "a read of \(tenant) does not conserve tokens: \(read)")
                }
            case (.ok, let function):
                let id = operation.requestID
                if let first = answers[id], first != operation.value {
                    flag(.retryMismatch, "request \(id) answered \(String(describing: operation.value)), first \(first)")
                }
                if answers[id] == nil, let value = operation.value { answers[id] = value }
                if !operation.replayed { acknowledged.append((operation.lsn, id)) }
                switch (function, operation.value) {
                case (.reserve(let hold, let amount), .reserved(let heldAmount)?):
                    guard let entry = applied.reserves[id] else {
                        flag(.lostAck, "acknowledged reserve \(id) of hold \(hold) is not in the ledger")
                        continue
                    }
                    if entry.hold != hold || entry.amount != amount || heldAmount != amount {
                        flag(.unexpectedResult, "reserve \(id): asked \(amount) on \(hold), told \(heldAmount), ledger \(entry.amount) on \(entry.hold)")
                    }
                case (.commit(let hold, _), .committed(let captured, let released)?):
                    if applied.firstSequence[id] == nil {
                        flag(.lostAck, "acknowledged commit \(id) of hold \(hold) is not in the ledger")
                    } else if applied.captured[id, default: 0] != captured || applied.released[id, default: 0] != released {
                        flag(
                            .unexpectedResult,
                            "commit \(id): told captured \(captured) released \(released), ledger \(applied.captured[id, default: 0]) "
                                + "and \(applied.released[id, default: 0])")
                    }
                case (.charge(let hold, let amount), .charged(let charged)?):
                    guard let entry = applied.reserves[id] else {
                        flag(.lostAck, "acknowledged charge \(id) of hold \(hold) is not in the ledger")
                        continue
                    }
                    if entry.hold != hold || entry.amount != amount || charged != amount || applied.captured[id, default: 0] != amount {
                        flag(
                            .unexpectedResult,
                            "charge \(id): asked \(amount) on \(hold), told \(charged), ledger held \(entry.amount) on \(entry.hold) "
                                + "and captured \(applied.captured[id, default: 0])")
                    }
                case (.release(let hold), .released(let amount)?):
                    if applied.firstSequence[id] == nil {
                        flag(.lostAck, "acknowledged release \(id) of hold \(hold) is not in the ledger")
                    } else if applied.released[id, default: 0] != amount {
                        flag(.unexpectedResult, "release \(id): told \(amount), ledger \(applied.released[id, default: 0])")
                    }
                default:
                    flag(.unexpectedResult, "request \(id): a reply that does not fit its call")
                }
            case (.fail, let function) where function != .balance:
                if applied.firstSequence[operation.requestID] != nil {
                    flag(.doubleApply, "request \(operation.requestID) failed (\(operation.error ?? "?")) for its client but is in the ledger")
                }
            default:
                break  // invokes, infos (either outcome is allowed) and failed reads
            }
        }

        // Log order and history order agree for the changes the server acknowledged.
        let ordered = acknowledged.sorted { $0.lsn < $1.lsn }.compactMap { applied.firstSequence[$0.requestID] }
        for (earlier, later) in zip(ordered, ordered.dropFirst()) where earlier > later {
            flag(.order, "a change acknowledged at a later log position is earlier in the history (sequence \(later) < \(earlier))")
            break
        }
        return violations
    }

    /// One batch of a shard's log as the database holds it (cluster mode: a `tokenledger_shard_log`
    /// row).
    public struct LogBatch: Sendable, Hashable {
        public var shard: Int
        public var epoch: UInt64
        public var firstLSN: UInt64
        public var lastLSN: UInt64
        public init(shard: Int, epoch: UInt64, firstLSN: UInt64, lastLSN: UInt64) {
            self.shard = shard
            self.epoch = epoch
            self.firstLSN = firstLSN
            self.lastLSN = lastLSN
        }
    }

    /// One take-over of a shard: the epoch and the head's next LSN then.
    public struct Acquisition: Sendable, Hashable {
        public var shard: Int
        public var epoch: UInt64
        public var nextLSN: UInt64
        public init(shard: Int, epoch: UInt64, nextLSN: UInt64) {
            self.shard = shard
            self.epoch = epoch
            self.nextLSN = nextLSN
        }
    }

    /// Checks the cluster's log (every shard's batches; those below the older snapshot may be
    /// gone, so the first kept batch may start anywhere) against its take-overs and the
    /// acknowledged changes of `history`, whose tenants map to shards by
    /// ``LedgerCore/TenantID/shardIndex(shardCount:)``.
    public static func checkLog(
        _ batches: [LogBatch], acquisitions: [Acquisition] = [], history: [Operation], shardCount: Int
    ) -> [Violation] {
        var violations: [Violation] = []
        func flag(_ kind: Violation.Kind, _ shard: Int, _ detail: String) {
            violations.append(Violation(kind: kind, tenant: "shard \(shard)", detail: detail))
        }
        var ends: [Int: UInt64] = [:]
        for (shard, rows) in Dictionary(grouping: batches, by: \.shard).sorted(by: { $0.key < $1.key }) {
            let rows = rows.sorted { $0.firstLSN < $1.firstLSN }
            for row in rows where row.lastLSN < row.firstLSN {
                flag(.logGap, shard, "a batch from LSN \(row.firstLSN) to \(row.lastLSN)")
            }
            for (earlier, later) in zip(rows, rows.dropFirst()) {
                if later.firstLSN != earlier.lastLSN &+ 1 {
                    flag(.logGap, shard, "the batch after LSN \(earlier.lastLSN) starts at \(later.firstLSN)")
                }
                if later.epoch < earlier.epoch {
                    flag(.epochOrder, shard, "epoch \(later.epoch) at LSN \(later.firstLSN) after epoch \(earlier.epoch)")
                }
            }
            ends[shard] = rows.last?.lastLSN
            // Each batch belongs to the newest epoch taken at or before its first LSN.
            let taken = acquisitions.filter { $0.shard == shard }
            for row in rows {
                let required = taken.filter { $0.nextLSN <= row.firstLSN }.map(\.epoch).max() ?? 0
                if row.epoch < required {
                    flag(.deposedWrite, shard, "a batch of epoch \(row.epoch) at LSN \(row.firstLSN), after epoch \(required) took the shard")
                }
            }
        }
        // Acknowledged changes: within the log, and one per LSN.
        var owners: [Int: [UInt64: String]] = [:]
        for operation in history where operation.kind == .ok && !operation.requestID.isEmpty && !operation.replayed {
            let shard = TenantID(operation.tenant).shardIndex(shardCount: shardCount)
            let id = "\(operation.tenant)/\(operation.requestID)"
            guard operation.lsn <= ends[shard, default: 0] else {
                flag(.lostAck, shard, "\(id) acknowledged at LSN \(operation.lsn); the log ends at \(ends[shard, default: 0])")
                continue
            }
            if let other = owners[shard]?[operation.lsn], other != id {
                flag(.doubleApply, shard, "\(other) and \(id) both acknowledged at LSN \(operation.lsn)")
            }
            owners[shard, default: [:]][operation.lsn] = id
        }
        return violations
    }

    /// Per client (`process`, whose operations are in `history` in the order they completed) and
    /// tenant: the LSN of each answer (a read's: the last record its state includes; a change's:
    /// its record) is at least that of the client's previous answer on the tenant. Replayed
    /// answers carry their first LSN and are left out.
    public static func checkClientOrder(_ history: [Operation]) -> [Violation] {
        var violations: [Violation] = []
        var last: [Int: [String: (lsn: UInt64, what: String)]] = [:]
        for operation in history where operation.kind == .ok && !operation.replayed && operation.lsn > 0 {
            let what = operation.requestID.isEmpty ? "a read" : operation.requestID
            if let previous = last[operation.process]?[operation.tenant], operation.lsn < previous.lsn {
                violations.append(
                    Violation(
                        kind: .readWentBack, tenant: operation.tenant,
                        detail: "client \(operation.process): \(what) answered at LSN \(operation.lsn) after \(previous.what) at \(previous.lsn)"))
            }
            last[operation.process, default: [:]][operation.tenant] = (operation.lsn, what)
        }
        return violations
    }

    static func conserves(_ balance: Balance) -> Bool {
        UInt64.checkedSum([balance.available, balance.reserved, balance.spent, balance.expired, balance.voided])
            == balance.granted
    }
}

extension HistoryChecker.TenantRecord {
    /// A tenant's whole history and balance in `state` (a replayed shard), as the checker reads them.
    public init(_ tenant: TenantID, in state: LedgerState) throws {
        var entries: [HistoryChecker.Entry] = []
        var cursor: UInt64 = 0
        while true {
            let page = try state.history(tenant, filter: HistoryFilter(afterSequence: cursor, limit: Limits.historyPageMax))
            for entry in page.entries {
                let kind: HistoryChecker.Entry.Kind
                switch entry.kind {
                case .grant: kind = .grant
                case .reserve: kind = .reserve
                case .capture: kind = .capture
                case .release: kind = .release
                default: kind = .other
                }
                entries.append(
                    .init(
                        sequence: entry.sequence, kind: kind, hold: entry.hold?.rawValue ?? "", amount: entry.amount,
                        requestID: entry.requestID?.rawValue ?? ""))
            }
            guard let next = page.nextCursor else { break }
            cursor = next
        }
        let b = try state.balance(tenant)
        self.init(
            entries: entries,
            balance: .init(
                tenant: tenant.rawValue, available: b.available, reserved: b.reserved, spent: b.spent, expired: b.expired,
                voided: b.voided, granted: b.granted))
    }
}
