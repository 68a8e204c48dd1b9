import LedgerWire
import Testing

/// The hand-off of replies (server) and requests (client) to an event loop.
@Suite struct EventLoopBatchTests {
    /// The first add after a take asks for a drain; a take into an array hands over everything
    /// added, in order, and the batch goes on in the storage the drain gave back (no new room
    /// for each batch).
    @Test func aTakeIntoAnArrayHandsOverTheBatchAndTheBatchGoesOnInTheRoomGivenBack() {
        let batch = EventLoopBatch<Int>()
        #expect(batch.add(1))
        #expect(!batch.add(2))
        var items: [Int] = []
        batch.take(into: &items)
        #expect(items == [1, 2])
        items.removeAll(keepingCapacity: true)
        let drained = items.withUnsafeBufferPointer { $0.baseAddress }
        #expect(batch.add(3))
        batch.take(into: &items)
        #expect(items == [3])
        items.removeAll(keepingCapacity: true)
        // The batch now grows in the storage drained first; the next take hands that back.
        #expect(batch.add(4))
        #expect(!batch.add(5))
        batch.take(into: &items)
        #expect(items == [4, 5])
        #expect(items.withUnsafeBufferPointer { $0.baseAddress } == drained)
        // `take()` hands over the same way.
        #expect(batch.add(6))
        #expect(batch.take() == [6])
        #expect(batch.add(7))
    }
}
