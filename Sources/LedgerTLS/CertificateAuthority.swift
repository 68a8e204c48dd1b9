import Crypto
import Foundation
import SwiftASN1
import X509

/// A small certificate authority: makes the development TLS material that `ledgerd` creates on
/// first start, and the certificates the tests use (other principals, a foreign CA). Keys are
/// ECDSA P-256; certificates are X.509 v3 signed with ECDSA-SHA256. Made in process with
/// swift-certificates and swift-crypto, never by shelling out to openssl.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    public let privateKey: Certificate.PrivateKey

    /// A certificate and its key, both PEM.
    public struct Issued: Sendable {
        public let certificatePEM: String
        public let privateKeyPEM: String
    }

    /// A new self-signed CA valid for `validity` from now.
    public init(commonName: String, validity: Duration = .seconds(10 * 365 * 86_400)) throws {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName("TokenLedger development")
            CommonName(commonName)
        }
        let now = Date()
        certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(validity.seconds),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: key)
        privateKey = key
    }

    /// Loads a CA from its PEM certificate and key.
    public init(certificatePEM: String, privateKeyPEM: String) throws {
        certificate = try Certificate(pemEncoded: certificatePEM)
        privateKey = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
    }

    public var certificatePEM: String {
        get throws { try certificate.serializeAsPEM().pemString }
    }

    public var privateKeyPEM: String {
        get throws { try privateKey.serializeAsPEM().pemString }
    }

    /// A server certificate for `dnsNames` and `ipAddresses` (both as subject alternative names).
    public func issueServer(
        commonName: String, dnsNames: [String], ipAddresses: [String], validity: Duration = .seconds(825 * 86_400)
    ) throws -> Issued {
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for address in ipAddresses {
            guard let bytes = Self.ipAddressBytes(address) else {
                throw CertificateError.invalidAddress(address)
            }
            names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
        }
        return try issue(commonName: commonName, usage: .serverAuth, alternativeNames: names, validity: validity)
    }

    /// A client certificate: its subject common name is the principal's name in the access file.
    public func issueClient(commonName: String, validity: Duration = .seconds(825 * 86_400)) throws -> Issued {
        try issue(commonName: commonName, usage: .clientAuth, alternativeNames: [], validity: validity)
    }

    private func issue(
        commonName: String, usage: ExtendedKeyUsage.Usage, alternativeNames: [GeneralName], validity: Duration
    ) throws -> Issued {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let now = Date()
        let issued = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(validity.seconds),
            issuer: certificate.subject, subject: try DistinguishedName { CommonName(commonName) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([usage])
                if !alternativeNames.isEmpty { SubjectAlternativeNames(alternativeNames) }
                AuthorityKeyIdentifier(keyIdentifier: try certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: privateKey)
        return Issued(
            certificatePEM: try issued.serializeAsPEM().pemString, privateKeyPEM: try key.serializeAsPEM().pemString)
    }

    /// Four bytes for an IPv4 address, sixteen for IPv6 (`::1` only in its short forms), or nil.
    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4 {
            let bytes = parts.compactMap { UInt8($0) }
            return bytes.count == 4 ? bytes : nil
        }
        if text == "::1" { return Array(repeating: 0, count: 15) + [1] }
        return nil
    }
}

public enum CertificateError: Error, CustomStringConvertible {
    case invalidAddress(String)

    public var description: String {
        switch self {
        case .invalidAddress(let address): return "\(address) is not an IPv4 address or ::1"
        }
    }
}

extension Duration {
    /// The duration in seconds, as a `TimeInterval` for Foundation's dates.
    var seconds: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
