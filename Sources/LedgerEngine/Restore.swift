import LedgerCore
import LedgerStore

/// Point-in-time restore: a backup (`LedgerEngine.backup`), plus the archived log segments that
/// came after it (`--archive-dir`), replayed up to a log position or a time into a new data
/// directory (docs/operations.md, "Backup and restore").
public enum Restore {
    public struct ShardReport: Sendable {
        /// The log position and ledger time the shard was restored through.
        public var throughLSN: UInt64
        public var throughTime: LedgerTime?
        /// The last record the backup and the archive held (restoring further is not possible).
        public var availableLSN: UInt64
    }

    public struct Report: Sendable {
        public var shards: [ShardReport]
        public var tenants: Int
        /// Shards given the catalog of an install that the cut fell in the middle of.
        public var catalogCompleted: [Int]
    }

    /// Restores `backup` (plus `archive`) into `destination`, a new directory, through `untilLSN`
    /// (every shard stops after that position) and `untilTime` (every shard stops after the last
    /// record stamped at or before it); with neither, through everything there is. Each shard's
    /// state is written as a snapshot at the position it reached; ledgerd opens it as usual.
    public static func run(
        backup: String, archive: String?, destination: String, untilLSN: UInt64? = nil, untilTime: LedgerTime? = nil
    ) throws -> Report {
        guard let shardCount = DataDirectory.recordedShardCount(path: backup) else {
            throw LedgerError(.invalidArgument, "\(backup) holds no readable manifest: not a backup or a data directory")
        }
        guard !FileSystem.exists(destination) else {
            throw LedgerError(.alreadyExists, "\(destination) exists already; a restore goes to a new directory")
        }
        var states: [LedgerState] = []
        var reports: [ShardReport] = []
        var installs: [(time: LedgerTime, catalog: PriceCatalog)?] = []
        for index in 0..<shardCount {
            let (state, report, install) = try restoreShard(
                backup: DataDirectory.shardPath(backup, index), archive: archive.map { DataDirectory.shardPath($0, index) },
                untilLSN: untilLSN, untilTime: untilTime)
            states.append(state)
            reports.append(report)
            installs.append(install)
        }
        // A catalog install is logged in every shard, one after the other (with an intent file
        // that makes it one decision): a cut between two shards finishes it, with the newest install
        // any shard reached.
        var completed: [Int] = []
        if Set(states.map(\.catalog)).count > 1, let newest = installs.compactMap({ $0 }).max(by: { $0.time < $1.time }) {
            for index in states.indices where states[index].catalog != newest.catalog {
                _ = states[index].apply(LedgerCommand(time: newest.time, requestID: nil, body: .installCatalog(newest.catalog)))
                completed.append(index)
            }
        }
        var tenants = 0
        for (index, state) in states.enumerated() {
            let violations = state.audit()
            guard violations.isEmpty else {
                throw EngineError.recoveryFailed("the restored shard \(index) fails its audit: \(violations.prefix(5))")
            }
            tenants += state.tenants.count
        }
        let directory = try DataDirectory(path: destination, shardCount: shardCount)
        defer { directory.close() }
        for (index, state) in states.enumerated() where reports[index].throughLSN > 0 {
            let shard = directory.shardPath(index)
            try FileSystem.makeDirectory(shard)
            _ = try SnapshotStore(directory: shard).write(lsn: reports[index].throughLSN, state: state)
        }
        return Report(shards: reports, tenants: tenants, catalogCompleted: completed)
    }

    /// One shard: its backup's newest snapshot, then the log records after it from the backup's
    /// and the archive's segments (for a segment in both, the longer copy), in order, until the
    /// cut or a gap.
    static func restoreShard(backup: String, archive: String?, untilLSN: UInt64?, untilTime: LedgerTime?) throws
        -> (LedgerState, ShardReport, (time: LedgerTime, catalog: PriceCatalog)?)
    {
        var state = LedgerState()
        var lsn: UInt64 = 0
        if let snapshot = try SnapshotStore(directory: backup).loadNewest() {
            state = try LedgerState(binary: Array(snapshot.body), version: snapshot.format)
            lsn = snapshot.lsn
        }
        if let untilLSN, lsn > untilLSN {
            throw LedgerError(.invalidArgument, "the backup's snapshot is at LSN \(lsn), after --to-lsn \(untilLSN): use an older backup")
        }
        if let untilTime, lsn > 0, state.time > untilTime {
            throw LedgerError(
                .invalidArgument, "the backup's snapshot is at \(state.time.iso8601), after --to-time \(untilTime.iso8601): use an older backup")
        }
        var files: [UInt64: String] = [:]
        for folder in [backup] + (archive.map { [$0] } ?? []) where FileSystem.exists(folder) {
            for name in try FileSystem.list(folder) {
                guard let first = SegmentInfo.firstLSN(fromName: name) else { continue }
                let path = folder + "/" + name
                if let known = files[first], try FileSystem.size(known) >= FileSystem.size(path) { continue }
                files[first] = path
            }
        }
        var report = ShardReport(throughLSN: lsn, throughTime: lsn > 0 ? state.time : nil, availableLSN: lsn)
        var install: (time: LedgerTime, catalog: PriceCatalog)? = nil
        var cut = false
        for first in files.keys.sorted() {
            let bytes = try FileSystem.readFile(files[first]!)
            let scan = bytes.withUnsafeBytes { buffer -> WALFormat.SegmentScan? in
                guard WALFormat.checkSegmentHeader(buffer) == first else { return nil }
                return WALFormat.scanSegment(buffer, firstLSN: first)
            }
            guard let scan else { break }
            // A gap (a segment missing from both places) ends what can be replayed.
            if first > report.availableLSN + 1 { break }
            for record in scan.records where record.lsn > report.availableLSN {
                report.availableLSN = record.lsn
                guard !cut else { continue }
                let command = try LedgerCommand(binary: Array(bytes[record.body]))
                if let untilLSN, record.lsn > untilLSN { cut = true; continue }
                if let untilTime, command.time > untilTime { cut = true; continue }
                let result = state.apply(command)
                report.throughLSN = record.lsn
                report.throughTime = result.time
                if case .installCatalog(let catalog) = command.body, case .success = result.outcome {
                    install = (result.time, catalog)
                }
            }
            if scan.problem != nil { break }
        }
        return (state, report, install)
    }
}
