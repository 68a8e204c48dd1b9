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
        let started = try StartedLedgerd(
            dataPath: directory.path + "/ledger-data", arguments: arguments, logPath: directory.path + "/ledgerd.log")
        process = started.process
        port = started.port
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

    /// Runs a process to completion with posix_spawn (not Foundation's Process, whose run-loop
    /// based waiting blocks a cooperative thread in ways the rest of the suite can stall on);
    /// stdout and stderr go to files, read after the process exits.
    static func run(_ executable: String, _ arguments: [String], directory: String, environment: [String: String]) throws -> Run {
        let outputPath = directory + "/.tokenctl-\(UUID().uuidString)"
        defer {
            unlink(outputPath + ".out")
            unlink(outputPath + ".err")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, outputPath + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let environmentStrings = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { environmentStrings.forEach { free($0) } }
        // The working directory is set by a shell (`posix_spawn_file_actions_addchdir_np` is not in
        // Glibc's Swift module): sh -c 'cd DIR && exec PROGRAM ARGS...'.
        let argv = (["/bin/sh", "-c", #"cd "$0" && exec "$@""#, directory, executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let result = posix_spawn(&pid, "/bin/sh", &actions, nil, argv, environmentStrings)
        guard result == 0 else { throw ChildError("posix_spawn \(executable) failed: \(result)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let exitStatus = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return Run(
            status: exitStatus,
            stdout: (try? String(contentsOfFile: outputPath + ".out", encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: outputPath + ".err", encoding: .utf8)) ?? "")
    }
}
