import Crypto
import Foundation
import Glibc
import LedgerClient
import LedgerCore
import LedgerTesting
import Synchronization
import Testing

@Suite("Webhook sink")
struct WebhookTests {
    static let secret = "whsec-0123456789abcdef-test"

    static func start(_ directory: TemporaryDirectory, receiver: WebhookReceiver, log: String) throws -> StartedLedgerd {
        let secretPath = directory.path + "/webhook.secret"
        try (secret + "\n").write(toFile: secretPath, atomically: true, encoding: .utf8)
        return try StartedLedgerd(
            dataPath: directory.path + "/data",
            arguments: [
                "--metrics-listen", "off", "--webhook-url", "http://127.0.0.1:\(receiver.port)/hooks/ledger",
                "--webhook-secret-file", secretPath,
            ],
            logPath: log)
    }

    /// Independent of the server's code: HMAC-SHA256 over "TIMESTAMP." + body.
    static func expectedSignature(_ request: WebhookReceiver.Request) -> String {
        let timestamp = request.headers["x-tokenledger-timestamp"] ?? ""
        let code = HMAC<SHA256>.authenticationCode(
            for: Array("\(timestamp).".utf8) + request.body, using: SymmetricKey(data: Array(secret.utf8)))
        return "v1=" + code.map { String(format: "%02x", $0) }.joined()
    }

    /// Crosses the threshold of 500 down and up: creation (low), grant (the movement, then
    /// recovered), commit (the capture, then low): five events.
    static func makeEvents(_ client: LedgerClient, _ tenant: TenantID) async throws {
        _ = try await client.createTenant(tenant, settings: TenantSettings(lowBalanceThreshold: 500))
        _ = try await client.grant(tenant: tenant, GrantRequest(kind: .purchase, amount: 1_000))
        _ = try await client.reserve(tenant: tenant, hold: "job", tokens: 600)
        _ = try await client.commit(tenant: tenant, hold: "job", amount: 600)
    }

    @Test("deliveries are signed, retried with the same body until acknowledged, and complete in order")
    func signedAndRetried() async throws {
        let directory = TemporaryDirectory("webhook-retry")
        // The endpoint fails the first two attempts.
        let receiver = try WebhookReceiver { $0 <= 2 ? 503 : 200 }
        defer { receiver.close() }
        let ledgerd = try Self.start(directory, receiver: receiver, log: directory.path + "/ledgerd.log")
        defer {
            ledgerd.process.kill(SIGTERM)
            ledgerd.process.wait()
        }
        let client = try await LedgerClient.connect(.development(dataDirectory: directory.path + "/data", port: ledgerd.port))
        try await Self.makeEvents(client, "acme")
        await client.close()
        try await receiver.wait { $0.acknowledgedEvents().count >= 5 }
        let requests = receiver.received
        #expect(requests.count >= 3)
        for request in requests {
            #expect(request.path == "/hooks/ledger")
            #expect(request.headers["content-type"] == "application/json")
            #expect(request.headers["x-tokenledger-signature"] == Self.expectedSignature(request))
        }
        // The first delivery was refused twice and then sent again, identical but for the attempt.
        let first = requests[0]
        #expect(requests[1].body == first.body && requests[2].body == first.body)
        #expect(requests[0..<3].map { $0.headers["x-tokenledger-delivery"] } == Array(repeating: first.headers["x-tokenledger-delivery"], count: 3))
        #expect(requests[0..<3].map { $0.headers["x-tokenledger-attempt"] } == ["1", "2", "3"])
        #expect(requests[0..<3].map(\.status) == [503, 503, 200])
        // Every event of the tenant, each once, in id order, with its content.
        let events = receiver.acknowledgedEvents()
        #expect(events.map { $0["id"] as? Int } == [1, 2, 3, 4, 5])
        // The reserve holds 600 of 1,000 (low), the commit captures them.
        #expect(events.map { $0["type"] as? String } == ["low_balance", "granted", "balance_recovered", "low_balance", "captured"])
        #expect(events[1]["amount"] as? Int == 1_000 && events[1]["grant_kind"] as? String == "purchase")
        #expect(events[4]["hold"] as? String == "job" && events[4]["amount"] as? Int == 600 && events[4]["final"] as? Bool == true)
        #expect(events.allSatisfy { $0["tenant"] as? String == "acme" })
        #expect(events[3]["available"] as? Int == 400)
        #expect(events[3]["threshold"] as? Int == 500)
        // A forged signature would not match: the key matters.
        var forged = first
        forged.body = Array(String(decoding: first.body, as: UTF8.self).replacingOccurrences(of: "acme", with: "evil").utf8)
        #expect(Self.expectedSignature(forged) != first.headers["x-tokenledger-signature"])
    }

    @Test("events not acknowledged before a SIGKILL are delivered after the restart")
    func atLeastOnceAcrossCrash() async throws {
        let directory = TemporaryDirectory("webhook-crash")
        let receiver = try WebhookReceiver { _ in 500 }
        defer { receiver.close() }
        let log = directory.path + "/ledgerd.log"
        let first = try Self.start(directory, receiver: receiver, log: log)
        let client = try await LedgerClient.connect(.development(dataDirectory: directory.path + "/data", port: first.port))
        try await Self.makeEvents(client, "acme")
        await client.close()
        // The endpoint is failing: delivery is being retried when the process dies.
        try await receiver.wait { $0.received.count >= 2 }
        first.process.kill(SIGKILL)
        first.process.wait()
        #expect(receiver.acknowledgedEvents().isEmpty)
        receiver.setPolicy { _ in 204 }
        let second = try Self.start(directory, receiver: receiver, log: directory.path + "/ledgerd-2.log")
        defer {
            second.process.kill(SIGTERM)
            second.process.wait()
        }
        try await receiver.wait { $0.acknowledgedEvents().count >= 5 }
        #expect(receiver.acknowledgedEvents().map { $0["id"] as? Int } == [1, 2, 3, 4, 5])
        // The cursor records what was acknowledged, so a clean restart sends nothing again.
        let cursorPath = directory.path + "/data/webhook-cursor.json"
        try await receiver.wait { _ in ((try? String(contentsOfFile: cursorPath, encoding: .utf8)) ?? "").contains("\"acme\":5") }
    }

    @Test("a damaged cursor file stops the start and is named; it is never silently replaced")
    func damagedCursor() async throws {
        let directory = TemporaryDirectory("webhook-cursor")
        let receiver = try WebhookReceiver { _ in 200 }
        defer { receiver.close() }
        let data = directory.path + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try "{\"format\":1,\"tenants\":{\"acme\":\"seven\"}}".write(toFile: data + "/webhook-cursor.json", atomically: true, encoding: .utf8)
        let log = directory.path + "/ledgerd.log"
        #expect(throws: ChildError.self) { _ = try Self.start(directory, receiver: receiver, log: log) }
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.contains("webhook-cursor.json: bad entry for acme"))
        #expect(try String(contentsOfFile: data + "/webhook-cursor.json", encoding: .utf8).contains("seven"))
        #expect(receiver.received.isEmpty)
    }
}
