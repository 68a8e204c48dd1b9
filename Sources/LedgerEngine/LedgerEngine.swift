import LedgerCore
import LedgerStore

/// All shards of one data directory, and the routing of tenants to shards.
public final class LedgerEngine: Sendable {
    public let dataDirectory: DataDirectory
    public let shards: [LedgerShard]
    /// Wakes event subscribers (Watch calls, the webhook sink) when a tenant's events are durable.
    public let eventHub = EventHub()

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

    /// Ticks what fell due and snapshots what is due on every shard (the periodic maintenance).
    public func maintain() async throws {
        for shard in shards {
            try await shard.tickIfDue()
            try await shard.snapshotIfDue()
        }
    }

    /// Closes every shard (final snapshots) and releases the data directory.
    public func close(finalSnapshot: Bool = true) async {
        for shard in shards { await shard.close(finalSnapshot: finalSnapshot) }
        dataDirectory.close()
    }
}
