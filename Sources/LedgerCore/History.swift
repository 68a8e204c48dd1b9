/// What a history entry records.
public enum HistoryKind: String, Sendable, Codable, CaseIterable {
    case tenantCreated = "tenant_created"
    case tenantConfigured = "tenant_configured"
    case memberConfigured = "member_configured"
    /// Tokens credited by a grant, purchase or bonus.
    case grant
    /// A scheduled grant became effective.
    case grantActivated = "grant_activated"
    /// Tokens reserved from a grant by a hold.
    case reserve
    /// Held tokens captured (spent).
    case capture
    /// Tokens captured beyond the pool on a final commit, covered by the overdraft.
    case overdraft
    /// Overdraft debt paid back from a grant.
    case debtRepaid = "debt_repaid"
    /// Held tokens returned by a final commit or a release.
    case release
    /// Held tokens returned because the hold reached its time-to-live.
    case holdExpired = "hold_expired"
    /// Captured tokens returned.
    case refund
    /// Unused tokens of a grant voided.
    case void
    /// Unused tokens of a grant that expired.
    case grantExpired = "grant_expired"
    /// A plan grant issued for a new period.
    case planRenewal = "plan_renewal"
    /// Tokens of a plan grant carried into the next period's grant.
    case rollover
    /// A member's budget period started over.
    case budgetReset = "budget_reset"
    /// Spendable tokens fell below a low-balance threshold.
    case lowBalance = "low_balance"
    /// Spendable tokens rose back to a low-balance threshold or above it.
    case balanceRecovered = "balance_recovered"
}

/// An append-only record of one change. Corrections are new entries, never edits.
public struct HistoryEntry: Hashable, Sendable, Codable {
    /// 1, 2, 3, ... within the tenant: the cursor for paging.
    public var sequence: UInt64
    public var time: LedgerTime
    public var kind: HistoryKind
    public var member: MemberID?
    public var hold: HoldID?
    public var grant: GrantID?
    /// The kind of the funding grant, when one is involved: the billing source.
    public var source: GrantKind?
    public var amount: Tokens
    /// The request that caused it; nil for what fell due with time.
    public var requestID: RequestID?
}

/// Which entries a history query returns. Nil fields do not filter.
public struct HistoryFilter: Hashable, Sendable, Codable {
    public var member: MemberID?
    public var source: GrantKind?
    public var kinds: Set<HistoryKind>?
    /// Entries at or after this time.
    public var since: LedgerTime?
    /// Entries before this time.
    public var until: LedgerTime?
    /// Entries with a sequence above this one (the cursor of the previous page).
    public var afterSequence: UInt64
    /// At most this many, up to ``Limits/historyPageMax``.
    public var limit: Int

    public init(
        member: MemberID? = nil, source: GrantKind? = nil, kinds: Set<HistoryKind>? = nil, since: LedgerTime? = nil,
        until: LedgerTime? = nil, afterSequence: UInt64 = 0, limit: Int = Limits.historyPageDefault
    ) {
        self.member = member
        self.source = source
        self.kinds = kinds
        self.since = since
        self.until = until
        self.afterSequence = afterSequence
        self.limit = limit
    }
}

/// One page of history.
public struct HistoryPage: Hashable, Sendable {
    public var entries: [HistoryEntry]
    /// Pass as `afterSequence` for the next page; nil when there is none.
    public var nextCursor: UInt64?
}

/// A tenant's history, held compactly: the entries encoded back to back in one byte array (about
/// 20-60 bytes an entry, against 96 bytes plus a heap string per request id as structs), decoded
/// when read. Sequences are not stored: entry `n` is at index `n - 1`.
///
/// Every ``checkpointInterval``th entry stores its time whole and its offset is kept, so reading
/// entry `i` decodes at most that many entries; reading in order (``entries(from:)``, `for in`)
/// decodes each entry once. The encoding lives only in memory: snapshots keep the entries' own
/// binary form.
public struct HistoryLog: Sendable, RandomAccessCollection {
    //   kind (1 byte)  presence flags (1 byte: member, hold, grant, source, request id)
    //   time (zigzag varint: whole at a checkpoint, else minus the previous entry's)
    //   amount (varint)  then the present fields in that order, in their binary forms
    private var bytes: [UInt8] = []
    /// Offsets of entries `interval`, `2 * interval`, ... (entry 0 is at offset 0).
    private var checkpoints: [Int] = []
    public private(set) var count = 0
    private var lastTime: Int64 = 0

    static let checkpointInterval = 32

    /// Bytes of the encoded entries (the snapshot form of an entry is at least half that).
    var storedBytes: Int { bytes.count }

    public init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(position: Int) -> HistoryEntry {
        precondition(position >= 0 && position < count, "history index \(position) out of range 0..<\(count)")
        var iterator = entries(from: position)
        return iterator.next()!
    }

    public func makeIterator() -> Iterator { entries(from: 0) }

    /// The entries from index `start` (sequence `start + 1`) on, each decoded once.
    public func entries(from start: Int) -> Iterator {
        let start = Swift.max(0, Swift.min(start, count))
        // At the end there may be no checkpoint for `start` yet (a count that is a multiple of the
        // interval): nothing to read.
        guard start < count else { return Iterator(reader: BinaryReader(bytes, offset: bytes.count), position: count, count: count, time: 0) }
        let checkpoint = start / Self.checkpointInterval
        var iterator = Iterator(
            reader: BinaryReader(bytes, offset: checkpoint == 0 ? 0 : checkpoints[checkpoint - 1]),
            position: checkpoint * Self.checkpointInterval, count: count, time: 0)
        while iterator.position < start { _ = iterator.next() }
        return iterator
    }

    public struct Iterator: IteratorProtocol {
        fileprivate var reader: BinaryReader
        fileprivate var position: Int
        fileprivate let count: Int
        fileprivate var time: Int64

        public mutating func next() -> HistoryEntry? {
            guard position < count else { return nil }
            // Written by `append` from valid values: cannot fail.
            let kind = try! reader.read(HistoryKind.self)
            let flags = try! reader.byte()
            let delta = try! reader.read(Int64.self)
            time = position % HistoryLog.checkpointInterval == 0 ? delta : time &+ delta
            let amount = try! reader.read(Tokens.self)
            position += 1
            return HistoryEntry(
                sequence: UInt64(position), time: LedgerTime(millisecondsSinceEpoch: time), kind: kind,
                member: flags & 1 != 0 ? try! reader.read(MemberID.self) : nil,
                hold: flags & 2 != 0 ? try! reader.read(HoldID.self) : nil,
                grant: flags & 4 != 0 ? try! reader.read(GrantID.self) : nil,
                source: flags & 8 != 0 ? try! reader.read(GrantKind.self) : nil,
                amount: amount,
                requestID: flags & 16 != 0 ? try! reader.read(RequestID.self) : nil)
        }
    }

    /// Appends the entry with the next sequence number.
    mutating func append(_ entry: HistoryEntry) {
        precondition(entry.sequence == UInt64(count + 1), "history entry \(entry.sequence) appended after \(count)")
        let offset = bytes.count
        var writer = BinaryWriter(appendingTo: &bytes)
        defer { bytes = writer.bytes }
        writer.write(entry.kind)
        var flags: UInt8 = 0
        if entry.member != nil { flags |= 1 }
        if entry.hold != nil { flags |= 2 }
        if entry.grant != nil { flags |= 4 }
        if entry.source != nil { flags |= 8 }
        if entry.requestID != nil { flags |= 16 }
        writer.tag(flags)
        let time = entry.time.millisecondsSinceEpoch
        if count % Self.checkpointInterval == 0 {
            if count > 0 { checkpoints.append(offset) }
            writer.write(time)
        } else {
            writer.write(time &- lastTime)
        }
        writer.write(entry.amount)
        if let member = entry.member { writer.write(member) }
        if let hold = entry.hold { writer.write(hold) }
        if let grant = entry.grant { writer.write(grant) }
        if let source = entry.source { writer.write(source) }
        if let requestID = entry.requestID { writer.write(requestID) }
        lastTime = time
        count += 1
    }

    /// Writes the entries in their snapshot form (a count, then each `HistoryEntry`'s binary form)
    /// straight from the compact encoding: the ids' and enums' bytes are copied, no entry or
    /// string is made. Decoding every entry to encode it again, allocating each id over 15 bytes,
    /// was most of what encoding a busy tenant for a snapshot cost.
    func encodeEntries(to writer: inout BinaryWriter) {
        writer.writeVarint(UInt64(count))
        bytes.withUnsafeBufferPointer { stored in
            // The reader is the closure's own (not captured): a captured one was boxed and every
            // read of it paid a dynamic exclusivity check.
            var reader = BinaryReader(bytes)
            var time: Int64 = 0
            // Written by `append` from valid values: cannot fail.
            for position in 0..<count {
                let kind = try! reader.skip(HistoryKind.self)
                let flags = try! reader.byte()
                let delta = try! reader.read(Int64.self)
                time = position % Self.checkpointInterval == 0 ? delta : time &+ delta
                let amount = try! reader.skip(Tokens.self)
                let member = flags & 1 != 0 ? try! reader.skipString() : nil
                let hold = flags & 2 != 0 ? try! reader.skipString() : nil
                let grant = flags & 4 != 0 ? try! reader.skip(GrantID.self) : nil
                let source = flags & 8 != 0 ? try! reader.skip(GrantKind.self) : nil
                let requestID = flags & 16 != 0 ? try! reader.skipString() : nil
                writer.writeVarint(UInt64(position + 1))
                writer.write(time)
                writer.appendBytes(UnsafeBufferPointer(rebasing: stored[kind]))
                // Member, hold, grant and source, then the amount, then the request id: each
                // optional one as a presence byte, then its form as stored.
                writer.appendOptional(member, of: stored)
                writer.appendOptional(hold, of: stored)
                writer.appendOptional(grant, of: stored)
                writer.appendOptional(source, of: stored)
                writer.appendBytes(UnsafeBufferPointer(rebasing: stored[amount]))
                writer.appendOptional(requestID, of: stored)
            }
        }
    }

    /// Builds a log from entries numbered 1, 2, 3, ... (snapshot decoding), exactly sized; nil when
    /// the numbering is broken.
    init?(_ entries: [HistoryEntry]) {
        for entry in entries {
            guard entry.sequence == UInt64(count + 1) else { return nil }
            append(entry)
        }
        bytes = bytes.exactlySized()
        checkpoints = checkpoints.exactlySized()
    }
}

extension HistoryLog: Hashable {
    /// Equal when the entries are (the encoding is deterministic, so equal entries are equal bytes).
    public static func == (lhs: HistoryLog, rhs: HistoryLog) -> Bool { lhs.count == rhs.count && lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        hasher.combine(bytes.count)
    }
}

extension BinaryWriter {
    /// An optional field of `HistoryLog.encodeEntries`: a presence byte, then the stored bytes.
    fileprivate mutating func appendOptional(_ range: Range<Int>?, of stored: UnsafeBufferPointer<UInt8>) {
        guard let range else { return tag(0) }
        tag(1)
        appendBytes(UnsafeBufferPointer(rebasing: stored[range]))
    }
}
