/// How a `LedgerClient` connects and behaves. Paths are PEM files; `ledgerd`'s development
/// material lives under `<data-dir>/tls/`.
public struct ClientConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// The CA the server's certificate must chain to.
    public var caPath: String
    /// The client certificate and key (the principal); nil connects without one, which the
    /// server refuses.
    public var certificatePath: String?
    public var privateKeyPath: String?
    /// The name the server's certificate must carry; nil: `host`.
    public var serverName: String?
    public var connectTimeout: Duration = .seconds(10)
    /// How long a call waits for its reply before failing with `timedOut` (checked every quarter of
    /// it, at most every second, so a call may wait up to that much longer).
    public var callTimeout: Duration = .seconds(30)
    /// Calls in flight on the connection; further calls wait for a slot.
    public var inFlightMax: Int = 256
    /// Largest reply frame accepted, in bytes.
    public var frameSizeMax: Int = 16 << 20
    public var retry = RetryPolicy()
    /// Cluster mode (docs/cluster.md): more nodes ("host:port") besides `host`:`port`. A call whose
    /// tenant another node serves is answered `wrong_owner` with that node's address; the client
    /// sends it there with the same request id and remembers the tenant's node. When a node cannot
    /// be reached or answers `unavailable`, a retry goes to the next address of this list, and
    /// `connect` tries them in turn when `host`:`port` does not answer. Every node must present a
    /// certificate for its host name from the same CA.
    public var servers: [String] = []
    /// Redirects a call follows (`wrong_owner`) before it fails with that error.
    public var redirectsMax = 4

    public init(
        host: String = "127.0.0.1", port: Int = 7443, caPath: String, certificatePath: String?, privateKeyPath: String?
    ) {
        self.host = host
        self.port = port
        self.caPath = caPath
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
    }

    /// The development material `ledgerd` creates under `<dataDirectory>/tls/`, as the admin.
    public static func development(dataDirectory: String = "./ledger-data", host: String = "127.0.0.1", port: Int = 7443)
        -> ClientConfiguration
    {
        let tls = dataDirectory.hasSuffix("/") ? dataDirectory + "tls/" : dataDirectory + "/tls/"
        return ClientConfiguration(
            host: host, port: port, caPath: tls + "ca.pem", certificatePath: tls + "admin.pem",
            privateKeyPath: tls + "admin-key.pem")
    }
}

/// When a call is tried again. Every call is safe to repeat: reads change nothing, and every
/// change carries its request id, so the ledger answers a repeat with the first result
/// (`replayed` is true) instead of applying it twice.
public struct RetryPolicy: Sendable {
    /// Tries in all, the first included; 1 never retries.
    public var attempts: Int = 3
    /// Wait before the second try; doubled before each later one.
    public var backoff: Duration = .milliseconds(50)

    public init(attempts: Int = 3, backoff: Duration = .milliseconds(50)) {
        self.attempts = attempts
        self.backoff = backoff
    }
}
