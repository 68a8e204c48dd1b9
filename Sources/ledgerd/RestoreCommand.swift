import ArgumentParser
import Foundation
import LedgerCore
import LedgerEngine
import LedgerStore

/// `ledgerd restore`: a backup (`tokenctl admin backup`), plus the archived log (`--archive-dir`),
/// replayed into a new data directory up to a time or a log position. ledgerd then serves it.
struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledgerd restore",
        abstract: "Restore a backup, with the archived log after it, into a new data directory, to a point in time.",
        discussion: """
            Every shard is replayed from the backup's snapshot through its log, then through the archived \
            segments, until the first record after --to-time (or --to-lsn), a gap, or the end. A catalog \
            install cut between two shards is completed. The result is written as one snapshot per shard; \
            start ledgerd on it. Exit 0 restored; 64 bad arguments (a missing backup, an existing target, a cut before the backup); 71 the backup or archive cannot be read.
            """)

    @Option(name: .customLong("from"), help: "The backup directory (tokenctl admin backup).") var backup: String
    @Option(name: .customLong("archive-dir"), help: "The archive of finished WAL segments (ledgerd --archive-dir).")
    var archive: String?
    @Option(name: .customLong("data-dir"), help: "The new data directory to write (must not exist).") var dataDirectory: String
    @Option(name: .customLong("to-time"), help: "Restore through the last change at or before this time (ISO 8601, e.g. 2026-12-06T11:00:00Z).")
    var toTime: String?
    @Option(name: .customLong("to-lsn"), help: "Restore every shard through this log position.") var toLSN: UInt64?

    func run() throws {
        var until: LedgerTime? = nil
        if let toTime {
            guard let time = LedgerTime(iso8601: toTime) else { throw ValidationError("--to-time: not an ISO 8601 time: \(toTime)") }
            until = time
        }
        let report: Restore.Report
        do {
            report = try Restore.run(backup: backup, archive: archive, destination: dataDirectory, untilLSN: toLSN, untilTime: until)
        } catch let error as LedgerError {
            throw ValidationError(error.message)
        } catch {
            FileHandle.standardError.write(Data("ledgerd restore: \(error)\n".utf8))
            throw ExitCode(StorageExitCode.corruption)
        }
        var lines = ["restored \(backup) into \(dataDirectory): \(report.tenants) tenants"]
        for (index, shard) in report.shards.enumerated() {
            lines.append(
                "  shard \(index): through LSN \(shard.throughLSN)"
                    + (shard.throughTime.map { " (\($0.iso8601))" } ?? "") + ", log available through LSN \(shard.availableLSN)")
        }
        if !report.catalogCompleted.isEmpty {
            lines.append("  catalog install completed on shards \(report.catalogCompleted.map(String.init).joined(separator: ", "))")
        }
        print(lines.joined(separator: "\n"))
    }
}
