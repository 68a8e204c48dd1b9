#if canImport(Glibc)
import Glibc
#endif

/// glibc's per-thread cache of freed blocks (tcache) holds 7 blocks of each size by default. A
/// loop that reads 64 requests and answers them allocates and frees in bursts larger than that,
/// and every block past the seventh goes through the arena's bins: `_int_malloc` and its kin took
/// 9.4% of ledgerd's CPU at peak (perf). With 256 blocks per size they take 3%, and ledgerd's
/// CPU per call falls about 5% (docs/benchmarks.md). At most 256 blocks of each of the 64 cached
/// sizes (up to 1 KiB) stay per thread: about 8 MB a thread at the very worst, usually far less.
///
/// glibc reads the setting (`GLIBC_TUNABLES`) only when a process starts, so ledgerd sets it and
/// executes itself again, once, first thing; the process id stays the same. An operator's own
/// `glibc.malloc.tcache_count` in `GLIBC_TUNABLES` is left alone (set it to 7 for glibc's
/// default), and if the exec fails ledgerd goes on as it is.
enum MallocTuning {
    static let setting = "glibc.malloc.tcache_count"
    static let count = 256

    /// `GLIBC_TUNABLES` as this process runs with it (logged at start). Not /proc/PID/environ:
    /// glibc parses the variable where the kernel put it, cutting it at its first `:` there.
    static var current: String? { getenv("GLIBC_TUNABLES").map { String(cString: $0) } }

    static func applyByExecutingAgain() {
        #if canImport(Glibc)
        let previous = current
        if let previous, previous.contains(setting + "=") { return }
        let tuned = "\(setting)=\(count)"
        setenv("GLIBC_TUNABLES", previous.map { $0.isEmpty ? tuned : $0 + ":" + tuned } ?? tuned, 1)
        _ = execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Still here: the exec failed, and this process runs with glibc's defaults. The variable
        // goes back to what it was, so that the start-up log does not claim the setting.
        if let previous { setenv("GLIBC_TUNABLES", previous, 1) } else { unsetenv("GLIBC_TUNABLES") }
        #endif
    }
}
