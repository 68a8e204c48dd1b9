import NIOCore

/// A task executor that runs jobs on one NIO event loop. A task that prefers it (for example
/// `group.addTask(executorPreference: EventLoopExecutor(client.eventLoop))`) runs on the thread
/// where its connection's replies arrive: a call's reply resumes it with no wake-up of another
/// thread, and the next call it writes goes out in the same loop iteration, flushed together with
/// the other tasks' calls. The task must not block (it shares the loop with the connection's I/O).
public final class EventLoopExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
