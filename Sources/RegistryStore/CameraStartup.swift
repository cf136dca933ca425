import Foundation
import Geo
import Logging
import Postgres
import Registry

#if canImport(Glibc)
import Glibc
#endif

/// The start-up load of the cameras (used by `camregd`) (docs/architecture.md, "Start-up"): from the index cache
/// (`<data-dir>/index-cache.bin`) brought up to date through `camera_changes` and checked against
/// the table, or — without a usable cache — streamed from PostgreSQL with a binary COPY.
public enum CameraStartup {
    /// What was loaded, where from, and whether the cache file should be (re)written.
    public struct Result: Sendable {
        /// The cameras and the change number they reflect. When ``table`` is set, `cameras` is
        /// empty: the cameras are in the table.
        public var load: CameraSnapshotLoad
        /// The cameras already packed (a start from a cache with no camera changes after it),
        /// the STRtree over its slots, and when their build began.
        public var table: (CameraTable, STRtree, DispatchTime)?
        /// `cache` or `database`.
        public var source: String
        /// Whether the cache file should be written (it is missing, stale or behind).
        public var needsWrite: Bool
    }

    /// Loads every camera: from the cache at `cachePath` when `useCache` and it is current (see
    /// ``IndexCache``), else from PostgreSQL. Why a cache was not used is logged.
    public static func cameras(useCache: Bool, cachePath: String, client: PostgresClient, logger: Logger) async throws -> Result {
        if useCache {
            let start = DispatchTime.now()
            do {
                let file = try IndexCache.read(path: cachePath)
                let header = file.header
                // The database's side (identity, changes since the cache, fingerprint) runs on the
                // pool's thread while this one checks and decodes the file.
                async let database = client.withConnection { try IndexCache.catchUp(after: header, on: $0) }
                // Packed straight from the file's bytes: the common start, with no camera changed
                // since the cache was written, makes no `Camera` values at all.
                let packStart = DispatchTime.now()
                let packed = try IndexCache.decodeTable(file)
                let db = try await database
                if db.changeRows == 0 {
                    try IndexCache.checkLineage(header: header, with: db)
                    try IndexCache.checkFingerprint(packed.fingerprint, with: db)
                    logger.notice("cameras loaded from the index cache", metadata: [
                        "cameras": "\(packed.table.count)", "cache_seq": "\(header.sequence)", "seq": "\(db.sequence)",
                        "changes_applied": "0", "packed": "true", "ms": "\(millis(since: start))"])
                    // Not rewritten: with no camera changes, the file still describes the table.
                    let load = CameraSnapshotLoad(cameras: [], xmins: [], sequence: db.sequence, anchor: db.anchor)
                    return Result(load: load, table: (packed.table, packed.tree, packStart), source: "cache", needsWrite: false)
                }
                let cached = try IndexCache.decode(file)
                let merged = try IndexCache.merge(cached, header: header, with: db)
                logger.notice("cameras loaded from the index cache", metadata: [
                    "cameras": "\(merged.cameras.count)", "cache_seq": "\(header.sequence)", "seq": "\(merged.sequence)",
                    "changes_applied": "\(db.changeRows)", "changed_cameras": "\(db.changed.cameras.count)",
                    "ms": "\(millis(since: start))"])
                return Result(load: merged, table: nil, source: "cache", needsWrite: merged.sequence != header.sequence || db.changeRows > 0)
            } catch let e as IndexCacheError {
                if e.missing {
                    logger.info("no index cache; loading the cameras from PostgreSQL")
                } else {
                    logger.warning("index cache not used; loading the cameras from PostgreSQL", metadata: ["reason": "\(e.reason)"])
                }
            } catch let e as PostgresError where !e.isConnectionError {
                logger.warning("index cache not used; loading the cameras from PostgreSQL", metadata: ["reason": "\(e)"])
            }
        }
        let start = DispatchTime.now()
        let load = try await client.withConnection { try CameraStream.loadAll(on: $0) }
        logger.info("cameras loaded from PostgreSQL", metadata: ["cameras": "\(load.cameras.count)", "seq": "\(load.sequence)",
                                                                  "ms": "\(millis(since: start))"])
        return Result(load: load, table: nil, source: "database", needsWrite: true)
    }

    /// Writes the cache after start-up, off the start-up path (the daemon answers meanwhile).
    /// A failure is logged and changes nothing else: the next start does a full load.
    public static func writeCacheInBackground(_ load: CameraSnapshotLoad, path: String, client: PostgresClient, logger: Logger) {
        let holder = LoadHolder(load)
        Task.detached(priority: .background) {
            await write(holder, path: path, client: client, logger: logger)
            // Drop the load before trimming: the task's capture would keep it until the end.
            holder.load = nil
            trimHeap()
        }
    }

    private static func write(_ holder: LoadHolder, path: String, client: PostgresClient, logger: Logger) async {
        guard let load = holder.load else { return }
        let start = DispatchTime.now()
        do {
            let identity = try await client.withConnection { try DatabaseIdentity.read(on: $0) }
            try IndexCache.write(load, identity: identity, to: path)
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            logger.info("index cache written", metadata: ["path": "\(path)", "cameras": "\(load.cameras.count)",
                                                           "seq": "\(load.sequence)", "bytes": "\(size)",
                                                           "ms": "\(millis(since: start))"])
        } catch {
            logger.warning("index cache not written", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// The load a background cache write works from, dropped as soon as it is written.
    /// `@unchecked Sendable`: only that one task touches it after it is made.
    private final class LoadHolder: @unchecked Sendable {
        var load: CameraSnapshotLoad?
        init(_ load: CameraSnapshotLoad) { self.load = load }
    }

    /// Returns free heap memory to the system (`malloc_trim`), e.g. after the start-up load.
    public static func trimHeap() {
        #if os(Linux)
        _ = glibcMallocTrim(0)
        #endif
    }

    /// Makes every thread allocate from glibc's main arena (`mallopt(M_ARENA_MAX, 1)`), unless
    /// `MALLOC_ARENA_MAX` is set in the environment (glibc then uses that). A thread arena kept
    /// 9–12 MiB resident after the start-up load, 4 % of the daemon's memory at a million
    /// cameras (measured: RSS 315.5 → 302.4 MiB). The arena's lock is shared by every thread:
    /// the query path keeps its large buffers per thread (the JSON writer's spare block, the
    /// search's array of hits), so that the event loops do not contend for it (they did: 0.3
    /// `futex` calls a request at a million cameras, 0.04 since). Call it first thing, before
    /// threads allocate.
    /// Returns whether glibc took the setting.
    @discardableResult
    public static func useOneMallocArena() -> Bool {
        #if os(Linux)
        guard ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil else { return false }
        return glibcMallopt(-8, 1) == 1  // M_ARENA_MAX; mallopt returns 1 on success
        #else
        return false
        #endif
    }

    static func millis(since start: DispatchTime) -> Int {
        Int((DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1_000_000)
    }
}

#if os(Linux)
/// glibc's `malloc_trim(3)` (not exported by the Glibc module): gives free heap pages back.
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32

/// glibc's `mallopt(3)` (not exported by the Glibc module).
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
