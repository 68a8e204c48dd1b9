import LedgerServerTesting
import Glibc
import LedgerWire
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// A bare TLS connection that writes whatever bytes a test gives it and reads back whatever the
/// server sends: for bad frames, refused certificates and pipelining without the client library.
struct RawConnection {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    enum TLSVariant {
        case normal
        case noClientCertificate
        case tls12Only
    }

    /// Connects with the certificate of `principal` (from the test PKI).
    static func connect(
        port: Int, principal: String = "admin", variant: TLSVariant = .normal, pki: TestPKI = .shared
    ) async throws -> RawConnection {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(pki.path("ca.pem")))
        tls.certificateVerification = .fullVerification
        switch variant {
        case .normal, .tls12Only:
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(pki.path("\(principal).pem")).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: pki.path("\(principal)-key.pem"), format: .pem))
        case .noClientCertificate:
            break
        }
        if case .tls12Only = variant {
            tls.minimumTLSVersion = .tlsv12
            tls.maximumTLSVersion = .tlsv12
        } else {
            tls.minimumTLSVersion = .tlsv13
        }
        let context = try NIOSSLContext(configuration: tls)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        try NIOSSLClientHandler(context: context, serverHostname: nil))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return RawConnection(channel: channel)
    }

    /// What came back: the decoded replies, and how the stream ended.
    struct Outcome {
        var responses: [WireResponse] = []
        /// The stream ended (the server closed, or TLS failed).
        var closed = false
        /// The error that ended it, if any (a TLS alert for refused certificates).
        var error: (any Error)? = nil
    }

    /// Writes `bytes`, then reads replies until `count` have come or the stream ends.
    /// With `closeAfterWrite` the connection is closed as soon as the bytes are out.
    func exchange(_ bytes: [UInt8], expecting count: Int, closeAfterWrite: Bool = false) async throws -> Outcome {
        var outcome = Outcome()
        try await channel.executeThenClose { inbound, outbound in
            if !bytes.isEmpty { try await outbound.write(ByteBuffer(bytes: bytes)) }
            if closeAfterWrite {
                outcome.closed = true
                return
            }
            outcome = await Self.read(inbound, until: count)
        }
        return outcome
    }

    /// Writes each piece with its own write (and flush), then `then` if given, and reads replies
    /// until `count` have come or the stream ends.
    func exchange(_ pieces: [[UInt8]], then last: [UInt8]?, expecting count: Int) async throws -> Outcome {
        var outcome = Outcome()
        try await channel.executeThenClose { inbound, outbound in
            do {
                for piece in pieces where !piece.isEmpty { try await outbound.write(ByteBuffer(bytes: piece)) }
                if let last { try await outbound.write(ByteBuffer(bytes: last)) }
            } catch {
                // The server may close before everything is written (it stops at a bad header).
            }
            if last == nil { return }
            outcome = await Self.read(inbound, until: count)
        }
        return outcome
    }

    /// Reads replies until `count` have come or the stream ends (closed, or failed with an error).
    private static func read(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>, until count: Int) async -> Outcome {
        var outcome = Outcome()
        var buffer = ByteBuffer()
        let decoder = FrameDecoder(frameSizeMax: 16 << 20)
        do {
            for try await chunk in inbound {
                var chunk = chunk
                buffer.writeBuffer(&chunk)
                while let frame = try decoder.nextFrame(&buffer) {
                    outcome.responses.append(try WireResponse(frame: frame))
                }
                if outcome.responses.count >= count { return outcome }
            }
            outcome.closed = true
        } catch {
            outcome.closed = true
            outcome.error = error
        }
        return outcome
    }

    static func frame(_ message: WireRequest) throws -> [UInt8] {
        var buffer = ByteBuffer()
        try buffer.writeFrame(message)
        return Array(buffer.readableBytesView)
    }
}

/// A plain TCP socket connected to 127.0.0.1:`port` (no TLS), or nil; the caller closes it.
func loopbackSocket(port: Int) -> Int32? {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return nil }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(descriptor)
        return nil
    }
    return descriptor
}
