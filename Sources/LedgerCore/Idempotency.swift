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
    /// One remembered request, kept in its binary form: the command body's encoding followed by
    /// the outcome's, in one byte array. One allocation instead of a tree of values (holds, grants,
    /// strings), which matters with a million tenants each remembering their last requests; the
    /// values are decoded only when a request is repeated. The bytes are exactly the snapshot form.
    package struct Entry: Hashable, Sendable {
        private(set) var bytes: [UInt8]
        private(set) var bodyLength: Int
        var time: LedgerTime

        init(body: CommandBody, outcome: StoredOutcome, time: LedgerTime) {
            var writer = BinaryWriter(capacity: 96)
            writer.write(body)
            bodyLength = writer.bytes.count
            writer.write(outcome)
            bytes = writer.bytes
            self.time = time
        }

        /// From bytes already checked to be a body's and an outcome's encodings (snapshot decoding).
        init(stored: [UInt8], bodyLength: Int, time: LedgerTime) {
            bytes = stored
            self.bodyLength = bodyLength
            self.time = time
        }

        /// Whether `body` is the remembered command (the encoding is deterministic and one-to-one).
        func matches(_ body: CommandBody) -> Bool {
            var writer = BinaryWriter(capacity: bodyLength)
            writer.write(body)
            return writer.bytes[...] == bytes[..<bodyLength]
        }

        var body: CommandBody {
            var reader = BinaryReader(Array(bytes[..<bodyLength]))
            // Encoded by `init` (or validated by it when a snapshot was read): cannot fail.
            return try! reader.read()
        }

        var outcome: StoredOutcome {
            var reader = BinaryReader(Array(bytes[bodyLength...]))
            return try! reader.read()
        }
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

    /// Per remembered request: the heap bytes of its stored form (for memory accounting in tests).
    package var storedBytes: Int { entries.values.reduce(0) { $0 + $1.bytes.count } }

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

extension IdempotencyTable.Entry: Codable {
    private enum CodingKeys: String, CodingKey { case body, outcome, time }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            body: try container.decode(CommandBody.self, forKey: .body),
            outcome: try container.decode(StoredOutcome.self, forKey: .outcome), time: try container.decode(LedgerTime.self, forKey: .time))
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(body, forKey: .body)
        try container.encode(outcome, forKey: .outcome)
        try container.encode(time, forKey: .time)
    }
}
