import ArgumentParser
import ControlProtocol
import ControlServer
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Postgres
import Prometheus
import Registry
import RegistryStore
import ServiceLifecycle

/// `camregd`: the camera registry daemon.
@main
struct Camregd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "camregd",
        abstract: "Security-camera registry and incident geo-index daemon.",
        discussion: """
            Without --database-url, camregd runs a private PostgreSQL cluster in <data-dir>/pg \
            (initdb + pg_ctl, Unix socket only) and stops it on shutdown.
            """)

    // Every option can also be set in the configuration file (--config) and in the environment
    // (CAMREG_<NAME>); a flag wins over the environment, which wins over the file
    // (DaemonSettings, docs/operations.md). Options are optional here so that "not given" is
    // told apart from "given the default".
    @Option(name: .long, help: "TOML configuration file (default $CAMREG_CONFIG); flags and CAMREG_* variables override it.")
    var config: String?

    @Flag(name: .long, help: "Check the configuration (file, environment, flags), print the settings in effect, and exit.")
    var checkConfig = false

    @Option(name: .long, help: "Data folder: embedded cluster, default socket.")
    var dataDir: String?

    @Option(name: .long, help: "PostgreSQL URL (postgresql://…); without it, the embedded cluster.")
    var databaseURL: String?

    @Option(name: .long, help: "Control socket path (default <data-dir>/camregd.sock).")
    var socket: String?

    @Option(name: .long, help: "Folder of the numbered SQL migrations (default ./migrations, or the package's).")
    var migrations: String?

    @Flag(name: .long, help: "Load the 1,202-camera Bến Cát demo inventory if the database has no cameras.")
    var demo = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (reloaded on SIGHUP).")
    var logLevel: String?

    @Option(name: .long, help: "Largest NEAR radius in metres (reloaded on SIGHUP).")
    var maxRadius: Double?

    @Option(name: .long, help: "Database connections in the pool.")
    var dbConnections: Int?

    @Option(name: .long, help: "Jurisdiction polygon as WGS84 WKT (lon lat order); cameras outside it are refused. Default: Bến Cát's bounding box.")
    var jurisdictionWkt: String?

    @Flag(name: .long, help: "Serve searches only, from --database-url (e.g. a streaming replica); writes answer `unavailable`.")
    var readOnly = false

    @Option(name: .long, help: "Seconds a write may wait for PostgreSQL (connect and lock waits) before answering `unavailable` (default 5).")
    var writeTimeout: Double?

    @Option(name: .long, help: "Seconds SIGTERM waits for connections to finish their requests (default 10).")
    var drainTimeout: Double?

    @Option(name: .long, help: "Event-loop threads answering the control socket (default 0 = one per core).")
    var eventLoopThreads: Int?

    @Option(name: .long, help: "host:port for the Prometheus text endpoint (/metrics); off by default.")
    var metricsListen: String?

    @Option(name: .long, help: "limit= of searches when none is given (default 100; reloaded on SIGHUP).")
    var defaultLimit: Int?

    @Option(name: .long, help: "Largest limit=/k= of searches (default 10000; reloaded on SIGHUP).")
    var maxLimit: Int?

    @Option(name: .long, help: "Longest request line in bytes (default 65536).")
    var maxLineBytes: Int?

    @Option(name: .long, help: "Group owning the control socket (mode 0660).")
    var socketGroup: String?

    @Option(name: .long, help: "Map Unix-socket clients running as the daemon's own OS user to admin (true|false; default true).")
    var peerAdmin: String?

    @Option(name: .long, help: "Also listen on TCP at this port (off by default); every command but PING, AUTH, HELP, WHOAMI, QUIT then needs AUTH.")
    var tcpPort: Int?

    @Option(name: .long, help: "TCP address to bind (default 127.0.0.1).")
    var tcpHost: String?

    @Option(name: .long, help: "Most connections at once (default 1024).")
    var maxConnections: Int?

    @Option(name: .long, help: "Close connections idle for this many seconds; 0 never (default 300).")
    var idleTimeout: Double?

    @Option(name: .long, help: "Requests per second per token, bursts of 4x; 0 disables (default 50).")
    var rateLimit: Double?

    @Option(name: .long, help: "Largest WITHIN area in km² (default 25; reloaded on SIGHUP).")
    var maxAreaKm2: Double?

    @Option(name: .long, help: "Longest ALONG route in metres (default 30000; reloaded on SIGHUP).")
    var maxRouteM: Double?

    @Option(name: .long, help: "Largest search answer in bytes; longer ones are paged with next_offset (default 4194304; reloaded on SIGHUP).")
    var maxResponseBytes: Int?

    @Option(name: .long, help: "Start from <data-dir>/index-cache.bin when it is current, and write it after start-up (true|false; default true).")
    var indexCache: String?

    @Option(name: .long, help: "With --read-only: the primary's URL, where the audit log is written (else owner data is not served).")
    var auditDatabaseURL: String?

    /// The flags given, as raw values by setting name.
    var flagValues: [String: String] {
        var f: [String: String] = [:]
        f["data_dir"] = dataDir
        f["database_url"] = databaseURL
        f["socket"] = socket
        f["migrations"] = migrations
        f["log_level"] = logLevel
        f["max_radius"] = maxRadius.map { String($0) }
        f["db_connections"] = dbConnections.map { String($0) }
        f["jurisdiction_wkt"] = jurisdictionWkt
        f["write_timeout"] = writeTimeout.map { String($0) }
        f["drain_timeout"] = drainTimeout.map { String($0) }
        f["event_loop_threads"] = eventLoopThreads.map { String($0) }
        f["metrics_listen"] = metricsListen
        f["socket_group"] = socketGroup
        f["default_limit"] = defaultLimit.map { String($0) }
        f["max_limit"] = maxLimit.map { String($0) }
        f["max_line_bytes"] = maxLineBytes.map { String($0) }
        f["peer_admin"] = peerAdmin
        f["tcp_port"] = tcpPort.map { String($0) }
        f["tcp_host"] = tcpHost
        f["max_connections"] = maxConnections.map { String($0) }
        f["idle_timeout"] = idleTimeout.map { String($0) }
        f["rate_limit"] = rateLimit.map { String($0) }
        f["max_area_km2"] = maxAreaKm2.map { String($0) }
        f["max_route_m"] = maxRouteM.map { String($0) }
        f["max_response_bytes"] = maxResponseBytes.map { String($0) }
        f["audit_database_url"] = auditDatabaseURL
        f["index_cache"] = indexCache
        if demo { f["demo"] = "true" }
        if readOnly { f["read_only"] = "true" }
        return f
    }

    /// Reads the file (if any) and resolves flags > environment > file > defaults.
    func loadSettings() throws -> (DaemonSettings, [String: DaemonSettings.Source]) {
        let env = ProcessInfo.processInfo.environment
        var file: [String: String] = [:]
        if let path = config ?? env["CAMREG_CONFIG"], !path.isEmpty {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError("cannot read the configuration file \(path)")
            }
            file = try DaemonSettings.parseFile(text, path: path)
        }
        return try DaemonSettings.resolve(flags: flagValues, environment: DaemonSettings.fromEnvironment(env), file: file)
    }

    /// The entry point: the malloc setting first, on the main thread, before any other thread
    /// exists. (In `run()` it came too late: `run` starts on a thread of the cooperative pool,
    /// which had already made itself an arena, and threads kept sharing that one.)
    static func main() async {
        CameraStartup.useOneMallocArena()
        await main(nil)
    }

    func run() async throws {
        let settings: DaemonSettings
        do {
            let (s, sources) = try loadSettings()
            settings = s
            if let wkt = s.jurisdictionWKT { _ = try Jurisdiction(name: "configured jurisdiction", wkt: wkt) }
            if checkConfig {
                print(s.describe(sources: sources))
                print("# configuration OK")
                return
            }
        } catch {
            FileHandle.standardError.write(Data("camregd: configuration error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        ReloadableLogLevel.current = settings.logLevel
        LoggingSystem.bootstrap { label in ReloadableLogHandler(label: label) }
        let logger = Logger(label: "camregd")
        do {
            try await serve(settings, logger: logger)
        } catch {
            logger.critical("camregd stopped: \(error)")
            throw ExitCode(1)
        }
    }

    /// SIGHUP: reads the configuration again and applies what can change while running (log
    /// level, limits); the rest is reported as needing a restart. A bad file changes nothing.
    func reload(into service: RegistryService, running: DaemonSettings, logger: Logger) {
        do {
            let (next, _) = try loadSettings()
            ReloadableLogLevel.current = next.logLevel
            var limits = next.limits
            limits.maxLineBytes = running.maxLineBytes
            service.updateLimits(limits)
            let needRestart = next.restartNeeded(comparedWith: running)
            logger.notice("configuration reloaded", metadata: [
                "log_level": "\(next.logLevel)", "max_radius": "\(next.maxRadius)",
                "default_limit": "\(next.defaultLimit)", "max_limit": "\(next.maxLimit)",
            ])
            if !needRestart.isEmpty {
                logger.warning("changed settings that need a restart were not applied", metadata: ["settings": "\(needRestart.joined(separator: ", "))"])
            }
        } catch {
            logger.error("configuration reload failed; the running settings are kept", metadata: ["error": "\(error)"])
        }
    }

    func serve(_ settings: DaemonSettings, logger: Logger) async throws {
        let dataDir = URL(fileURLWithPath: settings.dataDir).standardizedFileURL.path
        let socket = settings.socket, databaseURL = settings.databaseURL, readOnly = settings.readOnly
        let writeTimeout = settings.writeTimeout, demo = settings.demo
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let socketPath = socket ?? dataDir + "/camregd.sock"
        // One daemon per data folder: a second one must not adopt (and later stop) the first
        // one's cluster. The lock goes away with the process, however it ends.
        let lockFD = open(dataDir + "/camregd.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0, flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            throw ValidationError("another camregd is using the data folder \(dataDir)")
        }
        defer { close(lockFD) }

        // 1. The database: the given server, or the embedded cluster.
        var cluster: EmbeddedCluster?
        let pgConfig: PostgresConfiguration
        if let url = databaseURL, !url.isEmpty {
            pgConfig = .url(url, applicationName: "camregd")
            logger.info("using PostgreSQL from database_url")
        } else {
            let c = try EmbeddedCluster(dataDirectory: dataDir, logger: logger)
            // initdb/pg_ctl block: run them on a thread pool, not on the cooperative threads.
            try await NIOThreadPool.singleton.runIfActive { try c.start() }
            cluster = c
            pgConfig = c.configuration
        }
        let client = PostgresClient(configuration: Self.withTimeouts(pgConfig, seconds: writeTimeout),
                                    maximumConnections: settings.dbConnections)
        var feed: ChangeFeed?
        do {
            // 2. Schema, demo data, index. A read-only daemon (on a replica) changes nothing.
            if !readOnly {
                let migrationsDir = settings.migrations ?? Migrator.defaultDirectory()
                let migrator = try Migrator(directory: migrationsDir)
                _ = try await client.withConnection { try migrator.apply(on: $0, logger: logger) }
            }
            if demo && !readOnly {
                let inventory = DemoInventory.generate()
                let loaded = try await client.withConnection { try CameraRepository.loadIfEmpty(inventory.cameras, on: $0) }
                logger.info(loaded ? "loaded the Bến Cát demo inventory" : "database already has cameras; demo inventory not loaded",
                            metadata: loaded ? ["cameras": "\(inventory.cameras.count)"] : [:])
            }
            // Coverage: the demo's reference layers (wards, streets) where none are stored, and
            // runs left `running` by a daemon that stopped are marked failed.
            if !readOnly { try await CoverageStartup.prepare(demo: demo, client: client, logger: logger) }
            // The cameras, with the change number of the snapshot they were read in: what is
            // committed after it reaches the index through the feed (applying a change twice is
            // harmless, missing one is not). From the index cache when it is current, else
            // streamed from PostgreSQL.
            let cachePath = dataDir + "/" + IndexCache.fileName
            let (index, startSeq, indexSource) = try await Self.buildIndex(useCache: settings.indexCache, cachePath: cachePath,
                                                                           writeCache: settings.indexCache && !readOnly,
                                                                           client: client, logger: logger)
            // The load's garbage (its `Camera` values, libpq buffers, the cache file) goes back
            // to the system: the index holds the cameras packed.
            CameraStartup.trimHeap()
            let cameraCount = index.count

            // 3. Serve until SIGTERM/SIGINT.
            let limits = settings.limits
            let jurisdiction = try settings.jurisdictionWKT.map { try Jurisdiction(name: "configured jurisdiction", wkt: $0) } ?? .benCat
            // The audit log goes to the primary: this database, or audit_database_url on a replica.
            let auditClient = readOnly
                ? settings.auditDatabaseURL.map { PostgresClient(configuration: Self.withTimeouts(.url($0, applicationName: "camregd-audit"), seconds: writeTimeout), maximumConnections: 2) }
                : client
            let service = RegistryService(index: index, limits: limits, store: readOnly ? nil : client,
                                          jurisdiction: jurisdiction, access: settings.access(dataDir: dataDir),
                                          readStore: client, auditStore: auditClient, logger: logger)
            service.noteIndexSource(indexSource)
            service.loadConsents(try await client.withConnection { try OwnerRepository.allConsents(on: $0) })
            // Outages: writes fail fast while PostgreSQL is away; probes with backoff bring it back.
            let monitor = readOnly ? nil : DatabaseMonitor(client: client, probeTimeout: writeTimeout, logger: logger)
            monitor?.start()
            // From now on no call waits longer than write_timeout on a server that stopped answering.
            client.setResponseTimeout(writeTimeout)
            // Changes made by other daemons (or replicated to this replica) reach the index.
            let changeFeed = ChangeFeed(configuration: Self.withTimeouts(pgConfig, seconds: writeTimeout), index: index,
                                        appliedSeq: startSeq, applyConsents: { service.applyConsents($0) }, logger: logger)
            if let monitor { changeFeed.onConnectionLost { _ in monitor.check() } }
            if !readOnly {
                changeFeed.onIncidents { incidents in Task { await service.applyIncidentsFromFeed(incidents, logger: logger) } }
            }
            changeFeed.start()
            feed = changeFeed
            service.reliability.attach(monitor: monitor, feed: changeFeed, readOnly: readOnly)
            await service.auditLog?.recoverSpool()
            // Tokens revoked through other daemons are refused here within 5 s.
            let revocations = Task { await service.runRevocationRefresh(interval: 5) }
            defer { revocations.cancel() }
            let loops: EventLoopGroup = settings.eventLoopThreads > 0
                ? MultiThreadedEventLoopGroup(numberOfThreads: settings.eventLoopThreads)
                : MultiThreadedEventLoopGroup.singleton
            let server = ControlServer(socketPath: socketPath, service: service, group: loops,
                                       drainTimeout: .milliseconds(Int64(settings.drainTimeout * 1000)),
                                       options: settings.serverOptions, logger: logger)
            let reloader = HangupReloader { [self] in self.reload(into: service, running: settings, logger: logger) }
            defer { reloader.cancel() }
            // The Prometheus endpoint, only when asked for.
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)]
            if let listen = settings.metricsListen, let (host, port) = DaemonSettings.hostPort(listen) {
                let registry = PrometheusCollectorRegistry()
                MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
                service.reliability.metrics.exportToSwiftMetrics()
                services.append(.init(service: PrometheusEndpoint(host: host, port: port, registry: registry,
                                                                  service: service, logger: logger)))
            }
            let group = ServiceGroup(configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
            Task {
                await server.waitUntilReady()
                logger.notice("camregd ready", metadata: ["socket": "\(socketPath)", "cameras": "\(cameraCount)"])
                SystemdNotify.send("READY=1\nSTATUS=serving \(cameraCount) cameras")
            }
            try await group.run()
            SystemdNotify.send("STOPPING=1")
        } catch {
            await feed?.stop()
            await client.shutdown()
            try? cluster?.stop()
            throw error
        }
        await feed?.stop()
        await client.shutdown()
        try cluster?.stop()
        logger.info("camregd stopped cleanly")
    }

    /// libpq settings that bound how long a write can wait: `connect_timeout`, TCP keepalives
    /// and `tcp_user_timeout` (a server gone from the network), `lock_timeout` (a lock held by a
    /// stuck session). The seconds given are rounded up to whole seconds where libpq needs it.
    /// Loads the cameras (index cache or PostgreSQL), packs them into the index and, when the
    /// load came from PostgreSQL, has the cache written in the background (only a daemon that may
    /// write writes it; a read-only one may read one). Its own scope, so that the load's
    /// `Camera` values are freed when it returns. Returns the index, the change number it
    /// reflects and where it came from.
    static func buildIndex(useCache: Bool, cachePath: String, writeCache: Bool, client: PostgresClient,
                           logger: Logger) async throws -> (CameraIndex, Int64, String) {
        let startup = try await CameraStartup.cameras(useCache: useCache, cachePath: cachePath, client: client, logger: logger)
        let index = try startup.table.map { try CameraIndex(table: $0.0, tree: $0.1, startedAt: $0.2) } ?? CameraIndex(cameras: startup.load.cameras)
        logger.info("index built", metadata: ["cameras": "\(index.count)", "source": "\(startup.source)",
                                              "ms": "\(Int(index.snapshot.buildSeconds * 1000))",
                                              "table_mib": "\(index.snapshot.table.bytes >> 20)"])
        if writeCache && startup.needsWrite {
            CameraStartup.writeCacheInBackground(startup.load, path: cachePath, client: client, logger: logger)
        }
        return (index, startup.load.sequence, startup.source)
    }

    static func withTimeouts(_ config: PostgresConfiguration, seconds: Double) -> PostgresConfiguration {
        let whole = String(max(2, Int(seconds.rounded(.up))))
        let ms = String(Int(seconds * 1000))
        return config
            .with("connect_timeout", whole)
            .with("keepalives", "1")
            .with("keepalives_idle", whole)
            .with("keepalives_interval", "1")
            .with("keepalives_count", "3")
            .with("tcp_user_timeout", ms)
            .with("options", "-c lock_timeout=\(ms)")
    }
}


/// Start-up steps of the coverage analysis (issue 4).
enum CoverageStartup {
    /// With `--demo`, stores the demo's generated wards and streets as the reference layers where
    /// the tables are empty; always marks runs left `running` by a stopped daemon as failed.
    static func prepare(demo: Bool, client: PostgresClient, logger: Logger) async throws {
        if demo {
            let wards = try CoverageDemoLayers.wards()
            let streets = CoverageDemoLayers.streets(DemoInventory.generate())
            let stored = try await client.withConnection {
                try CoverageRepository.loadDemoLayersIfEmpty(wards: wards, streets: streets, on: $0)
            }
            if stored.wards || stored.streets {
                logger.info("stored the demo's coverage layers", metadata: [
                    "wards": "\(stored.wards ? wards.count : 0)", "streets": "\(stored.streets ? streets.count : 0)"])
            }
        }
        let failed = try await client.withConnection { try CoverageRepository.failInterruptedRuns(on: $0) }
        if failed > 0 { logger.warning("coverage runs interrupted by the last stop marked failed", metadata: ["runs": "\(failed)"]) }
    }
}
