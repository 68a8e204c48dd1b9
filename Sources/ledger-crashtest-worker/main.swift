// Test helper for the crash tests: runs a random, concurrent workload against a real engine and
// prints one line per acknowledged (durable) command, until it is killed.
//
//   ledger-crashtest-worker DATA_DIR SEED
//
// Output: "READY" once recovered and set up, then "ACK <tenant> <request-id> <outcome tag>" per
// acknowledged command, each line written with one write(2) so that a kill never splits a line.
//
//   ledger-crashtest-worker DATA_DIR catalog
//
// Installs the demo catalog, prints "READY", then installs `crashTestCatalog` and stops for good
// once shard 0 has it durably ("INSTALLED 0"), for the test to kill it between two shards.

import Glibc
import LedgerCore
import LedgerEngine
import LedgerStore
import LedgerTesting
import Synchronization

func emit(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    bytes.withUnsafeMutableBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(1, buffer.baseAddress! + offset, buffer.count - offset)
            if written <= 0 { exit(3) }
            offset += written
        }
    }
}

let arguments = CommandLine.arguments
if arguments.count == 3, arguments[2] == "catalog" {
    let armed = Atomic<Bool>(false)
    let engine = try LedgerEngine(
        path: arguments[1], shardCount: 2,
        onCatalogInstalled: { shard in
            guard shard == 0, armed.load(ordering: .relaxed) else { return }
            emit("INSTALLED 0")
            while true { pause() }
        })
    _ = try await engine.execute(.installCatalog(.demo), requestID: nil)
    emit("READY")
    armed.store(true, ordering: .relaxed)
    _ = try await engine.execute(.installCatalog(crashTestCatalog), requestID: nil)
    emit("ERROR the install went past shard 0")
    exit(1)
}
guard arguments.count == 3, let seed = UInt64(arguments[2]) else {
    emit("usage: ledger-crashtest-worker DATA_DIR SEED")
    exit(2)
}
let tenants = (0..<8).map { TenantID("t\($0)") }

let engine: LedgerEngine
do {
    engine = try LedgerEngine(
        path: arguments[1], shardCount: 2, configuration: ShardConfiguration(snapshotEveryRecords: 150),
        onFailure: { _ in exit(StorageExitCode.storageFailure) })
} catch {
    emit("ERROR \(error)")
    exit(error is StorageError ? StorageExitCode.corruption : 1)
}

_ = try await engine.execute(.installCatalog(.demo), requestID: nil)
for tenant in tenants {
    _ = try await engine.execute(.createTenant(tenant, TenantSettings(overdraftLimit: 100)), requestID: "setup")
    _ = try await engine.execute(.grant(tenant, GrantRequest(kind: .purchase, amount: 1_000_000)), requestID: "fund")
}
emit("READY")

try await withThrowingTaskGroup(of: Void.self) { group in
    for worker in 0..<8 {
        group.addTask {
            var random = SeededGenerator(state: seed &* 1_000 &+ UInt64(worker))
            var open: [(TenantID, HoldID)] = []
            var committed: [(TenantID, HoldID)] = []
            var counter = 0
            while true {
                counter += 1
                let requestID = RequestID("s\(seed)-w\(worker)-\(counter)")
                let roll = Int.random(in: 0..<100, using: &random)
                let body: CommandBody
                if roll < 40 || open.isEmpty {
                    let tenant = tenants[Int.random(in: 0..<tenants.count, using: &random)]
                    let hold = HoldID("h-\(requestID)")
                    body = .reserve(tenant, ReserveRequest(hold: hold, amount: .tokens(UInt64.random(in: 1...500, using: &random))))
                    open.append((tenant, hold))
                } else if roll < 75 {
                    let (tenant, hold) = open.removeFirst()
                    body = .commit(tenant, hold, amount: UInt64.random(in: 1...520, using: &random), final: Bool.random(using: &random))
                    committed.append((tenant, hold))
                } else if roll < 85 {
                    let (tenant, hold) = open.removeFirst()
                    body = .release(tenant, hold)
                } else if roll < 93, let (tenant, hold) = committed.randomElement(using: &random) {
                    body = .refund(tenant, hold, amount: UInt64.random(in: 1...100, using: &random))
                } else {
                    let tenant = tenants[Int.random(in: 0..<tenants.count, using: &random)]
                    body = .grant(tenant, GrantRequest(kind: .promo, amount: UInt64.random(in: 1...1_000, using: &random), expiresAt: SystemClock().now().adding(.seconds(2))))
                }
                let result = try await engine.execute(body, requestID: requestID)
                emit("ACK \(body.tenant!) \(requestID) \(outcomeTag(result.outcome))")
                if counter % 25 == 0 { try await engine.maintain() }
            }
        }
    }
    try await group.waitForAll()
}
