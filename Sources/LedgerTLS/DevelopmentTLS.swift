import Foundation

/// The development TLS material `ledgerd` creates on first start under `<data-dir>/tls/`, so that
/// a fresh checkout serves mutual TLS with no setup. Existing files are never overwritten.
///
///   ca.pem, ca-key.pem          the development CA (keep ca-key.pem to issue more client certificates)
///   server.pem, server-key.pem  the server, for localhost, 127.0.0.1 and ::1
///   admin.pem, admin-key.pem    a client certificate for the principal "admin"
///
/// Private keys are written with mode 0600. This material is for development only: production
/// deployments pass their own with --tls-cert, --tls-key and --tls-ca.
public struct DevelopmentTLS: Sendable {
    public let directory: String

    public init(dataDirectory: String) {
        directory = (dataDirectory as NSString).appendingPathComponent("tls")
    }

    public var caPath: String { path("ca.pem") }
    public var caKeyPath: String { path("ca-key.pem") }
    public var serverCertificatePath: String { path("server.pem") }
    public var serverKeyPath: String { path("server-key.pem") }
    public var adminCertificatePath: String { path("admin.pem") }
    public var adminKeyPath: String { path("admin-key.pem") }

    private func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// Whether every file exists already.
    public var exists: Bool {
        [caPath, caKeyPath, serverCertificatePath, serverKeyPath, adminCertificatePath, adminKeyPath].allSatisfy {
            FileManager.default.fileExists(atPath: $0)
        }
    }

    /// Creates the material unless it is all there; returns whether it created it. A partial set
    /// (some files missing) is an error rather than silently replaced: certificates already handed
    /// out would stop working.
    @discardableResult
    public func createIfMissing() throws -> Bool {
        if exists { return false }
        let present = [caPath, caKeyPath, serverCertificatePath, serverKeyPath, adminCertificatePath, adminKeyPath]
            .filter { FileManager.default.fileExists(atPath: $0) }
        guard present.isEmpty else {
            throw DevelopmentTLSError.incomplete(directory: directory, present: present)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let authority = try CertificateAuthority(commonName: "TokenLedger development CA")
        let server = try authority.issueServer(
            commonName: "localhost", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"])
        let admin = try authority.issueClient(commonName: "admin")
        try Self.write(try authority.certificatePEM, to: caPath, private: false)
        try Self.write(try authority.privateKeyPEM, to: caKeyPath, private: true)
        try Self.write(server.certificatePEM, to: serverCertificatePath, private: false)
        try Self.write(server.privateKeyPEM, to: serverKeyPath, private: true)
        try Self.write(admin.certificatePEM, to: adminCertificatePath, private: false)
        try Self.write(admin.privateKeyPEM, to: adminKeyPath, private: true)
        return true
    }

    /// Writes a file with mode 0600 for keys and 0644 otherwise.
    public static func write(_ text: String, to path: String, private isPrivate: Bool) throws {
        let created = FileManager.default.createFile(
            atPath: path, contents: Data(text.utf8),
            attributes: [.posixPermissions: isPrivate ? 0o600 : 0o644])
        guard created else { throw DevelopmentTLSError.writeFailed(path) }
    }
}

public enum DevelopmentTLSError: Error, CustomStringConvertible {
    case incomplete(directory: String, present: [String])
    case writeFailed(String)

    public var description: String {
        switch self {
        case .incomplete(let directory, let present):
            return "\(directory) holds only part of the development TLS material (\(present.joined(separator: ", "))); "
                + "remove it to have it made anew, or pass --tls-cert, --tls-key and --tls-ca"
        case .writeFailed(let path): return "could not write \(path)"
        }
    }
}
