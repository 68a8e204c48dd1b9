import LedgerServerTesting
import Foundation
import LedgerClient
import LedgerCore
import LedgerServer
import LedgerTesting
import LedgerWire
import NIOCore
import NIOPosix
import Testing

/// Connection abuse against the real server: thousands of idle connections, slowloris clients,
/// and clients that never read their replies. Figures are printed for docs/reliability.md; the
/// assertions are bounds that only a broken server misses.
@Suite("Connection abuse")
struct ConnectionAbuseTests {
    static let health = MalformedCorpus.request(1, .health)

    @Test("5,000 idle TLS connections are held, each still answers, and a bystander is served")
    func manyIdleConnections() async throws {
        let count = Int(ProcessInfo.processInfo.environment["LEDGER_IDLE_CONNECTIONS"] ?? "") ?? 5_000
        let directory = TemporaryDirectory("abuse-idle")
        let ledgerd = try await MalformedInputTests.start(directory, extra: ["--connections-max", "\(count + 100)"])
        defer {
            ledgerd.process.kill(SIGTERM)
            ledgerd.process.wait()
        }
        let before = MalformedInputTests.rss(ledgerd.process.pid)
        let port = ledgerd.port
        let began = ContinuousClock.now
        let connections = try await withThrowingTaskGroup(of: [RawConnection].self) { group in
            let workers = 16
            for worker in 0..<workers {
                group.addTask {
                    var mine: [RawConnection] = []
                    for _ in stride(from: worker, to: count, by: workers) {
                        mine.append(try await RawConnection.connect(port: port))
                    }
                    return mine
                }
            }
            var all: [RawConnection] = []
            for try await some in group { all += some }
            return all
        }
        let opened = ContinuousClock.now - began
        try await Task.sleep(for: .seconds(1))  // let the last handshakes finish
        let held = MalformedInputTests.rss(ledgerd.process.pid)
        // Every hundredth connection still works: the server holds them all, not just accepts them.
        var answered = 0
        for connection in stride(from: 0, to: connections.count, by: 100).map({ connections[$0] }) {
            let outcome = try await connection.exchange(Self.health, expecting: 1)
            if outcome.responses.first?.health.status == "serving" { answered += 1 }
        }
        let bystander = try await RawConnection.connect(port: ledgerd.port).exchange(Self.health, expecting: 1)
        for connection in connections { try? await connection.channel.channel.close() }
        try await Task.sleep(for: .seconds(1))
        let after = MalformedInputTests.rss(ledgerd.process.pid)
        let perConnection = (held - before) * 1024 / count
        print(
            "idle connections: \(count) opened in \(opened), ledgerd RSS \(before) kB -> \(held) kB with them "
                + "(\(perConnection) bytes each) -> \(after) kB after closing")
        #expect(connections.count == count)
        #expect(answered == (count + 99) / 100)
        #expect(
            bystander.responses.first?.health.status == "serving",
            "bystander: closed \(bystander.closed), error \(bystander.error.map { "\($0)" } ?? "none")")
        #expect(perConnection < 200 * 1024, "\(perConnection) bytes per idle connection")
    }

    @Test("slowloris clients are cut off at the deadlines while a well-behaved client is served")
    func slowloris() async throws {
        let directory = TemporaryDirectory("abuse-slowloris")
        var limits = ConnectionLimits()
        limits.frameReadTimeout = .seconds(1)
        limits.handshakeTimeout = .seconds(1)
        try await withServer(dataPath: directory.path, limits: limits) { server in
            let client = try await server.client()
            _ = try await client.createTenant("acme")
            func latencies(_ calls: Int) async throws -> [Duration] {
                var samples: [Duration] = []
                for _ in 0..<calls {
                    let start = ContinuousClock.now
                    _ = try await client.balance(tenant: "acme")
                    samples.append(ContinuousClock.now - start)
                }
                return samples.sorted()
            }
            let quiet = try await latencies(200)

            // 100 clients that drip a frame one byte every 200 ms, 100 that never start TLS.
            let began = ContinuousClock.now
            let drips = (0..<100).map { _ in
                Task { () -> Duration? in
                    let connection = try await RawConnection.connect(port: server.port)
                    let frame = Self.health
                    return try await connection.channel.executeThenClose { inbound, outbound in
                        for byte in frame.dropLast() {
                            do {
                                try await outbound.write(ByteBuffer(bytes: [byte]))
                            } catch {
                                return ContinuousClock.now - began  // closed by the server
                            }
                            try await Task.sleep(for: .milliseconds(200))
                        }
                        for try await _ in inbound {}
                        return ContinuousClock.now - began
                    }
                }
            }
            let silent = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<100 {
                    group.addTask {
                        let socket = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                            .connect(host: "127.0.0.1", port: server.port).get()
                        // Closed by the server within 5 s, or not.
                        return await withTaskGroup(of: Bool.self) { race in
                            race.addTask {
                                _ = try? await socket.closeFuture.get()
                                return true
                            }
                            race.addTask {
                                try? await Task.sleep(for: .seconds(5))
                                return false
                            }
                            let first = await race.next()!
                            try? await socket.close()
                            race.cancelAll()
                            return first
                        }
                    }
                }
                var closed = 0
                for try await wasClosed in group where wasClosed { closed += 1 }
                return closed
            }
            let busy = try await latencies(200)
            var cut: [Duration] = []
            for drip in drips { if let after = try? await drip.value { cut.append(after) } }
            let p99 = { (samples: [Duration]) in samples[samples.count * 99 / 100] }
            print(
                "slowloris: balance p50/p99 \(quiet[100])/\(p99(quiet)) alone, \(busy[100])/\(p99(busy)) beside 200 slow clients; "
                    + "drippers cut after \(cut.max() ?? .zero) at most, \(silent) of 100 silent sockets closed")
            #expect(silent == 100, "connections that never start TLS are closed at the handshake deadline")
            #expect(cut.count == 100 && cut.allSatisfy { $0 < .seconds(4) }, "drippers are closed at the frame deadline")
            #expect(p99(busy) < .milliseconds(250), "the well-behaved client was held up: p99 \(p99(busy))")
            await client.close()
        }
    }

    @Test("clients that never read their replies stop being read; the server's memory stays bounded")
    func clientsThatNeverRead() async throws {
        let directory = TemporaryDirectory("abuse-noread")
        let ledgerd = try await MalformedInputTests.start(directory)
        defer {
            ledgerd.process.kill(SIGTERM)
            ledgerd.process.wait()
        }
        let before = MalformedInputTests.rss(ledgerd.process.pid)
        // 4 connections each send 200,000 balance requests (about 3.4 MB) and read nothing. The
        // kernel's socket buffers take the first few megabytes of replies per connection (not
        // counted in RSS); after that the server must stop reading instead of buffering replies.
        let request = MalformedCorpus.request(2, .balance("acme", member: nil))
        let burst = Array([[UInt8]](repeating: request, count: 200_000).joined())
        var hogs: [RawConnection] = []
        for _ in 0..<4 {
            let connection = try await RawConnection.connect(port: ledgerd.port)
            connection.channel.channel.writeAndFlush(ByteBuffer(bytes: burst), promise: nil)
            hogs.append(connection)
        }
        try await Task.sleep(for: .seconds(4))
        let during = MalformedInputTests.rss(ledgerd.process.pid)
        let bystanderStart = ContinuousClock.now
        let bystander = try await RawConnection.connect(port: ledgerd.port).exchange(Self.health, expecting: 1)
        let bystanderTime = ContinuousClock.now - bystanderStart
        for hog in hogs { try? await hog.channel.channel.close() }
        try await Task.sleep(for: .seconds(1))
        let after = MalformedInputTests.rss(ledgerd.process.pid)
        print(
            "never-reading clients: 4 x 200,000 requests unread; ledgerd RSS \(before) kB -> \(during) kB -> \(after) kB after they closed; a bystander's health call took \(bystanderTime)")
        #expect(
            bystander.responses.first?.health.status == "serving",
            "bystander: closed \(bystander.closed), error \(bystander.error.map { "\($0)" } ?? "none")")
        // The hogs' backlog does not hold the loop: it yields to the bystander's handshake each turn
        // (EventLoopTurn; before it, 8-16 s, past the 10 s handshake deadline now and then).
        #expect(bystanderTime < .seconds(3), "the bystander waited \(bystanderTime)")
        // Unbounded buffering would hold all 4,000,000 replies (several hundred MB); the server
        // stops reading a connection whose replies are not read (in-flight bound and the write
        // buffer's high-water mark), so the growth is a few MB per connection at most.
        #expect(during - before < 128 * 1024, "RSS grew from \(before) kB to \(during) kB")
    }
}
