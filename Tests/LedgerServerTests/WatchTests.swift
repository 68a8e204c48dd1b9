import LedgerServerTesting
import Foundation
import LedgerClient
import LedgerCore
import LedgerServer
import LedgerTesting
import LedgerWire
import Synchronization
import Testing

/// Watch over real TLS connections to an in-process server on a real data directory.
@Suite("Watch")
struct WatchTests {
    typealias Updates = WatchUpdates

    static func next(_ updates: Updates, seconds: Int = 10) async throws -> Tokenledger_V1_WatchUpdate {
        guard let update = try await updates.next(seconds: seconds) else { throw ChildError("the watch ended") }
        return update
    }

    static func event(_ update: Tokenledger_V1_WatchUpdate) -> Tokenledger_V1_LedgerEvent? {
        if case .event(let event)? = update.update { return event }
        return nil
    }

    /// A tenant with a pool threshold of 500 and 1,000 tokens: above it.
    /// A tenant with a threshold of 500 and 1,000 tokens; without movement events unless asked, so
    /// that only crossings are events.
    static func tenantAboveThreshold(_ client: LedgerClient, _ tenant: TenantID, movementEvents: Bool = false) async throws {
        _ = try await client.createTenant(tenant, settings: TenantSettings(lowBalanceThreshold: 500, movementEvents: movementEvents))
        _ = try await client.grant(tenant: tenant, GrantRequest(kind: .purchase, amount: 1_000))
    }

    /// Issue 22, defect 1: a watch holds one of its connection's call slots, so a watch on a quiet
    /// tenant is a call in flight and the idle timeout leaves its connection alone; a connection
    /// with nothing in flight is still closed at the same deadline.
    @Test("a watch on a quiet tenant outlives several idle timeouts; an idle connection does not")
    func watchOutlivesIdleTimeout() async throws {
        let directory = TemporaryDirectory("watch-idle")
        var limits = ConnectionLimits()
        limits.idleTimeout = .seconds(1)
        try await withServer(dataPath: directory.path, limits: limits) { server in
            let admin = try await server.client()
            try await Self.tenantAboveThreshold(admin, "acme")
            let watcher = try await server.client("meter")
            let watch = try await watcher.watch(tenant: "acme")
            let updates = Updates(watch)
            guard case .started? = try await Self.next(updates).update else {
                Issue.record("the first update is not started")
                return
            }
            // Meanwhile a connection that made one call and then nothing is closed when idle.
            let idle = try await RawConnection.connect(port: server.port)
            let idleOutcome = try await idle.exchange(FrameTests.health, expecting: 2)
            #expect(idleOutcome.responses.count == 1)
            #expect(idleOutcome.closed)
            // Three and a half idle timeouts without traffic on the watched tenant.
            try await Task.sleep(for: .milliseconds(3_500))
            // The watch's connection is still open: the crossing reaches it (the admin's own
            // connection was idle and closed; a new one makes the change).
            let later = try await server.client()
            _ = try await later.reserve(tenant: "acme", hold: "job", tokens: 600)
            let low = try #require(Self.event(try await Self.next(updates, seconds: 5)))
            guard case .lowBalance? = low.kind else {
                Issue.record("expected low_balance, got \(low)")
                return
            }
        }
    }

    @Test("a commit that crosses the threshold reaches the subscriber; a grant brings the recovery")
    func thresholdEvent() async throws {
        let directory = TemporaryDirectory("watch-threshold")
        try await withServer(dataPath: directory.path) { server in
            let admin = try await server.client()
            try await Self.tenantAboveThreshold(admin, "acme", movementEvents: true)
            let watcher = try await server.client("meter")
            let watch = try await watcher.watch(tenant: "acme")
            let updates = Updates(watch)
            guard case .started(let started)? = try await Self.next(updates).update else {
                Issue.record("the first update is not started")
                return
            }
            _ = try await admin.reserve(tenant: "acme", hold: "job", tokens: 600)
            _ = try await admin.commit(tenant: "acme", hold: "job", amount: 600)
            let low = try #require(Self.event(try await Self.next(updates)))
            #expect(low.id == started.latestEventID + 1)
            #expect(low.tenant == "acme")
            guard case .lowBalance(let crossing)? = low.kind else {
                Issue.record("expected low_balance, got \(low)")
                return
            }
            #expect(crossing.available == 400)
            #expect(crossing.threshold == 500)
            #expect(crossing.member == "")
            // The commit's movement.
            let captured = try #require(Self.event(try await Self.next(updates)))
            guard case .captured(let capture)? = captured.kind else {
                Issue.record("expected captured, got \(captured)")
                return
            }
            #expect(captured.id == low.id + 1 && capture.holdID == "job" && capture.amount == 600 && capture.final)
            _ = try await admin.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 200))
            let granted = try #require(Self.event(try await Self.next(updates)))
            guard case .granted(let grant)? = granted.kind else {
                Issue.record("expected granted, got \(granted)")
                return
            }
            #expect(grant.amount == 200 && grant.grantKind == .promo)
            let recovered = try #require(Self.event(try await Self.next(updates)))
            #expect(recovered.id == low.id + 3)
            guard case .balanceRecovered(let back)? = recovered.kind else {
                Issue.record("expected balance_recovered, got \(recovered)")
                return
            }
            #expect(back.available == 600)
            // Unwatch ends the stream with the last id delivered.
            #expect(try await watch.stop())
            let ended = try await Self.next(updates)
            #expect(ended.ended.lastEventID == recovered.id)
            #expect(try await updates.next() == nil)
            #expect(try await watch.stop() == false)
            await watcher.close()
            await admin.close()
        }
    }

    @Test("a subscriber that reconnects resumes after its last event without loss or repeats, across a restart too")
    func resume() async throws {
        let directory = TemporaryDirectory("watch-resume")
        let lastSeen: UInt64 = try await withServer(dataPath: directory.path) { server in
            let admin = try await server.client()
            try await Self.tenantAboveThreshold(admin, "acme")
            let watcher = try await server.client()
            let watch = try await watcher.watch(tenant: "acme")
            let updates = Updates(watch)
            _ = try await Self.next(updates)
            _ = try await admin.reserve(tenant: "acme", hold: "a", tokens: 600)
            _ = try await admin.commit(tenant: "acme", hold: "a", amount: 600)
            let first = try #require(Self.event(try await Self.next(updates)))
            // The subscriber goes away; events keep happening.
            await watcher.close()
            await #expect(throws: (any Error).self) { while try await updates.next() != nil {} }
            _ = try await admin.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 500))
            _ = try await admin.reserve(tenant: "acme", hold: "b", tokens: 500)
            _ = try await admin.commit(tenant: "acme", hold: "b", amount: 500)
            let again = try await server.client()
            let resumed = try await again.watch(tenant: "acme", after: first.id)
            let more = Updates(resumed)
            let started = try await Self.next(more)
            #expect(started.started.eventsLost == 0)
            #expect(started.started.latestEventID == first.id + 2)
            let missed1 = try #require(Self.event(try await Self.next(more)))
            let missed2 = try #require(Self.event(try await Self.next(more)))
            #expect(missed1.id == first.id + 1)
            #expect(missed1.kindName == "balance_recovered")
            #expect(missed2.id == first.id + 2)
            #expect(missed2.kindName == "low_balance")
            await again.close()
            await admin.close()
            return first.id
        }
        // After a restart (recovery from snapshot and log) the same events are there to resume from.
        try await withServer(dataPath: directory.path) { server in
            let client = try await server.client()
            let watch = try await client.watch(tenant: "acme", after: lastSeen)
            let updates = Updates(watch)
            _ = try await Self.next(updates)
            #expect(Self.event(try await Self.next(updates))?.id == lastSeen + 1)
            #expect(Self.event(try await Self.next(updates))?.kindName == "low_balance")
            await client.close()
        }
    }

    @Test("hold expiry is an event; after: 0 replays every retained event")
    func expiryAndReplay() async throws {
        let directory = TemporaryDirectory("watch-expiry")
        try await withServer(dataPath: directory.path) { server in
            let admin = try await server.client()
            _ = try await admin.createTenant("acme", settings: TenantSettings(movementEvents: false))
            _ = try await admin.grant(tenant: "acme", GrantRequest(kind: .purchase, amount: 1_000))
            let watch = try await admin.watch(tenant: "acme")
            let updates = Updates(watch)
            _ = try await Self.next(updates)
            _ = try await admin.reserve(tenant: "acme", hold: "brief", tokens: 300, ttl: .seconds(1))
            // The maintenance tick (every 100 ms here) expires it without any further call.
            let expired = try #require(Self.event(try await Self.next(updates, seconds: 15)))
            guard case .holdExpired(let hold)? = expired.kind else {
                Issue.record("expected hold_expired, got \(expired)")
                return
            }
            #expect(hold.holdID == "brief")
            #expect(hold.released == 300)
            let replay = try await admin.watch(tenant: "acme", after: 0)
            let all = Updates(replay)
            #expect(try await Self.next(all).started.oldestRetainedEventID == 1)
            #expect(Self.event(try await Self.next(all)) == expired)
            await admin.close()
        }
    }

    @Test("refusals: foreign and unknown tenants look alike, ids after the newest, too many watches")
    func refusals() async throws {
        let directory = TemporaryDirectory("watch-refusals")
        try await withServer(dataPath: directory.path) { server in
            let admin = try await server.client()
            _ = try await admin.createTenant("acme")
            _ = try await admin.createTenant("globex")
            let tenantPrincipal = try await server.client("acme-web")
            func firstError(_ watch: LedgerWatch) async -> ErrorCode? {
                do {
                    for try await _ in watch.updates {}
                    return nil
                } catch {
                    return (error as? LedgerClientError)?.ledgerError?.code
                }
            }
            #expect(await firstError(try await tenantPrincipal.watch(tenant: "globex")) == .notFound)
            #expect(await firstError(try await tenantPrincipal.watch(tenant: "nobody")) == .notFound)
            #expect(await firstError(try await admin.watch(tenant: "acme", after: 99)) == .invalidArgument)
            // The tenant's own principal may watch it.
            let own = try await tenantPrincipal.watch(tenant: "acme")
            let ownUpdates = Updates(own)
            #expect(try await Self.next(ownUpdates).started.latestEventID == 0)
            // 16 watches per connection; the 17th is refused and the others keep running.
            var watches: [LedgerWatch] = []
            for _ in 0..<16 {
                let watch = try await admin.watch(tenant: "acme")
                let iterator = Updates(watch)
                _ = try await Self.next(iterator)
                watches.append(watch)
            }
            let extra = try await admin.watch(tenant: "acme")
            let extraUpdates = Updates(extra)
            do {
                _ = try await extraUpdates.next()
                Issue.record("the 17th watch was accepted")
            } catch {
                let refusal = (error as? LedgerClientError)?.ledgerError
                #expect(refusal?.code == .limitExceeded)
                #expect(refusal?.details == .limit(name: "watches_per_connection_max", value: 16))
            }
            // Calls still flow on the connection that holds 16 watches.
            #expect(try await admin.balance(tenant: "acme").available == 0)
            await tenantPrincipal.close()
            await admin.close()
        }
    }

    @Test("a draining server ends watches with unavailable")
    func drain() async throws {
        let directory = TemporaryDirectory("watch-drain")
        let outcome = Mutex<ErrorCode?>(nil)
        try await withServer(dataPath: directory.path) { server in
            let admin = try await server.client()
            _ = try await admin.createTenant("acme")
            let watch = try await admin.watch(tenant: "acme")
            let updates = Updates(watch)
            _ = try await Self.next(updates)
            server.server.shutdown()
            do {
                while try await updates.next() != nil {}
            } catch {
                outcome.withLock { $0 = (error as? LedgerClientError)?.ledgerError?.code }
            }
        }
        #expect(outcome.withLock { $0 } == .unavailable)
    }
}
