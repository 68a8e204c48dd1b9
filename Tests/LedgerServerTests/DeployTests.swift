import Foundation
import Glibc
import LedgerClient
import LedgerCore
import LedgerServerTesting
import LedgerTesting
import Testing

/// deploy/: the example config starts the real ledgerd, the dashboard and the alert rules name only
/// metrics that a running ledgerd exports, and ledgerd speaks systemd's readiness protocol.
/// (`promtool check rules` and `systemd-analyze verify` run in scripts/test.)
@Suite("Deploy")
struct DeployTests {
    static let deploy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("deploy").path

    /// Every `tokenledger_*` name in a text.
    static func metricNames(_ text: String) -> Set<String> {
        var names: Set<String> = []
        var rest = Substring(text)
        while let range = rest.range(of: "tokenledger_") {
            let name = rest[range.lowerBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            names.insert(String(name))
            rest = rest[name.endIndex...]
        }
        return names
    }

    @Test("the example config starts ledgerd; the dashboard's and the alert rules' metrics are all exported")
    func configDashboardAndRules() async throws {
        let directory = TemporaryDirectory("deploy")
        let data = directory.path + "/data"
        let log = directory.path + "/ledgerd.log"
        let secret = directory.path + "/webhook-secret"
        try "0123456789abcdef0123456789abcdef".write(toFile: secret, atomically: true, encoding: .utf8)
        let catalog = directory.path + "/catalog.json"
        try PriceCatalog.demoJSON.write(toFile: catalog, atomically: true, encoding: .utf8)
        // The example config as shipped; only its paths and ports are pointed at this test (the
        // test PKI for TLS and access). A webhook (to a closed port) so that its metrics exist.
        let pki = TestPKI.shared
        let ledgerd = try StartedLedgerd(
            dataPath: data,
            arguments: [
                "--config", Self.deploy + "/ledgerd.json", "--metrics-listen", "127.0.0.1:0", "--catalog", catalog,
                "--tls-cert", pki.path("server.pem"), "--tls-key", pki.path("server-key.pem"), "--tls-ca", pki.path("ca.pem"),
                "--access", pki.path("access.json"), "--webhook-url", "http://127.0.0.1:1/hook", "--webhook-secret-file", secret,
            ],
            logPath: log)
        defer {
            ledgerd.process.kill(SIGTERM)
            ledgerd.process.wait()
        }
        let port = try await OperationsListenerTests.metricsPort(log: log)
        let client = try await LedgerClient.connect(pki.clientConfiguration("admin", port: ledgerd.port))
        _ = try await client.createTenant("acme")
        _ = try await client.health()
        let (status, body) = try OperationsListenerTests.get(port, "/metrics")
        #expect(status == 200)
        let exported = Self.metricNames(body)
        #expect(exported.contains("tokenledger_connections_max"))
        #expect(exported.contains("tokenledger_maintenance_failures_total"))

        let dashboard = try String(contentsOfFile: Self.deploy + "/grafana-dashboard.json", encoding: .utf8)
        let panels = try #require(
            (try JSONSerialization.jsonObject(with: Data(dashboard.utf8)) as? [String: Any])?["panels"] as? [[String: Any]])
        let expressions = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(expressions.count >= panels.count)
        let onDashboard = Self.metricNames(expressions.joined(separator: "\n"))
        #expect(onDashboard.count >= 20)
        #expect(onDashboard.subtracting(exported).isEmpty, "on the dashboard, not exported: \(onDashboard.subtracting(exported).sorted())")

        let rules = try String(contentsOfFile: Self.deploy + "/prometheus-alerts.yml", encoding: .utf8)
        let inRules = Self.metricNames(rules)
        #expect(inRules.count >= 8)
        #expect(inRules.subtracting(exported).isEmpty, "in the alert rules, not exported: \(inRules.subtracting(exported).sorted())")
    }

    @Test("ledgerd tells systemd READY=1 once it listens and STOPPING=1 when it drains")
    func systemdNotify() throws {
        let directory = TemporaryDirectory("notify")
        let socketPath = directory.path + "/notify.sock"
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(descriptor >= 0)
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in socketPath.utf8.enumerated() { buffer[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func receive() -> String {
            var buffer = [UInt8](repeating: 0, count: 256)
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : "nothing (errno \(errno))"
        }
        let ledgerd = try StartedLedgerd(
            dataPath: directory.path + "/data", arguments: ["--metrics-listen", "off"], logPath: directory.path + "/ledgerd.log",
            environment: ["NOTIFY_SOCKET": socketPath])
        #expect(receive() == "READY=1")
        ledgerd.process.kill(SIGTERM)
        #expect(receive() == "STOPPING=1")
        #expect(ledgerd.process.wait() == 0)
    }
}
