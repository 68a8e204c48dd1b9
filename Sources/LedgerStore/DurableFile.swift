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
