@testable import LedgerWire
import NIOCore
import SwiftProtobuf
import Testing

/// The metering calls' plain requests are read without SwiftProtobuf's decoder (RequestDecoder):
/// wherever it answers, it must answer what SwiftProtobuf decodes, and it must answer for every
/// plain request a client sends.
@Suite("Request decoder")
struct RequestDecoderTests {
    typealias Values = RandomWireValues

    /// Whether the fast path should read it: a call, and no priced items.
    static func isPlain(_ request: WireRequest) -> Bool {
        switch request.call {
        case .reserve(let message)?: if case .items? = message.amount { return false }
        case .charge(let message)?: if case .items? = message.amount { return false }
        case nil: return false
        default: break
        }
        return true
    }

    static func decoded(_ bytes: [UInt8]) -> (fast: WireRequest?, slow: WireRequest?) {
        (RequestDecoder.decode(ByteBuffer(bytes: bytes))?.request, try? WireRequest(serializedBytes: bytes))
    }

    @Test("every plain metering request reads as SwiftProtobuf reads it; priced items are left to SwiftProtobuf")
    func plainRequests() throws {
        var values = Values(seed: 11)
        var plain = 0
        for _ in 0..<20_000 {
            let request = values.request()
            let bytes: [UInt8] = try request.serializedBytes()
            let (fast, slow) = Self.decoded(bytes)
            try #require(slow == request)
            if Self.isPlain(request) {
                plain += 1
                try #require(fast == request, "\(request)")
            } else {
                #expect(fast == nil)
            }
        }
        #expect(plain > 15_000)
    }

    @Test("damaged frames: wherever the fast path answers, SwiftProtobuf decodes the same request")
    func damagedFrames() throws {
        var values = Values(seed: 12)
        var answered = 0
        var refused = 0
        for _ in 0..<40_000 {
            var bytes: [UInt8] = try values.request().serializedBytes()
            for _ in 0..<(1 + values.below(3)) {
                switch values.below(4) {
                case 0 where !bytes.isEmpty: bytes[values.below(bytes.count)] = UInt8(values.below(256))
                case 1 where !bytes.isEmpty: bytes.remove(at: values.below(bytes.count))
                case 2: bytes.insert(UInt8(values.below(256)), at: values.below(bytes.count + 1))
                default: bytes = Array(bytes.prefix(values.below(bytes.count + 1)))
                }
            }
            let (fast, slow) = Self.decoded(bytes)
            guard let fast else {
                refused += 1
                continue
            }
            answered += 1
            try #require(slow == fast, "\(bytes)")
            try #require(slow.map { !$0.containsUnknownFields } == true, "\(bytes)")
        }
        // Both kinds of outcome happen, so both sides were exercised.
        #expect(answered > 1_000 && refused > 1_000)
    }

    @Test("shapes the fast path leaves to SwiftProtobuf")
    func leftToSwiftProtobuf() throws {
        var reserve = WireRequest()
        reserve.callID = 7
        reserve.reserve = .with { $0.requestID = "r"; $0.tenant = "acme"; $0.holdID = "h"; $0.tokens = 5 }
        let bytes: [UInt8] = try reserve.serializedBytes()
        #expect(RequestDecoder.decode(ByteBuffer(bytes: bytes))?.request == reserve)
        // An unknown field inside the call (field 99, varint): SwiftProtobuf keeps it and the server
        // refuses the request.
        var unknown = reserve
        try unknown.reserve.merge(serializedBytes: [0x98, 0x06, 0x01] as [UInt8])
        let unknownBytes: [UInt8] = try unknown.serializedBytes()
        #expect(RequestDecoder.decode(ByteBuffer(bytes: unknownBytes)) == nil)
        #expect(try WireRequest(serializedBytes: unknownBytes).containsUnknownFields)
        // A field twice (SwiftProtobuf keeps the last), two calls, and invalid UTF-8.
        #expect(RequestDecoder.decode(ByteBuffer(bytes: bytes + [0x08, 0x09])) == nil)
        let commit: [UInt8] = try WireRequest.with { $0.commit = .with { $0.holdID = "h" } }.serializedBytes()
        #expect(RequestDecoder.decode(ByteBuffer(bytes: bytes + commit)) == nil)
        let badUTF8: [UInt8] = [0x52, 0x04, 0x12, 0x02, 0xC3, 0x28]  // reserve { tenant: C3 28 }
        #expect(RequestDecoder.decode(ByteBuffer(bytes: badUTF8)) == nil)
        #expect((try? WireRequest(serializedBytes: badUTF8)) == nil)
        // A request without a call (an empty frame): SwiftProtobuf's path refuses it.
        #expect(RequestDecoder.decode(ByteBuffer()) == nil)
        #expect(RequestDecoder.decode(ByteBuffer(bytes: [0x08, 0x07])) == nil)
    }
}

extension RandomWireValues {
    /// A request of a kind the fast path reads (some with fields it leaves to SwiftProtobuf).
    mutating func request() -> WireRequest {
        var request = WireRequest()
        request.callID = uint64()
        if below(4) == 0 { request.traceParent = "00-\(string())-01" }
        switch below(7) {
        case 0:
            request.reserve = .with {
                $0.requestID = string()
                $0.tenant = string()
                $0.holdID = string()
                $0.member = string()
                switch below(4) {
                case 0: break
                case 1: $0.items = .with { $0.items = [.with { $0.feature = "transcription"; $0.quantity = 3 }] }
                default: $0.tokens = uint64()  // 0 included: a oneof member is present when 0
                }
                $0.ttlMs = uint64()
            }
        case 1:
            request.commit = .with {
                $0.requestID = string()
                $0.tenant = string()
                $0.holdID = string()
                $0.amount = uint64()
                $0.partial = below(2) == 0
            }
        case 2:
            request.release = .with {
                $0.requestID = string()
                $0.tenant = string()
                $0.holdID = string()
            }
        case 3:
            request.refund = .with {
                $0.requestID = string()
                $0.tenant = string()
                $0.holdID = string()
                $0.amount = uint64()
            }
        case 4:
            request.balance = .with {
                $0.tenant = string()
                $0.member = string()
            }
        case 5:
            request.charge = .with {
                $0.requestID = string()
                $0.tenant = string()
                $0.holdID = string()
                $0.member = string()
                if below(4) == 0 { $0.items = .with { $0.items = [.with { $0.feature = "report"; $0.quantity = 1 }] } } else { $0.tokens = uint64() }
            }
        default:
            break  // no call
        }
        return request
    }
}
