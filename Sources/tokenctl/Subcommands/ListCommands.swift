import ArgumentParser
import LedgerCore
import LedgerWire

/// holds, grants, tenants: listings, a page at a time (JSON lines with --json).
struct HoldsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "holds", abstract: "List a tenant's open holds, in id order (JSON lines with --json).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Option(name: .long, help: "Only this member's holds.") var member: String?
    @Option(name: .long, help: "Start after this hold id (the previous page's last).") var after: String?
    @Option(name: .long, help: "Holds per page, 1 to 1,000 (default 100).") var limit: Int = Limits.listPageDefault

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let memberID: MemberID? = try member.map { try Parse.identifier($0, "--member") }
        let afterID: HoldID? = try after.map { try Parse.identifier($0, "--after") }
        try await global.run { client in
            let page = try await client.listHolds(tenant: tenantID, member: memberID, after: afterID, limit: limit)
            let rows = page.holds.map {
                [$0.id, $0.member.isEmpty ? "-" : $0.member, Format.tokens($0.amount), Format.tokens($0.held),
                 Format.tokens($0.captured), Format.time($0.expiresAtMs)]
            }
            var human = Format.table(["HOLD", "MEMBER", "AMOUNT", "HELD", "CAPTURED", "EXPIRES"], rows, right: [2, 3, 4])
            if !page.nextAfterHoldID.isEmpty { human += "\n(more: --after \(page.nextAfterHoldID))" }
            return Output(human: human, jsonLines: page.holds.map(Render.holdJSON))
        }
    }
}

struct GrantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grants", abstract: "List a tenant's grants, oldest first (JSON lines with --json).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Option(name: .long, help: "Only grants in this state: pending, active, expired or voided.") var state: String?
    @Option(name: .long, help: "Start after this grant (the previous page's last, g12 or 12).") var after: String?
    @Option(name: .long, help: "Grants per page, 1 to 1,000 (default 100).") var limit: Int = Limits.listPageDefault

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let grantState = try state.map { text in
            guard let state = GrantState(rawValue: text) else {
                throw ValidationError("--state must be pending, active, expired or voided, not \(text)")
            }
            return state
        }
        let afterID = try after.map { try Parse.grantID($0) } ?? GrantID(0)
        try await global.run { client in
            let page = try await client.listGrants(tenant: tenantID, state: grantState, after: afterID, limit: limit)
            var human = Render.grantTable(page.grants)
            if page.nextAfterGrantID != 0 { human += "\n(more: --after \(Render.grantID(page.nextAfterGrantID)))" }
            return Output(human: human, jsonLines: page.grants.map(Render.grantJSON))
        }
    }
}

struct TenantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants", abstract: "List every tenant, in id order (admin principals only; JSON lines with --json).")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "Start after this tenant id (the previous page's last).") var after: String?
    @Option(name: .long, help: "Tenants per page, 1 to 1,000 (default 100).") var limit: Int = Limits.listPageDefault

    func run() async throws {
        let afterID: TenantID? = try after.map { try Parse.identifier($0, "--after") }
        try await global.run { client in
            let page = try await client.listTenants(after: afterID, limit: limit)
            var human = page.tenants.joined(separator: "\n")
            if !page.nextAfterTenant.isEmpty { human += "\n(more: --after \(page.nextAfterTenant))" }
            return Output(human: human, jsonLines: page.tenants.map { .object([("tenant", .string($0))]) })
        }
    }
}
