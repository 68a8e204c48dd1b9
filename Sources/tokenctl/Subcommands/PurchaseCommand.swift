import ArgumentParser
import LedgerCore

struct PurchaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purchase", abstract: "Record a purchase: money converted to tokens, with the bonus tier that applies.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Option(name: .long, help: "Money paid, in minor units (cents).") var money: String
    @Option(name: .long, help: "A note kept with the grants (an order id).") var note: String = ""
    @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let moneyMinor = try Parse.amount(money, "--money")
        let requestID = try Parse.requestID(self.requestID)
        try await global.run { client in
            let result = try await client.purchase(tenant: tenantID, moneyMinor: moneyMinor, note: note, requestID: requestID)
            var grants = [result.purchase]
            if result.hasBonus { grants.append(result.bonus) }
            let total = grants.map(\.amount).reduce(0, +)
            return Output(
                human: "purchased \(Format.tokens(total)) tokens for \(Format.tokens(moneyMinor)) minor units\n" + Render.grantTable(grants),
                json: .object([
                    ("tenant", .string(tenantID.rawValue)), ("money_minor", .unsigned(moneyMinor)), ("tokens", .unsigned(total)),
                    ("purchase", Render.grantJSON(result.purchase)), ("bonus", result.hasBonus ? Render.grantJSON(result.bonus) : .null),
                    ("request_id", .string(requestID.rawValue)),
                ]))
        }
    }
}
