import ArgumentParser
import Foundation
import LedgerCluster
import Logging

/// `ledgerd cluster init`: prepares a PostgreSQL database for cluster mode (docs/cluster.md).
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledgerd cluster",
        abstract: "Prepare a PostgreSQL database for cluster mode (docs/cluster.md).",
        discussion: """
            `ledgerd cluster init --postgres-url URL [--shards N]` creates TokenLedger's tables and one head \
            row per shard in one transaction. The shard count is fixed from then on (tenants map to shards \
            by it). Run again on a prepared database it changes nothing and says so, unless --shards \
            differs, which is refused. Exit 0 done; 64 bad arguments or a different shard count; 69 the \
            database cannot be reached.
            """)

    @Argument(help: "init") var action: String
    @Option(name: .customLong("postgres-url"), help: "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...] ($LEDGERD_POSTGRES_URL)")
    var postgresURL: String?
    @Option(name: .customLong("shards"), help: "Shard count (default 32; 1-1024).") var shards: Int = 32

    func run() async throws {
        guard action == "init" else { throw ValidationError("unknown action \(action); the one action is init") }
        guard let text = postgresURL ?? ProcessInfo.processInfo.environment["LEDGERD_POSTGRES_URL"] else {
            throw ValidationError("give --postgres-url")
        }
        let url: ClusterDatabaseURL
        do {
            url = try ClusterDatabaseURL(text)
        } catch {
            throw ValidationError("\(error)")
        }
        var logger = Logger(label: "ledgerd.cluster")
        logger.logLevel = .warning
        let database = try ClusterDatabase(url: url, logger: logger)
        defer { database.shutdown() }
        do {
            let (created, count) = try await database.initialize(shardCount: shards)
            print(created ? "cluster created in \(url): \(count) shards" : "\(url) holds a cluster of \(count) shards already; nothing changed")
        } catch let error as ClusterError {
            FileHandle.standardError.write(Data("ledgerd cluster: \(error)\n".utf8))
            throw ExitCode(64)
        } catch {
            FileHandle.standardError.write(Data("ledgerd cluster: cannot initialize \(url): \(String(reflecting: error))\n".utf8))
            throw ExitCode(69)
        }
    }
}
