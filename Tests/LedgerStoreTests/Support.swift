import Glibc
import LedgerStore
import Testing

/// A fresh directory under the system temp dir, removed when the test ends.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = "ledger") {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil, "mkdtemp failed")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        // Not system("rm -rf"): a fork would briefly inherit the descriptors (and flock locks) of
        // the test process, making lock tests flaky.
        removeTree(path)
    }

    func sub(_ name: String) -> String {
        let full = path + "/" + name
        try! FileSystem.makeDirectory(full)
        return full
    }
}

func body(_ lsn: UInt64, size: Int = 40) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: Int(lsn) &* 31 &+ $0) }
}

/// Writes `count` records through a real log into `directory` and closes it.
func writeLog(_ directory: String, count: Int, segmentSizeMax: Int = 64 << 20, size: Int = 40) async throws {
    let recovered = try WALRecovery.recover(directory: directory, afterLSN: 0)
    let log = try WriteAheadLog(directory: directory, recovered: recovered, configuration: .init(segmentSizeMax: segmentSizeMax))
    var last: UInt64 = 0
    for index in 1...count {
        last = try log.append(body(UInt64(index), size: size))
        // One batch per record, so that small segment limits rotate between records.
        try await log.waitDurable(last)
    }
    log.close()
}

func copyFile(_ from: String, _ to: String, length: Int? = nil) throws {
    var bytes = try FileSystem.readFile(from)
    if let length { bytes = Array(bytes.prefix(length)) }
    try FileSystem.writeFile(to, bytes)
}

/// Deletes a directory tree without forking.
func removeTree(_ path: String) {
    var status = stat()
    guard lstat(path, &status) == 0 else { return }
    if (status.st_mode & S_IFMT) == S_IFDIR {
        for name in (try? FileSystem.list(path)) ?? [] { removeTree(path + "/" + name) }
        rmdir(path)
    } else {
        unlink(path)
    }
}
