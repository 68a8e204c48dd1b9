import LedgerServerTesting
import Glibc
import LedgerClient
import LedgerCore
import LedgerServer
import LedgerTesting
import LedgerWire
import NIOCore
import Testing

@Suite("Bad frames, pipelining and restarts")
struct FrameTests {
    static let health = try! RawConnection.frame(WireRequest(callID: 7, call: .health))

    static func header(_ length: UInt32) -> [UInt8] {
        withUnsafeBytes(of: length.bigEndian) { Array($0) }
    }

    @Test("oversized, zero-length, garbage, unknown-field and truncated frames; others are served throughout")
    func badFrames() async throws {
        let directory = TemporaryDirectory("server-frames")
        var limits = ConnectionLimits()
        limits.frameSizeMax = 4_096
        try await withServer(dataPath: directory.path, limits: limits) { server in
            // A bystander keeps a connection open through all of it.
            let bystander = try await server.client()
            _ = try await bystander.createTenant("acme")

            // Oversized: only the header is sent; the reply comes without any body, then the close.
            let oversized = try await RawConnection.connect(port: server.port)
            let big = try await oversized.exchange(Self.header(4_097), expecting: 1)
            #expect(big.responses.map(\.error.code) == [.limitExceeded])
            #expect(big.responses.first?.error.limit.name == "frame_size_max")
            #expect(big.responses.first?.error.limit.value == 4_096)
            #expect(big.responses.first?.callID == 0)

            // Zero length: invalid_argument, then closed (a health call after it gets no answer).
            let zero = try await RawConnection.connect(port: server.port)
            let zeroOutcome = try await zero.exchange(Self.header(0) + Self.health, expecting: 2)
            #expect(zeroOutcome.responses.map(\.error.code) == [.invalidArgument])
            #expect(zeroOutcome.closed)

            // Garbage inside a well-formed frame: invalid_argument for it, and the connection goes on.
            let garbage = try await RawConnection.connect(port: server.port)
            let junk: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x07]
            let garbageOutcome = try await garbage.exchange(Self.header(UInt32(junk.count)) + junk + Self.health, expecting: 2)
            #expect(garbageOutcome.responses.count == 2)
            #expect(garbageOutcome.responses.first { $0.callID == 0 }?.error.code == .invalidArgument)
            #expect(garbageOutcome.responses.first { $0.callID == 7 }?.health.status == "serving")

            // A field this schema does not know: refused, named as such, connection goes on.
            var unknown = try WireRequest(callID: 8, call: .balance("acme", member: nil)).serializedBytes() as [UInt8]
            unknown += [0x98, 0x06, 0x01]
            let unknownConnection = try await RawConnection.connect(port: server.port)
            let unknownOutcome = try await unknownConnection.exchange(
                Self.header(UInt32(unknown.count)) + unknown + Self.health, expecting: 2)
            #expect(unknownOutcome.responses.first { $0.callID == 8 }?.error.code == .invalidArgument)
            #expect(unknownOutcome.responses.first { $0.callID == 8 }?.error.message.contains("does not know") == true)
            #expect(unknownOutcome.responses.first { $0.callID == 7 }?.health.status == "serving")

            // Truncated: half a frame, then the client goes away; the server drops it quietly.
            let truncated = try await RawConnection.connect(port: server.port)
            let half = Array(Self.health.prefix(Self.health.count - 2))
            _ = try await truncated.exchange(half, expecting: 0, closeAfterWrite: true)

            // The bystander never noticed.
            #expect(try await bystander.balance(tenant: "acme").tenant == "acme")
            await bystander.close()
        }
    }

    @Test("a frame that stops arriving half way is cut off at the read deadline")
    func frameReadDeadline() async throws {
        let directory = TemporaryDirectory("server-deadline")
        var limits = ConnectionLimits()
        limits.frameReadTimeout = .milliseconds(300)
        try await withServer(dataPath: directory.path, limits: limits) { server in
            let slow = try await RawConnection.connect(port: server.port)
            let started = ContinuousClock.now
            let outcome = try await slow.exchange(Array(Self.health.prefix(3)), expecting: 1)
            #expect(outcome.responses.isEmpty)
            #expect(outcome.closed)
            #expect(ContinuousClock.now - started < .seconds(10))
        }
    }

    /// Connects and exchanges `bytes`; again on a new connection (up to 5 tries) when the server
    /// closed this one before the request went out. The suites run in parallel on 2 cores, and a
    /// test task starved for longer than the idle deadline between its handshake and its first
    /// write found the connection closed for idleness, rightly, before it had asked anything.
    static func exchangeOnNewConnection(port: Int, _ bytes: [UInt8], expecting count: Int) async throws -> RawConnection.Outcome {
        for attempt in 1... {
            let connection = try await RawConnection.connect(port: port)
            do {
                return try await connection.exchange(bytes, expecting: count)
            } catch ChannelError.ioOnClosedChannel where attempt < 5 {
                continue
            }
        }
        fatalError("unreachable")
    }

    @Test("a handshake that never comes, an idle connection and one connection too many are closed")
    func connectionHygieneOverSockets() async throws {
        let directory = TemporaryDirectory("server-hygiene")
        var limits = ConnectionLimits()
        limits.handshakeTimeout = .milliseconds(300)
        // 2 s, not less: the connection-limit part below keeps two clients idle between calls, and
        // on a loaded machine (the suites run in parallel) a shorter deadline closed them early.
        limits.idleTimeout = .seconds(2)
        limits.connectionsMax = 2
        try await withServer(dataPath: directory.path, limits: limits) { server in
            // Plain TCP that never starts TLS: closed at the handshake deadline.
            let started = ContinuousClock.now
            #expect(Self.plainSocketIsClosedByPeer(port: server.port))
            #expect(ContinuousClock.now - started < .seconds(10))

            // One call answered, then silence: closed when idle.
            let idleOutcome = try await Self.exchangeOnNewConnection(port: server.port, Self.health, expecting: 2)
            #expect(idleOutcome.responses.count == 1)
            #expect(idleOutcome.closed)

            // Two connections are the limit; a third is closed at once, and frees nothing.
            let first = try await server.client()
            let second = try await server.client()
            _ = try await first.health()
            _ = try await second.health()
            // The server closes it before its TLS handshake, so the request may find the channel
            // closed already; either way nothing is answered.
            let third = try await RawConnection.connect(port: server.port)
            do {
                let thirdOutcome = try await third.exchange(Self.health, expecting: 1)
                #expect(thirdOutcome.responses.isEmpty)
                #expect(thirdOutcome.closed)
            } catch ChannelError.ioOnClosedChannel {
            }
            _ = try await first.health()
            await first.close()
            await second.close()
        }
    }

    @Test("a connection idle after pipelined calls answered together is closed at the idle deadline")
    func idleAfterBatchedReplies() async throws {
        let directory = TemporaryDirectory("server-idle-batch")
        var limits = ConnectionLimits()
        limits.idleTimeout = .seconds(1)
        try await withServer(dataPath: directory.path, limits: limits) { server in
            let admin = try await server.client()
            _ = try await admin.createTenant("acme")
            await admin.close()
            // 50 balance calls in one write: their replies leave in a few buffers of several frames.
            var bytes: [UInt8] = []
            for callID in 1...50 {
                bytes += try RawConnection.frame(WireRequest(callID: UInt64(callID), call: .balance("acme", member: nil)))
            }
            let started = ContinuousClock.now
            let request = bytes
            let port = server.port
            let outcome = try await withThrowingTaskGroup(of: RawConnection.Outcome?.self) { group in
                group.addTask { try await Self.exchangeOnNewConnection(port: port, request, expecting: 51) }
                group.addTask {
                    try await Task.sleep(for: .seconds(20))
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                return first
            }
            #expect(outcome?.responses.count == 50)
            #expect(outcome?.closed == true, "not closed within 20 s: the replies were not all counted")
            #expect(ContinuousClock.now - started < .seconds(20))
        }
    }

    /// Connects with plain TCP, sends nothing, and waits (up to 10 s) for the server to close.
    static func plainSocketIsClosedByPeer(port: Int) -> Bool {
        guard let descriptor = loopbackSocket(port: port) else { return false }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, 0) == 0
    }

    @Test("pipelined calls are all answered, matched by call id, out of order when one is slower")
    func pipelining() async throws {
        let directory = TemporaryDirectory("server-pipeline")
        try await withServer(dataPath: directory.path, shards: 2) { server in
            let admin = try await server.client()
            // Tenants on both shards, so that calls complete independently of each other.
            let tenants: [TenantID] = (0..<8).map { TenantID("t\($0)") }
            for tenant in tenants {
                _ = try await admin.createTenant(tenant)
                _ = try await admin.grant(tenant: tenant, GrantRequest(kind: .promo, amount: 1_000_000))
            }
            await admin.close()

            // Reserves (answered after their fsync) interleaved with health calls (answered at once):
            // the cheap calls overtake the durable ones.
            var bytes: [UInt8] = []
            var expected = Set<UInt64>()
            for index in 1...400 {
                let tenant = tenants[index % tenants.count]
                let call: LedgerCall =
                    index % 2 == 0
                    ? .command(.reserve(tenant, ReserveRequest(hold: HoldID("h\(index)"), amount: .tokens(1))), RequestID("r\(index)"))
                    : .health
                bytes += try RawConnection.frame(WireRequest(callID: UInt64(index), call: call))
                expected.insert(UInt64(index))
            }
            let raw = try await RawConnection.connect(port: server.port)
            let outcome = try await raw.exchange(bytes, expecting: 400)
            #expect(outcome.responses.count == 400)
            #expect(Set(outcome.responses.map(\.callID)) == expected)
            #expect(outcome.responses.allSatisfy { $0.error.code == .unspecified })
            let order = outcome.responses.map(\.callID)
            #expect(order != order.sorted(), "replies came strictly in request order")

            // The client library pipelines too: 500 concurrent calls on one connection.
            let client = try await server.client()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<500 {
                    group.addTask {
                        let tenant = tenants[index % tenants.count]
                        _ = try await client.reserve(tenant: tenant, hold: HoldID("c\(index)"), tokens: 2)
                    }
                }
                try await group.waitForAll()
            }
            var reserved: UInt64 = 0
            for tenant in tenants { reserved += try await client.balance(tenant: tenant).reserved }
            #expect(reserved == 200 * 1 + 500 * 2)
            await client.close()
        }
    }

    @Test("state survives a server restart between calls")
    func restart() async throws {
        let directory = TemporaryDirectory("server-restart")
        let before = try await withServer(dataPath: directory.path) { server in
            let client = try await server.client()
            _ = try await client.createTenant("acme", settings: TenantSettings(plan: Plan(allowance: 5_000, period: PeriodRule(unit: .month))))
            _ = try await client.purchase(tenant: "acme", moneyMinor: 20_000)
            _ = try await client.reserve(tenant: "acme", hold: "open", tokens: 700)
            _ = try await client.reserve(tenant: "acme", hold: "done", tokens: 300, requestID: "reserve-done")
            _ = try await client.commit(tenant: "acme", hold: "done", amount: 250)
            let balance = try await client.balance(tenant: "acme")
            let history = try await client.history(tenant: "acme", filter: HistoryFilter(limit: 1_000))
            await client.close()
            return (balance, history)
        }
        try await withServer(dataPath: directory.path) { server in
            let client = try await server.client()
            var balance = try await client.balance(tenant: "acme")
            balance.timeMs = before.0.timeMs
            #expect(balance == before.0)
            #expect(try await client.history(tenant: "acme", filter: HistoryFilter(limit: 1_000)) == before.1)
            // The open hold is still open, and the request ids are remembered across the restart.
            #expect(try await client.commit(tenant: "acme", hold: "open", amount: 700).captured == 700)
            let replay = try await client.call(
                .command(.reserve("acme", ReserveRequest(hold: "done", amount: .tokens(300))), "reserve-done"))
            #expect(replay.replayed)
            await client.close()
        }
    }
}
