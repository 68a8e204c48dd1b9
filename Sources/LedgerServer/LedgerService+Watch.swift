// Watch: a tenant's events streamed on the caller's connection.
//
// A watch subscribes to the engine's event hub first and reads the tenant's event log second, so
// no event can fall between the two; after that, every hub signal makes it read the log after the
// last id it sent. The log (LedgerState.eventLogs) is the only source of events: the hub carries
// nothing but "tenant T changed", so a slow watcher costs no buffering, and one that falls behind
// the retention window is told how many events it lost (WatchGap) instead of silently missing them.
// Events are read through the shard, which returns only durable state.

import LedgerCore
import LedgerEngine
import LedgerWire
import Synchronization

/// The watches running on one connection, so that `unwatch` can find them and the connection's
/// end can stop them.
public final class ConnectionWatches: Sendable {
    public enum StopReason: Sendable { case unwatched, connectionClosed }

    private struct Entry {
        var subscription: EventHub.Subscription
        var reason: StopReason?
    }
    private let entries = Mutex<[UInt64: Entry]>([:])

    public init() {}

    enum Registration { case registered, duplicate, full }

    func register(_ callID: UInt64, _ subscription: EventHub.Subscription) -> Registration {
        entries.withLock { entries in
            if entries[callID] != nil { return .duplicate }
            if entries.count >= ServerLimits.watchesPerConnectionMax { return .full }
            entries[callID] = Entry(subscription: subscription)
            return .registered
        }
    }

    /// Removes the watch and tells why it stopped (nil: not stopped by the connection).
    func remove(_ callID: UInt64) -> StopReason? {
        entries.withLock { $0.removeValue(forKey: callID)?.reason }
    }

    /// Stops one watch; false when none runs under that call id.
    public func stop(_ callID: UInt64, reason: StopReason) -> Bool {
        let subscription: EventHub.Subscription? = entries.withLock { entries in
            guard entries[callID] != nil, entries[callID]!.reason == nil else { return nil }
            entries[callID]!.reason = reason
            return entries[callID]!.subscription
        }
        subscription?.cancel()
        return subscription != nil
    }

    /// Stops every watch of the connection (it is closing: nobody is left to read an ending).
    public func stopAll() {
        let ids = entries.withLock { Array($0.keys) }
        for id in ids { _ = stop(id, reason: .connectionClosed) }
    }
}

extension LedgerService {
    /// Streams the tenant's events through `send` until unwatched, drained or the connection ends.
    func watch(
        _ tenant: TenantID, after: UInt64?, callID: UInt64, watches: ConnectionWatches, start: ContinuousClock.Instant,
        send: (WireResponse) async throws -> Void
    ) async throws {
        func fail(_ error: LedgerError) async throws {
            metrics.record(rpc: "watch", code: error.code.rawValue, duration: ContinuousClock.now - start)
            try await send(WireResponse(callID: callID, error: error))
        }
        let subscription = engine.eventHub.subscribe(tenant)
        // Checked after subscribing: a drain that began before the subscription existed could not
        // end it (draining sets the flag before it ends every subscription).
        if draining.withLock({ $0 }) {
            subscription.cancel()
            return try await fail(LedgerError(.unavailable, "the server is draining; watch on another connection"))
        }
        switch watches.register(callID, subscription) {
        case .registered: break
        case .duplicate:
            subscription.cancel()
            return try await fail(LedgerError(.invalidArgument, "a watch with call id \(callID) runs on this connection already"))
        case .full:
            subscription.cancel()
            return try await fail(
                LedgerError(
                    .limitExceeded, "this connection runs \(ServerLimits.watchesPerConnectionMax) watches already",
                    details: .limit(name: "watches_per_connection_max", value: UInt64(ServerLimits.watchesPerConnectionMax))))
        }
        metrics.watchStarted()
        defer {
            subscription.cancel()
            _ = watches.remove(callID)
            metrics.watchEnded()
        }
        var page: EventPage
        do {
            page = try await engine.events(tenant, after: after)
        } catch let error as LedgerError {
            return try await fail(error)
        } catch {
            return try await fail(LedgerError(.unavailable, "the ledger is unavailable: \(error)"))
        }
        /// One update of this watch, as its reply.
        func update(_ value: Tokenledger_V1_WatchUpdate.OneOf_Update) -> WireResponse {
            WireResponse.with {
                $0.callID = callID
                $0.watch.update = value
            }
        }
        metrics.record(rpc: "watch", code: "ok", duration: ContinuousClock.now - start)
        try await send(
            update(
                .started(
                    .with {
                        $0.latestEventID = page.latestID
                        $0.oldestRetainedEventID = page.oldestRetainedID
                        $0.eventsLost = page.lost
                    })))
        var cursor = after ?? page.latestID
        var signals = subscription.signals.makeAsyncIterator()
        do {
            while true {
                for event in page.events {
                    try await send(update(.event(Tokenledger_V1_LedgerEvent(event))))
                    cursor = event.id
                }
                if page.events.count < Limits.eventPageMax {
                    guard await signals.next() != nil else { break }
                }
                page = try await engine.events(tenant, after: cursor)
                if page.lost > 0 {
                    try await send(
                        update(
                            .gap(
                                .with {
                                    $0.eventsLost = page.lost
                                    $0.nextEventID = page.oldestRetainedID
                                })))
                }
            }
        } catch let error as LedgerError {
            return try await send(WireResponse(callID: callID, error: error))
        } catch let error as EngineError {
            return try await send(WireResponse(callID: callID, error: LedgerError(.unavailable, "the ledger is unavailable: \(error)")))
        }
        switch watches.remove(callID) {
        case .unwatched?:
            try await send(update(.ended(.with { $0.lastEventID = cursor })))
        case .connectionClosed?:
            return
        case nil where draining.withLock({ $0 }):
            // The hub ended every subscription: the server drains.
            try await send(
                WireResponse(
                    callID: callID,
                    error: LedgerError(.unavailable, "the server is draining; resume after event \(cursor) on another connection")))
        case nil:
            // Cluster mode: the tenant's shard is no longer served here (handed over or lost).
            // `wrong_owner` names the new owner when it is known; resume there after `cursor`.
            var error = LedgerError(.unavailable, "the tenant's shard moved; resume after event \(cursor) shortly")
            do { _ = try engine.route(tenant) } catch let moved { error = moved }
            try await send(WireResponse(callID: callID, error: error))
        }
    }
}
