import Foundation
import LedgerClient
import LedgerCore
import LedgerEngine
import LedgerServer
import LedgerStore
import LedgerTLS
import LedgerTesting
import LedgerWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// TLS material for the tests, made once per process with the same `CertificateAuthority` that
/// `ledgerd` uses: a CA, the server's certificate, client certificates for each principal of
/// the access file, one for a name the access file does not know, and one from a foreign CA.
package final class TestPKI: Sendable {
    package let directory: String
    package static let shared = try! TestPKI()

    /// Principals of the test access file.
    package static let accessJSON = """
        {"principals": [
          {"name": "admin", "role": "admin"},
          {"name": "meter", "role": "service", "tenants": ["acme", "initech"]},
          {"name": "meter-all", "role": "service", "tenants": "*"},
          {"name": "acme-web", "role": "tenant", "tenant": "acme"}
        ]}
        """

    private init() throws {
        var template = Array("/tmp/ledger-pki-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil)
        directory = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let authority = try CertificateAuthority(commonName: "test CA")
        try DevelopmentTLS.write(try authority.certificatePEM, to: path("ca.pem"), private: false)
        let server = try authority.issueServer(commonName: "localhost", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
        try DevelopmentTLS.write(server.certificatePEM, to: path("server.pem"), private: false)
        try DevelopmentTLS.write(server.privateKeyPEM, to: path("server-key.pem"), private: true)
        for name in ["admin", "meter", "meter-all", "acme-web", "stranger"] {
            let issued = try authority.issueClient(commonName: name)
            try DevelopmentTLS.write(issued.certificatePEM, to: path("\(name).pem"), private: false)
            try DevelopmentTLS.write(issued.privateKeyPEM, to: path("\(name)-key.pem"), private: true)
        }
        let foreign = try CertificateAuthority(commonName: "foreign CA")
        let impostor = try foreign.issueClient(commonName: "admin")
        try DevelopmentTLS.write(impostor.certificatePEM, to: path("foreign-admin.pem"), private: false)
        try DevelopmentTLS.write(impostor.privateKeyPEM, to: path("foreign-admin-key.pem"), private: true)
        try DevelopmentTLS.write(Self.accessJSON, to: path("access.json"), private: false)
    }

    package func path(_ name: String) -> String { directory + "/" + name }

    package func serverConfiguration(limits: ConnectionLimits = ConnectionLimits(), port: Int = 0) throws -> ServerConfiguration {
        var configuration = ServerConfiguration(
            certificatePath: path("server.pem"), privateKeyPath: path("server-key.pem"), clientCAPath: path("ca.pem"))
        configuration.port = port
        configuration.limits = limits
        configuration.maintenanceInterval = .milliseconds(100)
        configuration.access = try AccessPolicy(json: Array(Self.accessJSON.utf8))
        return configuration
    }

    package func clientConfiguration(_ principal: String, port: Int) -> ClientConfiguration {
        var configuration = ClientConfiguration(
            host: "127.0.0.1", port: port, caPath: path("ca.pem"), certificatePath: path("\(principal).pem"),
            privateKeyPath: path("\(principal)-key.pem"))
        configuration.callTimeout = .seconds(20)
        return configuration
    }
}

/// A running in-process server on a real TLS socket (port 0) over a real data directory.
package struct RunningServer: Sendable {
    package let server: LedgerServer
    package let pki: TestPKI

    package var port: Int { server.boundPort }
    package var engine: LedgerEngine { server.service.engine }

    package func client(_ principal: String = "admin") async throws -> LedgerClient {
        try await LedgerClient.connect(pki.clientConfiguration(principal, port: port))
    }
}

/// Opens a data directory, waiting a little while it is locked. A test that reopens a directory
/// right after closing it can find the lock still held, not by a ledger but by a child process
/// another test is spawning at that moment: posix_spawn's child holds copies of every descriptor
/// (the flock()ed LOCK included) until it execs and close-on-exec drops them (seen once in CI
/// under full parallel load). Production never spawns, and the exclusivity test opens without this.
package func openEngine(path: String, shards: Int, storage: ShardConfiguration) async throws -> LedgerEngine {
    var attempts = 0
    while true {
        do {
            return try LedgerEngine(path: path, shardCount: shards, configuration: storage)
        } catch StorageError.locked where attempts < 50 {
            attempts += 1
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// Opens the ledger at `dataPath`, installs the demo catalog on a fresh one, serves it while
/// `body` runs, then shuts down gracefully (drain, final snapshot) and waits for it.
package func withServer<T: Sendable>(
    dataPath: String, shards: Int = 2, limits: ConnectionLimits = ConnectionLimits(), port: Int = 0,
    storage: ShardConfiguration = ShardConfiguration(),
    _ body: @Sendable (RunningServer) async throws -> T
) async throws -> T {
    let pki = TestPKI.shared
    let engine = try await openEngine(path: dataPath, shards: shards, storage: storage)
    if try await engine.shards[0].read({ $0.catalog }) == nil {
        _ = try await engine.execute(.installCatalog(.demo), requestID: nil)
    }
    var logger = Logger(label: "test-server")
    logger.logLevel = .warning
    let server: LedgerServer
    do {
        server = try await LedgerServer.bind(
            configuration: try pki.serverConfiguration(limits: limits, port: port), engine: engine, logger: logger)
    } catch {
        await engine.close(finalSnapshot: false)
        throw error
    }
    let running = RunningServer(server: server, pki: pki)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        do {
            let result = try await body(running)
            server.shutdown()
            try await group.waitForAll()
            return result
        } catch {
            server.shutdown()
            try? await group.waitForAll()
            throw error
        }
    }
}

/// The code of the server's error, or nil when the call succeeded or failed otherwise.
package func errorCode<T>(_ operation: () async throws -> T) async -> ErrorCode? {
    do {
        _ = try await operation()
        return nil
    } catch {
        return (error as? LedgerClientError)?.ledgerError?.code
    }
}

/// The server's error for a call that must fail.
package func rejection<T>(_ operation: () async throws -> T, sourceLocation: SourceLocation = #_sourceLocation)
    async -> LedgerError?
{
    do {
        _ = try await operation()
        Issue.record("the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch {
        guard let ledgerError = (error as? LedgerClientError)?.ledgerError else {
            Issue.record("not a server error: \(error)", sourceLocation: sourceLocation)
            return nil
        }
        return ledgerError
    }
}
