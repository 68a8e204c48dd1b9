/// An optional value kept in its own allocation, copied on write: a field most tenants leave empty
/// (a plan, its current period) costs them one pointer instead of the value's full size, and a value
/// most tenants share (the default purchase rules) is stored once.
///
/// Equality and hashing are the value's. Mutation through ``value`` changes the allocation in place
/// when nothing else refers to it, else copies it first, so it behaves as a plain stored value.
package struct OutOfLine<Value: Hashable & Sendable>: Hashable, Sendable {
    private final class Box: @unchecked Sendable {
        // Mutated only while uniquely referenced (see `value`), so sharing a box is safe.
        var value: Value
        init(_ value: Value) { self.value = value }
    }

    private var box: Box?

    package init(_ value: Value?) { box = value.map(Box.init) }

    package var value: Value? {
        get { box?.value }
        set {
            guard let newValue else {
                box = nil
                return
            }
            if isKnownUniquelyReferenced(&box) { box!.value = newValue } else { box = Box(newValue) }
        }
    }

    /// Whether both refer to the same allocation (tests of sharing).
    package func isSameStorage(as other: OutOfLine) -> Bool { box === other.box }

    package static func == (lhs: OutOfLine, rhs: OutOfLine) -> Bool { lhs.box === rhs.box || lhs.value == rhs.value }

    package func hash(into hasher: inout Hasher) { hasher.combine(value) }
}
