// The libFuzzer executable for every FuzzTarget (built only by scripts/fuzz; see
// docs/reliability.md). TOKENLEDGER_FUZZ_TARGET names the target; libFuzzer's child runs (crash
// minimization) inherit it.
import Glibc
import LedgerFuzzing

nonisolated(unsafe) var target = FuzzTarget.frames

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    target.run(count == 0 ? [] : Array(UnsafeBufferPointer(start: start, count: count)))
    return 0
}

@_extern(c, "LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

// SwiftPM links an executable's entry point under the name <module>_main (and aliases main to
// it), so libFuzzer's own main is not the one that runs: this one picks the target and hands over
// to libFuzzer's driver.
@_cdecl("fuzz_ledger_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let name = getenv("TOKENLEDGER_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let chosen = FuzzTarget(rawValue: name) else {
        let message = "set TOKENLEDGER_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        return 64
    }
    target = chosen
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, fuzzOneInput)
}
