/// The engine's own bounds on maintenance work, declared once (beside LedgerCore's `Limits`,
/// `StorageLimits` and `ServerLimits`).
public enum EngineLimits {
    /// Tenants the idle sweep visits per hold of a shard's lock: the sweep runs on the maintenance
    /// task between calls, so one hold must stay short.
    public static let idleSweepVisitsPerLock = 4_096
    /// Tenants the idle sweep freezes (encodes) per hold of a shard's lock.
    public static let idleSweepFreezesPerLock = 64
    /// Freezes between two `malloc_trim` calls (a tenth of it once a sweep round froze nothing).
    public static let frozenTenantsPerTrim = 10_000
    /// Shortest time between two `malloc_trim` calls, in nanoseconds (a trim holds each malloc
    /// arena's lock while it walks it).
    public static let trimIntervalNanoseconds: UInt64 = 10_000_000_000
}
