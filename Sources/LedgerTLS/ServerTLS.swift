import NIOSSL

/// The server side of TokenLedger's TLS policy, for every listener that speaks it (ledgerd's
/// framed port, ledger-load's echo server): TLS 1.3 only, and the client must present a
/// certificate that chains to the client CA (its subject's common name is the principal).
public enum ServerTLS {
    /// `applicationProtocols`: the ALPN protocols offered (the gRPC port's "h2"); none by default.
    public static func context(
        certificatePath: String, privateKeyPath: String, clientCAPath: String, applicationProtocols: [String] = []
    ) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        let key = try NIOSSLPrivateKey(file: privateKeyPath, format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv13
        tls.maximumTLSVersion = .tlsv13
        tls.certificateVerification = .noHostnameVerification
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCAPath))
        tls.applicationProtocols = applicationProtocols
        return try NIOSSLContext(configuration: tls)
    }
}
