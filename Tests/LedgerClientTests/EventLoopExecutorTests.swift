import LedgerServerTesting
import LedgerClient
import LedgerCore
import LedgerTesting
import NIOCore
import Testing

@Suite("Client calls from tasks on the connection's event loop")
struct EventLoopExecutorTests {
    @Test("tasks preferring the connection's loop stay on it across calls, and their calls all land")
    func tasksStayOnTheLoop() async throws {
        let directory = TemporaryDirectory("loop-executor")
        try await withServer(dataPath: directory.path) { server in
            let client = try await server.client()
            _ = try await client.createTenant("acme")
            _ = try await client.grant(tenant: "acme", GrantRequest(kind: .promo, amount: 100_000))
            let executor = EventLoopExecutor(client.eventLoop)
            #expect(!executor.eventLoop.inEventLoop)  // the test itself runs on Swift's pool

            let tasks = 8, callsPerTask = 25, amount: Tokens = 7
            let offLoop = try await withThrowingTaskGroup(of: Int.self) { group in
                for task in 0..<tasks {
                    group.addTask(executorPreference: executor) {
                        var offLoop = executor.eventLoop.inEventLoop ? 0 : 1
                        for call in 0..<callsPerTask {
                            let hold = HoldID("t\(task)-c\(call)")
                            _ = try await client.reserve(tenant: "acme", hold: hold, tokens: 10)
                            if !executor.eventLoop.inEventLoop { offLoop += 1 }
                            _ = try await client.commit(tenant: "acme", hold: hold, amount: amount)
                            if !executor.eventLoop.inEventLoop { offLoop += 1 }
                        }
                        return offLoop
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(offLoop == 0)
            // The loop a task prefers is the one its connection's replies arrive on.
            #expect(client.eventLoop === executor.eventLoop)

            let balance = try await client.balance(tenant: "acme")
            #expect(balance.spent == UInt64(tasks * callsPerTask) * amount)
            #expect(balance.reserved == 0)
            #expect(balance.available == 100_000 - balance.spent)
            await client.close()
        }
    }
}
