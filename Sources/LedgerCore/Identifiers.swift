/// Validation shared by every client-chosen identifier.
///
/// An identifier is 1 to ``Limits/idLengthMax`` bytes of `[A-Za-z0-9._:-]`. The alphabet keeps ids
/// safe in file names, logs, URLs and CSV exports without escaping.
public enum IdentifierRule {
    /// Whether `text` is a valid identifier.
    public static func isValid(_ text: String) -> Bool {
        // Over the UTF-8 view's own storage where it has one (native strings, small ones too): the
        // view's iterator took 1.7x (10-byte ids) to 2.3x (25-byte ids) as long per id.
        if let valid = text.utf8.withContiguousStorageIfAvailable(isValid) { return valid }
        return Array(text.utf8).withUnsafeBufferPointer(isValid)
    }

    /// Whether these UTF-8 bytes are a valid identifier.
    public static func isValid(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !utf8.isEmpty, utf8.count <= Limits.idLengthMax else { return false }
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: ":"), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// Throws `invalid_argument` naming `field` when `text` is not a valid identifier.
    public static func check(_ text: String, field: String) throws(LedgerError) {
        guard isValid(text) else {
            throw LedgerError(
                .invalidArgument,
                "\(field) must be 1 to \(Limits.idLengthMax) bytes of [A-Za-z0-9._:-]")
        }
    }
}

/// Declares a validated string identifier type.
public protocol LedgerIdentifier: Hashable, Comparable, Sendable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    /// The identifier's text, already validated when it reached the state machine.
    var rawValue: String { get }
    init(_ rawValue: String)
}

extension LedgerIdentifier {
    public init(stringLiteral value: String) { self.init(value) }
    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    /// Whether the text satisfies ``IdentifierRule``.
    public var isValid: Bool { IdentifierRule.isValid(rawValue) }
}

/// A tenant: one company's shared pool of tokens. The unit of sharding.
public struct TenantID: LedgerIdentifier {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
}

extension TenantID {
    /// The index of the tenant's shard among `shardCount`: FNV-1a 64 of the id's UTF-8 bytes modulo
    /// the count. Stable across processes, builds and languages: the engine places tenants by it
    /// and cluster clients route by it (docs/protocol.md, "ShardMap").
    public func shardIndex(shardCount: Int) -> Int {
        precondition(shardCount > 0)
        return Int(stableHash(rawValue) % UInt64(shardCount))
    }
}

/// FNV-1a 64 of the text's UTF-8 bytes (Swift's `Hasher` is seeded per process and must not be
/// used for anything that outlives one).
public func stableHash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01B3
    }
    return hash
}

/// A member of a tenant: a user, a teacher, an API key.
public struct MemberID: LedgerIdentifier {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
}

/// A reservation (hold), chosen by the client and unique within its tenant.
public struct HoldID: LedgerIdentifier {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
}

/// A client request id: the idempotency key of a mutating command, scoped to its tenant.
public struct RequestID: LedgerIdentifier {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
}

/// A grant (credit bucket), numbered by the ledger from 1 within its tenant in creation order.
public struct GrantID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "g\(rawValue)" }
    public static func < (lhs: GrantID, rhs: GrantID) -> Bool { lhs.rawValue < rhs.rawValue }
}
