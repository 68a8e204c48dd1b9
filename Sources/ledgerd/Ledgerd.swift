import ArgumentParser
import Foundation
import LedgerCore
import LedgerEngine
import LedgerServer
import LedgerStore
import Logging
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
            """)

    @Option(name: .long, help: "A JSON config file; flags given here win over it.")
    var config: String?
    @Option(name: .customLong("data-dir"), help: "Data directory (WAL, snapshots, dev TLS). Default ./ledger-data.")
    var dataDir: String?
    @Option(name: .long, help: "HOST:PORT to listen on (port 0: any free port). Default 127.0.0.1:7443.")
    var listen: String?
    @Option(name: .long, help: "A price catalog JSON file, installed at start if its version is new. Default: the demo catalog on a fresh ledger.")
    var catalog: String?
    @Option(name: .long, help: "Access file mapping client certificate names to principals. Default: only \"admin\", an admin.")
    var access: String?
    @Option(name: .long, help: "Shard count of a new data directory (default: the number of cores; an existing directory keeps its own).")
    var shards: Int?
    @Option(name: .customLong("tls-cert"), help: "Server certificate chain (PEM). Default: <data-dir>/tls/server.pem, created on first start.")
    var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "Server private key (PEM).")
    var tlsKey: String?
    @Option(name: .customLong("tls-ca"), help: "CA that client certificates must chain to (PEM).")
    var tlsCA: String?
    @Option(name: .customLong("frame-size-max"), help: "Largest request frame in bytes (default 1048576).")
    var frameSizeMax: Int?
    @Option(name: .customLong("in-flight-max"), help: "Calls in flight per connection (default 256).")
    var inFlightMax: Int?
    @Option(name: .customLong("connections-max"), help: "Open connections (default 4096).")
    var connectionsMax: Int?
    @Option(name: .customLong("idle-timeout"), help: "Seconds an idle connection stays open (default 300).")
    var idleTimeout: Int?
    @Option(
        name: .customLong("metrics-listen"),
        help: "HOST:PORT of the plain-HTTP operations listener (/metrics, /healthz, /readyz), or off. Default 127.0.0.1:9464.")
    var metricsListen: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (default info).")
    var logLevel: String?
    @Option(
        name: .customLong("webhook-url"),
        help: "POST every tenant's events to this http(s) URL, signed, at least once (needs --webhook-secret-file). Default: off.")
    var webhookURL: String?
    @Option(name: .customLong("webhook-secret-file"), help: "File holding the webhook's HMAC-SHA256 key (at least 16 bytes).")
    var webhookSecretFile: String?
    @Option(name: .customLong("webhook-ca"), help: "CA certificates (PEM) an https webhook endpoint must chain to. Default: the system's.")
    var webhookCA: String?

    func options() throws -> DaemonOptions {
        var options = DaemonOptions()
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else {
                throw ValidationError("cannot read the config file \(config)")
            }
            try options.apply(configFile: Array(data), path: config)
        }
        if let dataDir { options.dataDirectory = dataDir }
        if let listen { (options.host, options.port) = try DaemonOptions.parseListen(listen) }
        if let metricsListen { try options.setMetricsListen(metricsListen) }
        if let catalog { options.catalogPath = catalog }
        if let access { options.accessPath = access }
        if let shards {
            guard (1...256).contains(shards) else { throw ValidationError("--shards must be 1 to 256") }
            options.shardCount = shards
        }
        if let tlsCert { options.certificatePath = tlsCert }
        if let tlsKey { options.privateKeyPath = tlsKey }
        if let tlsCA { options.clientCAPath = tlsCA }
        if let frameSizeMax { options.frameSizeMax = try DaemonOptions.bounded(UInt64(max(0, frameSizeMax)), "--frame-size-max", 64...(64 << 20)) }
        if let inFlightMax { options.inFlightMax = try DaemonOptions.bounded(UInt64(max(0, inFlightMax)), "--in-flight-max", 1...65_536) }
        if let connectionsMax {
            options.connectionsMax = try DaemonOptions.bounded(UInt64(max(0, connectionsMax)), "--connections-max", 1...1_000_000)
        }
        if let idleTimeout { options.idleTimeoutSeconds = try DaemonOptions.bounded(UInt64(max(0, idleTimeout)), "--idle-timeout", 1...86_400) }
        if let logLevel { options.logLevel = logLevel }
        if let webhookURL { options.webhookURL = webhookURL }
        if let webhookSecretFile { options.webhookSecretPath = webhookSecretFile }
        if let webhookCA { options.webhookCAPath = webhookCA }
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
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ledgerd")
        let exitCode = await Daemon(options: options, logger: logger).run()
        if exitCode != 0 { throw ExitCode(exitCode) }
    }
}
