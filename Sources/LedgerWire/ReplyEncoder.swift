import LedgerCore
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
//
// A command's successful result (``CallReply/command(callID:_:)``) is written from the ledger's
// own values, without the `Response` message: `MeteringResult` and `HoldWireFields` read the
// message and the ledger's `Hold` alike, so the one encoder below writes both, and the tests hold
// the ledger's results written this way equal to their messages' SwiftProtobuf encoding.

extension ByteBuffer {
    /// Appends `response` as one frame, its length then its bytes (``writeFrame(_:)`` for any
    /// message), writing the metering calls' replies without SwiftProtobuf's visitors.
    public mutating func writeFrame(_ response: WireResponse) throws {
        guard let sized = ReplyEncoder.size(of: response) else {
            // Any other reply: SwiftProtobuf's encoding (the generic `writeFrame`).
            let message: any SwiftProtobuf.Message = response
            return try writeFrame(message)
        }
        writeEncodedFrame(sized.total) { ReplyEncoder.write(response, sized, to: &$0) }
    }

    /// Appends `reply` as one frame: a command's metering result written straight from the ledger's
    /// values, anything else as its message is written.
    public mutating func writeFrame(_ reply: CallReply) throws {
        guard case .command(let callID, let result) = reply else { return try writeFrame(reply.response) }
        let envelope = Envelope(callID: callID, replayed: result.replayed, lsn: result.lsn)
        let written = MeteringResult.with(result.outcome) { metering in
            var sized = ReplyEncoder.Sized(total: envelope.size)
            guard ReplyEncoder.size(metering, into: &sized) else { return false }
            writeEncodedFrame(sized.total) { out in
                envelope.writeHead(to: &out)
                envelope.writeLSN(to: &out)
                ReplyEncoder.write(metering, sized, to: &out)
            }
            return true
        }
        if written != true { try writeFrame(reply.response) }
    }

    /// A frame of `size` bytes that `write` writes.
    private mutating func writeEncodedFrame(_ size: Int, _ write: (inout ProtoOut) -> Void) {
        writeInteger(UInt32(size), endianness: .big)
        writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            var out = ProtoOut(raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
            write(&out)
            precondition(out.count == size, "reply encoded to \(out.count) bytes, sized \(size)")
            return size
        }
    }
}

/// `Response`'s own fields, which every reply has: call id (1), replayed (2), lsn (4).
private struct Envelope {
    var callID: UInt64
    var replayed: Bool
    var lsn: UInt64

    var size: Int { ProtoSize.uint64(callID) + ProtoSize.bool(replayed) + ProtoSize.uint64(lsn) }

    init(callID: UInt64, replayed: Bool, lsn: UInt64) {
        self.callID = callID
        self.replayed = replayed
        self.lsn = lsn
    }

    init(_ response: WireResponse) { self.init(callID: response.callID, replayed: response.replayed, lsn: response.lsn) }

    /// Fields 1 and 2; an error (field 3) goes between them and ``writeLSN(to:)``.
    func writeHead(to out: inout ProtoOut) {
        out.uint64(1, callID)
        out.bool(2, replayed)
    }

    func writeLSN(to out: inout ProtoOut) { out.uint64(4, lsn) }
}

/// A metering call's result as the wire carries it: `Response.result`'s case `field`, whose message
/// is the hold (its field 1) and the uint64 fields 2 and 3 (0: absent, as proto3 writes them).
/// Read alike from SwiftProtobuf's message and from the ledger's outcome.
struct MeteringResult<Hold: HoldWireFields> {
    var field: Int
    var hold: Hold?
    var second: UInt64 = 0
    var third: UInt64 = 0
}

extension MeteringResult where Hold == DomainHold {
    /// `body`'s answer for the result of a metering command's outcome, nil for the other outcomes.
    /// The hold is lent to `body` (``DomainHold``), not copied: copying a `Hold` retained every
    /// reference in it and destroying the copy released them again, and passing the outcome to an
    /// initializer (which takes it owned) copied all of it first. `body` must not keep the result.
    static func with<R>(_ outcome: Result<CommandOutcome, LedgerError>, _ body: (Self) -> R) -> R? {
        guard case .success(let outcome) = outcome else { return nil }
        func lend(_ field: Int, _ hold: LedgerCore.Hold, _ second: UInt64 = 0, _ third: UInt64 = 0) -> R {
            withUnsafePointer(to: hold) { body(Self(field: field, hold: DomainHold($0), second: second, third: third)) }
        }
        switch outcome {
        case .reserved(let hold): return lend(10, hold)
        case .committed(let hold, let captured, let released): return lend(11, hold, captured, released)
        case .released(let hold, let released): return lend(12, hold, released)
        case .refunded(let hold, let refunded, let newGrant): return lend(13, hold, refunded, newGrant?.rawValue ?? 0)
        case .charged(let hold, let charged): return lend(36, hold, charged)
        case .holdExtended(let hold): return lend(37, hold)
        case .holdIncreased(let hold, let increased): return lend(38, hold, increased)
        default: return nil
        }
    }
}

extension MeteringResult where Hold == Tokenledger_V1_Hold {
    /// The result of a response's metering case; nil for the other cases, or when a result message
    /// carries unknown fields.
    init?(_ result: WireResponse.OneOf_Result?) {
        func hold(_ message: some HasWireHold) -> Tokenledger_V1_Hold? { message.hasHold ? message.hold : nil }
        switch result {
        case .reserve(let result)? where result.unknownFields.data.isEmpty: self.init(field: 10, hold: hold(result))
        case .commit(let result)? where result.unknownFields.data.isEmpty:
            self.init(field: 11, hold: hold(result), second: result.captured, third: result.released)
        case .release(let result)? where result.unknownFields.data.isEmpty: self.init(field: 12, hold: hold(result), second: result.released)
        case .refund(let result)? where result.unknownFields.data.isEmpty:
            self.init(field: 13, hold: hold(result), second: result.refunded, third: result.newGrantID)
        case .charge(let result)? where result.unknownFields.data.isEmpty: self.init(field: 36, hold: hold(result), second: result.charged)
        case .extendHold(let result)? where result.unknownFields.data.isEmpty: self.init(field: 37, hold: hold(result))
        case .increaseHold(let result)? where result.unknownFields.data.isEmpty:
            self.init(field: 38, hold: hold(result), second: result.increased)
        default: return nil
        }
    }
}

/// The result messages that carry a hold.
protocol HasWireHold {
    var hasHold: Bool { get }
    var hold: Tokenledger_V1_Hold { get }
}

extension Tokenledger_V1_ReserveResult: HasWireHold {}
extension Tokenledger_V1_CommitResult: HasWireHold {}
extension Tokenledger_V1_ReleaseResult: HasWireHold {}
extension Tokenledger_V1_RefundResult: HasWireHold {}
extension Tokenledger_V1_ChargeResult: HasWireHold {}
extension Tokenledger_V1_ExtendHoldResult: HasWireHold {}
extension Tokenledger_V1_IncreaseHoldResult: HasWireHold {}

/// A hold's fields as `Hold` on the wire has them, read from SwiftProtobuf's message or from the
/// ledger's `Hold` (``DomainHold``) alike, so that one encoder writes both.
protocol HoldWireFields {
    /// False when the hold carries what the fast path does not write (unknown fields).
    var isPlain: Bool { get }
    var id: String { get }
    var member: String { get }
    var stateNumber: Int { get }
    var amount: UInt64 { get }
    var held: UInt64 { get }
    var captured: UInt64 { get }
    var overdraftCaptured: UInt64 { get }
    var refunded: UInt64 { get }
    var createdAtMs: Int64 { get }
    var expiresAtMs: Int64 { get }
    var resolvedAtMs: Int64 { get }
    var catalogVersion: String { get }
    func eachItem(_ body: (_ feature: String, _ quantity: UInt64) -> Void)
    func eachAllocation(_ body: (_ grantID: UInt64, _ amount: UInt64) -> Void)
    func eachCapture(_ body: (_ grantID: UInt64, _ amount: UInt64) -> Void)
}

extension Tokenledger_V1_Hold: HoldWireFields {
    var isPlain: Bool {
        unknownFields.data.isEmpty && items.allSatisfy { $0.unknownFields.data.isEmpty }
            && allocations.allSatisfy { $0.unknownFields.data.isEmpty } && captures.allSatisfy { $0.unknownFields.data.isEmpty }
    }
    var stateNumber: Int { state.rawValue }
    func eachItem(_ body: (String, UInt64) -> Void) { for item in items { body(item.feature, item.quantity) } }
    func eachAllocation(_ body: (UInt64, UInt64) -> Void) { for allocation in allocations { body(allocation.grantID, allocation.amount) } }
    func eachCapture(_ body: (UInt64, UInt64) -> Void) { for capture in captures { body(capture.grantID, capture.amount) } }
}

/// The ledger's `Hold` read as the wire's (the mapping of `Tokenledger_V1_Hold.init(_:)`), lent for
/// the length of one `MeteringResult.with` (each field read where it is, the hold not copied).
struct DomainHold: HoldWireFields {
    private let hold: UnsafePointer<Hold>

    init(_ hold: UnsafePointer<Hold>) { self.hold = hold }

    var isPlain: Bool { true }
    var id: String { hold.pointee.id.rawValue }
    var member: String { hold.pointee.member?.rawValue ?? "" }
    var stateNumber: Int { Tokenledger_V1_HoldState(hold.pointee.state).rawValue }
    var amount: UInt64 { hold.pointee.amount }
    var held: UInt64 { hold.pointee.held }
    var captured: UInt64 { hold.pointee.captured }
    var overdraftCaptured: UInt64 { hold.pointee.overdraftCaptured }
    var refunded: UInt64 { hold.pointee.refunded }
    var createdAtMs: Int64 { hold.pointee.createdAt.millisecondsSinceEpoch }
    var expiresAtMs: Int64 { hold.pointee.expiresAt.millisecondsSinceEpoch }
    var resolvedAtMs: Int64 { hold.pointee.resolvedAt?.millisecondsSinceEpoch ?? 0 }
    var catalogVersion: String { hold.pointee.catalogVersion ?? "" }
    func eachItem(_ body: (String, UInt64) -> Void) { for item in hold.pointee.items { body(item.feature, item.quantity) } }
    func eachAllocation(_ body: (UInt64, UInt64) -> Void) {
        for allocation in hold.pointee.allocations { body(allocation.grant.rawValue, allocation.amount) }
    }
    func eachCapture(_ body: (UInt64, UInt64) -> Void) { for capture in hold.pointee.captures { body(capture.grant.rawValue, capture.amount) } }
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
        var sized = Sized(total: Envelope(response).size)
        switch response.result {
        case nil:
            return sized
        case .error(let error)?:
            guard let body = size(of: error) else { return nil }
            sized.result = body
            sized.total += 1 + ProtoSize.message(body)
            return sized
        case let result:
            guard let metering = MeteringResult<Tokenledger_V1_Hold>(result), size(metering, into: &sized) else { return nil }
            return sized
        }
    }

    /// Adds a metering result's sizes to `sized`; false when its hold carries unknown fields.
    static func size<Hold: HoldWireFields>(_ metering: MeteringResult<Hold>, into sized: inout Sized) -> Bool {
        if let hold = metering.hold {
            guard hold.isPlain else { return false }
            let body = size(of: hold)
            sized.hold = body
            sized.result += 1 + ProtoSize.message(body)
        }
        sized.result += ProtoSize.uint64(metering.second) + ProtoSize.uint64(metering.third)
        // Fields 10-13 have one-byte tags, 36-38 two-byte ones.
        sized.total += (metering.field < 16 ? 1 : 2) + ProtoSize.message(sized.result)
        return true
    }

    private static func size(of hold: some HoldWireFields) -> Int {
        var total = ProtoSize.string(hold.id) + ProtoSize.string(hold.member) + ProtoSize.enumeration(hold.stateNumber)
        total += ProtoSize.uint64(hold.amount) + ProtoSize.uint64(hold.held) + ProtoSize.uint64(hold.captured)
        total += ProtoSize.uint64(hold.overdraftCaptured) + ProtoSize.uint64(hold.refunded)
        total += ProtoSize.int64(hold.createdAtMs) + ProtoSize.int64(hold.expiresAtMs) + ProtoSize.int64(hold.resolvedAtMs)
        total += ProtoSize.string(hold.catalogVersion)
        hold.eachItem { feature, quantity in total += 1 + ProtoSize.message(itemSize(feature, quantity)) }
        hold.eachAllocation { grantID, amount in total += 1 + ProtoSize.message(allocationSize(grantID, amount)) }
        hold.eachCapture { grantID, amount in total += 1 + ProtoSize.message(allocationSize(grantID, amount)) }
        return total
    }

    private static func itemSize(_ feature: String, _ quantity: UInt64) -> Int { ProtoSize.string(feature) + ProtoSize.uint64(quantity) }

    private static func allocationSize(_ grantID: UInt64, _ amount: UInt64) -> Int { ProtoSize.uint64(grantID) + ProtoSize.uint64(amount) }

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
        let envelope = Envelope(response)
        envelope.writeHead(to: &out)
        if case .error(let error)? = response.result {
            out.messageHeader(3, sized.result)
            write(error, to: &out)
        }
        envelope.writeLSN(to: &out)
        guard let metering = MeteringResult<Tokenledger_V1_Hold>(response.result) else { return }
        write(metering, sized, to: &out)
    }

    /// Writes a metering result that ``size(_:into:)`` sized.
    static func write<Hold: HoldWireFields>(_ metering: MeteringResult<Hold>, _ sized: Sized, to out: inout ProtoOut) {
        out.messageHeader(metering.field, sized.result)
        if let hold = metering.hold, let holdSize = sized.hold {
            out.messageHeader(1, holdSize)
            write(hold, to: &out)
        }
        out.uint64(2, metering.second)
        out.uint64(3, metering.third)
    }

    private static func write(_ hold: some HoldWireFields, to out: inout ProtoOut) {
        out.string(1, hold.id)
        out.string(2, hold.member)
        out.enumeration(3, hold.stateNumber)
        out.uint64(4, hold.amount)
        out.uint64(5, hold.held)
        out.uint64(6, hold.captured)
        out.uint64(7, hold.overdraftCaptured)
        out.uint64(8, hold.refunded)
        out.int64(9, hold.createdAtMs)
        out.int64(10, hold.expiresAtMs)
        out.int64(11, hold.resolvedAtMs)
        out.string(12, hold.catalogVersion)
        hold.eachItem { feature, quantity in
            out.messageHeader(13, itemSize(feature, quantity))
            out.string(1, feature)
            out.uint64(2, quantity)
        }
        hold.eachAllocation { grantID, amount in
            out.messageHeader(14, allocationSize(grantID, amount))
            out.uint64(1, grantID)
            out.uint64(2, amount)
        }
        hold.eachCapture { grantID, amount in
            out.messageHeader(15, allocationSize(grantID, amount))
            out.uint64(1, grantID)
            out.uint64(2, amount)
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

/// Encoded sizes of proto3 fields as SwiftProtobuf writes them (a default value is left out).
/// Every field number the fast path writes is below 16, so a field's tag is one byte, except the
/// `Response.result` cases from 16 on, whose two-byte tags the callers count themselves.
enum ProtoSize {
    @inline(__always)
    static func varint(_ value: UInt64) -> Int { Varint.size(value) }

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
    mutating func varint(_ value: UInt64) { count += Varint.write(value, at: base + count) }

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
