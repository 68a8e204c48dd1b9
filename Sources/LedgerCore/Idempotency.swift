/// The stored outcome of a request, for replays.
package enum StoredOutcome: Hashable, Sendable, Codable {
    case success(CommandOutcome)
    case failure(LedgerError)

    init(_ result: Result<CommandOutcome, LedgerError>) {
        switch result {
        case .success(let outcome): self = .success(outcome)
        case .failure(let error): self = .failure(error)
        }
    }

    var result: Result<CommandOutcome, LedgerError> {
        switch self {
        case .success(let outcome): return .success(outcome)
        case .failure(let error): return .failure(error)
        }
    }
}

/// The requests a tenant remembers: the most recent ``Limits/idempotencyEntriesPerTenantMax``
/// within ``Limits/idempotencyRetention``. Eviction happens only when a request is remembered, in
/// arrival order, so it is as deterministic as the log.
package struct IdempotencyTable: Hashable, Sendable, Codable {
    package struct Entry: Hashable, Sendable, Codable {
        var body: CommandBody
        var outcome: StoredOutcome
        var time: LedgerTime
    }

    var entries: [RequestID: Entry] = [:]
    /// Request ids in arrival order; `order[head...]` are live.
    var order: [RequestID] = []
    var head = 0

    package var count: Int { entries.count }

    /// Equal when the same requests are remembered in the same order; the already-evicted prefix
    /// of `order` (kept until compaction) does not count.
    package static func == (lhs: IdempotencyTable, rhs: IdempotencyTable) -> Bool {
        lhs.entries == rhs.entries && lhs.order[lhs.head...] == rhs.order[rhs.head...]
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(entries.count)
        for id in order[head...] { hasher.combine(id) }
    }

    package func entry(_ id: RequestID) -> Entry? { entries[id] }

    package mutating func remember(_ id: RequestID, body: CommandBody, result: Result<CommandOutcome, LedgerError>, now: LedgerTime) {
        let cutoff = now.adding(milliseconds: -Limits.idempotencyRetention.wholeMilliseconds)
        while head < order.count {
            let oldest = order[head]
            guard entries.count >= Limits.idempotencyEntriesPerTenantMax || entries[oldest]!.time <= cutoff else { break }
            entries[oldest] = nil
            head += 1
        }
        if head > 1024, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
        entries[id] = Entry(body: body, outcome: StoredOutcome(result), time: now)
        order.append(id)
    }
}
