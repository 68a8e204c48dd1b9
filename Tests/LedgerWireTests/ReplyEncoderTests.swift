import Foundation
import LedgerCore
@testable import LedgerWire
import NIOCore
import SwiftProtobuf
import Testing

/// The metering calls' replies are written without SwiftProtobuf's visitors (ReplyEncoder): the
/// bytes must be exactly SwiftProtobuf's, for every value a field can take.
@Suite("Reply encoder")
struct ReplyEncoderTests {
    typealias Values = RandomWireValues

    /// The frame ledgerd writes, and SwiftProtobuf's bytes in a frame.
    static func frames(_ response: WireResponse) throws -> (written: [UInt8], expected: [UInt8]) {
        var buffer = ByteBuffer()
        try buffer.writeFrame(response)
        let bytes: [UInt8] = try response.serializedBytes()
        var expected = ByteBuffer()
        expected.writeInteger(UInt32(bytes.count), endianness: .big)
        expected.writeBytes(bytes)
        return (Array(buffer.readableBytesView), Array(expected.readableBytesView))
    }

    @Test("random metering replies and errors encode to SwiftProtobuf's bytes, and decode back to themselves")
    func randomReplies() throws {
        var values = Values(seed: 27)
        var covered = 0
        for _ in 0..<20_000 {
            let response = values.response()
            if ReplyEncoder.size(of: response) != nil { covered += 1 }
            let (written, expected) = try Self.frames(response)
            try #require(written == expected, "\(response)")
            #expect(try WireResponse(serializedBytes: Array(written.dropFirst(4))) == response)
        }
        #expect(covered == 20_000)
    }

    @Test("replies made from the ledger's own results encode to SwiftProtobuf's bytes, through the message and straight from the result")
    func repliesOfRealCommands() throws {
        var ledger = LedgerState(time: LedgerTime(millisecondsSinceEpoch: 1_780_000_000_000))
        var count = 0
        var direct = 0
        func run(_ body: CommandBody, covered: Bool = true, requestID: RequestID? = nil) throws {
            count += 1
            var result = ledger.apply(LedgerCommand(time: ledger.time, requestID: requestID ?? RequestID("r\(count)"), body: body))
            result.lsn = UInt64(count) * 1_000_003
            let response = WireResponse(callID: UInt64(count), result: result)
            #expect((ReplyEncoder.size(of: response) != nil) == covered, "\(body) -> \(response)")
            let (written, expected) = try Self.frames(response)
            try #require(written == expected, "\(body)")
            // The framed port's reply of a command: the result itself, not the message.
            var buffer = ByteBuffer()
            try buffer.writeFrame(CallReply.command(callID: UInt64(count), result))
            try #require(Array(buffer.readableBytesView) == expected, "\(body)")
            if MeteringResult.with(result.outcome, { _ in }) != nil { direct += 1 }
        }
        defer { #expect(direct == 15) }
        try run(.createTenant("acme", TenantSettings()), covered: false)
        try run(.setMember("acme", "ana", MemberSettings(budget: Budget(cap: 50, period: PeriodRule(unit: .day)))), covered: false)
        try run(.grant("acme", GrantRequest(kind: .purchase, amount: 1_000)), covered: false)
        try run(.reserve("acme", ReserveRequest(hold: "h1", member: "ana", amount: .tokens(40))))
        try run(.increaseHold("acme", "h1", amount: 5))
        try run(.extendHold("acme", "h1", ttl: .seconds(600)))
        try run(.commit("acme", "h1", amount: 30, final: true))
        try run(.refund("acme", "h1", amount: 10))
        try run(.reserve("acme", ReserveRequest(hold: "h2", member: "ana", amount: .tokens(400))))  // over the budget
        try run(.reserve("acme", ReserveRequest(hold: "h3", amount: .tokens(10_000))))  // over the balance
        try run(.charge("acme", ReserveRequest(hold: "c1", amount: .tokens(7))))
        try run(.reserve("acme", ReserveRequest(hold: "h4", amount: .tokens(9))))
        try run(.release("acme", "h4"))
        try run(.commit("acme", "missing", amount: 1, final: true))  // not found
        // Holds across grants (allocations and captures of several), priced items, a replay.
        try run(.grant("acme", GrantRequest(kind: .promo, amount: 25)), covered: false)
        try run(.reserve("acme", ReserveRequest(hold: "h5", amount: .tokens(990))))
        try run(.commit("acme", "h5", amount: 980, final: false))
        try run(.commit("acme", "h5", amount: 10, final: true), requestID: "last")
        try run(.commit("acme", "h5", amount: 10, final: true), requestID: "last")  // replayed
        try run(.grant("acme", GrantRequest(kind: .purchase, amount: 500)), covered: false)
        let catalog = try PriceCatalog(version: "v7", features: [FeaturePrice(name: "transcription", unit: "minute", rate: 8)])
        try run(.installCatalog(catalog), covered: false)
        try run(.reserve("acme", ReserveRequest(hold: "h6", member: "ana", amount: .items([PricedItem(feature: "transcription", quantity: 3)]))))
        try run(.charge("acme", ReserveRequest(hold: "c2", amount: .items([PricedItem(feature: "transcription", quantity: 1)]))))
        try run(.release("acme", "h6"))
    }

    @Test("replies the fast path does not cover, or carrying unknown fields, go through SwiftProtobuf")
    func otherReplies() throws {
        var values = Values(seed: 5)
        var balance = WireResponse()
        balance.callID = 9
        balance.balance = .with { $0.tenant = "acme"; $0.available = 12 }
        #expect(ReplyEncoder.size(of: balance) == nil)
        var withUnknown = values.response()
        withUnknown.reserve = .with { $0.hold = values.hold() }
        try withUnknown.reserve.hold.merge(serializedBytes: [0xF8, 0x3E, 0x01] as [UInt8])  // field 999, varint 1
        #expect(!withUnknown.reserve.hold.unknownFields.data.isEmpty)
        #expect(ReplyEncoder.size(of: withUnknown) == nil)
        for response in [balance, withUnknown] {
            let (written, expected) = try Self.frames(response)
            #expect(written == expected)
        }
    }
}

extension RandomWireValues {
    /// A known value, 0, or one the build does not know (SwiftProtobuf keeps it as UNRECOGNIZED).
    mutating func enumRaw(known: Int) -> Int {
        switch below(6) {
        case 0: return 0
        case 1: return [99, -3, Int(Int32.max)][below(3)]
        default: return 1 + below(known)
        }
    }

    mutating func hold() -> Tokenledger_V1_Hold {
        var hold = Tokenledger_V1_Hold()
        hold.id = string()
        hold.member = string()
        hold.state = Tokenledger_V1_HoldState(rawValue: enumRaw(known: 4))!
        hold.amount = uint64()
        hold.held = uint64()
        hold.captured = uint64()
        hold.overdraftCaptured = uint64()
        hold.refunded = uint64()
        hold.createdAtMs = int64()
        hold.expiresAtMs = int64()
        hold.resolvedAtMs = int64()
        hold.catalogVersion = string()
        for _ in 0..<below(4) { hold.items.append(.with { $0.feature = string(); $0.quantity = uint64() }) }
        for _ in 0..<below(4) { hold.allocations.append(.with { $0.grantID = uint64(); $0.amount = uint64() }) }
        for _ in 0..<below(3) { hold.captures.append(.with { $0.grantID = uint64(); $0.amount = uint64() }) }
        return hold
    }

    mutating func error() -> WireError {
        var error = WireError()
        error.code = WireErrorCode(rawValue: enumRaw(known: 20))!
        error.message = string()
        switch below(7) {
        case 0: error.budget = .with { $0.remaining = uint64(); $0.cap = uint64(); $0.resetsAtMs = int64() }
        case 1: error.plan = .with { $0.remaining = uint64(); $0.limit = uint64(); $0.resetsAtMs = int64() }
        case 2: error.balance = .with { $0.available = uint64(); $0.requested = uint64() }
        case 3: error.limit = .with { $0.name = string(); $0.value = uint64() }
        case 4: error.owner = .with { $0.shard = UInt32(truncatingIfNeeded: uint64()); $0.address = string(); $0.epoch = uint64() }
        case 5:
            error.quota = .with {
                $0.feature = string()
                $0.used = uint64()
                $0.limit = uint64()
                $0.resetsAtMs = int64()
                $0.requested = uint64()
            }
        default: break
        }
        return error
    }

    /// A reply of a kind the fast path covers; the hold left out now and then.
    mutating func response() -> WireResponse {
        var response = WireResponse()
        response.callID = uint64()
        response.replayed = chance(30)
        response.lsn = uint64()
        let withHold = !chance(10)
        switch below(9) {
        case 0: response.error = error()
        case 1: response.reserve = .with { if withHold { $0.hold = hold() } }
        case 2:
            response.commit = .with {
                if withHold { $0.hold = hold() }
                $0.captured = uint64()
                $0.released = uint64()
            }
        case 3:
            response.release = .with {
                if withHold { $0.hold = hold() }
                $0.released = uint64()
            }
        case 4:
            response.refund = .with {
                if withHold { $0.hold = hold() }
                $0.refunded = uint64()
                $0.newGrantID = uint64()
            }
        case 5:
            response.charge = .with {
                if withHold { $0.hold = hold() }
                $0.charged = uint64()
            }
        case 6: response.extendHold = .with { if withHold { $0.hold = hold() } }
        case 7:
            response.increaseHold = .with {
                if withHold { $0.hold = hold() }
                $0.increased = uint64()
            }
        default: break  // no result at all
        }
        return response
    }
}
