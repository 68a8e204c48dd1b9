import Glibc
import LedgerStore
import LedgerTesting
import Testing

func body(_ lsn: UInt64, size: Int = 40) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: Int(lsn) &* 31 &+ $0) }
}

/// Writes `count` records through a real log into `directory` and closes it.
func writeLog(
    _ directory: String, count: Int, segmentSizeMax: Int = 64 << 20, preallocationStep: Int = 1 << 20, size: Int = 40,
    firstBody: Int = 1
) async throws {
    let recovered = try WALRecovery.recover(directory: directory, afterLSN: 0)
    let log = try WriteAheadLog(
        directory: directory, recovered: recovered,
        configuration: .init(segmentSizeMax: segmentSizeMax, preallocationStep: preallocationStep))
    var last: UInt64 = 0
    for index in firstBody..<(firstBody + count) {
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

