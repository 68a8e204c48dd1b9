import Foundation
import Glibc
import LedgerClient
import LedgerCore
import LedgerTesting
import Testing

/// The operations listener of the real ledgerd: metrics scraped over HTTP after real calls, health
/// and readiness, readiness only after recovery.
@Suite("Operations listener")
struct OperationsListenerTests {
    /// A plain HTTP/1.1 GET over a socket; returns the status code and the body.
    static func get(_ port: Int, _ path: String) throws -> (Int, String) {
        guard let fd = loopbackSocket(port: port) else { throw ChildError("connect to \(port) failed: \(errno)") }
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            response += chunk[..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    /// The operations listener's port, from ledgerd's log (it is logged before recovery starts).
    static func metricsPort(log: String) async throws -> Int {
        for _ in 0..<300 {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            // Text logs say metrics.listen=HOST:PORT; JSON logs "metrics.listen":"HOST:PORT".
            if let range = text.range(of: "metrics.listen=127.0.0.1:") ?? text.range(of: #""metrics.listen":"127.0.0.1:"#) {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits) { return port }
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw ChildError("no operations listener in the log: \(log)")
    }

    /// The value of one sample line (`name{labels} value`) in an exposition.
    static func sample(_ exposition: String, _ series: String) -> Double? {
        for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test("metrics after real calls; /healthz, /readyz; unknown paths and methods refused")
    func metrics() async throws {
        let directory = TemporaryDirectory("ops-metrics")
        let data = directory.path + "/data"
        let log = directory.path + "/ledgerd.log"
        // Two shards, so that the per-shard series are seen for more than one.
        let ledgerd = try StartedLedgerd(dataPath: data, arguments: ["--metrics-listen", "127.0.0.1:0", "--shards", "2"], logPath: log)
        defer {
            ledgerd.process.kill(SIGTERM)
            ledgerd.process.wait()
        }
        let port = try await Self.metricsPort(log: log)
        let client = try await LedgerClient.connect(.development(dataDirectory: data, port: ledgerd.port))
        _ = try await client.createTenant("acme")
        _ = try await client.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 1_000))
        _ = try await client.reserve(tenant: "acme", hold: "h1", tokens: 100)
        _ = try await client.reserve(tenant: "acme", hold: "h2", tokens: 40)
        _ = try await client.commit(tenant: "acme", hold: "h1", amount: 80)
        await #expect(throws: LedgerClientError.self) { _ = try await client.balance(tenant: "nobody") }

        let (status, body) = try Self.get(port, "/metrics")
        #expect(status == 200)
        #expect(Self.sample(body, #"tokenledger_calls_total{rpc="reserve",code="ok"}"#) == 2)
        #expect(Self.sample(body, #"tokenledger_calls_total{rpc="commit",code="ok"}"#) == 1)
        #expect(Self.sample(body, #"tokenledger_calls_total{rpc="balance",code="not_found"}"#) == 1)
        #expect(Self.sample(body, #"tokenledger_call_duration_seconds_count{rpc="reserve"}"#) == 2)
        #expect(Self.sample(body, "tokenledger_tenants") == 1)
        #expect(Self.sample(body, "tokenledger_open_holds") == 1)
        // Made by commands and holding tokens: hot.
        #expect(Self.sample(body, "tokenledger_tenants_frozen") == 0)
        #expect(Self.sample(body, "tokenledger_tokens_held") == 40)
        #expect(Self.sample(body, "tokenledger_connections") == 1)
        #expect((Self.sample(body, "tokenledger_wal_records_total") ?? 0) >= 6)
        #expect((Self.sample(body, "tokenledger_wal_fsyncs_total") ?? 0) >= 1)
        // The metering calls were synced by the event loop that read them (all three, but for a
        // rare one that found the writer thread mid-batch).
        #expect((Self.sample(body, "tokenledger_wal_event_loop_fsyncs_total") ?? 0) >= 1)
        #expect(Self.sample(body, #"tokenledger_recovery_seconds{shard="0"}"#) != nil)
        #expect(Self.sample(body, #"tokenledger_snapshot_age_seconds{shard="1"}"#) != nil)
        #expect(body.contains("# TYPE tokenledger_call_duration_seconds histogram"))
        #expect(try Self.get(port, "/healthz").0 == 200)
        #expect(try Self.get(port, "/readyz") == (200, "ready\n"))
        #expect(try Self.get(port, "/nope").0 == 404)
        await client.close()
    }

    @Test("readiness flips to ready only after recovery")
    func readinessAfterRecovery() async throws {
        let directory = TemporaryDirectory("ops-ready")
        let data = directory.path + "/data"
        // A log to replay: ledger-load's pairs, then SIGKILL so that no final snapshot is written.
        let first = try StartedLedgerd(dataPath: data, arguments: ["--metrics-listen", "off"], logPath: directory.path + "/first.log")
        let load = try ChildProcess(
            builtProduct("ledger-load"),
            ["--server", "127.0.0.1:\(first.port)", "--data-dir", data, "--tenants", "50", "--operations", "15000",
             "--connections", "4", "--pipeline", "16", "--no-check", "--quiet"],
            stderrPath: directory.path + "/load.log")
        while load.readLine() != nil {}
        #expect(load.wait() == 0)
        first.process.kill(SIGKILL)
        first.process.wait()

        // Recovery of this log can finish before the first probe when the test is descheduled
        // (parallel runs): such an attempt shows nothing, and the server is killed (no snapshot,
        // the same log to replay) and started again, up to five times.
        var seen: [String] = []
        var log = ""
        for attempt in 1...5 {
            log = directory.path + "/second-\(attempt).log"
            let second = try ChildProcess(
                builtProduct("ledgerd"), ["--data-dir", data, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
                stderrPath: log)
            defer {
                second.kill(SIGKILL)
                second.wait()
            }
            let port = try await Self.metricsPort(log: log)
            seen = []
            for _ in 0..<3_000 {
                let (status, body) = (try? Self.get(port, "/readyz")) ?? (0, "")
                let state = "\(status) \(body.trimmingCharacters(in: .whitespacesAndNewlines))"
                if seen.last != state { seen.append(state) }
                if status == 200 { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            if seen.first == "503 recovering" { break }
        }
        #expect(seen.first == "503 recovering", "readiness before recovery finished: \(seen)")
        #expect(seen.last == "200 ready", "readiness after recovery: \(seen)")
        // By then the server answers, and the log says the shards were recovered before it was ready.
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("wal.records_replayed=") && !text.contains("wal.records_replayed=0 "))
    }
}
