import ControlProtocol
import ControlServer
import Foundation
import Geo
import Logging
import NIOPosix
import ServiceLifecycle
import Registry
import RegistryStore

/// `camreg-bench --micro`: what one `NEAR` costs inside camregd, without sockets — the same
/// request lines and the same `RegistryService.answer` the control socket runs, on one thread,
/// split into its parts (parse, index search, the whole answer). Shows how much of a query's
/// time is the server's own work and how much is the trip through the kernel and the event loop.
enum MicroBench {
    static func run(cameras: [Camera], queries: [BenchQuery], fields: String?, rounds: Int, importToo: Bool,
                    log: (String) -> Void) throws -> String {
        let rss0 = residentBytes(pid: getpid()) ?? 0
        var t = monotonicNanos()
        let index = try CameraIndex(cameras: cameras)
        let rss1 = residentBytes(pid: getpid()) ?? 0
        log("micro: index of \(cameras.count) cameras built in \(secs(t)) s; packed table \(index.snapshot.table.bytes >> 20) MiB; RSS +\((rss1 - rss0) >> 20) MiB")
        try cacheStart(cameras, log: log)
        t = monotonicNanos()
        let bulk = try CameraIndex(cameras: [])
        try bulk.upsert(contentsOf: cameras)
        log("micro: the same cameras bulk-upserted into an empty index in \(secs(t)) s")
        var access = AccessSettings()
        access.rateLimit = RateLimit(rate: 0, burst: 0)
        let service = RegistryService(index: index, access: access)
        let session = ConnectionSession(identity: Identity(name: "bench", label: "bench", role: .analyst), peer: "bench")
        let lines = queries.map { q in Array(CamregClient.request(q, fields: fields).dropLast()) }
        var sink = 0

        /// The fastest of `rounds` runs of `body`, per query.
        func perQuery(_ body: () throws -> Void) rethrows -> Double {
            var best = Double.infinity
            for _ in 0..<rounds {
                let start = monotonicNanos()
                try body()
                best = min(best, Double(monotonicNanos() - start) / 1000 / Double(lines.count))
            }
            return best
        }
        // Warm-up: caches and lazily built tables.
        for line in lines.prefix(2000) { if case .now(let r) = service.answer(line, session: session) { sink &+= r.count } }

        let parse = try perQuery { for line in lines { _ = try RequestParser.parseRequest(line) } }
        var hits = 0
        let search = try perQuery { for q in queries { hits &+= try index.near(lat: q.lat, lon: q.lon, radius: q.radius, limit: 10_000).count } }
        log(String(format: "micro: %.2f hits per query", Double(hits) / Double(queries.count * rounds)))
        let box = perQuery { for q in queries { sink &+= Int(Geo.Geodesic.wgs84.boundingBox(lat: q.lat, lon: q.lon, radius: q.radius).minLat) } }
        let inverse = perQuery { for q in queries { sink &+= Int(Geo.Geodesic.wgs84.inverse(lat1: q.lat, lon1: q.lon, lat2: q.lat + 0.001, lon2: q.lon + 0.001).distance) } }
        log(String(format: "micro: boundingBox %.2f µs, one geod_inverse %.2f µs", box, inverse))
        // The whole answer on one thread, and the same loop on two threads at once (two
        // connections on two event loops: what the threads cost each other, through shared
        // reference counts, locks and counters). Alternated round by round, so that both see the
        // same machine (this VM's speed drifts by half from one minute to the next); the fastest
        // round of each is kept.
        var bytes = 0
        let threads = 2
        let sessions = (0..<threads).map { ConnectionSession(identity: Identity(name: "bench\($0)", label: "bench", role: .analyst), peer: "bench\($0)") }
        var whole = Double.infinity, parallel = Double.infinity
        for _ in 0..<rounds {
            var start = monotonicNanos()
            for line in lines {
                guard case .now(let r) = service.answer(line, session: session) else { continue }
                bytes += r.count + 1
            }
            whole = min(whole, Double(monotonicNanos() - start) / 1000 / Double(lines.count))
            start = monotonicNanos()
            DispatchQueue.concurrentPerform(iterations: threads) { i in
                for line in lines { _ = service.answer(line, session: sessions[i]) }
            }
            parallel = min(parallel, Double(monotonicNanos() - start) / 1000 / Double(lines.count))
        }
        // The same answers through a real control socket (one event loop, one connection, one
        // request in flight): what the event loop, the channel pipeline and the kernel add.
        let socket = try throughSocket(service: service, lines: lines, rounds: rounds)
        // The same lines about an incident (`at=`): each hit then also carries its footage state,
        // when the footage expires and the window it must cover (three timestamps).
        let incidentLines = lines.map { $0 + Array(" at=2026-11-29T21:30+07:00".utf8) }
        var incidentBytes = 0
        let incident = perQuery {
            for line in incidentLines {
                guard case .now(let r) = service.answer(line, session: session) else { continue }
                incidentBytes += r.count + 1
            }
        }
        // The import path's parse and validation (what IMPORT COMMIT does before PostgreSQL).
        if importToo { try importParse(cameras, log: log) }
        _ = sink
        return String(format: """
            micro (one thread, no sockets; %d NEAR lines%@, best of %d):
              parse            %7.2f µs/query
              index search     %7.2f µs/query (STRtree + geodesics)
              whole answer     %7.2f µs/query (parse, access, search, sector tests, JSON; %.0f bytes/answer)
              = %.0f answers/s per core
              on %d threads    %7.2f µs/query per thread (the whole answer, each thread all lines at once)
              with at=<time>   %7.2f µs/query (the same about an incident: footage state and times; %.0f bytes/answer)
              through a socket %7.2f µs/query (one connection to a control server on one event loop, one request in flight)
            """, lines.count, fields.map { ", fields=\($0)" as NSString } ?? "" as NSString, rounds, parse, search, whole,
                      Double(bytes) / Double(lines.count * rounds), 1e6 / whole, threads, parallel,
                      incident, Double(incidentBytes) / Double(incidentLines.count * rounds), socket)
    }

    /// The lines sent one at a time over a Unix socket to a ``ControlServer`` on one event-loop
    /// thread (the connection is the daemon's own user: admin by peer credentials, no token);
    /// the fastest round, per query. Under callgrind the server thread's instructions (from
    /// `SelectableEventLoop.run`) divided by the queries are the whole serve path's cost in user
    /// space: the answer, SwiftNIO and the connection handler.
    static func throughSocket(service: RegistryService, lines: [[UInt8]], rounds: Int) throws -> Double {
        let dir = "/tmp/cmb.\(getpid())"
        guard mkdir(dir, 0o700) == 0 || errno == EEXIST else { throw BenchError("mkdir \(dir): \(String(cString: strerror(errno)))") }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/m.sock"
        let loop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? loop.syncShutdownGracefully() }
        var logger = Logger(label: "camreg-bench.micro")
        logger.logLevel = .warning
        let server = ControlServer(socketPath: path, service: service, group: loop, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: logger))
        let running = Task { try await group.run() }
        let ready = DispatchSemaphore(value: 0)
        Task { await server.waitUntilReady(); ready.signal() }
        ready.wait()
        defer {
            let stopped = DispatchSemaphore(value: 0)
            Task { await group.triggerGracefulShutdown(); _ = try? await running.value; stopped.signal() }
            stopped.wait()
        }
        let client = try CamregClient(socket: path, requests: lines.map { $0 + [UInt8(ascii: "\n")] })
        var best = Double.infinity
        for _ in 0..<rounds {
            let start = monotonicNanos()
            let order = Array(lines.indices)
            for i in lines.indices {
                try client.send(order[i...i])
                _ = try client.receive(collect: false)
            }
            best = min(best, Double(monotonicNanos() - start) / 1000 / Double(lines.count))
        }
        close(client.stream.fd)
        return best
    }

    /// The start from an index cache file, both ways: decoded into `Camera` values and indexed
    /// (the path when cameras changed after the cache), and packed straight from the file's
    /// bytes (`IndexCache.decodeTable`). Logs time and the RSS each leaves after `malloc_trim`.
    static func cacheStart(_ cameras: [Camera], log: (String) -> Void) throws {
        let path = NSTemporaryDirectory() + "camreg-micro-\(getpid()).cache"
        defer { unlink(path) }
        let identity = DatabaseIdentity(systemIdentifier: 1, databaseOID: 1, databaseName: "micro", schemaVersion: 1)
        try IndexCache.write(CameraSnapshotLoad(cameras: cameras, xmins: Array(repeating: 7, count: cameras.count), sequence: 1, anchor: 1),
                             identity: identity, to: path)
        for packed in [true, false] {
            CameraStartup.trimHeap()
            let rss0 = residentBytes(pid: getpid()) ?? 0
            let t = monotonicNanos()
            // The file is dropped with this closure, before RSS is read.
            let (index, read, decoded): (CameraIndex, Double, Double) = try {
                let file = try IndexCache.read(path: path)
                let read = secs(t)
                let t1 = monotonicNanos()
                if packed {
                    let packed = try IndexCache.decodeTable(file)
                    let decoded = secs(t1)
                    return (try CameraIndex(table: packed.table, tree: packed.tree), read, decoded)
                }
                let cameras = try IndexCache.decode(file).cameras
                let decoded = secs(t1)
                return (try CameraIndex(cameras: cameras), read, decoded)
            }()
            let seconds = secs(t)
            CameraStartup.trimHeap()
            let rss1 = residentBytes(pid: getpid()) ?? 0
            log("micro: start from the index cache, \(packed ? "packed from the file" : "decoded to Camera values"): \(seconds) s (read and header \(read) s, decode \(decoded) s (packed: with the STRtree beside it), the rest the index); RSS +\((rss1 - rss0) >> 20) MiB after trim (\(index.count) cameras)")
        }
    }

    /// Times the CSV import's parse and validation of `cameras` (what IMPORT COMMIT does before PostgreSQL).
    static func importParse(_ cameras: [Camera], log: (String) -> Void) throws {
        let csvPath = NSTemporaryDirectory() + "camreg-micro-\(getpid()).csv"
        defer { unlink(csvPath) }
        let csvBytes = try ImportBench.writeCSV(cameras, to: csvPath)
        let csv = try Data(contentsOf: URL(fileURLWithPath: csvPath))
        var t = monotonicNanos()
        let rows = try CSVImporter.parse(csv, jurisdiction: nil)
        let parseSeconds = secs(t)
        t = monotonicNanos()
        var valid = 0
        let now = Date()
        for row in rows { if case .success(let d) = row.result, d.validate(jurisdiction: nil).isEmpty { _ = d.camera(now: now); valid += 1 } }
        log(String(format: "micro: CSV import of %d cameras (%.0f MiB): parse %.2f s, validate %.2f s (%d valid)",
                   cameras.count, Double(csvBytes) / 1048576, parseSeconds, secs(t), valid))
    }
}
