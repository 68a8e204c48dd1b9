import LedgerCore
import LedgerTesting
import LedgerWire
import SwiftProtobuf
import Testing

@Suite("Wire mapping")
struct MappingTests {
    /// Every command the property-test generator makes survives domain -> wire -> bytes -> wire ->
    /// domain unchanged; the only refusals are grant id 0, which the wire cannot express.
    @Test("commands round-trip through the wire")
    func commandRoundTrip() throws {
        var generator = CommandGenerator(seed: 7)
        var checked = 0
        for _ in 0..<20_000 {
            let command = generator.next()
            guard let requestID = command.requestID else { continue }
            let call = LedgerCall.command(command.body, requestID)
            let bytes: [UInt8] = try WireRequest(callID: 9, call: call).serializedBytes()
            let decoded = try WireRequest(serializedBytes: bytes)
            #expect(decoded.callID == 9)
            #expect(decoded.rpcName == call.rpcName)
            do {
                #expect(try LedgerCall(decoded) == call)
                checked += 1
            } catch {
                switch command.body {
                case .voidGrant(_, GrantID(0)), .refundPurchase(_, GrantID(0)): #expect(error.code == .invalidArgument)
                default: Issue.record("\(command.body) was refused: \(error)")
                }
            }
        }
        #expect(checked > 15_000)
    }

    @Test("queries round-trip through the wire")
    func queryRoundTrip() throws {
        let calls: [LedgerCall] = [
            .balance("acme", member: nil), .balance("acme", member: "ana"),
            .estimate("acme", member: "ana", items: [PricedItem(feature: "transcription", quantity: 37)]),
            .history(
                "acme",
                HistoryFilter(
                    member: "ana", source: .plan, kinds: [.capture, .reserve], since: LedgerTime(millisecondsSinceEpoch: 5),
                    until: LedgerTime(millisecondsSinceEpoch: 9_000), afterSequence: 12, limit: 50)),
            .catalog, .health, .installCatalog(.demo), .adminSnapshot, .adminAudit, .watch("acme", after: 3),
            .unwatch(watchCallID: 4),
        ]
        for call in calls {
            let bytes: [UInt8] = try WireRequest(callID: 1, call: call).serializedBytes()
            let request = try WireRequest(serializedBytes: bytes)
            #expect(try LedgerCall(request) == call)
            #expect(request.rpcName == call.rpcName)
        }
    }

    @Test("every error code maps to the wire and back")
    func errorCodes() {
        for code in ErrorCode.allCases {
            let wire = WireErrorCode(code)
            #expect(wire != .unspecified)
            #expect(wire.domain == code)
        }
        #expect(Set(ErrorCode.allCases.map { WireErrorCode($0).rawValue }).count == ErrorCode.allCases.count)
        #expect(WireErrorCode.unspecified.domain == nil)
        #expect(LedgerError(WireError.with { $0.code = .UNRECOGNIZED(99) }).code == .unavailable)
    }

    @Test("every domain enum maps to the wire and back")
    func enums() {
        for kind in GrantKind.allCases { #expect(Tokenledger_V1_GrantKind(kind).domain == kind) }
        for state in GrantState.allCases { #expect(Tokenledger_V1_GrantState(state).domain == state) }
        for state in HoldState.allCases { #expect(Tokenledger_V1_HoldState(state).domain == state) }
        for unit in PeriodUnit.allCases { #expect(Tokenledger_V1_PeriodUnit(unit).domain == unit) }
        for kind in HistoryKind.allCases { #expect(kind.wire.domain == kind) }
        #expect(Tokenledger_V1_GrantKind.unspecified.domain == nil)
        #expect(Tokenledger_V1_HistoryKind.UNRECOGNIZED(99).domain == nil)
    }

    @Test("error details round-trip")
    func errorDetails() {
        let errors = [
            LedgerError(.budgetExceeded, "b", details: .budget(remaining: 3, cap: 10, resetsAt: LedgerTime(millisecondsSinceEpoch: 77))),
            LedgerError(.planLimitReached, "p", details: .plan(remaining: 1, limit: 2, resetsAt: LedgerTime(millisecondsSinceEpoch: 8))),
            LedgerError(.insufficientBalance, "i", details: .balance(available: 4, requested: 9)),
            LedgerError(.limitExceeded, "l", details: .limit(name: "frame_size_max", value: 1 << 20)),
            LedgerError(
                .quotaExceeded, "q",
                details: .quota(feature: "cover_image", used: 29, limit: 30, resetsAt: LedgerTime(millisecondsSinceEpoch: 9), requested: 2)),
            LedgerError(.notFound, "n"),
        ]
        for error in errors { #expect(LedgerError(WireError(error)) == error) }
    }

    @Test("structural faults are invalid_argument naming the field")
    func invalidRequests() {
        func refusal(_ request: WireRequest) -> LedgerError? {
            do {
                _ = try LedgerCall(request)
                return nil
            } catch {
                return error
            }
        }
        let cases: [(WireRequest, String)] = [
            (WireRequest(), "no call"),
            (.with { $0.balance = .with { $0.tenant = "" } }, "tenant"),
            (.with { $0.balance = .with { $0.tenant = "bad id!" } }, "tenant"),
            (.with { $0.reserve = .with { $0.tenant = "a"; $0.holdID = "h"; $0.requestID = "r" } }, "amount"),
            (.with { $0.reserve = .with { $0.tenant = "a"; $0.holdID = "h"; $0.tokens = 5 } }, "request_id"),
            (.with { $0.reserve = .with { $0.tenant = "a"; $0.holdID = "h"; $0.requestID = "r"; $0.tokens = 1; $0.ttlMs = .max } }, "ttl_ms"),
            (.with { $0.grant = .with { $0.tenant = "a"; $0.requestID = "r"; $0.amount = 5 } }, "kind"),
            (.with { $0.grant = .with { $0.tenant = "a"; $0.requestID = "r"; $0.amount = 5; $0.kind = .promo; $0.expiresAtMs = -1 } }, "expires_at_ms"),
            (.with { $0.grant = .with { $0.tenant = "a"; $0.requestID = "r"; $0.amount = 5; $0.kind = .UNRECOGNIZED(42) } }, "kind"),
            (.with { $0.setMember = .with { $0.tenant = "a"; $0.member = "m"; $0.requestID = "r"; $0.budget = .with { $0.cap = 5 } } }, "budget.period"),
            (.with { $0.createTenant = .with { $0.tenant = "a"; $0.requestID = "r"; $0.settings = .with { $0.plan = .with { $0.allowance = 5; $0.period = .with { $0.unit = .month; $0.anchorMs = .max } } } } }, "anchor_ms"),
            (.with { $0.configureTenant = .with { $0.tenant = "a"; $0.requestID = "r"; $0.removePlan = false } }, "remove_plan"),
            (.with { $0.voidGrant = .with { $0.tenant = "a"; $0.requestID = "r" } }, "grant_id"),
            (.with { $0.history = .with { $0.tenant = "a"; $0.kinds = [.unspecified] } }, "kinds"),
            (.with { $0.installCatalog = .with { $0.json = "{" } }, "catalog"),
        ]
        for (request, field) in cases {
            let error = refusal(request)
            #expect(error?.code == .invalidArgument, "\(field)")
            #expect(error?.message.contains(field) == true, "\(field): \(error?.message ?? "accepted")")
        }
        let tooMany = WireRequest.with {
            $0.history = .with { $0.tenant = "a"; $0.limit = UInt32(Limits.historyPageMax + 1) }
        }
        #expect(refusal(tooMany)?.code == .limitExceeded)
    }

    @Test("unknown fields are found at any depth")
    func unknownFields() throws {
        let request = WireRequest.with {
            $0.callID = 3
            $0.reserve = .with {
                $0.tenant = "acme"
                $0.items = .with { $0.items = [.with { $0.feature = "transcription"; $0.quantity = 2 }] }
            }
        }
        #expect(!request.containsUnknownFields)
        var bytes: [UInt8] = try request.serializedBytes()
        // Field 99, varint 1, at the top level.
        var top = bytes + [0x98, 0x06, 0x01]
        #expect(try WireRequest(serializedBytes: top).containsUnknownFields)
        // The same inside the nested PricedItem: rebuild the innermost message with an extra field.
        var item: [UInt8] = try Tokenledger_V1_PricedItem.with { $0.feature = "x"; $0.quantity = 1 }.serializedBytes()
        item += [0x98, 0x06, 0x01]
        let items: [UInt8] = [0x0A, UInt8(item.count)] + item
        let reserve: [UInt8] = [0x12, 0x01, 0x61, 0x32, UInt8(items.count)] + items
        bytes = [0x52, UInt8(reserve.count)] + reserve
        #expect(try WireRequest(serializedBytes: bytes).containsUnknownFields)
        top.removeAll()
    }
}
