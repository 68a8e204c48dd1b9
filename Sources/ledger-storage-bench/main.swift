// Storage benchmarks (docs/benchmarks.md): replay speed, snapshot write and load with many tenants,
// and group commit through a shard with 1, 16 and 256 concurrent writers.
//
//   ledger-storage-bench replay DIR [RECORDS]
//   ledger-storage-bench snapshot DIR [TENANTS]
//   ledger-storage-bench snapshot-busy TENANTS [PAIRS]
//   ledger-storage-bench group-commit DIR WRITERS [SECONDS]
//
// Each prints one line of `key=value` figures. Build with -c release; scripts/bench-storage runs all.

import Glibc
import LedgerCore
import LedgerEngine
import LedgerStore

func seconds(since start: UInt64) -> Double { Double(monotonicNanoseconds() - start) / 1e9 }

func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var size = 0
    var resident = 0
    _ = withUnsafeMutablePointer(to: &size) { sizePointer in
        withUnsafeMutablePointer(to: &resident) { residentPointer in
            withVaList([sizePointer, residentPointer]) { vfscanf(file, "%d %d", $0) }
        }
    }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
}

let start = LedgerTime(iso8601: "2026-07-01T00:00:00Z")!

/// The commands of a reserve+commit workload over `tenants` tenants.
func workload(records: Int, tenants: Int) -> [LedgerCommand] {
    var commands: [LedgerCommand] = []
    commands.reserveCapacity(records)
    var time = start
    for index in 0..<tenants where commands.count < records {
        commands.append(LedgerCommand(time: time, requestID: "c", body: .createTenant(TenantID("tenant-\(index)"), TenantSettings())))
        commands.append(LedgerCommand(time: time, requestID: "g", body: .grant(TenantID("tenant-\(index)"), GrantRequest(kind: .purchase, amount: 1_000_000_000))))
    }
    var counter = 0
    while commands.count < records {
        counter += 1
        time = time.adding(milliseconds: 1)
        let tenant = TenantID("tenant-\(counter % tenants)")
        let hold = HoldID("h\(counter)")
        commands.append(LedgerCommand(time: time, requestID: RequestID("r\(counter)"), body: .reserve(tenant, ReserveRequest(hold: hold, amount: .tokens(100)))))
        commands.append(LedgerCommand(time: time, requestID: RequestID("k\(counter)"), body: .commit(tenant, hold, amount: 80, final: true)))
    }
    return commands
}

func replay(directory: String, records: Int) async throws {
    // Write the log directly (the benchmark measures reading it back).
    let recovered = try WALRecovery.recover(directory: directory, afterLSN: 0)
    let log = try WriteAheadLog(directory: directory, recovered: recovered)
    var last: UInt64 = 0
    var bytes = 0
    for command in workload(records: records, tenants: 1_000) {
        let body = command.binaryEncoded
        bytes += body.count
        last = try log.append(body)
    }
    try await log.waitDurable(last)
    log.close()
    let began = monotonicNanoseconds()
    let shard = try LedgerShard(directory: directory, index: 0)
    let elapsed = seconds(since: began)
    let replayed = shard.recovery.recordsReplayed
    await shard.close(finalSnapshot: false)
    print("benchmark=replay records=\(replayed) log_bytes=\(bytes) seconds=\(elapsed) records_per_second=\(Int(Double(replayed) / elapsed))")
}

func snapshot(directory: String, tenants: Int) async throws {
    var state = LedgerState(time: start)
    for index in 0..<tenants {
        let tenant = TenantID("tenant-\(index)")
        _ = state.apply(LedgerCommand(time: start, requestID: "c", body: .createTenant(tenant, TenantSettings())))
        _ = state.apply(LedgerCommand(time: start, requestID: "g", body: .grant(tenant, GrantRequest(kind: .purchase, amount: 1_000))))
    }
    let rssBuilt = residentBytes()
    let store = SnapshotStore(directory: directory)
    var began = monotonicNanoseconds()
    let body = state.binaryEncoded
    let encodeSeconds = seconds(since: began)
    began = monotonicNanoseconds()
    try store.write(lsn: 1, body: body)
    let writeSeconds = seconds(since: began)
    state = LedgerState()
    began = monotonicNanoseconds()
    let loaded = try store.loadNewest()!
    let readSeconds = seconds(since: began)
    began = monotonicNanoseconds()
    let decoded = try LedgerState(binary: Array(loaded.body), version: loaded.format)
    let decodeSeconds = seconds(since: began)
    precondition(decoded.tenants.count == tenants)
    print(
        "benchmark=snapshot tenants=\(tenants) bytes=\(body.count) encode_seconds=\(encodeSeconds) write_seconds=\(writeSeconds) "
            + "read_seconds=\(readSeconds) decode_seconds=\(decodeSeconds) rss_bytes_built=\(rssBuilt) "
            + "rss_bytes_per_tenant=\(rssBuilt / tenants)")
}

/// Encoding a busy ledger for a snapshot: `pairs` reserve+commit pairs spread over `tenants`, so
/// most of the state is history, remembered requests and resolved holds (what a snapshot of a
/// server under load holds). Encoded as the shard does, in parts of 1 MiB each checksummed and then
/// dropped (no file: the encoding is measured), best of five.
func snapshotBusy(tenants: Int, pairs: Int) {
    var state = LedgerState(time: start)
    for command in workload(records: 2 * tenants + 2 * pairs, tenants: tenants) { _ = state.apply(command) }
    var best = Double.infinity
    var bytes = 0
    var checksum: UInt32 = 0
    /// Takes a part as the shard's snapshot sink does: counted and checksummed, then dropped.
    func take(_ writer: inout BinaryWriter) {
        writer.drain { part in
            bytes += part.count
            checksum = CRC32C.checksum(part, continuing: checksum)
        }
    }
    for _ in 0..<5 {
        bytes = 0
        checksum = 0
        var writer = BinaryWriter()
        let began = monotonicNanoseconds()
        state.encode(to: &writer, flushingAt: 1 << 20, take)
        take(&writer)
        best = min(best, seconds(since: began))
    }
    print("benchmark=snapshot_busy tenants=\(tenants) pairs=\(pairs) bytes=\(bytes) crc32c=\(checksum) encode_seconds=\(best) "
        + "encode_ns_per_pair=\(Int(best * 1e9 / Double(pairs)))")
}

func groupCommit(directory: String, writers: Int, duration: Double) async throws {
    let shard = try LedgerShard(directory: directory, index: 0)
    _ = try await shard.execute(.createTenant("bench", TenantSettings()), requestID: "c")
    _ = try await shard.execute(.grant("bench", GrantRequest(kind: .purchase, amount: Limits.amountMax)), requestID: "g")
    let before = await shard.walStatistics
    let began = monotonicNanoseconds()
    let deadline = began + UInt64(duration * 1e9)
    let latencies = try await withThrowingTaskGroup(of: [UInt64].self) { group in
        for writer in 0..<writers {
            group.addTask {
                var samples: [UInt64] = []
                var counter = 0
                while monotonicNanoseconds() < deadline {
                    counter += 1
                    let hold = HoldID("w\(writer)-\(counter)")
                    let issued = monotonicNanoseconds()
                    _ = try await shard.execute(.reserve("bench", ReserveRequest(hold: hold, amount: .tokens(10))), requestID: RequestID("r-\(hold)"))
                    _ = try await shard.execute(.commit("bench", hold, amount: 10, final: true), requestID: RequestID("k-\(hold)"))
                    samples.append(monotonicNanoseconds() - issued)
                }
                return samples
            }
        }
        var all: [UInt64] = []
        for try await samples in group { all += samples }
        return all.sorted()
    }
    let elapsed = seconds(since: began)
    let after = await shard.walStatistics
    await shard.close(finalSnapshot: false)
    let pairs = latencies.count
    func percentile(_ p: Double) -> Double { pairs == 0 ? 0 : Double(latencies[min(pairs - 1, Int(Double(pairs) * p))]) / 1e6 }
    let records = after.records - before.records
    let syncs = after.syncs - before.syncs
    print(
        "benchmark=group_commit writers=\(writers) seconds=\(elapsed) pairs=\(pairs) pairs_per_second=\(Int(Double(pairs) / elapsed)) "
            + "ops_per_second=\(Int(Double(records) / elapsed)) fsyncs=\(syncs) ops_per_fsync=\(syncs == 0 ? 0 : Double(records) / Double(syncs)) "
            + "pair_p50_ms=\(percentile(0.5)) pair_p99_ms=\(percentile(0.99))")
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    print("usage: ledger-storage-bench replay|snapshot|group-commit DIR [N] [SECONDS], or snapshot-busy TENANTS [PAIRS]")
    exit(2)
}
switch arguments[1] {
case "replay": try await replay(directory: arguments[2], records: arguments.count > 3 ? Int(arguments[3])! : 1_000_000)
case "snapshot-busy":
    snapshotBusy(tenants: Int(arguments[2])!, pairs: arguments.count > 3 ? Int(arguments[3])! : 1_000_000)
case "snapshot": try await snapshot(directory: arguments[2], tenants: arguments.count > 3 ? Int(arguments[3])! : 1_000_000)
case "group-commit":
    try await groupCommit(directory: arguments[2], writers: Int(arguments[3])!, duration: arguments.count > 4 ? Double(arguments[4])! : 5)
default:
    print("unknown benchmark \(arguments[1])")
    exit(2)
}
