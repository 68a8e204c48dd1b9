import ArgumentParser
import LedgerCore

struct MemberCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member", abstract: "Manage a tenant's members.", subcommands: [Set.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a member's budget and threshold (replacing what was set; creates the member if new).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The tenant id.") var tenant: String
        @Argument(help: "The member id.") var member: String
        @Option(name: .long, help: "Most tokens the member may spend per budget period.") var budget: String?
        @Option(name: .customLong("budget-period"), help: "day, week or month (default month).") var budgetPeriod: String?
        @Option(name: .long, help: "The member's low-balance threshold.") var threshold: String?
        @Option(name: .customLong("threshold-at"), help: "A further threshold: TOKENS or PERCENT% of the budget cap (repeat for several).")
        var thresholdAt: [String] = []
        @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

        func validate() throws {
            if budgetPeriod != nil, budget == nil { throw ValidationError("--budget-period needs --budget") }
        }

        func run() async throws {
            let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
            let memberID: MemberID = try Parse.identifier(member, "member")
            var settings = MemberSettings()
            if let budget {
                settings.budget = Budget(
                    cap: try Parse.amount(budget, "--budget"),
                    period: PeriodRule(unit: try Parse.period(budgetPeriod ?? "month", "--budget-period")))
            }
            if let threshold { settings.lowBalanceThreshold = try Parse.amount(threshold, "--threshold") }
            settings.lowBalanceThresholds = try thresholdAt.map(Parse.threshold)
            let requestID = try Parse.requestID(self.requestID)
            try await global.run { client in
                let member = try await client.setMember(tenant: tenantID, member: memberID, settings: settings, requestID: requestID).member
                var rows = [("tenant", tenantID.rawValue), ("member", member.id)]
                if member.hasBudget {
                    rows.append(("budget", "\(Format.tokens(member.budget.cap)) per \(Render.name(member.budget.period.unit))"))
                    rows.append(("period ends", Format.time(member.periodEndMs)))
                }
                if case .lowBalanceThreshold(let value)? = member.threshold { rows.append(("threshold", Format.tokens(value))) }
                for threshold in member.lowBalanceThresholds { rows.append(("threshold at", Render.threshold(threshold))) }
                return Output(
                    human: Format.fields(rows),
                    json: .object([
                        ("tenant", .string(tenantID.rawValue)), ("member", .string(member.id)),
                        ("budget", member.hasBudget
                            ? .object([("cap", .unsigned(member.budget.cap)), ("period", .string(Render.name(member.budget.period.unit)))])
                            : .null),
                        ("threshold", member.threshold.map { if case .lowBalanceThreshold(let value) = $0 { .unsigned(value) } else { .null } } ?? .null),
                        ("thresholds", .array(member.lowBalanceThresholds.map { .string(Render.threshold($0)) })),
                        ("request_id", .string(requestID.rawValue)),
                    ]))
            }
        }
    }
}
