import ArgumentParser
import LedgerWire
import Foundation
import LedgerClient
import LedgerCore

/// Options every subcommand takes: where the server is, which certificate to present, how to
/// print. Defaults come from the environment (`TOKENCTL_SERVER`, `TOKENCTL_DATA_DIR`) and then
/// from ledgerd's embedded defaults.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "HOST:PORT of ledgerd (default $TOKENCTL_SERVER or 127.0.0.1:7443); a cluster's nodes as HOST:PORT,HOST:PORT,...")
    var server: String?
    @Option(name: .customLong("data-dir"), help: "Where the development TLS material is (default $TOKENCTL_DATA_DIR or ./ledger-data).")
    var dataDir: String?
    @Option(name: .long, help: "CA certificate (PEM) the server's certificate must chain to (default <data-dir>/tls/ca.pem).")
    var ca: String?
    @Option(name: .long, help: "Client certificate (PEM), the principal (default <data-dir>/tls/admin.pem).")
    var cert: String?
    @Option(name: .long, help: "Client private key (PEM) (default <data-dir>/tls/admin-key.pem).")
    var key: String?
    @Flag(name: .long, help: "Print one JSON object on stdout (JSON lines for lists).")
    var json = false
    @Option(name: .long, help: "Seconds to wait for each reply (default 30).")
    var timeout: Double = 30

    /// The options above that take a value, and the flags, by name.
    static let valueOptions: Set<String> = ["--server", "--data-dir", "--ca", "--cert", "--key", "--timeout"]
    static let flags: Set<String> = ["--json"]

    /// `arguments` with the options of this group that stand before the subcommand moved to after
    /// it (before a `--` terminator, if there is one), so that `tokenctl --server H:P --json balance
    /// acme` parses as `tokenctl balance acme --server H:P --json`, the way `kubectl --context` and
    /// `docker -H` take theirs. Anything else before the subcommand is left where it is (and
    /// refused by the parser as before).
    static func hoisted(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if flags.contains(argument) || (valueOptions.contains(name) && argument.contains("=")) {
                leading.append(argument)
                index += 1
            } else if valueOptions.contains(argument), index + 1 < arguments.count {
                leading += [argument, arguments[index + 1]]
                index += 2
            } else {
                break
            }
        }
        guard !leading.isEmpty else { return arguments }
        var rest = Array(arguments[index...])
        let terminator = rest.firstIndex(of: "--") ?? rest.endIndex
        rest.insert(contentsOf: leading, at: terminator)
        return rest
    }

    func validate() throws {
        guard timeout > 0, timeout <= 3_600 else { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
        _ = try address()
    }

    /// The first address of --server, and the others (cluster mode: the client follows
    /// `wrong_owner` among them and fails over to the next).
    func address() throws -> (host: String, port: Int, others: [String]) {
        let text = server ?? ProcessInfo.processInfo.environment["TOKENCTL_SERVER"] ?? "127.0.0.1:7443"
        var parsed: [HostPort] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            do {
                parsed.append(try HostPort(parsing: String(part), emptyHost: "127.0.0.1", ports: 1...65_535))
            } catch {
                throw ValidationError("--server: \(error)")
            }
        }
        return (parsed[0].host, parsed[0].port, parsed.dropFirst().map { "\($0.host):\($0.port)" })
    }

    func clientConfiguration() throws -> ClientConfiguration {
        let (host, port, others) = try address()
        let dataDirectory = dataDir ?? ProcessInfo.processInfo.environment["TOKENCTL_DATA_DIR"] ?? "./ledger-data"
        let development = ClientConfiguration.development(dataDirectory: dataDirectory, host: host, port: port)
        var configuration = ClientConfiguration(
            host: host, port: port, caPath: ca ?? development.caPath,
            certificatePath: cert ?? development.certificatePath, privateKeyPath: key ?? development.privateKeyPath)
        configuration.servers = others
        configuration.callTimeout = .milliseconds(Int64(timeout * 1_000))
        configuration.connectTimeout = .milliseconds(Int64(min(timeout, 10) * 1_000))
        for (flag, path) in [("--ca", configuration.caPath), ("--cert", configuration.certificatePath ?? ""),
                             ("--key", configuration.privateKeyPath ?? "")]
        where !FileManager.default.isReadableFile(atPath: path) {
            throw CommandFailure(
                .usage, "\(flag) \(path) is not readable (start ledgerd once to create the development material, or pass \(flag))")
        }
        return configuration
    }

    /// Connects, runs `body`, prints its output; every failure becomes a one-line diagnostic and
    /// the documented exit code.
    func run(_ body: (LedgerClient) async throws -> Output) async throws {
        do {
            let client = try await LedgerClient.connect(try clientConfiguration())
            let output: Output
            do {
                output = try await body(client)
            } catch {
                await client.close()
                throw error
            }
            await client.close()
            output.print(json: json)
        } catch let failure as CommandFailure {
            failure.report()
        } catch let error as LedgerClientError {
            CommandFailure(error).report()
        }
    }
}
