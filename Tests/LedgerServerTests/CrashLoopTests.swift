import Foundation
import LedgerClient
import LedgerCore
import LedgerTesting
import LedgerWire
import Synchronization
import Testing

/// The real `ledgerd` SIGKILLed at random moments while clients reserve, commit, release and
/// read, restarted each time on the same data directory and port; the clients record every
/// operation (invoke, then ok, fail or info) and retry unknown outcomes with the same request id
/// until they resolve; at the end HistoryChecker replays the server's history against what the
/// clients saw. LEDGER_CRASH_LOOP_KILLS sets the number of kills (20 here, 200 in
/// `scripts/crash-loop`).
@Suite("Crash loop: ledgerd killed under load")
struct CrashLoopTests {
    typealias Op = HistoryChecker.Operation

    final class Recorder: Sendable {
        let operations = Mutex<[Op]>([])
        let stop = Atomic<Bool>(false)
        func record(_ op: Op) { operations.withLock { $0.append(op) } }
    }

    static let tenants = (0..<6).map { "crash-\($0)" }
    static let grant: UInt64 = 1_000_000

    static func start(_ data: String, port: Int?, log: String) async throws -> StartedLedgerd {
        var lastError: (any Error)? = nil
        for _ in 0..<50 {
            do {
                return try StartedLedgerd(
                    dataPath: data, arguments: port.map { ["--listen", "127.0.0.1:\($0)"] } ?? [], logPath: log)
            } catch {
                lastError = error  // the port may still be held for a moment; try again
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw lastError!
    }

    /// Sends `call` until it resolves: ok or a ledger error. Transport failures are recorded as
    /// info (the outcome is unknown) and the same request goes out again.
    static func resolve(
        _ call: LedgerCall, _ function: Op.Function, tenant: String, requestID: String, process: Int, client: LedgerClient,
        recorder: Recorder
    ) async -> WireResponse? {
        while true {
            recorder.record(Op(process: process, kind: .invoke, function: function, tenant: tenant, requestID: requestID))
            do {
                let response = try await client.call(call)
                recorder.record(
                    Op(process: process, kind: .ok, function: function, tenant: tenant, requestID: requestID,
                       lsn: response.lsn, replayed: response.replayed, value: value(of: response, tenant: tenant)))
                return response
            } catch .rejected(let error) {
                recorder.record(
                    Op(process: process, kind: .fail, function: function, tenant: tenant, requestID: requestID,
                       error: error.code.rawValue))
                return nil
            } catch {
                recorder.record(Op(process: process, kind: .info, function: function, tenant: tenant, requestID: requestID))
                try? await Task.sleep(for: .milliseconds(30))
            }
        }
    }

    static func value(of response: WireResponse, tenant: String) -> Op.Value? {
        switch response.result {
        case .reserve(let result)?: return .reserved(held: result.hold.amount)
        case .commit(let result)?: return .committed(captured: result.captured, released: result.released)
        case .release(let result)?: return .released(result.released)
        case .balance(let b)?:
            return .balance(
                .init(tenant: b.tenant, available: b.available, reserved: b.reserved, spent: b.spent, expired: b.expired,
                      voided: b.voided, granted: b.granted))
        default: return nil
        }
    }

    static func lane(_ process: Int, port: Int, data: String, recorder: Recorder) async {
        var configuration = ClientConfiguration.development(dataDirectory: data, port: port)
        configuration.retry = RetryPolicy(attempts: 2, backoff: .milliseconds(20))
        configuration.callTimeout = .seconds(10)
        configuration.connectTimeout = .seconds(2)
        var client: LedgerClient? = nil
        var iteration = 0
        while !recorder.stop.load(ordering: .relaxed) {
            if client == nil {
                client = try? await LedgerClient.connect(configuration)
                if client == nil {
                    try? await Task.sleep(for: .milliseconds(50))
                    continue
                }
            }
            iteration += 1
            let tenant = tenants.randomElement()!
            let hold = "L\(process)-\(iteration)"
            let amount = UInt64.random(in: 1...50)
            let reserve = await resolve(
                .command(.reserve(TenantID(tenant), ReserveRequest(hold: HoldID(hold), amount: .tokens(amount))), RequestID("r-\(hold)")),
                .reserve(hold: hold, amount: amount), tenant: tenant, requestID: "r-\(hold)", process: process, client: client!,
                recorder: recorder)
            guard reserve != nil else { continue }
            if Int.random(in: 0..<5) == 0 {
                _ = await resolve(
                    .command(.release(TenantID(tenant), HoldID(hold)), RequestID("x-\(hold)")), .release(hold: hold),
                    tenant: tenant, requestID: "x-\(hold)", process: process, client: client!, recorder: recorder)
            } else {
                let used = UInt64.random(in: 1...amount)
                _ = await resolve(
                    .command(.commit(TenantID(tenant), HoldID(hold), amount: used, final: true), RequestID("c-\(hold)")),
                    .commit(hold: hold, amount: used), tenant: tenant, requestID: "c-\(hold)", process: process,
                    client: client!, recorder: recorder)
            }
            if Int.random(in: 0..<4) == 0 {
                _ = await resolve(
                    .balance(TenantID(tenant), member: nil), .balance, tenant: tenant, requestID: "", process: process,
                    client: client!, recorder: recorder)
            }
        }
        await client?.close()
    }

    /// The server's account of every tenant: its whole history and its balance.
    static func records(port: Int, data: String) async throws -> [String: HistoryChecker.TenantRecord] {
        let client = try await LedgerClient.connect(.development(dataDirectory: data, port: port))
        var records: [String: HistoryChecker.TenantRecord] = [:]
        for tenant in tenants {
            var entries: [HistoryChecker.Entry] = []
            var after: UInt64 = 0
            repeat {
                let page = try await client.history(
                    tenant: TenantID(tenant), filter: HistoryFilter(afterSequence: after, limit: Limits.historyPageMax))
                for entry in page.entries {
                    let kind: HistoryChecker.Entry.Kind
                    switch entry.kind {
                    case .grant: kind = .grant
                    case .reserve: kind = .reserve
                    case .capture: kind = .capture
                    case .release: kind = .release
                    default: kind = .other
                    }
                    entries.append(
                        .init(sequence: entry.sequence, kind: kind, hold: entry.holdID, amount: entry.amount, requestID: entry.requestID))
                }
                after = page.nextCursor
            } while after != 0
            let b = try await client.balance(tenant: TenantID(tenant))
            records[tenant] = .init(
                entries: entries,
                balance: .init(
                    tenant: b.tenant, available: b.available, reserved: b.reserved, spent: b.spent, expired: b.expired,
                    voided: b.voided, granted: b.granted))
        }
        await client.close()
        return records
    }

    @Test("every acknowledged operation survives, nothing applies twice, retries return the first result, tokens are conserved")
    func crashLoop() async throws {
        let kills = Int(ProcessInfo.processInfo.environment["LEDGER_CRASH_LOOP_KILLS"] ?? "") ?? 20
        let directory = TemporaryDirectory("crash-loop")
        let data = directory.path + "/data"
        let log = directory.path + "/ledgerd.log"
        var ledgerd = try await Self.start(data, port: nil, log: log)
        let port = ledgerd.port
        let setup = try await LedgerClient.connect(.development(dataDirectory: data, port: port))
        for tenant in Self.tenants {
            _ = try await setup.createTenant(TenantID(tenant), requestID: RequestID("setup-\(tenant)"))
            _ = try await setup.grant(
                tenant: TenantID(tenant), GrantRequest(kind: .promo, amount: Self.grant), requestID: RequestID("grant-\(tenant)"))
        }
        await setup.close()

        let recorder = Recorder()
        let lanes = Task {
            await withTaskGroup(of: Void.self) { group in
                for process in 0..<6 {
                    group.addTask { await Self.lane(process, port: port, data: data, recorder: recorder) }
                }
            }
        }
        for _ in 0..<kills {
            try await Task.sleep(for: .milliseconds(Int.random(in: 100...400)))
            ledgerd.process.kill(SIGKILL)
            ledgerd.process.wait()
            ledgerd = try await Self.start(data, port: port, log: log)
        }
        try await Task.sleep(for: .milliseconds(300))
        recorder.stop.store(true, ordering: .relaxed)
        await lanes.value

        let history = recorder.operations.withLock { $0 }
        let records = try await Self.records(port: port, data: data)
        let violations = HistoryChecker.check(history, tenants: records)
        let count = { (kind: Op.Kind) in history.filter { $0.kind == kind }.count }
        print(
            "crash loop: \(kills) kills, \(count(.invoke)) calls: \(count(.ok)) ok, \(count(.fail)) failed, "
                + "\(count(.info)) unknown (retried until resolved); \(records.values.map(\.entries.count).reduce(0, +)) history entries checked")
        #expect(violations.isEmpty, "\(violations.count) violations:\n\(violations.prefix(20).map(\.description).joined(separator: "\n"))")
        #expect(count(.ok) > kills * 5, "the clients made progress between kills")
        #expect(count(.info) > 0, "some calls were in flight when the server died")
        ledgerd.process.kill(SIGTERM)
        #expect(ledgerd.process.wait() == 0)
    }
}
