/// A short list of grant ids (a tenant's burn-down order) that keeps a single id inline: most
/// tenants have one active grant, and an array of one costs a 48-byte allocation each.
///
/// Canonical form, so derived equality is the lists' equality: no ids (`single == 0`, `more`
/// empty), one id (`single`, `more` empty), or two or more (`more`, `single == 0`). Grant ids start
/// at 1, so 0 is free to mean "none".
struct GrantIDList: Hashable, Sendable, RandomAccessCollection, RangeReplaceableCollection {
    private var single: UInt64 = 0
    private var more: [GrantID] = []

    init() {}

    init(_ ids: [GrantID]) {
        if ids.count == 1 {
            precondition(ids[0].rawValue != 0, "grant ids start at 1")
            single = ids[0].rawValue
        } else if ids.count > 1 {
            more = ids
        }
    }

    init<S: Sequence>(_ ids: S) where S.Element == GrantID { self.init(Array(ids)) }

    var startIndex: Int { 0 }
    var endIndex: Int { more.isEmpty ? (single == 0 ? 0 : 1) : more.count }

    subscript(position: Int) -> GrantID {
        if more.isEmpty {
            precondition(position == 0 && single != 0, "grant list index \(position) out of range")
            return GrantID(single)
        }
        return more[position]
    }

    // Every change goes through one array, then back to the canonical form: O(n) per change, where
    // the protocol's defaults for `append` and `removeAll(where:)` would replace one element at a
    // time (O(n^2) for a tenant with thousands of grants).

    private mutating func change<R>(_ body: (inout [GrantID]) throws -> R) rethrows -> R {
        var all: [GrantID]
        if more.isEmpty {
            all = single == 0 ? [] : [GrantID(single)]
        } else {
            all = more
            more = []  // `all` is then the array's only reference, changed in place
        }
        defer { self = GrantIDList(all) }
        return try body(&all)
    }

    mutating func replaceSubrange<C: Collection>(_ subrange: Range<Int>, with ids: C) where C.Element == GrantID {
        change { $0.replaceSubrange(subrange, with: ids) }
    }

    mutating func append(_ id: GrantID) { change { $0.append(id) } }

    mutating func insert(_ id: GrantID, at position: Int) { change { $0.insert(id, at: position) } }

    @discardableResult
    mutating func remove(at position: Int) -> GrantID { change { $0.remove(at: position) } }

    mutating func removeAll(where shouldBeRemoved: (GrantID) throws -> Bool) rethrows {
        try change { try $0.removeAll(where: shouldBeRemoved) }
    }
}
