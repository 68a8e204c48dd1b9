// Server overhead benchmark (scripts/bench-server): the same reserve+commit workload run straight
// on the engine and through the TLS server with the Swift client, in one process, so that the
// ratio shows what framing, TLS, protobuf and the task hops cost. One key=value line per run.
//
//   ledger-server-bench engine DIR WRITERS SECONDS
//   ledger-server-bench tls DIR WRITERS CONNECTIONS SECONDS
import Foundation
import LedgerClient
import LedgerCore
import LedgerEngine
import LedgerServer
import LedgerStore
import LedgerTLS
import Logging

let tenantCount = 64

func tenants() -> [TenantID] { (0..<tenantCount).map { TenantID("bench-\($0)") } }

func setUp(_ engine: LedgerEngine) async throws {
    for tenant in tenants() {
        _ = try await engine.execute(.createTenant(tenant, TenantSettings()), requestID: RequestID("c-\(tenant)"))
        _ = try await engine.execute(
            .grant(tenant, GrantRequest(kind: .purchase, amount: Limits.amountMax)), requestID: RequestID("g-\(tenant)"))
    }
}

/// Runs `writers` loops of reserve+commit pairs for `seconds`; returns sorted pair latencies.
func drive(writers: Int, seconds: Double, pair: @escaping @Sendable (Int, Int) async throws -> Void) async throws -> ([UInt64], Double) {
    let began = monotonicNanoseconds()
    let deadline = began + UInt64(seconds * 1e9)
    let latencies = try await withThrowingTaskGroup(of: [UInt64].self) { group in
        for writer in 0..<writers {
            group.addTask {
                var samples: [UInt64] = []
                var counter = 0
                while monotonicNanoseconds() < deadline {
                    counter += 1
                    let issued = monotonicNanoseconds()
                    try await pair(writer, counter)
                    samples.append(monotonicNanoseconds() - issued)
                }
                return samples
            }
        }
        var all: [UInt64] = []
        for try await samples in group { all += samples }
        return all.sorted()
    }
    return (latencies, Double(monotonicNanoseconds() - began) / 1e9)
}

func report(_ name: String, _ engine: LedgerEngine, before: (UInt64, UInt64), latencies: [UInt64], elapsed: Double, extra: String) async {
    let after = await walTotals(engine)
    let records = after.0 - before.0
    let syncs = after.1 - before.1
    let pairs = latencies.count
    func percentile(_ p: Double) -> Double { pairs == 0 ? 0 : Double(latencies[min(pairs - 1, Int(Double(pairs) * p))]) / 1e6 }
    print(
        "benchmark=\(name) \(extra) seconds=\(String(format: "%.2f", elapsed)) pairs=\(pairs) "
            + "ops_per_second=\(Int(Double(pairs * 2) / elapsed)) ops_per_fsync=\(String(format: "%.1f", syncs == 0 ? 0 : Double(records) / Double(syncs))) "
            + "pair_p50_ms=\(String(format: "%.3f", percentile(0.5))) pair_p99_ms=\(String(format: "%.3f", percentile(0.99)))")
}

func walTotals(_ engine: LedgerEngine) async -> (UInt64, UInt64) {
    var records: UInt64 = 0
    var syncs: UInt64 = 0
    for shard in engine.shards {
        let stats = await shard.walStatistics
        records += stats.records
        syncs += stats.syncs
    }
    return (records, syncs)
}

let arguments = CommandLine.arguments
guard arguments.count >= 5 else {
    print("usage: ledger-server-bench engine DIR WRITERS SECONDS | tls DIR WRITERS CONNECTIONS SECONDS")
    exit(2)
}
let directory = arguments[2]
let writers = Int(arguments[3])!
let shardCount = ProcessInfo.processInfo.activeProcessorCount
let engine = try LedgerEngine(path: directory + "/data", shardCount: shardCount)
try await setUp(engine)
let names = tenants()

switch arguments[1] {
case "engine":
    let seconds = Double(arguments[4])!
    let before = await walTotals(engine)
    let (latencies, elapsed) = try await drive(writers: writers, seconds: seconds) { writer, counter in
        let tenant = names[writer % names.count]
        let hold = HoldID("w\(writer)-\(counter)")
        _ = try await engine.execute(.reserve(tenant, ReserveRequest(hold: hold, amount: .tokens(10))), requestID: RequestID("r-\(hold)"))
        _ = try await engine.execute(.commit(tenant, hold, amount: 10, final: true), requestID: RequestID("k-\(hold)"))
    }
    await report("engine", engine, before: before, latencies: latencies, elapsed: elapsed, extra: "writers=\(writers) shards=\(shardCount)")
    await engine.close(finalSnapshot: false)
case "tls":
    let connections = Int(arguments[4])!
    let seconds = Double(arguments[5])!
    let tls = DevelopmentTLS(dataDirectory: directory)
    try tls.createIfMissing()
    var configuration = ServerConfiguration(
        certificatePath: tls.serverCertificatePath, privateKeyPath: tls.serverKeyPath, clientCAPath: tls.caPath)
    configuration.port = 0
    var logger = Logger(label: "bench")
    logger.logLevel = .warning
    let server = try await LedgerServer.bind(configuration: configuration, engine: engine, logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        var clients: [LedgerClient] = []
        for _ in 0..<connections {
            clients.append(try await LedgerClient.connect(.development(dataDirectory: directory, port: server.boundPort)))
        }
        let pool = clients
        let before = await walTotals(engine)
        let (latencies, elapsed) = try await drive(writers: writers, seconds: seconds) { writer, counter in
            let client = pool[writer % pool.count]
            let tenant = names[writer % names.count]
            let hold = HoldID("w\(writer)-\(counter)")
            _ = try await client.reserve(tenant: tenant, hold: hold, tokens: 10, requestID: RequestID("r-\(hold)"))
            _ = try await client.commit(tenant: tenant, hold: hold, amount: 10, requestID: RequestID("k-\(hold)"))
        }
        await report(
            "tls", engine, before: before, latencies: latencies, elapsed: elapsed,
            extra: "writers=\(writers) connections=\(connections) shards=\(shardCount)")
        for client in pool { await client.close() }
        server.shutdown()
        try await group.waitForAll()
    }
default:
    print("unknown mode \(arguments[1])")
    exit(2)
}
