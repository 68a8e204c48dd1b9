import LedgerCore
import LedgerEngine

/// Everything `LedgerServer` needs, with the defaults `ledgerd` starts with. docs/protocol.md and
/// docs/operations.md list the limits with their reasons.
public struct ServerConfiguration: Sendable {
    /// Address to listen on. Port 0 picks a free port (tests); `LedgerServer.boundPort` tells it.
    public var host: String = "127.0.0.1"
    public var port: Int = 7443
    /// PEM files: the server's certificate chain and key, and the CA that client certificates must
    /// chain to.
    public var certificatePath: String
    public var privateKeyPath: String
    public var clientCAPath: String
    /// Which client certificate subject is which principal.
    public var access: AccessPolicy = .builtIn
    public var limits = ConnectionLimits()
    /// How often ticks (hold expiry, plan renewal) and due snapshots run in the background.
    public var maintenanceInterval: Duration = .seconds(1)
    /// Reported by Health.
    public var serverVersion: String = "tokenledger 0.1.0"
    /// Spans of the calls (ledgerd --otel-endpoint); nil: no tracing, and no cost.
    public var tracing: CallTracing? = nil
    /// How long an event loop waits, after a group commit of fewer than
    /// ``EventLoopGroupCommit/coalescingBatchMax`` calls, before it looks at its sockets again
    /// (ledgerd `--coalesce-us`); zero: it does not. docs/operations.md has the trade-off.
    public var coalescing: Duration = .zero

    public init(certificatePath: String, privateKeyPath: String, clientCAPath: String) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
    }
}

/// Per-connection and per-server limits. Each is checked before the work or allocation it guards.
public struct ConnectionLimits: Sendable, Hashable {
    /// Largest request frame (the length field), in bytes. A larger length is refused with
    /// `limit_exceeded` and the connection closed, before any of the body is read.
    public var frameSizeMax: Int = 1 << 20
    /// Calls one connection may have in flight; the server stops reading a connection at this
    /// many until replies go out.
    public var inFlightPerConnectionMax: Int = 256
    /// Calls in flight on the whole server; a call beyond this is answered `overloaded` at once
    /// (retry later), so that a burst cannot queue without bound in front of the shards.
    public var serverCallsInFlightMax: Int = ServerLimits.callsInFlightMaxDefault
    /// Open connections; a connection beyond this is closed at once.
    public var connectionsMax: Int = 4_096
    /// A TLS handshake must finish within this time.
    public var handshakeTimeout: Duration = .seconds(10)
    /// A connection with no call in flight and no bytes arriving for this long is closed.
    public var idleTimeout: Duration = .seconds(300)
    /// Once a frame has started to arrive, all of it must arrive within this time.
    public var frameReadTimeout: Duration = .seconds(30)
    /// On shutdown, connections whose calls have not finished within this time (a client that
    /// stopped reading its replies) are closed, so that a stuck peer cannot hold the drain open.
    public var drainTimeout: Duration = .seconds(30)
    /// Replies buffered for a connection that does not read them: above `high` the connection
    /// stops being read until its buffer falls below `low`.
    public var writeBufferLowWaterMark: Int = 256 << 10
    public var writeBufferHighWaterMark: Int = 1 << 20

    public init() {}
}
