import LedgerServer
import NIOCore
import NIOSSL
import Synchronization

/// The gRPC port's open connections by peer address: each one's principal (from its client
/// certificate), its watches and its call numbers. grpc-swift gives an RPC handler only the peer's
/// address (`ServerContext.remotePeer`, "ipv4:HOST:PORT"), unique among open TCP connections, so
/// the handshake registers the connection under that address and its close removes it.
final class GRPCPeers: Sendable {
    struct Peer: Sendable {
        /// nil: the certificate names no principal of the access file (every RPC is refused).
        let principal: Principal?
        let watches: ConnectionWatches
    }

    private struct State {
        var peers: [String: Peer] = [:]
        var nextCallID: UInt64 = 0
        var draining = false
    }
    private let state = Mutex(State())
    private let access: AccessPolicy
    private let connectionsMax: Int
    private let metrics: LedgerMetrics

    init(access: AccessPolicy, connectionsMax: Int, metrics: LedgerMetrics) {
        self.access = access
        self.connectionsMax = connectionsMax
        self.metrics = metrics
    }

    /// Registers a connection whose handshake completed; false when it must be closed (the limit
    /// of open connections, or the server drains).
    func register(_ key: String, certificate: NIOSSLCertificate?) -> Bool {
        let principal = certificate.flatMap { access.principal(peerCertificate: $0) }
        let count: Int? = state.withLock { state in
            guard !state.draining, state.peers.count < connectionsMax else { return nil }
            state.peers[key] = Peer(principal: principal, watches: ConnectionWatches())
            return state.peers.count
        }
        guard let count else { return false }
        metrics.setGRPCConnections(count)
        return true
    }

    func remove(_ key: String) {
        let (peer, count) = state.withLock { state in (state.peers.removeValue(forKey: key), state.peers.count) }
        metrics.setGRPCConnections(count)
        peer?.watches.stopAll()
    }

    func peer(_ key: String) -> Peer? { state.withLock { $0.peers[key] } }

    var count: Int { state.withLock { $0.peers.count } }

    var isDraining: Bool { state.withLock { $0.draining } }

    /// A call number unique on this port (the watches' keys; replies are not matched by it).
    func nextCallID() -> UInt64 {
        state.withLock { state in
            state.nextCallID += 1
            return state.nextCallID
        }
    }

    /// No new connections from now on; every watch ends (its stream gets `unavailable`).
    func beginDraining() {
        let peers = state.withLock { state in
            state.draining = true
            return Array(state.peers.values)
        }
        for peer in peers { peer.watches.stopAll() }
    }

    /// How grpc-swift-nio-transport writes a peer's address in `ServerContext.remotePeer`.
    static func key(_ address: SocketAddress?) -> String {
        switch address {
        case .v4(let v4)?: return "ipv4:\(v4.host):\(address!.port!)"
        case .v6(let v6)?: return "ipv6:[\(v6.host)]:\(address!.port!)"
        default: return "<unknown>"
        }
    }
}
