/// The storage layer's sizes, declared once (beside LedgerCore's `Limits`, `EngineLimits` and
/// `ServerLimits`; docs/operations.md lists them).
public enum StorageLimits {
    /// A WAL segment that reaches this size is closed and the next batch starts a new one.
    public static let segmentSizeDefault = 64 << 20
    /// WAL bytes allocated at a time ahead of the writes.
    public static let preallocationStepDefault = 1 << 20
    /// Largest WAL record body: a price catalog (1 MiB of JSON) with room to spare.
    public static let recordBodyMax = 4 << 20
}
