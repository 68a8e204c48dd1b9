/// The server's fixed limits, declared once (beside LedgerCore's `Limits`, `StorageLimits` and
/// `EngineLimits`). The configurable ones are `ConnectionLimits`, with their defaults.
public enum ServerLimits {
    /// Watches one connection may run at once (each also holds one of its in-flight call slots).
    public static let watchesPerConnectionMax = 16
    /// Calls in flight across the server (default of `LedgerService`): beyond it a call is
    /// refused with `overloaded` at once rather than queued without bound in front of the shards.
    public static let callsInFlightMaxDefault = 65_536
}
