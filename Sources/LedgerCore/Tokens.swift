/// An amount of the ledger's currency. Always a whole number of tokens; never a floating-point value.
///
/// Every amount that enters the ledger is bounded by ``Limits/amountMax`` and every tenant's lifetime
/// total by ``Limits/tenantTokensMax``, so sums inside a tenant cannot overflow `UInt64`. Arithmetic
/// still uses Swift's trapping operators: an overflow would be a broken invariant, not bad input.
public typealias Tokens = UInt64

extension UInt64 {
    /// The sum of `parts`, or nil when it does not fit in `UInt64`: for checks that must report an
    /// overflow as a broken invariant instead of trapping (the audit, load and history checkers).
    public static func checkedSum(_ parts: [UInt64]) -> UInt64? {
        var sum: UInt64 = 0
        for part in parts {
            let (next, overflow) = sum.addingReportingOverflow(part)
            if overflow { return nil }
            sum = next
        }
        return sum
    }

    /// `self - other`, or zero when `other` is larger.
    @inlinable
    package func subtractingClamped(_ other: UInt64) -> UInt64 {
        self >= other ? self - other : 0
    }
}
