// The data directory: a manifest, an exclusive lock, one folder per shard.
//
//   <data-dir>/manifest      "tokenledger-data\nformat 1\nshards N\n"
//   <data-dir>/LOCK          flock()ed exclusively while a process has the directory open
//   <data-dir>/shard-000/    WAL segments and snapshots of shard 0
//   ...

#if canImport(Glibc)
import Glibc
#endif

public final class DataDirectory: @unchecked Sendable {
    public let path: String
    public let shardCount: Int
    private var lockDescriptor: Int32

    public static let formatVersion = 1

    /// Opens (creating on first use) the data directory for `shardCount` shards. Throws
    /// ``StorageError/locked(path:)`` when another process has it open and
    /// ``StorageError/manifest(path:reason:)`` when its manifest disagrees.
    public init(path: String, shardCount: Int, faults: StorageFaults? = nil) throws(StorageError) {
        precondition(shardCount >= 1)
        self.path = path
        self.shardCount = shardCount
        try FileSystem.makeDirectory(path)
        let lockPath = path + "/LOCK"
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw StorageError.io(operation: "open", path: lockPath, errno: errno) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            _ = Glibc.close(descriptor)
            if code == EWOULDBLOCK { throw StorageError.locked(path: lockPath) }
            throw StorageError.io(operation: "flock", path: lockPath, errno: code)
        }
        lockDescriptor = descriptor
        do throws(StorageError) {
            try checkManifest(faults: faults)
            for shard in 0..<shardCount { try FileSystem.makeDirectory(shardPath(shard)) }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Releases the lock.
    public func close() {
        if lockDescriptor >= 0 {
            _ = Glibc.close(lockDescriptor)
            lockDescriptor = -1
        }
    }

    public func shardPath(_ shard: Int) -> String { Self.shardPath(path, shard) }

    /// The folder of shard `shard` in the data directory at `path` (`shard-000`, ...).
    public static func shardPath(_ path: String, _ shard: Int) -> String {
        let digits = String(shard)
        return path + "/shard-" + String(repeating: "0", count: max(0, 3 - digits.count)) + digits
    }

    /// The shard count a data directory's manifest records, or nil when there is no manifest yet
    /// (or it cannot be read: opening the directory then reports why).
    public static func recordedShardCount(path: String) -> Int? {
        guard let bytes = try? FileSystem.readFile(path + "/manifest") else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("shards ") {
            return Int(line.dropFirst(7))
        }
        return nil
    }

    private func checkManifest(faults: StorageFaults?) throws(StorageError) {
        let manifestPath = path + "/manifest"
        let expected = "tokenledger-data\nformat \(Self.formatVersion)\nshards \(shardCount)\n"
        guard FileSystem.exists(manifestPath) else {
            try FileSystem.replaceFile(manifestPath, Array(expected.utf8), faults: faults)
            return
        }
        let text = String(decoding: try FileSystem.readFile(manifestPath), as: UTF8.self)
        let lines = text.split(separator: "\n").map(String.init)
        guard lines.count == 3, lines[0] == "tokenledger-data", lines[1].hasPrefix("format "), lines[2].hasPrefix("shards "),
            let format = Int(lines[1].dropFirst(7)), let shards = Int(lines[2].dropFirst(7))
        else { throw StorageError.manifest(path: manifestPath, reason: "unreadable manifest") }
        guard format == Self.formatVersion else {
            throw StorageError.manifest(path: manifestPath, reason: "format \(format), this build reads format \(Self.formatVersion)")
        }
        guard shards == shardCount else {
            throw StorageError.manifest(
                path: manifestPath,
                reason: "the directory has \(shards) shards but \(shardCount) are configured; the shard count of a data directory cannot change")
        }
    }
}
