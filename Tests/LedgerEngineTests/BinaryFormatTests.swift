import LedgerCore
import LedgerTesting
import Testing

@Suite struct BinaryFormatTests {
    @Test func commandsRoundTrip() throws {
        var generator = CommandGenerator(seed: 7)
        var commands = generator.setupCommands()
        for _ in 0..<3_000 { commands.append(generator.next()) }
        for command in commands {
            #expect(try LedgerCommand(binary: command.binaryEncoded) == command)
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func statesRoundTrip(seed: UInt64) throws {
        let (_, state) = CommandGenerator.randomLedger(seed: seed, steps: 400)
        let decoded = try LedgerState(binary: state.binaryEncoded)
        #expect(decoded == state)
        #expect(decoded.audit().isEmpty)
        // The decoded state keeps working identically.
        var left = state
        var right = decoded
        var generator = CommandGenerator(seed: seed + 100)
        generator.time = state.time
        for _ in 0..<100 {
            let command = generator.next()
            #expect(left.apply(command) == right.apply(command))
        }
        #expect(left == right)
    }

    @Test func truncatedAndDamagedInputThrowsAndNeverCrashes() throws {
        var generator = CommandGenerator(seed: 11)
        for _ in 0..<60 {
            let bytes = generator.next().binaryEncoded
            for cut in 0..<bytes.count {
                #expect(throws: (any Error).self) { try LedgerCommand(binary: Array(bytes.prefix(cut))) }
            }
            for index in bytes.indices {
                var damaged = bytes
                damaged[index] ^= 0xA5
                // Either a typed error or some other valid command: never a crash.
                _ = try? LedgerCommand(binary: damaged)
            }
        }
        var random = SeededGenerator(state: 99)
        for _ in 0..<2_000 {
            let bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            _ = try? LedgerState(binary: bytes)
        }
        // A hostile element count is refused before any allocation.
        var reader = BinaryReader([0xFF, 0xFF, 0xFF, 0x7F])
        #expect(throws: BinaryFormatError.self) { try reader.readArray(UInt64.self) }
    }
}
