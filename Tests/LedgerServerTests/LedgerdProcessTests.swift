import Foundation
import Glibc
import LedgerClient
import LedgerCore
import LedgerEngine
import LedgerTesting
import Testing

/// The real `ledgerd` binary, as README.md's first command starts it: embedded defaults,
/// development TLS created on first start, the demo catalog, SIGTERM for a clean stop.
@Suite("ledgerd, the process")
struct LedgerdProcessTests {
    /// Starts ledgerd on a free port and reads its banner; its log is `<dataPath>.log`.
    static func start(_ dataPath: String, _ extra: [String] = []) throws -> StartedLedgerd {
        do {
            return try StartedLedgerd(dataPath: dataPath, arguments: extra, logPath: dataPath + ".log")
        } catch {
            throw ChildError("\(error), log: \(log(dataPath))")
        }
    }

    static func log(_ dataPath: String) -> String {
        (try? String(contentsOfFile: dataPath + ".log", encoding: .utf8)) ?? ""
    }

    @Test("starts on defaults, serves the dev admin, refuses a second process, stops cleanly, keeps state")
    func lifecycle() async throws {
        let directory = TemporaryDirectory("ledgerd")
        let dataPath = directory.path + "/data"
        let first = try Self.start(dataPath, ["--shards", "2"])
        #expect(first.banner.contains { $0.contains("--ca \(dataPath)/tls/ca.pem") })
        for file in ["ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "admin.pem", "admin-key.pem"] {
            #expect(FileManager.default.fileExists(atPath: "\(dataPath)/tls/\(file)"), "\(file)")
        }
        let keyMode = try FileManager.default.attributesOfItem(atPath: "\(dataPath)/tls/admin-key.pem")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)

        let client = try await LedgerClient.connect(.development(dataDirectory: dataPath, port: first.port))
        #expect(try await client.catalog().version == PriceCatalog.demo.version)
        _ = try await client.createTenant("acme")
        _ = try await client.purchase(tenant: "acme", moneyMinor: 5_000)
        _ = try await client.reserve(tenant: "acme", hold: "h", items: [PricedItem(feature: "transcription", quantity: 37)])
        let before = try await client.balance(tenant: "acme")
        #expect(before.reserved == 296)

        // A second process on the same data directory is refused with exit code 72.
        let second = try ChildProcess(
            builtProduct("ledgerd"), ["--data-dir", dataPath, "--listen", "127.0.0.1:0"], stderrPath: dataPath + ".second.log")
        #expect(second.wait() == StorageExitCode.dataDirectory)

        // SIGTERM: drain, flush, final snapshot, exit 0. The open connection is closed for us.
        first.process.kill(SIGTERM)
        #expect(first.process.wait() == 0)
        #expect(Self.log(dataPath).contains("server stopped"))
        await client.close()

        // Restart: nothing to replay past the final snapshot, and every balance as it was.
        let restarted = try Self.start(dataPath)
        let replayed = Self.log(dataPath).components(separatedBy: "\n").filter { $0.contains("shard recovered") }.suffix(2)
        #expect(replayed.count == 2)
        #expect(replayed.allSatisfy { $0.contains("wal.records_replayed=0") }, "\(replayed)")
        let again = try await LedgerClient.connect(.development(dataDirectory: dataPath, port: restarted.port))
        var after = try await again.balance(tenant: "acme")
        after.timeMs = before.timeMs
        #expect(after == before)
        await again.close()
        restarted.process.kill(SIGINT)
        #expect(restarted.process.wait() == 0)
    }

    @Test("ledgerd executes itself once with glibc's tcache set to 256 blocks, keeping an operator's own setting")
    func mallocTuning() throws {
        let directory = TemporaryDirectory("ledgerd-malloc")
        /// The tunables the server runs with, as it logs them at start.
        var runs = 0
        func tunables(_ environment: [String: String]) throws -> String? {
            runs += 1
            let dataPath = directory.path + "/data-\(runs)"
            let server = try StartedLedgerd(dataPath: dataPath, logPath: dataPath + ".log", environment: environment)
            server.process.kill(SIGTERM)
            server.process.wait()
            let log = try String(contentsOfFile: dataPath + ".log", encoding: .utf8)
            guard let line = log.split(separator: "\n").first(where: { $0.contains("allocator") }),
                let range = line.range(of: "glibc.tunables=")
            else { return nil }
            return String(line[range.upperBound...].prefix { $0 != " " })
        }
        #expect(try tunables([:]) == "glibc.malloc.tcache_count=256")
        #expect(try tunables(["GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576"]) == "glibc.malloc.trim_threshold=1048576:glibc.malloc.tcache_count=256")
        #expect(try tunables(["GLIBC_TUNABLES": "glibc.malloc.tcache_count=7"]) == "glibc.malloc.tcache_count=7")
    }

    @Test("--event-loops 1 with a sync interval: one shard by default, calls made durable, state kept across a restart")
    func oneLoopAndASyncInterval() async throws {
        let directory = TemporaryDirectory("ledgerd-one-loop")
        let dataPath = directory.path + "/data"
        let first = try Self.start(dataPath, ["--event-loops", "1", "--sync-interval-us", "2000"])
        #expect(first.banner.joined(separator: "\n").contains("(1 shard)"), "\(first.banner)")
        let client = try await LedgerClient.connect(.development(dataDirectory: dataPath, port: first.port))
        _ = try await client.createTenant("acme")
        _ = try await client.grant(tenant: "acme", GrantRequest(kind: .purchase, amount: 1_000))
        // Calls in flight together, each waiting for a sync that the interval may hold back.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<40 {
                group.addTask { _ = try await client.charge(tenant: "acme", hold: HoldID("c\(index)"), tokens: 5) }
            }
            try await group.waitForAll()
        }
        #expect(try await client.balance(tenant: "acme").available == 800)
        await client.close()
        first.process.kill(SIGKILL)
        first.process.wait()
        // Every acknowledged charge was durable: it survives a SIGKILL.
        let second = try Self.start(dataPath, ["--event-loops", "1"])
        defer {
            second.process.kill(SIGTERM)
            second.process.wait()
        }
        let again = try await LedgerClient.connect(.development(dataDirectory: dataPath, port: second.port))
        #expect(try await again.balance(tenant: "acme").available == 800)
        await again.close()
    }

    @Test("flags win over LEDGERD_* variables, which win over the config file; --log-format json writes JSON lines")
    func environmentAndJSONLogs() throws {
        let directory = TemporaryDirectory("ledgerd-environment")
        let dataPath = directory.path + "/data"
        let configPath = directory.path + "/ledgerd.json"
        // The file says 2 shards and text logs; the environment says 3 shards and JSON; the flag 4 shards.
        try #"{"shards": 2, "log_format": "text", "metrics_listen": "off"}"#.write(toFile: configPath, atomically: true, encoding: .utf8)
        let logPath = directory.path + "/ledgerd.log"
        let started = try StartedLedgerd(
            dataPath: dataPath, arguments: ["--shards", "4"], logPath: logPath,
            environment: ["LEDGERD_CONFIG": configPath, "LEDGERD_SHARDS": "3", "LEDGERD_LOG_FORMAT": "json"])
        started.process.kill(SIGTERM)
        #expect(started.process.wait() == 0)
        #expect(started.banner.joined(separator: "\n").contains("(4 shards)"), "\(started.banner)")
        let lines = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n")
        #expect(lines.count >= 4)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["time"] is String && object?["level"] is String && object?["message"] is String, "\(line)")
        }
        #expect(lines.contains { $0.contains(#""message":"shard recovered""#) && $0.contains(#""shard":"3""#) })

        // Without the flag the environment's 3 would apply, but the directory has 4 now: refused, naming both.
        let refused = try ChildProcess(
            builtProduct("ledgerd"), ["--data-dir", dataPath, "--listen", "127.0.0.1:0"], stderrPath: logPath,
            environment: ["LEDGERD_SHARDS": "3", "LEDGERD_METRICS_LISTEN": "off"])
        #expect(refused.wait() == 72)
        // A misspelt variable is refused like an unknown flag.
        let misspelt = try ChildProcess(
            builtProduct("ledgerd"), ["--data-dir", dataPath], stderrPath: logPath, environment: ["LEDGERD_SHARD": "3"])
        let status = misspelt.wait()
        #expect(status != 0 && status < 128)
        #expect(try String(contentsOfFile: logPath, encoding: .utf8).contains("unknown environment variable LEDGERD_SHARD"))
    }

    @Test("bad configuration is a clear error and a non-zero exit, never a crash")
    func badConfiguration() throws {
        let directory = TemporaryDirectory("ledgerd-config")
        let dataPath = directory.path + "/data"
        let cases: [([String], String)] = [
            (["--listen", "nowhere"], "HOST:PORT"),
            (["--listen", "127.0.0.1:99999"], "port"),
            (["--shards", "0"], "--shards"),
            (["--event-loops", "0"], "--event-loops must be 1 to 256, not 0"),
            (["--sync-interval-us", "-5"], "--sync-interval-us"),
            (["--coalesce-us", "20000"], "--coalesce-us must be 0 to 10000, not 20000"),
            (["--storage", "postgres", "--postgres-url", "postgres://u@127.0.0.1:5432/d", "--coalesce-us", "500"], "--coalesce-us is the local mode's"),
            (["--tls-cert", "/nonexistent.pem"], "--tls-key"),
            (["--log-level", "loud"], "log level"),
            (["--catalog", "/nonexistent.json"], "catalog"),
            (["--idle-timeout=0"], "--idle-timeout must be 1 to 86400, not 0"),
            (["--in-flight-max", "many"], "--in-flight-max must be a whole number"),
            (["--shard", "2"], "unknown option --shard"),
            (["--grpc-listen", "nowhere"], "--grpc-listen"),
            (["--otel-endpoint", "127.0.0.1:4317"], "--otel-endpoint must be an http:// or https:// URL"),
            (["--trace-tenant-ids"], "--trace-tenant-ids needs --otel-endpoint"),
            (["--trace-tenant-ids=maybe"], "--trace-tenant-ids must be true or false"),
        ]
        for (arguments, message) in cases {
            let logPath = directory.path + "/bad.log"
            let process = try ChildProcess(builtProduct("ledgerd"), ["--data-dir", dataPath] + arguments, stderrPath: logPath)
            let status = process.wait()
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            #expect(status != 0 && status < 128, "\(arguments): exit \(status)")
            #expect(log.contains(message), "\(arguments): \(log)")
            try? FileManager.default.removeItem(atPath: logPath)
        }

        // A config file with an unknown setting names it.
        let configPath = directory.path + "/ledgerd.json"
        try #"{"listen": "127.0.0.1:0", "shard": 3}"#.write(toFile: configPath, atomically: true, encoding: .utf8)
        let logPath = directory.path + "/config.log"
        let process = try ChildProcess(builtProduct("ledgerd"), ["--config", configPath], stderrPath: logPath)
        #expect(process.wait() != 0)
        #expect(((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").contains("unknown setting \"shard\""))
        // The same range check as the flag's.
        try #"{"listen": "127.0.0.1:0", "idle_timeout_s": 0}"#.write(toFile: configPath, atomically: true, encoding: .utf8)
        let ranged = try ChildProcess(builtProduct("ledgerd"), ["--config", configPath], stderrPath: logPath)
        #expect(ranged.wait() != 0)
        #expect(((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").contains("idle_timeout_s must be 1 to 86400, not 0"))

        // A data directory made with 2 shards refuses to open with 3.
        let started = try Self.start(dataPath, ["--shards", "2"])
        started.process.kill(SIGTERM)
        let stopped = started.process.wait()
        #expect(stopped == 0, "exit \(stopped) after SIGTERM; log: \(Self.log(dataPath))")
        let mismatch = try ChildProcess(
            builtProduct("ledgerd"), ["--data-dir", dataPath, "--listen", "127.0.0.1:0", "--shards", "3"],
            stderrPath: directory.path + "/mismatch.log")
        #expect(mismatch.wait() == StorageExitCode.dataDirectory)
    }
}
