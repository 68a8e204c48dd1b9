import LedgerCore
import LedgerWire
import NIOSSL
import X509

/// What a principal may do (docs/protocol.md, "Access").
public enum Role: String, Sendable, Hashable {
    /// Everything, including administration.
    case admin
    /// Metering calls and reads for the tenants it is allowed.
    case service
    /// Metering calls and reads for one tenant.
    case tenant
}

/// An authenticated caller: the subject common name of its client certificate, mapped through the
/// access file.
public struct Principal: Sendable, Hashable {
    public enum Tenants: Sendable, Hashable {
        case all
        case only(Set<TenantID>)
    }

    public var name: String
    public var role: Role
    /// For services and tenants: which tenants they may meter and read.
    public var tenants: Tenants

    public init(name: String, role: Role, tenants: Tenants) {
        self.name = name
        self.role = role
        self.tenants = tenants
    }

    /// Whether this principal may make `call`. A refusal for a tenant the principal may not see is
    /// `not_found` with the same message an unknown tenant gets, so that probing tells nothing;
    /// administration refused to a non-admin is `permission_denied`.
    public func authorize(_ call: LedgerCall) throws(LedgerError) {
        switch call.access {
        case .anyone:
            return
        case .admin:
            guard role == .admin else {
                throw LedgerError(.permissionDenied, "\(name) is a \(role.rawValue) principal; this call needs admin")
            }
        case .metering(let tenant):
            if role == .admin { return }
            switch tenants {
            case .all: return
            case .only(let allowed):
                guard allowed.contains(tenant) else { throw LedgerError(.notFound, "tenant \(tenant) not found") }
            }
        }
    }
}

/// Which client certificate subject is which principal: the access file, or the built-in policy
/// (only "admin", an admin) when none is given.
///
/// The access file is JSON:
///
///     {
///       "principals": [
///         { "name": "admin",      "role": "admin" },
///         { "name": "billing",    "role": "service", "tenants": "*" },
///         { "name": "transcribe", "role": "service", "tenants": ["acme", "globex"] },
///         { "name": "acme-web",   "role": "tenant",  "tenant": "acme" }
///       ]
///     }
public struct AccessPolicy: Sendable {
    public private(set) var principals: [String: Principal]

    public init(principals: [Principal]) {
        self.principals = Dictionary(principals.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The policy used without an access file: the development admin certificate's subject only.
    public static let builtIn = AccessPolicy(principals: [Principal(name: "admin", role: .admin, tenants: .all)])

    /// The principal for a certificate subject common name, or nil when the policy names none.
    public func principal(commonName: String) -> Principal? { principals[commonName] }

    /// Parses an access file; every problem names the entry and the field.
    public init(json: [UInt8]) throws(AccessPolicyError) {
        let document: JSONValue
        do {
            document = try JSONValue.parse(json)
        } catch {
            throw AccessPolicyError("not valid JSON: \(error)")
        }
        guard case .object(let root) = document, case .array(let entries)? = root["principals"] else {
            throw AccessPolicyError("the document must be an object with a \"principals\" array")
        }
        for key in root.keys where key != "principals" { throw AccessPolicyError("unknown field \"\(key)\"") }
        var principals: [Principal] = []
        var names = Set<String>()
        for (index, entry) in entries.enumerated() {
            let principal = try Self.principal(entry, index: index)
            guard names.insert(principal.name).inserted else {
                throw AccessPolicyError("principals[\(index)]: the name \"\(principal.name)\" appears twice")
            }
            principals.append(principal)
        }
        self.init(principals: principals)
    }

    private static func principal(_ entry: JSONValue, index: Int) throws(AccessPolicyError) -> Principal {
        let at = "principals[\(index)]"
        guard case .object(let fields) = entry else { throw AccessPolicyError("\(at) must be an object") }
        for key in fields.keys where !["name", "role", "tenants", "tenant"].contains(key) {
            throw AccessPolicyError("\(at): unknown field \"\(key)\"")
        }
        guard case .string(let name)? = fields["name"], !name.isEmpty else {
            throw AccessPolicyError("\(at): \"name\" (the certificate's subject common name) is required")
        }
        guard case .string(let roleText)? = fields["role"], let role = Role(rawValue: roleText) else {
            throw AccessPolicyError("\(at): \"role\" must be \"admin\", \"service\" or \"tenant\"")
        }
        switch role {
        case .admin:
            guard fields["tenants"] == nil, fields["tenant"] == nil else {
                throw AccessPolicyError("\(at): an admin sees every tenant; remove \"tenants\"/\"tenant\"")
            }
            return Principal(name: name, role: .admin, tenants: .all)
        case .service:
            guard fields["tenant"] == nil else { throw AccessPolicyError("\(at): a service takes \"tenants\"") }
            switch fields["tenants"] {
            case .string("*")?: return Principal(name: name, role: .service, tenants: .all)
            case .array(let list)?:
                var tenants = Set<TenantID>()
                for item in list {
                    guard case .string(let text) = item, IdentifierRule.isValid(text) else {
                        throw AccessPolicyError("\(at): \"tenants\" must list valid tenant ids")
                    }
                    tenants.insert(TenantID(text))
                }
                return Principal(name: name, role: .service, tenants: .only(tenants))
            default:
                throw AccessPolicyError("\(at): \"tenants\" must be \"*\" or a list of tenant ids")
            }
        case .tenant:
            guard fields["tenants"] == nil, case .string(let text)? = fields["tenant"], IdentifierRule.isValid(text) else {
                throw AccessPolicyError("\(at): a tenant principal needs one \"tenant\" id")
            }
            return Principal(name: name, role: .tenant, tenants: .only([TenantID(text)]))
        }
    }
}

public struct AccessPolicyError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension AccessPolicy {
    /// The principal named by a peer's certificate (its subject's last common name), or nil: the
    /// same rule on every port.
    public func principal(peerCertificate certificate: NIOSSLCertificate) -> Principal? {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return nil }
        var commonName: String? = nil
        for relativeName in parsed.subject {
            for attribute in relativeName where attribute.type == .RDNAttributeType.commonName {
                commonName = String(attribute.value)
            }
        }
        return commonName.flatMap { principal(commonName: $0) }
    }
}
