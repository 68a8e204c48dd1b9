// Wakes subscribers when a tenant's events become durable.
//
// The hub carries no events, only "tenant T has new events": subscribers read the events themselves
// from the tenant's event log in the ledger state (`LedgerState.events`), after the id they saw
// last. So a slow subscriber never makes the hub buffer anything (signals coalesce), a subscriber
// that was cut off resumes from the log, and what a subscriber sees is always durable: shards
// publish only after the fdatasync that covers the events.

import LedgerCore
import Synchronization

public final class EventHub: Sendable {
    private struct Subscribers {
        var nextID = 0
        var byTenant: [TenantID: [Int: AsyncStream<Void>.Continuation]] = [:]
        /// Subscribers to every tenant (the webhook sink), with the tenants that changed since
        /// they last asked.
        var everyTenant: [Int: (continuation: AsyncStream<Void>.Continuation, pending: Set<TenantID>)] = [:]
    }

    private let subscribers = Mutex(Subscribers())
    /// Subscriber count, read without the lock on the hot path (most commands have no events, and
    /// most deployments few subscribers).
    private let subscriberCount = Atomic<Int>(0)

    public init() {}

    /// A subscription to one tenant: `signals` yields once (coalesced) after new events of the tenant
    /// are durable. It ends when `cancel()` is called.
    public struct Subscription: Sendable {
        public let signals: AsyncStream<Void>
        let cancelAction: @Sendable () -> Void
        public func cancel() { cancelAction() }
    }

    public func subscribe(_ tenant: TenantID) -> Subscription {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = subscribers.withLock { state in
            state.nextID += 1
            state.byTenant[tenant, default: [:]][state.nextID] = continuation
            return state.nextID
        }
        subscriberCount.add(1, ordering: .relaxed)
        return Subscription(signals: stream) { [self] in
            let removed = subscribers.withLock { state in
                let removed = state.byTenant[tenant]?.removeValue(forKey: id)
                if state.byTenant[tenant]?.isEmpty == true { state.byTenant[tenant] = nil }
                return removed
            }
            if let removed {
                subscriberCount.subtract(1, ordering: .relaxed)
                removed.finish()
            }
        }
    }

    /// A subscription to every tenant: `signals` yields after any tenant has new durable events;
    /// `takeChanged()` returns the tenants that did since the last call.
    public final class EveryTenant: Sendable {
        public let signals: AsyncStream<Void>
        let id: Int
        let hub: EventHub

        init(signals: AsyncStream<Void>, id: Int, hub: EventHub) {
            self.signals = signals
            self.id = id
            self.hub = hub
        }

        public func takeChanged() -> Set<TenantID> {
            hub.subscribers.withLock { state in
                guard let entry = state.everyTenant[id] else { return [] }
                state.everyTenant[id]!.pending = []
                return entry.pending
            }
        }

        public func cancel() {
            let removed = hub.subscribers.withLock { $0.everyTenant.removeValue(forKey: id) }
            if let removed {
                hub.subscriberCount.subtract(1, ordering: .relaxed)
                removed.continuation.finish()
            }
        }
    }

    public func subscribeEveryTenant() -> EveryTenant {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = subscribers.withLock { state in
            state.nextID += 1
            state.everyTenant[state.nextID] = (continuation, [])
            return state.nextID
        }
        subscriberCount.add(1, ordering: .relaxed)
        return EveryTenant(signals: stream, id: id, hub: self)
    }

    /// Tells the subscribers of these events' tenants; call only once the events are durable.
    public func publish(_ events: [LedgerEvent]) {
        guard !events.isEmpty, subscriberCount.load(ordering: .relaxed) > 0 else { return }
        subscribers.withLock { state in
            var last: TenantID? = nil
            for event in events where event.tenant != last {
                last = event.tenant
                for continuation in state.byTenant[event.tenant]?.values ?? [:].values { continuation.yield() }
                for id in state.everyTenant.keys {
                    state.everyTenant[id]!.pending.insert(event.tenant)
                    state.everyTenant[id]!.continuation.yield()
                }
            }
        }
    }

    /// Wakes the subscribers to every tenant with no tenant changed (cluster mode: the webhook sink
    /// looks at the shards it serves once a round).
    public func wakeEveryTenant() {
        subscribers.withLock { state in
            for entry in state.everyTenant.values { entry.continuation.yield() }
        }
    }

    /// Ends the subscriptions to the tenants that `matches` selects (cluster mode: their shard is
    /// no longer served here, so their watchers resume at its new owner).
    public func finish(where matches: (TenantID) -> Bool) {
        let ended = subscribers.withLock { state in
            var ended: [AsyncStream<Void>.Continuation] = []
            for tenant in state.byTenant.keys where matches(tenant) {
                ended += state.byTenant.removeValue(forKey: tenant)!.values
            }
            return ended
        }
        subscriberCount.subtract(ended.count, ordering: .relaxed)
        for continuation in ended { continuation.finish() }
    }

    /// Ends every subscription (the server drains).
    public func finishAll() {
        let all = subscribers.withLock { state in
            let all = state.byTenant.values.flatMap(\.values) + state.everyTenant.values.map(\.continuation)
            state.byTenant = [:]
            state.everyTenant = [:]
            return all
        }
        subscriberCount.subtract(all.count, ordering: .relaxed)
        for continuation in all { continuation.finish() }
    }
}
