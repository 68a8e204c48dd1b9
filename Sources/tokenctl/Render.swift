import LedgerCore
import LedgerWire

/// How wire results look, for people and for scripts.
enum Render {
    // Names are the domain enums' raw values, the names docs/semantics.md uses; "-" for none.
    static func name(_ kind: Tokenledger_V1_GrantKind) -> String { kind.domain?.rawValue ?? "-" }
    static func name(_ state: Tokenledger_V1_HoldState) -> String { state.domain?.rawValue ?? "-" }
    static func name(_ state: Tokenledger_V1_GrantState) -> String { state.domain?.rawValue ?? "-" }
    static func name(_ kind: Tokenledger_V1_HistoryKind) -> String { kind.domain?.rawValue ?? "-" }
    static func name(_ unit: Tokenledger_V1_PeriodUnit) -> String { unit.domain?.rawValue ?? "-" }

    static func grantID(_ id: UInt64) -> String { id == 0 ? "-" : "g\(id)" }

    static func holdJSON(_ hold: Tokenledger_V1_Hold) -> JSON {
        .object([
            ("id", .string(hold.id)), ("member", hold.member.isEmpty ? .null : .string(hold.member)),
            ("state", .string(name(hold.state))), ("amount", .unsigned(hold.amount)), ("held", .unsigned(hold.held)),
            ("captured", .unsigned(hold.captured)), ("overdraft_captured", .unsigned(hold.overdraftCaptured)),
            ("refunded", .unsigned(hold.refunded)), ("created_at", JSON.time(hold.createdAtMs)),
            ("expires_at", JSON.time(hold.expiresAtMs)), ("resolved_at", JSON.time(hold.resolvedAtMs)),
            ("catalog_version", hold.catalogVersion.isEmpty ? .null : .string(hold.catalogVersion)),
            ("items", .array(hold.items.map { .object([("feature", .string($0.feature)), ("quantity", .unsigned($0.quantity))]) })),
            ("allocations", .array(hold.allocations.map { .object([("grant", .string(grantID($0.grantID))), ("amount", .unsigned($0.amount))]) })),
        ])
    }

    static func holdFields(_ hold: Tokenledger_V1_Hold) -> [(String, String)] {
        var rows = [("hold", hold.id), ("state", name(hold.state)), ("amount", Format.tokens(hold.amount))]
        if !hold.member.isEmpty { rows.append(("member", hold.member)) }
        rows += [
            ("held", Format.tokens(hold.held)), ("captured", Format.tokens(hold.captured)),
            ("refunded", Format.tokens(hold.refunded)), ("expires at", Format.time(hold.expiresAtMs)),
        ]
        if !hold.catalogVersion.isEmpty {
            rows.append(("priced by", hold.catalogVersion + ": " + hold.items.map { "\($0.feature)=\($0.quantity)" }.joined(separator: " ")))
        }
        return rows
    }

    static func grantJSON(_ grant: Tokenledger_V1_Grant) -> JSON {
        .object([
            ("id", .string(grantID(grant.id))), ("kind", .string(name(grant.kind))), ("state", .string(name(grant.state))),
            ("amount", .unsigned(grant.amount)), ("remaining", .unsigned(grant.remaining)), ("held", .unsigned(grant.held)),
            ("priority", .unsigned(UInt64(grant.priority))), ("effective_at", JSON.time(grant.effectiveAtMs)),
            ("expires_at", JSON.time(grant.expiresAtMs)), ("money_minor", .unsigned(grant.moneyMinor)),
            ("linked_grant", grant.linkedGrantID == 0 ? .null : .string(grantID(grant.linkedGrantID))), ("note", .string(grant.note)),
            ("scope", .array(grant.scope.map { .string($0) })),
        ])
    }

    /// A threshold as given: `1000` or `20%`.
    static func threshold(_ threshold: Tokenledger_V1_Threshold) -> String {
        switch threshold.kind {
        case .tokens(let tokens)?: return Self.threshold(.tokens(tokens))
        case .percent(let percent)?: return Self.threshold(.percent(percent))
        case nil: return "?"
        }
    }

    static func threshold(_ threshold: BalanceThreshold) -> String {
        switch threshold {
        case .tokens(let tokens): return String(tokens)
        case .percent(let percent): return "\(percent)%"
        }
    }

    /// A plan's quotas as `[{"feature": ..., "limit": ...}]`.
    static func quotasJSON(_ quotas: [PlanQuota]) -> JSON {
        .array(quotas.map { .object([("feature", .string($0.feature)), ("limit", .unsigned($0.limit))]) })
    }

    /// Quotas of a period as `[{"feature", "used", "limit", "resets_at"}]` (and `requested` in an
    /// estimate).
    static func quotaJSON(_ quotas: [Tokenledger_V1_Quota], requested: Bool = false) -> JSON {
        .array(quotas.map {
            var fields: [(String, JSON)] = [
                ("feature", .string($0.feature)), ("used", .unsigned($0.used)), ("limit", .unsigned($0.limit)),
                ("resets_at", JSON.time($0.resetsAtMs)),
            ]
            if requested { fields.append(("requested", .unsigned($0.requested))) }
            return .object(fields)
        })
    }

    /// `feature used/limit` lines for people.
    static func quotaRows(_ quotas: [Tokenledger_V1_Quota], requested: Bool = false) -> [(String, String)] {
        quotas.map {
            ("quota \($0.feature)",
             "\(Format.tokens($0.used))/\(Format.tokens($0.limit)) used" + (requested ? ", \(Format.tokens($0.requested)) asked" : "")
                + ", resets \(Format.time($0.resetsAtMs))")
        }
    }

    static func grantRow(_ grant: Tokenledger_V1_Grant) -> [String] {
        [grantID(grant.id), name(grant.kind), name(grant.state), Format.tokens(grant.amount), Format.tokens(grant.remaining),
         Format.time(grant.expiresAtMs)]
    }

    static func grantTable(_ grants: [Tokenledger_V1_Grant]) -> String {
        Format.table(["GRANT", "KIND", "STATE", "AMOUNT", "REMAINING", "EXPIRES"], grants.map(grantRow), right: [3, 4])
    }
}
