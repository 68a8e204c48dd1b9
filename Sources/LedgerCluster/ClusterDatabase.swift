// The PostgreSQL side of cluster mode (docs/cluster.md): connection settings from a URL, the
// tables (created and versioned by `ledgerd cluster init`), and the statements that take, load,
// renew and hand over shards. The log's own statement is in PostgresShardLog.

import Foundation
import LedgerCore
import LedgerEngine
import LedgerStore
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// A cluster-mode failure that is not the ledger's typed refusal: misconfiguration, a database that
/// is not a TokenLedger cluster, or a shard whose stored log fails its checks.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Where the cluster's PostgreSQL is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=M]`
/// with M one of disable, prefer (the default), require (encrypted, the certificate not checked)
/// or verify-full (encrypted, certificate and host name checked against the system's CAs).
public struct ClusterDatabaseURL: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var sslMode: String

    public init(_ text: String) throws {
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql",
            let host = url.host, !host.isEmpty, let user = url.user, !user.isEmpty
        else {
            throw ClusterError("--postgres-url: expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, got \(Self.redacted(text))")
        }
        self.host = host
        port = url.port ?? 5432
        self.user = user
        password = url.password
        database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        guard !database.isEmpty else { throw ClusterError("--postgres-url: name the database (…/DATABASE)") }
        sslMode = url.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        guard ["disable", "prefer", "require", "verify-full"].contains(sslMode) else {
            throw ClusterError("--postgres-url: sslmode must be disable, prefer, require or verify-full, not \(sslMode)")
        }
    }

    /// The URL without its password, for logs.
    public var description: String { "postgres://\(user)@\(host):\(port)/\(database)?sslmode=\(sslMode)" }

    static func redacted(_ text: String) -> String {
        guard var url = URLComponents(string: text), url.password != nil else { return text }
        url.password = "***"
        return url.string ?? "(unparsable)"
    }

    func tls() throws -> PostgresConnection.Configuration.TLS {
        switch sslMode {
        case "disable": return .disable
        case "require":
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            return .require(try NIOSSLContext(configuration: configuration))
        case "verify-full": return .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        default: return .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
    }

    public func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: try tls())
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    public func clientConfiguration(maximumConnections: Int) throws -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch sslMode {
        case "disable": tls = .disable
        case "require":
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            tls = .require(configuration)
        case "verify-full": tls = .require(.makeClientConfiguration())
        default: tls = .prefer(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tls)
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }
}

/// The tables' names and the statements on them. Every statement that changes a shard's log or
/// its head names the epoch it expects, so that a node that lost a shard changes nothing.
public enum ClusterSchema {
    /// The layout of the tables and of the log's bodies; a node refuses a database of another.
    public static let format = 1
    public static let shardCountDefault = 32
    public static let shardCountMax = 1024

    static let create: [String] = [
        """
        CREATE TABLE tokenledger_cluster (
            id int PRIMARY KEY CHECK (id = 1),
            shard_count int NOT NULL,
            format int NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            catalog_version text NOT NULL DEFAULT '',
            catalog bytea)
        """,
        """
        CREATE TABLE tokenledger_shard_head (
            shard int PRIMARY KEY,
            epoch bigint NOT NULL DEFAULT 0,
            owner text,
            owner_address text,
            lease_until timestamptz NOT NULL DEFAULT '-infinity',
            next_lsn bigint NOT NULL DEFAULT 1,
            snapshot_lsn bigint NOT NULL DEFAULT 0) WITH (fillfactor = 50)
        """,
        """
        CREATE TABLE tokenledger_shard_log (
            shard int NOT NULL,
            first_lsn bigint NOT NULL,
            last_lsn bigint NOT NULL,
            epoch bigint NOT NULL,
            body bytea NOT NULL,
            PRIMARY KEY (shard, first_lsn))
        """,
        """
        CREATE TABLE tokenledger_shard_snapshot (
            shard int NOT NULL,
            lsn bigint NOT NULL,
            chunk int NOT NULL,
            chunks int NOT NULL,
            crc bigint NOT NULL,
            body bytea NOT NULL,
            PRIMARY KEY (shard, lsn, chunk))
        """,
        // One statement for the pending batches of all the shards of a node (ClusterLogWriter): each
        // shard's part applies only at its epoch and first LSN (the fence); returns the shards applied.
        // A part with no records (last < first) renews the lease alone.
        """
        CREATE FUNCTION tokenledger_append(
            p_shards int[], p_epochs bigint[], p_firsts bigint[], p_lasts bigint[], p_bodies bytea[], p_lease_ms bigint)
        RETURNS SETOF int LANGUAGE plpgsql AS $$
        BEGIN
            FOR i IN 1 .. coalesce(array_length(p_shards, 1), 0) LOOP
                UPDATE tokenledger_shard_head
                   SET next_lsn = p_lasts[i] + 1, lease_until = now() + p_lease_ms * interval '1 millisecond'
                 WHERE shard = p_shards[i] AND epoch = p_epochs[i] AND next_lsn = p_firsts[i];
                IF FOUND THEN
                    IF p_lasts[i] >= p_firsts[i] THEN
                        INSERT INTO tokenledger_shard_log (shard, first_lsn, last_lsn, epoch, body)
                        VALUES (p_shards[i], p_firsts[i], p_lasts[i], p_epochs[i], p_bodies[i]);
                    END IF;
                    RETURN NEXT p_shards[i];
                END IF;
            END LOOP;
        END $$
        """,
        """
        CREATE TABLE tokenledger_node (
            node_id text PRIMARY KEY,
            address text NOT NULL,
            alive_until timestamptz NOT NULL)
        """,
    ] + additions

    /// Tables added since format 1, made with `IF NOT EXISTS` by `cluster init` and by every node
    /// as it opens the cluster (one at a time), so that a cluster made before them gains them and
    /// the format stays 1.
    /// - `tokenledger_shard_epoch`: one row per take-over (the epoch, the head's next LSN then, who,
    ///   when), written by the take-over's own statement: the ownership history that the fault
    ///   checker holds the log against (no batch of an epoch after a newer epoch's take-over).
    /// - A snapshot's `format`: the binary format version of its body (`SnapshotStore.formatVersion`;
    ///   rows from before the column are format 1).
    /// - The webhook sink's cursor: a shard's row in `tokenledger_webhook_shard` says its tenants'
    ///   cursors exist (the sink started for it); a tenant's cursor is the last event id the
    ///   endpoint acknowledged and never moves back.
    static let additions: [String] = [
        """
        CREATE TABLE IF NOT EXISTS tokenledger_shard_epoch (
            shard int NOT NULL,
            epoch bigint NOT NULL,
            next_lsn bigint NOT NULL,
            owner text,
            acquired_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (shard, epoch))
        """,
        "CREATE TABLE IF NOT EXISTS tokenledger_webhook_shard (shard int PRIMARY KEY)",
        """
        CREATE TABLE IF NOT EXISTS tokenledger_webhook_cursor (
            tenant text PRIMARY KEY,
            shard int NOT NULL,
            last_event_id bigint NOT NULL)
        """,
        "CREATE INDEX IF NOT EXISTS tokenledger_webhook_cursor_shard ON tokenledger_webhook_cursor (shard)",
        "ALTER TABLE tokenledger_shard_snapshot ADD COLUMN IF NOT EXISTS format int NOT NULL DEFAULT 1",
    ]

    /// A snapshot is stored in chunks of this size (a bytea value is at most 1 GB, and smaller rows
    /// keep PostgreSQL's memory per row modest).
    static let snapshotChunkBytes = 8 << 20
}

/// One node's handle on the cluster's database: a small pool for everything but the logs' appends
/// (each owned shard's log has a connection of its own, see PostgresShardLog).
public final class ClusterDatabase: Sendable {
    public let url: ClusterDatabaseURL
    let client: PostgresClient
    let logger: Logger
    private let runner: Task<Void, Never>

    public init(url: ClusterDatabaseURL, logger: Logger) throws {
        self.url = url
        self.logger = logger
        let client = PostgresClient(configuration: try url.clientConfiguration(maximumConnections: 8), backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
    }

    /// Stops the pool (its connections close).
    public func shutdown() {
        runner.cancel()
    }

    /// `ledgerd cluster init`: creates the tables and one head row per shard, in one transaction.
    /// A database that has them already is left as it is when its shard count matches, refused
    /// otherwise (the shard count is fixed at init: tenants map to shards by it).
    public func initialize(shardCount: Int) async throws -> (created: Bool, shardCount: Int) {
        guard (1...ClusterSchema.shardCountMax).contains(shardCount) else {
            throw ClusterError("the shard count must be between 1 and \(ClusterSchema.shardCountMax)")
        }
        if let existing = try await clusterRow() {
            guard existing.shardCount == shardCount else {
                throw ClusterError(
                    "the database holds a cluster of \(existing.shardCount) shards already; the shard count cannot change")
            }
            return (false, shardCount)
        }
        try await client.withTransaction(logger: logger) { connection in
            for statement in ClusterSchema.create {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            let count = Int32(shardCount)
            let format = Int32(ClusterSchema.format)
            try await connection.query(
                "INSERT INTO tokenledger_cluster (id, shard_count, format) VALUES (1, \(count), \(format))", logger: logger)
            try await connection.query(
                "INSERT INTO tokenledger_shard_head (shard) SELECT generate_series(0, \(count) - 1)", logger: logger)
        }
        return (true, shardCount)
    }

    /// The cluster's shard count and format, or nil when the database has no cluster yet.
    func clusterRow() async throws -> (shardCount: Int, format: Int)? {
        let exists = try await client.query(
            "SELECT to_regclass('tokenledger_cluster') IS NOT NULL", logger: logger
        ).collect().first?.decode(Bool.self) ?? false
        guard exists else { return nil }
        for try await (count, format) in try await client.query(
            "SELECT shard_count, format FROM tokenledger_cluster WHERE id = 1", logger: logger
        ).decode((Int32, Int32).self) {
            return (Int(count), Int(format))
        }
        return nil
    }

    /// The cluster this node joins: its shard count, checked against the format this build knows.
    public func open() async throws -> Int {
        guard let row = try await clusterRow() else {
            throw ClusterError("\(url) holds no TokenLedger cluster: run `ledgerd cluster init` first")
        }
        guard row.format == ClusterSchema.format else {
            throw ClusterError("the cluster's format is \(row.format); this ledgerd knows \(ClusterSchema.format)")
        }
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(7370656)", logger: logger)
            for statement in ClusterSchema.additions {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
        return row.shardCount
    }

    // MARK: Nodes

    /// Says this node is alive for `lease` more and returns how many nodes are alive now.
    func heartbeat(nodeID: String, address: String, lease: Duration) async throws -> Int {
        let milliseconds = lease.wholeMilliseconds
        try await client.query(
            """
            INSERT INTO tokenledger_node (node_id, address, alive_until)
            VALUES (\(nodeID), \(address), now() + \(milliseconds) * interval '1 millisecond')
            ON CONFLICT (node_id) DO UPDATE SET address = EXCLUDED.address, alive_until = EXCLUDED.alive_until
            """, logger: logger)
        let live = try await client.query(
            "SELECT count(*) FROM tokenledger_node WHERE alive_until > now()", logger: logger
        ).collect().first?.decode(Int64.self) ?? 1
        return Int(max(1, live))
    }

    /// This node leaves: the others stop counting it at once.
    func leave(nodeID: String) async throws {
        try await client.query("DELETE FROM tokenledger_node WHERE node_id = \(nodeID)", logger: logger)
    }

    // MARK: Shards

    /// One shard's head row, as a node sees it.
    public struct Head: Sendable {
        public var shard: Int
        public var epoch: UInt64
        public var owner: String?
        public var ownerAddress: String?
        public var leaseExpired: Bool
        public var nextLSN: UInt64
        public var snapshotLSN: UInt64
    }

    /// Every shard's head.
    public func heads() async throws -> [Head] {
        var heads: [Head] = []
        for try await (shard, epoch, owner, address, expired, next, snapshot) in try await client.query(
            """
            SELECT shard, epoch, owner, owner_address, lease_until < now(), next_lsn, snapshot_lsn
            FROM tokenledger_shard_head ORDER BY shard
            """, logger: logger
        ).decode((Int32, Int64, String?, String?, Bool, Int64, Int64).self) {
            heads.append(
                Head(
                    shard: Int(shard), epoch: UInt64(epoch), owner: owner, ownerAddress: address, leaseExpired: expired,
                    nextLSN: UInt64(next), snapshotLSN: UInt64(snapshot)))
        }
        return heads
    }

    /// Takes `shard` when its lease ran out (or it never had an owner): bumps its epoch and makes
    /// this node the owner with a fresh lease, in one synchronous commit. Returns the head after the
    /// bump, or nil when another node holds the shard. The bump is acknowledged only once the
    /// synchronous standby has it, and it orders after every append of the earlier epoch, which
    /// fails from then on (the fence).
    public func acquire(shard: Int, nodeID: String, address: String, lease: Duration) async throws -> Head? {
        let milliseconds = lease.wholeMilliseconds
        let index = Int32(shard)
        for try await (epoch, next, snapshot) in try await client.query(
            """
            WITH taken AS (
                UPDATE tokenledger_shard_head
                SET epoch = epoch + 1, owner = \(nodeID), owner_address = \(address),
                    lease_until = now() + \(milliseconds) * interval '1 millisecond'
                WHERE shard = \(index) AND lease_until < now()
                RETURNING shard, epoch, next_lsn, snapshot_lsn, owner),
            recorded AS (
                INSERT INTO tokenledger_shard_epoch (shard, epoch, next_lsn, owner)
                SELECT shard, epoch, next_lsn, owner FROM taken)
            SELECT epoch, next_lsn, snapshot_lsn FROM taken
            """, logger: logger
        ).decode((Int64, Int64, Int64).self) {
            return Head(
                shard: shard, epoch: UInt64(epoch), owner: nodeID, ownerAddress: address, leaseExpired: false,
                nextLSN: UInt64(next), snapshotLSN: UInt64(snapshot))
        }
        return nil
    }

    /// Hands `shard` over at once (its lease set to the past), if this node still holds it at
    /// `epoch`. The log must be closed first: nothing this node appends later can land anyway.
    func release(shard: Int, epoch: UInt64) async throws {
        try await client.query(
            """
            UPDATE tokenledger_shard_head SET lease_until = '-infinity', owner = NULL, owner_address = NULL
            WHERE shard = \(Int32(shard)) AND epoch = \(Int64(epoch))
            """, logger: logger)
    }

    /// What a shard's stored snapshot and log hold, checked: each snapshot chunk's CRC32C and count,
    /// each record's CRC32C and LSN (contiguous, ending at `head.nextLSN - 1`), epochs never
    /// decreasing. A damaged newest snapshot is passed over for the previous one (writing a snapshot
    /// keeps the previous one and the log after it); `skipped` says why.
    public func load(_ head: Head) async throws -> (
        snapshot: (lsn: UInt64, body: ArraySlice<UInt8>, format: UInt32)?, records: [(lsn: UInt64, body: [UInt8])], bytes: Int,
        skipped: [String]
    ) {
        let index = Int32(head.shard)
        var snapshot: (lsn: UInt64, body: ArraySlice<UInt8>, format: UInt32)? = nil
        var bytes = 0
        var skipped: [String] = []
        var snapshotLSN = head.snapshotLSN
        while snapshotLSN > 0, snapshot == nil {
            do {
                let (body, format) = try await snapshotBody(shard: head.shard, lsn: snapshotLSN)
                bytes += body.count
                snapshot = (snapshotLSN, body[...], format)
            } catch let damage as ClusterError {
                skipped.append(damage.description)
                var previous: Int64 = 0
                for try await lsn in try await client.query(
                    """
                    SELECT coalesce(max(lsn), 0) FROM tokenledger_shard_snapshot
                    WHERE shard = \(index) AND lsn < \(Int64(snapshotLSN))
                    """, logger: logger
                ).decode(Int64.self) { previous = lsn }
                // None: the log must then reach back to LSN 1, which the check below verifies.
                snapshotLSN = UInt64(previous)
            }
        }
        let (records, logBytes) = try await log(head, after: snapshotLSN)
        return (snapshot, records, bytes + logBytes, skipped)
    }

    /// One stored snapshot, its chunks checked; a `ClusterError` when one is damaged or missing.
    func snapshotBody(shard: Int, lsn: UInt64) async throws -> (body: [UInt8], format: UInt32) {
        var body: [UInt8] = []
        var expected: Int32 = 0
        var total: Int32 = -1
        var format: Int32 = 0
        for try await (chunk, chunks, crc, chunkFormat, buffer) in try await client.query(
            """
            SELECT chunk, chunks, crc, format, body FROM tokenledger_shard_snapshot
            WHERE shard = \(Int32(shard)) AND lsn = \(Int64(lsn)) ORDER BY chunk
            """, logger: logger
        ).decode((Int32, Int32, Int64, Int32, ByteBuffer).self) {
            let part = Array(buffer.readableBytesView)
            guard chunk == expected, UInt32(truncatingIfNeeded: crc) == CRC32C.checksum(part), chunk == 0 || chunkFormat == format else {
                throw ClusterError("shard \(shard): snapshot at LSN \(lsn) is damaged at chunk \(chunk)")
            }
            format = chunkFormat
            total = chunks
            expected += 1
            body += part
        }
        guard total == expected else {
            throw ClusterError("shard \(shard): snapshot at LSN \(lsn) has \(expected) of \(total) chunks")
        }
        guard format >= SnapshotStore.oldestFormatVersion, format <= SnapshotStore.formatVersion else {
            throw ClusterError(
                "shard \(shard): snapshot at LSN \(lsn) has format \(format); this build reads \(SnapshotStore.oldestFormatVersion) to \(SnapshotStore.formatVersion)")
        }
        return (body, UInt32(format))
    }

    /// The records of the shard's log after `snapshotLSN`, checked, and their stored bytes.
    func log(_ head: Head, after snapshotLSN: UInt64) async throws -> (records: [(lsn: UInt64, body: [UInt8])], bytes: Int) {
        let index = Int32(head.shard)
        var bytes = 0
        var records: [(lsn: UInt64, body: [UInt8])] = []
        var nextLSN = snapshotLSN + 1
        var lastEpoch: Int64 = 0
        for try await (first, last, epoch, buffer) in try await client.query(
            """
            SELECT first_lsn, last_lsn, epoch, body FROM tokenledger_shard_log
            WHERE shard = \(index) AND last_lsn > \(Int64(snapshotLSN)) ORDER BY first_lsn
            """, logger: logger
        ).decode((Int64, Int64, Int64, ByteBuffer).self) {
            guard epoch >= lastEpoch else {
                throw ClusterError("shard \(head.shard): the batch at LSN \(first) has epoch \(epoch) after epoch \(lastEpoch)")
            }
            lastEpoch = epoch
            bytes += buffer.readableBytes
            let batch = try PostgresShardLog.decodeBatch(
                Array(buffer.readableBytesView), firstLSN: UInt64(first), lastLSN: UInt64(last), shard: head.shard)
            for record in batch where record.lsn >= nextLSN {
                guard record.lsn == nextLSN else {
                    throw ClusterError("shard \(head.shard): the log has LSN \(record.lsn) where \(nextLSN) belongs")
                }
                records.append(record)
                nextLSN += 1
            }
        }
        guard nextLSN == head.nextLSN else {
            throw ClusterError("shard \(head.shard): the log ends at LSN \(nextLSN - 1), its head says \(head.nextLSN - 1)")
        }
        return (records, bytes)
    }

    // MARK: The catalog (cluster mode's install intent)

    /// Stores `catalog` as the one every shard must hold (the decision of an install), unless a
    /// catalog with this version is stored already. Returns the stored catalog (the new one, or
    /// the one that was there with this version).
    func storeCatalog(_ catalog: PriceCatalog) async throws -> PriceCatalog {
        let body = ByteBuffer(bytes: catalog.binaryEncoded)
        let version = catalog.version
        try await client.query(
            """
            UPDATE tokenledger_cluster SET catalog_version = \(version), catalog = \(body)
            WHERE id = 1 AND catalog_version IS DISTINCT FROM \(version)
            """, logger: logger)
        return try await storedCatalog() ?? catalog
    }

    /// The stored catalog, if one was installed.
    func storedCatalog() async throws -> PriceCatalog? {
        for try await buffer in try await client.query(
            "SELECT catalog FROM tokenledger_cluster WHERE id = 1 AND catalog IS NOT NULL", logger: logger
        ).decode(ByteBuffer.self) {
            var reader = BinaryReader(Array(buffer.readableBytesView))
            return try PriceCatalog(from: &reader)
        }
        return nil
    }

    // MARK: Verification

    /// The state a shard's stored snapshot and log make, checked as a take-over checks them
    /// (chunk and record CRCs, LSNs without a gap, epochs never decreasing, the audit).
    public func replay(_ head: Head) async throws -> LedgerState {
        let stored = try await load(head)
        return try LedgerShard.restore(
            snapshot: stored.snapshot, records: stored.records, shard: head.shard, place: "PostgreSQL shard \(head.shard)")
    }

    /// Every log row's shard, epoch and LSN range, in shard and LSN order.
    public func logBatches() async throws -> [(shard: Int, epoch: UInt64, firstLSN: UInt64, lastLSN: UInt64)] {
        var batches: [(shard: Int, epoch: UInt64, firstLSN: UInt64, lastLSN: UInt64)] = []
        for try await (shard, epoch, first, last) in try await client.query(
            "SELECT shard, epoch, first_lsn, last_lsn FROM tokenledger_shard_log ORDER BY shard, first_lsn", logger: logger
        ).decode((Int32, Int64, Int64, Int64).self) {
            batches.append((Int(shard), UInt64(epoch), UInt64(first), UInt64(last)))
        }
        return batches
    }

    /// Every take-over: shard, epoch and the head's next LSN when it was taken, in shard and epoch
    /// order.
    public func acquisitions() async throws -> [(shard: Int, epoch: UInt64, nextLSN: UInt64)] {
        var rows: [(shard: Int, epoch: UInt64, nextLSN: UInt64)] = []
        for try await (shard, epoch, next) in try await client.query(
            "SELECT shard, epoch, next_lsn FROM tokenledger_shard_epoch ORDER BY shard, epoch", logger: logger
        ).decode((Int32, Int64, Int64).self) {
            rows.append((Int(shard), UInt64(epoch), UInt64(next)))
        }
        return rows
    }

    // MARK: The webhook cursor

    /// The cursors of `shard`'s tenants. The first time for this shard it stores `latest` as the
    /// cursor (delivery from now on) and answers it with `fresh` true.
    public func webhookCursor(shard: Int, latest: [String: UInt64]) async throws -> (cursor: [String: UInt64], fresh: Bool) {
        let shardNumber = Int32(shard)
        return try await client.withTransaction(logger: logger) { connection in
            let fresh = try await connection.query(
                "INSERT INTO tokenledger_webhook_shard (shard) VALUES (\(shardNumber)) ON CONFLICT DO NOTHING RETURNING shard",
                logger: logger
            ).collect().count == 1
            if fresh {
                try await Self.upsertCursor(connection, latest.map { ($0.key, shard, $0.value) }, logger: logger)
                return (latest, true)
            }
            var cursor: [String: UInt64] = [:]
            for try await (tenant, id) in try await connection.query(
                "SELECT tenant, last_event_id FROM tokenledger_webhook_cursor WHERE shard = \(shardNumber)", logger: logger
            ).decode((String, Int64).self) { cursor[tenant] = UInt64(id) }
            return (cursor, false)
        }
    }

    /// Moves tenants' cursors forward (never back: two nodes may briefly deliver one shard).
    public func saveWebhookCursor(_ entries: [(tenant: String, shard: Int, lastEventID: UInt64)]) async throws {
        guard !entries.isEmpty else { return }
        try await client.withConnection { connection in
            try await Self.upsertCursor(connection, entries, logger: logger)
        }
    }

    private static func upsertCursor(
        _ connection: PostgresConnection, _ entries: [(tenant: String, shard: Int, lastEventID: UInt64)], logger: Logger
    ) async throws {
        guard !entries.isEmpty else { return }
        let tenants = entries.map(\.tenant)
        let shards = entries.map { Int32($0.shard) }
        let ids = entries.map { Int64(clamping: $0.lastEventID) }
        try await connection.query(
            """
            INSERT INTO tokenledger_webhook_cursor (tenant, shard, last_event_id)
            SELECT * FROM unnest(\(tenants)::text[], \(shards)::int[], \(ids)::bigint[])
            ON CONFLICT (tenant) DO UPDATE SET last_event_id = GREATEST(tokenledger_webhook_cursor.last_event_id, excluded.last_event_id)
            """, logger: logger)
    }

    /// The stored catalog's version ("": none), cheap enough to ask every round.
    func storedCatalogVersion() async throws -> String {
        try await client.query(
            "SELECT catalog_version FROM tokenledger_cluster WHERE id = 1", logger: logger
        ).collect().first?.decode(String.self) ?? ""
    }
}
