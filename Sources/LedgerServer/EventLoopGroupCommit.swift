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
//
// Coalescing (opt-in, `ServerConfiguration.coalescing`, ledgerd `--coalesce-us`): after a group
// commit of a few calls, once their replies are written, the loop sleeps for the configured time
// before it looks at its sockets again, so that the calls arriving meanwhile are read, applied and
// synced together. At low rates a loop otherwise wakes for nearly every call (a thread woken,
// socket reads, TLS records and an fdatasync per one or two calls, 60-85 µs of CPU each on the
// project's VM); it is interrupt coalescing, paid for in latency: a call that arrives during the
// wait is read up to that much later. A loop whose commit held `coalescingBatchMax` calls or more
// is busy enough to batch by itself and does not wait. Off by default: a caller that waits for
// each reply before its next call (a script, a sequential worker) would be slowed by the wait on
// every call, and a loop cannot tell such callers from independent ones.

import LedgerEngine
import NIOCore
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Loop-confined: every method runs on `loop`.
final class EventLoopGroupCommit {
    /// A commit of this many calls or more is not followed by a coalescing wait.
    static let coalescingBatchMax = 16

    private let loop: any EventLoop
    /// Shards with records this loop appended and has not synced yet.
    private var shards: [LedgerShard] = []
    /// Calls noted since the last commit.
    private var noted = 0
    private var scheduled = false
    /// The coalescing wait; nil: none.
    private let coalescing: timespec?
    /// Shards whose log's sync interval had not passed: synced when `timerArmed`'s timer fires.
    private var deferred: [LedgerShard] = []
    private var timerArmed = false

    /// The loop's turn (kept here, with the group commit, as the one per-loop state of the server).
    let turn: EventLoopTurn

    init(loop: any EventLoop, ticks: EventLoopTicks?, coalescing: Duration = .zero) {
        self.loop = loop
        turn = EventLoopTurn(loop: loop, ticks: ticks)
        let (seconds, attoseconds) = coalescing.components
        self.coalescing = coalescing > .zero ? timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000)) : nil
    }

    /// Notes that `shard` holds a record this loop appended with `syncBy: .caller`: it is synced after
    /// this tick's I/O.
    func needsSync(_ shard: LedgerShard) {
        loop.assertInEventLoop()
        noted += 1
        if !shards.contains(where: { $0 === shard }) { shards.append(shard) }
        guard !scheduled else { return }
        scheduled = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        // From the loop itself: queued without waking the selector, run after this tick's I/O.
        loop.execute { bound.value.syncNoted() }
    }

    private func syncNoted() {
        scheduled = false
        let calls = noted
        noted = 0
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
        if let coalescing, calls > 0, calls < Self.coalescingBatchMax, deferred.isEmpty {
            // Queued after the deliveries the syncs above queued: the replies are written first.
            // (Calls whose records the log's writer thread took, because a batch was being written
            // when this loop came to sync, are delivered when that thread is done: after the wait.)
            loop.execute { Self.wait(coalescing) }
        }
        guard !deferred.isEmpty, !timerArmed else { return }
        timerArmed = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.scheduleTask(in: .nanoseconds(Int64(clamping: soonest))) { bound.value.syncDeferred() }
    }

    /// Blocks the loop for the coalescing time, as its fdatasync does: the sockets' new data waits
    /// in their buffers and is read together after it.
    private static func wait(_ time: timespec) {
        var asked = time
        var remaining = timespec()
        while nanosleep(&asked, &remaining) != 0, errno == EINTR { asked = remaining }
    }

    private func syncDeferred() {
        timerArmed = false
        for shard in deferred where !shards.contains(where: { $0 === shard }) { shards.append(shard) }
        deferred.removeAll(keepingCapacity: true)
        syncNoted()
    }
}

/// One event loop's turns of work between looks at its sockets. Loop-confined.
///
/// NIO runs a tick's tasks until none is left before it looks at its sockets again, and a
/// connection's delivery (a task) starts that connection's next queued frames, whose replies are
/// more tasks: a client that sends thousands of requests in one go kept the loop in one tick for
/// as long as they took, and a new connection on the same loop waited that long for each step of
/// its TLS handshake (4 clients sending 200,000 balance requests each: a bystander's first call
/// took 8-16 s, and past the 10 s handshake deadline it was closed; `ConnectionAbuseTests`).
///
/// A turn begins with a socket read (``EventLoopTurnMarker``, at the head of the pipeline: TLS
/// also hands on decrypted input from tasks, when a reply is written) or when yielded connections
/// resume. Once it has lasted ``length``, a connection starts no more of its queued frames: it
/// yields, and the yielded connections resume together from one timer, ``pause`` later and not in
/// the tick that yielded (``EventLoopTicks`` tells when that tick ended; without it, the timer
/// alone). Until then only replies are left to write, so the tick ends and the loop reads its
/// sockets.
final class EventLoopTurn {
    /// Task-phase work a loop does before it reads its sockets again.
    static let length = TimeAmount.milliseconds(5)
    /// How long after the first yield of a turn the yielded connections resume, at the earliest.
    static let pause = TimeAmount.milliseconds(1)

    private let loop: any EventLoop
    private let ticks: EventLoopTicks?
    private var began = NIODeadline.now()
    private var yielded: [() -> Void] = []
    private var armed = false
    /// The loop's tick count when the first connection of the turn yielded.
    private var yieldedInTick: UInt64 = 0

    init(loop: any EventLoop, ticks: EventLoopTicks?) {
        self.loop = loop
        self.ticks = ticks
    }

    /// A new turn: the loop is reading its sockets.
    func begin() { began = .now() }

    /// Whether connections should yield to the loop's I/O now.
    var isOver: Bool { NIODeadline.now() - began > Self.length }

    /// Runs `resume` in the loop's next turn, after its I/O.
    func yield(_ resume: @escaping () -> Void) {
        loop.assertInEventLoop()
        yielded.append(resume)
        guard !armed else { return }
        armed = true
        yieldedInTick = ticks?.count(of: loop) ?? 0
        arm()
    }

    private func arm() {
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.scheduleTask(in: Self.pause) { bound.value.timerFired() }
    }

    private func timerFired() {
        // Still the tick that yielded (its leftover replies took longer than the pause): once it
        // has ended, so that the loop reads its sockets first.
        if let ticks, ticks.count(of: loop) == yieldedInTick { return arm() }
        armed = false
        begin()
        let resuming = yielded
        yielded.removeAll()
        for resume in resuming { resume() }
    }
}

/// Counts the ticks of each event loop of a group made with it as its metrics delegate (NIO calls
/// `processedTick` at the end of every tick, before the loop waits for I/O again).
public final class EventLoopTicks: NIOEventLoopMetricsDelegate {
    private let counts = Mutex<[ObjectIdentifier: UInt64]>([:])

    public init() {}

    public func processedTick(info: NIOEventLoopTickInfo) {
        counts.withLock { $0[info.eventLoopID, default: 0] &+= 1 }
    }

    /// Ticks `loop` has finished.
    func count(of loop: any EventLoop) -> UInt64 {
        let id = ObjectIdentifier(loop as AnyObject)
        return counts.withLock { $0[id] ?? 0 }
    }
}

/// First in a connection's pipeline: a socket read begins the loop's turn (``EventLoopTurn``).
final class EventLoopTurnMarker: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let turn: EventLoopTurn

    init(_ turn: EventLoopTurn) { self.turn = turn }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        turn.begin()
        context.fireChannelRead(data)
    }
}

/// One group commit per event loop of the server, made on first use.
final class EventLoopGroupCommits: Sendable {
    private let commits = Mutex<[ObjectIdentifier: NIOLoopBound<EventLoopGroupCommit>]>([:])
    private let ticks: EventLoopTicks?
    private let coalescing: Duration

    init(ticks: EventLoopTicks?, coalescing: Duration = .zero) {
        self.ticks = ticks
        self.coalescing = coalescing
    }

    /// The group commit of `loop`; called on `loop`.
    func forLoop(_ loop: any EventLoop) -> EventLoopGroupCommit {
        loop.assertInEventLoop()
        let key = ObjectIdentifier(loop as AnyObject)
        return commits.withLock { commits in
            if let existing = commits[key] { return existing.value }
            let made = EventLoopGroupCommit(loop: loop, ticks: ticks, coalescing: coalescing)
            commits[key] = NIOLoopBound(made, eventLoop: loop)
            return made
        }
    }
}
