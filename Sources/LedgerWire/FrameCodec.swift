// The frame codec. Every message on a TokenLedger connection, in both directions, is one frame:
//
//   0                   1                   2                   3
//   +-------+-------+-------+-------+-------------------------------------+
//   |    length (u32, big-endian)   |  protobuf message: `length` bytes  |
//   +-------+-------+-------+-------+-------------------------------------+
//
// Invariants:
// - A length of zero or above `frameSizeMax` is refused as soon as the four length bytes are in:
//   no body byte is waited for or buffered beyond what the peer already sent.
// - A frame is handed on only when all its bytes are in; frames are handed on in order.
import NIOCore
import SwiftProtobuf

/// Why a byte stream is not a valid sequence of frames. The server answers with an error reply and
/// closes the connection: after a bad length the stream cannot be resynchronised.
public enum FrameError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The length field was zero: no message is empty on this protocol.
    case emptyFrame
    /// The length field exceeded the connection's frame size limit.
    case frameTooLarge(length: UInt32, frameSizeMax: Int)
    /// The stream ended inside a frame.
    case truncated(bufferedBytes: Int)

    public var description: String {
        switch self {
        case .emptyFrame: return "a frame of length 0"
        case .frameTooLarge(let length, let max): return "a frame of \(length) bytes, above the limit of \(max)"
        case .truncated(let bytes): return "the stream ended inside a frame (\(bytes) bytes buffered)"
        }
    }
}

/// Splits a byte stream into frames (the protobuf bytes of each message, without the length).
public struct FrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = ByteBuffer

    /// The largest message accepted, in bytes (the length field's value).
    public let frameSizeMax: Int

    public init(frameSizeMax: Int) {
        precondition(frameSizeMax > 0 && frameSizeMax <= Int(UInt32.max), "frameSizeMax out of range")
        self.frameSizeMax = frameSizeMax
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try nextFrame(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        if let frame = try nextFrame(&buffer) {
            context.fireChannelRead(Self.wrapInboundOut(frame))
            return .continue
        }
        if buffer.readableBytes > 0 {
            let bytes = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: bytes)
            throw FrameError.truncated(bufferedBytes: bytes)
        }
        return .needMoreData
    }

    /// The next complete frame, nil when more bytes are needed, or an error for a bad length.
    /// Exposed for tests and for clients that read without a channel pipeline.
    public func nextFrame(_ buffer: inout ByteBuffer) throws(FrameError) -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return nil
        }
        if length == 0 {
            buffer.moveReaderIndex(forwardBy: 4)
            throw .emptyFrame
        }
        if Int(length) > frameSizeMax { throw .frameTooLarge(length: length, frameSizeMax: frameSizeMax) }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }
}

extension ByteBuffer {
    /// Appends `message` as one frame: its length, then its bytes.
    public mutating func writeFrame(_ message: some SwiftProtobuf.Message) throws {
        let bytes: [UInt8] = try message.serializedBytes()
        writeInteger(UInt32(bytes.count), endianness: .big)
        writeBytes(bytes)
    }
}

extension SwiftProtobuf.Message {
    /// Decodes a message from a frame's bytes.
    public init(frame: ByteBuffer) throws {
        self.init()
        try merge(serializedBytes: Array(frame.readableBytesView))
    }
}
