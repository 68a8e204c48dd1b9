import ArgumentParser
import LedgerClient

/// Operations for admins: an online backup, a snapshot, the conservation audit.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "Operations: take a backup, force a snapshot, run the conservation audit.",
        subcommands: [AdminBackupCommand.self, AdminSnapshotCommand.self, AdminAuditCommand.self])
}

struct AdminBackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Take a consistent online backup into DIR on the server's machine, verified before it answers.",
        discussion: "DIR must not exist yet. Restore it with `ledgerd restore` (docs/operations.md).")
    @Argument(help: "An absolute path on the server's machine that does not exist yet.") var directory: String
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.run { client in
            let result = try await client.adminBackup(directory: directory)
            return Output(
                human: Format.fields(
                    [("backup", result.directory), ("tenants", Format.tokens(result.tenants)), ("bytes", Format.tokens(result.bytes)),
                     ("files", "\(result.filesLinked) linked, \(result.filesCopied) copied")]
                        + result.shards.map { ("shard \($0.shard)", "snapshot at LSN \($0.snapshotLsn), log through LSN \($0.lastLsn)") }),
                json: .object([
                    ("directory", .string(result.directory)), ("tenants", .unsigned(result.tenants)), ("bytes", .unsigned(result.bytes)),
                    ("files_linked", .unsigned(UInt64(result.filesLinked))), ("files_copied", .unsigned(UInt64(result.filesCopied))),
                    ("shards", .array(result.shards.map { shard in
                        .object([("shard", .unsigned(UInt64(shard.shard))), ("snapshot_lsn", .unsigned(shard.snapshotLsn)),
                                 ("last_lsn", .unsigned(shard.lastLsn))])
                    })),
                ]))
        }
    }
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
