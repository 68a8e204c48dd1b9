// Binary forms of commands and everything they carry (the WAL record bodies).

extension LedgerTime: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.write(millisecondsSinceEpoch) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(millisecondsSinceEpoch: try reader.read())
    }
}

extension TenantID: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.write(rawValue) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) { self.init(try reader.read(String.self)) }

    /// Bytes of the encoding: the UTF-8 length as a varint, then the UTF-8.
    var encodedLength: Int {
        let utf8 = rawValue.utf8.count
        var varint = 1
        var rest = utf8 >> 7
        while rest > 0 {
            varint += 1
            rest >>= 7
        }
        return varint + utf8
    }
}

extension MemberID: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.write(rawValue) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) { self.init(try reader.read(String.self)) }
}

extension HoldID: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.write(rawValue) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) { self.init(try reader.read(String.self)) }
}

extension RequestID: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.write(rawValue) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) { self.init(try reader.read(String.self)) }
}

extension GrantID: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.write(rawValue) }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) { self.init(try reader.read(UInt64.self)) }
}

extension PeriodUnit: BinaryCodable {}
extension GrantKind: BinaryCodable {}
extension GrantState: BinaryCodable {}
extension HoldState: BinaryCodable {}
extension HistoryKind: BinaryCodable {}
extension ErrorCode: BinaryCodable {}

extension PeriodRule: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(unit)
        writer.write(anchor)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(unit: try reader.read(), anchor: try reader.read(LedgerTime.self))
    }
}

extension Plan: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(allowance)
        writer.write(period)
        writer.write(rolloverCap)
        writer.write(spendLimit)
        writer.write(quotas)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(allowance: try reader.read(), period: try reader.read(), rolloverCap: try reader.read(), spendLimit: try reader.read())
        if reader.version >= 2 { quotas = try reader.readArray() }
    }
}

extension PlanQuota: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(feature)
        writer.write(limit)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(feature: try reader.read(), limit: try reader.read())
    }
}

extension BonusTier: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(fromMinor)
        writer.write(basisPoints)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(fromMinor: try reader.read(), basisPoints: try reader.read())
    }
}

extension PurchaseRules: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(tokensPerRate)
        writer.write(minorUnitsPerRate)
        writer.write(minimumMinor)
        writer.write(bonusTiers)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(
            tokensPerRate: try reader.read(), minorUnitsPerRate: try reader.read(), minimumMinor: try reader.read(),
            bonusTiers: try reader.readArray())
    }
}

extension BalanceThreshold: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .tokens(let tokens):
            writer.tag(0)
            writer.write(tokens)
        case .percent(let percent):
            writer.tag(1)
            writer.write(percent)
        }
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self = try reader.tag(below: 2) == 0 ? .tokens(try reader.read()) : .percent(try reader.read())
    }
}

extension TenantSettings: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(plan)
        writer.write(purchaseRules)
        writer.write(overdraftLimit)
        writer.write(lowBalanceThreshold)
        writer.write(movementEvents)
        writer.write(lowBalanceThresholds)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(
            plan: try reader.readOptional(), purchaseRules: try reader.read(), overdraftLimit: try reader.read(),
            lowBalanceThreshold: try reader.read())
        if reader.version >= 2 {
            movementEvents = try reader.read()
            lowBalanceThresholds = try reader.readArray()
        } else {
            // Tenants of format 1 had no movement events; they keep having none until configured.
            movementEvents = false
        }
    }
}

extension TenantSettingsChange.PlanChange: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .set(let plan):
            writer.tag(0)
            writer.write(plan)
        case .remove:
            writer.tag(1)
        }
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self = try reader.tag(below: 2) == 0 ? .set(try reader.read()) : .remove
    }
}

extension TenantSettingsChange: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(plan)
        writer.write(purchaseRules)
        writer.write(overdraftLimit)
        writer.write(lowBalanceThreshold)
        writer.write(lowBalanceThresholds)
        writer.write(movementEvents)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(
            plan: try reader.readOptional(), purchaseRules: try reader.readOptional(), overdraftLimit: try reader.readOptional(),
            lowBalanceThreshold: try reader.readOptional())
        if reader.version >= 2 {
            lowBalanceThresholds = try reader.readOptionalArray()
            movementEvents = try reader.readOptional()
        }
    }
}

extension Budget: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(cap)
        writer.write(period)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(cap: try reader.read(), period: try reader.read())
    }
}

extension MemberSettings: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(budget)
        writer.write(lowBalanceThreshold)
        writer.write(lowBalanceThresholds)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(budget: try reader.readOptional(), lowBalanceThreshold: try reader.readOptional())
        if reader.version >= 2 { lowBalanceThresholds = try reader.readArray() }
    }
}

extension GrantRequest: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(kind)
        writer.write(amount)
        writer.write(effectiveAt)
        writer.write(expiresAt)
        writer.write(priority)
        writer.write(note)
        writer.write(scope)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(
            kind: try reader.read(), amount: try reader.read(), effectiveAt: try reader.readOptional(),
            expiresAt: try reader.readOptional(), priority: try reader.readOptional(), note: try reader.read())
        if reader.version >= 2 { scope = try reader.readArray() }
    }
}

extension PricedItem: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(feature)
        writer.write(quantity)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(feature: try reader.read(), quantity: try reader.read())
    }
}

extension ReserveRequest.Amount: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .tokens(let tokens):
            writer.tag(0)
            writer.write(tokens)
        case .items(let items):
            writer.tag(1)
            writer.write(items)
        }
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self = try reader.tag(below: 2) == 0 ? .tokens(try reader.read()) : .items(try reader.readArray())
    }
}

extension ReserveRequest: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(hold)
        writer.write(member)
        writer.write(amount)
        writer.write(ttl)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(hold: try reader.read(), member: try reader.readOptional(), amount: try reader.read(), ttl: try reader.readOptional())
    }
}

extension FeaturePrice: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(name)
        writer.write(unit)
        writer.write(base)
        writer.write(rate)
        writer.write(per)
        writer.write(description)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(
            name: try reader.read(), unit: try reader.read(), base: try reader.read(), rate: try reader.read(),
            per: try reader.read(), description: try reader.read())
    }
}

extension PriceCatalog: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(version)
        writer.write(sortedFeatures)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        let version = try reader.read(String.self)
        let features = try reader.readArray(FeaturePrice.self)
        do {
            try self.init(version: version, features: features)
        } catch {
            throw reader.fail("invalid catalog: \(error)")
        }
    }
}

extension CommandBody: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        switch self {
        // Tags 0 to 3 are these commands' format-1 payloads (read, never written): a plan without
        // quotas, settings without further thresholds or movement events, a grant without a scope.
        case .createTenant(let tenant, let settings):
            writer.tag(16)
            writer.write(tenant)
            writer.write(settings)
        case .configureTenant(let tenant, let change):
            writer.tag(17)
            writer.write(tenant)
            writer.write(change)
        case .setMember(let tenant, let member, let settings):
            writer.tag(19)
            writer.write(tenant)
            writer.write(member)
            writer.write(settings)
        case .grant(let tenant, let request):
            writer.tag(18)
            writer.write(tenant)
            writer.write(request)
        case .purchase(let tenant, let moneyMinor, let note):
            writer.tag(4)
            writer.write(tenant)
            writer.write(moneyMinor)
            writer.write(note)
        case .refundPurchase(let tenant, let grant):
            writer.tag(5)
            writer.write(tenant)
            writer.write(grant)
        case .voidGrant(let tenant, let grant):
            writer.tag(6)
            writer.write(tenant)
            writer.write(grant)
        case .reserve(let tenant, let request):
            writer.tag(7)
            writer.write(tenant)
            writer.write(request)
        case .commit(let tenant, let hold, let amount, let final):
            writer.tag(8)
            writer.write(tenant)
            writer.write(hold)
            writer.write(amount)
            writer.write(final)
        case .release(let tenant, let hold):
            writer.tag(9)
            writer.write(tenant)
            writer.write(hold)
        case .refund(let tenant, let hold, let amount):
            writer.tag(10)
            writer.write(tenant)
            writer.write(hold)
            writer.write(amount)
        case .installCatalog(let catalog):
            writer.tag(11)
            writer.write(catalog)
        case .tick:
            writer.tag(12)
        case .charge(let tenant, let request):
            writer.tag(13)
            writer.write(tenant)
            writer.write(request)
        case .extendHold(let tenant, let hold, let ttl):
            writer.tag(14)
            writer.write(tenant)
            writer.write(hold)
            writer.write(ttl)
        case .increaseHold(let tenant, let hold, let amount):
            writer.tag(15)
            writer.write(tenant)
            writer.write(hold)
            writer.write(amount)
        }
    }

    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        let tag = try reader.tag(below: 20)
        // A format-1 tag reads its payload as format 1, whatever carries it.
        let version = reader.version
        if tag <= 3 { reader.version = 1 }
        defer { reader.version = version }
        switch tag {
        case 0, 16: self = .createTenant(try reader.read(), try reader.read())
        case 1, 17: self = .configureTenant(try reader.read(), try reader.read())
        case 2, 19: self = .setMember(try reader.read(), try reader.read(), try reader.read())
        case 3, 18: self = .grant(try reader.read(), try reader.read())
        case 4: self = .purchase(try reader.read(), moneyMinor: try reader.read(), note: try reader.read())
        case 5: self = .refundPurchase(try reader.read(), try reader.read())
        case 6: self = .voidGrant(try reader.read(), try reader.read())
        case 7: self = .reserve(try reader.read(), try reader.read())
        case 8: self = .commit(try reader.read(), try reader.read(), amount: try reader.read(), final: try reader.read())
        case 9: self = .release(try reader.read(), try reader.read())
        case 10: self = .refund(try reader.read(), try reader.read(), amount: try reader.read())
        case 11: self = .installCatalog(try reader.read())
        case 13: self = .charge(try reader.read(), try reader.read())
        case 14: self = .extendHold(try reader.read(), try reader.read(), ttl: try reader.read())
        case 15: self = .increaseHold(try reader.read(), try reader.read(), amount: try reader.read())
        case 12: self = .tick
        default: throw reader.fail("unknown command tag \(tag)")
        }
    }
}

extension LedgerCommand: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(time)
        writer.write(requestID)
        writer.write(body)
    }
    public init(from reader: inout BinaryReader) throws(BinaryFormatError) {
        self.init(time: try reader.read(), requestID: try reader.readOptional(), body: try reader.read())
    }
}
