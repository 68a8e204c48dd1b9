/// A tenant's holds: the open ones as values, the resolved ones in their binary form.
///
/// Why two forms: nearly every hold is committed, released or expired within seconds of its
/// reserve, and a resolved hold is read again only by a refund, a hold query or the audit. As
/// values in one `[HoldID: Hold]`, resolved holds were several hundred bytes each (the value, its
/// slack in the table, the captures array's allocation, a heap-allocated id) and kept the table
/// growing with every reserve: resized, copied after each snapshot, every hold encoded in each
/// snapshot. Now the dictionary holds only the open holds (a handful per tenant, so it stays small
/// and stops growing), and a resolved hold is one record in one byte array (60-80 bytes with its
/// index slot, for ids of about 20 characters), found through an index of 8-byte slots like the
/// idempotency table's (``RequestIndex``): open addressing, a tag of the id's hash beside the
/// record's position, the id compared in the record itself. Measured: docs/benchmarks.md
/// (ledgerd's memory growth per call of a pair run 676 -> 417 bytes; snapshot encoding 6.1% ->
/// 2.6% of its CPU).
///
/// A record: a 4-byte little-endian header (the hold's encoded length shifted left by one, the low
/// bit set while the record is live), then the hold's binary form (``Hold/encode(to:)``, its id
/// first). A resolved hold that changes again (a refund) is appended anew and its old record marked
/// dead; the array is compacted once dead records are more than half of it.
///
/// The snapshot form is unchanged: the dictionary form of all the holds, open and resolved.
public struct HoldTable: Hashable, Sendable {
    /// The open holds (``HoldState/held``).
    public private(set) var open: [HoldID: Hold] = [:]
    /// Resolved holds, one record each (above), oldest first.
    private var records: [UInt8] = []
    /// Nil below ``indexedFrom`` resolved holds (they are found by reading the records); then the
    /// records' offsets by their ids' hashes.
    private var index: RequestIndex?
    /// Live records.
    private var resolvedCount = 0
    /// Bytes of dead records.
    private var deadBytes = 0

    static let indexedFrom = 8
    static let headerSize = 4
    /// Dead bytes below this are never compacted away (a small table is not compacted for one refund).
    static let compactFrom = 4_096

    public init() {}

    /// Open and resolved holds.
    public var count: Int { open.count + resolvedCount }
    public var isEmpty: Bool { count == 0 }

    public subscript(id: HoldID) -> Hold? {
        if let hold = open[id] { return hold }
        var key = id.rawValue
        return key.withUTF8 { wanted in resolved(wanted, hash: RequestIndex.hash(wanted)) }.map { hold(at: $0.offset) }
    }

    /// Whether a hold with this id exists, open or resolved (without decoding a resolved one).
    public func contains(_ id: HoldID) -> Bool {
        if open[id] != nil { return true }
        var key = id.rawValue
        return key.withUTF8 { wanted in resolved(wanted, hash: RequestIndex.hash(wanted)) } != nil
    }

    /// Every hold, open ones first (for the audit and tests: each resolved one is decoded).
    public var values: [Hold] {
        var values = Array(open.values)
        values.reserveCapacity(count)
        forEachLiveRecord { offset, _ in values.append(hold(at: offset)) }
        return values
    }

    /// Removes an open hold's value, for a command that changes a copy of it and stores that with
    /// `update(_:droppedOpen: true)`, which must follow (see `Tenant.commit`).
    mutating func dropOpen(_ id: HoldID) { open.removeValue(forKey: id) }

    /// Stores `hold` under its id: as a value while it is open, in its binary form once resolved. A
    /// hold resolves at most once, so a resolved hold is never stored as open again. `droppedOpen`:
    /// the hold was open and its value taken out with `dropOpen`.
    public mutating func update(_ hold: Hold, droppedOpen: Bool = false) {
        if hold.state == .held {
            open[hold.id] = hold
            return
        }
        // A hold that was open has no resolved record yet (it resolves once), so none is looked
        // for; only a resolved one changed again (a refund) replaces its record.
        let wasOpen = droppedOpen || open.removeValue(forKey: hold.id) != nil
        var key = hold.id.rawValue
        let hash = key.withUTF8 { RequestIndex.hash($0) }
        let replaced = wasOpen ? nil : key.withUTF8 { resolved($0, hash: hash) }
        let offset = records.count
        records.append(contentsOf: repeatElement(0, count: Self.headerSize))
        var writer = BinaryWriter(appendingTo: &records)
        hold.encode(to: &writer)
        records = writer.bytes
        appended(at: offset, hash: hash, replacing: replaced)
    }

    /// Bytes of the snapshot form at least (`Tenant.encodedCountLowerBound`): 8 per open hold, and
    /// each resolved hold's encoding appears whole in it.
    var encodedCountLowerBound: Int { 8 * open.count + records.count - deadBytes - Self.headerSize * resolvedCount }

    /// Bytes kept for resolved holds (tests).
    package var resolvedBytes: Int { records.count }

    // MARK: - Records

    private func header(at offset: Int) -> (length: Int, live: Bool) {
        let header = Int(records[offset]) | Int(records[offset + 1]) << 8 | Int(records[offset + 2]) << 16 | Int(records[offset + 3]) << 24
        return (header >> 1, header & 1 == 1)
    }

    private mutating func setHeader(at offset: Int, length: Int, live: Bool) {
        precondition(length < 1 << 31, "a hold's binary form of \(length) bytes")
        let header = length << 1 | (live ? 1 : 0)
        for byte in 0..<Self.headerSize { records[offset + byte] = UInt8(truncatingIfNeeded: header >> (8 * byte)) }
    }

    /// The hold of the record at `offset` (written by this table, so it decodes).
    private func hold(at offset: Int) -> Hold {
        var reader = BinaryReader(records, offset: offset + Self.headerSize)
        return try! Hold(from: &reader)
    }

    /// The id's bytes in the record at `offset` (a hold's form starts with its id: varint length, UTF-8).
    private func idRange(at offset: Int) -> Range<Int> {
        var reader = BinaryReader(records, offset: offset + Self.headerSize)
        let length = Int(try! reader.readVarint())
        return reader.offset..<(reader.offset + length)
    }

    private func has(_ wanted: UnsafeBufferPointer<UInt8>, at offset: Int) -> Bool {
        let range = idRange(at: offset)
        return range.count == wanted.count && records[range].elementsEqual(wanted)
    }

    /// Calls `body` with each live record's offset and length, oldest first.
    private func forEachLiveRecord(_ body: (Int, Int) -> Void) {
        var offset = 0
        while offset < records.count {
            let (length, live) = header(at: offset)
            if live { body(offset, length) }
            offset += Self.headerSize + length
        }
    }

    /// The live record of the resolved hold whose id is `wanted`, and its slot (-1 unindexed).
    private func resolved(_ wanted: UnsafeBufferPointer<UInt8>, hash: Int) -> (offset: Int, slot: Int)? {
        if let index {
            // Every slot points at a live record: a replaced one's slot is pointed at its successor.
            return index.find(hash: hash) { has(wanted, at: $0) }.map { ($0.position, $0.slot) }
        }
        var found: Int?
        forEachLiveRecord { offset, _ in if found == nil, has(wanted, at: offset) { found = offset } }
        return found.map { ($0, -1) }
    }

    /// Finishes a record appended at `offset` (its header still zero): live, indexed, and the
    /// record it replaces (if any) dead.
    private mutating func appended(at offset: Int, hash: Int, replacing replaced: (offset: Int, slot: Int)?) {
        setHeader(at: offset, length: records.count - offset - Self.headerSize, live: true)
        guard let replaced else {
            resolvedCount += 1
            if let taken = index?.taken, let capacity = index?.capacity, (taken + 1) * 4 <= capacity * 3 {
                index!.insert(offset, hash: hash)
            } else if resolvedCount >= Self.indexedFrom {
                rebuildIndex()
            }
            return
        }
        let old = header(at: replaced.offset)
        setHeader(at: replaced.offset, length: old.length, live: false)
        deadBytes += Self.headerSize + old.length
        if replaced.slot >= 0 { index!.repoint(replaced.slot, to: offset) }
        if deadBytes >= Self.compactFrom, deadBytes * 2 > records.count { compact() }
    }

    /// Indexes the live records afresh (at most half full), or drops the index below ``indexedFrom``.
    private mutating func rebuildIndex() {
        guard resolvedCount >= Self.indexedFrom else {
            index = nil
            return
        }
        var capacity = 16
        while capacity < 2 * resolvedCount { capacity *= 2 }
        var rebuilt = RequestIndex(capacity: capacity, base: 0)
        records.withUnsafeBufferPointer { bytes in
            forEachLiveRecord { offset, _ in rebuilt.insert(offset, hash: RequestIndex.hash(UnsafeBufferPointer(rebasing: bytes[idRange(at: offset)]))) }
        }
        index = rebuilt
    }

    /// Drops the dead records.
    private mutating func compact() {
        var kept: [UInt8] = []
        kept.reserveCapacity(records.count - deadBytes)
        forEachLiveRecord { offset, length in kept.append(contentsOf: records[offset..<(offset + Self.headerSize + length)]) }
        records = kept
        deadBytes = 0
        rebuildIndex()
    }

    // MARK: - Equality

    /// The same holds, whatever their order and form.
    public static func == (lhs: HoldTable, rhs: HoldTable) -> Bool {
        guard lhs.count == rhs.count, lhs.open == rhs.open else { return false }
        var equal = true
        lhs.forEachLiveRecord { offset, _ in
            guard equal else { return }
            let hold = lhs.hold(at: offset)
            equal = rhs[hold.id] == hold
        }
        return equal
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(open)
        hasher.combine(resolvedCount)
    }
}

extension HoldTable: BinaryCodable {
    /// The dictionary form (`[HoldID: Hold]`): a count, then each hold's id and hold. A resolved
    /// hold's pair is its id's bytes and its record's, copied.
    public func encode(to writer: inout BinaryWriter) {
        writer.writeVarint(UInt64(count))
        for (id, hold) in open {
            writer.write(id)
            writer.write(hold)
        }
        records.withUnsafeBufferPointer { bytes in
            forEachLiveRecord { offset, length in
                let start = offset + Self.headerSize
                writer.appendBytes(UnsafeBufferPointer(rebasing: bytes[start..<idRange(at: offset).upperBound]))
                writer.appendBytes(UnsafeBufferPointer(rebasing: bytes[start..<(start + length)]))
            }
        }
    }

    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init()
        let count = try reader.readCount()
        for _ in 0..<count {
            let id = try reader.read(HoldID.self)
            let start = reader.offset
            let hold = try reader.read(Hold.self)
            guard hold.id == id else { throw reader.fail("hold \(hold.id) stored under the id \(id)") }
            guard !contains(id) else { throw reader.fail("duplicate key") }
            if hold.state == .held || reader.version != BinaryFormatVersion.current {
                // An older format's resolved hold is written again in the current one.
                update(hold)
                continue
            }
            var key = id.rawValue
            let hash = key.withUTF8 { RequestIndex.hash($0) }
            let offset = records.count
            records.append(contentsOf: repeatElement(0, count: Self.headerSize))
            records.append(contentsOf: reader.bytes[start..<reader.offset])
            appended(at: offset, hash: hash, replacing: nil)
        }
        // A million tenants read from a snapshot must not each keep growth slack.
        if !records.isEmpty { records = records.exactlySized() }
    }
}
