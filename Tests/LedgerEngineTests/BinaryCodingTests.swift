import LedgerCore
import LedgerEngine
import LedgerTesting
import Testing

@Suite struct BinaryCodingTests {
    @Test func commandsRoundTrip() throws {
        var generator = CommandGenerator(seed: 7)
        var commands = generator.setupCommands()
        for _ in 0..<3_000 { commands.append(generator.next()) }
        for command in commands {
            let bytes = try BinaryCoding.encode(command)
            #expect(try BinaryCoding.decode(LedgerCommand.self, from: bytes) == command)
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func statesRoundTrip(seed: UInt64) throws {
        let (_, state) = CommandGenerator.randomLedger(seed: seed, steps: 400)
        let bytes = try BinaryCoding.encode(state)
        let decoded = try BinaryCoding.decode(LedgerState.self, from: bytes)
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
            let bytes = try BinaryCoding.encode(generator.next())
            for cut in 0..<bytes.count {
                #expect(throws: (any Error).self) { try BinaryCoding.decode(LedgerCommand.self, from: Array(bytes.prefix(cut))) }
            }
            for index in bytes.indices {
                var damaged = bytes
                damaged[index] ^= 0xA5
                // Either a typed error or some other valid command: never a crash.
                _ = try? BinaryCoding.decode(LedgerCommand.self, from: damaged)
            }
        }
        var random = SeededGenerator(state: 99)
        for _ in 0..<2_000 {
            let bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            _ = try? BinaryCoding.decode(LedgerState.self, from: bytes)
        }
        // A hostile element count is refused before any allocation.
        #expect(throws: (any Error).self) { try BinaryCoding.decode([UInt64].self, from: [0xFF, 0xFF, 0xFF, 0x7F]) }
    }
}
