import LedgerServerTesting
import LedgerClient
import LedgerCore
import LedgerEngine
import LedgerServer
import LedgerStore
import LedgerTesting
import LedgerWire
import NIOCore
import Testing

@Suite("Every error code over TLS")
struct ErrorCodeTests {
    @Test("business and input errors arrive with their codes and details")
    func ledgerErrors() async throws {
        let directory = TemporaryDirectory("server-errors")
        try await withServer(dataPath: directory.path) { server in
            let client = try await server.client()
            let plan = Plan(allowance: 1_000, period: PeriodRule(unit: .month), spendLimit: 1_200)
            _ = try await client.createTenant("acme", settings: TenantSettings(plan: plan))
            _ = try await client.setMember(
                tenant: "acme", member: "ana", settings: MemberSettings(budget: Budget(cap: 100, period: PeriodRule(unit: .day))))

            #expect(await errorCode { try await client.reserve(tenant: "acme", hold: "zero", tokens: 0) } == .invalidArgument)
            #expect(await errorCode { try await client.balance(tenant: "nobody") } == .notFound)
            #expect(await errorCode { try await client.createTenant("acme") } == .alreadyExists)

            let poor = await rejection { try await client.reserve(tenant: "acme", hold: "big", tokens: 5_000) }
            #expect(poor?.code == .insufficientBalance)
            #expect(poor?.details == .balance(available: 1_000, requested: 5_000))

            let budget = await rejection { try await client.reserve(tenant: "acme", hold: "b", tokens: 150, member: "ana") }
            #expect(budget?.code == .budgetExceeded)
            guard case .budget(let remaining, let cap, let resetsAt)? = budget?.details else {
                Issue.record("budget_exceeded without budget details: \(String(describing: budget))")
                return
            }
            #expect(remaining == 100)
            #expect(cap == 100)
            #expect(resetsAt > SystemClock().now())

            // The plan's spend limit: 1,200 a period, 1,000 from the plan grant plus 500 bought.
            _ = try await client.purchase(tenant: "acme", moneyMinor: 500)
            let plan1 = await rejection { try await client.reserve(tenant: "acme", hold: "p", tokens: 1_300) }
            #expect(plan1?.code == .planLimitReached)
            if case .plan(_, let limit, _)? = plan1?.details { #expect(limit == 1_200) } else { Issue.record("no plan details") }

            _ = try await client.reserve(tenant: "acme", hold: "h1", tokens: 10)
            _ = try await client.commit(tenant: "acme", hold: "h1", amount: 10)
            #expect(await errorCode { try await client.commit(tenant: "acme", hold: "h1", amount: 1) } == .alreadyCommitted)
            _ = try await client.reserve(tenant: "acme", hold: "h2", tokens: 10)
            _ = try await client.release(tenant: "acme", hold: "h2")
            #expect(await errorCode { try await client.commit(tenant: "acme", hold: "h2", amount: 1) } == .alreadyReleased)

            _ = try await client.reserve(tenant: "acme", hold: "h3", tokens: 10, ttl: .seconds(1))
            try await Task.sleep(for: .milliseconds(1_300))
            #expect(await errorCode { try await client.commit(tenant: "acme", hold: "h3", amount: 5) } == .expired)

            let id = RequestID("same-id")
            _ = try await client.reserve(tenant: "acme", hold: "h4", tokens: 5, requestID: id)
            #expect(await errorCode { try await client.reserve(tenant: "acme", hold: "h5", tokens: 6, requestID: id) } == .idempotencyConflict)

            var filter = HistoryFilter()
            filter.limit = Limits.historyPageMax + 1
            let limit = await rejection { try await client.history(tenant: "acme", filter: filter) }
            #expect(limit?.code == .limitExceeded)
            #expect(limit?.details == .limit(name: "history_page_max", value: UInt64(Limits.historyPageMax)))

            // The ledger stayed consistent through all of it.
            for shard in server.engine.shards { #expect(await shard.stateCopy.audit().isEmpty) }
            await client.close()
        }
    }

    @Test("a server full of calls answers overloaded; the ledger stays consistent")
    func overloaded() async throws {
        let directory = TemporaryDirectory("server-overload")
        var limits = ConnectionLimits()
        limits.serverCallsInFlightMax = 1
        try await withServer(dataPath: directory.path, limits: limits) { server in
            let client = try await server.client()
            _ = try await client.createTenant("acme")
            _ = try await client.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 100_000))
            await client.close()
            // 64 reserves in one write: while the first waits for its fsync, others find the server full.
            var bytes: [UInt8] = []
            for index in 1...64 {
                bytes += try RawConnection.frame(
                    WireRequest(
                        callID: UInt64(index),
                        call: .command(.reserve("acme", ReserveRequest(hold: HoldID("h\(index)"), amount: .tokens(10))), RequestID("r\(index)"))))
            }
            let raw = try await RawConnection.connect(port: server.port)
            let outcome = try await raw.exchange(bytes, expecting: 64)
            #expect(outcome.responses.count == 64)
            let overloaded = outcome.responses.filter { $0.error.code == .overloaded }
            let reserved = outcome.responses.filter { if case .reserve = $0.result { true } else { false } }
            #expect(!overloaded.isEmpty)
            #expect(overloaded.count + reserved.count == 64)
            #expect(Set(outcome.responses.map(\.callID)) == Set(1...64))
            let checker = try await server.client()
            #expect(try await checker.balance(tenant: "acme").reserved == UInt64(reserved.count) * 10)
            await checker.close()
        }
    }

    @Test("after a storage failure every call is unavailable and nothing more is acknowledged")
    func unavailable() async throws {
        let directory = TemporaryDirectory("server-unavailable")
        let faults = StorageFaults()
        try await withServer(dataPath: directory.path, shards: 1, storage: ShardConfiguration(faults: faults)) { server in
            var configuration = server.pki.clientConfiguration("admin", port: server.port)
            configuration.retry = RetryPolicy(attempts: 1)
            let client = try await LedgerClient.connect(configuration)
            _ = try await client.createTenant("acme")
            faults.failSyncs(after: 0)
            #expect(await errorCode { try await client.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 5)) } == .unavailable)
            #expect(await errorCode { try await client.createTenant("other") } == .unavailable)
            #expect(await server.engine.shards[0].isFailed)
            await client.close()
        }
    }
}
