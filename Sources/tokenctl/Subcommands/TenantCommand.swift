import ArgumentParser
import LedgerCore

struct TenantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant", abstract: "Manage tenants.", subcommands: [Create.self, Configure.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant, optionally with a plan.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The tenant id.") var tenant: String
        @Option(name: .customLong("plan-allowance"), help: "Tokens issued every plan period.") var planAllowance: String?
        @Option(name: .customLong("plan-period"), help: "day, week or month (default month).") var planPeriod: String?
        @Option(name: .long, help: "FEATURE=LIMIT: units of a catalog feature the plan grants per period; repeat for several.")
        var quota: [String] = []
        @Option(name: .customLong("overdraft-limit"), help: "How far a final commit may go below zero.") var overdraftLimit: String?
        @Option(name: .customLong("threshold"), help: "Low-balance threshold of the pool.") var threshold: String?
        @Option(name: .customLong("threshold-at"), help: "A further low-balance threshold: TOKENS or PERCENT% of the plan allowance (repeat for several).")
        var thresholdAt: [String] = []
        @Option(name: .customLong("movement-events"), help: "on (default) or off: events for grants, purchases, captures, charges, refunds, voids.")
        var movementEvents: String?
        @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

        func validate() throws {
            if planPeriod != nil, planAllowance == nil { throw ValidationError("--plan-period needs --plan-allowance") }
            if !quota.isEmpty, planAllowance == nil { throw ValidationError("--quota needs --plan-allowance (quotas are part of the plan)") }
        }

        func run() async throws {
            let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
            var settings = TenantSettings()
            if let planAllowance {
                settings.plan = Plan(
                    allowance: try Parse.amount(planAllowance, "--plan-allowance"),
                    period: PeriodRule(unit: try Parse.period(planPeriod ?? "month", "--plan-period")),
                    quotas: try quota.map(Parse.quota))
            }
            if let overdraftLimit { settings.overdraftLimit = try Parse.amount(overdraftLimit, "--overdraft-limit") }
            if let threshold { settings.lowBalanceThreshold = try Parse.amount(threshold, "--threshold") }
            settings.lowBalanceThresholds = try thresholdAt.map(Parse.threshold)
            if let movementEvents { settings.movementEvents = try Parse.onOff(movementEvents, "--movement-events") }
            let requestID = try Parse.requestID(self.requestID)
            try await global.run { client in
                let result = try await client.createTenant(tenantID, settings: settings, requestID: requestID)
                var rows = [("tenant", result.tenant)]
                if let plan = settings.plan {
                    rows.append(("plan", "\(Format.tokens(plan.allowance)) tokens per \(plan.period.unit.rawValue)"))
                    for quota in plan.quotas { rows.append(("quota", "\(quota.feature) \(Format.tokens(quota.limit)) per \(plan.period.unit.rawValue)")) }
                }
                return Output(
                    human: "created tenant \(result.tenant)\n" + Format.fields(rows),
                    json: .object([
                        ("tenant", .string(result.tenant)),
                        ("plan_allowance", settings.plan.map { .unsigned($0.allowance) } ?? .null),
                        ("plan_period", settings.plan.map { .string($0.period.unit.rawValue) } ?? .null),
                        ("quotas", Render.quotasJSON(settings.plan?.quotas ?? [])),
                        ("thresholds", .array(settings.lowBalanceThresholds.map { .string(Render.threshold($0)) })),
                        ("movement_events", .bool(settings.movementEvents)),
                        ("request_id", .string(requestID.rawValue)),
                    ]))
            }
        }
    }

    struct Configure: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a tenant's plan, overdraft or threshold; what is not given stays.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The tenant id.") var tenant: String
        @Option(name: .customLong("plan-allowance"), help: "Set the plan: tokens per period.") var planAllowance: String?
        @Option(name: .customLong("plan-period"), help: "day, week or month (default month).") var planPeriod: String?
        @Option(name: .long, help: "FEATURE=LIMIT: a quota of the plan set (repeat for several; the plan set has only these).")
        var quota: [String] = []
        @Flag(name: .customLong("remove-plan"), help: "Remove the plan.") var removePlan = false
        @Option(name: .customLong("overdraft-limit"), help: "How far a final commit may go below zero.") var overdraftLimit: String?
        @Option(name: .customLong("threshold"), help: "Low-balance threshold of the pool.") var threshold: String?
        @Option(name: .customLong("threshold-at"), help: "The further thresholds, replacing them: TOKENS or PERCENT% (repeat for several).")
        var thresholdAt: [String] = []
        @Flag(name: .customLong("clear-thresholds"), help: "Remove the further thresholds.") var clearThresholds = false
        @Option(name: .customLong("movement-events"), help: "on or off: events for grants, purchases, captures, charges, refunds, voids.")
        var movementEvents: String?
        @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

        func validate() throws {
            if clearThresholds, !thresholdAt.isEmpty { throw ValidationError("--clear-thresholds and --threshold-at exclude each other") }
            if removePlan, planAllowance != nil { throw ValidationError("--remove-plan and --plan-allowance exclude each other") }
            if planPeriod != nil, planAllowance == nil { throw ValidationError("--plan-period needs --plan-allowance") }
            if !quota.isEmpty, planAllowance == nil { throw ValidationError("--quota needs --plan-allowance (quotas are part of the plan)") }
            if !removePlan, planAllowance == nil, overdraftLimit == nil, threshold == nil, thresholdAt.isEmpty, !clearThresholds,
                movementEvents == nil
            {
                throw ValidationError(
                    "nothing to change: give --plan-allowance, --remove-plan, --overdraft-limit, --threshold, --threshold-at, --clear-thresholds or --movement-events")
            }
        }

        func run() async throws {
            let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
            var change = TenantSettingsChange()
            if removePlan { change.plan = .remove }
            if let planAllowance {
                change.plan = .set(
                    Plan(
                        allowance: try Parse.amount(planAllowance, "--plan-allowance"),
                        period: PeriodRule(unit: try Parse.period(planPeriod ?? "month", "--plan-period")),
                        quotas: try quota.map(Parse.quota)))
            }
            if let overdraftLimit { change.overdraftLimit = try Parse.amount(overdraftLimit, "--overdraft-limit") }
            if let threshold { change.lowBalanceThreshold = try Parse.amount(threshold, "--threshold") }
            if clearThresholds { change.lowBalanceThresholds = [] }
            if !thresholdAt.isEmpty { change.lowBalanceThresholds = try thresholdAt.map(Parse.threshold) }
            if let movementEvents { change.movementEvents = try Parse.onOff(movementEvents, "--movement-events") }
            let requestID = try Parse.requestID(self.requestID)
            try await global.run { client in
                let result = try await client.configureTenant(tenantID, change: change, requestID: requestID)
                return Output(
                    human: "configured tenant \(result.tenant)",
                    json: .object([("tenant", .string(result.tenant)), ("request_id", .string(requestID.rawValue))]))
            }
        }
    }
}
