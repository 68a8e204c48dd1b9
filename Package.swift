// swift-tools-version: 6.1
// TokenLedger: a token-billing ledger server. Module layout and dependency direction are described
// in docs/architecture.md. Linux only (glibc): the storage relies on fdatasync, flock and
// fallocate, and the engine on malloc_trim; no Darwin build is claimed (README.md).
import Foundation
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "TokenLedger",
    products: [
        .library(name: "LedgerCore", targets: ["LedgerCore"]),
        .library(name: "LedgerStore", targets: ["LedgerStore"]),
        .library(name: "LedgerEngine", targets: ["LedgerEngine"]),
        .library(name: "LedgerWire", targets: ["LedgerWire"]),
        .library(name: "LedgerServer", targets: ["LedgerServer"]),
        .library(name: "LedgerClient", targets: ["LedgerClient"]),
        .executable(name: "ledgerd", targets: ["ledgerd"]),
        .executable(name: "tokenctl", targets: ["tokenctl"]),
        .executable(name: "ledger-load", targets: ["ledger-load"]),
        .executable(name: "ledger-faults", targets: ["ledger-faults"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // Traces (--otel-endpoint). Only the OTLP/gRPC exporter: its gRPC packages are the ones the
        // gRPC port needs anyway; the default traits would add async-http-client to every build.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPGRPC"]),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        // Cluster mode (--storage postgres): the shards' logs in PostgreSQL.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // Domain types, the deterministic state machine, the price catalog and the limits.
        // Imports the standard library only.
        .target(name: "LedgerCore", swiftSettings: strictSettings),
        // WAL segments, snapshots, recovery scan, data-directory manifest and lock. Stores
        // checksummed bytes; knows nothing of the ledger's domain or the network.
        .target(name: "LedgerStore", dependencies: ["CCRC32C"], swiftSettings: strictSettings),
        // CRC-32C with the processor's instruction where there is one (LedgerStore's CRC32C).
        .target(name: "CCRC32C"),
        // Shards around the state machine: recover, apply, append, answer after durability; snapshots.
        .target(name: "LedgerEngine", dependencies: ["LedgerCore", "LedgerStore"], swiftSettings: strictSettings),
        // The wire contract: generated protobuf types (Generated/, never edited by hand), the frame
        // codec and the mapping between wire messages and LedgerCore's domain types.
        .target(
            name: "LedgerWire",
            dependencies: [
                "LedgerCore", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strictSettings),
        // The server: NIO bootstrap, TLS 1.3 with client certificates, access control, connection
        // handling and limits, dispatch to the engine, dev TLS material, the lifecycle services.
        .target(
            name: "LedgerServer",
            dependencies: [
                "LedgerCore", "LedgerStore", "LedgerEngine", "LedgerWire", "LedgerTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings),
        // The gRPC port (ledgerd --grpc-listen): tokenledger.v1.Ledger and grpc.health.v1.Health on the
        // same LedgerService; the generated stubs live in Generated/ (scripts/generate-proto).
        .target(
            name: "LedgerGRPC",
            dependencies: [
                "LedgerServer", "LedgerWire", "LedgerCore", "LedgerTLS",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings),
        // Cluster mode (docs/cluster.md): shard logs and snapshots in PostgreSQL under fenced,
        // leased ownership; the node that takes, loads, renews and hands over shards.
        .target(
            name: "LedgerCluster",
            dependencies: [
                "LedgerCore", "LedgerStore", "LedgerEngine",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        // TokenLedger's TLS policy for listeners, and the development CA and certificates.
        .target(
            name: "LedgerTLS",
            dependencies: [
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: strictSettings),
        // The webhook sink: every tenant's events POSTed, signed, at least once (ledgerd --webhook-url).
        .target(
            name: "LedgerWebhooks",
            dependencies: [
                "LedgerCore", "LedgerStore", "LedgerEngine", "LedgerWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings),
        // The async Swift client: TLS connect, call-id correlation, bounded in-flight calls.
        .target(
            name: "LedgerClient",
            dependencies: [
                "LedgerCore", "LedgerWire",
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings),
        // The server executable: flags and config file -> configuration -> ServiceGroup.
        .executableTarget(
            name: "ledgerd",
            dependencies: [
                "LedgerServer", "LedgerCore", "LedgerEngine", "LedgerStore", "LedgerWire", "LedgerTLS", "LedgerWebhooks",
                "LedgerGRPC", "LedgerCluster",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ],
            swiftSettings: strictSettings),
        // The command-line client: one file per subcommand under Subcommands/.
        .executableTarget(
            name: "tokenctl",
            dependencies: [
                "LedgerClient", "LedgerWire", "LedgerCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings),
        // Fixtures shared by the test suites (command generators).
        .target(name: "LedgerTesting", dependencies: ["LedgerCore", "LedgerStore"], swiftSettings: strictSettings),
        .target(
            name: "LedgerFuzzing",
            dependencies: [
                "LedgerCore", "LedgerStore", "LedgerTesting", "LedgerWire", .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSettings),
        // Storage benchmarks: replay speed, snapshot write and load, group commit (scripts/bench-storage).
        .executableTarget(
            name: "ledger-storage-bench", dependencies: ["LedgerCore", "LedgerEngine", "LedgerStore"], swiftSettings: strictSettings),
        // Server overhead benchmark: the same workload on the engine and through TLS (scripts/bench-server).
        .executableTarget(
            name: "ledger-server-bench",
            dependencies: [
                "LedgerCore", "LedgerEngine", "LedgerStore", "LedgerServer", "LedgerClient", "LedgerTLS",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        // Test helper: a workload that prints every acknowledged command until it is killed.
        .executableTarget(
            name: "ledger-faults",
            dependencies: [
                "LedgerClient", "LedgerCluster", "LedgerCore", "LedgerTesting", "LedgerWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        .executableTarget(
            name: "ledger-load",
            dependencies: [
                "LedgerClient", "LedgerCore", "LedgerWire", "LedgerTLS",
                "LedgerGRPC",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strictSettings),
        .executableTarget(
            name: "ledger-crashtest-worker", dependencies: ["LedgerCore", "LedgerEngine", "LedgerStore", "LedgerTesting"],
            swiftSettings: strictSettings),
        .testTarget(
            name: "LedgerCoreTests", dependencies: ["LedgerCore", "LedgerTesting", "LedgerFuzzing"],
            exclude: ["FuzzCorpus"], swiftSettings: strictSettings),
        .testTarget(name: "LedgerStoreTests", dependencies: ["LedgerStore", "LedgerTesting"], swiftSettings: strictSettings),
        .testTarget(
            name: "LedgerEngineTests", dependencies: ["LedgerEngine", "LedgerCore", "LedgerStore", "LedgerTesting"],
            exclude: ["Formats"], swiftSettings: strictSettings),
        .testTarget(
            name: "LedgerWireTests",
            dependencies: [
                "LedgerWire", "LedgerCore", "LedgerTesting", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: strictSettings),
        .testTarget(
            name: "TokenctlTests",
            dependencies: [
                "LedgerTLS", "LedgerCore", "LedgerTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings),
        // The in-process server of the server and client suites: test PKI, withServer.
        .target(
            name: "LedgerServerTesting",
            dependencies: [
                "LedgerServer", "LedgerClient", "LedgerEngine", "LedgerStore", "LedgerWire", "LedgerCore", "LedgerTLS",
                "LedgerTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings),
        .testTarget(
            name: "LedgerServerTests",
            dependencies: [
                "LedgerServer", "LedgerServerTesting", "LedgerClient", "LedgerWire", "LedgerCore", "LedgerEngine",
                "LedgerStore", "LedgerTesting", "LedgerTLS",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                "LedgerGRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        .testTarget(
            name: "LedgerClientTests",
            dependencies: [
                "LedgerClient", "LedgerServerTesting", "LedgerCore", "LedgerTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings),
        // The webhook sink through the real ledgerd; signatures checked with the test's own HMAC.
        .testTarget(
            name: "LedgerWebhooksTests",
            dependencies: [
                "LedgerClient", "LedgerCore", "LedgerTesting", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings),
        // Cluster mode against a real PostgreSQL primary and synchronous standby (scripts/postgres-pair).
        .testTarget(
            name: "LedgerClusterTests",
            dependencies: [
                "LedgerCluster", "LedgerEngine", "LedgerStore", "LedgerCore", "LedgerTesting", "LedgerClient",
                "LedgerServerTesting", "LedgerWire",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        .testTarget(name: "LedgerTestingTests", dependencies: ["LedgerTesting"], swiftSettings: strictSettings),
        // ledger-load, the real binary, against the real ledgerd and its echo server.
        .testTarget(
            name: "LedgerLoadTests", dependencies: ["LedgerClient", "LedgerCore", "LedgerTesting"], swiftSettings: strictSettings),
    ]
)

// The libFuzzer executable (every FuzzTarget, chosen by TOKENLEDGER_FUZZ_TARGET) exists only for
// scripts/fuzz, which sets TOKENLEDGER_FUZZ and builds with -sanitize=fuzzer: its `main` hands over
// to libFuzzer's driver, which a normal build could not link.
if ProcessInfo.processInfo.environment["TOKENLEDGER_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(
            name: "fuzz-ledger", dependencies: ["LedgerFuzzing"], path: "Sources/Fuzz/fuzz-ledger",
            swiftSettings: [.enableExperimentalFeature("Extern")]))
}
