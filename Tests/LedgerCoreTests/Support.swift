import LedgerCore
import Testing

/// 2026-07-01T00:00:00Z, a Wednesday.
let july1 = LedgerTime(iso8601: "2026-07-01T00:00:00Z")!

func time(_ text: String) -> LedgerTime { LedgerTime(iso8601: text)! }

/// A ledger driven by tests: stamps commands with its own clock, numbers request ids, keeps the
/// command log for replay checks, and asserts the audit after every command.
struct TestLedger {
    var state: LedgerState
    var now: LedgerTime
    var log: [LedgerCommand] = []
    var results: [CommandResult] = []
    private var counter = 0

    init(at start: LedgerTime = july1, catalog: PriceCatalog? = .demo) {
        state = LedgerState(time: start)
        now = start
        if let catalog { run(.installCatalog(catalog)) }
    }

    @discardableResult
    mutating func run(_ body: CommandBody, requestID: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> CommandResult {
        counter += 1
        let id = body.tenant == nil ? nil : RequestID(requestID ?? "req-\(counter)")
        let command = LedgerCommand(time: now, requestID: id, body: body)
        log.append(command)
        let result = state.apply(command)
        results.append(result)
        let violations = state.audit()
        #expect(violations.isEmpty, "audit after \(body): \(violations)", sourceLocation: sourceLocation)
        return result
    }

    @discardableResult
    mutating func ok(_ body: CommandBody, requestID: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> CommandOutcome {
        let result = run(body, requestID: requestID, sourceLocation: sourceLocation)
        switch result.outcome {
        case .success(let outcome): return outcome
        case .failure(let error):
            Issue.record("expected success of \(body), got \(error)", sourceLocation: sourceLocation)
            return .ticked
        }
    }

    @discardableResult
    mutating func fail(
        _ body: CommandBody, _ code: ErrorCode, requestID: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) -> LedgerError? {
        let result = run(body, requestID: requestID, sourceLocation: sourceLocation)
        switch result.outcome {
        case .success(let outcome):
            Issue.record("expected \(code.rawValue) from \(body), got \(outcome)", sourceLocation: sourceLocation)
            return nil
        case .failure(let error):
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
            return error
        }
    }

    /// Moves the clock and ticks, so that what fell due is applied.
    @discardableResult
    mutating func advance(_ duration: Duration) -> CommandResult {
        now = now.adding(duration)
        return run(.tick)
    }

    @discardableResult
    mutating func advance(to instant: LedgerTime) -> CommandResult {
        now = instant
        return run(.tick)
    }

    func tenant(_ id: TenantID) -> Tenant { state.tenants[id]! }

    func balance(_ id: TenantID, member: MemberID? = nil) -> BalanceView { try! state.balance(id, member: member) }

    // Shorthands for the commands tests use most.

    mutating func createTenant(_ id: TenantID, _ settings: TenantSettings = TenantSettings()) {
        ok(.createTenant(id, settings))
    }

    /// Creates each tenant, in order, and grants it `amount` purchased tokens.
    mutating func createFunded(_ ids: TenantID..., amount: Tokens) {
        for id in ids {
            createTenant(id)
            grant(id, amount)
        }
    }

    @discardableResult
    mutating func grant(_ tenant: TenantID, _ amount: Tokens, kind: GrantKind = .purchase, expiresAt: LedgerTime? = nil, priority: UInt32? = nil) -> GrantID {
        guard case .granted(let grant) = ok(.grant(tenant, GrantRequest(kind: kind, amount: amount, expiresAt: expiresAt, priority: priority))) else {
            return GrantID(0)
        }
        return grant.id
    }

    @discardableResult
    mutating func reserve(_ tenant: TenantID, _ hold: HoldID, _ amount: Tokens, member: MemberID? = nil, ttl: Duration? = nil) -> Hold? {
        guard case .reserved(let result) = ok(.reserve(tenant, ReserveRequest(hold: hold, member: member, amount: .tokens(amount), ttl: ttl))) else {
            return nil
        }
        return result
    }
}

extension Duration {
    static func minutes(_ count: Int64) -> Duration { .seconds(count * 60) }
    static func hours(_ count: Int64) -> Duration { .seconds(count * 3600) }
    static func days(_ count: Int64) -> Duration { .seconds(count * 86_400) }
}

extension Array where Element == LedgerEvent {
    func contains(where kindMatches: (LedgerEvent.Kind) -> Bool) -> Bool { contains { kindMatches($0.kind) } }
}
