// Cluster mode's view of which shards this node serves (docs/cluster.md): a slot per shard, filled
// by the cluster node (LedgerCluster.ClusterNode) when it has taken and loaded a shard under a new
// epoch, emptied when it hands the shard over or loses it. Calls are routed through it; a shard
// served elsewhere is refused with `wrong_owner` and the owner's address, so that the client goes
// there (as Redis Cluster's MOVED).

import LedgerCore
import Synchronization

public final class ShardPlacement: Sendable {
    /// What this node knows of one shard.
    public enum Slot: Sendable {
        /// Served here, under this node's epoch.
        case owned(LedgerShard, epoch: UInt64)
        /// Served by another node, last seen at this address and epoch ("" when it has none).
        case elsewhere(address: String, epoch: UInt64)
        /// Not known to be served by anyone (its lease ran out; a node will take it).
        case unowned
    }

    public let shardCount: Int
    private let slots: Mutex<[Slot]>
    /// What the cluster node did since it started (metrics read them).
    public let figures = Mutex(ClusterFigures())
    /// Cluster mode's catalog install (the decision stored in PostgreSQL, then applied by every
    /// owner), set once by the cluster node.
    private let catalogInstaller = Mutex<(@Sendable (PriceCatalog) async throws -> CommandResult)?>(nil)

    /// This node's advertised address, set by the cluster node when it starts.
    private let advertised = Mutex("")

    public var address: String {
        get { advertised.withLock { $0 } }
        set { advertised.withLock { $0 = newValue } }
    }

    /// One shard's entry in the map this node answers `ShardMap` with.
    public struct Owner: Sendable, Equatable {
        public var shard: Int
        /// "" when no node serves the shard now.
        public var address: String
        public var epoch: UInt64
        public var here: Bool
    }

    /// Every shard's owner as this node knows it (at most one ownership round old), in shard order.
    public var map: [Owner] {
        let address = self.address
        return slots.withLock { slots in
            slots.enumerated().map { index, slot in
                switch slot {
                case .owned(_, let epoch): Owner(shard: index, address: address, epoch: epoch, here: true)
                case .elsewhere(let owner, let epoch): Owner(shard: index, address: owner, epoch: epoch, here: false)
                case .unowned: Owner(shard: index, address: "", epoch: 0, here: false)
                }
            }
        }
    }

    public init(shardCount: Int) {
        precondition(shardCount > 0)
        self.shardCount = shardCount
        slots = Mutex(Array(repeating: .unowned, count: shardCount))
    }

    public subscript(index: Int) -> Slot {
        get { slots.withLock { $0[index] } }
    }

    public func set(_ index: Int, _ slot: Slot) {
        slots.withLock { $0[index] = slot }
    }

    /// Replaces the slot only while it holds `shard` (a loss noticed late must not empty a slot that
    /// a newer load filled).
    @discardableResult
    public func vacate(_ index: Int, ifHolding shard: LedgerShard, with slot: Slot) -> Bool {
        slots.withLock { slots in
            guard case .owned(let held, _) = slots[index], held === shard else { return false }
            slots[index] = slot
            return true
        }
    }

    /// The shards served here now with their epochs, in index order.
    public var ownedEpochs: [(shard: Int, epoch: UInt64)] {
        slots.withLock { slots in
            slots.enumerated().compactMap { index, slot in if case .owned(_, let epoch) = slot { (index, epoch) } else { nil } }
        }
    }

    /// The shards served here now, in index order.
    public var owned: [LedgerShard] {
        slots.withLock { slots in
            slots.compactMap { if case .owned(let shard, _) = $0 { shard } else { nil } }
        }
    }

    /// The shard for `index` if it is served here; otherwise `wrong_owner` naming the owner, or
    /// `unavailable` when no node serves it now.
    public func route(_ index: Int) throws(LedgerError) -> LedgerShard {
        switch self[index] {
        case .owned(let shard, _): return shard
        case .elsewhere(let address, let epoch):
            throw LedgerError(
                .wrongOwner, "shard \(index) is served by \(address)",
                details: .owner(shard: UInt32(index), address: address, epoch: epoch))
        case .unowned:
            throw LedgerError(.unavailable, "shard \(index) is being taken over by a node; retry shortly")
        }
    }

    public func setCatalogInstaller(_ installer: @escaping @Sendable (PriceCatalog) async throws -> CommandResult) {
        catalogInstaller.withLock { $0 = installer }
    }

    var installCatalog: (@Sendable (PriceCatalog) async throws -> CommandResult)? { catalogInstaller.withLock { $0 } }
}

/// A cluster node's counters since it started.
public struct ClusterFigures: Sendable {
    /// Shards taken (each with a new epoch).
    public var acquired: UInt64 = 0
    /// Lease renewals sent for idle shards (appends renew too, uncounted).
    public var renewals: UInt64 = 0
    public var handedOver: UInt64 = 0
    /// Shards whose log stopped: fenced by a newer epoch, or an append whose outcome is unknown.
    public var lost: UInt64 = 0
    /// Of those, the shards whose append or snapshot was fenced (another node held a newer epoch).
    public var fenced: UInt64 = 0
    /// Rounds that failed (the database unreachable, say); each is logged.
    public var failedRounds: UInt64 = 0

    public init() {}
}
