// The PostgreSQL primary and synchronous standby the cluster tests run against: started by
// scripts/test with scripts/postgres-pair, named by TOKENLEDGER_TEST_POSTGRES (the pair's folder).
// Each test gets a database of its own, made by `ledgerd cluster init`'s code.

import Foundation
import LedgerCore
@testable import LedgerEngine
import LedgerStore
import LedgerTesting
import Logging
import PostgresNIO
import Testing

@testable import LedgerCluster

struct PostgresPair {
    let directory: String
    let url: String

    static func fromEnvironment() throws -> PostgresPair {
        guard let directory = ProcessInfo.processInfo.environment["TOKENLEDGER_TEST_POSTGRES"] else {
            throw ClusterError(
                "TOKENLEDGER_TEST_POSTGRES is not set: scripts/test starts a PostgreSQL pair for these tests "
                    + "(or: scripts/postgres-pair up DIR; TOKENLEDGER_TEST_POSTGRES=DIR swift test --no-parallel --filter LedgerClusterTests)")
        }
        let text = try String(contentsOfFile: directory + "/env", encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("POSTGRES_URL=") }) else {
            throw ClusterError("\(directory)/env names no POSTGRES_URL")
        }
        return PostgresPair(directory: directory, url: String(line.dropFirst("POSTGRES_URL=".count)))
    }

    /// A new, empty database on the pair, initialized as a cluster of `shards` shards.
    func freshCluster(shards: Int) async throws -> ClusterDatabaseURL {
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        let admin = try ClusterDatabase(url: try ClusterDatabaseURL(url), logger: quietLogger)
        defer { admin.shutdown() }
        try await admin.client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: quietLogger)
        let created = try ClusterDatabaseURL(url.replacingOccurrences(of: "/ledger?", with: "/\(name)?"))
        let database = try ClusterDatabase(url: created, logger: quietLogger)
        defer { database.shutdown() }
        _ = try await database.initialize(shardCount: shards)
        return created
    }

    func script(_ action: String) throws {
        let status = try ChildProcess(repositoryRoot + "/scripts/postgres-pair", [action, directory]).wait()
        guard status == 0 else { throw ClusterError("scripts/postgres-pair \(action) exited \(status)") }
    }
}

let repositoryRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()

let quietLogger: Logger = {
    var logger = Logger(label: "cluster-test")
    logger.logLevel = .warning
    return logger
}()

/// A node in this process: its engine (cluster mode) and the node that fills it.
struct InProcessNode {
    let database: ClusterDatabase
    let engine: LedgerEngine
    let node: ClusterNode

    init(_ url: ClusterDatabaseURL, id: String, lease: Duration = .seconds(1), margin: Duration = .milliseconds(300)) async throws {
        database = try ClusterDatabase(url: url, logger: quietLogger)
        engine = LedgerEngine(cluster: ShardPlacement(shardCount: try await database.open()))
        var configuration = ClusterNodeConfiguration(nodeID: id, advertise: "\(id).test:7443")
        configuration.lease = lease
        configuration.margin = margin
        node = ClusterNode(database: database, engine: engine, configuration: configuration, logger: quietLogger)
    }

    func stop() async {
        await node.handOver()
        database.shutdown()
    }
}

/// Every shard's stored snapshot and log replayed into states (checked on the way: CRCs, LSNs
/// without a gap, epochs never decreasing, the audit), with each shard's head.
func replayAll(_ url: ClusterDatabaseURL) async throws -> [(head: ClusterDatabase.Head, state: LedgerState, records: Int)] {
    let database = try ClusterDatabase(url: url, logger: quietLogger)
    defer { database.shutdown() }
    var result: [(head: ClusterDatabase.Head, state: LedgerState, records: Int)] = []
    for head in try await database.heads() {
        let stored = try await database.load(head)
        result.append((head, try await database.replay(head), stored.records.count))
    }
    return result
}

/// The epochs of the log rows of `shard`, in LSN order.
func logEpochs(_ url: ClusterDatabaseURL, shard: Int) async throws -> [(first: Int64, epoch: Int64)] {
    let database = try ClusterDatabase(url: url, logger: quietLogger)
    defer { database.shutdown() }
    var rows: [(first: Int64, epoch: Int64)] = []
    for try await (first, epoch) in try await database.client.query(
        "SELECT first_lsn, epoch FROM tokenledger_shard_log WHERE shard = \(Int32(shard)) ORDER BY first_lsn", logger: quietLogger
    ).decode((Int64, Int64).self) { rows.append((first, epoch)) }
    return rows
}

/// Every log row of the cluster: shard, epoch and LSN range, for HistoryChecker.checkLog.
func logBatches(_ url: ClusterDatabaseURL) async throws -> [HistoryChecker.LogBatch] {
    let database = try ClusterDatabase(url: url, logger: quietLogger)
    defer { database.shutdown() }
    return try await database.logBatches().map { .init(shard: $0.shard, epoch: $0.epoch, firstLSN: $0.firstLSN, lastLSN: $0.lastLSN) }
}

/// The webhook sink's cursor rows: tenant → last acknowledged event id.
func webhookCursor(_ url: ClusterDatabaseURL) async throws -> [String: Int64] {
    let database = try ClusterDatabase(url: url, logger: quietLogger)
    defer { database.shutdown() }
    var cursor: [String: Int64] = [:]
    for try await (tenant, id) in try await database.client.query(
        "SELECT tenant, last_event_id FROM tokenledger_webhook_cursor", logger: quietLogger
    ).decode((String, Int64).self) { cursor[tenant] = id }
    return cursor
}

/// Every take-over of the cluster, for HistoryChecker.checkLog.
func acquisitions(_ url: ClusterDatabaseURL) async throws -> [HistoryChecker.Acquisition] {
    let database = try ClusterDatabase(url: url, logger: quietLogger)
    defer { database.shutdown() }
    return try await database.acquisitions().map { .init(shard: $0.shard, epoch: $0.epoch, nextLSN: $0.nextLSN) }
}
