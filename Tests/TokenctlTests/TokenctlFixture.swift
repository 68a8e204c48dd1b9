import Foundation
import Glibc
import LedgerTesting
import Testing

/// A real `ledgerd` on a temporary directory and free port, and a way to run the real `tokenctl`
/// binary against it from that directory (so the default ./ledger-data material is found).
final class LiveLedger {
    let directory = TemporaryDirectory("tokenctl")
    let process: ChildProcess
    let port: Int

    var dataPath: String { directory.path + "/ledger-data" }

    init(arguments: [String] = []) throws {
        let dataPath = directory.path + "/ledger-data"
        process = try ChildProcess(
            builtProduct("ledgerd"), ["--data-dir", dataPath, "--listen", "127.0.0.1:0"] + arguments,
            stderrPath: directory.path + "/ledgerd.log")
        guard let first = process.readLine(), first.hasPrefix("ledgerd listening on 127.0.0.1:"),
            let port = Int(first.dropFirst("ledgerd listening on 127.0.0.1:".count).prefix { $0.isNumber })
        else {
            process.kill()
            process.wait()
            throw ChildError("ledgerd did not start")
        }
        self.port = port
    }

    /// Stops the server with SIGTERM and returns its exit status.
    @discardableResult
    func stop() -> Int32 {
        process.kill(SIGTERM)
        return process.wait()
    }

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String

        /// stdout as one JSON object.
        var object: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any] ?? [:]
        }

        /// stdout as JSON lines.
        var lines: [[String: Any]] {
            stdout.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
            }
        }
    }

    /// Runs tokenctl with `arguments` in the server's directory, against its port.
    func tokenctl(_ arguments: [String], server: String? = nil) throws -> Run {
        try Self.run(
            builtProduct("tokenctl"), arguments, directory: directory.path,
            environment: ["TOKENCTL_SERVER": server ?? "127.0.0.1:\(port)"])
    }

    func tokenctl(_ line: String) throws -> Run {
        try tokenctl(line.split(separator: " ").map(String.init))
    }

    static func run(_ executable: String, _ arguments: [String], directory: String, environment: [String: String]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: err, as: UTF8.self))
    }
}
