// Shared fixtures for the test suites: a seedable generator of plausible (and hostile) ledger
// commands.

import LedgerCore

/// SplitMix64: a small, seedable generator, so that a failing sequence can be replayed from its seed.
public struct SeededGenerator: RandomNumberGenerator {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Makes random but plausible commands, including invalid ones, reused request ids and long jumps
/// in time (holds expiring, grants expiring, plan periods and budget periods rolling over).
public struct CommandGenerator {
    public var random: SeededGenerator
    public var time: LedgerTime
    var requestCounter = 0
    var previous: [(RequestID, CommandBody)] = []
    /// Holds named by earlier reserves, so that commits, releases and refunds mostly find one.
    var reserved: [(TenantID, HoldID)] = []
    var holdCounter: UInt64 = 0
    public let tenants: [TenantID] = ["t0", "t1", "t2"]
    public let members: [MemberID] = ["m0", "m1", "m2", "m3"]

    public init(seed: UInt64) {
        random = SeededGenerator(state: seed)
        time = LedgerTime(iso8601: "2026-06-28T10:00:00Z")!
    }

    public mutating func int(_ range: ClosedRange<UInt64>) -> UInt64 { UInt64.random(in: range, using: &random) }
    public mutating func chance(_ percent: UInt64) -> Bool { int(0...99) < percent }
    public mutating func pick<T>(_ values: [T]) -> T { values[Int(int(0...UInt64(values.count - 1)))] }

    public mutating func period() -> PeriodRule {
        let unit = pick(PeriodUnit.allCases)
        return chance(50) ? PeriodRule(unit: unit) : PeriodRule(unit: unit, anchor: time.adding(milliseconds: Int64(int(0...40 * 86_400_000))))
    }

    public mutating func advanceTime() {
        let roll = int(0...99)
        let millis: UInt64
        if roll < 55 { millis = int(0...60_000) } else if roll < 90 { millis = int(60_000...36 * 3_600_000) } else { millis = int(1...40) * 86_400_000 }
        time = time.adding(milliseconds: Int64(millis))
    }

    mutating func amount(_ max: UInt64) -> Tokens { chance(3) ? 0 : int(1...max) }

    /// Plan quotas, now and then: a few catalog features (sometimes one twice, or not in the
    /// catalog) with small limits, so that reserves by items reach them.
    mutating func quotas() -> [PlanQuota] {
        guard chance(45) else { return [] }
        return (0..<int(1...3)).map { _ in
            PlanQuota(feature: pick(["cover_image", "transcription", "report.qa", "nope"]), limit: chance(10) ? 0 : int(1...400))
        }
    }

    /// Further thresholds, now and then (sometimes one twice or a percentage out of range).
    mutating func thresholds() -> [BalanceThreshold] {
        guard chance(30) else { return [] }
        return (0..<int(1...3)).map { _ in chance(50) ? .tokens(int(1...3_000)) : .percent(UInt32(int(1...101))) }
    }

    /// A grant's scope, now and then: one or two catalog features.
    mutating func scope() -> [String] {
        guard chance(30) else { return [] }
        return (0..<int(1...2)).map { _ in pick(["transcription", "report.qa", "ai_question", "cover_image"]) }
    }

    public mutating func body() -> CommandBody {
        var tenant = chance(2) ? TenantID("ghost") : pick(tenants)
        var hold = HoldID("h\(int(0...24))")
        if !reserved.isEmpty, chance(85) {
            // Mostly a recent hold, sometimes an old one.
            let recent = reserved.suffix(chance(70) ? 4 : reserved.count)
            (tenant, hold) = recent[recent.startIndex + Int(int(0...UInt64(recent.count - 1)))]
        }
        let member: MemberID? = chance(30) ? nil : pick(members)
        switch int(0...99) {
        case 0..<4:
            var settings = TenantSettings()
            if chance(50) { settings.plan = Plan(allowance: int(0...20_000), period: period(), rolloverCap: chance(50) ? int(0...5_000) : 0, spendLimit: chance(30) ? int(1...30_000) : 0, quotas: quotas()) }
            settings.overdraftLimit = chance(30) ? int(0...2_000) : 0
            settings.lowBalanceThreshold = chance(50) ? int(0...3_000) : 0
            settings.lowBalanceThresholds = thresholds()
            settings.movementEvents = chance(80)
            return .createTenant(tenant, settings)
        case 4..<8:
            var change = TenantSettingsChange()
            switch int(0...5) {
            case 0: change.plan = .set(Plan(allowance: int(0...20_000), period: period(), rolloverCap: int(0...5_000), spendLimit: chance(40) ? int(1...30_000) : 0, quotas: quotas()))
            case 1: change.plan = .remove
            case 2: change.overdraftLimit = int(0...3_000)
            case 3: change.lowBalanceThresholds = thresholds()
            case 4: change.movementEvents = chance(50)
            default: change.lowBalanceThreshold = int(0...3_000)
            }
            return .configureTenant(tenant, change)
        case 8..<13:
            let budget = chance(60) ? Budget(cap: int(0...8_000), period: period()) : nil
            return .setMember(
                tenant, member ?? "m0",
                MemberSettings(budget: budget, lowBalanceThreshold: chance(40) ? int(0...2_000) : nil, lowBalanceThresholds: thresholds()))
        case 13..<23:
            let kind = pick([GrantKind.purchase, .bonus, .referral, .promo, .adjustment, .plan])
            let effective: LedgerTime? = chance(15) ? time.adding(milliseconds: Int64(int(1...5 * 86_400_000))) : nil
            let expires: LedgerTime? = chance(50) ? time.adding(milliseconds: Int64(int(1_000...20 * 86_400_000))) : nil
            return .grant(tenant, GrantRequest(kind: kind, amount: amount(6_000), effectiveAt: effective, expiresAt: expires, priority: chance(20) ? UInt32(int(0...200)) : nil, scope: scope()))
        case 23..<28:
            return .purchase(tenant, moneyMinor: int(300...30_000), note: "order")
        case 28..<31:
            return .refundPurchase(tenant, GrantID(int(0...12)))
        case 31..<34:
            return .voidGrant(tenant, GrantID(int(0...12)))
        case 34..<56:
            let amount: ReserveRequest.Amount =
                chance(40)
                ? .items((0..<int(1...3)).map { _ in PricedItem(feature: pick(["transcription", "report.qa", "ai_question", "cover_image", "nope"]), quantity: int(0...120)) })
                : .tokens(amount(3_000))
            let ttl: Duration? = chance(30) ? nil : .milliseconds(Int64(int(500...2 * 86_400_000)))
            if chance(90) {
                holdCounter += 1
                hold = HoldID("h\(holdCounter)")
            }
            reserved.append((tenant, hold))
            // One in five spends at once: a charge, refundable later like a committed hold.
            if chance(20) { return .charge(tenant, ReserveRequest(hold: hold, member: member, amount: amount, ttl: nil)) }
            return .reserve(tenant, ReserveRequest(hold: hold, member: member, amount: amount, ttl: ttl))
        case 56..<78:
            // Now and then the hold grows or lives longer first: a live session's pattern.
            if chance(10) { return .increaseHold(tenant, hold, amount: amount(1_500)) }
            if chance(8) { return .extendHold(tenant, hold, ttl: .milliseconds(Int64(int(0...3 * 86_400_000)))) }
            return .commit(tenant, hold, amount: int(0...2_500), final: chance(60))
        case 78..<88:
            return .release(tenant, hold)
        default:
            return .refund(tenant, hold, amount: amount(1_500))
        }
    }

    /// The next command: usually a fresh request, sometimes a retry or a reused id.
    public mutating func next() -> LedgerCommand {
        advanceTime()
        if !previous.isEmpty, chance(8) {
            let (id, body) = pick(previous)
            return LedgerCommand(time: time, requestID: id, body: chance(70) ? body : self.body())
        }
        if chance(3) { return LedgerCommand(time: time, requestID: nil, body: .tick) }
        let body = body()
        requestCounter += 1
        let id = RequestID("r\(requestCounter)")
        previous.append((id, body))
        // Rarely, a clock that stepped back: the ledger must take it as its own time.
        let stamped = chance(2) ? time.adding(milliseconds: -5_000) : time
        return LedgerCommand(time: stamped, requestID: id, body: body)
    }

    /// The commands that start every sequence: the demo catalog, the tenants with random plans and
    /// overdrafts, and an initial purchase each.
    public mutating func setupCommands() -> [LedgerCommand] {
        var commands = [LedgerCommand(time: time, requestID: nil, body: .installCatalog(.demo))]
        for tenant in tenants {
            var settings = TenantSettings(overdraftLimit: chance(30) ? int(0...2_000) : 0)
            if chance(60) {
                settings.plan = Plan(
                    allowance: int(0...20_000), period: period(), rolloverCap: int(0...3_000),
                    spendLimit: chance(30) ? int(1...40_000) : 0, quotas: quotas())
            }
            commands.append(LedgerCommand(time: time, requestID: "setup", body: .createTenant(tenant, settings)))
            commands.append(
                LedgerCommand(time: time, requestID: "fund", body: .grant(tenant, GrantRequest(kind: .purchase, amount: int(0...20_000)))))
        }
        return commands
    }

    /// A state after the setup and `steps` generated commands, with the commands that made it.
    public static func randomLedger(seed: UInt64, steps: Int) -> (commands: [LedgerCommand], state: LedgerState) {
        var generator = CommandGenerator(seed: seed)
        var state = LedgerState(time: generator.time)
        var commands = generator.setupCommands()
        for _ in 0..<steps { commands.append(generator.next()) }
        for command in commands { _ = state.apply(command) }
        return (commands, state)
    }
}

/// A one-line summary of a command's outcome that two processes can compare: the outcome's case
/// and the numbers that matter, or the error code.
public func outcomeTag(_ result: Result<CommandOutcome, LedgerError>) -> String {
    switch result {
    case .failure(let error): return "error:\(error.code.rawValue)"
    case .success(let outcome):
        switch outcome {
        case .reserved(let hold): return "reserved:\(hold.id):\(hold.amount)"
        case .charged(let hold, let charged): return "charged:\(hold.id):\(charged)"
        case .holdExtended(let hold): return "extended:\(hold.id):\(hold.expiresAt)"
        case .holdIncreased(let hold, let increased): return "increased:\(hold.id):\(increased):\(hold.amount)"
        case .committed(let hold, let captured, let released): return "committed:\(hold.id):\(captured):\(released):\(hold.state.rawValue)"
        case .released(let hold, let released): return "released:\(hold.id):\(released)"
        case .refunded(let hold, let refunded, let grant): return "refunded:\(hold.id):\(refunded):\(grant.map { "\($0)" } ?? "-")"
        case .granted(let grant): return "granted:\(grant.id):\(grant.amount)"
        case .purchased(let purchase, let bonus): return "purchased:\(purchase.id):\(purchase.amount):\(bonus?.amount ?? 0)"
        case .tenantCreated(let tenant): return "created:\(tenant)"
        default: return "ok"
        }
    }
}

/// The catalog the crash tests install over the demo one (other prices for the same items).
public let crashTestCatalog = try! PriceCatalog(
    version: "crash-test-2",
    features: [
        FeaturePrice(name: "transcription", unit: "minute", rate: 9),
        FeaturePrice(name: "cover_image", unit: "image", base: 30),
    ])
