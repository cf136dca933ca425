import ArgumentParser
import Foundation
import Postgres
import Registry
import RegistryStore

/// camreg-bench: the same radius queries against camregd, PostGIS and Redis GEO (issue 6).
struct CamregBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "camreg-bench",
        abstract: "Compare camregd with PostGIS and Redis GEO on the same seeded radius queries.",
        discussion: """
            Starts a throwaway PostgreSQL cluster (with PostGIS), camregd and redis-server under a \
            fresh /tmp folder, loads the same cameras into all three, sends one seeded query list \
            to each with 1, 4 and 16 connections, with and without pipelining, checks that the \
            answers agree, prints a table and stops everything it started.
            """)

    @Option(help: "Number of cameras (DemoInventory ids and attributes).")
    var cameras: Int = BenCat.cameraCount

    @Option(help: "Where cameras and query points lie: bencat (the demo layout) or large (110 × 130 km around Bến Cát, seeded clusters).")
    var region: String = "bencat"

    @Option(help: "Number of queries in the list sent to each system in each setting.")
    var queries: Int = 10_000

    @Option(help: "Query radii in metres, comma-separated.")
    var radii: String = "200,500"

    @Option(help: "Connection counts, comma-separated.")
    var connections: String = "1,4,16"

    @Option(help: "Pipelining depths (requests in flight per connection), comma-separated.")
    var depths: String = "1,16"

    @Option(help: "How the client drives its connections: poll (one thread for all, as redis-benchmark) or threads (one blocking thread per connection).")
    var client: String = "poll"

    @Option(help: "Rounds per setting: the systems take turns, round after round, and the table shows each system's median round and camregd's median per-round ratio (a shared VM's speed drifts between runs).")
    var rounds: Int = 1

    @Option(help: "Import rounds: each loads the CSV with psql \\copy, then with camregd's import, both into the emptied cameras table; the report shows each side's median round.")
    var importRounds: Int = 3

    @Option(help: "Seed of the camera positions (large region) and of the query list.")
    var seed: UInt64 = 6

    @Option(help: "Folder of the SQL migrations (default: as camregd finds them).")
    var migrations: String?

    @Option(help: "camregd binary (default: next to camreg-bench, else on PATH).")
    var camregd: String?

    @Option(help: "redis-server binary (default: on PATH).")
    var redisServer: String?

    @Option(help: "Ask camregd for only these members of each hit (NEAR … fields=…), e.g. distance_m,sees,footage; default: the full answer.")
    var camregdFields: String?

    @Option(parsing: .singleValue, help: "An extra argument for camregd (repeat the option for several), e.g. --camregd-arg=--event-loop-threads --camregd-arg=1.")
    var camregdArg: [String] = []

    @Flag(help: "Only time camregd's request handling in this process (no sockets, no PostgreSQL or Redis): parse, search, whole answer.")
    var micro = false

    @Option(help: "With --micro: time each loop this many times and keep the fastest (for profiling, e.g. under perf).")
    var microRounds = 1

    @Flag(help: "With --micro: leave out the CSV import's parse and validation.")
    var microSkipImport = false

    @Option(help: "Write the results as JSON to this file.")
    var jsonOut: String?

    mutating func validate() throws {
        guard cameras >= 1 else { throw ValidationError("--cameras must be at least 1") }
        guard ["bencat", "large"].contains(region) else { throw ValidationError("--region must be bencat or large") }
        guard queries >= 1 else { throw ValidationError("--queries must be at least 1") }
        guard importRounds >= 1 else { throw ValidationError("--import-rounds must be at least 1") }
    }

    func run() throws {
        Cleanup.shared.installSignalHandlers()
        defer { Cleanup.shared.runAll() }
        do {
            try bench()
        } catch {
            FileHandle.standardError.write("camreg-bench: \(error)\n".data(using: .utf8)!)
            Cleanup.shared.runAll()
            throw ExitCode(1)
        }
    }

    func log(_ s: String) { FileHandle.standardError.write("[bench] \(s)\n".data(using: .utf8)!) }

    func bench() throws {
        let radiusList = radii.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        let connList = connections.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let depthList = depths.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard let camregdPath = camregd ?? findExecutable("camregd") else { throw BenchError("camregd not found (build it, or pass --camregd)") }
        guard let redisPath = redisServer ?? findExecutable("redis-server") else { throw BenchError("redis-server not found: apt-get install -y redis-server") }
        let reg = region == "large" ? Region.large : Region.benCat
        var report = Report(cameras: cameras, region: reg.name, queries: queries, radii: radiusList, seed: seed)

        // 1. Data.
        var t = monotonicNanos()
        let cams = Workload.cameras(count: cameras, region: reg, seed: seed)
        let searchable = cams.filter { $0.status != .retired }
        let list = Workload.queries(count: queries, cameras: searchable, region: reg, radii: radiusList, seed: seed)
        log("generated \(cams.count) cameras (\(searchable.count) not retired) and \(list.count) queries in \(secs(t)) s")
        if micro {
            print(try MicroBench.run(cameras: cams, queries: list, fields: camregdFields, rounds: max(1, microRounds), importToo: !microSkipImport, log: log))
            return
        }

        // 2. A throwaway folder and PostgreSQL cluster.
        var template = Array("/tmp/cb-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw BenchError("mkdtemp failed") }
        let base = String(cString: p)
        chmod(base, 0o711)   // the cluster may run as `postgres`
        Cleanup.shared.add("remove \(base)") { try? FileManager.default.removeItem(atPath: base) }
        let cluster = try EmbeddedCluster(dataDirectory: base + "/c")
        Cleanup.shared.add("stop PostgreSQL") { try? cluster.stop() }
        t = monotonicNanos()
        try cluster.start()
        log("PostgreSQL started in \(secs(t)) s at \(cluster.socketDirectory)")
        let db = try PostgresConnection(configuration: cluster.configuration)
        try db.query("CREATE EXTENSION IF NOT EXISTS postgis")
        try Migrator(directory: migrations ?? Migrator.defaultDirectory()).apply(on: db)

        // 3. Import (issue 6: "import time of N cameras vs `psql \copy` of the same CSV into the
        //    same table"): one CSV file in camregd's import format, imported by camregd through
        //    its import path into its `cameras`, and by `psql \copy` into an identical empty table.
        let csvPath = base + "/cameras.csv"
        t = monotonicNanos()
        let csvBytes = try ImportBench.writeCSV(cams, to: csvPath)
        report.csvBytes = csvBytes
        log("wrote \(csvPath) (\(csvBytes) bytes) in \(secs(t)) s")
        let sock = base + "/b.sock"
        let url = "postgresql:///\(cluster.database)?host=\(cluster.socketDirectory)&port=\(cluster.port)&user=\(cluster.user)"
        // The large region reaches beyond Bến Cát's box, camregd's default jurisdiction.
        let pad = 0.01
        let wkt = "POLYGON((\(reg.minLon - pad) \(reg.minLat - pad), \(reg.maxLon + pad) \(reg.minLat - pad), \(reg.maxLon + pad) \(reg.maxLat + pad), \(reg.minLon - pad) \(reg.maxLat + pad), \(reg.minLon - pad) \(reg.minLat - pad)))"
        let dataDir = base + "/d"
        let cachePath = dataDir + "/" + IndexCache.fileName
        var daemonRun = 0
        func startCamregd(logLevel: String = "notice") throws -> (ChildProcess, Double, String) {
            daemonRun += 1
            let daemonLog = base + "/camregd-\(daemonRun).log"
            let t0 = monotonicNanos()
            let d = try ChildProcess([camregdPath, "--database-url", url, "--socket", sock, "--data-dir", dataDir,
                                      "--migrations", migrations ?? Migrator.defaultDirectory(), "--log-level", logLevel,
                                      "--rate-limit", "0", "--jurisdiction-wkt", wkt] + camregdArg,
                                     outputPath: daemonLog)
            Cleanup.shared.add("stop camregd (\(daemonRun))") { stopChild(d) }
            let seconds = try waitUntilAnswering(since: t0, timeout: 900, child: d, log: daemonLog) {
                try CamregClient(socket: sock, requests: []).ping(); return true
            }
            return (d, seconds, daemonLog)
        }
        // Rounds, so that both sides see the same phases of a shared VM: in each, `psql \copy`
        // loads the file into the emptied `cameras`, then camregd imports it into the emptied
        // `cameras` (its cameras stay for the rest of the run). Each load starts after a
        // CHECKPOINT, with no camregd running.
        for round in 1...importRounds {
            try ImportBench.emptyCameras(db)
            let copySeconds = try ImportBench.psqlCopy(cluster: cluster, csvPath: csvPath)
            let copied = Int(try db.query("SELECT count(*) FROM cameras").scalar() ?? "0") ?? 0
            guard copied == cams.count else { throw BenchError("psql \\copy loaded \(copied) of \(cams.count) rows") }
            try ImportBench.emptyCameras(db)
            try? FileManager.default.removeItem(atPath: cachePath)
            // At info level, camregd logs where each import's time went (parse, validation, database, index).
            let (importer, _, importerLog) = try startCamregd(logLevel: "info")
            let r = try ImportBench.importThroughCamregd(socket: sock, csvPath: csvPath)
            guard r.imported == cams.count else { throw BenchError("camregd imported \(r.imported) of \(cams.count) cameras") }
            report.importUploads = r.uploads
            stopChild(importer, timeout: 120)
            let phases = ((try? String(contentsOfFile: importerLog, encoding: .utf8)) ?? "")
                .split(separator: "\n").filter { $0.contains("import committed") }
            for line in phases { log("camregd log: \(line.prefix(400))") }
            report.importRounds.append(r.seconds)
            report.copyRounds.append(copySeconds)
            log(String(format: "import round %d: psql \\copy into cameras %.3f s, camregd's import into cameras %.3f s: \\copy ÷ import = %.2f",
                       round, copySeconds, r.seconds, copySeconds / r.seconds))
        }
        report.importSeconds = Report.median(report.importRounds)
        report.copySeconds = Report.median(report.copyRounds)
        log("import through camregd \(report.importSeconds) s; psql \\copy of the same CSV into cameras \(report.copySeconds) s (medians of \(importRounds) rounds)")

        // PostGIS's table for the queries (not timed as an import).
        try db.query("CREATE TABLE bench_cams (id text, g geography)")
        try db.transaction { c in
            _ = try c.copyIn("COPY bench_cams (id, g) FROM STDIN") { send in
                var chunk = ""
                chunk.reserveCapacity(1 << 16)
                for cam in cams {
                    chunk += "\(cam.id)\tSRID=4326;POINT(\(cam.lon) \(cam.lat))\n"
                    if chunk.utf8.count > 60_000 { try send(Array(chunk.utf8)); chunk.removeAll(keepingCapacity: true) }
                }
                if !chunk.isEmpty { try send(Array(chunk.utf8)) }
            }
        }
        // camregd does not answer with retired cameras: leave them out of PostGIS (and Redis).
        try db.query("DELETE FROM bench_cams b USING cameras c WHERE c.id = b.id AND c.status = 'retired'")
        t = monotonicNanos()
        try db.query("CREATE INDEX bench_cams_g ON bench_cams USING gist (g)")
        report.gistIndexSeconds = secs(t)
        try db.query("VACUUM ANALYZE bench_cams")
        try db.query("VACUUM ANALYZE cameras")

        // 4. camregd cold starts on the database that now holds the N cameras (spawn → first
        //    answered PING): first without an index cache (the full load from PostgreSQL, which
        //    then writes the cache), then a restart that starts from the cache.
        try? FileManager.default.removeItem(atPath: cachePath)
        do {
            let (first, seconds, _) = try startCamregd()
            report.camregdColdStart = seconds
            log("camregd without cache answered PING after \(seconds) s")
            report.camregdRSSFullLoad = residentBytes(pid: first.pid) ?? 0
            // The cache is written in the background after start-up; it appears by rename.
            let deadline = monotonicNanos() + 600_000_000_000
            while !FileManager.default.fileExists(atPath: cachePath) {
                guard monotonicNanos() < deadline, first.isRunning else { throw BenchError("camregd wrote no index cache") }
                usleep(50_000)
            }
            report.cacheBytes = (try? FileManager.default.attributesOfItem(atPath: cachePath)[.size] as? Int) ?? 0
            stopChild(first, timeout: 120)
        }
        // At info level camregd logs how long its start-up steps took (the cache load, the index build).
        let (daemon, cachedStart, daemonLog) = try startCamregd(logLevel: "info")
        report.camregdCachedStart = cachedStart
        let daemonLogText = (try? String(contentsOfFile: daemonLog, encoding: .utf8)) ?? ""
        guard daemonLogText.contains("cameras loaded from the index cache") else {
            throw BenchError("the restart did not use the index cache:\n\(daemonLogText.suffix(2000))")
        }
        for line in daemonLogText.split(separator: "\n") where line.contains("ms=") || line.contains("migrations") || line.contains("listening") {
            log("camregd start-up: \(line.prefix(300))")
        }
        report.camregdRSSAfterLoad = residentBytes(pid: daemon.pid) ?? 0
        // Where the resident memory is (heap, malloc arenas, the table's huge pages, GEOS).
        for m in residentMappings(pid: daemon.pid) {
            log("camregd after start-up: \(m.rssKiB >> 10) MiB resident (\(m.hugeKiB >> 10) MiB huge pages) in \(m.name)")
        }
        log("camregd restart with the index cache (\(report.cacheBytes) bytes) answered PING after \(cachedStart) s")
        // The index the queries will meet: its size, its delta (changes not yet folded into the
        // snapshot, which every search scans) and where it came from.
        if let stats = try? CamregClient(socket: sock, requests: []).line("STATS") {
            func member(_ name: String) -> String {
                guard let r = stats.range(of: "\"\(name)\":") else { return "?" }
                return String(stats[r.upperBound...].prefix { $0 != "," && $0 != "}" })
            }
            log("camregd index: cameras \(member("cameras")), delta \(member("delta")), loaded from \(member("index_loaded_from"))")
        }
        // Query as an analyst: the answers carry no owner data (like Redis and PostGIS), so no
        // audit entry is written per query.
        let benchToken = try CamregClient(socket: sock, requests: []).createToken(role: "analyst", name: "camreg-bench")

        // 5. Redis: GEOADD (pipelined), memory, then SAVE and a restart to time the RDB load.
        let redis = RedisServer(binary: redisPath, dir: base)
        Cleanup.shared.add("stop redis-server") { redis.stop() }
        try redis.start()
        let key = "cams"
        do {
            let rc = try RedisClient(socket: redis.socket)
            t = monotonicNanos()
            var inFlight = 0
            for chunkStart in stride(from: 0, to: searchable.count, by: 500) {
                var args = ["GEOADD", key]
                for cam in searchable[chunkStart..<min(chunkStart + 500, searchable.count)] {
                    args += ["\(cam.lon)", "\(cam.lat)", cam.id]
                }
                try rc.stream.write(RedisClient.encode(args))
                inFlight += 1
                if inFlight == 16 { for _ in 0..<inFlight { if case .error(let e) = try rc.read() { throw BenchError("GEOADD: \(e)") } }; inFlight = 0 }
            }
            for _ in 0..<inFlight { if case .error(let e) = try rc.read() { throw BenchError("GEOADD: \(e)") } }
            report.redisLoadSeconds = secs(t)
            guard case .integer(let n) = try rc.command(["ZCARD", key]), n == searchable.count else { throw BenchError("Redis holds the wrong number of points") }
            guard case .simple = try rc.command(["SAVE"]) else { throw BenchError("Redis SAVE failed") }
        }
        redis.stop()
        report.redisRDBLoad = try redis.start()
        let rdbSize = (try? FileManager.default.attributesOfItem(atPath: base + "/bench.rdb")[.size] as? Int) ?? nil
        log("Redis GEOADD \(report.redisLoadSeconds) s; restart with RDB (\(rdbSize ?? 0) bytes) answered PING after \(report.redisRDBLoad) s")

        // 6. The same requests for everybody, prepared before timing.
        let camregReq = list.map { CamregClient.request($0, fields: camregdFields) }
        let redisReq = list.map { RedisClient.request($0, key: key) }
        let pgReq = list.map(PostGISClient.request)
        let pgConfig = cluster.configuration
        let redisSock = redis.socket
        // Server processes, for CPU per query: camregd, redis-server, and the cluster's backends.
        let postmaster = (try? String(contentsOfFile: cluster.pgData + "/postmaster.pid", encoding: .utf8))
            .flatMap { $0.split(separator: "\n").first.flatMap { Int32($0) } }
        let serverPIDs: [String: () -> [Int32]] = [
            "camregd": { [daemon.pid] },
            "redis": { redis.child.map { [$0.pid] } ?? [] },
            "postgis": { postmaster.map(childProcesses(of:)) ?? [] },
        ]
        let systems: [(String, (Int) throws -> QueryClient)] = [
            ("camregd", { _ in try CamregClient(socket: sock, requests: camregReq, token: benchToken) }),
            ("redis", { _ in try RedisClient(socket: redisSock, requests: redisReq) }),
            ("postgis", { _ in try PostGISClient(configuration: pgConfig, requests: pgReq) }),
        ]
        guard let driver = Runner.Driver(rawValue: client) else { throw BenchError("--client must be poll or threads, not \(client)") }
        for (name, make) in systems {   // warm-up: caches, JIT-less plans, page cache
            _ = try Runner.run(system: name, count: min(list.count, 1000), connections: 1, depth: 1, makeClient: make)
        }
        for conns in connList {
            for depth in depthList {
                for round in 1...max(1, rounds) {
                    for (name, make) in systems {
                        var r = try Runner.run(system: name, count: list.count, connections: conns, depth: depth, driver: driver,
                                               serverPIDs: serverPIDs[name] ?? { [] }, makeClient: make)
                        r.round = round
                        log(String(format: "%-8@ c=%2d d=%2d  %9.0f q/s  p50 %8.1f µs  p99 %8.1f µs  p99.9 %8.1f µs  server CPU %6.1f µs/q  client CPU %4.1f %%%@",
                                   name as NSString, conns, depth, r.qps, r.p50, r.p99, r.p999, r.serverCPU ?? .nan, r.clientCPU * 100,
                                   (rounds > 1 ? " (round \(round))" : "") as NSString))
                        report.runs.append(r)
                    }
                }
            }
        }
        if let stats = try? CamregClient(socket: sock, requests: []).line("STATS") {
            let delta = stats.range(of: "\"delta\":").map { String(stats[$0.upperBound...].prefix { $0 != "," }) } ?? "?"
            log("camregd index after the queries: delta \(delta)")
        }
        report.camregdRSS = residentBytes(pid: daemon.pid) ?? 0
        report.redisRSS = redis.child.flatMap { residentBytes(pid: $0.pid) } ?? 0
        if case .bulk(let b?) = try RedisClient(socket: redis.socket).command(["INFO", "memory"]) {
            for line in String(decoding: b, as: UTF8.self).split(whereSeparator: \.isNewline) where line.hasPrefix("used_memory:") {
                report.redisUsedMemory = Int(line.dropFirst("used_memory:".count)) ?? 0
            }
        }

        // 7. Agreement.
        report.check = try Agreement.check(report: report, queries: list, cameras: cams,
                                           camregd: try CamregClient(socket: sock, requests: camregReq, token: benchToken),
                                           redis: try RedisClient(socket: redisSock, requests: redisReq),
                                           postgis: try PostGISClient(configuration: pgConfig, requests: pgReq))

        // 8. Output.
        print(report.table())
        if let jsonOut {
            try report.json().write(to: URL(fileURLWithPath: jsonOut))
            log("wrote \(jsonOut)")
        }
        if report.check.unexplained > 0 {
            throw BenchError("\(report.check.unexplained) disagreements are not explained by Redis's geohash/haversine boundary")
        }
    }
}

func secs(_ t0: UInt64) -> Double { (Double(monotonicNanos() - t0) / 1e9 * 1000).rounded() / 1000 }

CamregBench.main()
