import Dispatch
import LedgerCore
import LedgerStore
import Synchronization

/// All shards of one data directory, and the routing of tenants to shards.
public final class LedgerEngine: Sendable {
    /// The local mode's data directory (manifest, lock, shard folders); nil in cluster mode.
    public let dataDirectory: DataDirectory?
    public let shardCount: Int
    /// Local mode: every shard, opened at start.
    private let fixed: [LedgerShard]
    /// Cluster mode: the shards this node serves now, filled by the cluster node.
    public let placement: ShardPlacement?
    /// Wakes event subscribers (Watch calls, the webhook sink) when a tenant's events are durable.
    public let eventHub = EventHub()
    /// Tenants frozen by the idle sweep since memory was last handed back to the system, and when
    /// that was (monotonic nanoseconds).
    private let frozenSinceTrim = Atomic<Int>(0)
    private let lastTrim = Atomic<UInt64>(0)


    /// One catalog install at a time, so that two installs cannot interleave across the shards.
    private let catalogInstalls = AsyncLock()
    /// One backup at a time.
    private let backups = AsyncLock()
    /// Test seam: called after a catalog install is durable on each shard (its index).
    private let onCatalogInstalled: (@Sendable (Int) -> Void)?

    /// Opens (recovering) every shard of the data directory, then finishes a catalog install that
    /// a crash interrupted (``installCatalog(_:)``).
    public init(
        path: String, shardCount: Int, configuration: ShardConfiguration = ShardConfiguration(),
        clock: any LedgerClock = SystemClock(), onFailure: @escaping @Sendable (StorageError) -> Void = { _ in },
        onCatalogInstalled: (@Sendable (Int) -> Void)? = nil
    ) throws {
        self.onCatalogInstalled = onCatalogInstalled
        let directory = try DataDirectory(path: path, shardCount: shardCount, faults: configuration.faults)
        var shards: [LedgerShard] = []
        do {
            for index in 0..<shardCount {
                shards.append(
                    try LedgerShard(
                        directory: directory.shardPath(index), index: index, configuration: configuration, clock: clock,
                        hub: eventHub, onFailure: onFailure))
            }
        } catch {
            directory.close()
            throw error
        }
        dataDirectory = directory
        fixed = shards
        self.shardCount = shardCount
        placement = nil
        do {
            try finishInterruptedCatalogInstall()
        } catch {
            for shard in shards { shard.closeLog() }
            directory.close()
            throw error
        }
    }

    /// Cluster mode: no shard is open until the cluster node (LedgerCluster) takes it and fills
    /// its slot in `placement`.
    public init(cluster placement: ShardPlacement, onCatalogInstalled: (@Sendable (Int) -> Void)? = nil) {
        self.placement = placement
        shardCount = placement.shardCount
        fixed = []
        dataDirectory = nil
        self.onCatalogInstalled = onCatalogInstalled
    }

    /// The shards open here: every shard in local mode, those this node serves now in cluster mode.
    public var shards: [LedgerShard] { placement?.owned ?? fixed }

    /// The index of the shard that owns `tenant` (``TenantID/shardIndex(shardCount:)``).
    public func shardIndex(for tenant: TenantID) -> Int {
        tenant.shardIndex(shardCount: shardCount)
    }

    /// The shard that owns `tenant` (local mode; cluster mode routes with ``route(_:)``).
    public func shard(for tenant: TenantID) -> LedgerShard {
        precondition(placement == nil, "shard(for:) is the local mode's; cluster mode routes")
        return fixed[shardIndex(for: tenant)]
    }

    /// The shard that serves `tenant` here; in cluster mode `wrong_owner` when another node serves
    /// it, `unavailable` when none does now.
    public func route(_ tenant: TenantID) throws(LedgerError) -> LedgerShard {
        guard let placement else { return fixed[shardIndex(for: tenant)] }
        return try placement.route(shardIndex(for: tenant))
    }

    public static func stableHash(_ text: String) -> UInt64 { LedgerCore.stableHash(text) }

    /// Runs a command on its tenant's shard; `installCatalog` (``installCatalog(_:)``) and `tick`
    /// run on every shard and the first shard's result is returned.
    public func execute(_ body: CommandBody, requestID: RequestID?) async throws -> CommandResult {
        if let tenant = body.tenant { return try await route(tenant).execute(body, requestID: requestID) }
        if case .installCatalog(let catalog) = body { return try await installCatalog(catalog) }
        var first: CommandResult? = nil
        for shard in shards {
            let result = try await shard.execute(body, requestID: requestID)
            if first == nil { first = result }
        }
        return first!
    }

    // MARK: Catalog installs

    /// The intent file of a catalog install: while it exists, the catalog it holds is being
    /// installed on every shard.
    var catalogIntentPath: String { dataDirectory!.path + "/catalog-install" }

    /// Installs a price catalog on every shard as one decision. Every shard prices with the
    /// catalog, and each logs the install in its own log, so a crash between two shards would leave
    /// them pricing the same items differently. The decision is made durable first, in an intent
    /// file in the data directory (written atomically and fsynced); then each shard applies and
    /// logs the install; then the file is removed. Opening the engine finishes an install whose
    /// file is still there, on the shards that lack it. One install runs at a time. A refused
    /// install (the same version with other prices) is refused by the first shard, and by all of
    /// them alike since they hold the same catalog; the others are not asked.
    public func installCatalog(_ catalog: PriceCatalog) async throws -> CommandResult {
        if let placement {
            guard let install = placement.installCatalog else {
                throw LedgerError(.unavailable, "the cluster node is not running")
            }
            return try await install(catalog)
        }
        await catalogInstalls.lock()
        defer { catalogInstalls.unlock() }
        try FileSystem.replaceFile(catalogIntentPath, Self.encodeIntent(catalog))
        var first: CommandResult? = nil
        for shard in shards {
            let result = try await shard.execute(.installCatalog(catalog), requestID: nil)
            onCatalogInstalled?(shard.index)
            if first == nil { first = result }
            if case .failure = result.outcome { break }
        }
        try removeCatalogIntent()
        return first!
    }

    /// Start-up: a catalog install interrupted by a crash is finished on the shards that lack it.
    private func finishInterruptedCatalogInstall() throws {
        guard FileSystem.exists(catalogIntentPath) else { return }
        let catalog = try Self.decodeIntent(try FileSystem.readFile(catalogIntentPath), path: catalogIntentPath)
        for shard in shards where shard.catalogNow() != catalog {
            let done = DispatchSemaphore(value: 0)
            let outcome = Mutex<Result<CommandResult, any Error>?>(nil)
            shard.submit(.installCatalog(catalog), requestID: nil) { result in
                outcome.withLock { $0 = result }
                done.signal()
            }
            done.wait()
            _ = try outcome.withLock { $0! }.get()
        }
        try removeCatalogIntent()
    }

    private func removeCatalogIntent() throws {
        try FileSystem.remove(catalogIntentPath)
        try FileSystem.syncDirectory(dataDirectory!.path)
    }

    static let intentMagic: [UInt8] = Array("TLCATINT".utf8)

    /// "TLCATINT", CRC32C of the body (u32 little-endian), the catalog's binary form.
    static func encodeIntent(_ catalog: PriceCatalog) -> [UInt8] {
        let body = catalog.binaryEncoded
        var bytes = intentMagic
        let crc = CRC32C.checksum(body)
        bytes += (0..<4).map { UInt8(truncatingIfNeeded: crc >> (8 * $0)) }
        bytes += body
        return bytes
    }

    static func decodeIntent(_ bytes: [UInt8], path: String) throws -> PriceCatalog {
        let corrupt = StorageError.corruption(file: path, offset: 0, lsn: 0, reason: "unreadable catalog install intent")
        guard bytes.count >= 12, Array(bytes[0..<8]) == intentMagic else { throw corrupt }
        let crc = bytes[8..<12].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
        let body = Array(bytes[12...])
        guard CRC32C.checksum(body) == crc else { throw corrupt }
        var reader = BinaryReader(body)
        guard let catalog = try? PriceCatalog(from: &reader) else { throw corrupt }
        return catalog
    }

    // MARK: Backups

    /// What a backup holds, per shard, and what its verification found.
    public struct BackupReport: Sendable {
        public var directory: String
        public var shards: [LedgerShard.BackupReport]
        public var tenants: Int
    }

    /// Takes a consistent online backup into `directory` (an absolute path that does not exist
    /// yet; its parent must): the manifest, then each shard's snapshot and durable log
    /// (`LedgerShard.backup`), then a verification: every shard of the copy recovered in a scratch
    /// state, audited, and found to end at the log position the backup reports. A copy that fails
    /// it is an error (the directory is left for inspection). Calls go on meanwhile.
    public func backup(to directory: String) async throws -> BackupReport {
        guard let dataDirectory else {
            throw LedgerError(
                .invalidArgument, "cluster mode keeps the ledger in PostgreSQL: back up the PostgreSQL cluster (docs/cluster.md)")
        }
        guard directory.hasPrefix("/"), !directory.contains("\0") else {
            throw LedgerError(.invalidArgument, "directory: give an absolute path on the server's machine")
        }
        let trimmed = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        guard !FileSystem.exists(trimmed) else {
            throw LedgerError(.alreadyExists, "\(trimmed) exists already; a backup goes to a new directory")
        }
        let parent = String(trimmed[..<trimmed.lastIndex(of: "/")!])
        guard FileSystem.exists(parent.isEmpty ? "/" : parent) else {
            throw LedgerError(.notFound, "\(parent) does not exist")
        }
        await backups.lock()
        defer { backups.unlock() }
        // The catalog is the one state every shard holds alike: no install may land between the
        // copies of two shards.
        await catalogInstalls.lock()
        defer { catalogInstalls.unlock() }
        try FileSystem.makeDirectory(trimmed)
        _ = try FileSystem.linkOrCopy(from: dataDirectory.path + "/manifest", to: trimmed + "/manifest")
        var reports: [LedgerShard.BackupReport] = []
        for shard in shards {
            let target = trimmed + "/" + String(dataDirectory.shardPath(shard.index).split(separator: "/").last!)
            try FileSystem.makeDirectory(target)
            reports.append(try await shard.backup(into: target))
        }
        try FileSystem.syncDirectory(trimmed)
        try FileSystem.syncDirectory(parent.isEmpty ? "/" : parent)
        let tenants = try Self.verifyBackup(trimmed, shardCount: shardCount, expected: reports)
        return BackupReport(directory: trimmed, shards: reports, tenants: tenants)
    }

    /// Recovers every shard of a backup read-only (its snapshot, then its log), audits it, and
    /// checks it ends where the backup said. Returns the tenants it holds.
    static func verifyBackup(_ path: String, shardCount: Int, expected: [LedgerShard.BackupReport]) throws -> Int {
        var tenants = 0
        var catalogs: Set<PriceCatalog?> = []
        for index in 0..<shardCount {
            let directory = DataDirectory.shardPath(path, index)
            let (state, lastLSN) = try LedgerShard.recoverReadOnly(directory)
            catalogs.insert(state.catalog)
            let violations = state.audit()
            guard violations.isEmpty else {
                throw EngineError.recoveryFailed("the backup's shard \(index) fails its audit: \(violations.prefix(5))")
            }
            guard lastLSN == expected[index].lastLSN else {
                throw EngineError.recoveryFailed(
                    "the backup's shard \(index) ends at LSN \(lastLSN), not at \(expected[index].lastLSN) as copied")
            }
            tenants += state.tenants.count
        }
        guard catalogs.count == 1 else {
            throw EngineError.recoveryFailed("the backup's shards hold different price catalogs")
        }
        return tenants
    }

    /// A page of the tenant's retained events after `afterID` (see `LedgerState.events`), durable.
    public func events(_ tenant: TenantID, after afterID: UInt64?, limit: Int = Limits.eventPageMax) async throws -> EventPage {
        try await route(tenant).read { state in try state.events(tenant, after: afterID, limit: limit) }
    }

    /// Ticks what fell due, snapshots what is due and freezes idle tenants on every shard (the
    /// periodic maintenance).
    public func maintain() async throws {
        var frozen = 0
        for shard in shards {
            try await shard.tickIfDue()
            try shard.archiveFinishedSegments()
            try await shard.snapshotIfDue()
            frozen += shard.freezeIdleTenants()
        }
        // The memory of the tenants' live forms is freed piecemeal, between allocations that stay,
        // so malloc keeps it for reuse (by thawed and new tenants) and RSS does not fall. After
        // 10,000 freezes, or 1,000 once the sweep froze nothing in a round, and at most every 10 s,
        // ask glibc to return the free pages: malloc_trim releases whole free pages anywhere in the
        // heap, but holds each arena's lock while it walks it (its cost: docs/benchmarks.md).
        let now = monotonicNanoseconds()
        let pending = frozen > 0 ? frozenSinceTrim.add(frozen, ordering: .relaxed).newValue : frozenSinceTrim.load(ordering: .relaxed)
        if pending >= (frozen > 0 ? EngineLimits.frozenTenantsPerTrim : EngineLimits.frozenTenantsPerTrim / 10),
            now - min(now, lastTrim.load(ordering: .relaxed)) >= EngineLimits.trimIntervalNanoseconds
        {
            frozenSinceTrim.store(0, ordering: .relaxed)
            lastTrim.store(now, ordering: .relaxed)
            #if os(Linux)
            _ = mallocTrim(0)
            #endif
        }
    }

    /// Closes every shard (final snapshots) and releases the data directory.
    public func close(finalSnapshot: Bool = true) async {
        for shard in shards { await shard.close(finalSnapshot: finalSnapshot) }
        dataDirectory?.close()
    }
}

#if os(Linux)
/// glibc's `malloc_trim`, which the Glibc module does not export.
@_silgen_name("malloc_trim")
private func mallocTrim(_ pad: Int) -> Int32
#endif

/// A lock that async callers wait for without blocking a thread, first come first served.
final class AsyncLock: Sendable {
    private let state = Mutex<(locked: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func lock() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state in
                if !state.locked {
                    state.locked = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    /// Hands the lock to the next waiter, if any.
    func unlock() {
        let next = state.withLock { state in
            if state.waiters.isEmpty {
                state.locked = false
                return nil as CheckedContinuation<Void, Never>?
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
