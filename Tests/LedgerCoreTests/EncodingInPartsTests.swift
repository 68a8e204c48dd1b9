@testable import LedgerCore
import LedgerTesting
import Testing

/// A snapshot is encoded in parts straight into its file (`LedgerState.encode(to:flushingAt:_:)`):
/// the parts, put together, must be the state's binary form exactly, frozen tenants and event
/// logs included, whatever the part size.
@Suite struct EncodingInPartsTests {
    @Test func thePartsPutTogetherAreTheWholeEncoding() throws {
        var generator = CommandGenerator(seed: 99)
        var state = LedgerState(time: generator.time)
        var commands = generator.setupCommands()
        for _ in 0..<400 { commands.append(generator.next()) }
        for command in commands { _ = state.apply(command) }
        // Some tenants frozen (their bytes copied as they are), some thawed again by a command.
        _ = state.freezeAllTenants()
        for _ in 0..<10 { _ = state.apply(generator.next()) }
        #expect(state.totals.frozenTenants > 0 && state.totals.frozenTenants < state.tenants.count)
        let whole = state.binaryEncoded
        for chunk in [1, 64, 1_000, whole.count / 2, .max] {
            var parts: [[UInt8]] = []
            var writer = BinaryWriter(capacity: 16)
            state.encode(to: &writer, flushingAt: chunk) { (writer: inout BinaryWriter) in
                #expect(writer.bytes.count >= chunk)
                writer.drain { parts.append(Array($0)) }
                #expect(writer.bytes.isEmpty)
            }
            writer.drain { parts.append(Array($0)) }
            #expect(parts.joined().elementsEqual(whole), "chunk \(chunk)")
            // A part between every two tenants at the smallest size; one part at the largest.
            if chunk == 1 { #expect(parts.count > state.tenants.count) }
            if chunk == .max { #expect(parts.count == 1) }
        }
        #expect(try LedgerState(binary: whole) == state)
    }
}
