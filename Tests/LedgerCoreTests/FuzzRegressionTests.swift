import Foundation
import LedgerFuzzing
import Testing

/// Replays the fuzzing corpus (seeds and every minimized crasher scripts/fuzz found, in
/// Tests/LedgerCoreTests/FuzzCorpus/<target>/) through the same functions the fuzzers run.
@Suite("Fuzz corpus replay")
struct FuzzRegressionTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("FuzzCorpus")

    static func inputs(_ target: FuzzTarget) -> [(String, [UInt8])] {
        let directory = corpus.appendingPathComponent(target.rawValue)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
        return names.compactMap { name in
            (try? Data(contentsOf: directory.appendingPathComponent(name))).map { (name, Array($0)) }
        }
    }

    @Test("every saved input of every target runs without a crash or a broken property", arguments: FuzzTarget.allCases)
    func replay(target: FuzzTarget) {
        let inputs = Self.inputs(target)
        #expect(!inputs.isEmpty, "the corpus of \(target.rawValue) has seeds")
        for (_, bytes) in inputs { target.run(bytes) }
    }
}
