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
            var buffer = ByteBuffer()
            let decoder = FrameDecoder(frameSizeMax: 16 << 20)
            do {
                for try await chunk in inbound {
                    var chunk = chunk
                    buffer.writeBuffer(&chunk)
                    while let frame = try decoder.nextFrame(&buffer) {
                        outcome.responses.append(try WireResponse(frame: frame))
                    }
                    if outcome.responses.count >= count { return }
                }
                outcome.closed = true
            } catch {
                outcome.closed = true
                outcome.error = error
            }
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
            var buffer = ByteBuffer()
            let decoder = FrameDecoder(frameSizeMax: 16 << 20)
            do {
                for try await chunk in inbound {
                    var chunk = chunk
                    buffer.writeBuffer(&chunk)
                    while let frame = try decoder.nextFrame(&buffer) {
                        outcome.responses.append(try WireResponse(frame: frame))
                    }
                    if outcome.responses.count >= count { return }
                }
                outcome.closed = true
            } catch {
                outcome.closed = true
                outcome.error = error
            }
        }
        return outcome
    }

    static func frame(_ message: WireRequest) throws -> [UInt8] {
        var buffer = ByteBuffer()
        try buffer.writeFrame(message)
        return Array(buffer.readableBytesView)
    }
}
