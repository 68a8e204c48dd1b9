/// Errors of the engine (the ledger's own outcomes come back in `CommandResult`).
public enum EngineError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The shard stopped after a storage failure; nothing more is acknowledged.
    case unavailable(String)
    /// Recovery found a record or snapshot it cannot decode, or the audit failed.
    case recoveryFailed(String)

    public var description: String {
        switch self {
        case .unavailable(let reason): return "unavailable: \(reason)"
        case .recoveryFailed(let reason): return "recovery failed: \(reason)"
        }
    }
}

/// Process exit codes of `ledgerd` and the tools, one per class of storage failure.
public enum StorageExitCode {
    /// A write or fsync failed while serving (fail-stop).
    public static let storageFailure: Int32 = 70
    /// Recovery refused: corruption in the log or snapshots, or an audit failure.
    public static let corruption: Int32 = 71
    /// The data directory is locked by another process or its manifest disagrees.
    public static let dataDirectory: Int32 = 72
}
