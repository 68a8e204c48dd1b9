import Glibc
import LedgerStore

/// A fresh directory under the system temp dir, removed when the test ends.
public final class TemporaryDirectory {
    public let path: String

    public init(_ label: String = "ledger") {
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

    public func sub(_ name: String) -> String {
        let full = path + "/" + name
        try! FileSystem.makeDirectory(full)
        return full
    }
}

/// Deletes a directory tree without forking.
public func removeTree(_ path: String) {
    var status = stat()
    guard lstat(path, &status) == 0 else { return }
    if (status.st_mode & S_IFMT) == S_IFDIR {
        for name in (try? FileSystem.list(path)) ?? [] { removeTree(path + "/" + name) }
        rmdir(path)
    } else {
        unlink(path)
    }
}
