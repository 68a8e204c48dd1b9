import Foundation
import LedgerClient
import LedgerCore
import LedgerTesting
import Testing

/// ledger-load, the real binary, against a real ledgerd and against its own echo server.
@Suite("ledger-load")
struct LoadHarnessTests {
    /// Runs ledger-load with `arguments`; returns its exit status and its JSON report.
    static func load(_ arguments: [String], log: String) throws -> (Int32, [String: Any]) {
        let process = try ChildProcess(builtProduct("ledger-load"), arguments + ["--json", "--quiet"], stderrPath: log)
        var lines: [String] = []
        while let line = process.readLine() { lines.append(line) }
        let status = process.wait()
        let report = lines.last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        guard let report else {
            throw ChildError("ledger-load printed no JSON (status \(status)): \(lines), log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
        return (status, report)
    }

    /// Runs ledger-load with `arguments` against `ledger-load echo-server`, started for the run on a
    /// fresh data directory and stopped after it; returns its exit status and its JSON report.
    static func loadAgainstEcho(_ name: String, _ arguments: [String]) throws -> (Int32, [String: Any]) {
        let directory = TemporaryDirectory(name)
        let data = directory.path + "/data"
        let echo = try ChildProcess(
            builtProduct("ledger-load"), ["echo-server", "--data-dir", data], stderrPath: directory.path + "/echo.log")
        defer {
            echo.kill(SIGTERM)
            echo.wait()
        }
        guard let banner = echo.readLine(), let port = Int(banner.split(separator: ":").last ?? "") else {
            throw ChildError("the echo server printed no port")
        }
        return try load(
            ["--server", "127.0.0.1:\(port)", "--data-dir", data, "--echo"] + arguments, log: directory.path + "/load.log")
    }

    @Test("a mixed workload: every call kind measured, no errors, and the invariant check passes")
    func mixedWorkload() async throws {
        let directory = TemporaryDirectory("load")
        let data = directory.path + "/data"
        let ledgerd = try StartedLedgerd(dataPath: data, logPath: directory.path + "/ledgerd.log")
        defer {
            ledgerd.process.kill(SIGTERM)
            ledgerd.process.wait()
        }
        let cpuBefore = try #require(Self.cpuSeconds(ledgerd.process.pid))
        let (status, report) = try Self.load(
            [
                "--server", "127.0.0.1:\(ledgerd.port)", "--data-dir", data, "--connections", "2", "--pipeline", "8",
                "--tenants", "20", "--distribution", "zipf", "--operations", "400",
                "--mix", "pair=4,release=1,refund=1,estimate=1,balance=1", "--server-pid", "\(ledgerd.process.pid)",
            ], log: directory.path + "/load.log")
        let cpuWhole = try #require(Self.cpuSeconds(ledgerd.process.pid)) - cpuBefore
        #expect(status == 0)
        // --server-pid: ledgerd's CPU over the measured run, within what it spent over the whole
        // invocation (which adds the setup's 40 calls and the check's reads).
        let cpuRun = try #require(report["server_cpu_s"] as? Double)
        #expect(cpuRun >= 0 && cpuRun <= cpuWhole + 0.011, "run \(cpuRun) s, whole \(cpuWhole) s")
        #expect(report["errors_total"] as? Int == 0)
        let calls = try #require(report["calls"] as? Int)
        #expect(calls > 400 && calls <= 800)  // 400 operations of one or two calls
        let byCall = try #require(report["by_call"] as? [String: Any])
        #expect(Set(byCall.keys) == ["reserve", "commit", "release", "refund", "estimate", "balance"])
        let latency = try #require(report["latency_ms"] as? [String: Double])
        #expect(latency["p50"]! > 0 && latency["p50"]! <= latency["p99"]! && latency["p99"]! <= latency["max"]!)
        let check = try #require(report["check"] as? [String: Any])
        #expect(check["ok"] as? Bool == true)
        let confirmed = try #require(check["commits_confirmed"] as? Int)
        #expect(confirmed > 0 && check["captures_in_history"] as? Int == confirmed)
        #expect(check["tenants"] as? Int ?? 0 > 1)
    }

    @Test("--grpc: the same workload on the gRPC port, every call kind, no errors, the check passes")
    func grpcWorkload() async throws {
        let directory = TemporaryDirectory("load-grpc")
        let data = directory.path + "/data"
        let ledgerd = try StartedLedgerd(dataPath: data, logPath: directory.path + "/ledgerd.log")
        defer {
            ledgerd.process.kill(SIGTERM)
            ledgerd.process.wait()
        }
        let grpcPort = try #require(ledgerd.grpcPort)
        let (status, report) = try Self.load(
            [
                "--server", "127.0.0.1:\(ledgerd.port)", "--data-dir", data, "--grpc", "--grpc-server", "127.0.0.1:\(grpcPort)",
                "--connections", "2", "--pipeline", "4", "--tenants", "10", "--operations", "120",
                "--mix", "pair=4,release=1,refund=1,estimate=1,balance=1,charge=2",
            ], log: directory.path + "/load.log")
        #expect(status == 0)
        #expect(report["errors_total"] as? Int == 0)
        let byCall = try #require(report["by_call"] as? [String: Any])
        #expect(Set(byCall.keys) == ["reserve", "commit", "release", "refund", "estimate", "balance", "charge"])
        let check = try #require(report["check"] as? [String: Any])
        #expect(check["ok"] as? Bool == true)
        #expect(try #require(check["commits_confirmed"] as? Int) > 0)

        // The run's calls do go to the gRPC port: pointed at the framed port instead (no HTTP/2
        // there), every call fails.
        let (_, wrong) = try Self.load(
            [
                "--server", "127.0.0.1:\(ledgerd.port)", "--data-dir", data, "--grpc", "--grpc-server", "127.0.0.1:\(ledgerd.port)",
                "--connections", "1", "--pipeline", "1", "--tenants", "1", "--operations", "2", "--attempts", "1", "--no-check",
            ], log: directory.path + "/load-wrong.log")
        #expect((wrong["errors_total"] as? Int ?? 0) >= 2)
    }

    @Test("the check flags a capture in the history that no client saw")
    func checkFlagsAnUnseenCommit() async throws {
        let directory = TemporaryDirectory("load-check")
        let data = directory.path + "/data"
        let ledgerd = try StartedLedgerd(dataPath: data, logPath: directory.path + "/ledgerd.log")
        defer {
            ledgerd.process.kill(SIGTERM)
            ledgerd.process.wait()
        }
        // A commit under the run's hold prefix that ledger-load did not make.
        let client = try await LedgerClient.connect(.development(dataDirectory: data, port: ledgerd.port))
        _ = try await client.createTenant("chk-0")
        _ = try await client.grant(tenant: "chk-0", GrantRequest(kind: .promo, amount: 100))
        _ = try await client.reserve(tenant: "chk-0", hold: "zz-extra", tokens: 5)
        _ = try await client.commit(tenant: "chk-0", hold: "zz-extra", amount: 5)
        await client.close()

        let (status, report) = try Self.load(
            [
                "--server", "127.0.0.1:\(ledgerd.port)", "--data-dir", data, "--tenants", "1", "--tenant-prefix", "chk",
                "--hold-prefix", "zz", "--operations", "10", "--connections", "1", "--pipeline", "2",
            ], log: directory.path + "/load.log")
        #expect(status == 1)
        let check = try #require(report["check"] as? [String: Any])
        #expect(check["ok"] as? Bool == false)
        let violations = try #require(check["violations"] as? [String])
        #expect(violations.count == 1)
        #expect(violations.first?.contains("the history has 11 committed holds, the clients saw 10 commits succeed") == true)
    }

    /// utime+stime of `pid` in seconds, from /proc.
    static func cpuSeconds(_ pid: pid_t) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let end = stat.lastIndex(of: ")") else {
            return nil
        }
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    @Test("--server-pid names a process to measure: one that does not exist is refused before any call")
    func serverPIDMustExist() async throws {
        let directory = TemporaryDirectory("load-pid")
        let process = try ChildProcess(
            builtProduct("ledger-load"), ["--server", "127.0.0.1:1", "--server-pid", "2147483646", "--quiet"],
            stderrPath: directory.path + "/load.log")
        let status = process.wait()
        #expect(status != 0)
        let log = try String(contentsOfFile: directory.path + "/load.log", encoding: .utf8)
        #expect(log.contains("--server-pid 2147483646: no such process"), "\(log)")
    }

    @Test("the echo server answers every call kind over TLS without a ledger")
    func echoServer() async throws {
        let (status, report) = try Self.loadAgainstEcho(
            "load-echo", ["--operations", "300", "--mix", "pair=1,release=1,refund=1,estimate=1,balance=1"])
        #expect(status == 0)
        #expect(report["errors_total"] as? Int == 0)
        #expect(report["check"] is NSNull)
        #expect((report["calls"] as? Int ?? 0) >= 300)
    }

    @Test("--rate paces the calls: an open loop at the asked rate, not as fast as the lanes go")
    func openLoopRate() async throws {
        // 64 lanes that could each go thousands of times a second unpaced, asked for 400 calls a
        // second in all (reserve+commit pairs take two start times each).
        let (status, report) = try Self.loadAgainstEcho(
            "load-rate", ["--connections", "2", "--pipeline", "32", "--rate", "400", "--duration", "3"])
        #expect(status == 0)
        #expect(report["errors_total"] as? Int == 0)
        #expect(report["rate"] as? Int == 400 || report["rate"] as? Double == 400)
        let callsPerSecond = try #require(report["ops_s"] as? Double)
        #expect(callsPerSecond > 340 && callsPerSecond < 440, "\(callsPerSecond) calls/s")
        let calls = try #require(report["calls"] as? Int)
        #expect(calls > 1_000 && calls < 1_450, "\(calls) calls")
    }

    @Test("--redis: the pair script against a real Redis (appendfsync always), paced, and the check catches a tampered balance")
    func redis() async throws {
        let directory = TemporaryDirectory("load-redis")
        let port = Int.random(in: 30_000...59_000)
        let redis = try ChildProcess(
            "/usr/bin/redis-server",
            ["--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory.path, "--appendonly", "yes",
             "--appendfsync", "always", "--save", "", "--daemonize", "no"],
            stderrPath: directory.path + "/redis.log")
        defer {
            redis.kill(SIGTERM)
            redis.wait()
        }
        // Redis logs to stdout: read until it is ready (nil: it stopped).
        var ready = false
        while !ready, let line = redis.readLine() { ready = line.contains("Ready to accept connections") }
        try #require(ready, "redis-server did not start: \((try? String(contentsOfFile: directory.path + "/redis.log", encoding: .utf8)) ?? "")")
        let common = ["--redis", "--server", "127.0.0.1:\(port)", "--tenants", "20", "--tenant-prefix", "r"]
        let (status, report) = try Self.load(
            common + ["--connections", "2", "--pipeline", "16", "--rate", "400", "--duration", "2"], log: directory.path + "/load.log")
        #expect(status == 0)
        #expect(report["errors_total"] as? Int == 0)
        let pairsPerSecond = try #require(report["ops_s"] as? Double)
        #expect(pairsPerSecond > 340 && pairsPerSecond < 440, "\(pairsPerSecond) pairs/s")
        #expect((report["by_call"] as? [String: Any])?.keys.sorted() == ["pair_script"])
        let check = try #require(report["check"] as? [String: Any])
        #expect(check["ok"] as? Bool == true)
        let confirmed = try #require(check["commits_confirmed"] as? Int)
        #expect(confirmed == report["pairs"] as? Int && check["captures_in_history"] as? Int == confirmed)

        // One token appears from nowhere in a balance: the next run's check must say so.
        let tamper = try ChildProcess("/usr/bin/redis-cli", ["-p", "\(port)", "HINCRBY", "r:bal:3", "available", "1"])
        #expect(tamper.wait() == 0)
        let (tamperedStatus, tampered) = try Self.load(common + ["--operations", "50"], log: directory.path + "/load2.log")
        #expect(tamperedStatus != 0)
        let violations = try #require((tampered["check"] as? [String: Any])?["violations"] as? [String])
        #expect(violations == ["1 tenants do not conserve tokens"])
    }
}
