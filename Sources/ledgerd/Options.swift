import ArgumentParser
import LedgerWire
import LedgerCore

/// Everything `ledgerd` can be told, from flags or from a JSON config file (`--config`). A flag
/// given on the command line wins over the file; what neither gives takes the embedded default.
struct DaemonOptions: Sendable, Equatable {
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
    var connectionsMax: Int? = nil
    var idleTimeoutSeconds: Int? = nil
    var handshakeTimeoutSeconds: Int? = nil
    var frameReadTimeoutSeconds: Int? = nil
    var logLevel = "info"
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

    /// The keys a config file may hold, each the flag's name with underscores.
    static let fileKeys: Set<String> = [
        "data_dir", "listen", "catalog", "access", "shards", "tls_cert", "tls_key", "tls_ca", "frame_size_max",
        "in_flight_max", "connections_max", "idle_timeout_s", "handshake_timeout_s", "frame_read_timeout_s", "log_level",
        "metrics_listen", "webhook_url", "webhook_secret_file", "webhook_ca",
    ]

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
            guard Self.fileKeys.contains(key) else {
                throw ValidationError("\(path): unknown setting \"\(key)\" (known: \(Self.fileKeys.sorted().joined(separator: ", ")))")
            }
            switch (key, value) {
            case ("data_dir", .string(let text)): dataDirectory = text
            case ("listen", .string(let text)): (host, port) = try Self.parseListen(text)
            case ("catalog", .string(let text)): catalogPath = text
            case ("access", .string(let text)): accessPath = text
            case ("tls_cert", .string(let text)): certificatePath = text
            case ("tls_key", .string(let text)): privateKeyPath = text
            case ("tls_ca", .string(let text)): clientCAPath = text
            case ("log_level", .string(let text)): logLevel = text
            case ("metrics_listen", .string(let text)): try setMetricsListen(text)
            case ("webhook_url", .string(let text)): webhookURL = text
            case ("webhook_secret_file", .string(let text)): webhookSecretPath = text
            case ("webhook_ca", .string(let text)): webhookCAPath = text
            case ("shards", .integer(let number)): shardCount = try Self.bounded(number, key, 1...256)
            case ("frame_size_max", .integer(let number)): frameSizeMax = try Self.bounded(number, key, 64...(64 << 20))
            case ("in_flight_max", .integer(let number)): inFlightMax = try Self.bounded(number, key, 1...65_536)
            case ("connections_max", .integer(let number)): connectionsMax = try Self.bounded(number, key, 1...1_000_000)
            case ("idle_timeout_s", .integer(let number)): idleTimeoutSeconds = try Self.bounded(number, key, 1...86_400)
            case ("handshake_timeout_s", .integer(let number)):
                handshakeTimeoutSeconds = try Self.bounded(number, key, 1...3_600)
            case ("frame_read_timeout_s", .integer(let number)):
                frameReadTimeoutSeconds = try Self.bounded(number, key, 1...3_600)
            default:
                throw ValidationError("\(path): \"\(key)\" has the wrong type")
            }
        }
    }

    /// `HOST:PORT` for the operations listener, or `off`.
    mutating func setMetricsListen(_ text: String) throws(ValidationError) {
        metricsExplicit = true
        if text == "off" {
            metricsHost = nil
            return
        }
        do {
            let address = try HostPort(parsing: text, emptyHost: "0.0.0.0")
            (metricsHost, metricsPort) = (address.host, address.port)
        } catch {
            throw ValidationError("--metrics-listen: \(error) (or off)")
        }
    }

    static func bounded(_ number: UInt64, _ key: String, _ range: ClosedRange<Int>) throws(ValidationError) -> Int {
        guard number <= UInt64(range.upperBound), range.contains(Int(number)) else {
            throw ValidationError("\(key) must be \(range.lowerBound) to \(range.upperBound), not \(number)")
        }
        return Int(number)
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
