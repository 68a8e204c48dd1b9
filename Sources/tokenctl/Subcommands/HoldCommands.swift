import ArgumentParser
import LedgerCore
import LedgerWire

/// reserve, commit, release, refund: the life of a hold.
struct ReserveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reserve", abstract: "Hold tokens before the work: an amount, or items priced by the catalog.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Argument(help: "Tokens to hold (or give --item).") var amount: String?
    @Option(name: .long, help: "The hold id (yours: commit and release name it).") var id: String
    @Option(name: .long, help: "Charge a member's budget.") var member: String?
    @Option(name: .long, help: "Time to live: 90s, 15m, 2h, 1d (default 15m).") var ttl: String?
    @Option(name: .long, help: "FEATURE=QUANTITY, priced by the catalog; repeat for several.") var item: [String] = []
    @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

    func validate() throws {
        guard (amount == nil) != item.isEmpty else { throw ValidationError("give an AMOUNT or --item FEATURE=QTY, not both") }
    }

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let holdID: HoldID = try Parse.identifier(id, "--id")
        let memberID: MemberID? = try member.map { try Parse.identifier($0, "--member") }
        let ttl = try self.ttl.map { try Parse.duration($0, "--ttl") }
        let requestID = try Parse.requestID(self.requestID)
        let spend = try Parse.spend(amount, item)
        try await global.run { client in
            let hold = try await client.reserve(
                tenant: tenantID, hold: holdID, amount: spend, member: memberID, ttl: ttl, requestID: requestID).hold
            return .holdChange("reserved \(Format.tokens(hold.amount)) on \(tenantID)", tenant: tenantID, hold: hold, requestID: requestID)
        }
    }
}

struct ChargeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "charge",
        abstract: "Spend at once, with a reserve's checks and no hold left open: an amount, or items priced by the catalog.",
        discussion: "The id names the charge: `tokenctl refund TENANT ID AMOUNT` gives tokens back later.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Argument(help: "Tokens to spend (or give --item).") var amount: String?
    @Option(name: .long, help: "The charge's id (yours: refund names it).") var id: String
    @Option(name: .long, help: "Charge a member's budget.") var member: String?
    @Option(name: .long, help: "FEATURE=QUANTITY, priced by the catalog; repeat for several.") var item: [String] = []
    @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

    func validate() throws {
        guard (amount == nil) != item.isEmpty else { throw ValidationError("give an AMOUNT or --item FEATURE=QTY, not both") }
    }

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let holdID: HoldID = try Parse.identifier(id, "--id")
        let memberID: MemberID? = try member.map { try Parse.identifier($0, "--member") }
        let requestID = try Parse.requestID(self.requestID)
        let spend = try Parse.spend(amount, item)
        try await global.run { client in
            let result = try await client.charge(tenant: tenantID, hold: holdID, amount: spend, member: memberID, requestID: requestID)
            return .holdChange(
                "charged \(Format.tokens(result.charged)) to \(tenantID)", tenant: tenantID, [("charged", .unsigned(result.charged))],
                hold: result.hold, requestID: requestID)
        }
    }
}

struct ExtendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extend", abstract: "Give an open hold a new expiry, --ttl from now (1s to 7d).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Argument(help: "The hold id.") var hold: String
    @Option(name: .long, help: "The new time to live, from now: 90s, 15m, 2h, 1d.") var ttl: String
    @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let holdID: HoldID = try Parse.identifier(hold, "hold")
        let ttl = try Parse.duration(self.ttl, "--ttl")
        let requestID = try Parse.requestID(self.requestID)
        try await global.run { client in
            let result = try await client.extendHold(tenant: tenantID, hold: holdID, ttl: ttl, requestID: requestID)
            return .holdChange("extended \(holdID)", tenant: tenantID, hold: result.hold, requestID: requestID)
        }
    }
}

struct IncreaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "increase", abstract: "Hold more tokens on an open hold, with a reserve's checks.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Argument(help: "The hold id.") var hold: String
    @Argument(help: "Tokens to add.") var amount: String
    @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let holdID: HoldID = try Parse.identifier(hold, "hold")
        let tokens = try Parse.amount(amount, "AMOUNT")
        let requestID = try Parse.requestID(self.requestID)
        try await global.run { client in
            let result = try await client.increaseHold(tenant: tenantID, hold: holdID, tokens: tokens, requestID: requestID)
            return .holdChange(
                "increased \(holdID) by \(Format.tokens(result.increased))", tenant: tenantID, [("increased", .unsigned(result.increased))],
                hold: result.hold, requestID: requestID)
        }
    }
}

struct CommitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit", abstract: "Capture what the work used; a final commit (the default) releases the rest.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Argument(help: "The hold id.") var hold: String
    @Argument(help: "Tokens used.") var amount: String
    @Flag(name: .long, help: "Capture and keep the hold open for more.") var partial = false
    @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let holdID: HoldID = try Parse.identifier(hold, "hold")
        let tokens = try Parse.amount(amount, "AMOUNT")
        let requestID = try Parse.requestID(self.requestID)
        try await global.run { client in
            let result = try await client.commit(tenant: tenantID, hold: holdID, amount: tokens, final: !partial, requestID: requestID)
            return .holdChange(
                "committed \(Format.tokens(result.captured)), released \(Format.tokens(result.released))", tenant: tenantID,
                [("captured", .unsigned(result.captured)), ("released", .unsigned(result.released))], hold: result.hold,
                requestID: requestID)
        }
    }
}

struct ReleaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "release", abstract: "Give a hold's tokens back unused.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Argument(help: "The hold id.") var hold: String
    @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let holdID: HoldID = try Parse.identifier(hold, "hold")
        let requestID = try Parse.requestID(self.requestID)
        try await global.run { client in
            let result = try await client.release(tenant: tenantID, hold: holdID, requestID: requestID)
            return .holdChange(
                "released \(Format.tokens(result.released))", tenant: tenantID, [("released", .unsigned(result.released))],
                hold: result.hold, requestID: requestID)
        }
    }
}

struct RefundCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "refund", abstract: "Give back captured tokens of a hold.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Argument(help: "The hold id.") var hold: String
    @Argument(help: "Tokens to give back.") var amount: String
    @Option(name: .customLong("request-id"), help: "Idempotency key (default: a fresh UUID).") var requestID: String?

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let holdID: HoldID = try Parse.identifier(hold, "hold")
        let tokens = try Parse.amount(amount, "AMOUNT")
        let requestID = try Parse.requestID(self.requestID)
        try await global.run { client in
            let result = try await client.refund(tenant: tenantID, hold: holdID, amount: tokens, requestID: requestID)
            var human = "refunded \(Format.tokens(result.refunded))"
            if result.newGrantID != 0 { human += " as new grant \(Render.grantID(result.newGrantID))" }
            return .holdChange(
                human, tenant: tenantID,
                [
                    ("refunded", .unsigned(result.refunded)),
                    ("new_grant", result.newGrantID == 0 ? .null : .string(Render.grantID(result.newGrantID))),
                ], hold: result.hold, requestID: requestID)
        }
    }
}
