// libFuzzer entry point for the "state" target (built only by scripts/fuzz; see docs/reliability.md).
import LedgerFuzzing

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzTarget.state.run(count == 0 ? [] : Array(UnsafeBufferPointer(start: start, count: count)))
    return 0
}

@_extern(c, "LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

// SwiftPM links an executable's entry point under the name <module>_main (and aliases main to
// it), so libFuzzer's own main is not the one that runs: this one hands over to libFuzzer's driver.
@_cdecl("fuzz_state_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, fuzzOneInput)
}
