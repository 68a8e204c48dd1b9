/// Something a subscriber may want to be told about. Events come out of `apply` with the command
/// that caused them (or with the time that made them fall due); they are also history entries.
public struct LedgerEvent: Hashable, Sendable, Codable {
    public enum Kind: Hashable, Sendable, Codable {
        /// Spendable tokens fell below the threshold (`member` nil: the pool's threshold).
        case lowBalance(member: MemberID?, available: Tokens, threshold: Tokens)
        /// Spendable tokens are back at or above the threshold.
        case balanceRecovered(member: MemberID?, available: Tokens, threshold: Tokens)
        /// A reserve or commit was refused by the member's budget.
        case budgetExceeded(member: MemberID, requested: Tokens, remaining: Tokens, cap: Tokens, resetsAt: LedgerTime)
        case holdExpired(hold: HoldID, released: Tokens)
        case grantExpired(grant: GrantID, kind: GrantKind, expired: Tokens)
        case planRenewed(grant: GrantID, amount: Tokens, periodStart: LedgerTime, periodEnd: LedgerTime)
        case budgetReset(member: MemberID, periodStart: LedgerTime, periodEnd: LedgerTime)
    }

    public var tenant: TenantID
    public var time: LedgerTime
    public var kind: Kind
}
