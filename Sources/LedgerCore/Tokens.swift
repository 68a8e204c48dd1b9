/// An amount of the ledger's currency. Always a whole number of tokens; never a floating-point value.
///
/// Every amount that enters the ledger is bounded by ``Limits/amountMax`` and every tenant's lifetime
/// total by ``Limits/tenantTokensMax``, so sums inside a tenant cannot overflow `UInt64`. Arithmetic
/// still uses Swift's trapping operators: an overflow would be a broken invariant, not bad input.
public typealias Tokens = UInt64

extension UInt64 {
    /// `self - other`, or zero when `other` is larger.
    @inlinable
    package func subtractingClamped(_ other: UInt64) -> UInt64 {
        self >= other ? self - other : 0
    }
}
