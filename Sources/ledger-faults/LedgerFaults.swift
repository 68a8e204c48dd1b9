// The client and the checker of scripts/cluster-faults (docs/cluster.md, "Faults").
//
//   ledger-faults load  --servers H:P,... --tls DIR --tenants N --workers W --seconds S --history FILE
//   ledger-faults check --postgres-url URL --history FILE [--faults FILE] [--shards N]
//
// `load` charges tenants and reads their balances from W clients, each with its own connections
// and its own history (Jepsen's invoke, then ok, fail or info), every call with a unique request
// id; a call whose outcome stays unknown after the client's retries is sent again with the same
// request id until it is answered (or the run ends: then it stays info). `check` reads the
// histories, the cluster's log from PostgreSQL (its rows' epochs and LSNs, and the whole log
// replayed with checksums and the audit) and prints the verdict: no acknowledged call lost, none
// applied twice, no LSN gap or epoch going back, two changes never at one LSN, each client's
// answers never going back, conservation; and per fault of the nemesis' log, the longest time
// without an answered call, the calls answered and failed. Exit 1 on any violation.

import ArgumentParser
import Foundation
import LedgerClient
import LedgerCluster
import LedgerCore
import LedgerTesting
import LedgerWire
import Logging
import Synchronization

@main
struct LedgerFaults: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-faults", abstract: "Load and verdict of the cluster fault runs (scripts/cluster-faults).",
        subcommands: [Load.self, Check.self])
}

/// One line of a history file: an operation as its client saw it, with the wall-clock time.
struct HistoryLine: Codable {
    var process: Int
    var kind: String
    /// "charge" or "balance".
    var function: String
    var tenant: String
    var requestID: String
    var hold: String
    var amount: UInt64
    var lsn: UInt64
    var replayed: Bool
    /// ok charge: charged; ok balance: the balance's fields.
    var charged: UInt64?
    var balance: [UInt64]?
    var error: String?
    var timeMs: Int64

    var operation: HistoryChecker.Operation {
        let function: HistoryChecker.Operation.Function =
            self.function == "charge" ? .charge(hold: hold, amount: amount) : .balance
        var value: HistoryChecker.Operation.Value? = nil
        if let charged { value = .charged(charged) }
        if let b = balance, b.count == 6 {
            value = .balance(.init(tenant: tenant, available: b[0], reserved: b[1], spent: b[2], expired: b[3], voided: b[4], granted: b[5]))
        }
        return HistoryChecker.Operation(
            process: process, kind: HistoryChecker.Operation.Kind(rawValue: kind) ?? .info, function: function, tenant: tenant,
            requestID: requestID, lsn: lsn, replayed: replayed, value: value, error: error)
    }
}

func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000) }

/// Appends lines to a history file, one JSON object a line.
final class HistoryWriter: Sendable {
    private let handle: FileHandle
    private let lock = Mutex(())

    init(path: String) throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: path) else { throw ValidationError("cannot write \(path)") }
        self.handle = handle
    }

    func write(_ line: HistoryLine) {
        let data = (try? JSONEncoder().encode(line)) ?? Data()
        lock.withLock { _ in handle.write(data + Data([0x0A])) }
    }

    func close() { try? handle.close() }
}

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Charge and read from several clients, writing a history.")
    @Option(help: "The ledgerd nodes, HOST:PORT,HOST:PORT,...") var servers: String
    @Option(help: "A folder with ca.pem, admin.pem and admin-key.pem.") var tls: String
    @Option var tenants = 8
    @Option var workers = 4
    @Option var seconds = 60
    @Option(help: "The history file to write.") var history: String
    @Option(help: "Seed of the tenants and amounts each worker picks.") var seed: UInt64 = 1

    func run() async throws {
        let addresses = servers.split(separator: ",").map(String.init)
        guard let first = addresses.first, let colon = first.lastIndex(of: ":"), let port = Int(first[first.index(after: colon)...]) else {
            throw ValidationError("--servers: HOST:PORT,...")
        }
        var configuration = ClientConfiguration(
            host: String(first[..<colon]), port: port, caPath: tls + "/ca.pem", certificatePath: tls + "/admin.pem",
            privateKeyPath: tls + "/admin-key.pem")
        configuration.servers = Array(addresses.dropFirst())
        configuration.callTimeout = .seconds(3)
        configuration.connectTimeout = .seconds(2)
        configuration.retry = RetryPolicy(attempts: 4, backoff: .milliseconds(100))
        let names = (0..<tenants).map { TenantID("f\($0)") }
        let deadline = ContinuousClock.now + .seconds(seconds)
        // Set-up, retried until the cluster answers (the same request ids: applied once).
        let setup = try await connect(configuration, until: deadline)
        for tenant in names {
            try await retrying(until: deadline) {
                _ = try await setup.createTenant(tenant, requestID: RequestID("setup-\(tenant.rawValue)"))
            }
            try await retrying(until: deadline) {
                _ = try await setup.grant(
                    tenant: tenant, GrantRequest(kind: .purchase, amount: 1_000_000_000), requestID: RequestID("grant-\(tenant.rawValue)"))
            }
        }
        await setup.close()
        let writer = try HistoryWriter(path: history)
        defer { writer.close() }
        let configured = configuration
        let base = seed
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var random = SeededGenerator(state: base &* 1_000 &+ UInt64(worker))
                    let client = try await connect(configured, until: deadline)
                    var index = 0
                    while ContinuousClock.now < deadline {
                        let tenant = names[Int(random.next() % UInt64(names.count))]
                        if random.next() % 5 == 0 {
                            await read(client, worker: worker, tenant: tenant, writer: writer)
                        } else {
                            let hold = "w\(worker)-\(index)-s\(base)"
                            index += 1
                            await charge(
                                client, worker: worker, tenant: tenant, hold: hold, amount: 1 + random.next() % 9, writer: writer,
                                deadline: deadline)
                        }
                    }
                    await client.close()
                }
            }
            try await group.waitForAll()
        }
    }
}

/// A charge until it is answered: its client's own retries first, then the same request id again
/// while the outcome stays unknown (each unknown outcome is written as info).
func charge(
    _ client: LedgerClient, worker: Int, tenant: TenantID, hold: String, amount: UInt64, writer: HistoryWriter,
    deadline: ContinuousClock.Instant
) async {
    let requestID = "charge-\(hold)"
    func line(_ kind: String, lsn: UInt64 = 0, replayed: Bool = false, charged: UInt64? = nil, error: String? = nil) -> HistoryLine {
        HistoryLine(
            process: worker, kind: kind, function: "charge", tenant: tenant.rawValue, requestID: requestID, hold: hold, amount: amount,
            lsn: lsn, replayed: replayed, charged: charged, balance: nil, error: error, timeMs: nowMs())
    }
    writer.write(line("invoke"))
    // Unknown outcomes are retried until a grace period after the load's end.
    let give = deadline + .seconds(30)
    while true {
        do {
            let response = try await client.call(
                .command(.charge(tenant, ReserveRequest(hold: HoldID(hold), amount: .tokens(amount))), RequestID(requestID)))
            guard case .charge(let result)? = response.result else {
                writer.write(line("info", error: "not a charge result"))
                return
            }
            writer.write(line("ok", lsn: response.lsn, replayed: response.replayed, charged: result.charged))
            return
        } catch {
            if let code = error.ledgerError?.code, code != .unavailable, code != .wrongOwner, code != .overloaded {
                writer.write(line("fail", error: code.rawValue))
                return
            }
            writer.write(line("info", error: "\(error)"))
            guard ContinuousClock.now < give else { return }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }
}

func read(_ client: LedgerClient, worker: Int, tenant: TenantID, writer: HistoryWriter) async {
    var line = HistoryLine(
        process: worker, kind: "invoke", function: "balance", tenant: tenant.rawValue, requestID: "", hold: "", amount: 0, lsn: 0,
        replayed: false, charged: nil, balance: nil, error: nil, timeMs: nowMs())
    writer.write(line)
    do {
        let response = try await client.call(.balance(tenant, member: nil))
        guard case .balance(let b)? = response.result else { return }
        line.kind = "ok"
        line.lsn = response.lsn
        line.balance = [b.available, b.reserved, b.spent, b.expired, b.voided, b.granted]
    } catch {
        line.kind = "fail"
        line.error = "\(error)"
    }
    line.timeMs = nowMs()
    writer.write(line)
}

/// A client of the cluster, once any node answers (`LedgerClient.connect` tries every address;
/// a fault may have taken them all away for a while).
func connect(_ configuration: ClientConfiguration, until deadline: ContinuousClock.Instant) async throws -> LedgerClient {
    while true {
        do {
            return try await LedgerClient.connect(configuration)
        } catch {
            guard ContinuousClock.now < deadline else { throw error }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

func retrying(until deadline: ContinuousClock.Instant, _ body: () async throws -> Void) async throws {
    while true {
        do {
            return try await body()
        } catch {
            guard ContinuousClock.now < deadline, error.ledgerError.map({ [.unavailable, .wrongOwner, .overloaded].contains($0.code) }) ?? true else {
                throw error
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

extension Error {
    var ledgerError: LedgerError? { (self as? LedgerClientError)?.ledgerError }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The verdict: the histories against the cluster's log.")
    @Option var postgresURL: String
    @Option(help: "History files (repeatable).") var history: [String]
    @Option(help: "The nemesis' log: lines NAME START_MS END_MS.") var faults: String?

    func run() async throws {
        var lines: [HistoryLine] = []
        for path in history {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read \(path)") }
            for row in text.split(separator: "\n") where !row.isEmpty {
                lines.append(try JSONDecoder().decode(HistoryLine.self, from: Data(row.utf8)))
            }
        }
        let operations = lines.map(\.operation)
        var logger = Logger(label: "ledger-faults")
        logger.logLevel = .error
        let database = try ClusterDatabase(url: try ClusterDatabaseURL(postgresURL), logger: logger)
        defer { database.shutdown() }
        let shardCount = try await database.open()
        var violations: [HistoryChecker.Violation] = []
        var records: [String: HistoryChecker.TenantRecord] = [:]
        var replayFailures: [String] = []
        let tenants = Set(operations.map(\.tenant))
        for head in try await database.heads() {
            do {
                let state = try await database.replay(head)
                for tenant in tenants where TenantID(tenant).shardIndex(shardCount: shardCount) == head.shard {
                    records[tenant] = try HistoryChecker.TenantRecord(TenantID(tenant), in: state)
                }
            } catch {
                replayFailures.append("shard \(head.shard): \(error)")
            }
        }
        let batches = try await database.logBatches().map {
            HistoryChecker.LogBatch(shard: $0.shard, epoch: $0.epoch, firstLSN: $0.firstLSN, lastLSN: $0.lastLSN)
        }
        let acquisitions = try await database.acquisitions().map {
            HistoryChecker.Acquisition(shard: $0.shard, epoch: $0.epoch, nextLSN: $0.nextLSN)
        }
        violations += HistoryChecker.checkLog(batches, acquisitions: acquisitions, history: operations, shardCount: shardCount)
        if replayFailures.isEmpty { violations += HistoryChecker.check(operations, tenants: records) }
        violations += HistoryChecker.checkClientOrder(operations)

        let ok = lines.filter { $0.kind == "ok" }
        let unresolved = unresolvedCalls(lines)
        print("calls: \(lines.filter { $0.kind == "invoke" }.count) made, \(ok.count) answered ok, "
            + "\(lines.filter { $0.kind == "fail" }.count) failed, \(unresolved) unknown at the end; "
            + "\(batches.count) log batches over \(Set(batches.map(\.shard)).count) shards, epochs up to \(batches.map(\.epoch).max() ?? 0)")
        if let faults { printFaultTable(faults, lines) }
        for failure in replayFailures { print("VIOLATION replay: \(failure)") }
        for violation in violations.prefix(50) { print("VIOLATION \(violation)") }
        if violations.count > 50 { print("... and \(violations.count - 50) more") }
        let clean = violations.isEmpty && replayFailures.isEmpty
        print(clean ? "verdict: valid" : "verdict: INVALID (\(violations.count + replayFailures.count) violations)")
        if !clean { throw ExitCode(1) }
    }

    /// Charges whose last line is info: their outcome stayed unknown (either is allowed).
    func unresolvedCalls(_ lines: [HistoryLine]) -> Int {
        var last: [String: String] = [:]
        for line in lines where line.function == "charge" { last[line.requestID] = line.kind }
        return last.values.filter { $0 == "info" }.count
    }

    /// Per fault: its window, the longest time without an ok answer in it (from the fault's start
    /// to its end plus 30 s of recovery), the calls answered and the tries that failed.
    func printFaultTable(_ path: String, _ lines: [HistoryLine]) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        let oks = lines.filter { $0.kind == "ok" }.map(\.timeMs).sorted()
        print("")
        print("fault                      seconds  without service (s)  answered  failed tries")
        for row in text.split(separator: "\n") {
            let fields = row.split(separator: " ")
            guard fields.count >= 3, let start = Int64(fields[1]), let end = Int64(fields[2]) else { continue }
            let windowEnd = end + 30_000
            let inWindow = oks.filter { $0 >= start && $0 <= windowEnd }
            var gap: Int64 = 0
            var previous = start
            for time in inWindow {
                gap = max(gap, time - previous)
                previous = time
            }
            if inWindow.isEmpty { gap = windowEnd - start }
            let failed = lines.filter { ($0.kind == "info" || $0.kind == "fail") && $0.timeMs >= start && $0.timeMs <= windowEnd }.count
            let name = String(fields[0]).padding(toLength: 26, withPad: " ", startingAt: 0)
            print(
                name + String(format: " %7.1f  %19.1f  %8d  %12d", Double(end - start) / 1_000, Double(gap) / 1_000, inWindow.count, failed))
        }
        print("")
    }
}
