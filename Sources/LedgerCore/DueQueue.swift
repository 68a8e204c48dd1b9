/// Work that falls due at a ledger time, whatever traffic there is.
package enum DueKind: Hashable, Sendable, Codable {
    case holdExpiry(HoldID)
    case grantActivation(GrantID)
    /// Valid only while the tenant's plan generation is still `generation`.
    case planRenewal(generation: UInt64)
    case grantExpiry(GrantID)
    /// Valid only while the member's budget generation is still `generation`.
    case budgetReset(MemberID, generation: UInt64)

    /// Order among items due at the same instant: holds release first (so that their tokens can
    /// roll over), scheduled grants start, plans renew (carrying over before the old grant expires),
    /// grants expire, and budgets reset last.
    var rank: UInt8 {
        switch self {
        case .holdExpiry: return 0
        case .grantActivation: return 1
        case .planRenewal: return 2
        case .grantExpiry: return 3
        case .budgetReset: return 4
        }
    }
}

/// One scheduled item. Items are not removed one by one when they become moot (a hold committed
/// before its expiry): the handler checks that the item still applies when it comes due, and the
/// state prunes moot hold expiries in bulk once they pile up (`LedgerState.pruneDue`).
package struct DueItem: Hashable, Sendable, Codable {
    package var time: LedgerTime
    package var sequence: UInt64
    package var tenant: TenantID
    package var kind: DueKind

    /// Total order: time, then rank, then scheduling sequence. Deterministic, so replay applies
    /// due work in the same order.
    func precedes(_ other: DueItem) -> Bool {
        (time, kind.rank, sequence) < (other.time, other.kind.rank, other.sequence)
    }
}

/// A binary min-heap of ``DueItem`` in ``DueItem/precedes(_:)`` order.
///
/// Two queues are equal when they hold the same items, whatever their layout in the heap: the
/// order they come out in is the items' total order, so the layout is not observable (pruning,
/// below, rebuilds the heap, and a live ledger and one recovered from a snapshot prune at
/// different moments).
package struct DueQueue: Hashable, Sendable, Codable {
    var items: [DueItem] = []
    /// `LedgerState` prunes moot items once the queue reaches this size, then sets it to twice
    /// what is left (at least `pruneSizeMin`), so pruning costs O(1) per insert amortized. Not part
    /// of the queue's value or encoding.
    var pruneAt = DueQueue.pruneSizeMin
    static let pruneSizeMin = 4_096

    private enum CodingKeys: String, CodingKey { case items }

    package var count: Int { items.count }
    package var first: DueItem? { items.first }

    package static func == (lhs: DueQueue, rhs: DueQueue) -> Bool {
        lhs.items.count == rhs.items.count
            && lhs.items.sorted(by: { $0.precedes($1) }) == rhs.items.sorted(by: { $0.precedes($1) })
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(items.count)
    }

    /// Adds `item`, consumed (moved into the heap, not copied).
    package mutating func insert(_ item: consuming DueItem) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(child, parent) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    package mutating func removeFirst() -> DueItem? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        siftDown(from: 0)
        return top
    }

    /// Removes the items `isMoot` picks and rebuilds the heap (O(n)); sets the next prune size.
    mutating func prune(where isMoot: (DueItem) -> Bool) {
        items.removeAll(where: isMoot)
        for index in stride(from: items.count / 2 - 1, through: 0, by: -1) { siftDown(from: index) }
        pruneAt = max(Self.pruneSizeMin, 2 * items.count)
    }

    /// Whether the item at `a` precedes the one at `b`, read in place (`items[a].precedes(items[b])`
    /// copied both items, a retain for each id in them, at every step of a sift).
    private func precedes(_ a: Int, _ b: Int) -> Bool {
        items.withUnsafeBufferPointer { $0[a].precedes($0[b]) }
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count, precedes(left, smallest) { smallest = left }
            if right < items.count, precedes(right, smallest) { smallest = right }
            guard smallest != parent else { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
