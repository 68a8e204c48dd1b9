import LedgerCore
import LedgerStore
import Synchronization

/// All shards of one data directory, and the routing of tenants to shards.
public final class LedgerEngine: Sendable {
    public let dataDirectory: DataDirectory
    public let shards: [LedgerShard]
    /// Wakes event subscribers (Watch calls, the webhook sink) when a tenant's events are durable.
    public let eventHub = EventHub()
    /// Tenants frozen by the idle sweep since memory was last handed back to the system, and when
    /// that was (monotonic nanoseconds).
    private let frozenSinceTrim = Atomic<Int>(0)
    private let lastTrim = Atomic<UInt64>(0)

    /// At least this many frozen tenants (about 350 bytes freed each; a tenth of it once the sweep
    /// is quiet) and this long between two `malloc_trim` calls.
    static let frozenPerTrim = 10_000
    static let trimInterval: UInt64 = 10_000_000_000

    /// Opens (recovering) every shard of the data directory.
    public init(
        path: String, shardCount: Int, configuration: ShardConfiguration = ShardConfiguration(),
        clock: any LedgerClock = SystemClock(), onFailure: @escaping @Sendable (StorageError) -> Void = { _ in }
    ) throws {
        let directory = try DataDirectory(path: path, shardCount: shardCount, faults: configuration.faults)
        var shards: [LedgerShard] = []
        do {
            for index in 0..<shardCount {
                shards.append(
                    try LedgerShard(
                        directory: directory.shardPath(index), index: index, configuration: configuration, clock: clock,
                        hub: eventHub, onFailure: onFailure))
            }
        } catch {
            directory.close()
            throw error
        }
        dataDirectory = directory
        self.shards = shards
    }

    /// The shard that owns `tenant`: FNV-1a 64 of the id's bytes modulo the shard count. Stable
    /// across processes and builds (Swift's `Hasher` is seeded per process and must not be used).
    public func shard(for tenant: TenantID) -> LedgerShard {
        shards[Int(Self.stableHash(tenant.rawValue) % UInt64(shards.count))]
    }

    public static func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// Runs a command on its tenant's shard; `installCatalog` and `tick` run on every shard and the
    /// first shard's result is returned.
    public func execute(_ body: CommandBody, requestID: RequestID?) async throws -> CommandResult {
        if let tenant = body.tenant { return try await shard(for: tenant).execute(body, requestID: requestID) }
        var first: CommandResult? = nil
        for shard in shards {
            let result = try await shard.execute(body, requestID: requestID)
            if first == nil { first = result }
        }
        return first!
    }

    /// A page of the tenant's retained events after `afterID` (see `LedgerState.events`), durable.
    public func events(_ tenant: TenantID, after afterID: UInt64?, limit: Int = Limits.eventPageMax) async throws -> EventPage {
        try await shard(for: tenant).read { state in try state.events(tenant, after: afterID, limit: limit) }
    }

    /// Ticks what fell due, snapshots what is due and freezes idle tenants on every shard (the
    /// periodic maintenance).
    public func maintain() async throws {
        var frozen = 0
        for shard in shards {
            try await shard.tickIfDue()
            try await shard.snapshotIfDue()
            frozen += shard.freezeIdleTenants()
        }
        // The memory of the tenants' live forms is freed piecemeal, between allocations that stay,
        // so malloc keeps it for reuse (by thawed and new tenants) and RSS does not fall. After
        // 10,000 freezes, or 1,000 once the sweep froze nothing in a round, and at most every 10 s,
        // ask glibc to return the free pages: malloc_trim releases whole free pages anywhere in the
        // heap, but holds each arena's lock while it walks it (5-30 ms with 300,000 tenants,
        // docs/benchmarks.md).
        let now = monotonicNanoseconds()
        let pending = frozen > 0 ? frozenSinceTrim.add(frozen, ordering: .relaxed).newValue : frozenSinceTrim.load(ordering: .relaxed)
        if pending >= (frozen > 0 ? Self.frozenPerTrim : Self.frozenPerTrim / 10),
            now - min(now, lastTrim.load(ordering: .relaxed)) >= Self.trimInterval
        {
            frozenSinceTrim.store(0, ordering: .relaxed)
            lastTrim.store(now, ordering: .relaxed)
            #if os(Linux)
            _ = mallocTrim(0)
            #endif
        }
    }

    /// Closes every shard (final snapshots) and releases the data directory.
    public func close(finalSnapshot: Bool = true) async {
        for shard in shards { await shard.close(finalSnapshot: finalSnapshot) }
        dataDirectory.close()
    }
}

#if os(Linux)
/// glibc's `malloc_trim`, which the Glibc module does not export.
@_silgen_name("malloc_trim")
private func mallocTrim(_ pad: Int) -> Int32
#endif
