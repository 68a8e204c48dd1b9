import LedgerStore
/// A real `ledgerd` (built next to the test bundle) on a free loopback port, its banner read.
public struct StartedLedgerd {
    public let process: ChildProcess
    public let port: Int
    /// The gRPC port, when ledgerd serves one (the banner's "gRPC on" line).
    public let grpcPort: Int?
    /// The lines ledgerd printed on start (where it listens, how to connect).
    public let banner: [String]

    /// Starts `ledgerd --data-dir dataPath --listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 arguments...`
    /// (the gRPC port on a free port too, unless `arguments` name one) with stderr to `logPath`;
    /// throws (after killing it) if it does not print where it listens.
    public init(dataPath: String, arguments: [String] = [], logPath: String, environment: [String: String] = [:]) throws {
        let grpc = arguments.contains { $0.hasPrefix("--grpc-listen") } ? [] : ["--grpc-listen", "127.0.0.1:0"]
        let process = try ChildProcess(
            builtProduct("ledgerd"), ["--data-dir", dataPath, "--listen", "127.0.0.1:0"] + grpc + arguments, stderrPath: logPath,
            environment: environment)
        var banner: [String] = []
        while let line = process.readLine() {
            banner.append(line)
            if line.hasPrefix("  stop with") { break }
        }
        let prefix = "ledgerd listening on 127.0.0.1:"
        guard let first = banner.first, first.hasPrefix(prefix), let port = Int(first.dropFirst(prefix.count).prefix { $0.isNumber })
        else {
            process.kill()
            let status = process.wait()
            // What ledgerd said on its way out, so that a failure seen once can be understood.
            let log = (try? FileSystem.readFile(logPath)).map { String(decoding: $0.suffix(2_000), as: UTF8.self) } ?? "no log"
            throw ChildError("ledgerd did not start (exit status \(status)): \(banner); its log ends: \(log)")
        }
        self.process = process
        self.port = port
        let grpcPrefix = "  gRPC on 127.0.0.1:"
        grpcPort = banner.first { $0.hasPrefix(grpcPrefix) }.flatMap { Int($0.dropFirst(grpcPrefix.count).prefix { $0.isNumber }) }
        self.banner = banner
    }
}
