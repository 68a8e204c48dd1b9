import ArgumentParser
import Foundation
import LedgerCore
import LedgerWire

struct EstimateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "estimate", abstract: "Price items with the catalog and say whether the tenant (and member) can afford them.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Option(name: .long, help: "Check a member's budget too.") var member: String?
    @Option(name: .long, help: "FEATURE=QUANTITY; repeat for several.") var item: [String] = []

    func validate() throws {
        if item.isEmpty { throw ValidationError("give at least one --item FEATURE=QTY") }
    }

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let memberID: MemberID? = try member.map { try Parse.identifier($0, "--member") }
        let items = try item.map(Parse.item)
        try await global.run { client in
            let estimate = try await client.estimate(tenant: tenantID, member: memberID, items: items)
            let binding: String
            switch estimate.binding {
            case .memberBudget: binding = "member_budget"
            case .plan: binding = "plan"
            default: binding = "pool"
            }
            let table = Format.table(
                ["FEATURE", "QUANTITY", "COST"],
                estimate.items.map { [$0.feature, Format.tokens($0.quantity), Format.tokens($0.cost)] }, right: [1, 2])
            let summary = Format.fields(
                [
                    ("total", Format.tokens(estimate.total)), ("affordable", estimate.affordable ? "yes" : "no"),
                    ("limit", "\(binding), \(Format.tokens(estimate.headroom)) available"), ("catalog", estimate.catalogVersion),
                ] + Render.quotaRows(estimate.quotas, requested: true))
            return Output(
                human: table + "\n\n" + summary,
                json: .object([
                    ("tenant", .string(tenantID.rawValue)), ("total", .unsigned(estimate.total)), ("affordable", .bool(estimate.affordable)),
                    ("items_affordable", .unsigned(UInt64(estimate.itemsAffordable))), ("binding", .string(binding)),
                    ("headroom", .unsigned(estimate.headroom)), ("catalog_version", .string(estimate.catalogVersion)),
                    ("items", .array(estimate.items.map {
                        .object([("feature", .string($0.feature)), ("quantity", .unsigned($0.quantity)), ("cost", .unsigned($0.cost))])
                    })),
                    ("quotas", Render.quotaJSON(estimate.quotas, requested: true)),
                ]))
        }
    }
}

struct BalanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "balance", abstract: "Show what a tenant (and a member) can spend, the buckets and the meter.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Option(name: .long, help: "Show this member's budget too.") var member: String?

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let memberID: MemberID? = try member.map { try Parse.identifier($0, "--member") }
        try await global.run { client in
            let balance = try await client.balance(tenant: tenantID, member: memberID)
            return Output(human: Self.human(balance), json: Self.json(balance))
        }
    }

    static func human(_ balance: Tokenledger_V1_BalanceResult) -> String {
        var rows = [
            ("tenant", balance.tenant), ("available", Format.tokens(balance.available)),
            ("reserved", Format.tokens(balance.reserved)), ("spent", Format.tokens(balance.spent)),
        ]
        if balance.debt > 0 { rows.append(("debt", Format.tokens(balance.debt))) }
        if balance.hasMeter {
            rows.append(("meter", "\(Format.tokens(balance.meter.used))/\(Format.tokens(balance.meter.total)) used, resets \(Format.time(balance.meter.periodEndMs))"))
        }
        if balance.hasMemberBudget {
            let budget = balance.memberBudget
            rows.append((
                "member \(budget.member)",
                "\(Format.tokens(budget.spent))/\(Format.tokens(budget.cap)) spent this \(Render.name(budget.period)), "
                    + "\(Format.tokens(budget.remaining)) left, resets \(Format.time(budget.resetsAtMs))"))
        }
        rows += Render.quotaRows(balance.quotas)
        for state in balance.thresholds {
            rows.append(("threshold at", "\(Render.threshold(state.threshold)) = \(Format.tokens(state.tokens))" + (state.below ? " (below)" : "")))
        }
        if !balance.movementEvents { rows.append(("movement events", "off")) }
        if balance.lowBalanceThreshold > 0 {
            rows.append(("threshold", Format.tokens(balance.lowBalanceThreshold) + (balance.belowThreshold ? " (below)" : "")))
        }
        let buckets = Format.table(
            ["BUCKET", "KIND", "STATE", "REMAINING", "HELD", "EXPIRES", "SCOPE"],
            balance.buckets.map {
                [Render.grantID($0.grantID), Render.name($0.kind), Render.name($0.state), Format.tokens($0.remaining),
                 Format.tokens($0.held), Format.time($0.expiresAtMs), $0.scope.isEmpty ? "any" : $0.scope.joined(separator: ",")]
            }, right: [3, 4])
        return Format.fields(rows) + "\n\n" + buckets
    }

    static func json(_ balance: Tokenledger_V1_BalanceResult) -> JSON {
        var fields: [(String, JSON)] = [
            ("tenant", .string(balance.tenant)), ("available", .unsigned(balance.available)),
            ("reserved", .unsigned(balance.reserved)), ("spent", .unsigned(balance.spent)), ("debt", .unsigned(balance.debt)),
            ("expired", .unsigned(balance.expired)), ("voided", .unsigned(balance.voided)), ("granted", .unsigned(balance.granted)),
            ("open_holds", .unsigned(UInt64(balance.openHolds))), ("overdraft_limit", .unsigned(balance.overdraftLimit)),
            ("low_balance_threshold", .unsigned(balance.lowBalanceThreshold)), ("below_threshold", .bool(balance.belowThreshold)),
            ("time", JSON.time(balance.timeMs)),
            ("buckets", .array(balance.buckets.map {
                .object([
                    ("id", .string(Render.grantID($0.grantID))), ("kind", .string(Render.name($0.kind))),
                    ("state", .string(Render.name($0.state))), ("remaining", .unsigned($0.remaining)),
                    ("held", .unsigned($0.held)), ("expires_at", JSON.time($0.expiresAtMs)),
                    ("scope", .array($0.scope.map { .string($0) })),
                ])
            })),
            ("quotas", Render.quotaJSON(balance.quotas)),
            ("thresholds", .array(balance.thresholds.map {
                .object([("threshold", .string(Render.threshold($0.threshold))), ("tokens", .unsigned($0.tokens)), ("below", .bool($0.below))])
            })),
            ("movement_events", .bool(balance.movementEvents)),
            ("meter", balance.hasMeter
                ? .object([("used", .unsigned(balance.meter.used)), ("total", .unsigned(balance.meter.total)),
                           ("resets_at", JSON.time(balance.meter.periodEndMs))])
                : .null),
        ]
        if balance.hasMemberBudget {
            let budget = balance.memberBudget
            fields.append((
                "member_budget",
                .object([
                    ("member", .string(budget.member)), ("cap", .unsigned(budget.cap)), ("spent", .unsigned(budget.spent)),
                    ("held", .unsigned(budget.held)), ("remaining", .unsigned(budget.remaining)),
                    ("resets_at", JSON.time(budget.resetsAtMs)),
                ])))
        }
        return .object(fields)
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "List a tenant's ledger entries, oldest first (JSON lines with --json).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Option(name: .long, help: "Only this member's entries.") var member: String?
    @Option(name: .long, help: "Only entries moving tokens of this grant kind (plan, purchase, bonus, ...).") var source: String?
    @Option(name: .long, help: "Only entries at or after this time (ISO 8601).") var since: String?
    @Option(name: .long, help: "At most this many entries (default \(Limits.historyPageDefault), at most \(Limits.historyPageMax)).")
    var limit: Int = Limits.historyPageDefault
    @Option(name: .long, help: "Start after this sequence number (the previous page's last).") var after: UInt64 = 0

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        var filter = HistoryFilter(afterSequence: after, limit: limit)
        filter.member = try member.map { try Parse.identifier($0, "--member") }
        filter.source = try source.map { try Parse.grantKind($0, "--source") }
        filter.since = try since.map { try Parse.time($0, "--since") }
        guard (1...Limits.historyPageMax).contains(limit) else {
            throw ValidationError("--limit must be 1 to \(Limits.historyPageMax)")
        }
        try await global.run { client in
            let page = try await client.history(tenant: tenantID, filter: filter)
            let rows = page.entries.map {
                [String($0.sequence), Format.time($0.timeMs), Render.name($0.kind), Format.tokens($0.amount),
                 $0.member.isEmpty ? "-" : $0.member, $0.holdID.isEmpty ? "-" : $0.holdID, Render.grantID($0.grantID),
                 Render.name($0.source)]
            }
            var human = Format.table(["SEQ", "TIME", "KIND", "AMOUNT", "MEMBER", "HOLD", "GRANT", "SOURCE"], rows, right: [0, 3])
            if page.nextCursor != 0 { human += "\n(more: --after \(page.nextCursor))" }
            let lines: [JSON] = page.entries.map {
                .object([
                    ("sequence", .unsigned($0.sequence)), ("time", JSON.time($0.timeMs)), ("kind", .string(Render.name($0.kind))),
                    ("amount", .unsigned($0.amount)), ("member", $0.member.isEmpty ? .null : .string($0.member)),
                    ("hold", $0.holdID.isEmpty ? .null : .string($0.holdID)),
                    ("grant", $0.grantID == 0 ? .null : .string(Render.grantID($0.grantID))),
                    ("source", $0.source == .unspecified ? .null : .string(Render.name($0.source))),
                    ("request_id", $0.requestID.isEmpty ? .null : .string($0.requestID)),
                ])
            }
            return Output(human: human, jsonLines: lines)
        }
    }
}

struct CatalogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog", abstract: "Show the installed price catalog (or install one).",
        subcommands: [CatalogShowCommand.self, Install.self], defaultSubcommand: CatalogShowCommand.self)

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Install a price catalog from a JSON file (docs/semantics.md).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The catalog JSON file.") var file: String

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file) else {
                CommandFailure(.usage, "cannot read \(file)").report()
            }
            let catalog: PriceCatalog
            do {
                catalog = try PriceCatalog(json: Array(data))
            } catch {
                CommandFailure(.invalid, "\(file): \(error.message)", code: error.code.rawValue).report()
            }
            try await global.run { client in
                let result = try await client.installCatalog(catalog)
                return Output(human: "installed catalog \(result.version)", json: .object([("version", .string(result.version))]))
            }
        }
    }
}

struct CatalogShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show the installed price catalog.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.run { client in
            let catalog = try await client.catalog()
            let table = Format.table(
                ["FEATURE", "UNIT", "BASE", "RATE", "PER", "DESCRIPTION"],
                catalog.features.map { [$0.name, $0.unit, Format.tokens($0.baseCost), Format.tokens($0.rate), Format.tokens($0.per), $0.description_p] },
                right: [2, 3, 4])
            return Output(
                human: "catalog \(catalog.version)\n" + table,
                json: .object([
                    ("version", .string(catalog.version)),
                    ("features", .array(catalog.features.map {
                        .object([("name", .string($0.name)), ("unit", .string($0.unit)), ("base", .unsigned($0.baseCost)),
                                 ("rate", .unsigned($0.rate)), ("per", .unsigned($0.per)), ("description", .string($0.description_p))])
                    })),
                ]))
        }
    }
}

struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "health", abstract: "Check that the server answers, and as whom it sees you.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.run { client in
            let health = try await client.health()
            let role: String
            switch health.role {
            case .admin: role = "admin"
            case .service: role = "service"
            case .tenant: role = "tenant"
            default: role = "-"
            }
            return Output(
                human: Format.fields([
                    ("status", health.status), ("server", health.serverVersion), ("shards", String(health.shardCount)),
                    ("time", Format.time(health.timeMs)), ("principal", "\(health.principal) (\(role))"),
                ]),
                json: .object([
                    ("status", .string(health.status)), ("server_version", .string(health.serverVersion)),
                    ("shards", .unsigned(UInt64(health.shardCount))), ("time", JSON.time(health.timeMs)),
                    ("principal", .string(health.principal)), ("role", .string(role)),
                ]))
        }
    }
}

struct ShardsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shards", abstract: "Show which node serves each shard (cluster mode), as the node asked knows it.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.run { client in
            let map = try await client.shardMap()
            guard map.cluster else {
                return Output(
                    human: "embedded mode: this server serves all \(map.shardCount) shards itself",
                    json: .object([("cluster", .bool(false)), ("shard_count", .unsigned(UInt64(map.shardCount))), ("shards", .array([]))]))
            }
            return Output(
                human: Format.table(
                    ["SHARD", "NODE", "EPOCH", "HERE"],
                    map.shards.map { [String($0.shard), $0.address.isEmpty ? "-" : $0.address, String($0.epoch), $0.here ? "yes" : ""] },
                    right: [0, 2]),
                json: .object([
                    ("cluster", .bool(true)), ("shard_count", .unsigned(UInt64(map.shardCount))),
                    ("shards", .array(map.shards.map {
                        .object([("shard", .unsigned(UInt64($0.shard))), ("address", .string($0.address)),
                                 ("epoch", .unsigned($0.epoch)), ("here", .bool($0.here))])
                    })),
                ]))
        }
    }
}
