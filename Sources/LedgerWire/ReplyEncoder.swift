import NIOCore
import SwiftProtobuf

// The replies of the metering calls (reserve, commit, charge, release, refund, extend and increase
// hold, and every error), encoded without SwiftProtobuf's visitors.
//
// Why: at peak SwiftProtobuf's `serializedBytes()` of these replies took 8% of ledgerd's CPU (a
// size pass and a write pass, each visiting every field through a generic visitor, and an array
// allocated and copied into the frame). This writes the same bytes straight into the frame's
// buffer: the sizes first (nested messages are length-prefixed), then the fields, in the order
// SwiftProtobuf writes them (field number order, the `error` case of `Response.result` between
// fields 2 and 4 as the generated `traverse` does). Tests hold the two encodings byte for byte
// equal over random replies (`ReplyEncoderTests`). Any other reply, or one carrying unknown fields,
// goes through SwiftProtobuf.

extension ByteBuffer {
    /// Appends `response` as one frame, its length then its bytes (``writeFrame(_:)`` for any
    /// message), writing the metering calls' replies without SwiftProtobuf's visitors.
    public mutating func writeFrame(_ response: WireResponse) throws {
        guard let sized = ReplyEncoder.size(of: response) else {
            // Any other reply: SwiftProtobuf's encoding (the generic `writeFrame`).
            let message: any SwiftProtobuf.Message = response
            return try writeFrame(message)
        }
        writeInteger(UInt32(sized.total), endianness: .big)
        writeWithUnsafeMutableBytes(minimumWritableBytes: sized.total) { raw in
            var out = ProtoOut(raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
            ReplyEncoder.write(response, sized, to: &out)
            precondition(out.count == sized.total, "reply encoded to \(out.count) bytes, sized \(sized.total)")
            return sized.total
        }
    }
}

/// Sizes and writes the replies the fast path covers.
enum ReplyEncoder {
    /// A reply the fast path covers, with the sizes its write needs (each computed once).
    struct Sized {
        /// The whole reply's encoded size.
        var total: Int
        /// The result's encoded size (after its tag and length); 0 without a result.
        var result = 0
        /// The result's hold's encoded size, when it has one.
        var hold: Int?
    }

    /// The encoded sizes of `response`, or nil when the fast path does not cover it.
    static func size(of response: WireResponse) -> Sized? {
        guard response.unknownFields.data.isEmpty else { return nil }
        var sized = Sized(total: ProtoSize.uint64(response.callID) + ProtoSize.bool(response.replayed) + ProtoSize.uint64(response.lsn))
        var tagSize = 1
        switch response.result {
        case nil:
            return sized
        case .error(let error)?:
            guard let body = size(of: error) else { return nil }
            sized.result = body
        case .reserve(let result)?:
            guard result.unknownFields.data.isEmpty, sized.sizeHold(result.hasHold ? result.hold : nil) else { return nil }
        case .commit(let result)?:
            guard result.unknownFields.data.isEmpty, sized.sizeHold(result.hasHold ? result.hold : nil) else { return nil }
            sized.result += ProtoSize.uint64(result.captured) + ProtoSize.uint64(result.released)
        case .release(let result)?:
            guard result.unknownFields.data.isEmpty, sized.sizeHold(result.hasHold ? result.hold : nil) else { return nil }
            sized.result += ProtoSize.uint64(result.released)
        case .refund(let result)?:
            guard result.unknownFields.data.isEmpty, sized.sizeHold(result.hasHold ? result.hold : nil) else { return nil }
            sized.result += ProtoSize.uint64(result.refunded) + ProtoSize.uint64(result.newGrantID)
        case .charge(let result)?:
            guard result.unknownFields.data.isEmpty, sized.sizeHold(result.hasHold ? result.hold : nil) else { return nil }
            sized.result += ProtoSize.uint64(result.charged)
            tagSize = 2
        case .extendHold(let result)?:
            guard result.unknownFields.data.isEmpty, sized.sizeHold(result.hasHold ? result.hold : nil) else { return nil }
            tagSize = 2
        case .increaseHold(let result)?:
            guard result.unknownFields.data.isEmpty, sized.sizeHold(result.hasHold ? result.hold : nil) else { return nil }
            sized.result += ProtoSize.uint64(result.increased)
            tagSize = 2
        default:
            return nil
        }
        // Fields 3 and 10-13 have one-byte tags, 36-38 two-byte ones.
        sized.total += tagSize + ProtoSize.message(sized.result)
        return sized
    }

    static func size(of hold: Tokenledger_V1_Hold) -> Int? {
        guard hold.unknownFields.data.isEmpty else { return nil }
        var total = ProtoSize.string(hold.id) + ProtoSize.string(hold.member) + ProtoSize.enumeration(hold.state.rawValue)
        total += ProtoSize.uint64(hold.amount) + ProtoSize.uint64(hold.held) + ProtoSize.uint64(hold.captured)
        total += ProtoSize.uint64(hold.overdraftCaptured) + ProtoSize.uint64(hold.refunded)
        total += ProtoSize.int64(hold.createdAtMs) + ProtoSize.int64(hold.expiresAtMs) + ProtoSize.int64(hold.resolvedAtMs)
        total += ProtoSize.string(hold.catalogVersion)
        for item in hold.items {
            guard item.unknownFields.data.isEmpty else { return nil }
            total += 1 + ProtoSize.message(size(of: item))
        }
        for allocation in hold.allocations {
            guard allocation.unknownFields.data.isEmpty else { return nil }
            total += 1 + ProtoSize.message(size(of: allocation))
        }
        for capture in hold.captures {
            guard capture.unknownFields.data.isEmpty else { return nil }
            total += 1 + ProtoSize.message(size(of: capture))
        }
        return total
    }

    private static func size(of item: Tokenledger_V1_PricedItem) -> Int {
        ProtoSize.string(item.feature) + ProtoSize.uint64(item.quantity)
    }

    private static func size(of allocation: Tokenledger_V1_Allocation) -> Int {
        ProtoSize.uint64(allocation.grantID) + ProtoSize.uint64(allocation.amount)
    }

    static func size(of error: WireError) -> Int? {
        guard error.unknownFields.data.isEmpty else { return nil }
        var total = ProtoSize.enumeration(error.code.rawValue) + ProtoSize.string(error.message)
        switch error.details {
        case nil:
            break
        case .budget(let details)?:
            guard details.unknownFields.data.isEmpty else { return nil }
            total += 1 + ProtoSize.message(ProtoSize.uint64(details.remaining) + ProtoSize.uint64(details.cap) + ProtoSize.int64(details.resetsAtMs))
        case .plan(let details)?:
            guard details.unknownFields.data.isEmpty else { return nil }
            total += 1 + ProtoSize.message(ProtoSize.uint64(details.remaining) + ProtoSize.uint64(details.limit) + ProtoSize.int64(details.resetsAtMs))
        case .balance(let details)?:
            guard details.unknownFields.data.isEmpty else { return nil }
            total += 1 + ProtoSize.message(ProtoSize.uint64(details.available) + ProtoSize.uint64(details.requested))
        case .limit(let details)?:
            guard details.unknownFields.data.isEmpty else { return nil }
            total += 1 + ProtoSize.message(ProtoSize.string(details.name) + ProtoSize.uint64(details.value))
        case .owner(let details)?:
            guard details.unknownFields.data.isEmpty else { return nil }
            total += 1 + ProtoSize.message(ProtoSize.uint64(UInt64(details.shard)) + ProtoSize.string(details.address) + ProtoSize.uint64(details.epoch))
        case .quota(let quota)?:
            guard quota.unknownFields.data.isEmpty else { return nil }
            total += 1 + ProtoSize.message(quotaSize(quota))
        }
        return total
    }

    private static func quotaSize(_ quota: Tokenledger_V1_Quota) -> Int {
        ProtoSize.string(quota.feature) + ProtoSize.uint64(quota.used) + ProtoSize.uint64(quota.limit)
            + ProtoSize.int64(quota.resetsAtMs) + ProtoSize.uint64(quota.requested)
    }

    /// Writes a response that ``size(of:)`` sized, with those sizes.
    static func write(_ response: WireResponse, _ sized: Sized, to out: inout ProtoOut) {
        out.uint64(1, response.callID)
        out.bool(2, response.replayed)
        if case .error(let error)? = response.result {
            out.messageHeader(3, sized.result)
            write(error, to: &out)
        }
        out.uint64(4, response.lsn)
        switch response.result {
        case nil, .error?:
            break
        case .reserve(let result)?:
            out.messageHeader(10, sized.result)
            writeHold(result.hold, sized, to: &out)
        case .commit(let result)?:
            out.messageHeader(11, sized.result)
            writeHold(result.hold, sized, to: &out)
            out.uint64(2, result.captured)
            out.uint64(3, result.released)
        case .release(let result)?:
            out.messageHeader(12, sized.result)
            writeHold(result.hold, sized, to: &out)
            out.uint64(2, result.released)
        case .refund(let result)?:
            out.messageHeader(13, sized.result)
            writeHold(result.hold, sized, to: &out)
            out.uint64(2, result.refunded)
            out.uint64(3, result.newGrantID)
        case .charge(let result)?:
            out.messageHeader(36, sized.result)
            writeHold(result.hold, sized, to: &out)
            out.uint64(2, result.charged)
        case .extendHold(let result)?:
            out.messageHeader(37, sized.result)
            writeHold(result.hold, sized, to: &out)
        case .increaseHold(let result)?:
            out.messageHeader(38, sized.result)
            writeHold(result.hold, sized, to: &out)
            out.uint64(2, result.increased)
        default:
            preconditionFailure("not sized by ReplyEncoder.size(of:)")
        }
    }

    /// A result's field 1, the hold, when it has one (``Sized/hold``).
    private static func writeHold(_ hold: @autoclosure () -> Tokenledger_V1_Hold, _ sized: Sized, to out: inout ProtoOut) {
        guard let holdSize = sized.hold else { return }
        let hold = hold()
        out.messageHeader(1, holdSize)
        out.string(1, hold.id)
        out.string(2, hold.member)
        out.enumeration(3, hold.state.rawValue)
        out.uint64(4, hold.amount)
        out.uint64(5, hold.held)
        out.uint64(6, hold.captured)
        out.uint64(7, hold.overdraftCaptured)
        out.uint64(8, hold.refunded)
        out.int64(9, hold.createdAtMs)
        out.int64(10, hold.expiresAtMs)
        out.int64(11, hold.resolvedAtMs)
        out.string(12, hold.catalogVersion)
        for item in hold.items {
            out.messageHeader(13, size(of: item))
            out.string(1, item.feature)
            out.uint64(2, item.quantity)
        }
        write(hold.allocations, field: 14, to: &out)
        write(hold.captures, field: 15, to: &out)
    }

    private static func write(_ allocations: [Tokenledger_V1_Allocation], field: Int, to out: inout ProtoOut) {
        for allocation in allocations {
            out.messageHeader(field, size(of: allocation))
            out.uint64(1, allocation.grantID)
            out.uint64(2, allocation.amount)
        }
    }

    private static func write(_ error: WireError, to out: inout ProtoOut) {
        out.enumeration(1, error.code.rawValue)
        out.string(2, error.message)
        switch error.details {
        case nil:
            break
        case .budget(let details)?:
            out.messageHeader(3, ProtoSize.uint64(details.remaining) + ProtoSize.uint64(details.cap) + ProtoSize.int64(details.resetsAtMs))
            out.uint64(1, details.remaining)
            out.uint64(2, details.cap)
            out.int64(3, details.resetsAtMs)
        case .plan(let details)?:
            out.messageHeader(4, ProtoSize.uint64(details.remaining) + ProtoSize.uint64(details.limit) + ProtoSize.int64(details.resetsAtMs))
            out.uint64(1, details.remaining)
            out.uint64(2, details.limit)
            out.int64(3, details.resetsAtMs)
        case .balance(let details)?:
            out.messageHeader(5, ProtoSize.uint64(details.available) + ProtoSize.uint64(details.requested))
            out.uint64(1, details.available)
            out.uint64(2, details.requested)
        case .limit(let details)?:
            out.messageHeader(6, ProtoSize.string(details.name) + ProtoSize.uint64(details.value))
            out.string(1, details.name)
            out.uint64(2, details.value)
        case .owner(let details)?:
            out.messageHeader(7, ProtoSize.uint64(UInt64(details.shard)) + ProtoSize.string(details.address) + ProtoSize.uint64(details.epoch))
            out.uint64(1, UInt64(details.shard))
            out.string(2, details.address)
            out.uint64(3, details.epoch)
        case .quota(let quota)?:
            out.messageHeader(8, quotaSize(quota))
            out.string(1, quota.feature)
            out.uint64(2, quota.used)
            out.uint64(3, quota.limit)
            out.int64(4, quota.resetsAtMs)
            out.uint64(5, quota.requested)
        }
    }
}

extension ReplyEncoder.Sized {
    /// Counts a result's hold (field 1) when it has one; false when the hold carries unknown fields.
    fileprivate mutating func sizeHold(_ hold: Tokenledger_V1_Hold?) -> Bool {
        guard let hold else { return true }
        guard let body = ReplyEncoder.size(of: hold) else { return false }
        self.hold = body
        result += 1 + ProtoSize.message(body)
        return true
    }
}

/// Encoded sizes of proto3 fields as SwiftProtobuf writes them (a default value is left out).
/// Every field number the fast path writes is below 16, so a field's tag is one byte, except the
/// `Response.result` cases from 16 on, whose two-byte tags the callers count themselves.
enum ProtoSize {
    @inline(__always)
    static func varint(_ value: UInt64) -> Int { value < 0x80 ? 1 : (70 - value.leadingZeroBitCount) / 7 }

    @inline(__always)
    static func uint64(_ value: UInt64) -> Int { value == 0 ? 0 : 1 + varint(value) }

    /// An int64 or a (negative) enum is its 64-bit two's complement, ten bytes when negative.
    @inline(__always)
    static func int64(_ value: Int64) -> Int { value == 0 ? 0 : 1 + varint(UInt64(bitPattern: value)) }

    @inline(__always)
    static func enumeration(_ raw: Int) -> Int { int64(Int64(raw)) }

    @inline(__always)
    static func bool(_ value: Bool) -> Int { value ? 2 : 0 }

    @inline(__always)
    static func string(_ value: String) -> Int {
        let count = value.utf8.count
        return count == 0 ? 0 : 1 + varint(UInt64(count)) + count
    }

    /// A nested message of `size` bytes after its tag: its length, then its bytes.
    @inline(__always)
    static func message(_ size: Int) -> Int { varint(UInt64(size)) + size }
}

/// Writes proto3 fields to memory sized beforehand with ``ProtoSize``.
struct ProtoOut {
    private let base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0

    init(_ base: UnsafeMutablePointer<UInt8>) { self.base = base }

    @inline(__always)
    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            base[count] = UInt8(truncatingIfNeeded: value) | 0x80
            count += 1
            value >>= 7
        }
        base[count] = UInt8(value)
        count += 1
    }

    @inline(__always)
    private mutating func tag(_ field: Int, _ wireType: Int) { varint(UInt64(field << 3 | wireType)) }

    mutating func uint64(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, 0)
        varint(value)
    }

    mutating func int64(_ field: Int, _ value: Int64) {
        guard value != 0 else { return }
        tag(field, 0)
        varint(UInt64(bitPattern: value))
    }

    mutating func enumeration(_ field: Int, _ raw: Int) { int64(field, Int64(raw)) }

    mutating func bool(_ field: Int, _ value: Bool) {
        guard value else { return }
        tag(field, 0)
        varint(1)
    }

    mutating func string(_ field: Int, _ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            guard !utf8.isEmpty else { return }
            tag(field, 2)
            varint(UInt64(utf8.count))
            (base + count).update(from: utf8.baseAddress!, count: utf8.count)
            count += utf8.count
        }
    }

    /// A nested message's tag and length; its fields follow.
    mutating func messageHeader(_ field: Int, _ size: Int) {
        tag(field, 2)
        varint(UInt64(size))
    }
}
