import LedgerCore

import Glibc

/// Where commands get their ledger time. The shard never lets time move backwards even if the
/// clock does (the state machine also clamps).
public protocol LedgerClock: Sendable {
    func now() -> LedgerTime
}

/// CLOCK_REALTIME in milliseconds.
public struct SystemClock: LedgerClock {
    public init() {}

    public func now() -> LedgerTime {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return LedgerTime(millisecondsSinceEpoch: Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000)
    }
}
