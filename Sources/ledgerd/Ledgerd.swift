import ArgumentParser
import Foundation
import LedgerCluster
import LedgerCore
import LedgerEngine
import LedgerServer
import LedgerStore
import LedgerWebhooks
import Logging
import NIOCore
import ServiceLifecycle

/// The server executable: flags and config file -> configuration -> ServiceGroup. Started with
/// no arguments it serves ./ledger-data on 127.0.0.1:7443 with the demo price catalog and
/// development TLS material it creates on first start.
@main
struct Ledgerd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledgerd",
        abstract: "The TokenLedger server: token billing over TLS 1.3 with mutual TLS.",
        discussion: """
            Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT drain connections, flush the WAL and \
            write a final snapshot); 1 bad configuration or TLS material; 70 a write or fsync failed \
            while serving; 71 recovery refused (corruption); 72 the data directory is locked by another \
            process or its manifest disagrees.

            Settings: a flag (--flag value or --flag=value), a LEDGERD_ variable or a key of the --config file; \
            a flag wins over the environment, which wins over the file:
            \(DaemonSetting.helpText)

            `ledgerd restore --from BACKUP [--archive-dir DIR] [--to-time T | --to-lsn N] --data-dir NEW` \
            restores a backup to a point in time (ledgerd restore --help). `ledgerd cluster init --postgres-url URL \
            [--shards N]` prepares a PostgreSQL database for cluster mode (docs/cluster.md).
            """)

    /// `ledgerd restore ...` is the restore tool; anything else serves.
    static func main() async {
        MallocTuning.applyByExecutingAgain()
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "restore" {
            RestoreCommand.main(Array(arguments.dropFirst()))
        } else if arguments.first == "cluster" {
            await ClusterCommand.main(Array(arguments.dropFirst()))
        } else {
            await main(arguments)
        }
    }

    @Option(name: .long, help: "A JSON config file ($LEDGERD_CONFIG); the environment and flags win over it.")
    var config: String?
    /// Every other flag: a row of `DaemonSetting.table`, listed by --help.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var settings: [String] = []

    func options() throws -> DaemonOptions {
        // Flags win over the environment, which wins over the config file, which wins over the
        // embedded defaults.
        var options = DaemonOptions()
        let environment = ProcessInfo.processInfo.environment
        if let config = config ?? environment["LEDGERD_CONFIG"] {
            guard let data = FileManager.default.contents(atPath: config) else {
                throw ValidationError("cannot read the config file \(config)")
            }
            try options.apply(configFile: Array(data), path: config)
        }
        try options.apply(environment: environment)
        try options.apply(arguments: settings)
        if let url = options.webhookURL {
            do {
                _ = try WebhookURL(parsing: url)
            } catch {
                throw ValidationError("--webhook-url: \(error)")
            }
            guard options.webhookSecretPath != nil else { throw ValidationError("--webhook-url needs --webhook-secret-file") }
        } else if options.webhookSecretPath != nil || options.webhookCAPath != nil {
            throw ValidationError("--webhook-secret-file and --webhook-ca need --webhook-url")
        }
        if let endpoint = options.otelEndpoint, !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
            throw ValidationError("--otel-endpoint must be an http:// or https:// URL (OTLP/gRPC), not \(endpoint)")
        }
        if options.traceTenantIDs, options.otelEndpoint == nil { throw ValidationError("--trace-tenant-ids needs --otel-endpoint") }
        if options.storage == "postgres" {
            guard let url = options.postgresURL else { throw ValidationError("--storage postgres needs --postgres-url") }
            do {
                _ = try ClusterDatabaseURL(url)
            } catch {
                throw ValidationError("\(error)")
            }
            if options.archiveDirectory != nil { throw ValidationError("--archive-dir is the local mode's; in cluster mode PostgreSQL keeps the log") }
            if options.shardCount != nil { throw ValidationError("in cluster mode the shard count is the cluster's (ledgerd cluster init --shards)") }
            // The loop syncs nothing itself there (the node's writer sends each batch to
            // PostgreSQL): a wait would only delay reading.
            if (options.coalesceMicroseconds ?? 0) > 0 { throw ValidationError("--coalesce-us is the local mode's; in cluster mode the node's writer batches for PostgreSQL") }
        } else if options.postgresURL != nil || options.nodeID != nil || options.advertise != nil || options.leaseMilliseconds != nil {
            throw ValidationError("--postgres-url, --node-id, --advertise and --lease-ms need --storage postgres")
        }
        guard Logger.Level(rawValue: options.logLevel) != nil else {
            throw ValidationError("log level \(options.logLevel) is not one of trace, debug, info, notice, warning, error, critical")
        }
        let tlsGiven = [options.certificatePath, options.privateKeyPath, options.clientCAPath].compactMap { $0 }.count
        guard tlsGiven == 0 || tlsGiven == 3 else {
            throw ValidationError("give all of --tls-cert, --tls-key and --tls-ca, or none (development material)")
        }
        return options
    }

    func run() async throws {
        let options = try options()
        let level = Logger.Level(rawValue: options.logLevel)!
        let json = options.logFormat == "json"
        LoggingSystem.bootstrap { label in
            if json { return JSONLogHandler(label: label, logLevel: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ledgerd")
        // Before anything uses NIO's shared event loops (only once, and only before first use).
        NIOSingletons.groupLoopCountSuggestion = options.eventLoopCount
        let exitCode = await Daemon(options: options, logger: logger).run()
        if exitCode != 0 { throw ExitCode(exitCode) }
    }
}
