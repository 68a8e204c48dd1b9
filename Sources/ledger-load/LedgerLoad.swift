// ledger-load: the load harness. Drives a live ledgerd over the real wire with the Swift client,
// reports throughput, latency percentiles (HdrHistogram) and errors by code, and checks the
// ledger's invariants for every tenant it touched. docs/benchmarks.md shows how scripts/bench
// uses it; `ledger-load --help` lists every option.
import ArgumentParser
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Foundation
import Histogram
import LedgerClient
import LedgerCore
import LedgerWire

@main
struct LedgerLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-load",
        abstract: "Load generator and invariant checker for TokenLedger.",
        subcommands: [Run.self, Echo.self],
        defaultSubcommand: Run.self)
}

struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-server",
        abstract: "The transport ceiling: TLS 1.3 + framing with canned replies, no ledger.")

    @Option(help: "HOST:PORT to listen on (port 0: any free port, printed on the first line).")
    var listen = "127.0.0.1:0"
    @Option(name: .customLong("data-dir"), help: "Where the development TLS material is (made if missing).")
    var dataDirectory = "./ledger-data"

    func run() async throws {
        let (host, port) = try parseAddress(listen, ports: 0...65_535)
        try await EchoServer.run(host: host, port: port, dataDirectory: dataDirectory)
    }
}

func parseAddress(_ text: String, ports: ClosedRange<Int> = 1...65_535) throws -> (String, Int) {
    do {
        let address = try HostPort(parsing: text, emptyHost: "127.0.0.1", ports: ports)
        return (address.host, address.port)
    } catch {
        throw LoadError.usage("\(error)")
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a workload against a server (the default command).")

    @Option(help: "The server, HOST:PORT; a cluster's nodes as HOST:PORT,HOST:PORT,... (wrong_owner is followed).")
    var server = "127.0.0.1:7443"
    @Option(name: .customLong("data-dir"), help: "ledgerd's data directory, for its development TLS material (admin).")
    var dataDirectory = "./ledger-data"
    @Option(help: "CA file (overrides --data-dir).") var ca: String?
    @Option(help: "Client certificate (overrides --data-dir).") var cert: String?
    @Option(help: "Client key (overrides --data-dir).") var key: String?

    @Option(help: "TLS connections.") var connections = 4
    @Option(help: "Calls in flight per connection (each is a lane running operations one after another).")
    var pipeline = 16
    @Option(help: "Seconds to run (default 10 unless --operations is given).") var duration: Double?
    @Option(help: "Operations to run in total (an operation is one mix entry, e.g. a reserve+commit pair).")
    var operations: Int?
    @Option(help: "Target calls per second (open loop; latency counted from the intended send time).")
    var rate: Double?

    @Option(help: "Tenants to spread the load over.") var tenants = 1000
    @Option(help: "uniform, zipf or hot.") var distribution = "uniform"
    @Option(name: .customLong("zipf-s"), help: "The zipf exponent.") var zipfExponent = 0.99
    @Option(name: .customLong("hot-fraction"), help: "With hot: the share of operations on tenant 0.")
    var hotFraction = 1.0
    @Option(help: "Operations and weights: pair (reserve+commit), release (reserve+release), refund, estimate, balance, charge (one call spending what a pair captures).")
    var mix = "pair=1"
    @Option(help: "Tokens each reserve holds (a pair commits four fifths).") var amount: UInt64 = 10
    @Option(name: .customLong("hold-ttl-ms"), help: "Hold TTL in milliseconds (default: the server's, 15 minutes).")
    var holdTTLMilliseconds: UInt64?
    @Option(name: .customLong("tenant-prefix"), help: "Tenant names are PREFIX-N (default: a fresh random prefix; reuse one to reuse its tenants).")
    var tenantPrefix: String?
    @Option(name: .customLong("hold-prefix"), help: "Hold ids are PREFIX-LANE-N (default: a fresh random prefix).")
    var holdPrefix: String?
    @Option(help: "Tokens granted to each tenant at setup.") var grant: UInt64 = 1_000_000_000_000
    @Option(name: .customLong("movement-events"), help: "on (the default) or off: the tenants made at setup get an event for every movement, or none.")
    var movementEvents = "on"

    @Option(help: "Seed of the workload's random choices.") var seed: UInt64 = 1
    @Option(help: "Tries per call (1: no retries).") var attempts = 3

    @Flag(help: "The target is `ledger-load echo-server`: no setup, no check.") var echo = false
    @Flag(help: "Make the run's calls on ledgerd's gRPC port (grpc-swift-2, one HTTP/2 connection per --connections); setup and check use the framed port.")
    var grpc = false
    @Option(name: .customLong("grpc-server"), help: "The gRPC port, HOST:PORT (with --grpc).") var grpcServer = "127.0.0.1:7444"
    @Flag(help: "--server is a Redis server (plaintext): each pair is one Lua script, one call (scripts/bench's comparison; the mix must be pair).")
    var redis = false
    @Flag(name: .customLong("setup-only"), help: "Create and fund the tenants, then stop (for memory measurements).")
    var setupOnly = false
    @Flag(name: .customLong("no-check"), help: "Skip the invariant check at the end.") var noCheck = false
    @Option(
        name: .customLong("server-pid"),
        help: "A server process on this machine (repeatable): its CPU time (utime+stime) over the measured run alone, not the setup or the check, is reported as server_cpu_s.")
    var serverPIDs: [Int32] = []
    @Flag(help: "Print the report as JSON on stdout.") var json = false
    @Flag(help: "No progress line.") var quiet = false

    func validate() throws {
        guard movementEvents == "on" || movementEvents == "off" else { throw ValidationError("--movement-events must be on or off") }
        guard connections >= 1, pipeline >= 1, tenants >= 1 else {
            throw ValidationError("--connections, --pipeline and --tenants must be at least 1")
        }
        guard amount >= 1, amount <= Limits.amountMax else { throw ValidationError("--amount must be 1 to \(Limits.amountMax)") }
        if let rate, rate <= 0 { throw ValidationError("--rate must be above 0") }
        for pid in serverPIDs where ProcessCPU.seconds([pid]) == nil {
            throw ValidationError("--server-pid \(pid): no such process, or its /proc entry cannot be read")
        }
        if let duration, duration <= 0 { throw ValidationError("--duration must be above 0") }
        if let operations, operations < 0 { throw ValidationError("--operations must be 0 or more") }
        if redis, mix != "pair=1" && mix != "pair" { throw ValidationError("--redis runs the pair mix only") }
        if redis, grpc || echo || setupOnly { throw ValidationError("--redis goes with none of --grpc, --echo, --setup-only") }
    }

    func run() async throws {
        do {
            try await execute()
        } catch let error as LoadError {
            FileHandle.standardError.write(Data("ledger-load: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func execute() async throws {
        if redis { return try await executeAgainstRedis() }
        let addresses = server.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let (host, port) = try parseAddress(addresses[0])
        var configuration = ClientConfiguration.development(dataDirectory: dataDirectory, host: host, port: port)
        configuration.servers = try addresses.dropFirst().map { address in
            let (host, port) = try parseAddress(address)
            return "\(host):\(port)"
        }
        if let ca { configuration.caPath = ca }
        if let cert { configuration.certificatePath = cert }
        if let key { configuration.privateKeyPath = key }
        configuration.inFlightMax = max(256, pipeline)
        configuration.retry = RetryPolicy(attempts: max(1, attempts))

        var clients: [LedgerClient] = []
        for _ in 0..<connections {
            do {
                clients.append(try await LedgerClient.connect(configuration))
            } catch {
                throw LoadError.failed("cannot connect to \(server): \(error)")
            }
        }
        defer { for client in clients { Task { await client.close() } } }

        let (_, names) = tenantNames()
        let lanes = connections * pipeline
        if !echo {
            let began = monotonicNanoseconds()
            try await setUp(names, clients: clients, lanes: lanes)
            let seconds = Double(monotonicNanoseconds() - began) / 1e9
            progress("set up \(names.count) tenants in \(String(format: "%.1f", seconds)) s\n")
            if setupOnly {
                if json { print("{\"tenants\":\(names.count),\"setup_s\":\(String(format: "%.3f", seconds))}") }
                return
            }
        }

        let plan = try makePlan(names, holdTTL: holdTTLMilliseconds.map { .milliseconds(Int64(clamping: $0)) })
        let (stats, elapsed, serverCPU) = try await measure(plan) { state in
            if grpc {
                let (grpcHost, grpcPort) = try parseAddress(grpcServer)
                guard let certificatePath = configuration.certificatePath, let privateKeyPath = configuration.privateKeyPath else {
                    throw LoadError.failed("--grpc needs a client certificate and key")
                }
                return try await withThrowingTaskGroup(of: Void.self) { connections in
                    var grpcClients: [GRPCLoadClient] = []
                    var running: [GRPCClient<HTTP2ClientTransport.Posix>] = []
                    for _ in 0..<self.connections {
                        let (client, connection) = try GRPCLoadClient.connect(
                            host: grpcHost, port: grpcPort, caPath: configuration.caPath, certificatePath: certificatePath,
                            privateKeyPath: privateKeyPath)
                        connections.addTask { try await connection.runConnections() }
                        grpcClients.append(client)
                        running.append(connection)
                    }
                    let stats = await Self.runLanes(grpcClients, plan: plan, state: state)
                    for connection in running { connection.beginGracefulShutdown() }
                    try await connections.waitForAll()
                    return stats
                }
            } else {
                return await Self.runLanes(clients.map(FramedLoadClient.init), plan: plan, state: state)
            }
        }

        var check: CheckResult?
        if !echo && !noCheck {
            check = await checkInvariants(stats, names: names, holdPrefix: plan.holdPrefix, clients: clients, lanes: lanes)
        }
        try report(plan, stats: stats, elapsed: elapsed, serverCPU: serverCPU, check: check)
    }

    /// The pair workload against Redis (see RedisLoad), with the same plan, report and check shape.
    private func executeAgainstRedis() async throws {
        let (host, port) = try parseAddress(server)
        let (prefix, names) = tenantNames()
        let plan = try makePlan(names, holdTTL: nil)
        let session: RedisSession
        do {
            session = try await RedisLoad.prepare(
                host: host, port: port, connections: connections, tenantPrefix: prefix, plan: plan, grant: grant)
        } catch {
            throw LoadError.failed("Redis at \(server): \(error)")
        }
        defer { session.close() }
        let (stats, elapsed, serverCPU) = await measure(plan) { state in await session.run(plan, state: state) }
        try report(
            plan, stats: stats, elapsed: elapsed, serverCPU: serverCPU, check: noCheck ? nil : await session.check(stats, plan: plan))
    }

    /// The run's tenant names, PREFIX-0 ... (PREFIX: --tenant-prefix, or a fresh random one).
    private func tenantNames() -> (prefix: String, names: [TenantID]) {
        let prefix = tenantPrefix ?? "load-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
        return (prefix, (0..<tenants).map { TenantID("\(prefix)-\($0)") })
    }

    /// The plan of the run the options describe, over `names`.
    private func makePlan(_ names: [TenantID], holdTTL: Duration?) throws -> RunPlan {
        RunPlan(
            tenants: names,
            distribution: try TenantDistribution.parse(
                distribution, count: tenants, zipfExponent: zipfExponent, hotFraction: hotFraction),
            mix: try OperationMix(parsing: mix), lanes: connections * pipeline,
            duration: duration ?? (operations == nil ? 10 : nil), operations: operations, rate: rate, amount: amount,
            holdTTL: holdTTL, holdPrefix: holdPrefix ?? "h\(String(UInt32.random(in: 0...UInt32.max), radix: 36))", seed: seed)
    }

    /// Runs `lanes` (the measured part, with the progress line) and returns what they saw and how
    /// long they took, in seconds.
    private func measure(
        _ plan: RunPlan, _ lanes: (RunState) async throws -> LaneStats
    ) async rethrows -> (stats: LaneStats, elapsed: Double, serverCPU: Double?) {
        let cpuBefore = serverPIDs.isEmpty ? nil : ProcessCPU.seconds(serverPIDs)
        let start = monotonicNanoseconds()
        let state = RunState(operations: plan.operations, duration: plan.duration, start: start)
        let ticker = Task { await showProgress(state, start: start) }
        defer { ticker.cancel() }
        let stats = try await lanes(state)
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        // Read once the lanes are done, before the check's reads (its calls are not the run's).
        let serverCPU = cpuBefore.flatMap { before in ProcessCPU.seconds(serverPIDs).map { $0 - before } }
        ticker.cancel()
        _ = await ticker.result
        progress(quiet ? "" : "\n")
        return (stats, elapsed, serverCPU)
    }

    /// Prints the report; exit 1 when the check found violations.
    private func report(_ plan: RunPlan, stats: LaneStats, elapsed: Double, serverCPU: Double?, check: CheckResult?) throws {
        let report = Report(
            plan: plan, connections: connections, pipeline: pipeline, elapsed: elapsed, stats: stats, check: check,
            serverCPUSeconds: serverCPU)
        print(json ? report.json() : report.text())
        if let check, !check.violations.isEmpty { throw ExitCode(1) }
    }

    /// Runs the plan's lanes, spread over `clients`, each on its client's event loop.
    static func runLanes<Client: LoadClient>(_ clients: [Client], plan: RunPlan, state: RunState) async -> LaneStats {
        await ledger_load.runLanes(plan.lanes, on: clients.map(\.eventLoop)) { index, client in
            var lane = Lane(index: index, client: clients[client], plan: plan, state: state)
            return await lane.run()
        }
    }

    private func progress(_ text: String) {
        if !quiet { FileHandle.standardError.write(Data(text.utf8)) }
    }

    private func showProgress(_ state: RunState, start: UInt64) async {
        guard !quiet else { return }
        let terminal = isatty(2) == 1
        var lastCalls = 0
        var lastTime = start
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let now = monotonicNanoseconds()
            let calls = state.calls.load(ordering: .relaxed)
            let rate = Double(calls - lastCalls) / (Double(now - lastTime) / 1e9)
            let slowest = state.slowest.exchange(0, ordering: .relaxed)
            let line = String(
                format: "%6.1f s  %@ calls  %@ calls/s  slowest %.1f ms  %@ errors", Double(now - start) / 1e9,
                Report.grouped(calls), Report.grouped(Int(rate)), Double(slowest) / 1000,
                Report.grouped(state.errors.load(ordering: .relaxed)))
            progress(terminal ? "\r\(line)" : "\(line)\n")
            lastCalls = calls
            lastTime = now
        }
    }

    /// Creates and funds the tenants, `lanes` calls at a time. Request ids are derived from the
    /// names, so a second run with the same --tenant-prefix replays instead of failing.
    private func setUp(_ names: [TenantID], clients: [LedgerClient], lanes: Int) async throws {
        let next = Counter()
        let amount = grant
        let settings = TenantSettings(movementEvents: movementEvents == "on")
        let failures = await withTaskGroup(of: [String].self) { group in
            for lane in 0..<lanes {
                let client = clients[lane % clients.count]
                group.addTask {
                    var failures: [String] = []
                    while let index = next.take(below: names.count) {
                        let tenant = names[index]
                        do {
                            do {
                                _ = try await client.createTenant(tenant, settings: settings, requestID: RequestID("setup-\(tenant)"))
                            } catch LedgerClientError.rejected(let error) where error.code == .alreadyExists {
                                // Made by someone else: use it as it is, funded below.
                            }
                            _ = try await client.grant(
                                tenant: tenant, GrantRequest(kind: .purchase, amount: amount, note: "ledger-load"),
                                requestID: RequestID("fund-\(tenant)"))
                        } catch {
                            failures.append("\(tenant): \(error)")
                        }
                    }
                    return failures
                }
            }
            var all: [String] = []
            for await failures in group { all += failures }
            return all
        }
        if let first = failures.first {
            throw LoadError.failed("setting up \(failures.count) tenants failed; first: \(first)")
        }
    }
}

/// Hands out 0, 1, 2, ... to concurrent tasks.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func take(below limit: Int) -> Int? {
        let taken = value.add(1, ordering: .relaxed).oldValue
        return taken < limit ? taken : nil
    }
}

import Synchronization

/// A process's CPU time from /proc (utime + stime), for `--server-pid`.
enum ProcessCPU {
    /// The CPU seconds the processes have used so far; nil when one cannot be read.
    static func seconds(_ pids: [Int32]) -> Double? {
        var ticks = 0
        for pid in pids {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let end = stat.lastIndex(of: ")")
            else { return nil }
            // After the command's name (which may hold spaces): state is field 3, utime 14, stime 15.
            let fields = stat[stat.index(after: end)...].split(separator: " ")
            guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
            ticks += user + system
        }
        return Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
