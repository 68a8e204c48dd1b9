import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerClient
import LedgerGRPC
import LedgerServer
import LedgerTLS
import LedgerTesting
import Testing

/// Certificate rotation without a restart: the real ledgerd, SIGHUP, new material for new
/// handshakes, old connections untouched, bad material refused.
@Suite("TLS reload on SIGHUP")
struct CertificateReloadTests {
    /// A CA, a server certificate for 127.0.0.1 and an admin client certificate, in `directory`.
    static func makePKI(_ directory: String, name: String) throws -> String {
        let path = directory + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let authority = try CertificateAuthority(commonName: "\(name) CA")
        try DevelopmentTLS.write(try authority.certificatePEM, to: path + "/ca.pem", private: false)
        let server = try authority.issueServer(commonName: "localhost", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
        try DevelopmentTLS.write(server.certificatePEM, to: path + "/server.pem", private: false)
        try DevelopmentTLS.write(server.privateKeyPEM, to: path + "/server-key.pem", private: true)
        let admin = try authority.issueClient(commonName: "admin")
        try DevelopmentTLS.write(admin.certificatePEM, to: path + "/admin.pem", private: false)
        try DevelopmentTLS.write(admin.privateKeyPEM, to: path + "/admin-key.pem", private: true)
        return path
    }

    static func install(_ pki: String, into live: String) throws {
        for name in ["ca.pem", "server.pem", "server-key.pem"] {
            let data = try Data(contentsOf: URL(fileURLWithPath: pki + "/" + name))
            try data.write(to: URL(fileURLWithPath: live + "/" + name), options: .atomic)
        }
    }

    static func client(_ pki: String, port: Int) async throws -> LedgerClient {
        var configuration = ClientConfiguration(
            host: "127.0.0.1", port: port, caPath: pki + "/ca.pem", certificatePath: pki + "/admin.pem",
            privateKeyPath: pki + "/admin-key.pem")
        configuration.retry = RetryPolicy(attempts: 1)
        configuration.connectTimeout = .seconds(5)
        configuration.callTimeout = .seconds(5)
        return try await LedgerClient.connect(configuration)
    }

    /// True when a fresh client of `pki` completes a call.
    static func works(_ pki: String, port: Int) async -> Bool {
        guard let client = try? await client(pki, port: port) else { return false }
        let healthy = (try? await client.health().status) == "serving"
        await client.close()
        return healthy
    }

    /// True when a grpc-swift-2 client of `pki` (the generated Swift stub) completes a call on the
    /// gRPC port.
    static func grpcWorks(_ pki: String, port: Int) async -> Bool {
        do {
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: "127.0.0.1", port: port),
                transportSecurity: .mTLS(
                    certificateChain: [.file(path: pki + "/admin.pem", format: .pem)],
                    privateKey: .file(path: pki + "/admin-key.pem", format: .pem)
                ) { $0.trustRoots = .certificates([.file(path: pki + "/ca.pem", format: .pem)]) })
            return try await withGRPCClient(transport: transport) { client in
                var options = CallOptions.defaults
                options.timeout = .seconds(5)
                let health = try await Tokenledger_V1_Ledger.Client(wrapping: client).health(.init(), options: options)
                return health.status == "serving"
            }
        } catch {
            return false
        }
    }

    @Test("new handshakes use the new certificate and CA, an old connection keeps working, bad material is refused")
    func rotation() async throws {
        let directory = TemporaryDirectory("tls-reload")
        let old = try Self.makePKI(directory.path, name: "old")
        let new = try Self.makePKI(directory.path, name: "new")
        let live = directory.path + "/live"
        try FileManager.default.createDirectory(atPath: live, withIntermediateDirectories: true)
        try Self.install(old, into: live)
        let ledgerd = try StartedLedgerd(
            dataPath: directory.path + "/data",
            arguments: ["--tls-cert", live + "/server.pem", "--tls-key", live + "/server-key.pem", "--tls-ca", live + "/ca.pem"],
            logPath: directory.path + "/ledgerd.log")
        defer {
            ledgerd.process.kill(SIGTERM)
            ledgerd.process.wait()
        }
        let port = ledgerd.port
        let established = try await Self.client(old, port: port)
        #expect(try await established.health().status == "serving")
        #expect(await Self.works(old, port: port))
        #expect(!(await Self.works(new, port: port)), "the new PKI is not trusted before the reload")
        let grpcPort = try #require(ledgerd.grpcPort)
        #expect(await Self.grpcWorks(old, port: grpcPort))
        #expect(!(await Self.grpcWorks(new, port: grpcPort)))

        try Self.install(new, into: live)
        ledgerd.process.kill(SIGHUP)
        var reloaded = false
        for _ in 0..<50 where !reloaded {
            reloaded = await Self.works(new, port: port)
            if !reloaded { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(reloaded, "a client of the new PKI is served after SIGHUP")
        #expect(!(await Self.works(old, port: port)), "new handshakes no longer use the old material")
        #expect(await Self.grpcWorks(new, port: grpcPort), "the gRPC port reloads too")
        #expect(!(await Self.grpcWorks(old, port: grpcPort)))
        #expect(try await established.health().status == "serving", "the connection made before the reload keeps working")

        // Bad material: a CA file that is not PEM. The reload fails, the server keeps the new
        // material and goes on serving.
        try "not a certificate".write(toFile: live + "/ca.pem", atomically: true, encoding: .utf8)
        ledgerd.process.kill(SIGHUP)
        try await Task.sleep(for: .milliseconds(500))
        #expect(await Self.works(new, port: port))
        let log = (try? String(contentsOfFile: directory.path + "/ledgerd.log", encoding: .utf8)) ?? ""
        #expect(log.contains("TLS material reloaded"))
        #expect(log.contains("TLS reload failed; the previous material stays in use"))
        await established.close()
    }
}
