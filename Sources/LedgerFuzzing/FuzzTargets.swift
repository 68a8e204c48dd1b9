import Foundation
import Glibc
import LedgerCore
import LedgerStore
import LedgerTesting
import LedgerWire
import NIOCore

/// The fuzz targets of docs/reliability.md. Each takes arbitrary bytes and must neither crash nor
/// break a property; a broken property is a `fatalError`, which libFuzzer reports as a crash.
/// `Sources/Fuzz/fuzz-ledger` is the libFuzzer executable around these functions (`scripts/fuzz`);
/// `FuzzRegressionTests` replays the saved corpus through the same functions in the normal suite.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// The frame decoder, then request decoding and validation, as the server runs them.
    case frames
    /// The WAL recovery scan over a segment of arbitrary bytes.
    case wal
    /// The snapshot loader: the file check, then the state decoder.
    case snapshot
    /// The state machine over command sequences drawn from the input, asserting the audit.
    case state

    public func run(_ bytes: [UInt8]) {
        switch self {
        case .frames: Self.frames(bytes)
        case .wal: Self.wal(bytes)
        case .snapshot: Self.snapshot(bytes)
        case .state: Self.state(bytes)
        }
    }

    static func frames(_ bytes: [UInt8]) {
        var buffer = ByteBuffer(bytes: bytes)
        let decoder = FrameDecoder(frameSizeMax: 1 << 20)
        while true {
            let frame: ByteBuffer?
            do {
                frame = try decoder.nextFrame(&buffer)
            } catch {
                return  // a framing error closes the connection: nothing more is read
            }
            guard let frame else { return }
            guard let request = try? WireRequest(frame: frame), !request.containsUnknownFields else { continue }
            guard let call = try? LedgerCall(request) else { continue }
            // Property: what the server accepted encodes back to a request that decodes to the
            // same call (the client and the server agree on every valid request).
            let again = WireRequest(callID: request.callID, call: call)
            guard let bytes: [UInt8] = try? again.serializedBytes(), let decoded = try? WireRequest(serializedBytes: bytes),
                let roundTrip = try? LedgerCall(decoded)
            else { fatalError("an accepted call does not survive encode and decode: \(call)") }
            if roundTrip != call { fatalError("round trip changed the call: \(call) became \(roundTrip)") }
        }
    }

    /// One scratch directory per process for the WAL target.
    nonisolated(unsafe) static var walDirectory: String?

    static func wal(_ bytes: [UInt8]) {
        let directory = walDirectory ?? {
            var template = Array("/tmp/ledger-fuzz-wal-XXXXXX".utf8CString)
            let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
            precondition(made != nil, "mkdtemp failed")
            let path = String(cString: made!)
            walDirectory = path
            return path
        }()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            unlink(directory + "/" + name)
        }
        // The input is the segment; a valid header is prepended half of the time (chosen by the
        // first byte) so that the record scan itself gets most of the work.
        var segment = bytes
        if let first = bytes.first, first & 1 == 1 { segment = WALFormat.segmentHeader(firstLSN: 1) + bytes.dropFirst() }
        let path = directory + "/wal-00000000000000000001.log"
        guard FileManager.default.createFile(atPath: path, contents: Data(segment)) else { fatalError("cannot write \(path)") }
        guard let first = try? WALRecovery.recover(directory: directory, afterLSN: 0) else { return }
        // Property: recovery is idempotent — after it cut a torn tail, a second run finds the same
        // records and nothing more to cut.
        guard let second = try? WALRecovery.recover(directory: directory, afterLSN: 0) else {
            fatalError("a recovered log no longer recovers")
        }
        if second.records.map(\.lsn) != first.records.map(\.lsn) || second.records.map(\.body) != first.records.map(\.body)
            || second.tornBytes != 0
        {
            fatalError("recovery is not idempotent: \(first.records.count) records, then \(second.records.count), torn \(second.tornBytes)")
        }
    }

    static func snapshot(_ bytes: [UInt8]) {
        let body: [UInt8]
        switch SnapshotStore.decode(bytes) {
        case .success(let snapshot): body = Array(snapshot.body)
        case .failure: body = bytes  // also feed the state decoder directly: most inputs fail the file check
        }
        guard let state = try? LedgerState(binary: body) else { return }
        // Property: a state that decodes encodes back to the same bytes' meaning.
        guard let again = try? LedgerState(binary: state.binaryEncoded), again == state else {
            fatalError("a decoded snapshot does not survive encode and decode")
        }
    }

    static func state(_ bytes: [UInt8]) {
        // Each 8 bytes seed a run of generated commands; the first also makes the setup.
        var state = LedgerState()
        var chunks = stride(from: 0, to: min(bytes.count, 128), by: 8).map { offset -> UInt64 in
            var seed: UInt64 = 0
            for byte in bytes[offset..<min(offset + 8, bytes.count)] { seed = seed << 8 | UInt64(byte) }
            return seed
        }
        if chunks.isEmpty { chunks = [0] }
        var generator = CommandGenerator(seed: chunks[0])
        for command in generator.setupCommands() { _ = state.apply(command) }
        for seed in chunks {
            generator.random = SeededGenerator(state: seed)
            for _ in 0..<25 {
                _ = state.apply(generator.next())
                let violations = state.audit()
                if !violations.isEmpty { fatalError("audit failed after a command: \(violations.prefix(3))") }
            }
        }
        // Property: the state survives the snapshot form.
        guard let again = try? LedgerState(binary: state.binaryEncoded), again == state else {
            fatalError("the state does not survive encode and decode")
        }
    }
}
