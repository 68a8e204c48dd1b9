import Synchronization

/// Items handed from any thread to an event loop, which takes them all at once: the first `add`
/// after a `take` tells its caller to schedule one drain on the loop; later adds join that batch.
/// The server's replies and the Swift client's requests both leave this way, so that what is ready
/// together is written as one buffer with one flush instead of a hop and a write per item.
public final class EventLoopBatch<Item: Sendable>: Sendable {
    // Inlinable, so that each user's module specializes it for its `Item`: unspecialized, every
    // `add` looked up the generic metadata of `State` at run time (perf: 2-3% of the server's CPU
    // under load, in the runtime's metadata cache).
    @usableFromInline
    struct State {
        @usableFromInline var items: [Item] = []
        @usableFromInline var scheduled = false
        @usableFromInline init() {}
    }
    @usableFromInline let state = Mutex(State())

    public init() {}

    /// Adds `item`; true when no drain is scheduled yet, and the caller must schedule one. The
    /// item is consumed: moved into the batch, not copied.
    @inlinable
    public func add(_ item: consuming Item) -> Bool {
        // Taken out of an optional inside the lock's closure, which cannot consume a capture.
        var item = Optional(item)
        return state.withLock { state in
            state.items.append(item.take()!)
            defer { state.scheduled = true }
            return !state.scheduled
        }
    }

    /// Swaps everything added since the last take into `items`, which must be empty: the batch
    /// goes on with `items`' storage, so a drain that empties its array (keeping its room) and
    /// passes it again allocates nothing (`take()` returns an array the batch no longer owns, and
    /// gets new room for each batch).
    @inlinable
    public func take(into items: inout [Item]) {
        precondition(items.isEmpty, "taking into an array that holds items")
        state.withLock { state in
            state.scheduled = false
            swap(&state.items, &items)
        }
    }

    /// Everything added since the last take (called by the drain, on the event loop).
    @inlinable
    public func take() -> [Item] {
        state.withLock { state in
            state.scheduled = false
            defer { state.items.removeAll(keepingCapacity: true) }
            return state.items
        }
    }
}
