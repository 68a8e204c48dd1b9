/// Failures of the storage layer. Corruption and I/O failures are operating errors: they stop the
/// shard (fail-stop) and, in the server, the process with a documented exit code.
public enum StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A system call failed: which, on what, and errno.
    case io(operation: String, path: String, errno: Int32)
    /// Damage that is not a torn tail: recovery refuses to start.
    case corruption(file: String, offset: Int, lsn: UInt64, reason: String)
    /// Every snapshot is damaged and the log does not reach back to LSN 1.
    case noUsableSnapshot(directory: String, reason: String)
    /// Another process holds the data directory.
    case locked(path: String)
    /// The manifest disagrees with the configuration or is unreadable.
    case manifest(path: String, reason: String)
    /// The log stopped after an earlier failure; nothing more is acknowledged.
    case stopped(reason: String)
    /// A record larger than the limit was offered.
    case recordTooLarge(size: Int, limit: Int)

    public var description: String {
        switch self {
        case .io(let operation, let path, let errno):
            return "\(operation) failed on \(path): errno \(errno) (\(String(cString: strerror(errno))))"
        case .corruption(let file, let offset, let lsn, let reason):
            return "corruption in \(file) at offset \(offset) (expected LSN \(lsn)): \(reason)"
        case .noUsableSnapshot(let directory, let reason):
            return "no usable snapshot in \(directory): \(reason)"
        case .locked(let path):
            return "data directory is in use by another process (lock \(path))"
        case .manifest(let path, let reason):
            return "manifest \(path): \(reason)"
        case .stopped(let reason):
            return "storage stopped: \(reason)"
        case .recordTooLarge(let size, let limit):
            return "record of \(size) bytes exceeds the limit of \(limit)"
        }
    }
}

import Glibc
