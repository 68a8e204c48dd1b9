import LedgerClient
import LedgerTesting
import LedgerWire

/// A watch's updates, read one at a time with a deadline.
public final class WatchUpdates: @unchecked Sendable {
    // Only ever used by one task at a time: `next` awaits the child that reads it.
    private var iterator: AsyncThrowingStream<Tokenledger_V1_WatchUpdate, any Error>.Iterator

    public init(_ watch: LedgerWatch) { iterator = watch.updates.makeAsyncIterator() }

    /// The next update; nil when the stream finished; throws the stream's error, or after
    /// `seconds` without an update.
    public func next(seconds: Int = 10) async throws -> Tokenledger_V1_WatchUpdate? {
        try await withThrowingTaskGroup(of: Tokenledger_V1_WatchUpdate?.self) { group in
            group.addTask { try await self.iterator.next() }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                throw ChildError("no watch update within \(seconds) s")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }
}
