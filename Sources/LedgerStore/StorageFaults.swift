import Glibc

/// The storage seam: every write and every sync of the WAL and of snapshots asks it first, so that
/// tests can make the N-th one fail on real files. Production passes none.
public final class StorageFaults: @unchecked Sendable {
    private let lock = Mutex()
    private var writesBeforeFailure: Int?
    private var syncsBeforeFailure: Int?
    private var errnoToReport: Int32 = EIO
    private var syncsPaused = false
    private var syncsWaiting = 0
    private let syncsResumed = Condition()

    public init() {}

    /// Every sync from now on waits, before it runs, until ``resumeSyncs()``: a test can hold a
    /// writer inside its batch and act meanwhile.
    public func pauseSyncs() {
        lock.withLock { syncsPaused = true }
    }

    public func resumeSyncs() {
        lock.withLock {
            syncsPaused = false
            syncsResumed.broadcast()
        }
    }

    /// How many syncs are waiting in a pause now.
    public var pausedSyncs: Int { lock.withLock { syncsWaiting } }

    /// Let `count` more writes succeed, then fail every write with `errno`.
    public func failWrites(after count: Int, errno: Int32 = EIO) {
        lock.withLock {
            writesBeforeFailure = count
            errnoToReport = errno
        }
    }

    /// Let `count` more syncs succeed, then fail every sync with `errno`.
    public func failSyncs(after count: Int, errno: Int32 = EIO) {
        lock.withLock {
            syncsBeforeFailure = count
            errnoToReport = errno
        }
    }

    func checkWrite(_ path: String) throws(StorageError) {
        if let error = consume(&writesBeforeFailure) { throw StorageError.io(operation: "write", path: path, errno: error) }
    }

    func checkSync(_ path: String) throws(StorageError) {
        lock.withLock {
            syncsWaiting += 1
            while syncsPaused { syncsResumed.wait(lock) }
            syncsWaiting -= 1
        }
        if let error = consume(&syncsBeforeFailure) { throw StorageError.io(operation: "fdatasync", path: path, errno: error) }
    }

    /// Counts one operation against `budget`; returns the errno to fail it with once it is spent.
    private func consume(_ budget: inout Int?) -> Int32? {
        lock.withLock {
            guard let left = budget else { return nil }
            if left == 0 { return errnoToReport }
            budget = left - 1
            return nil
        }
    }
}
