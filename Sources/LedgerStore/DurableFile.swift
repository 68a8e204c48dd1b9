import Glibc

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

    func write(_ bytes: [UInt8], at offset: Int? = nil) throws(StorageError) {
        let result: Result<Void, StorageError> = bytes.withUnsafeBytes { buffer in
            do throws(StorageError) {
                if let offset { try write(buffer, at: offset) } else { try write(buffer) }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Writes `bytes` at `offset` (pwrite: the file position stays).
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(StorageError) {
        try faults?.checkWrite(path)
        var done = 0
        while done < bytes.count {
            let written = Glibc.pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if written < 0 {
                if errno == EINTR { continue }
                throw StorageError.io(operation: "pwrite", path: path, errno: errno)
            }
            done += written
        }
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

    /// Writes zeros from `offset` up to `length` (at explicit offsets: the file position stays), so
    /// that later writes inside change no metadata: their fdatasync then writes the data alone, not
    /// the inode too. Zeros written, not `posix_fallocate`: ext4 allocates with unwritten extents,
    /// and the first write into each block converts its extent, metadata that the next fdatasync
    /// must write too (docs/storage.md has the measurement).
    func preallocate(from offset: Int, to length: Int) throws(StorageError) {
        var position = offset
        while position < length {
            let count = min(length - position, Self.zeros.count)
            let written = Self.zeros.withUnsafeBytes { Glibc.pwrite(descriptor, $0.baseAddress!, count, off_t(position)) }
            if written < 0 {
                if errno == EINTR { continue }
                throw StorageError.io(operation: "pwrite", path: path, errno: errno)
            }
            position += written
        }
    }

    private static let zeros = [UInt8](repeating: 0, count: 1 << 16)

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
