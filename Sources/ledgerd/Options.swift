import ArgumentParser
import LedgerCore
import LedgerWire
import Foundation

/// Everything `ledgerd` can be told, from flags or from a JSON config file (`--config`). A flag
/// given on the command line wins over the file; what neither gives takes the embedded default.
/// Every setting is one row of ``DaemonSetting/table``, which drives both.
struct DaemonOptions: Sendable, Equatable {
    /// See `--sync-interval-us` (docs/operations.md, docs/benchmarks.md for the measurements).
    static let syncIntervalMicrosecondsDefault = 0
    /// See `--coalesce-us` (docs/operations.md).
    static let coalesceMicrosecondsDefault = 0
    /// Event loops (threads serving connections): half the cores, at least one. Each loop reads,
    /// applies, logs, syncs and answers its calls itself; two loops on the same shards sync each
    /// shard's log separately and hand records to its writer thread when the other is syncing, and
    /// on the project's 2-core machine one loop and one shard served the same load at about 30 µs
    /// of CPU per call where two of each took about 50 (docs/benchmarks.md).
    static var eventLoopsDefault: Int { max(1, ProcessInfo.processInfo.activeProcessorCount / 2) }
    var eventLoops: Int? = nil
    /// The event loops to run: `--event-loops`, else the default.
    var eventLoopCount: Int { eventLoops ?? Self.eventLoopsDefault }
    var dataDirectory = "./ledger-data"
    var host = "127.0.0.1"
    var port = 7443
    var catalogPath: String? = nil
    var accessPath: String? = nil
    var shardCount: Int? = nil
    var certificatePath: String? = nil
    var privateKeyPath: String? = nil
    var clientCAPath: String? = nil
    var frameSizeMax: Int? = nil
    var inFlightMax: Int? = nil
    /// Microseconds from the end of one fdatasync of a shard's log to the next batch's write.
    var syncIntervalMicroseconds: Int? = nil
    /// Microseconds an event loop waits after a light group commit before reading again.
    var coalesceMicroseconds: Int? = nil
    var connectionsMax: Int? = nil
    var idleTimeoutSeconds: Int? = nil
    var handshakeTimeoutSeconds: Int? = nil
    var frameReadTimeoutSeconds: Int? = nil
    var logLevel = "info"
    /// `text` (swift-log's standard lines) or `json` (one object a line).
    var logFormat = "text"
    /// The operations listener (metrics, /healthz, /readyz); nil: off.
    var metricsHost: String? = "127.0.0.1"
    var metricsPort = 9464
    /// Whether the metrics address was given (a failure to bind it is then fatal; the default
    /// address only warns, so that several ledgerd on one machine do not fail for it).
    var metricsExplicit = false
    /// The webhook sink (docs/operations.md, "Events"); nil: off.
    var webhookURL: String? = nil
    var webhookSecretPath: String? = nil
    var webhookCAPath: String? = nil
    /// The gRPC port (docs/grpc.md); nil: off.
    var grpcHost: String? = "127.0.0.1"
    var grpcPort = 7444
    /// Whether the gRPC address was given (a failure to bind it is then fatal; the default only warns).
    var grpcExplicit = false
    /// Where every finished WAL segment is kept for point-in-time restore; nil: none kept.
    var archiveDirectory: String? = nil
    /// The OTLP/gRPC collector that receives traces (docs/operations.md, "Traces"); nil: off.
    var otelEndpoint: String? = nil
    /// Whether spans carry tenant ids.
    var traceTenantIDs = false
    /// `local` (the WAL in the data directory) or `postgres` (cluster mode, docs/cluster.md).
    var storage = "local"
    var postgresURL: String? = nil
    /// Cluster mode: this node's name (default: the host name and the framed port).
    var nodeID: String? = nil
    /// Cluster mode: the host:port clients are sent to for this node's shards (default: --listen).
    var advertise: String? = nil
    /// Cluster mode: a shard lease's length in milliseconds.
    var leaseMilliseconds: Int? = nil

    /// Applies a config file's settings.
    mutating func apply(configFile bytes: [UInt8], path: String) throws(ValidationError) {
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            throw ValidationError("\(path): not valid JSON: \(error)")
        }
        guard case .object(let fields) = document else { throw ValidationError("\(path): must be a JSON object") }
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            guard let setting = DaemonSetting.table.first(where: { $0.key == key }) else {
                let known = DaemonSetting.table.map(\.key).sorted().joined(separator: ", ")
                throw ValidationError("\(path): unknown setting \"\(key)\" (known: \(known))")
            }
            switch value {
            case .string(let text): try setting.apply(.text(text), to: &self, named: key)
            case .integer(let number): try setting.apply(.integer(number), to: &self, named: key)
            case .bool(let on): try setting.apply(.switch(on), to: &self, named: key)
            default: throw ValidationError("\(path): \"\(key)\" has the wrong type")
            }
        }
    }

    /// Applies command-line settings: `--flag VALUE` or `--flag=VALUE`, each a row of the table.
    mutating func apply(arguments: [String]) throws(ValidationError) {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            guard argument.hasPrefix("--") else { throw ValidationError("unexpected argument \(argument)") }
            var name = String(argument.dropFirst(2))
            var value: String? = nil
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard let setting = DaemonSetting.table.first(where: { $0.flag == name }) else {
                throw ValidationError("unknown option --\(name) (see ledgerd --help)")
            }
            if value == nil, case .switch = setting.kind {
                // A bare switch turns it on.
                value = "true"
            }
            if value == nil {
                index += 1
                guard index < arguments.count else { throw ValidationError("--\(name) needs a value") }
                value = arguments[index]
            }
            switch setting.kind {
            case .text:
                try setting.apply(.text(value!), to: &self, named: "--\(name)")
            case .integer:
                guard let number = UInt64(value!) else { throw ValidationError("--\(name) must be a whole number, not \(value!)") }
                try setting.apply(.integer(number), to: &self, named: "--\(name)")
            case .switch:
                try setting.apply(.switch(try Self.switchValue(value!, named: "--\(name)")), to: &self, named: "--\(name)")
            }
            index += 1
        }
    }

    /// Applies `LEDGERD_*` environment variables, one per flag (`--idle-timeout` is
    /// `LEDGERD_IDLE_TIMEOUT`); an unknown `LEDGERD_` name is refused like an unknown flag.
    /// `LEDGERD_CONFIG` names the config file and is read by the caller.
    mutating func apply(environment: [String: String]) throws(ValidationError) {
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("LEDGERD_") {
            guard name != "LEDGERD_CONFIG" else { continue }
            guard let setting = DaemonSetting.table.first(where: { $0.environmentName == name }) else {
                throw ValidationError("unknown environment variable \(name) (see ledgerd --help)")
            }
            switch setting.kind {
            case .text:
                try setting.apply(.text(value), to: &self, named: name)
            case .integer:
                guard let number = UInt64(value) else { throw ValidationError("\(name) must be a whole number, not \(value)") }
                try setting.apply(.integer(number), to: &self, named: name)
            case .switch:
                try setting.apply(.switch(try Self.switchValue(value, named: name)), to: &self, named: name)
            }
        }
    }

    /// `HOST:PORT` for the gRPC port, or `off`.
    mutating func setGRPCListen(_ text: String) throws(ValidationError) {
        grpcExplicit = true
        (grpcHost, grpcPort) = try Self.parseListenOrOff(text, flag: "--grpc-listen") ?? (nil, grpcPort)
    }

    /// A switch's value in a flag or a variable: true/false, 1/0, on/off.
    static func switchValue(_ text: String, named name: String) throws(ValidationError) -> Bool {
        switch text.lowercased() {
        case "true", "1", "on", "yes": return true
        case "false", "0", "off", "no": return false
        default: throw ValidationError("\(name) must be true or false, not \(text)")
        }
    }

    /// `HOST:PORT` for the operations listener, or `off`.
    mutating func setMetricsListen(_ text: String) throws(ValidationError) {
        metricsExplicit = true
        (metricsHost, metricsPort) = try Self.parseListenOrOff(text, flag: "--metrics-listen") ?? (nil, metricsPort)
    }

    /// `HOST:PORT` (`:PORT`: all interfaces), or nil for `off`.
    static func parseListenOrOff(_ text: String, flag: String) throws(ValidationError) -> (String?, Int)? {
        guard text != "off" else { return nil }
        do {
            let address = try HostPort(parsing: text, emptyHost: "0.0.0.0")
            return (address.host, address.port)
        } catch {
            throw ValidationError("\(flag): \(error) (or off)")
        }
    }

    /// `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces).
    static func parseListen(_ text: String) throws(ValidationError) -> (String, Int) {
        do {
            let address = try HostPort(parsing: text, emptyHost: "0.0.0.0")
            return (address.host, address.port)
        } catch {
            throw ValidationError("--listen: \(error)")
        }
    }
}

/// One setting of ledgerd: its config file key, its flag, its help, its type and range, and the
/// option it sets. The table below is the only list of settings: flags, config file keys, the
/// range check and `ledgerd --help` all come from it.
struct DaemonSetting: Sendable {
    enum Kind: Sendable {
        case text(@Sendable (inout DaemonOptions, String) throws(ValidationError) -> Void)
        case integer(ClosedRange<Int>, @Sendable (inout DaemonOptions, Int) -> Void)
        /// On or off: a bare flag turns it on; true/false in the file, true/false/1/0 elsewhere.
        case `switch`(@Sendable (inout DaemonOptions, Bool) -> Void)
    }

    enum Value {
        case text(String)
        case integer(UInt64)
        case `switch`(Bool)
    }

    /// The config file's key (`idle_timeout_s`).
    let key: String
    /// The flag without its dashes (`idle-timeout`).
    let flag: String
    /// The environment variable: `LEDGERD_` and the flag in capitals (`LEDGERD_IDLE_TIMEOUT`).
    var environmentName: String { "LEDGERD_" + String(flag.uppercased().map { $0 == "-" ? "_" : $0 }) }
    let help: String
    let kind: Kind

    /// Sets the option from a value, checking its type and range; `name` is how the error names it.
    func apply(_ value: Value, to options: inout DaemonOptions, named name: String) throws(ValidationError) {
        switch (kind, value) {
        case (.text(let set), .text(let text)):
            try set(&options, text)
        case (.integer(let range, let set), .integer(let number)):
            guard number <= UInt64(range.upperBound), range.contains(Int(number)) else {
                throw ValidationError("\(name) must be \(range.lowerBound) to \(range.upperBound), not \(number)")
            }
            set(&options, Int(number))
        case (.switch(let set), .switch(let on)):
            set(&options, on)
        default:
            throw ValidationError("\(name) has the wrong type")
        }
    }

    static func text(_ key: String, _ flag: String, _ help: String, _ path: WritableKeyPath<DaemonOptions, String?> & Sendable)
        -> DaemonSetting
    {
        DaemonSetting(key: key, flag: flag, help: help, kind: .text { options, text in options[keyPath: path] = text })
    }

    static func integer(
        _ key: String, _ flag: String, _ help: String, _ range: ClosedRange<Int>, _ path: WritableKeyPath<DaemonOptions, Int?> & Sendable
    ) -> DaemonSetting {
        DaemonSetting(key: key, flag: flag, help: help, kind: .integer(range) { options, number in options[keyPath: path] = number })
    }

    static let table: [DaemonSetting] = [
        DaemonSetting(
            key: "data_dir", flag: "data-dir", help: "Data directory (WAL, snapshots, dev TLS). Default ./ledger-data.",
            kind: .text { options, text in options.dataDirectory = text }),
        DaemonSetting(
            key: "listen", flag: "listen", help: "HOST:PORT to listen on (port 0: any free port). Default 127.0.0.1:7443.",
            kind: .text { options, text throws(ValidationError) in (options.host, options.port) = try DaemonOptions.parseListen(text) }),
        .text(
            "catalog", "catalog",
            "A price catalog JSON file, installed at start if its version is new. Default: the demo catalog on a fresh ledger.",
            \.catalogPath),
        .text("access", "access", "Access file mapping client certificate names to principals. Default: only \"admin\", an admin.", \.accessPath),
        .integer(
            "shards", "shards", "Shard count of a new data directory (default: the number of event loops; an existing directory keeps its own).",
            1...256, \.shardCount),
        .integer(
            "event_loops", "event-loops", "Threads serving connections, the framed and gRPC ports alike (default: half the cores, at least 1).",
            1...256, \.eventLoops),
        .text("tls_cert", "tls-cert", "Server certificate chain (PEM). Default: <data-dir>/tls/server.pem, created on first start.", \.certificatePath),
        .text("tls_key", "tls-key", "Server private key (PEM).", \.privateKeyPath),
        .text("tls_ca", "tls-ca", "CA that client certificates must chain to (PEM).", \.clientCAPath),
        .integer(
            "sync_interval_us", "sync-interval-us",
            "Local mode: microseconds a shard's log waits after an fdatasync before writing the next batch, gathering more calls into each sync (default \(DaemonOptions.syncIntervalMicrosecondsDefault); 0: none).",
            0...100_000, \.syncIntervalMicroseconds),
        .integer(
            "coalesce_us", "coalesce-us",
            "Local mode: microseconds an event loop waits, after syncing fewer than 16 calls of its own, before it reads its sockets again, so that the calls arriving meanwhile share one sync (default \(DaemonOptions.coalesceMicrosecondsDefault); 0: none). Less CPU per call at low rates, up to that much more latency.",
            0...10_000, \.coalesceMicroseconds),
        .integer("frame_size_max", "frame-size-max", "Largest request frame in bytes (default 1048576).", 64...(64 << 20), \.frameSizeMax),
        .integer("in_flight_max", "in-flight-max", "Calls in flight per connection (default 256).", 1...65_536, \.inFlightMax),
        .integer("connections_max", "connections-max", "Open connections (default 4096).", 1...1_000_000, \.connectionsMax),
        .integer("idle_timeout_s", "idle-timeout", "Seconds an idle connection stays open (default 300).", 1...86_400, \.idleTimeoutSeconds),
        .integer(
            "handshake_timeout_s", "handshake-timeout", "Seconds a TLS handshake may take (default 10).", 1...3_600,
            \.handshakeTimeoutSeconds),
        .integer(
            "frame_read_timeout_s", "frame-read-timeout", "Seconds a started frame may take to arrive whole (default 30).", 1...3_600,
            \.frameReadTimeoutSeconds),
        DaemonSetting(
            key: "log_level", flag: "log-level", help: "trace, debug, info, notice, warning, error or critical (default info).",
            kind: .text { options, text in options.logLevel = text }),
        DaemonSetting(
            key: "log_format", flag: "log-format", help: "text (default) or json: one JSON object a line, with the same metadata.",
            kind: .text { options, text throws(ValidationError) in
                guard text == "text" || text == "json" else { throw ValidationError("log format \(text) is not text or json") }
                options.logFormat = text
            }),
        DaemonSetting(
            key: "grpc_listen", flag: "grpc-listen",
            help: "HOST:PORT of the gRPC port (TLS 1.3, client certificates; docs/grpc.md), or off. Default 127.0.0.1:7444.",
            kind: .text { options, text throws(ValidationError) in try options.setGRPCListen(text) }),
        DaemonSetting(
            key: "metrics_listen", flag: "metrics-listen",
            help: "HOST:PORT of the plain-HTTP operations listener (/metrics, /healthz, /readyz), or off. Default 127.0.0.1:9464.",
            kind: .text { options, text throws(ValidationError) in try options.setMetricsListen(text) }),
        .text(
            "webhook_url", "webhook-url",
            "POST every tenant's events to this http(s) URL, signed, at least once (needs --webhook-secret-file). Default: off.",
            \.webhookURL),
        .text("webhook_secret_file", "webhook-secret-file", "File holding the webhook's HMAC-SHA256 key (at least 16 bytes).", \.webhookSecretPath),
.text(
            "archive_dir", "archive-dir",
            "Keep every finished WAL segment here (a folder per shard) for point-in-time restore (ledgerd restore). Default: off.",
            \.archiveDirectory),
        .text("webhook_ca", "webhook-ca", "CA certificates (PEM) an https webhook endpoint must chain to. Default: the system's.", \.webhookCAPath),
        .text(
            "otel_endpoint", "otel-endpoint",
            "Export a span per call over OTLP/gRPC to this collector (http://HOST:PORT, or https:// for TLS). Default: off.",
            \.otelEndpoint),
        DaemonSetting(
            key: "storage", flag: "storage",
            help: "local (default: the WAL in --data-dir) or postgres (cluster mode, needs --postgres-url; docs/cluster.md).",
            kind: .text { options, text throws(ValidationError) in
                guard text == "local" || text == "postgres" else { throw ValidationError("storage \(text) is not local or postgres") }
                options.storage = text
            }),
        .text(
            "postgres_url", "postgres-url",
            "Cluster mode: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require|verify-full].",
            \.postgresURL),
        .text("node_id", "node-id", "Cluster mode: this node's unique, stable name (default: host name and port).", \.nodeID),
        .text(
            "advertise", "advertise", "Cluster mode: HOST:PORT that clients are sent to for this node's shards (default: --listen).",
            \.advertise),
        .integer(
            "lease_ms", "lease-ms", "Cluster mode: a shard lease's length in milliseconds (default 5000).", 1_000...60_000,
            \.leaseMilliseconds),
        DaemonSetting(
            key: "trace_tenant_ids", flag: "trace-tenant-ids", help: "Put tenant ids into spans (a bare switch; default off).",
            kind: .switch { options, on in options.traceTenantIDs = on }),
    ]

    /// The settings as `ledgerd --help` lists them.
    static var helpText: String {
        table.map { setting in
            let value: String
            switch setting.kind {
            case .text: value = "<value>"
            case .integer(let range, _): value = "<\(range.lowerBound)-\(range.upperBound)>"
            case .switch: value = "[true|false]"
            }
            return "  --\(setting.flag) \(value)  (\(setting.environmentName); config file: \(setting.key))\n        \(setting.help)"
        }.joined(separator: "\n")
    }
}
