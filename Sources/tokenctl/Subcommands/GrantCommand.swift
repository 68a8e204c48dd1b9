import ArgumentParser
import LedgerCore

struct GrantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "grant", abstract: "Credit tokens to a tenant.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Argument(help: "Tokens to credit.") var amount: String
    @Option(name: .long, help: "purchase, promo, referral or adjustment.") var kind: String
    @Option(name: .customLong("expires-at"), help: "When unused tokens expire (ISO 8601).") var expiresAt: String?
    @Option(name: .customLong("effective-at"), help: "When the grant becomes spendable (ISO 8601; default now).") var effectiveAt: String?
    @Option(name: .long, help: "Burn-down priority, lower first (default 100).") var priority: UInt32?
    @Option(name: .long, help: "A note kept with the grant.") var note: String = ""
    @Option(name: .long, help: "A catalog feature the grant may pay for (repeat for several); none: any spending.")
    var scope: [String] = []
    @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        var request = GrantRequest(
            kind: try Parse.grantKind(kind, "--kind", allowed: [.purchase, .promo, .referral, .adjustment]),
            amount: try Parse.amount(amount, "AMOUNT"), priority: priority, note: note, scope: scope)
        if let expiresAt { request.expiresAt = try Parse.time(expiresAt, "--expires-at") }
        if let effectiveAt { request.effectiveAt = try Parse.time(effectiveAt, "--effective-at") }
        let requestID = try Parse.requestID(self.requestID)
        try await global.run { client in
            let grant = try await client.grant(tenant: tenantID, request, requestID: requestID).grant
            return Output(
                human: "granted \(Format.tokens(grant.amount)) to \(tenantID)\n" + Render.grantTable([grant]),
                json: .object([("tenant", .string(tenantID.rawValue)), ("grant", Render.grantJSON(grant)), ("request_id", .string(requestID.rawValue))]))
        }
    }
}
