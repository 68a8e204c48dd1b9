// Cluster mode with real ledgerd processes (SIGSTOP, SIGKILL) and the Swift client over TLS, on the
// PostgreSQL pair of ClusterFixture.swift.

import Foundation
import Glibc
import LedgerClient
import LedgerCore
import LedgerServerTesting
import LedgerStore
import LedgerTesting
import LedgerWire
import Synchronization
import Testing

@testable import LedgerCluster
@testable import LedgerEngine

/// A ledgerd node of a test cluster, with a client of its own.
struct ClusterProcess {
    let started: StartedLedgerd
    let dataPath: String
    var address: String { "127.0.0.1:\(started.port)" }

    /// Starts `ledgerd --storage postgres` with development TLS material shared through `tls` (the
    /// first node's folder, copied in so that one CA serves the whole cluster).
    static func start(
        _ url: ClusterDatabaseURL, id: String, directory: TemporaryDirectory, tlsFrom first: String? = nil, leaseMilliseconds: Int = 1_000
    ) throws -> ClusterProcess {
        let dataPath = directory.sub(id)
        if let first { try FileManager.default.copyItem(atPath: first + "/tls", toPath: dataPath + "/tls") }
        let started = try StartedLedgerd(
            dataPath: dataPath,
            arguments: [
                "--storage", "postgres", "--postgres-url", url.connectionURL, "--node-id", id, "--lease-ms", "\(leaseMilliseconds)",
                "--metrics-listen", "off", "--grpc-listen", "off",
            ],
            logPath: directory.path + "/" + id + ".log")
        return ClusterProcess(started: started, dataPath: dataPath)
    }

    /// Nodes n1 and n2, the second with the first's CA.
    static func startTwo(_ url: ClusterDatabaseURL, directory: TemporaryDirectory) throws -> (ClusterProcess, ClusterProcess) {
        let first = try start(url, id: "n1", directory: directory)
        do {
            return (first, try start(url, id: "n2", directory: directory, tlsFrom: first.dataPath))
        } catch {
            stop(first)
            throw error
        }
    }

    /// SIGKILL and reap (a node already reaped is left alone).
    static func stop(_ nodes: ClusterProcess...) {
        for node in nodes where Glibc.kill(node.started.process.pid, 0) == 0 {
            node.started.process.kill()
            _ = node.started.process.wait()
        }
    }

    /// A client of this node alone that neither retries nor follows `wrong_owner`: the tests see
    /// what the node answers.
    func client() async throws -> LedgerClient {
        var configuration = ClientConfiguration.development(dataDirectory: dataPath, port: started.port)
        configuration.retry = RetryPolicy(attempts: 1)
        configuration.redirectsMax = 0
        configuration.callTimeout = .seconds(5)
        return try await LedgerClient.connect(configuration)
    }
}

extension ClusterDatabaseURL {
    var connectionURL: String { "postgres://\(user)@\(host):\(port)/\(database)?sslmode=\(sslMode)" }
}

/// Clients by node address; a call goes to the node that serves its tenant as far as the test
/// knows, follows `wrong_owner`, and on `unavailable` or a lost connection tries the other nodes,
/// with the same request id each time, until it is answered or `deadline` passes.
actor Router {
    private var clients: [String: LedgerClient] = [:]
    private let dataPath: String
    private var addresses: [String]
    private var owner: [TenantID: String] = [:]
    private(set) var redirects = 0
    private(set) var retries = 0

    init(addresses: [String], dataPath: String) {
        self.addresses = addresses
        self.dataPath = dataPath
    }

    private func client(_ address: String) async throws -> LedgerClient {
        if let client = clients[address] { return client }
        let port = Int(address.split(separator: ":").last!)!
        var configuration = ClientConfiguration.development(dataDirectory: dataPath, port: port)
        configuration.retry = RetryPolicy(attempts: 1)
        configuration.callTimeout = .seconds(3)
        configuration.connectTimeout = .seconds(1)
        let client = try await LedgerClient.connect(configuration)
        clients[address] = client
        return client
    }

    private func forget(_ address: String) async {
        if let client = clients.removeValue(forKey: address) { await client.close() }
    }

    func call<T: Sendable>(
        _ tenant: TenantID, deadline: ContinuousClock.Instant, _ body: @Sendable (LedgerClient) async throws(LedgerClientError) -> T
    ) async throws -> T {
        var next = owner[tenant] ?? addresses[0]
        while true {
            do {
                let result = try await body(try await client(next))
                owner[tenant] = next
                return result
            } catch let error as LedgerClientError {
                guard ContinuousClock.now < deadline else { throw error }
                if case .rejected(let ledger) = error {
                    if ledger.code == .wrongOwner, case .owner(_, let address, _)? = ledger.details {
                        redirects += 1
                        next = address
                        continue
                    }
                    guard ledger.code == .unavailable else { throw error }
                } else {
                    await forget(next)
                }
            } catch {
                // Connecting failed (the node is gone).
                guard ContinuousClock.now < deadline else { throw error }
                await forget(next)
            }
            retries += 1
            try await Task.sleep(for: .milliseconds(100))
            next = addresses[(addresses.firstIndex(of: next).map { $0 + 1 } ?? 0) % addresses.count]
        }
    }

    func closeAll() async {
        for client in clients.values { await client.close() }
        clients = [:]
    }
}

final class Acknowledged: Sendable {
    let list = Mutex<[(TenantID, HoldID, UInt64)]>([])
}

@Suite(.serialized)
struct ClusterProcessTests {
    let pair: PostgresPair

    init() throws { pair = try PostgresPair.fromEnvironment() }

    @Test func clusterInitCreatesOnceAndRefusesAnotherShardCount() async throws {
        let url = try await pair.freshCluster(shards: 4)
        let again = try ChildProcess(builtProduct("ledgerd"), ["cluster", "init", "--postgres-url", url.connectionURL, "--shards", "4"])
        #expect(again.readLine()?.contains("holds a cluster of 4 shards already") == true)
        #expect(again.wait() == 0)
        let other = try ChildProcess(builtProduct("ledgerd"), ["cluster", "init", "--postgres-url", url.connectionURL, "--shards", "8"])
        #expect(other.wait() == 64)
        let bad = try ChildProcess(builtProduct("ledgerd"), ["cluster", "init", "--postgres-url", "mysql://x@y/z"])
        #expect(bad.wait() == 64)
        // A node refuses flags of the other mode.
        let mixed = try ChildProcess(builtProduct("ledgerd"), ["--node-id", "a"])
        #expect(mixed.wait() == 64)
    }

    @Test func aPausedOwnerIsFencedAndClientsAreSentToTheOwner() async throws {
        let url = try await pair.freshCluster(shards: 1)
        let directory = TemporaryDirectory("cluster-pause")
        let (first, second) = try ClusterProcess.startTwo(url, directory: directory)
        defer { ClusterProcess.stop(first, second) }
        let client1 = try await first.client()
        let client2 = try await second.client()
        _ = try await client1.createTenant("acme")
        _ = try await client1.grant(tenant: "acme", GrantRequest(kind: .purchase, amount: 1_000))
        _ = try await client1.reserve(tenant: "acme", hold: "h1", tokens: 10)
        // The second node sends the client to the first, with its epoch.
        do {
            _ = try await client2.balance(tenant: "acme")
            Issue.record("the node that does not serve the shard answered")
        } catch {
            #expect(error.ledgerError?.code == .wrongOwner)
            #expect(error.ledgerError?.details == .owner(shard: 0, address: first.address, epoch: 1))
        }

        // Paused past its lease: the second node takes the shard and serves what was acknowledged.
        first.started.process.kill(SIGSTOP)
        // Only once it is stopped may the late call go out (else it could be served before the pause).
        let statPath = "/proc/\(first.started.process.pid)/stat"
        for _ in 0..<200 {
            let stat = (try? String(contentsOfFile: statPath, encoding: .utf8)) ?? ""
            if let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "T" { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let late = Task { try await client1.reserve(tenant: "acme", hold: "late", tokens: 5, requestID: "late") }
        var served = false
        for _ in 0..<60 where !served {
            try await Task.sleep(for: .milliseconds(200))
            served = (try? await client2.balance(tenant: "acme"))?.reserved == 10
        }
        #expect(served, "the second node did not take over within 12 s")
        // Resumed: the call it read while paused is applied in its memory but fenced in the log.
        first.started.process.kill(SIGCONT)
        do {
            let result = try await late.value
            Issue.record("a fenced node acknowledged \(result)")
        } catch let error as LedgerClientError {
            let code = error.ledgerError?.code
            #expect(code == .unavailable || code == .wrongOwner, "\(error)")
        }
        let holds = try await client2.listHolds(tenant: "acme")
        #expect(holds.holds.map(\.id) == ["h1"])
        let epochs = try await logEpochs(url, shard: 0).map(\.epoch)
        #expect(epochs == epochs.sorted(), "\(epochs)")
        await client1.close()
        await client2.close()
    }

    @Test func sigtermHandsTheShardsOverAtOnce() async throws {
        let url = try await pair.freshCluster(shards: 2)
        let directory = TemporaryDirectory("cluster-term")
        // A 20 s lease: a take-over within a few seconds can only come from the hand-over.
        let first = try ClusterProcess.start(url, id: "n1", directory: directory, leaseMilliseconds: 20_000)
        let client1 = try await first.client()
        _ = try await client1.createTenant("acme")
        _ = try await client1.grant(tenant: "acme", GrantRequest(kind: .purchase, amount: 100))
        await client1.close()
        let second = try ClusterProcess.start(url, id: "n2", directory: directory, tlsFrom: first.dataPath, leaseMilliseconds: 20_000)
        defer {
            second.started.process.kill()
            _ = second.started.process.wait()
        }
        let began = ContinuousClock.now
        first.started.process.kill(SIGTERM)
        #expect(first.started.process.wait() == 0)
        let client2 = try await second.client()
        var served = false
        while !served, ContinuousClock.now - began < .seconds(15) {
            served = (try? await client2.balance(tenant: "acme"))?.available == 100
            if !served { try await Task.sleep(for: .milliseconds(100)) }
        }
        let elapsed = ContinuousClock.now - began
        #expect(served && elapsed < .seconds(10), "served \(served) after \(elapsed)")
        await client2.close()
    }

    @Test func theSwiftClientFollowsWrongOwnerAndOutlivesItsFirstNode() async throws {
        let url = try await pair.freshCluster(shards: 4)
        let directory = TemporaryDirectory("cluster-client")
        let (first, second) = try ClusterProcess.startTwo(url, directory: directory)
        defer { ClusterProcess.stop(first, second) }
        // Both nodes serve shards once the first has handed over its surplus.
        var split = false
        for _ in 0..<50 where !split {
            try await Task.sleep(for: .milliseconds(200))
            let owners = try await replayAll(url).map(\.head.owner)
            split = owners.allSatisfy { $0 == "n1" || $0 == "n2" } && Set(owners).count == 2
        }
        #expect(split, "the shards were not spread over both nodes")
        var configuration = ClientConfiguration.development(dataDirectory: first.dataPath, port: first.started.port)
        configuration.servers = [second.address]
        configuration.retry = RetryPolicy(attempts: 10, backoff: .milliseconds(100))
        let client = try await LedgerClient.connect(configuration)
        let tenants = (0..<8).map { TenantID("c\($0)") }
        for tenant in tenants {
            _ = try await client.createTenant(tenant)
            _ = try await client.grant(tenant: tenant, GrantRequest(kind: .purchase, amount: 1_000))
            _ = try await client.charge(tenant: tenant, hold: "before", tokens: 10)
        }
        first.started.process.kill()
        _ = first.started.process.wait()
        for tenant in tenants {
            _ = try await client.charge(tenant: tenant, hold: "after", tokens: 5)
            #expect(try await client.balance(tenant: tenant).spent == 15)
        }
        await client.close()
    }

    /// A node joins: the first hands it a shard; a watch on a tenant of that shard ends (its node
    /// no longer serves it) and, watched again after its last event, resumes on the new node with
    /// the same event ids. The shard map of either node names both.
    @Test func aWatchFollowsItsTenantsShardToTheNodeThatTookIt() async throws {
        let url = try await pair.freshCluster(shards: 2)
        let directory = TemporaryDirectory("cluster-watch")
        let first = try ClusterProcess.start(url, id: "n1", directory: directory)
        defer { ClusterProcess.stop(first) }
        var configuration = ClientConfiguration.development(dataDirectory: first.dataPath, port: first.started.port)
        configuration.retry = RetryPolicy(attempts: 20, backoff: .milliseconds(100))
        let client = try await LedgerClient.connect(configuration)
        // Alone, the first node takes both shards; it hands the higher one over when a node joins.
        let tenant = try #require((0..<100).map { TenantID("w\($0)") }.first { $0.shardIndex(shardCount: 2) == 1 })
        _ = try await client.createTenant(tenant, settings: TenantSettings(lowBalanceThreshold: 500))
        _ = try await client.grant(tenant: tenant, GrantRequest(kind: .purchase, amount: 1_000))
        let map = try await client.shardMap()
        #expect(map.cluster && map.shardCount == 2)
        #expect(map.shards.map(\.address) == [first.address, first.address] && map.shards.allSatisfy(\.here))

        var updates = WatchUpdates(try await client.watch(tenant: tenant, after: 0))
        guard case .started? = try await updates.next()?.update else { throw ChildError("the watch did not start") }
        _ = try await client.charge(tenant: tenant, hold: "low", tokens: 600)
        var last: UInt64 = 0
        while true {
            guard case .event(let event)? = try await updates.next()?.update else { continue }
            last = event.id
            guard case .lowBalance? = event.kind else { continue }
            break
        }

        let second = try ClusterProcess.start(url, id: "n2", directory: directory, tlsFrom: first.dataPath)
        defer { ClusterProcess.stop(second) }
        // The watch ends once the first node no longer serves the shard.
        var ended: LedgerError? = nil
        do {
            while true { _ = try await updates.next(seconds: 20) }
        } catch let error as LedgerClientError {
            ended = error.ledgerError
        }
        #expect(ended?.code == .wrongOwner || ended?.code == .unavailable, "\(String(describing: ended))")
        // Watched again after the last event: it opens on the second node (the client follows
        // wrong_owner), where the recovery that follows arrives with the next event id.
        var started = false
        for _ in 0..<100 where !started {
            updates = WatchUpdates(try await client.watch(tenant: tenant, after: last))
            if case .started? = try? await updates.next()?.update { started = true } else { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(started, "the watch did not start again")
        _ = try await client.grant(tenant: tenant, GrantRequest(kind: .purchase, amount: 600))
        let recovered = try await updates.next()
        guard case .event(let event)? = recovered?.update, case .balanceRecovered? = event.kind else {
            throw ChildError("expected balance_recovered, got \(String(describing: recovered))")
        }
        #expect(event.id == last + 1)
        // Both nodes' maps name the second node for shard 1 (each learns it within a round).
        let direct = try await second.client()
        var agreed = false
        for _ in 0..<50 where !agreed {
            let maps = [try await client.shardMap(), try await direct.shardMap()]
            agreed = maps.allSatisfy { $0.shards.map(\.address) == [first.address, second.address] }
            if !agreed { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(agreed)
        #expect(try await direct.shardMap().shards.map(\.here) == [false, true])
        await direct.close()
        await client.close()
    }

    @Test func killDashNineOfAnOwnerUnderLoadLosesAndDoublesNothing() async throws {
        let url = try await pair.freshCluster(shards: 4)
        let directory = TemporaryDirectory("cluster-kill")
        let (first, second) = try ClusterProcess.startTwo(url, directory: directory)
        defer { ClusterProcess.stop(first, second) }
        let router = Router(addresses: [first.address, second.address], dataPath: first.dataPath)
        let tenants = (0..<8).map { TenantID("t\($0)") }
        let setup = ContinuousClock.now + .seconds(20)
        for tenant in tenants {
            _ = try await router.call(tenant, deadline: setup) { client throws(LedgerClientError) in
                try await client.createTenant(tenant, requestID: RequestID("create-\(tenant.rawValue)"))
            }
            _ = try await router.call(tenant, deadline: setup) { client throws(LedgerClientError) in
                try await client.grant(
                    tenant: tenant, GrantRequest(kind: .purchase, amount: 1_000_000), requestID: RequestID("grant-\(tenant.rawValue)"))
            }
        }
        // Acknowledged charges: (tenant, hold, amount).
        let acknowledged = Acknowledged()
        let firstPID = first.started.process.pid
        let workers = 4
        let perWorker = 80
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    for index in 0..<perWorker {
                        let tenant = tenants[(worker * 3 + index) % tenants.count]
                        let hold = HoldID("w\(worker)-\(index)")
                        let amount = UInt64(1 + (worker + index) % 5)
                        _ = try await router.call(tenant, deadline: .now + .seconds(30)) { client throws(LedgerClientError) in
                            try await client.charge(tenant: tenant, hold: hold, tokens: amount, requestID: RequestID("charge-\(hold.rawValue)"))
                        }
                        acknowledged.list.withLock { $0.append((tenant, hold, amount)) }
                    }
                }
            }
            group.addTask {
                // Kill the first node (an owner of half the shards) once the load is under way.
                while acknowledged.list.withLock({ $0.count }) < workers * perWorker / 4 { try await Task.sleep(for: .milliseconds(20)) }
                _ = Glibc.kill(firstPID, SIGKILL)
            }
            try await group.waitForAll()
        }
        let acks = acknowledged.list.withLock { $0 }
        #expect(acks.count == workers * perWorker)
        // The whole log replays (CRCs, no LSN gap, epochs never decreasing, a clean audit) ...
        let replayed = try await replayAll(url)
        // Every shard ended on the node that survived.
        #expect(replayed.allSatisfy { $0.head.owner == "n2" }, "\(replayed.map { ($0.head.shard, $0.head.owner ?? "-") })")
        var states: [TenantID: LedgerState] = [:]
        for (_, state, _) in replayed { for tenant in tenants where state.tenants[tenant] != nil { states[tenant] = state } }
        // ... and holds every acknowledged charge exactly once, nothing else spent.
        for tenant in tenants {
            let state = try #require(states[tenant])
            var captured: [HoldID: Int] = [:]
            var cursor: UInt64 = 0
            while true {
                let page = try state.history(tenant, filter: HistoryFilter(kinds: [.capture], afterSequence: cursor, limit: 1_000))
                for entry in page.entries { captured[entry.hold!, default: 0] += 1 }
                guard let next = page.nextCursor else { break }
                cursor = next
            }
            let mine = acks.filter { $0.0 == tenant }
            #expect(Set(captured.keys) == Set(mine.map(\.1)), "tenant \(tenant)")
            #expect(captured.values.allSatisfy { $0 == 1 }, "a charge applied twice for \(tenant)")
            #expect(try state.balance(tenant).spent == mine.reduce(0) { $0 + $1.2 })
            // The live node answers what the log holds.
            let live = try await router.call(tenant, deadline: .now + .seconds(10)) { client throws(LedgerClientError) in
                try await client.balance(tenant: tenant)
            }
            #expect(live.spent == (try state.balance(tenant).spent))
        }
        await router.closeAll()
    }
}
