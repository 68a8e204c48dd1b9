import Foundation
import LedgerTLS
import LedgerWire
import NIOCore
import NIOPosix
import NIOSSL

/// The transport ceiling of scripts/bench: the ledger's listener (TLS 1.3, mutual TLS, the same
/// framing) with no ledger behind it. Each request frame is answered at once, on the event loop,
/// with a reply of the real reply's shape: the request's call id followed by a canned result of
/// the same call kind, so the real client reads it as usual. No protobuf is decoded (only the
/// call id and the call's field tag are read from the first bytes), nothing is written to disk.
enum EchoServer {
    static func run(host: String, port: Int, dataDirectory: String) async throws {
        let tls = DevelopmentTLS(dataDirectory: dataDirectory)
        try tls.createIfMissing()
        let context = try ServerTLS.context(
            certificatePath: tls.serverCertificatePath, privateKeyPath: tls.serverKeyPath, clientCAPath: tls.caPath)
        let replies = CannedReplies()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(FrameDecoder(frameSizeMax: 1 << 20)))
                    try channel.pipeline.syncOperations.addHandler(EchoHandler(replies: replies))
                }
            }
            .bind(host: host, port: port).get()
        // Unbuffered, so that a script reading the first line sees it at once.
        FileHandle.standardOutput.write(
            Data("ledger-load echo server listening on \(host):\(channel.localAddress?.port ?? port)\n".utf8))
        try await channel.closeFuture.get()
    }
}

/// Reply bodies without a call id, by the request's call field number.
struct CannedReplies: Sendable {
    let bodies: [UInt64: [UInt8]]

    init() {
        var hold = Tokenledger_V1_Hold()
        hold.id = "echo-hold-0000000000"
        hold.state = .held
        hold.amount = 10
        hold.held = 10
        hold.createdAtMs = 1_795_000_000_000
        hold.expiresAtMs = 1_795_000_900_000
        var allocation = Tokenledger_V1_Allocation()
        allocation.grantID = 1
        allocation.amount = 10
        hold.allocations = [allocation]
        var bodies: [UInt64: [UInt8]] = [:]
        func add(_ field: UInt64, _ fill: (inout Tokenledger_V1_Response) -> Void) {
            var response = Tokenledger_V1_Response()
            fill(&response)
            bodies[field] = (try? response.serializedBytes()) ?? []
        }
        add(10) { $0.reserve = .with { $0.hold = hold } }
        var committed = hold
        committed.state = .committed
        committed.captured = 8
        committed.held = 0
        add(11) { $0.commit = .with { $0.hold = committed; $0.captured = 8; $0.released = 2 } }
        add(12) { $0.release = .with { $0.hold = committed; $0.released = 10 } }
        add(13) { $0.refund = .with { $0.hold = committed; $0.refunded = 1 } }
        add(36) { $0.charge = .with { $0.hold = committed; $0.charged = 8 } }
        add(14) { $0.estimate = .with { $0.total = 40; $0.affordable = true; $0.catalogVersion = "echo" } }
        add(15) { $0.balance = .with { $0.tenant = "echo"; $0.available = 1000; $0.granted = 1000 } }
        add(30) { $0.health = .with { $0.status = "serving"; $0.serverVersion = "echo" } }
        self.bodies = bodies
    }
}

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let replies: CannedReplies

    init(replies: CannedReplies) { self.replies = replies }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        // Request: field 1 (call_id, varint) then the call's field (length-delimited).
        var callID: UInt64 = 0
        var field: UInt64 = 0
        if frame.readInteger(as: UInt8.self) == 0x08, let id = frame.readVarint() {
            callID = id
            if let tag = frame.readVarint() { field = tag >> 3 }
        }
        let body = replies.bodies[field] ?? []
        var out = context.channel.allocator.buffer(capacity: 16 + body.count)
        out.writeInteger(UInt32(0))
        out.writeInteger(UInt8(0x08))
        out.writeVarint(callID)
        out.writeBytes(body)
        out.setInteger(UInt32(out.readableBytes - 4), at: out.readerIndex)
        context.write(wrapOutboundOut(out), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

extension ByteBuffer {
    mutating func readVarint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while shift < 64, let byte = readInteger(as: UInt8.self) {
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    mutating func writeVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            writeInteger(UInt8(rest & 0x7F | 0x80))
            rest >>= 7
        }
        writeInteger(UInt8(rest))
    }
}
