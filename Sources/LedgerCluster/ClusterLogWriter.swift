// The node's group commit across shards (docs/cluster.md, "One statement per round trip, fenced per shard"): one
// connection, one statement in flight, carrying the pending batch (or lease renewal) of every
// shard that has one. PostgreSQL's cost is mostly per statement and per commit (parse, WAL flush,
// the synchronous standby's round), so one statement for all shards costs about what one shard's
// did: measured in docs/benchmarks.md ("Cluster mode").
//
// The statement calls `tokenledger_append` (ClusterSchema), which applies each shard's part only if
// that shard's head is at the batch's epoch and first LSN, and returns the shards it applied; all
// parts commit together. A failed statement or a lost connection makes every part's outcome
// unknown; the writer connects again for the next statement.

import LedgerCore
import LedgerStore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO

final class ClusterLogWriter: @unchecked Sendable {
    private let database: ClusterDatabase
    private let eventLoop: any EventLoop
    private let leaseMilliseconds: Int64
    private let logger: Logger
    private let lock = NIOLock()

    // Guarded by `lock`.
    private var queue: [PostgresShardLog] = []
    private var inFlight = false
    private var scheduled = false
    private var connection: PostgresConnection?
    private var connecting = false
    private var closed = false

    init(database: ClusterDatabase, lease: Duration, logger: Logger) {
        self.database = database
        eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        leaseMilliseconds = lease.wholeMilliseconds
        self.logger = logger
    }

    /// `log` has something to send (it calls this once per batch, when nothing of it is in flight).
    func wake(_ log: PostgresShardLog) {
        let schedule = lock.withLock { () -> Bool in
            queue.append(log)
            guard !inFlight, !scheduled else { return false }
            scheduled = true
            return true
        }
        if schedule { eventLoop.execute { self.flush() } }
    }

    /// Closes the connection (the node stopped).
    func close() {
        let connection = lock.withLock { () -> PostgresConnection? in
            closed = true
            defer { self.connection = nil }
            return self.connection
        }
        if let connection { Self.close(connection) }
    }

    /// On the event loop: sends what is queued, unless a statement is in flight.
    private func flush() {
        lock.lock()
        scheduled = false
        guard !inFlight, !queue.isEmpty, !closed else {
            lock.unlock()
            return
        }
        guard let connection, !connection.isClosed else {
            self.connection = nil
            let start = !connecting
            connecting = true
            lock.unlock()
            if start { connect() }
            return
        }
        let logs = queue
        queue = []
        inFlight = true
        lock.unlock()
        let batches = logs.compactMap { $0.takeBatch() }
        guard !batches.isEmpty else { return finish() }
        let sent = monotonicNanoseconds()
        let query: PostgresQuery = """
            SELECT applied FROM tokenledger_append(
                \(batches.map(\.shard)), \(batches.map(\.epoch)), \(batches.map { Int64($0.first) }),
                \(batches.map { Int64($0.last) }), \(batches.map { ByteBuffer(bytes: $0.body) }), \(leaseMilliseconds)) AS applied
            """
        connection.query(query, logger: logger).whenComplete { result in
            switch result {
            case .success(let rows):
                var applied = Set<Int32>()
                for row in rows.rows {
                    if let shard = try? row.decode(Int32.self) { applied.insert(shard) }
                }
                for batch in batches { batch.log.finished(batch, applied: applied.contains(batch.shard), sent: sent) }
            case .failure(let error):
                for batch in batches { batch.log.unknownOutcome(error) }
                self.dropConnection(connection)
            }
            self.finish()
        }
    }

    private func finish() {
        let again = lock.withLock { () -> Bool in
            inFlight = false
            guard !queue.isEmpty, !scheduled else { return false }
            scheduled = true
            return true
        }
        if again { eventLoop.execute { self.flush() } }
    }

    private func dropConnection(_ failed: PostgresConnection) {
        lock.withLock { if connection === failed { connection = nil } }
        Self.close(failed)
    }

    /// Closes `connection`, keeping it alive until it is closed (postgres-nio asserts that a
    /// connection is closed before it goes away).
    private static func close(_ connection: PostgresConnection) {
        let done: EventLoopFuture<Void> = connection.close()
        done.whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    private func connect() {
        let configuration: PostgresConnection.Configuration
        do {
            configuration = try database.url.connectionConfiguration()
        } catch {
            return connected(.failure(error))
        }
        PostgresConnection.connect(on: eventLoop, configuration: configuration, id: 0, logger: logger).whenComplete {
            self.connected($0)
        }
    }

    private func connected(_ result: Result<PostgresConnection, any Error>) {
        switch result {
        case .success(let connection):
            let keep = lock.withLock { () -> Bool in
                connecting = false
                guard !closed else { return false }
                self.connection = connection
                return true
            }
            guard keep else { return Self.close(connection) }
            eventLoop.execute { self.flush() }
        case .failure(let error):
            // Every queued shard's batch cannot be sent: unknown to them is only what they appended,
            // which nothing acknowledged; they stop (the node drops them, and takes them again later).
            let logs = lock.withLock { () -> [PostgresShardLog] in
                connecting = false
                defer { queue = [] }
                return queue
            }
            logger.warning("cannot connect to PostgreSQL for the shard logs", metadata: ["error": "\(String(reflecting: error))"])
            for log in logs { log.unknownOutcome(error) }
        }
    }
}
