import LedgerCore

// Wire enums back to domain enums, derived from the one domain -> wire mapping each has (in
// WireResponse+Domain.swift), so that the two directions cannot disagree. Nil for `unspecified`
// and for numbers this build does not know.

extension Tokenledger_V1_GrantKind {
    public var domain: GrantKind? { GrantKind.allCases.first { Tokenledger_V1_GrantKind($0) == self } }
}

extension Tokenledger_V1_GrantState {
    public var domain: GrantState? { GrantState.allCases.first { Tokenledger_V1_GrantState($0) == self } }
}

extension Tokenledger_V1_HoldState {
    public var domain: HoldState? { HoldState.allCases.first { Tokenledger_V1_HoldState($0) == self } }
}

extension Tokenledger_V1_PeriodUnit {
    public var domain: PeriodUnit? { PeriodUnit.allCases.first { Tokenledger_V1_PeriodUnit($0) == self } }
}

extension Tokenledger_V1_HistoryKind {
    public var domain: HistoryKind? { HistoryKind.wireOrder.first { $0.wire == self }?.domain }
}
