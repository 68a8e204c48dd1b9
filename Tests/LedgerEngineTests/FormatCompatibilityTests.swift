import Foundation
import LedgerCore
import LedgerEngine
import LedgerStore
import LedgerTesting
import Testing

/// Data directories written by earlier builds keep loading: Tests/LedgerEngineTests/Formats/<n>/
/// holds a shard directory (a snapshot, then a WAL tail) written by the build of format n, and the
/// commands that made it (`commands.bin`: a count, then each command's binary form as that build
/// wrote it). The test opens the directory with this build and replays the commands in memory:
/// both must be the same ledger, which must then keep working the same (frozen tenants thawed,
/// remembered requests answered).
@Suite struct FormatCompatibilityTests {
    static let formats = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Formats")

    /// Writes the fixture of this build's format into `TOKENLEDGER_WRITE_FORMAT_FIXTURE` (a
    /// directory); does nothing without it. How a new format's fixture is made before the format
    /// changes again.
    @Test func writeTheFixtureOfThisBuild() async throws {
        guard let target = ProcessInfo.processInfo.environment["TOKENLEDGER_WRITE_FORMAT_FIXTURE"] else { return }
        try FileSystem.makeDirectory(target)
        let shardDirectory = target + "/shard"
        try FileSystem.makeDirectory(shardDirectory)
        var generator = CommandGenerator(seed: 21)
        var commands = generator.setupCommands()
        for _ in 0..<600 { commands.append(generator.next()) }
        let clock = ManualClock(commands[0].time)
        let shard = try LedgerShard(directory: shardDirectory, index: 0, clock: clock)
        for (number, command) in commands.enumerated() {
            clock.set(command.time)
            _ = try await shard.execute(command.body, requestID: command.requestID)
            if number == 400 { try await shard.snapshot() }
        }
        await shard.close(finalSnapshot: false)
        var writer = BinaryWriter()
        writer.write(commands)
        try FileSystem.writeFile(target + "/commands.bin", writer.bytes)
    }

    @Test(arguments: ["1"])
    func aDataDirectoryOfAnEarlierFormatLoads(format: String) async throws {
        let fixture = Self.formats.appendingPathComponent(format).path
        let commandBytes = try FileSystem.readFile(fixture + "/commands.bin")
        var reader = BinaryReader(commandBytes)
        let commands = try reader.readArray(LedgerCommand.self)
        #expect(commands.count > 600)

        // Copied: opening a shard writes to its directory.
        let directory = TemporaryDirectory()
        for name in try FileSystem.list(fixture + "/shard") {
            try FileSystem.writeFile(directory.path + "/" + name, try FileSystem.readFile(fixture + "/shard/" + name))
        }
        var expected = LedgerState(time: commands[0].time)
        for command in commands { _ = expected.apply(command) }

        let clock = ManualClock(expected.time)
        let shard = try LedgerShard(directory: directory.path, index: 0, clock: clock)
        #expect(shard.recovery.snapshotLSN > 0, "the fixture has a snapshot")
        #expect(shard.recovery.recordsReplayed > 0, "and a log after it")
        let loaded = await shard.stateCopy
        #expect(loaded == expected)
        #expect(loaded.audit().isEmpty)

        // Both keep working the same: every tenant touched again (thawing those the snapshot left
        // frozen), remembered requests repeated.
        var generator = CommandGenerator(seed: 22)
        generator.time = expected.time
        var more: [LedgerCommand] = commands.suffix(40).filter { $0.requestID != nil }
        for _ in 0..<300 { more.append(generator.next()) }
        for command in more {
            let time = max(command.time, expected.time)
            clock.set(time)
            let live = try await shard.execute(command.body, requestID: command.requestID)
            let replayed = expected.apply(LedgerCommand(time: time, requestID: command.requestID, body: command.body))
            #expect(live.outcome == replayed.outcome)
        }
        #expect(await shard.stateCopy == expected)
        await shard.close(finalSnapshot: false)
    }
}
