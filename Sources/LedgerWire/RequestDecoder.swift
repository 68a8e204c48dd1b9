import LedgerCore
import NIOCore
import SwiftProtobuf

// The requests of the metering calls (reserve and charge by tokens, commit, release, refund,
// balance), read from a frame without SwiftProtobuf's decoder.
//
// Why: at peak SwiftProtobuf's `merge(serializedBytes:)` of a request and the walk that looks for
// unknown fields took 5-6% of ledgerd's CPU. This reads the plain shapes those calls take: the
// request's call id and trace parent, one call, and in it only the fields the schema gives it, each
// once, with the wire type the schema gives it, strings valid UTF-8. Anything else (another call,
// an unknown field, a field twice, priced items, a malformed varint or length, bad UTF-8) returns
// nil and the frame goes through SwiftProtobuf as before, which decodes it or says what is wrong.
// So the fast path never decides an error, and where it answers, it answers what SwiftProtobuf
// would (`RequestDecoderTests`: random requests and random damage, both decoders compared).
//
// It reads into the call's own message (a plain struct) and leaves out the request envelope, whose
// oneof SwiftProtobuf keeps in a heap-allocated storage class that every read of the call copies
// out of; and identifiers (ASCII by the identifier rule) become strings without the generic UTF-8
// validation.
public enum RequestDecoder {
    /// A plain request as read: the envelope's fields and its call.
    public struct Plain: Sendable {
        public var callID: UInt64 = 0
        public var traceParent = ""
        public var call: WireRequest.OneOf_Call

        /// The envelope SwiftProtobuf would have read.
        public var request: WireRequest {
            var request = WireRequest()
            request.callID = callID
            request.traceParent = traceParent
            request.call = call
            return request
        }

        public var rpcName: String { WireRequest.rpcName(of: call) }
    }

    /// The request in `frame` when it is one of the plain shapes above, with no unknown field;
    /// nil otherwise (a frame without a call too: SwiftProtobuf's path says what is wrong).
    public static func decode(_ frame: ByteBuffer) -> Plain? {
        frame.withUnsafeReadableBytes { raw in
            var input = ProtoIn(raw)
            return request(&input)
        }
    }

    private static func request(_ input: inout ProtoIn) -> Plain? {
        var callID: UInt64 = 0
        var traceParent = ""
        var call: WireRequest.OneOf_Call?
        // Whether `call` is set, kept apart: comparing `call` with nil copied it.
        var hasCall = false
        let read = fields(&input) { field, wireType, input in
            switch (field, wireType) {
            case (1, 0): return input.read(&callID)
            case (2, 2): return input.read(&traceParent)
            case (10, 2), (11, 2), (12, 2), (13, 2), (15, 2), (36, 2):
                guard !hasCall, var body = input.nested() else { return false }
                hasCall = true
                // Each message moved into the call (`Optional.map`'s closure borrows its value, and
                // wrapping it copied the message).
                switch field {
                case 10: guard let message = message(&body, reserveField) else { return false }; call = .reserve(message)
                case 11: guard let message = message(&body, commitField) else { return false }; call = .commit(message)
                case 12: guard let message = message(&body, releaseField) else { return false }; call = .release(message)
                case 13: guard let message = message(&body, refundField) else { return false }; call = .refund(message)
                case 15: guard let message = message(&body, balanceField) else { return false }; call = .balance(message)
                default: guard let message = message(&body, chargeField) else { return false }; call = .charge(message)
                }
                return true
            default: return false
            }
        }
        guard read, let call = call.take() else { return nil }
        return Plain(callID: callID, traceParent: traceParent, call: call)
    }

    /// Reads every field of a message with `read`, which returns false for a field the fast path
    /// does not take or cannot read; false when it did, or a field came twice or was malformed.
    private static func fields(_ input: inout ProtoIn, _ read: (_ field: Int, _ wireType: Int, _ input: inout ProtoIn) -> Bool) -> Bool {
        var seen = FieldSet()
        while !input.isAtEnd {
            guard let (field, wireType) = input.tag(), seen.insert(field), read(field, wireType, &input) else { return false }
        }
        return true
    }

    /// Reads a call's message with `field` (one of the functions below).
    private static func message<M: SwiftProtobuf.Message>(
        _ input: inout ProtoIn, _ field: (_ field: Int, _ wireType: Int, _ input: inout ProtoIn, _ message: inout M) -> Bool
    ) -> M? {
        var message = M()
        guard fields(&input, { number, wireType, input in field(number, wireType, &input, &message) }) else { return nil }
        return message
    }

    private static func reserveField(_ field: Int, _ wireType: Int, _ input: inout ProtoIn, _ message: inout Tokenledger_V1_ReserveRequest) -> Bool {
        switch (field, wireType) {
        case (1, 2): return input.read(&message.requestID)
        case (2, 2): return input.read(&message.tenant)
        case (3, 2): return input.read(&message.holdID)
        case (4, 2): return input.read(&message.member)
        case (5, 0): return input.read(&message.tokens)  // a oneof member: present even when 0
        case (7, 0): return input.read(&message.ttlMs)
        default: return false
        }
    }

    private static func chargeField(_ field: Int, _ wireType: Int, _ input: inout ProtoIn, _ message: inout Tokenledger_V1_ChargeRequest) -> Bool {
        switch (field, wireType) {
        case (1, 2): return input.read(&message.requestID)
        case (2, 2): return input.read(&message.tenant)
        case (3, 2): return input.read(&message.holdID)
        case (4, 2): return input.read(&message.member)
        case (5, 0): return input.read(&message.tokens)
        default: return false
        }
    }

    private static func commitField(_ field: Int, _ wireType: Int, _ input: inout ProtoIn, _ message: inout Tokenledger_V1_CommitRequest) -> Bool {
        switch (field, wireType) {
        case (1, 2): return input.read(&message.requestID)
        case (2, 2): return input.read(&message.tenant)
        case (3, 2): return input.read(&message.holdID)
        case (4, 0): return input.read(&message.amount)
        case (5, 0): return input.read(&message.partial)
        default: return false
        }
    }

    private static func releaseField(_ field: Int, _ wireType: Int, _ input: inout ProtoIn, _ message: inout Tokenledger_V1_ReleaseRequest) -> Bool {
        switch (field, wireType) {
        case (1, 2): return input.read(&message.requestID)
        case (2, 2): return input.read(&message.tenant)
        case (3, 2): return input.read(&message.holdID)
        default: return false
        }
    }

    private static func refundField(_ field: Int, _ wireType: Int, _ input: inout ProtoIn, _ message: inout Tokenledger_V1_RefundRequest) -> Bool {
        switch (field, wireType) {
        case (1, 2): return input.read(&message.requestID)
        case (2, 2): return input.read(&message.tenant)
        case (3, 2): return input.read(&message.holdID)
        case (4, 0): return input.read(&message.amount)
        default: return false
        }
    }

    private static func balanceField(_ field: Int, _ wireType: Int, _ input: inout ProtoIn, _ message: inout Tokenledger_V1_BalanceRequest) -> Bool {
        switch (field, wireType) {
        case (1, 2): return input.read(&message.tenant)
        case (2, 2): return input.read(&message.member)
        default: return false
        }
    }
}

/// Field numbers seen so far in one message (all the fast path reads are below 64).
private struct FieldSet {
    private var bits: UInt64 = 0

    /// Notes `field`; false when it was seen already or is not below 64.
    mutating func insert(_ field: Int) -> Bool {
        guard field < 64 else { return false }
        let bit: UInt64 = 1 << UInt64(field)
        guard bits & bit == 0 else { return false }
        bits |= bit
        return true
    }
}

/// Reads proto3 wire format from memory; every method returns nil on bytes it does not accept.
struct ProtoIn {
    private let bytes: UnsafeRawBufferPointer
    private var offset: Int
    private let end: Int

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        offset = 0
        end = bytes.count
    }

    private init(_ bytes: UnsafeRawBufferPointer, from offset: Int, to end: Int) {
        self.bytes = bytes
        self.offset = offset
        self.end = end
    }

    var isAtEnd: Bool { offset >= end }

    /// A varint of at most ten bytes whose value fits 64 bits.
    mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while offset < end {
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 { return nil }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
            if shift > 63 { return nil }
        }
        return nil
    }

    /// A field's number (1 or more) and wire type.
    mutating func tag() -> (Int, Int)? {
        guard let key = varint(), key <= UInt64(UInt32.max), key >> 3 != 0 else { return nil }
        return (Int(key >> 3), Int(key & 7))
    }

    /// The bytes of a length-delimited field, as a reader of their own.
    mutating func nested() -> ProtoIn? {
        guard let length = varint(), length <= UInt64(end - offset) else { return nil }
        let start = offset
        offset += Int(length)
        return ProtoIn(bytes, from: start, to: offset)
    }

    /// Reads a uint64 field into `target`; false when malformed.
    mutating func read(_ target: inout UInt64) -> Bool {
        guard let value = varint() else { return false }
        target = value
        return true
    }

    /// Reads a bool field (any varint other than 0 is true, as SwiftProtobuf reads it).
    mutating func read(_ target: inout Bool) -> Bool {
        guard let value = varint() else { return false }
        target = value != 0
        return true
    }

    /// Reads a string field into `target`; false when malformed or not UTF-8.
    mutating func read(_ target: inout String) -> Bool {
        guard let value = string() else { return false }
        target = value
        return true
    }

    /// A length-delimited field as a string, when it is valid UTF-8.
    mutating func string() -> String? {
        guard let length = varint(), length <= UInt64(end - offset) else { return nil }
        let start = offset
        offset += Int(length)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<offset]).withMemoryRebound(to: UInt8.self, String.init(validatingUTF8:))
    }
}
