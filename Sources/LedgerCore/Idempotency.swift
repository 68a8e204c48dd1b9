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
package struct IdempotencyTable: Hashable, Sendable {
    /// One remembered request, kept in its binary form: the command body's encoding without the
    /// tenant id, followed by the outcome's, in one byte array. One allocation instead of a tree of
    /// values (holds, grants, strings), which matters with a million tenants each remembering their
    /// last requests; the values are decoded only when a request is repeated.
    ///
    /// Every command a tenant remembers names that tenant right after the body's tag (see
    /// `CommandBody.encode`), so the id is left out here and put back in snapshots: with ids like
    /// UUIDs that is 37 bytes a remembered request.
    package struct Entry: Hashable, Sendable {
        private(set) var bytes: [UInt8]
        private(set) var bodyLength: Int
        var time: LedgerTime

        init(body: CommandBody, outcome: StoredOutcome, time: LedgerTime) {
            var writer = BinaryWriter(capacity: 96)
            Self.writeWithoutTenant(body, to: &writer)
            bodyLength = writer.bytes.count
            writer.write(outcome)
            bytes = writer.bytes
            self.time = time
        }

        /// From a stored form already checked (snapshot decoding): the body's encoding without its
        /// tenant, then the outcome's.
        init(stored: [UInt8], bodyLength: Int, time: LedgerTime) {
            bytes = stored
            self.bodyLength = bodyLength
            self.time = time
        }

        /// Writes the body's encoding without the tenant id that follows its tag.
        static func writeWithoutTenant(_ body: CommandBody, to writer: inout BinaryWriter) {
            guard let tenant = body.tenant else { preconditionFailure("only tenant commands are remembered") }
            let start = writer.bytes.count
            writer.write(body)
            let skipped = (start + 1)..<(start + 1 + tenant.encodedLength)
            assert(writer.bytes[skipped].elementsEqual(tenant.binaryEncoded), "the tenant follows the tag")
            writer.removeBytes(skipped)
        }

        /// Whether `body`, a command of the same tenant, is the remembered command (the encoding is
        /// deterministic and one-to-one). One exception: a create applied in format 1 gave the
        /// tenant no movement events, and the same request sent again after the upgrade (which
        /// says nothing of them: on) is still that request.
        func matches(_ body: CommandBody) -> Bool {
            var writer = BinaryWriter(capacity: bodyLength)
            Self.writeWithoutTenant(body, to: &writer)
            if writer.bytes[...] == bytes[..<bodyLength] { return true }
            guard case .createTenant(let tenant, var settings) = body, settings.movementEvents else { return false }
            settings.movementEvents = false
            return matches(.createTenant(tenant, settings))
        }

        var outcome: StoredOutcome {
            var reader = BinaryReader(Array(bytes[bodyLength...]))
            return try! reader.read()
        }
    }

    // The remembered requests, oldest first, back to back in one byte array (one allocation per
    // tenant, instead of a dictionary, an order array and an array per request):
    //
    //   time (zigzag varint, ms)  id (varint length, UTF-8)  stored length (varint)
    //   body length (varint)      stored bytes (the body's encoding, then the outcome's)
    //
    // A lookup scans the records while there are few; from `indexedFrom` records on, an index
    // (``RequestIndex``) finds a record by its request id (a tenant with thousands of remembered
    // requests must not scan them on every command).
    private var records: [UInt8] = []
    private var index: RequestIndex?
    /// Bytes dropped from the front of `records` by compaction: index positions are
    /// `dropped + offset`, so compaction does not rewrite the index.
    private var dropped = 0
    // 4 bytes each (a tenant's table is 32 bytes, not 40): at most
    // ``Limits/idempotencyEntriesPerTenantMax`` records of bounded size are live.
    private var storedHead: UInt32 = 0
    private var storedCount: UInt32 = 0

    /// Where the oldest live record starts in `records`.
    private var head: Int {
        get { Int(storedHead) }
        set { storedHead = UInt32(newValue) }
    }

    package private(set) var count: Int {
        get { Int(storedCount) }
        set { storedCount = UInt32(newValue) }
    }

    /// Records scanned linearly before an index is built.
    static let indexedFrom = 8

    package init() {}

    /// Equal when the same requests are remembered in the same order with the same outcomes and
    /// times (the record encoding is deterministic, so equal contents are equal bytes).
    package static func == (lhs: IdempotencyTable, rhs: IdempotencyTable) -> Bool {
        lhs.count == rhs.count && lhs.records[lhs.head...].elementsEqual(rhs.records[rhs.head...])
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        hasher.combine(records.count - head)
    }

    /// One record's parts, as offsets into `records`.
    private struct Record {
        var start: Int
        var time: LedgerTime
        var id: Range<Int>
        var stored: Range<Int>
        var bodyLength: Int
        var end: Int { stored.upperBound }
    }

    /// The record starting at `offset` (written by `append`, so well formed).
    private func record(at offset: Int) -> Record {
        var reader = BinaryReader(records, offset: offset)
        // Written by `append` from checked values: cannot fail.
        let time = try! reader.read(LedgerTime.self)
        let idLength = Int(try! reader.readVarint())
        let idStart = reader.offset
        reader.skip(idLength)
        let storedLength = Int(try! reader.readVarint())
        let bodyLength = Int(try! reader.readVarint())
        let storedStart = reader.offset
        return Record(start: offset, time: time, id: idStart..<(idStart + idLength), stored: storedStart..<(storedStart + storedLength), bodyLength: bodyLength)
    }

    private func entry(of record: Record) -> Entry {
        Entry(stored: Array(records[record.stored]), bodyLength: record.bodyLength, time: record.time)
    }

    private func requestID(of record: Record) -> RequestID {
        RequestID(String(decoding: records[record.id], as: UTF8.self))
    }

    /// The live records, oldest first, each parsed once (everything from `head` on is live).
    private var live: some Sequence<Record> {
        sequence(state: head) { [self] (offset: inout Int) -> Record? in
            guard offset < records.count else { return nil }
            let record = record(at: offset)
            offset = record.end
            return record
        }
    }

    package func entry(_ id: RequestID) -> Entry? {
        var key = id.rawValue
        return key.withUTF8 { wanted -> Entry? in
            if let index { return indexedRecord(wanted, index).map(entry(of:)) }
            for record in live where has(wanted, record) { return entry(of: record) }
            return nil
        }
    }

    /// Whether `record`'s request id is `wanted` (its UTF-8 bytes).
    private func has(_ wanted: UnsafeBufferPointer<UInt8>, _ record: Record) -> Bool {
        record.id.count == wanted.count && records[record.id].elementsEqual(wanted)
    }

    /// The live record with request id `wanted`, found through the index.
    private func indexedRecord(_ wanted: UnsafeBufferPointer<UInt8>, _ index: RequestIndex) -> Record? {
        var found: Record?
        _ = index.find(hash: RequestIndex.hash(wanted)) { position in
            // A record evicted since it was indexed (before `head`, or compacted away) never matches.
            let offset = position - dropped
            guard offset >= head else { return false }
            let record = record(at: offset)
            guard has(wanted, record) else { return false }
            found = record
            return true
        }
        return found
    }

    /// Indexes the record of `id` just appended at `offset`, rebuilding the index first when three
    /// quarters of its slots are taken (by live records or evicted ones), or when the record lies
    /// beyond the positions its slots can hold.
    private mutating func addToIndex(_ id: RequestID, offset: Int) {
        guard var index, (index.taken + 1) * 4 <= index.capacity * 3, index.holds(dropped + offset) else { return rebuildIndex() }
        self.index = nil  // unique while it is changed
        var key = id.rawValue
        key.withUTF8 { index.insert(dropped + offset, hash: RequestIndex.hash($0)) }
        self.index = index
    }

    /// Builds the index of the live records afresh, at most half full.
    private mutating func rebuildIndex() {
        var capacity = 16
        while capacity < 2 * count { capacity *= 2 }
        var index = RequestIndex(capacity: capacity, base: dropped + head)
        records.withUnsafeBufferPointer { bytes in
            for record in live {
                index.insert(dropped + record.start, hash: RequestIndex.hash(UnsafeBufferPointer(rebasing: bytes[record.id])))
            }
        }
        self.index = index
    }

    /// The remembered requests, oldest first.
    package var entries: [(id: RequestID, entry: Entry)] {
        live.map { (requestID(of: $0), entry(of: $0)) }
    }

    /// Bytes of the live records, all requests together (for memory accounting in tests).
    package var storedBytes: Int { records.count - head }

    package mutating func remember(_ id: RequestID, body: CommandBody, result: Result<CommandOutcome, LedgerError>, now: LedgerTime) {
        let cutoff = now.adding(milliseconds: -Limits.idempotencyRetention.wholeMilliseconds)
        while count > 0 {
            let oldest = record(at: head)
            guard count >= Limits.idempotencyEntriesPerTenantMax || oldest.time <= cutoff else { break }
            // Left in the index: its slot no longer matches (see `indexedRecord`).
            head = oldest.end
            count -= 1
        }
        if count == 0 {
            records = []
            head = 0
            dropped = 0
            index = nil
        } else if head > 4096, head * 2 > records.count {
            records.removeFirst(head)
            dropped += head
            head = 0
        }
        // Written in place (no `Entry` made and copied: that was a third of remembering).
        append(id, time: now) { writer in
            let start = writer.bytes.count
            Entry.writeWithoutTenant(body, to: &writer)
            let bodyLength = writer.bytes.count - start
            StoredOutcome.write(result, to: &writer)
            return bodyLength
        }
    }

    /// Adds a record for a request id that is not remembered yet.
    private mutating func append(_ id: RequestID, _ entry: Entry) {
        append(id, time: entry.time) { writer in
            entry.bytes.withUnsafeBufferPointer { writer.appendBytes($0) }
            return entry.bodyLength
        }
    }

    /// Adds a record for a request id that is not remembered yet, whose stored bytes `writeStored`
    /// writes (returning the body's length among them).
    private mutating func append(_ id: RequestID, time: LedgerTime, _ writeStored: (inout BinaryWriter) -> Int) {
        let offset = records.count
        var writer = BinaryWriter(appendingTo: &records)
        writer.write(time)
        writer.write(id.rawValue)
        // The stored and body lengths come first but are known once the bytes are written: room
        // for the usual sizes (2 + 1 bytes) is left and filled in afterwards.
        let lengths = writer.bytes.count
        writer.writeVarint(0x80)
        writer.writeVarint(0)
        let storedStart = writer.bytes.count
        let bodyLength = writeStored(&writer)
        writer.replaceBytes(lengths..<storedStart, withVarints: UInt64(writer.bytes.count - storedStart), UInt64(bodyLength))
        records = writer.bytes
        count += 1
        if index != nil {
            addToIndex(id, offset: offset)
        } else if count >= Self.indexedFrom {
            rebuildIndex()
        }
    }

    /// Rebuilds a table from its requests, oldest first (snapshot decoding); nil when an id repeats.
    package init?(remembered: [(id: RequestID, entry: Entry)]) {
        self.init()
        for (id, entry) in remembered {
            guard self.entry(id) == nil else { return nil }
            append(id, entry)
        }
        // A million tenants read from a snapshot must not each keep growth slack.
        records = records.exactlySized()
    }
}

/// The index of a table with many remembered requests: open addressing with linear probing, each
/// slot 0 (empty) or a record's position plus 1 (from `base`: its absolute position
/// `dropped + offset` less the live records' start when the index was built) in the low 40 bits
/// and a tag of the request id's hash above them, found by a hash of the request id's UTF-8 bytes;
/// the id is compared in the record itself, so no key is stored.
///
/// Why not `[RequestID: Int]`: hashing a `String` (Unicode-aware) and, for evictions, making the
/// evicted record's id a `String` again took 2-3% of ledgerd's CPU at peak, and each entry cost 32
/// to 64 bytes (more with heap-allocated ids such as UUIDs); a slot is 8 bytes. Evicted records are
/// not removed (that would need backward-shift deletion): their slots stay taken and never match,
/// and a rebuild drops them once three quarters of the slots are taken.
///
/// Why the tag: at three quarters full, a miss (every new request) passes about eight slots on
/// average, and reading each one's record to compare ids was a cache miss apiece (perf: looking up
/// a request was 9% of applying a command); the tag (23 bits) rules out all but one in eight
/// million of those without touching the record.
struct RequestIndex {
    /// `capacity` slots (a power of two), then the number taken.
    private(set) var slots: [Int]
    /// Absolute record position that a slot's position counts from.
    let base: Int

    static let positionBits = 40
    static let positionMask = (1 << positionBits) - 1

    init(capacity: Int, base: Int) {
        slots = [Int](repeating: 0, count: capacity + 1)
        self.base = base
    }

    var capacity: Int { slots.count - 1 }

    /// Slots taken, by live or evicted records.
    var taken: Int { slots[capacity] }

    /// Whether a slot can hold the absolute `position` (at most 2^40 bytes of records appended
    /// since the index was built; a rebuild starts from the live records again).
    func holds(_ position: Int) -> Bool { position - base + 1 < Self.positionMask }

    /// The tag of a hash: bits the slot's position does not use (the sign bit left clear).
    static func tag(_ hash: Int) -> Int { (hash >> 41) & 0x7F_FFFF }

    /// Adds a record's absolute position (its id not in the index yet), below three quarters full.
    mutating func insert(_ position: Int, hash: Int) {
        precondition(holds(position), "record position \(position) beyond the index's range from \(base)")
        let mask = capacity - 1
        var slot = hash & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = Self.tag(hash) << Self.positionBits | (position - base + 1)
        slots[capacity] += 1
    }

    /// The slot, from the hash's on, of the first position whose tag is the hash's and that
    /// `matches` (an absolute position; the caller compares the ids in its record), or nil when an
    /// empty slot comes first.
    func find(hash: Int, _ matches: (Int) -> Bool) -> (slot: Int, position: Int)? {
        let tag = Self.tag(hash)
        let mask = capacity - 1
        var slot = hash & mask
        while true {
            let stored = slots[slot]
            if stored == 0 { return nil }
            // Another id's slot is passed over by its tag, without reading its record.
            if stored >> Self.positionBits == tag {
                let position = base + (stored & Self.positionMask) - 1
                if matches(position) { return (slot, position) }
            }
            slot = (slot + 1) & mask
        }
    }

    /// Points a slot `find` gave at its id's record moved to the absolute `position`.
    mutating func repoint(_ slot: Int, to position: Int) {
        precondition(holds(position), "record position \(position) beyond the index's range from \(base)")
        slots[slot] = slots[slot] & ~Self.positionMask | (position - base + 1)
    }

    /// FNV-1a over the bytes (the index lives in memory only, so any fixed function would do).
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return Int(truncatingIfNeeded: hash ^ (hash >> 29))
    }
}

extension IdempotencyTable {
    // The snapshot form of the dictionary-and-order table this replaced: the request ids in
    // arrival order, then each entry (the body's full encoding, the outcome's, the time) in the
    // same order. The tenant's id is needed to put it back into the bodies.
    package func encode(to writer: inout BinaryWriter, tenant: TenantID) {
        writer.writeVarint(UInt64(count))
        for record in live {
            writer.writeVarint(UInt64(record.id.count))
            records[record.id].withUnsafeBufferPointer { writer.appendBytes($0) }
        }
        writer.writeVarint(UInt64(count))
        for record in live {
            Entry.writeSnapshotForm(stored: records[record.stored], time: record.time, tenant: tenant, to: &writer)
        }
    }

    package init(from reader: inout BinaryReader, tenant: TenantID) throws(BinaryFormatError) {
        let ids = try reader.readArray(RequestID.self)
        let count = try reader.readCount()
        guard count == ids.count else { throw reader.fail("idempotency entries do not match their order") }
        var remembered: [(id: RequestID, entry: Entry)] = []
        remembered.reserveCapacity(count)
        for id in ids { remembered.append((id, try Entry(from: &reader, tenant: tenant))) }
        guard let table = IdempotencyTable(remembered: remembered) else { throw reader.fail("duplicate request id") }
        self = table
    }
}
