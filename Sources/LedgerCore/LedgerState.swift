// The ledger's state machine: pure, synchronous and deterministic.
//
// Invariants:
// - `apply` is a function of the state and the command only: no clock, no randomness, no I/O, no
//   iteration over unordered collections where the order could change the result. Replaying the
//   same commands from the same state always yields an equal state and equal results.
// - Ledger time never moves backwards: a command stamped earlier than `time` applies at `time`.
// - Before a command applies, everything due at or before its time is applied in (time, rank,
//   scheduling sequence) order, each as explicit history entries.
// - A failed command changes nothing but the idempotency table (and time, and what fell due).
// - audit() holds after every command; see Tenant.swift for the per-tenant invariants.

/// The whole ledger of one shard: its tenants, the installed price catalog and the schedule of
/// what falls due.
public struct LedgerState: Hashable, Sendable {
    /// The ledger time of the last applied command.
    public internal(set) var time: LedgerTime
    public internal(set) var tenants = TenantTable()
    /// The catalog that prices estimates and priced reserves; nil until one is installed.
    public internal(set) var catalog: PriceCatalog?
    var due = DueQueue()
    var dueSequence: UInt64 = 0
    /// Each tenant's recent, numbered events (only tenants that have had any); kept by `tenants`.
    public var eventLogs: EventLogs { EventLogs(tenants: tenants) }

    public init(time: LedgerTime = .epoch) {
        self.time = time
    }

    /// Scheduled items not yet due, moot ones included (for tests and introspection).
    package var dueCount: Int { due.count }

    /// When the next scheduled item falls due (it may turn out to be moot), or nil.
    public var nextDueTime: LedgerTime? { due.first?.time }

    /// Applies one command and returns its result. Never traps on bad input: every problem is a
    /// typed error in the result.
    public mutating func apply(_ command: LedgerCommand) -> CommandResult {
        let now = max(time, command.time)
        var events: [LedgerEvent] = []
        advance(to: now, events: &events)
        time = now
        var replayed = false
        let outcome: Result<CommandOutcome, LedgerError>
        switch command.body {
        case .tick:
            outcome = .success(.ticked)
        case .installCatalog(let catalog):
            outcome = install(catalog)
        default:
            (outcome, replayed) = applyTenantCommand(command, now: now, events: &events)
        }
        return CommandResult(outcome: outcome, replayed: replayed, events: events, time: now)
    }

    private mutating func install(_ catalog: PriceCatalog) -> Result<CommandOutcome, LedgerError> {
        // Re-validate: the command may come from a log written by another build.
        do {
            let checked = try PriceCatalog(version: catalog.version, features: Array(catalog.features.values))
            guard checked == catalog else { return .failure(LedgerError(.invalidArgument, "catalog features do not match their names")) }
        } catch {
            return .failure(error)
        }
        if let current = self.catalog, current.version == catalog.version, current != catalog {
            return .failure(LedgerError(.alreadyExists, "catalog version \(catalog.version) is installed with other prices"))
        }
        self.catalog = catalog
        return .success(.catalogInstalled(version: catalog.version))
    }

    private mutating func applyTenantCommand(
        _ command: LedgerCommand, now: LedgerTime, events: inout [LedgerEvent]
    ) -> (Result<CommandOutcome, LedgerError>, replayed: Bool) {
        let tenantID = command.body.tenant!
        guard let requestID = command.requestID else {
            return (.failure(LedgerError(.invalidArgument, "a request id is required")), false)
        }
        do {
            try IdentifierRule.check(requestID.rawValue, field: "request id")
            try IdentifierRule.check(tenantID.rawValue, field: "tenant id")
        } catch {
            return (.failure(error), false)
        }
        var position = tenants.position(of: tenantID)
        if let position, let entry = tenants[at: position].idempotency.entry(requestID) {
            guard entry.matches(command.body) else {
                return (.failure(LedgerError(.idempotencyConflict, "request id \(requestID) was used for a different command at \(entry.time)")), false)
            }
            return (entry.outcome.result, true)
        }
        var ctx = ApplyContext(now: now, requestID: requestID, catalog: catalog)
        let outcome: Result<CommandOutcome, LedgerError>
        if case .createTenant(_, let settings) = command.body {
            outcome = createTenant(tenantID, settings, &ctx)
            position = tenants.position(of: tenantID)
        } else if let position {
            do {
                outcome = .success(try tenants[at: position].performEmittingMovement(command.body, &ctx))
            } catch {
                outcome = .failure(error)
            }
        } else {
            return (.failure(LedgerError.notFound("tenant \(tenantID)")), false)
        }
        if let position {
            tenants[at: position].settle(&ctx)
            tenants[at: position].idempotency.remember(requestID, body: command.body, result: outcome, now: now)
        }
        finish(tenantID, at: position, &ctx, events: &events)
        return (outcome, false)
    }

    private mutating func createTenant(
        _ tenantID: TenantID, _ settings: TenantSettings, _ ctx: inout ApplyContext
    ) -> Result<CommandOutcome, LedgerError> {
        guard tenants.position(of: tenantID) == nil else { return .failure(LedgerError(.alreadyExists, "tenant \(tenantID) exists already")) }
        do {
            try Tenant.validate(settings)
        } catch {
            return .failure(error)
        }
        var settings = settings
        settings.plan = settings.plan.map(Tenant.canonical)
        var tenant = Tenant(id: tenantID, settings: settings, createdAt: ctx.now)
        tenant.record(.tenantCreated, ctx, amount: 0)
        if settings.plan != nil { tenant.startPlan(&ctx) }
        tenants.insert(tenant)
        return .success(.tenantCreated(tenantID))
    }

    /// Applies everything due at or before `now`.
    private mutating func advance(to now: LedgerTime, events: inout [LedgerEvent]) {
        while let item = due.first, item.time <= now {
            _ = due.removeFirst()
            time = max(time, item.time)
            guard let position = tenants.position(of: item.tenant) else { continue }
            var ctx = ApplyContext(now: item.time, requestID: nil, catalog: catalog)
            tenants[at: position].handle(item.kind, &ctx)
            tenants[at: position].settle(&ctx)
            finish(item.tenant, at: position, &ctx, events: &events)
        }
    }

    /// Drops the expiries of holds that were resolved before they fell due. Every hold schedules
    /// its expiry (15 minutes by default), and nearly every hold is committed or released long
    /// before: without pruning the queue held rate × TTL items under steady load (millions), which
    /// every snapshot encoded and the first change after a snapshot copied. A pruned item is one
    /// `expireHold` would ignore, so nothing observable changes; only ticks that would have found
    /// nothing to do are no longer logged.
    private mutating func pruneDue() {
        due.prune { item in
            guard case .holdExpiry(let holdID) = item.kind else { return false }
            guard let position = tenants.position(of: item.tenant),
                let hold = tenants[at: position].holds.open[holdID]
            else { return true }
            return hold.state != .held || hold.expiresAt != item.time
        }
    }

    /// Schedules what the command or due item asked for and logs its events, numbered, in the
    /// tenant's event log (`position`: the tenant's, already found; nil when there is none).
    private mutating func finish(_ tenantID: TenantID, at position: Int?, _ ctx: inout ApplyContext, events: inout [LedgerEvent]) {
        func insert(_ time: LedgerTime, _ kind: DueKind) {
            dueSequence += 1
            due.insert(DueItem(time: time, sequence: dueSequence, tenant: tenantID, kind: kind))
        }
        if let (time, kind) = ctx.takeFirstScheduled() { insert(time, kind) }
        for (time, kind) in ctx.moreScheduled { insert(time, kind) }
        if due.count >= due.pruneAt { pruneDue() }
        guard !ctx.events.isEmpty, let position else { return }
        // In place: the log's storage is not copied. A command's events (nothing gathered before
        // them) are numbered in the array they were emitted into, not copied into another.
        if events.isEmpty {
            swap(&events, &ctx.events)
            for index in events.indices { tenants.appendEvent(&events[index], at: position) }
        } else {
            for var event in ctx.events {
                tenants.appendEvent(&event, at: position)
                events.append(event)
            }
        }
    }
}

extension Tenant {
    /// Runs one tenant command and emits its movement event when the tenant has them on, before
    /// the threshold crossings the movement causes (`settle`, after).
    mutating func performEmittingMovement(_ body: CommandBody, _ ctx: inout ApplyContext) throws(LedgerError) -> CommandOutcome {
        let outcome = try perform(body, &ctx)
        if settings.movementEvents { ctx.emitMovement(id, outcome) }
        return outcome
    }

    /// Runs one tenant command. Every operation checks before it changes anything, so a thrown
    /// error leaves the tenant as it was.
    mutating func perform(_ body: CommandBody, _ ctx: inout ApplyContext) throws(LedgerError) -> CommandOutcome {
        switch body {
        case .configureTenant(_, let change):
            try configure(change, &ctx)
            return .tenantConfigured(id)
        case .setMember(_, let memberID, let settings):
            return .memberSet(try setMember(memberID, settings, &ctx))
        case .grant(_, let request):
            return .granted(try grant(request, &ctx))
        case .purchase(_, let moneyMinor, let note):
            return try purchase(moneyMinor: moneyMinor, note: note, &ctx)
        case .refundPurchase(_, let grantID):
            return try refundPurchase(grantID, &ctx)
        case .voidGrant(_, let grantID):
            return try voidGrant(grantID, &ctx)
        case .reserve(_, let request):
            return .reserved(try reserve(request, &ctx))
        case .charge(_, let request):
            return try charge(request, &ctx)
        case .commit(_, let holdID, let amount, let final):
            return try commit(holdID, amount: amount, final: final, &ctx)
        case .extendHold(_, let holdID, let ttl):
            return .holdExtended(try extendHold(holdID, ttl: ttl, &ctx))
        case .increaseHold(_, let holdID, let amount):
            return try increaseHold(holdID, amount: amount, &ctx)
        case .release(_, let holdID):
            return try release(holdID, &ctx)
        case .refund(_, let holdID, let amount):
            return try refund(holdID, amount: amount, &ctx)
        case .createTenant, .installCatalog, .tick:
            preconditionFailure("\(body) is not a tenant operation")
        }
    }

    mutating func handle(_ kind: DueKind, _ ctx: inout ApplyContext) {
        switch kind {
        case .holdExpiry(let holdID): expireHold(holdID, &ctx)
        case .grantActivation(let grantID): activateGrant(grantID, &ctx)
        case .planRenewal(let generation): renewPlan(generation: generation, &ctx)
        case .grantExpiry(let grantID): expireGrant(grantID, &ctx)
        case .budgetReset(let memberID, let generation): resetBudget(memberID, generation: generation, &ctx)
        }
    }
}
