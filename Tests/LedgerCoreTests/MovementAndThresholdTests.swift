import LedgerCore
import Testing

/// Events for every movement, and several low-balance thresholds.
@Suite struct MovementEventTests {
    let acme: TenantID = "acme"

    func kinds(_ result: CommandResult) -> [LedgerEvent.Kind] { result.events.map(\.kind) }

    @Test func everyMovementIsAnEventBeforeTheCrossingItCauses() {
        var ledger = TestLedger()
        ledger.createTenant(acme, TenantSettings(lowBalanceThreshold: 500))
        let granted = ledger.run(.grant(acme, GrantRequest(kind: .promo, amount: 1_000)))
        #expect(kinds(granted) == [.granted(grant: GrantID(1), kind: .promo, amount: 1_000), .balanceRecovered(member: nil, available: 1_000, threshold: 500)])
        #expect(granted.events.map(\.id) == [2, 3], "event 1 is the creation's low_balance")

        let purchased = ledger.run(.purchase(acme, moneyMinor: 5_000, note: ""))
        #expect(kinds(purchased) == [.purchased(grant: GrantID(2), amount: 5_000, bonus: GrantID(3), bonusAmount: 250, moneyMinor: 5_000)])

        ledger.reserve(acme, "job", 300, member: "ana")
        #expect(kinds(ledger.run(.commit(acme, "job", amount: 100, final: false))) == [.captured(hold: "job", member: "ana", amount: 100, final: false)])
        #expect(kinds(ledger.run(.commit(acme, "job", amount: 50, final: true))) == [.captured(hold: "job", member: "ana", amount: 50, final: true)])
        #expect(kinds(ledger.run(.charge(acme, ReserveRequest(hold: "c", amount: .tokens(40))))) == [.charged(hold: "c", member: nil, amount: 40)])
        #expect(kinds(ledger.run(.refund(acme, "c", amount: 15))) == [.refunded(hold: "c", member: nil, amount: 15)])
        #expect(kinds(ledger.run(.voidGrant(acme, GrantID(1)))) == [.voided(grant: GrantID(1), kind: .promo, amount: 1_000 - 150 - 25)])
        let refundedPurchase = ledger.run(.refundPurchase(acme, GrantID(2)))
        #expect(kinds(refundedPurchase).prefix(2) == [.voided(grant: GrantID(2), kind: .purchase, amount: 5_000), .voided(grant: GrantID(3), kind: .bonus, amount: 250)])
        // Reserves, releases and refusals move nothing: no movement event.
        ledger.grant(acme, 100)
        let before = ledger.state.eventLogs[acme]!.lastID
        ledger.reserve(acme, "quiet", 10)
        ledger.ok(.release(acme, "quiet"))
        ledger.fail(.charge(acme, ReserveRequest(hold: "big", amount: .tokens(1_000_000))), .insufficientBalance)
        #expect(ledger.state.eventLogs[acme]!.lastID == before)
        // A replay of a request emits nothing again.
        let first = ledger.run(.charge(acme, ReserveRequest(hold: "once", amount: .tokens(5))), requestID: "once")
        let again = ledger.run(.charge(acme, ReserveRequest(hold: "once", amount: .tokens(5))), requestID: "once")
        #expect(first.events.count == 1 && again.replayed && again.events.isEmpty)
    }

    @Test func movementEventsCanBeTurnedOffAndOn() {
        var ledger = TestLedger()
        ledger.createTenant(acme, TenantSettings(movementEvents: false))
        #expect(ledger.run(.grant(acme, GrantRequest(kind: .promo, amount: 100))).events.isEmpty)
        #expect(ledger.run(.charge(acme, ReserveRequest(hold: "c", amount: .tokens(10)))).events.isEmpty)
        ledger.ok(.configureTenant(acme, TenantSettingsChange(movementEvents: true)))
        #expect(ledger.tenant(acme).settings.movementEvents)
        #expect(kinds(ledger.run(.refund(acme, "c", amount: 10))) == [.refunded(hold: "c", member: nil, amount: 10)])
        #expect(ledger.balance(acme).movementEvents)
    }

    @Test func aTenantCreatedInFormatOneHasNoMovementEvents() throws {
        // Tag 0 is the format-1 create command: its settings have no movement-events field.
        var writer = BinaryWriter()
        writer.tag(0)
        writer.write(acme)
        writer.write(Plan?.none)
        writer.write(PurchaseRules.default)
        writer.write(Tokens(0))
        writer.write(Tokens(0))
        let body = try CommandBody(binary: writer.bytes)
        guard case .createTenant(_, let settings) = body else {
            Issue.record("not a create: \(body)")
            return
        }
        #expect(!settings.movementEvents)
        #expect(settings.lowBalanceThresholds.isEmpty)
        // Written again, it is the format-2 command (tag 16) and keeps the setting.
        #expect(body.binaryEncoded.first == 16)
        #expect(try CommandBody(binary: body.binaryEncoded) == body)

        // Applied (as a log written by the older build replays it), the tenant has no movement
        // events; the same request sent again after the upgrade, which says nothing of them, is
        // still that request; another is a conflict.
        var ledger = TestLedger()
        ledger.run(body, requestID: "create")
        #expect(!ledger.tenant(acme).settings.movementEvents)
        let again = ledger.run(.createTenant(acme, TenantSettings()), requestID: "create")
        #expect(again.replayed && again.outcome == .success(.tenantCreated(acme)))
        ledger.fail(.createTenant(acme, TenantSettings(overdraftLimit: 5)), .idempotencyConflict, requestID: "create")
    }
}

@Suite struct SeveralThresholdTests {
    let acme: TenantID = "acme"

    func crossings(_ result: CommandResult) -> [String] {
        result.events.compactMap {
            switch $0.kind {
            case .lowBalance(let member, let available, let threshold): "low \(member.map(\.rawValue) ?? "pool") \(available) < \(threshold)"
            case .balanceRecovered(let member, let available, let threshold): "back \(member.map(\.rawValue) ?? "pool") \(available) >= \(threshold)"
            default: nil
            }
        }
    }

    @Test func eachThresholdCrossesOnItsOwnAbsoluteOrAsAPercentageOfTheAllowance() {
        var ledger = TestLedger()
        let plan = Plan(allowance: 1_000, period: PeriodRule(unit: .month))
        ledger.createTenant(acme, TenantSettings(plan: plan, lowBalanceThreshold: 100, lowBalanceThresholds: [.percent(50), .tokens(800)], movementEvents: false))
        #expect(crossings(ledger.run(.charge(acme, ReserveRequest(hold: "a", amount: .tokens(300))))) == ["low pool 700 < 800"])
        #expect(crossings(ledger.run(.charge(acme, ReserveRequest(hold: "b", amount: .tokens(550))))) == ["low pool 150 < 500"])
        #expect(crossings(ledger.run(.charge(acme, ReserveRequest(hold: "c", amount: .tokens(100))))) == ["low pool 50 < 100"])
        let balance = ledger.balance(acme)
        #expect(balance.belowThreshold)
        #expect(balance.thresholds == [ThresholdView(threshold: .percent(50), tokens: 500, below: true), ThresholdView(threshold: .tokens(800), tokens: 800, below: true)])
        // A grant back above all of them: each recovers, the first threshold first.
        #expect(crossings(ledger.run(.grant(acme, GrantRequest(kind: .promo, amount: 1_000)))) == ["back pool 1050 >= 100", "back pool 1050 >= 500", "back pool 1050 >= 800"])
        // A new list starts uncrossed and reports at once what is below.
        ledger.ok(.charge(acme, ReserveRequest(hold: "d", amount: .tokens(900))))
        let changed = ledger.run(.configureTenant(acme, TenantSettingsChange(lowBalanceThresholds: [.tokens(200)])))
        #expect(crossings(changed) == ["low pool 150 < 200"])
        // Without a plan a percentage is inactive.
        ledger.ok(.configureTenant(acme, TenantSettingsChange(plan: .remove, lowBalanceThresholds: [.percent(90)])))
        #expect(ledger.balance(acme).thresholds == [ThresholdView(threshold: .percent(90), tokens: 0, below: false)])
    }

    @Test func aMembersThresholdsArePercentagesOfItsBudget() {
        var ledger = TestLedger()
        ledger.createTenant(acme, TenantSettings(movementEvents: false))
        ledger.grant(acme, 10_000)
        ledger.ok(
            .setMember(
                acme, "ana",
                MemberSettings(budget: Budget(cap: 1_000, period: PeriodRule(unit: .month)), lowBalanceThresholds: [.percent(25), .tokens(600)])))
        #expect(crossings(ledger.run(.charge(acme, ReserveRequest(hold: "a", member: "ana", amount: .tokens(500))))) == ["low ana 500 < 600"])
        #expect(crossings(ledger.run(.charge(acme, ReserveRequest(hold: "b", member: "ana", amount: .tokens(300))))) == ["low ana 200 < 250"])
        #expect(ledger.balance(acme, member: "ana").thresholds.map(\.below) == [true, true])
        #expect(ledger.balance(acme).thresholds.isEmpty)
        // Setting the member again with other thresholds starts them uncrossed.
        let reset = ledger.run(.setMember(acme, "ana", MemberSettings(budget: Budget(cap: 1_000, period: PeriodRule(unit: .month)), lowBalanceThresholds: [.tokens(100)])))
        #expect(crossings(reset).isEmpty)
        #expect(ledger.balance(acme, member: "ana").thresholds == [ThresholdView(threshold: .tokens(100), tokens: 100, below: false)])
    }

    @Test func invalidThresholdsAreRefused() {
        var ledger = TestLedger()
        ledger.fail(.createTenant(acme, TenantSettings(lowBalanceThresholds: [.percent(0)])), .invalidArgument)
        ledger.fail(.createTenant(acme, TenantSettings(lowBalanceThresholds: [.percent(101)])), .invalidArgument)
        ledger.fail(.createTenant(acme, TenantSettings(lowBalanceThresholds: [.tokens(0)])), .invalidArgument)
        ledger.fail(.createTenant(acme, TenantSettings(lowBalanceThresholds: [.tokens(5), .tokens(5)])), .invalidArgument)
        let many = (1...UInt64(Limits.lowBalanceThresholdsMax + 1)).map { BalanceThreshold.tokens($0) }
        let refused = ledger.fail(.createTenant(acme, TenantSettings(lowBalanceThresholds: many)), .limitExceeded)
        #expect(refused?.details == .limit(name: "low_balance_thresholds_max", value: UInt64(Limits.lowBalanceThresholdsMax)))
        ledger.ok(.createTenant(acme, TenantSettings(lowBalanceThresholds: Array(many.dropLast()))))
        ledger.fail(.setMember(acme, "ana", MemberSettings(lowBalanceThresholds: [.percent(200)])), .invalidArgument)
        ledger.fail(.configureTenant(acme, TenantSettingsChange(lowBalanceThresholds: many)), .limitExceeded)
    }
}
