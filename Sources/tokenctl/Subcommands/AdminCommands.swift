import ArgumentParser
import LedgerClient

/// Operations for admins: force a snapshot (before a backup), run the conservation audit.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "Operations: force a snapshot, run the conservation audit.",
        subcommands: [AdminSnapshotCommand.self, AdminAuditCommand.self])
}

struct AdminSnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot", abstract: "Snapshot every shard now; prints the log position each snapshot covers.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.run { client in
            let result = try await client.adminSnapshot()
            let positions = result.snapshotLsns
            return Output(
                human: Format.fields(positions.enumerated().map { ("shard \($0.offset)", "snapshot at LSN \($0.element)") }),
                json: .object([("snapshot_lsns", .array(positions.map { .unsigned($0) }))]))
        }
    }
}

struct AdminAuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Run the conservation audit on every shard; exit 70 if it finds a violation.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var violated = false
        try await global.run { client in
            let result = try await client.adminAudit()
            violated = !result.violations.isEmpty
            let verdict = violated ? "\(result.violations.count) violations" : "ok: every invariant holds"
            return Output(
                human: Format.fields([
                    ("audit", verdict), ("shards", String(result.shards)), ("tenants", Format.tokens(result.tenants)),
                ]) + result.violations.map { "\n  \($0)" }.joined(),
                json: .object([
                    ("ok", .bool(!violated)), ("shards", .unsigned(UInt64(result.shards))), ("tenants", .unsigned(result.tenants)),
                    ("violations", .array(result.violations.map { .string($0) })),
                ]))
        }
        // The ledger's own invariants do not hold: EX_SOFTWARE.
        if violated { throw ExitCode(70) }
    }
}
