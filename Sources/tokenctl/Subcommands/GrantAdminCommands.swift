import ArgumentParser
import LedgerCore

/// Taking tokens back: voiding a grant, refunding an unused purchase.
struct VoidCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "void", abstract: "Void the unused, unheld tokens of a grant.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Argument(help: "The grant id (g3 or 3).") var grant: String
    @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let grantID = try Parse.grantID(grant)
        let requestID = try Parse.requestID(self.requestID)
        try await global.run { client in
            let result = try await client.voidGrant(tenant: tenantID, grant: grantID, requestID: requestID)
            return Output(
                human: "voided \(Format.tokens(result.voided)) of \(Render.grantID(result.grant.id))\n" + Render.grantTable([result.grant]),
                json: .object([
                    ("tenant", .string(tenantID.rawValue)), ("voided", .unsigned(result.voided)),
                    ("grant", Render.grantJSON(result.grant)), ("request_id", .string(requestID.rawValue)),
                ]))
        }
    }
}

struct RefundPurchaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refund-purchase", abstract: "Refund an unused purchase: void its remainder and the matching bonus share.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Argument(help: "The purchase grant id (g2 or 2).") var grant: String
    @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let grantID = try Parse.grantID(grant)
        let requestID = try Parse.requestID(self.requestID)
        try await global.run { client in
            let result = try await client.refundPurchase(tenant: tenantID, grant: grantID, requestID: requestID)
            var grants = [result.purchase]
            if result.hasBonus { grants.append(result.bonus) }
            return Output(
                human: "refund \(Format.tokens(result.moneyRefundMinor)) minor units; voided \(Format.tokens(result.voided)) + "
                    + "\(Format.tokens(result.bonusVoided)) bonus\n" + Render.grantTable(grants),
                json: .object([
                    ("tenant", .string(tenantID.rawValue)), ("money_refund_minor", .unsigned(result.moneyRefundMinor)),
                    ("voided", .unsigned(result.voided)), ("bonus_voided", .unsigned(result.bonusVoided)),
                    ("purchase", Render.grantJSON(result.purchase)), ("bonus", result.hasBonus ? Render.grantJSON(result.bonus) : .null),
                    ("request_id", .string(requestID.rawValue)),
                ]))
        }
    }
}
