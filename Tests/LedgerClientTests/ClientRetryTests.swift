import LedgerServerTesting
import LedgerClient
import Glibc
import NIOCore
import NIOPosix
import NIOSSL
import LedgerCore
import LedgerTesting
import Testing

@Suite("The Swift client's retries")
struct ClientRetryTests {
    @Test("a call made while the server restarts is retried on a new connection, with the same request id")
    func retryAcrossRestart() async throws {
        let directory = TemporaryDirectory("client-retry")
        // The second server must get the same port back. A port from the kernel's ephemeral range
        // could meanwhile become the local port of some other test's connection, so pick one below
        // it (32768) that is free now.
        let (client, port) = try await Self.withFreeLowPort { port in
            try await withServer(dataPath: directory.path, port: port) { server in
                var configuration = server.pki.clientConfiguration("admin", port: server.port)
                configuration.retry = RetryPolicy(attempts: 30, backoff: .milliseconds(50))
                let client = try await LedgerClient.connect(configuration)
                _ = try await client.createTenant("acme")
                _ = try await client.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 1_000))
                return (client, server.port)
            }
        }
        let requestID = RequestID("reserve-during-restart")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // The old connection is closed and the server is down: the call retries until it is back.
                let reserved = try await client.reserve(tenant: "acme", hold: "h", tokens: 300, requestID: requestID)
                #expect(reserved.hold.amount == 300)
            }
            try await Task.sleep(for: .milliseconds(300))
            try await Self.retryingWhileAddressInUse {
              try await withServer(dataPath: directory.path, port: port) { server in
                let checker = try await server.client()
                var reserved: UInt64 = 0
                for _ in 0..<200 where reserved == 0 {
                    reserved = try await checker.balance(tenant: "acme").reserved
                    if reserved == 0 { try await Task.sleep(for: .milliseconds(50)) }
                }
                #expect(reserved == 300)
                // A second delivery of the same request is answered from memory, not applied again.
                let replay = try await checker.call(
                    .command(.reserve("acme", ReserveRequest(hold: "h", amount: .tokens(300))), requestID))
                #expect(replay.replayed)
                #expect(try await checker.balance(tenant: "acme").reserved == 300)
                await checker.close()
              }
            }
            try await group.waitForAll()
        }
        await client.close()
    }

    /// Runs `body` until it does not fail with EADDRINUSE (for at most ~10 s): the first server's
    /// sockets on the port may linger briefly until the client has seen their close.
    static func retryingWhileAddressInUse(_ body: () async throws -> Void) async throws {
        for _ in 0..<100 {
            do {
                return try await body()
            } catch let error as IOError where error.errnoCode == EADDRINUSE {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        try await body()
    }

    /// Runs `body` with a port in 20000..<32000, trying others while binding fails.
    static func withFreeLowPort<T>(_ body: (Int) async throws -> T) async throws -> T {
        var lastError: (any Error)? = nil
        for _ in 0..<20 {
            do {
                return try await body(Int.random(in: 20_000..<32_000))
            } catch let error as IOError where error.errnoCode == EADDRINUSE {
                lastError = error
            }
        }
        throw lastError!
    }

    @Test("connect tries each of servers in turn when host:port does not answer, and names every address when none does")
    func connectFallsBackToServers() async throws {
        let directory = TemporaryDirectory("client-fallback")
        try await withServer(dataPath: directory.path) { server in
            // Nothing listens on ports 1 and 2 of the loopback here: connections are refused at once.
            var configuration = server.pki.clientConfiguration("admin", port: 1)
            configuration.servers = ["127.0.0.1:2", "127.0.0.1:\(server.port)"]
            let client = try await LedgerClient.connect(configuration)
            #expect(try await client.health().status == "serving")
            _ = try await client.createTenant("acme")
            #expect(try await client.balance(tenant: "acme").available == 0)
            await client.close()

            configuration.servers = ["127.0.0.1:2"]
            do {
                _ = try await LedgerClient.connect(configuration)
                Issue.record("connected with no server listening")
            } catch let error as LedgerClientError {
                guard case .connectFailed(let reason) = error else {
                    Issue.record("expected connectFailed, got \(error)")
                    return
                }
                #expect(reason.contains("127.0.0.1:1") && reason.contains("127.0.0.1:2"), "\(reason)")
            }
            // One address alone: its own error, as before.
            configuration.servers = []
            await #expect(throws: LedgerClientError.self) { _ = try await LedgerClient.connect(configuration) }
        }
    }

    @Test("a business error is not retried; a closed client refuses calls")
    func noRetryOfBusinessErrors() async throws {
        let directory = TemporaryDirectory("client-noretry")
        try await withServer(dataPath: directory.path) { server in
            // With a 20 s backoff a single retry would be unmistakable.
            var configuration = server.pki.clientConfiguration("admin", port: server.port)
            configuration.retry = RetryPolicy(attempts: 3, backoff: .seconds(20))
            let client = try await LedgerClient.connect(configuration)
            let started = ContinuousClock.now
            #expect(await errorCode { try await client.balance(tenant: "nobody") } == .notFound)
            #expect(ContinuousClock.now - started < .seconds(15), "a not_found must not be retried")
            await client.close()
            await #expect(throws: LedgerClientError.connectionClosed("the client was closed")) {
                try await client.health()
            }
        }
    }

    @Test("a server that never answers gives timedOut after the call timeout, retries included")
    func callTimeout() async throws {
        // A real TLS server (the test PKI's certificate, client certificates required) that reads
        // and discards every byte.
        let pki = TestPKI.shared
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(pki.path("server.pem")).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: pki.path("server-key.pem"), format: .pem)))
        tls.minimumTLSVersion = .tlsv13
        tls.certificateVerification = .noHostnameVerification
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(pki.path("ca.pem")))
        let context = try NIOSSLContext(configuration: tls)
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        var configuration = pki.clientConfiguration("admin", port: silent.localAddress!.port!)
        configuration.callTimeout = .milliseconds(300)
        configuration.retry = RetryPolicy(attempts: 2, backoff: .milliseconds(10))
        let client = try await LedgerClient.connect(configuration)
        let started = ContinuousClock.now
        await #expect(throws: LedgerClientError.timedOut) { try await client.health() }
        #expect(ContinuousClock.now - started >= .milliseconds(600), "two attempts of 300 ms each")
        await client.close()
        try await silent.close()
    }
}
