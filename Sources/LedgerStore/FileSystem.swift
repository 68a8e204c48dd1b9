import Glibc

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
        try replaceFile(path, faults: faults) { file throws(StorageError) in try file.write(bytes) }
    }

    /// `replaceFile` with the new file's bytes written by `write` (into `path.tmp`, which is then
    /// fsynced, closed and renamed).
    static func replaceFile(
        _ path: String, faults: StorageFaults?, writing write: (DurableFile) throws(StorageError) -> Void
    ) throws(StorageError) {
        let temporary = path + ".tmp"
        let file = try DurableFile(path: temporary, flags: O_WRONLY | O_CREAT | O_TRUNC, faults: faults)
        try write(file)
        try file.fullSync()
        file.close()
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

    /// The file's size in bytes.
    public static func size(_ path: String) throws(StorageError) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw StorageError.io(operation: "stat", path: path, errno: errno) }
        return Int(info.st_size)
    }

    /// Makes `to` hold the first `bytes` bytes of `from` (all of it when nil), durably: a hard link
    /// when the whole file is wanted and both are on one filesystem (the inode is shared, so a
    /// later deletion of `from` does not touch it), else a copy, fsynced. Returns true for a link.
    /// The caller fsyncs `to`'s directory.
    public static func linkOrCopy(from: String, to: String, bytes: Int? = nil) throws(StorageError) -> Bool {
        if bytes == nil {
            if link(from, to) == 0 { return true }
            guard errno == EXDEV || errno == EPERM || errno == EMLINK else {
                throw StorageError.io(operation: "link", path: to, errno: errno)
            }
        }
        let source = open(from, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { throw StorageError.io(operation: "open", path: from, errno: errno) }
        defer { _ = close(source) }
        let target = try DurableFile(path: to, flags: O_WRONLY | O_CREAT | O_EXCL, faults: nil)
        defer { target.close() }
        var left = bytes ?? Int.max
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while left > 0 {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, min($0.count, left)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw StorageError.io(operation: "read", path: from, errno: errno)
            }
            if count == 0 { break }
            try target.write(Array(buffer[..<count]))
            left -= count
        }
        if let bytes, left > 0 {
            throw StorageError.io(operation: "read \(bytes) bytes", path: from, errno: EIO)
        }
        try target.fullSync()
        return false
    }
}
