// The group commit of one event loop.
//
// A metering command (reserve, commit, release, refund, ...) is applied and logged on the event
// loop that read it. Its record is left pending in the shard's log (the log's writer thread is not
// woken for it) and the shard is noted here; once the loop has handled the I/O that was ready, a
// task in the same tick syncs each noted shard on the loop itself (`LedgerShard.syncPending`), so
// one fdatasync covers every command the loop read in that tick and their replies are written
// without a thread hand-off: read, apply, log, sync, reply, all on one thread. When the shard's
// log is already writing a batch (its writer thread, or another loop), the sync returns at once
// and that writer takes these records next.
//
// Only calls read in the tick's I/O phase use it (`syncBy: .caller` in `LedgerConnectionHandler`): calls
// started from a delivery, in the task phase, go to the writer thread, or a connection with many
// queued frames would chain sync after sync within one tick and keep the loop from its I/O.
//
// Why: at moderate rates most batches hold a few calls, and every hand-off to the writer thread and
// back to the loop is a sleeping thread woken; Redis with `appendfsync always` also syncs on its
// event loop. What it saved is measured in docs/benchmarks.md. The cost: a loop does not read while
// it syncs; its peers' calls wait for the next sync anyway, but a disk that stalls stalls the
// loop's connections entirely (handshakes, deadlines), not only their replies.

import LedgerEngine
import NIOCore
import Synchronization

/// Loop-confined: every method runs on `loop`.
final class EventLoopGroupCommit {
    private let loop: any EventLoop
    /// Shards with records this loop appended and has not synced yet.
    private var shards: [LedgerShard] = []
    private var scheduled = false
    /// Shards whose log's sync interval had not passed: synced when `timerArmed`'s timer fires.
    private var deferred: [LedgerShard] = []
    private var timerArmed = false

    init(loop: any EventLoop) {
        self.loop = loop
    }

    /// Notes that `shard` holds a record this loop appended with `syncBy: .caller`: it is synced after
    /// this tick's I/O.
    func needsSync(_ shard: LedgerShard) {
        loop.assertInEventLoop()
        if !shards.contains(where: { $0 === shard }) { shards.append(shard) }
        guard !scheduled else { return }
        scheduled = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        // From the loop itself: queued without waking the selector, run after this tick's I/O.
        loop.execute { bound.value.syncNoted() }
    }

    private func syncNoted() {
        scheduled = false
        let due = shards
        shards.removeAll(keepingCapacity: true)
        // Replies of calls made durable here are delivered by tasks later in this same tick.
        var soonest = UInt64.max
        for shard in due {
            let wait = shard.syncPending()
            guard wait > 0 else { continue }
            // Too soon after the log's last sync: again once its interval has passed.
            if !deferred.contains(where: { $0 === shard }) { deferred.append(shard) }
            soonest = min(soonest, wait)
        }
        guard !deferred.isEmpty, !timerArmed else { return }
        timerArmed = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.scheduleTask(in: .nanoseconds(Int64(clamping: soonest))) { bound.value.syncDeferred() }
    }

    private func syncDeferred() {
        timerArmed = false
        for shard in deferred where !shards.contains(where: { $0 === shard }) { shards.append(shard) }
        deferred.removeAll(keepingCapacity: true)
        syncNoted()
    }
}

/// One group commit per event loop of the server, made on first use.
final class EventLoopGroupCommits: Sendable {
    private let commits = Mutex<[ObjectIdentifier: NIOLoopBound<EventLoopGroupCommit>]>([:])

    /// The group commit of `loop`; called on `loop`.
    func forLoop(_ loop: any EventLoop) -> EventLoopGroupCommit {
        loop.assertInEventLoop()
        let key = ObjectIdentifier(loop as AnyObject)
        return commits.withLock { commits in
            if let existing = commits[key] { return existing.value }
            let made = EventLoopGroupCommit(loop: loop)
            commits[key] = NIOLoopBound(made, eventLoop: loop)
            return made
        }
    }
}
