// Binary forms of the ledger state and what it stores (the snapshot bodies).

extension Allocation: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(grant)
        writer.write(amount)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(grant: try reader.read(), amount: try reader.read())
    }
}

extension Grant: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(id)
        writer.write(kind)
        writer.write(state)
        writer.write(amount)
        writer.write(remaining)
        writer.write(held)
        writer.write(consumed)
        writer.write(expired)
        writer.write(voided)
        writer.write(carriedOver)
        writer.write(priority)
        writer.write(createdAt)
        writer.write(effectiveAt)
        writer.write(expiresAt)
        writer.write(moneyMinor)
        writer.write(linkedGrant)
        writer.write(note)
        writer.write(scope)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(
            id: try reader.read(), kind: try reader.read(), state: try reader.read(), amount: try reader.read(),
            remaining: try reader.read(), held: try reader.read(), consumed: try reader.read(), expired: try reader.read(),
            voided: try reader.read(), carriedOver: try reader.read(), priority: try reader.read(), createdAt: try reader.read(),
            effectiveAt: try reader.read(), expiresAt: try reader.readOptional(), moneyMinor: try reader.read(),
            linkedGrant: try reader.readOptional(), note: try reader.read())
        if reader.version >= 2 { scope = try reader.readArray() }
    }
}

extension Hold: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(id)
        writer.write(member)
        writer.write(state)
        writer.write(amount)
        writer.write(allocations)
        writer.write(held)
        writer.write(captured)
        writer.write(captures)
        writer.write(overdraftCaptured)
        writer.write(refunded)
        writer.write(createdAt)
        writer.write(expiresAt)
        writer.write(resolvedAt)
        writer.write(catalogVersion)
        writer.write(items)
        writer.write(budgetPeriodOfCapture)
        writer.write(planPeriodOfCapture)
        writer.write(quota)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(
            id: try reader.read(), member: try reader.readOptional(), state: try reader.read(), amount: try reader.read(),
            allocations: try reader.readArray(), held: try reader.read(), captured: try reader.read(),
            captures: try reader.readArray(), overdraftCaptured: try reader.read(), refunded: try reader.read(),
            createdAt: try reader.read(), expiresAt: try reader.read(), resolvedAt: try reader.readOptional(),
            catalogVersion: try reader.readOptional(), items: try reader.readArray(),
            budgetPeriodOfCapture: try reader.readOptional(), planPeriodOfCapture: try reader.readOptional())
        if reader.version >= 2 { quota = try reader.readOptional() }
    }
}

extension FeatureUnits: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(feature)
        writer.write(units)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(feature: try reader.read(), units: try reader.read())
    }
}

extension HoldQuota: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(periodStart)
        writer.write(generation)
        writer.write(units)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(periodStart: try reader.read(), generation: try reader.read(), units: try reader.readArray())
    }
}

extension Member: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(id)
        writer.write(settings)
        writer.write(spentInPeriod)
        writer.write(held)
        writer.write(periodStart)
        writer.write(periodEnd)
        writer.write(budgetGeneration)
        writer.write(belowThreshold)
        writer.write(UInt64(belowThresholds))
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(
            id: try reader.read(), settings: try reader.read(), spentInPeriod: try reader.read(), held: try reader.read(),
            periodStart: try reader.read(), periodEnd: try reader.read(), budgetGeneration: try reader.read(),
            belowThreshold: try reader.read())
        if reader.version >= 2 { belowThresholds = UInt16(truncatingIfNeeded: try reader.read(UInt64.self)) }
    }
}

extension PlanPeriod: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(grant)
        writer.write(start)
        writer.write(end)
        writer.write(used)
        writer.write(generation)
        writer.write(quotaUsed)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(
            grant: try reader.readOptional(), start: try reader.read(), end: try reader.read(), used: try reader.read(),
            generation: try reader.read())
        if reader.version >= 2 { quotaUsed = try reader.readArray() }
    }
}

extension HistoryEntry: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(sequence)
        writer.write(time)
        writer.write(kind)
        writer.write(member)
        writer.write(hold)
        writer.write(grant)
        writer.write(source)
        writer.write(amount)
        writer.write(requestID)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(
            sequence: try reader.read(), time: try reader.read(), kind: try reader.read(), member: try reader.readOptional(),
            hold: try reader.readOptional(), grant: try reader.readOptional(), source: try reader.readOptional(),
            amount: try reader.read(), requestID: try reader.readOptional())
    }
}

extension ErrorDetails: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .budget(let remaining, let cap, let resetsAt):
            writer.tag(0)
            writer.write(remaining)
            writer.write(cap)
            writer.write(resetsAt)
        case .plan(let remaining, let limit, let resetsAt):
            writer.tag(1)
            writer.write(remaining)
            writer.write(limit)
            writer.write(resetsAt)
        case .balance(let available, let requested):
            writer.tag(2)
            writer.write(available)
            writer.write(requested)
        case .limit(let name, let value):
            writer.tag(3)
            writer.write(name)
            writer.write(value)
        case .owner(let shard, let address, let epoch):
            // Routing only, never in a state; encoded for completeness (a new tag at the end).
            writer.tag(4)
            writer.write(shard)
            writer.write(address)
            writer.write(epoch)
        case .quota(let feature, let used, let limit, let resetsAt, let requested):
            writer.tag(5)
            writer.write(feature)
            writer.write(used)
            writer.write(limit)
            writer.write(resetsAt)
            writer.write(requested)
        }
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        switch try reader.tag(below: 6) {
        case 0: self = .budget(remaining: try reader.read(), cap: try reader.read(), resetsAt: try reader.read())
        case 1: self = .plan(remaining: try reader.read(), limit: try reader.read(), resetsAt: try reader.read())
        case 2: self = .balance(available: try reader.read(), requested: try reader.read())
        case 3: self = .limit(name: try reader.read(), value: try reader.read())
        case 4: self = .owner(shard: try reader.read(), address: try reader.read(), epoch: try reader.read())
        default:
            self = .quota(
                feature: try reader.read(), used: try reader.read(), limit: try reader.read(), resetsAt: try reader.read(),
                requested: try reader.read())
        }
    }
}

extension LedgerError: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(code)
        writer.write(message)
        writer.write(details)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(try reader.read(), try reader.read(), details: try reader.readOptional())
    }
}

extension CommandOutcome: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .tenantCreated(let tenant):
            writer.tag(0)
            writer.write(tenant)
        case .tenantConfigured(let tenant):
            writer.tag(1)
            writer.write(tenant)
        case .memberSet(let member):
            writer.tag(2)
            writer.write(member)
        case .granted(let grant):
            writer.tag(3)
            writer.write(grant)
        case .purchased(let purchase, let bonus):
            writer.tag(4)
            writer.write(purchase)
            writer.write(bonus)
        case .purchaseRefunded(let purchase, let bonus, let voided, let bonusVoided, let money):
            writer.tag(5)
            writer.write(purchase)
            writer.write(bonus)
            writer.write(voided)
            writer.write(bonusVoided)
            writer.write(money)
        case .voided(let grant, let amount):
            writer.tag(6)
            writer.write(grant)
            writer.write(amount)
        case .reserved(let hold):
            writer.tag(7)
            writer.write(hold)
        case .committed(let hold, let captured, let released):
            writer.tag(8)
            writer.write(hold)
            writer.write(captured)
            writer.write(released)
        case .released(let hold, let released):
            writer.tag(9)
            writer.write(hold)
            writer.write(released)
        case .refunded(let hold, let refunded, let newGrant):
            writer.tag(10)
            writer.write(hold)
            writer.write(refunded)
            writer.write(newGrant)
        case .catalogInstalled(let version):
            writer.tag(11)
            writer.write(version)
        case .ticked:
            writer.tag(12)
        case .charged(let hold, let charged):
            writer.tag(13)
            writer.write(hold)
            writer.write(charged)
        case .holdExtended(let hold):
            writer.tag(14)
            writer.write(hold)
        case .holdIncreased(let hold, let increased):
            writer.tag(15)
            writer.write(hold)
            writer.write(increased)
        }
    }

    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        switch try reader.tag(below: 16) {
        case 0: self = .tenantCreated(try reader.read())
        case 1: self = .tenantConfigured(try reader.read())
        case 2: self = .memberSet(try reader.read())
        case 3: self = .granted(try reader.read())
        case 4: self = .purchased(purchase: try reader.read(), bonus: try reader.readOptional())
        case 5:
            self = .purchaseRefunded(
                purchase: try reader.read(), bonus: try reader.readOptional(), voided: try reader.read(),
                bonusVoided: try reader.read(), moneyRefundMinor: try reader.read())
        case 6: self = .voided(try reader.read(), amount: try reader.read())
        case 7: self = .reserved(try reader.read())
        case 8: self = .committed(try reader.read(), captured: try reader.read(), released: try reader.read())
        case 9: self = .released(try reader.read(), released: try reader.read())
        case 10: self = .refunded(try reader.read(), refunded: try reader.read(), newGrant: try reader.readOptional())
        case 11: self = .catalogInstalled(version: try reader.read())
        case 13: self = .charged(try reader.read(), charged: try reader.read())
        case 14: self = .holdExtended(try reader.read())
        case 15: self = .holdIncreased(try reader.read(), increased: try reader.read())
        default: self = .ticked
        }
    }
}

extension StoredOutcome: BinaryCodable {
    package func encode(to writer: inout BinaryWriter) { Self.write(result, to: &writer) }

    /// Writes a result as its stored outcome is written, without making the outcome first.
    static func write(_ result: Result<CommandOutcome, LedgerError>, to writer: inout BinaryWriter) {
        switch result {
        case .success(let outcome):
            writer.tag(0)
            writer.write(outcome)
        case .failure(let error):
            writer.tag(1)
            writer.write(error)
        }
    }
    package init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self = try reader.tag(below: 2) == 0 ? .success(try reader.read()) : .failure(try reader.read())
    }
}

extension IdempotencyTable.Entry {
    /// Snapshot form: the body's full encoding (naming `tenant`), the outcome's, then the time.
    func encode(to writer: inout BinaryWriter, tenant: TenantID) {
        Self.writeSnapshotForm(stored: bytes[...], time: time, tenant: tenant, to: &writer)
    }

    /// The snapshot form of stored bytes (a body without its tenant, then an outcome): the tenant
    /// put back after the body's tag, then the time.
    static func writeSnapshotForm(stored: ArraySlice<UInt8>, time: LedgerTime, tenant: TenantID, to writer: inout BinaryWriter) {
        stored.withUnsafeBufferPointer { stored in
            writer.appendBytes(UnsafeBufferPointer(rebasing: stored[..<1]))
            writer.write(tenant)
            writer.appendBytes(UnsafeBufferPointer(rebasing: stored[1...]))
        }
        writer.write(time)
    }

    /// Reads the snapshot form of a request `tenant` remembered; the body must name that tenant.
    init(from reader: inout BinaryReader, tenant: TenantID) throws(BinaryFormatError) {
        // Decoded to validate (the accessors then cannot fail), but kept as the bytes read.
        let start = reader.offset
        let body = try reader.read(CommandBody.self)
        guard body.tenant == tenant else {
            throw reader.fail("tenant \(tenant) remembers a request for \(body.tenant.map { "tenant \($0)" } ?? "no tenant")")
        }
        let middle = reader.offset
        let outcome = try reader.read(StoredOutcome.self)
        guard reader.version == BinaryFormatVersion.current else {
            // Kept in memory in the current format only (a repeat decodes it as such).
            self.init(body: body, outcome: outcome, time: try reader.read())
            return
        }
        let skipped = tenant.encodedLength
        var stored = [UInt8]()
        stored.reserveCapacity(reader.offset - start - skipped)
        stored.append(reader.bytes[start])
        stored.append(contentsOf: reader.bytes[(start + 1 + skipped)..<reader.offset])
        self.init(stored: stored, bodyLength: middle - start - skipped, time: try reader.read())
    }
}

extension DueKind: BinaryCodable {
    package func encode(to writer: inout BinaryWriter) {
        switch self {
        case .holdExpiry(let hold):
            writer.tag(0)
            writer.write(hold)
        case .grantActivation(let grant):
            writer.tag(1)
            writer.write(grant)
        case .planRenewal(let generation):
            writer.tag(2)
            writer.write(generation)
        case .grantExpiry(let grant):
            writer.tag(3)
            writer.write(grant)
        case .budgetReset(let member, let generation):
            writer.tag(4)
            writer.write(member)
            writer.write(generation)
        }
    }
    package init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        switch try reader.tag(below: 5) {
        case 0: self = .holdExpiry(try reader.read())
        case 1: self = .grantActivation(try reader.read())
        case 2: self = .planRenewal(generation: try reader.read())
        case 3: self = .grantExpiry(try reader.read())
        default: self = .budgetReset(try reader.read(), generation: try reader.read())
        }
    }
}

extension DueItem: BinaryCodable {
    package func encode(to writer: inout BinaryWriter) {
        writer.write(time)
        writer.write(sequence)
        writer.write(tenant)
        writer.write(kind)
    }
    package init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(time: try reader.read(), sequence: try reader.read(), tenant: try reader.read(), kind: try reader.read())
    }
}

extension Tenant: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(id)
        writer.write(settings)
        writer.write(createdAt)
        writer.write(grants)
        writer.write(Array(activeGrants))
        writer.write(pendingGrantCount)
        writer.write(holds)
        writer.write(openHoldCount)
        writer.write(heldTotal)
        writer.write(debt)
        writer.write(grantedTotal)
        writer.write(capturedTotal)
        writer.write(refundedTotal)
        writer.write(members)
        writer.write(thresholdMembers)
        writer.write(belowThreshold)
        writer.write(planPeriod)
        writer.write(planGeneration)
        history.encodeEntries(to: &writer)
        idempotency.encode(to: &writer, tenant: id)
        writer.write(UInt64(belowThresholds))
    }

    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        id = try reader.read()
        settings = try reader.read()
        createdAt = try reader.read()
        grants = try reader.readArray()
        let active = try reader.readArray(GrantID.self)
        guard !active.contains(where: { $0.rawValue == 0 }) else { throw reader.fail("grant id 0 in the burn-down order") }
        activeGrants = GrantIDList(active)
        pendingGrantCount = try Self.readCount(&reader, "pending grant count")
        holds = try reader.read()
        openHoldCount = try Self.readCount(&reader, "open hold count")
        heldTotal = try reader.read()
        debt = try reader.read()
        grantedTotal = try reader.read()
        capturedTotal = try reader.read()
        refundedTotal = try reader.read()
        members = try reader.readDictionary()
        thresholdMembers = try reader.readArray()
        belowThreshold = try reader.read()
        planPeriod = try reader.readOptional()
        planGeneration = try reader.read()
        guard let history = HistoryLog(try reader.readArray()) else { throw reader.fail("history sequences are not 1, 2, 3, ...") }
        self.history = history
        idempotency = try IdempotencyTable(from: &reader, tenant: id)
        if reader.version >= 2 { belowThresholds = UInt16(truncatingIfNeeded: try reader.read(UInt64.self)) }
    }
}

extension Tenant {
    /// A count the tenant keeps in 4 bytes (the audit then checks it against the holds or grants).
    fileprivate static func readCount(_ reader: inout BinaryReader, _ what: String) throws(BinaryFormatError) -> Int {
        let value = try reader.read(Int.self)
        guard value >= 0, value <= Int(Int32.max) else { throw reader.fail("\(what) \(value) is out of range") }
        return value
    }
}

extension TenantTable: BinaryCodable {
    // The form of the `[TenantID: Tenant]` dictionary it replaced (count, then id and tenant pairs),
    // now in creation order.
    public func encode(to writer: inout BinaryWriter) {
        encode(to: &writer, flushingAt: .max) { (_: inout BinaryWriter) in }
    }

    /// The same form written in parts (`LedgerState.encode(to:flushingAt:_:)`).
    func encode<E: Error>(
        to writer: inout BinaryWriter, flushingAt chunk: Int, _ flush: (inout BinaryWriter) throws(E) -> Void
    ) throws(E) {
        writer.writeVarint(UInt64(count))
        try encodeTenants(to: &writer, flushingAt: chunk, flush)
    }

    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init()
        let count = try reader.readCount()
        reserveCapacity(count)
        for _ in 0..<count {
            let id = try reader.read(TenantID.self)
            let start = reader.offset
            let tenant = try reader.read(Tenant.self)
            guard tenant.id == id else { throw reader.fail("tenant \(tenant.id) stored under \(id)") }
            guard position(of: id) == nil else { throw reader.fail("duplicate key") }
            // Frozen in the current format: an older snapshot's bytes are encoded again.
            if reader.version == BinaryFormatVersion.current {
                insertFreezing(tenant, encoding: reader.bytes[start..<reader.offset])
            } else {
                insertFreezing(tenant, encoding: tenant.binaryEncoded[...])
            }
        }
    }
}

extension LedgerState: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        encode(to: &writer, flushingAt: .max) { (_: inout BinaryWriter) in }
    }

    /// The binary form written in parts (a snapshot streamed to its file): whenever the writer
    /// holds `chunk` bytes or more between two tenants (or two tenants' events), `flush` is called
    /// to take them (`BinaryWriter.drain`). What is left at the end is the caller's to take. A
    /// part is at least one tenant's encoding, however large.
    public func encode<E: Error>(
        to writer: inout BinaryWriter, flushingAt chunk: Int, _ flush: (inout BinaryWriter) throws(E) -> Void
    ) throws(E) {
        writer.write(time)
        try tenants.encode(to: &writer, flushingAt: chunk, flush)
        writer.write(catalog)
        writer.write(due.items)
        writer.write(dueSequence)
        // Added after format 1 shipped: a snapshot that ends before this field has no events.
        // The form of a `[TenantID: EventLog]` whose logs hold `LedgerEvent` values: count, then
        // each tenant, its last id and its retained events.
        let logs = eventLogs
        writer.writeVarint(UInt64(logs.count))
        for (tenant, log) in logs {
            writer.write(tenant)
            log.encode(to: &writer, tenant: tenant)
            if writer.bytes.count >= chunk { try flush(&writer) }
        }
    }

    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(time: try reader.read())
        tenants = try reader.read()
        catalog = try reader.readOptional()
        due.items = try reader.readArray()
        due.pruneAt = max(DueQueue.pruneSizeMin, 2 * due.count)
        dueSequence = try reader.read()
        if !reader.isAtEnd {
            let count = try reader.readCount()
            for _ in 0..<count {
                let tenant = try reader.read(TenantID.self)
                guard let position = tenants.position(of: tenant) else { throw reader.fail("events of an unknown tenant \(tenant)") }
                guard tenants.eventLog(at: position).lastID == 0 else { throw reader.fail("duplicate key") }
                tenants.setEventLog(try EventLog(from: &reader, tenant: tenant), at: position)
            }
        }
    }
}

extension EventLog {
    /// Snapshot form: the last id, then the retained events as `LedgerEvent`s of `tenant`.
    func encode(to writer: inout BinaryWriter, tenant: TenantID) {
        writer.write(lastID)
        writer.write(events(of: tenant))
    }

    init(from reader: inout BinaryReader, tenant: TenantID) throws(BinaryFormatError) {
        self.init()
        let lastID = try reader.read(UInt64.self)
        let events = try reader.readArray(LedgerEvent.self)
        guard UInt64(events.count) <= lastID else { throw reader.fail("more events than event ids") }
        for (offset, event) in events.enumerated() where event.id != lastID - UInt64(events.count - 1 - offset) {
            throw reader.fail("event ids are not consecutive up to \(lastID)")
        }
        guard events.allSatisfy({ $0.tenant == tenant }) else { throw reader.fail("events of another tenant under \(tenant)") }
        self.lastID = lastID - UInt64(events.count)
        for var event in events { append(&event) }
    }
}

extension LedgerEvent: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(id)
        writer.write(tenant)
        writer.write(time)
        writer.write(kind)
    }

    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(id: try reader.read(), tenant: try reader.read(), time: try reader.read(), kind: try reader.read())
    }
}

extension LedgerEvent.Kind: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .lowBalance(let member, let available, let threshold):
            writer.tag(0)
            writer.write(member)
            writer.write(available)
            writer.write(threshold)
        case .balanceRecovered(let member, let available, let threshold):
            writer.tag(1)
            writer.write(member)
            writer.write(available)
            writer.write(threshold)
        case .budgetExceeded(let member, let requested, let remaining, let cap, let resetsAt):
            writer.tag(2)
            writer.write(member)
            writer.write(requested)
            writer.write(remaining)
            writer.write(cap)
            writer.write(resetsAt)
        case .holdExpired(let hold, let released):
            writer.tag(3)
            writer.write(hold)
            writer.write(released)
        case .grantExpired(let grant, let kind, let expired):
            writer.tag(4)
            writer.write(grant)
            writer.write(kind)
            writer.write(expired)
        case .planRenewed(let grant, let amount, let periodStart, let periodEnd):
            writer.tag(5)
            writer.write(grant)
            writer.write(amount)
            writer.write(periodStart)
            writer.write(periodEnd)
        case .budgetReset(let member, let periodStart, let periodEnd):
            writer.tag(6)
            writer.write(member)
            writer.write(periodStart)
            writer.write(periodEnd)
        case .granted(let grant, let kind, let amount):
            writer.tag(7)
            writer.write(grant)
            writer.write(kind)
            writer.write(amount)
        case .purchased(let grant, let amount, let bonus, let bonusAmount, let moneyMinor):
            writer.tag(8)
            writer.write(grant)
            writer.write(amount)
            writer.write(bonus)
            writer.write(bonusAmount)
            writer.write(moneyMinor)
        case .captured(let hold, let member, let amount, let final):
            writer.tag(9)
            writer.write(hold)
            writer.write(member)
            writer.write(amount)
            writer.write(final)
        case .charged(let hold, let member, let amount):
            writer.tag(10)
            writer.write(hold)
            writer.write(member)
            writer.write(amount)
        case .refunded(let hold, let member, let amount):
            writer.tag(11)
            writer.write(hold)
            writer.write(member)
            writer.write(amount)
        case .voided(let grant, let kind, let amount):
            writer.tag(12)
            writer.write(grant)
            writer.write(kind)
            writer.write(amount)
        }
    }

    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        switch try reader.tag(below: 13) {
        case 0: self = .lowBalance(member: try reader.readOptional(), available: try reader.read(), threshold: try reader.read())
        case 1:
            self = .balanceRecovered(member: try reader.readOptional(), available: try reader.read(), threshold: try reader.read())
        case 2:
            self = .budgetExceeded(
                member: try reader.read(), requested: try reader.read(), remaining: try reader.read(), cap: try reader.read(),
                resetsAt: try reader.read())
        case 3: self = .holdExpired(hold: try reader.read(), released: try reader.read())
        case 4: self = .grantExpired(grant: try reader.read(), kind: try reader.read(), expired: try reader.read())
        case 5:
            self = .planRenewed(grant: try reader.read(), amount: try reader.read(), periodStart: try reader.read(), periodEnd: try reader.read())
        case 6: self = .budgetReset(member: try reader.read(), periodStart: try reader.read(), periodEnd: try reader.read())
        case 7: self = .granted(grant: try reader.read(), kind: try reader.read(), amount: try reader.read())
        case 8:
            self = .purchased(
                grant: try reader.read(), amount: try reader.read(), bonus: try reader.readOptional(), bonusAmount: try reader.read(),
                moneyMinor: try reader.read())
        case 9: self = .captured(hold: try reader.read(), member: try reader.readOptional(), amount: try reader.read(), final: try reader.read())
        case 10: self = .charged(hold: try reader.read(), member: try reader.readOptional(), amount: try reader.read())
        case 11: self = .refunded(hold: try reader.read(), member: try reader.readOptional(), amount: try reader.read())
        default: self = .voided(grant: try reader.read(), kind: try reader.read(), amount: try reader.read())
        }
    }
}
