import LedgerCore
import Testing

@Suite struct PurchaseTests {
    let acme: TenantID = "acme"

    @Test(arguments: [
        (UInt64(500), Tokens(500), Tokens(0)),  // the minimum, 5.00
        (4_999, 4_999, 0),
        (5_000, 5_000, 250),  // +5% from 50.00
        (9_999, 9_999, 499),  // bonus rounds down
        (10_000, 10_000, 750),  // +7.5% from 100.00: 107.5 tokens per 1.00
        (19_999, 19_999, 1_499),
        (20_000, 20_000, 2_000),  // +10% from 200.00
        (1_000_000, 1_000_000, 100_000),
    ])
    func defaultRulesConvertMoneyWithBonusTiers(money: UInt64, tokens: Tokens, bonus: Tokens) {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        guard case .purchased(let purchase, let bonusGrant) = ledger.ok(.purchase(acme, moneyMinor: money, note: "order-1")) else { return }
        #expect(purchase.kind == .purchase)
        #expect(purchase.amount == tokens)
        #expect(purchase.moneyMinor == money)
        #expect(purchase.expiresAt == nil)
        #expect(bonusGrant?.amount ?? 0 == bonus)
        #expect(bonusGrant.map { $0.kind == .bonus && $0.linkedGrant == purchase.id } ?? true)
        #expect(ledger.balance(acme).available == tokens + bonus)
    }

    @Test func belowTheMinimumIsRefused() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        ledger.fail(.purchase(acme, moneyMinor: 499, note: ""), .invalidArgument)
        ledger.fail(.purchase(acme, moneyMinor: 0, note: ""), .invalidArgument)
        ledger.fail(.purchase(acme, moneyMinor: Limits.purchaseMoneyMax + 1, note: ""), .limitExceeded)
        #expect(ledger.balance(acme).granted == 0)
    }

    @Test func customRulesApply() {
        var ledger = TestLedger()
        // 20 tokens per 1 CHF, minimum 1.00, no bonus.
        let rules = PurchaseRules(tokensPerRate: 20, minorUnitsPerRate: 100, minimumMinor: 100, bonusTiers: [])
        ledger.createTenant(acme, TenantSettings(purchaseRules: rules))
        guard case .purchased(let purchase, let bonus) = ledger.ok(.purchase(acme, moneyMinor: 5_000, note: "")) else { return }
        #expect(purchase.amount == 1_000)
        #expect(bonus == nil)
        let badRules = PurchaseRules(tokensPerRate: 20, minorUnitsPerRate: 100, minimumMinor: 100, bonusTiers: [
            BonusTier(fromMinor: 100, basisPoints: 10), BonusTier(fromMinor: 100, basisPoints: 20),
        ])
        ledger.fail(.configureTenant(acme, TenantSettingsChange(purchaseRules: badRules)), .invalidArgument)
        ledger.fail(.createTenant("other", TenantSettings(purchaseRules: PurchaseRules(tokensPerRate: 0, minorUnitsPerRate: 100, minimumMinor: 1, bonusTiers: []))), .invalidArgument)
    }

    @Test func refundingAnUnusedPurchaseClawsBackTheMatchingBonusShare() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        guard case .purchased(let purchase, let bonus?) = ledger.ok(.purchase(acme, moneyMinor: 10_000, note: "")) else { return }
        #expect(purchase.amount == 10_000)
        #expect(bonus.amount == 750)
        ledger.reserve(acme, "job", 4_000)
        ledger.ok(.commit(acme, "job", amount: 4_000, final: true))
        // The purchase burns before its bonus (same priority, no expiry, created first).
        #expect(ledger.tenant(acme).grant(purchase.id)!.consumed == 4_000)

        guard case .purchaseRefunded(let refunded, let bonusAfter, let voided, let bonusVoided, let money) =
            ledger.ok(.refundPurchase(acme, purchase.id))
        else { return }
        #expect(voided == 6_000)
        #expect(bonusVoided == 450)  // 750 x 6,000 / 10,000
        #expect(money == 6_000)  // 60.00 of the 100.00 paid
        #expect(refunded.state == .voided)
        #expect(bonusAfter?.remaining == 300)
        #expect(ledger.balance(acme).available == 300)
        ledger.fail(.refundPurchase(acme, purchase.id), .invalidArgument)
        ledger.fail(.refundPurchase(acme, bonus.id), .invalidArgument)
    }

    @Test func purchaseRefundLeavesHeldTokensCapturable() {
        var ledger = TestLedger()
        ledger.createTenant(acme)
        guard case .purchased(let purchase, _) = ledger.ok(.purchase(acme, moneyMinor: 1_000, note: "")) else { return }
        ledger.reserve(acme, "job", 400)
        guard case .purchaseRefunded(_, _, let voided, _, let money) = ledger.ok(.refundPurchase(acme, purchase.id)) else { return }
        #expect(voided == 600)
        #expect(money == 600)
        ledger.ok(.commit(acme, "job", amount: 100, final: true))
        let grant = ledger.tenant(acme).grant(purchase.id)!
        #expect(grant.consumed == 100)
        #expect(grant.voided == 900)
    }
}
