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

/// A small pthread mutex; the storage layer stays free of NIO and Foundation.
final class Mutex: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    var raw: UnsafeMutablePointer<pthread_mutex_t> { mutex }
}

/// A condition variable paired with a ``Mutex``.
final class Condition: @unchecked Sendable {
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        condition = .allocate(capacity: 1)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
    }

    /// Waits; the mutex must be held.
    func wait(_ mutex: Mutex) { pthread_cond_wait(condition, mutex.raw) }
    func signal() { pthread_cond_signal(condition) }
    func broadcast() { pthread_cond_broadcast(condition) }
}

/// An open file with the few operations the log and snapshots need. Writes loop over partial
/// writes and EINTR; every failure is a typed ``StorageError`` naming the file.
final class DurableFile {
    let path: String
    private(set) var descriptor: Int32
    let faults: StorageFaults?

    init(path: String, flags: Int32, faults: StorageFaults?) throws(StorageError) {
        self.path = path
        self.faults = faults
        let descriptor = open(path, flags | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw StorageError.io(operation: "open", path: path, errno: errno) }
        self.descriptor = descriptor
    }

    deinit { close() }

    func close() {
        if descriptor >= 0 {
            _ = Glibc.close(descriptor)
            descriptor = -1
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(StorageError) {
        try faults?.checkWrite(path)
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw StorageError.io(operation: "write", path: path, errno: errno)
            }
            offset += written
        }
    }

    func write(_ bytes: [UInt8]) throws(StorageError) {
        let result: Result<Void, StorageError> = bytes.withUnsafeBytes { buffer in
            do throws(StorageError) {
                try write(buffer)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// fdatasync: the data and what is needed to read it back (the size), not the timestamps.
    func dataSync() throws(StorageError) {
        try faults?.checkSync(path)
        guard fdatasync(descriptor) == 0 else { throw StorageError.io(operation: "fdatasync", path: path, errno: errno) }
    }

    func fullSync() throws(StorageError) {
        try faults?.checkSync(path)
        guard fsync(descriptor) == 0 else { throw StorageError.io(operation: "fsync", path: path, errno: errno) }
    }

    func truncate(to length: Int) throws(StorageError) {
        guard ftruncate(descriptor, off_t(length)) == 0 else {
            throw StorageError.io(operation: "ftruncate", path: path, errno: errno)
        }
    }

    /// Allocates the file's blocks up to `length` and extends its size to it (zeros), so that later
    /// writes inside change no metadata: their fdatasync then writes the data alone, not the inode
    /// too. posix_fallocate falls back to writing zeros where the filesystem cannot allocate.
    func preallocate(from offset: Int, to length: Int) throws(StorageError) {
        let result = posix_fallocate(descriptor, off_t(offset), off_t(length - offset))
        guard result == 0 else { throw StorageError.io(operation: "posix_fallocate", path: path, errno: result) }
    }

    func seek(to offset: Int) throws(StorageError) {
        guard lseek(descriptor, off_t(offset), SEEK_SET) == off_t(offset) else {
            throw StorageError.io(operation: "lseek", path: path, errno: errno)
        }
    }

    func seekToEnd() throws(StorageError) -> Int {
        let position = lseek(descriptor, 0, SEEK_END)
        guard position >= 0 else { throw StorageError.io(operation: "lseek", path: path, errno: errno) }
        return Int(position)
    }
}

/// Directory and whole-file operations.
public enum FileSystem {
    /// The whole file's bytes.
    public static func readFile(_ path: String) throws(StorageError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StorageError.io(operation: "open", path: path, errno: errno) }
        defer { _ = close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw StorageError.io(operation: "fstat", path: path, errno: errno) }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeMutableBytes { buffer in
                read(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw StorageError.io(operation: "read", path: path, errno: errno)
            }
            if count == 0 { break }
            offset += count
        }
        return Array(bytes[0..<offset])
    }

    /// Writes a new file completely and fsyncs it (used for `.torn` files and the manifest).
    public static func writeFile(_ path: String, _ bytes: [UInt8], faults: StorageFaults? = nil) throws(StorageError) {
        let file = try DurableFile(path: path, flags: O_WRONLY | O_CREAT | O_TRUNC, faults: faults)
        try file.write(bytes)
        try file.fullSync()
        file.close()
    }

    /// Replaces `path` with `bytes` durably and atomically: `path.tmp` written and fsynced, renamed
    /// over `path`, the directory fsynced. After a crash the file is the old one or the new one,
    /// never a mix (a leftover `.tmp` is the caller's to clean up). Snapshots, the manifest and
    /// the webhook cursor are written this way.
    public static func replaceFile(_ path: String, _ bytes: [UInt8], faults: StorageFaults? = nil) throws(StorageError) {
        let temporary = path + ".tmp"
        try writeFile(temporary, bytes, faults: faults)
        try rename(temporary, path)
        let directory: Substring
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : path[..<slash]
        } else {
            directory = "."
        }
        try syncDirectory(String(directory), faults: faults)
    }

    /// fsync of a directory, so that created, renamed and removed entries survive a crash.
    public static func syncDirectory(_ path: String, faults: StorageFaults? = nil) throws(StorageError) {
        try faults?.checkSync(path)
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StorageError.io(operation: "open directory", path: path, errno: errno) }
        defer { _ = close(descriptor) }
        guard fsync(descriptor) == 0 else { throw StorageError.io(operation: "fsync directory", path: path, errno: errno) }
    }

    public static func makeDirectory(_ path: String) throws(StorageError) {
        if mkdir(path, 0o755) != 0, errno != EEXIST {
            throw StorageError.io(operation: "mkdir", path: path, errno: errno)
        }
    }

    /// Names in a directory (not `.` and `..`), sorted.
    public static func list(_ path: String) throws(StorageError) -> [String] {
        guard let directory = opendir(path) else { throw StorageError.io(operation: "opendir", path: path, errno: errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public static func rename(_ from: String, _ to: String) throws(StorageError) {
        guard Glibc.rename(from, to) == 0 else { throw StorageError.io(operation: "rename", path: "\(from) -> \(to)", errno: errno) }
    }

    public static func remove(_ path: String) throws(StorageError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw StorageError.io(operation: "unlink", path: path, errno: errno) }
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
}
