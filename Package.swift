// swift-tools-version: 6.1
// TokenLedger: a token-billing ledger server. Module layout and dependency direction are described
// in docs/architecture.md; targets are added as they get content.
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "TokenLedger",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LedgerCore", targets: ["LedgerCore"]),
        .library(name: "LedgerStore", targets: ["LedgerStore"]),
        .library(name: "LedgerEngine", targets: ["LedgerEngine"]),
    ],
    targets: [
        // Domain types, the deterministic state machine, the price catalog and the limits.
        // Imports the standard library only.
        .target(name: "LedgerCore", swiftSettings: strictSettings),
        // WAL segments, snapshots, recovery scan, data-directory manifest and lock. Stores
        // checksummed bytes; knows nothing of the ledger's domain or the network.
        .target(name: "LedgerStore", swiftSettings: strictSettings),
        // Shard actors around the state machine: recover, apply, append, await durability; snapshots.
        .target(name: "LedgerEngine", dependencies: ["LedgerCore", "LedgerStore"], swiftSettings: strictSettings),
        // Fixtures shared by the test suites (command generators).
        .target(name: "LedgerTesting", dependencies: ["LedgerCore", "LedgerStore"], swiftSettings: strictSettings),
        // Storage benchmarks: replay speed, snapshot write and load, group commit (scripts/bench-storage).
        .executableTarget(
            name: "ledger-storage-bench", dependencies: ["LedgerCore", "LedgerEngine", "LedgerStore"], swiftSettings: strictSettings),
        // Test helper: a workload that prints every acknowledged command until it is killed.
        .executableTarget(
            name: "ledger-crashtest-worker", dependencies: ["LedgerCore", "LedgerEngine", "LedgerStore", "LedgerTesting"],
            swiftSettings: strictSettings),
        .testTarget(name: "LedgerCoreTests", dependencies: ["LedgerCore", "LedgerTesting"], swiftSettings: strictSettings),
        .testTarget(name: "LedgerStoreTests", dependencies: ["LedgerStore", "LedgerTesting"], swiftSettings: strictSettings),
        .testTarget(
            name: "LedgerEngineTests", dependencies: ["LedgerEngine", "LedgerCore", "LedgerStore", "LedgerTesting"],
            swiftSettings: strictSettings),
    ]
)
