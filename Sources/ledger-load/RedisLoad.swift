import Foundation
import LedgerClient
import LedgerCore
import NIOCore
import NIOPosix

/// `ledger-load --redis`: the same lanes, tenants and open-loop schedule against Redis, so that
/// scripts/bench can draw both systems' latency against offered load with one harness (the
/// harness shares this machine's two cores with the server, so a different harness per system
/// would skew the comparison). The reserve+commit pair is one Lua script, one round trip,
/// plaintext: Redis's best case, as in scripts/bench's redis-benchmark run. A pair is one call
/// here (`--rate` counts scripts per second).
enum RedisLoad {
    /// KEYS[1] the tenant's balance hash, KEYS[2] the hold; ARGV[1] tokens held, ARGV[2] used.
    /// Returns 1, or 0 when the hold exists already (a retried pair).
    static let pairScript = """
        if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
        local amount, used = tonumber(ARGV[1]), tonumber(ARGV[2])
        if tonumber(redis.call('HGET', KEYS[1], 'available')) < amount then return redis.error_reply('insufficient_balance') end
        redis.call('HINCRBY', KEYS[1], 'available', -amount)
        redis.call('HINCRBY', KEYS[1], 'reserved', amount)
        redis.call('HSET', KEYS[2], 'tenant', KEYS[1], 'amount', amount, 'state', 'held')
        redis.call('HSET', KEYS[2], 'state', 'committed', 'captured', used)
        redis.call('HINCRBY', KEYS[1], 'reserved', -amount)
        redis.call('HINCRBY', KEYS[1], 'available', amount - used)
        redis.call('HINCRBY', KEYS[1], 'spent', used)
        return 1
        """
    /// ARGV[1] the key prefix, ARGV[2] the tenants, ARGV[3] the grant: makes the balances that do
    /// not exist yet (a second run with the same prefix reuses them).
    static let setupScript = """
        for i = 0, tonumber(ARGV[2]) - 1 do
          local key = ARGV[1] .. i
          if redis.call('EXISTS', key) == 0 then
            redis.call('HSET', key, 'available', ARGV[3], 'reserved', 0, 'spent', 0, 'granted', ARGV[3])
          end
        end
        return 1
        """
    /// ARGV[1] the key prefix, ARGV[2] the tenants: {tenants whose available + reserved + spent is
    /// not what they were granted, total spent}.
    static let auditScript = """
        local bad, spent = 0, 0
        for i = 0, tonumber(ARGV[2]) - 1 do
          local h = redis.call('HMGET', ARGV[1] .. i, 'available', 'reserved', 'spent', 'granted')
          if tonumber(h[1]) + tonumber(h[2]) + tonumber(h[3]) ~= tonumber(h[4]) then bad = bad + 1 end
          spent = spent + tonumber(h[3])
        end
        return {bad, spent}
        """

    /// Connects, makes the tenants' balances that do not exist yet and loads the pair script.
    /// `tenantPrefix` is the one the plan's tenant names start with (PREFIX-N): the keys are
    /// PREFIX:bal:N and PREFIX:hold:HOLD.
    static func prepare(
        host: String, port: Int, connections count: Int, tenantPrefix: String, plan: RunPlan, grant: UInt64
    ) async throws -> RedisSession {
        var connections: [RedisConnection] = []
        do {
            for _ in 0..<count { connections.append(try await RedisConnection.connect(host: host, port: port)) }
            let first = connections[0]
            let prefix = "\(tenantPrefix):bal:"
            let tenants = String(plan.tenants.count)
            try await first.expectOK(["EVAL", setupScript, "0", prefix, tenants, String(grant)])
            guard case .bulk(let sha?) = try await first.call(["SCRIPT", "LOAD", pairScript]) else {
                throw LoadError.failed("Redis did not load the pair script")
            }
            let spent = try await audit(first, prefix: prefix, tenants: tenants).spent
            return RedisSession(
                connections: connections, sha: String(decoding: sha, as: UTF8.self), prefix: prefix,
                holdPrefix: "\(tenantPrefix):hold:\(plan.holdPrefix)", spentBefore: spent)
        } catch {
            for connection in connections { connection.close() }
            throw error
        }
    }

    static func audit(_ connection: RedisConnection, prefix: String, tenants: String) async throws -> (unbalanced: Int64, spent: Int64) {
        guard case .array(let values?) = try await connection.call(["EVAL", auditScript, "0", prefix, tenants]),
            values.count == 2, case .integer(let unbalanced) = values[0], case .integer(let spent) = values[1]
        else { throw LoadError.failed("Redis's audit script answered something unexpected") }
        return (unbalanced, spent)
    }
}

/// Connections to Redis with the tenants made and the pair script loaded.
struct RedisSession {
    let connections: [RedisConnection]
    let sha: String
    /// The balance hashes' key prefix (PREFIX:bal:N).
    let prefix: String
    /// The holds' key prefix (PREFIX:hold:HOLDPREFIX): a lane adds -LANE-N.
    let holdPrefix: String
    /// The tokens spent over all the tenants before the run.
    let spentBefore: Int64

    /// Runs the plan's lanes, spread over the connections, each on its connection's loop.
    func run(_ plan: RunPlan, state: RunState) async -> LaneStats {
        let (connections, sha, prefix, holdPrefix) = (self.connections, self.sha, self.prefix, self.holdPrefix)
        return await runLanes(plan.lanes, on: connections.map(\.eventLoop)) { index, connection in
            var lane = RedisLane(
                index: index, connection: connections[connection], plan: plan, state: state, sha: sha, prefix: prefix,
                holdPrefix: holdPrefix)
            return await lane.run()
        }
    }

    /// Every tenant conserves its tokens, and the tokens spent grew by what the confirmed pairs
    /// used (plus at most what the pairs of unknown outcome would have).
    func check(_ stats: LaneStats, plan: RunPlan) async -> CheckResult {
        var check = CheckResult()
        check.tenants = plan.tenants.count
        let used = Int64(plan.usedPerPair)
        for (_, commit) in stats.commits { check.commitsConfirmed += commit.count }
        check.commitsUncertain = stats.uncertainCommits.values.reduce(0, +)
        do {
            let after = try await RedisLoad.audit(connections[0], prefix: prefix, tenants: String(plan.tenants.count))
            let spent = after.spent - spentBefore
            check.capturesInHistory = Int(spent / used)
            if after.unbalanced > 0 { check.violations.append("\(after.unbalanced) tenants do not conserve tokens") }
            let confirmed = Int64(check.commitsConfirmed) * used
            if spent < confirmed || spent > confirmed + Int64(check.commitsUncertain) * used {
                check.violations.append("tokens spent grew by \(spent), the confirmed pairs used \(confirmed)")
            }
        } catch {
            check.violations.append("the audit failed: \(error)")
        }
        return check
    }

    func close() { for connection in connections { connection.close() } }
}

extension RunPlan {
    /// What a pair commits of its reserve: four fifths (at least 1), as the ledger's lanes do.
    var usedPerPair: UInt64 { max(1, amount - amount / 5) }
}

/// One lane against Redis: the pair script, one call at a time, on the schedule of the plan.
struct RedisLane {
    let index: Int
    let connection: RedisConnection
    let plan: RunPlan
    let state: RunState
    let sha: String
    /// The balance hashes' key prefix (see `RedisSession`).
    let prefix: String
    /// This lane's holds' key prefix: the session's, then -LANE.
    let holdPrefix: String
    var random: SplitMix64
    var stats = LaneStats()

    init(
        index: Int, connection: RedisConnection, plan: RunPlan, state: RunState, sha: String, prefix: String, holdPrefix: String
    ) {
        self.index = index
        self.connection = connection
        self.plan = plan
        self.state = state
        self.sha = sha
        self.prefix = prefix
        self.holdPrefix = "\(holdPrefix)-\(index)"
        self.random = SplitMix64.forLane(index, seed: plan.seed)
    }

    mutating func run() async -> LaneStats {
        var schedule = OpenLoopSchedule(plan: plan, lane: index, eventLoop: connection.eventLoop)
        let amount = String(plan.amount)
        let used = plan.usedPerPair
        let usedText = String(used)
        var iteration = 0
        while state.take() {
            iteration += 1
            let tenant = plan.distribution.pick(&random)
            let start = await schedule.next(calls: 1)
            stats.touched.insert(tenant)
            let hold = "\(holdPrefix)-\(iteration)"
            var failure: String?
            do {
                switch try await connection.call(["EVALSHA", sha, "2", prefix + String(tenant), hold, amount, usedText]) {
                case .integer(1):
                    let current = stats.commits[tenant] ?? (0, 0)
                    stats.commits[tenant] = (current.count + 1, current.captured + used)
                case .error(let message):
                    failure = String(message.prefix { $0 != " " })
                default:
                    failure = "protocol_violation"
                }
            } catch {
                failure = "connection_closed"
                stats.uncertainCommits[tenant, default: 0] += 1
            }
            let microseconds = (monotonicNanoseconds() - start) / 1000
            stats.record(.pairScript, microseconds: microseconds)
            stats.pairs.record(max(1, microseconds))
            state.noteCall(microseconds: microseconds)
            if let failure {
                stats.errors[failure, default: 0] += 1
                state.errors.add(1, ordering: .relaxed)
            }
        }
        return stats
    }
}

/// A value of Redis's protocol (RESP2).
enum RESPValue: Sendable, Equatable {
    case simple(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8]?)
    case array([RESPValue]?)

    /// Reads one value from the buffer; nil (the buffer's reader index wherever) when it is not all there yet.
    static func read(from buffer: inout ByteBuffer) throws -> RESPValue? {
        guard let type = buffer.readInteger(as: UInt8.self), let line = readLine(&buffer) else { return nil }
        switch type {
        case UInt8(ascii: "+"): return .simple(line)
        case UInt8(ascii: "-"): return .error(line)
        case UInt8(ascii: ":"):
            guard let value = Int64(line) else { throw LoadError.failed("Redis sent a bad integer: \(line)") }
            return .integer(value)
        case UInt8(ascii: "$"):
            guard let length = Int(line), length >= -1 else { throw LoadError.failed("Redis sent a bad length: \(line)") }
            if length == -1 { return .bulk(nil) }
            guard buffer.readableBytes >= length + 2, let bytes = buffer.readBytes(length: length) else { return nil }
            buffer.moveReaderIndex(forwardBy: 2)
            return .bulk(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(line), count >= -1 else { throw LoadError.failed("Redis sent a bad count: \(line)") }
            if count == -1 { return .array(nil) }
            var values: [RESPValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count {
                guard let value = try read(from: &buffer) else { return nil }
                values.append(value)
            }
            return .array(values)
        default:
            throw LoadError.failed("Redis sent an unknown type byte \(type)")
        }
    }

    private static func readLine(_ buffer: inout ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard let end = view.firstIndex(of: UInt8(ascii: "\r")), end + 1 < view.endIndex else { return nil }
        let line = buffer.readString(length: end - view.startIndex)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }
}

struct RESPDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        var attempt = buffer
        guard let value = try RESPValue.read(from: &attempt) else { return .needMoreData }
        buffer.moveReaderIndex(to: attempt.readerIndex)
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// A command and the promise of its reply.
struct RedisCommand: Sendable {
    let arguments: [String]
    let reply: EventLoopPromise<RESPValue>
}

/// Redis answers in order: each reply completes the oldest command waiting.
final class RedisHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RedisCommand
    typealias OutboundOut = ByteBuffer
    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let command = unwrapOutboundIn(data)
        var out = context.channel.allocator.buffer(capacity: 64)
        out.writeString("*\(command.arguments.count)\r\n")
        for argument in command.arguments {
            out.writeString("$\(argument.utf8.count)\r\n")
            out.writeString(argument)
            out.writeString("\r\n")
        }
        waiting.append(command.reply)
        context.write(wrapOutboundOut(out), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let reply = waiting.popFirst() else {
            context.fireErrorCaught(LoadError.failed("Redis sent a reply nobody asked for"))
            return
        }
        reply.succeed(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(LoadError.failed("the connection to Redis closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: Error) {
        while let reply = waiting.popFirst() { reply.fail(error) }
    }
}

/// One plaintext connection to Redis (Redis's usual deployment on a host's loopback).
final class RedisConnection: Sendable {
    let channel: any Channel
    var eventLoop: any EventLoop { channel.eventLoop }

    private init(channel: any Channel) { self.channel = channel }

    static func connect(host: String, port: Int) async throws -> RedisConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder()))
                    try channel.pipeline.syncOperations.addHandler(RedisHandler())
                }
            }
            .connect(host: host, port: port).get()
        return RedisConnection(channel: channel)
    }

    func call(_ arguments: [String]) async throws -> RESPValue {
        let reply = channel.eventLoop.makePromise(of: RESPValue.self)
        channel.writeAndFlush(RedisCommand(arguments: arguments, reply: reply)).cascadeFailure(to: reply)
        return try await reply.futureResult.get()
    }

    func expectOK(_ arguments: [String]) async throws {
        let reply = try await call(arguments)
        switch reply {
        case .simple, .integer, .bulk, .array: return
        case .error(let message): throw LoadError.failed("Redis refused \(arguments[0]): \(message)")
        }
    }

    func close() { channel.close(promise: nil) }
}
