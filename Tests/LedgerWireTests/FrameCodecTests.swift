import LedgerWire
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@Suite("Frame codec")
struct FrameCodecTests {
    static func frame(_ body: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(body.count), endianness: .big)
        buffer.writeBytes(body)
        return buffer
    }

    @Test("drip-fed and coalesced input give the same frames")
    func verifier() throws {
        let bodies: [[UInt8]] = [[1], Array(repeating: 7, count: 300), [0, 1, 2, 3, 4], Array(0..<255)]
        let pairs = bodies.map { (Self.frame($0), [ByteBuffer(bytes: $0)]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder(frameSizeMax: 1024) }
    }

    @Test("a length above the limit is refused with no body sent at all")
    func oversizedHeaderOnly() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(frameSizeMax: 1024)))
        var header = ByteBuffer()
        header.writeInteger(UInt32(1025), endianness: .big)
        #expect(throws: FrameError.frameTooLarge(length: 1025, frameSizeMax: 1024)) {
            try channel.writeInbound(header)
        }
        _ = try? channel.finish()
    }

    @Test("a length of exactly the limit is accepted")
    func atLimit() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(frameSizeMax: 16)))
        try channel.writeInbound(Self.frame(Array(repeating: 9, count: 16)))
        let frame = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(frame.readableBytes == 16)
        #expect(try channel.finish().isClean)
    }

    @Test("a zero length is refused")
    func zeroLength() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(frameSizeMax: 1024)))
        #expect(throws: FrameError.emptyFrame) { try channel.writeInbound(Self.frame([])) }
        _ = try? channel.finish()
    }

    @Test("a stream that ends inside a frame is an error; one that ends between frames is clean")
    func truncated() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(frameSizeMax: 1024)))
        var partial = Self.frame([1, 2, 3, 4])
        partial.moveWriterIndex(to: partial.writerIndex - 1)
        try channel.writeInbound(partial)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        #expect(throws: FrameError.truncated(bufferedBytes: 7)) { _ = try channel.finish() }

        let clean = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(frameSizeMax: 1024)))
        try clean.writeInbound(Self.frame([5]))
        #expect(try clean.readInbound(as: ByteBuffer.self) == ByteBuffer(bytes: [5]))
        #expect(try clean.finish().isClean)
    }

    @Test("writeFrame and init(frame:) round-trip a message")
    func messageRoundTrip() throws {
        let request = WireRequest.with {
            $0.callID = 42
            $0.balance = .with { $0.tenant = "acme" }
        }
        var buffer = ByteBuffer()
        try buffer.writeFrame(request)
        let frame = try #require(try FrameDecoder(frameSizeMax: 1024).nextFrame(&buffer))
        #expect(try WireRequest(frame: frame) == request)
        #expect(buffer.readableBytes == 0)
    }
}
