import ArgumentParser
import ControlProtocol
import ControlServer
import Foundation
import Logging
import NIOCore
import NIOPosix
import Postgres
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

    @Option(name: .long, help: "Data folder: embedded cluster, default socket.")
    var dataDir: String = ProcessInfo.processInfo.environment["CAMREG_DATA_DIR"] ?? "./camreg-data"

    @Option(name: .long, help: "PostgreSQL URL (postgresql://…); default $CAMREG_DATABASE_URL, else the embedded cluster.")
    var databaseURL: String? = ProcessInfo.processInfo.environment["CAMREG_DATABASE_URL"]

    @Option(name: .long, help: "Control socket path (default <data-dir>/camregd.sock, or $CAMREG_SOCKET).")
    var socket: String? = ProcessInfo.processInfo.environment["CAMREG_SOCKET"]

    @Option(name: .long, help: "Folder of the numbered SQL migrations (default: $CAMREG_MIGRATIONS, ./migrations, or the package's).")
    var migrations: String?

    @Flag(name: .long, help: "Load the 1,202-camera Bến Cát demo inventory if the database has no cameras.")
    var demo = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["CAMREG_LOG_LEVEL"] ?? "info"

    @Option(name: .long, help: "Largest NEAR radius in metres.")
    var maxRadius: Double = 50_000

    @Option(name: .long, help: "Database connections in the pool.")
    var dbConnections: Int = 4

    @Option(name: .long, help: "Jurisdiction polygon as WGS84 WKT (lon lat order); cameras outside it are refused. Default: Bến Cát's bounding box.")
    var jurisdictionWkt: String? = ProcessInfo.processInfo.environment["CAMREG_JURISDICTION_WKT"]

    @OptionGroup(title: "Access control and limits")
    var security: SecurityOptions

    mutating func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard maxRadius.isFinite, maxRadius > 0 else { throw ValidationError("--max-radius must be a positive number of metres") }
        guard (1...64).contains(dbConnections) else { throw ValidationError("--db-connections must be 1–64") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "camregd")
        do {
            try await serve(logger: logger)
        } catch {
            logger.critical("camregd stopped: \(error)")
            throw ExitCode(1)
        }
    }

    func serve(logger: Logger) async throws {
        let dataDir = URL(fileURLWithPath: self.dataDir).standardizedFileURL.path
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
            logger.info("using PostgreSQL from --database-url")
        } else {
            let c = try EmbeddedCluster(dataDirectory: dataDir, logger: logger)
            // initdb/pg_ctl block: run them on a thread pool, not on the cooperative threads.
            try await NIOThreadPool.singleton.runIfActive { try c.start() }
            cluster = c
            pgConfig = c.configuration
        }
        let client = PostgresClient(configuration: pgConfig, maximumConnections: dbConnections)
        do {
            // 2. Schema, demo data, index.
            let migrationsDir = migrations ?? Migrator.defaultDirectory()
            let migrator = try Migrator(directory: migrationsDir)
            try await client.withConnection { try migrator.apply(on: $0, logger: logger) }
            if demo {
                let inventory = DemoInventory.generate()
                let loaded = try await client.withConnection { try CameraRepository.loadIfEmpty(inventory.cameras, on: $0) }
                logger.info(loaded ? "loaded the Bến Cát demo inventory" : "database already has cameras; demo inventory not loaded",
                            metadata: loaded ? ["cameras": "\(inventory.cameras.count)"] : [:])
            }
            // Coverage: the demo's reference layers (wards, streets) where none are stored, and
            // runs left `running` by a daemon that stopped are marked failed.
            try await CoverageStartup.prepare(demo: demo, client: client, logger: logger)
            let cameras = try await client.withConnection { try CameraRepository.all(on: $0) }
            let index = try CameraIndex(cameras: cameras)
            logger.info("index built", metadata: ["cameras": "\(cameras.count)",
                                                  "ms": "\(Int(index.snapshot.buildSeconds * 1000))"])

            // 3. Serve until SIGTERM/SIGINT.
            var limits = ProtocolLimits()
            limits.maxRadius = maxRadius
            security.apply(to: &limits)
            let jurisdiction = try jurisdictionWkt.map { try Jurisdiction(name: "configured jurisdiction", wkt: $0) } ?? .benCat
            let service = RegistryService(index: index, limits: limits, store: client, jurisdiction: jurisdiction,
                                          access: security.access(dataDir: dataDir), logger: logger)
            service.loadConsents(try await client.withConnection { try OwnerRepository.allConsents(on: $0) })
            await service.auditLog?.recoverSpool()
            let server = ControlServer(socketPath: socketPath, service: service, options: security.serverOptions, logger: logger)
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: server)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
            Task {
                await server.waitUntilReady()
                logger.notice("camregd ready", metadata: ["socket": "\(socketPath)", "cameras": "\(cameras.count)"])
            }
            try await group.run()
        } catch {
            await client.shutdown()
            try? cluster?.stop()
            throw error
        }
        await client.shutdown()
        try cluster?.stop()
        logger.info("camregd stopped cleanly")
    }
}


/// Access control, transports and request bounds (issue 8). Each flag also reads an
/// environment variable, named in its help.
struct SecurityOptions: ParsableArguments {
    @Option(name: .long, help: "Group owning the control socket (mode 0660); $CAMREG_SOCKET_GROUP.")
    var socketGroup: String? = ProcessInfo.processInfo.environment["CAMREG_SOCKET_GROUP"]

    @Option(name: .long, help: "Map Unix-socket peers running as the daemon's own OS user to admin (yes|no; $CAMREG_PEER_ADMIN).")
    var peerAdmin: String = ProcessInfo.processInfo.environment["CAMREG_PEER_ADMIN"] ?? "yes"

    @Option(name: .long, help: "Also listen on TCP at this port (off by default; $CAMREG_TCP_PORT). Every command but PING, AUTH, HELP, QUIT then needs AUTH.")
    var tcpPort: Int? = ProcessInfo.processInfo.environment["CAMREG_TCP_PORT"].flatMap { Int($0) }

    @Option(name: .long, help: "TCP address to bind ($CAMREG_TCP_HOST).")
    var tcpHost: String = ProcessInfo.processInfo.environment["CAMREG_TCP_HOST"] ?? "127.0.0.1"

    @Option(name: .long, help: "Most connections at once ($CAMREG_MAX_CONNECTIONS).")
    var maxConnections: Int = ProcessInfo.processInfo.environment["CAMREG_MAX_CONNECTIONS"].flatMap { Int($0) } ?? 1024

    @Option(name: .long, help: "Close connections idle for this many seconds; 0 never ($CAMREG_IDLE_TIMEOUT).")
    var idleTimeout: Double = ProcessInfo.processInfo.environment["CAMREG_IDLE_TIMEOUT"].flatMap { Double($0) } ?? 300

    @Option(name: .long, help: "Requests per second per token (bursts of 4× that); 0 disables ($CAMREG_RATE_LIMIT).")
    var rateLimit: Double = ProcessInfo.processInfo.environment["CAMREG_RATE_LIMIT"].flatMap { Double($0) } ?? 50

    @Option(name: .long, help: "Largest WITHIN area in km² ($CAMREG_MAX_AREA_KM2).")
    var maxAreaKm2: Double = ProcessInfo.processInfo.environment["CAMREG_MAX_AREA_KM2"].flatMap { Double($0) } ?? 25

    @Option(name: .long, help: "Longest ALONG route in metres ($CAMREG_MAX_ROUTE_M).")
    var maxRouteM: Double = ProcessInfo.processInfo.environment["CAMREG_MAX_ROUTE_M"].flatMap { Double($0) } ?? 30_000

    @Option(name: .long, help: "Largest limit= of searches and lists ($CAMREG_MAX_RESULTS).")
    var maxResults: Int = ProcessInfo.processInfo.environment["CAMREG_MAX_RESULTS"].flatMap { Int($0) } ?? 10_000

    func validate() throws {
        guard ["yes", "no"].contains(peerAdmin) else { throw ValidationError("--peer-admin must be yes or no") }
        if let p = tcpPort, !(0...65535).contains(p) { throw ValidationError("--tcp-port must be 0–65535") }
        guard (1...1_000_000).contains(maxConnections) else { throw ValidationError("--max-connections must be 1–1000000") }
        guard idleTimeout.isFinite, idleTimeout >= 0 else { throw ValidationError("--idle-timeout must be ≥ 0 seconds") }
        guard rateLimit.isFinite, rateLimit >= 0 else { throw ValidationError("--rate-limit must be ≥ 0") }
        guard maxAreaKm2.isFinite, maxAreaKm2 > 0 else { throw ValidationError("--max-area-km2 must be > 0") }
        guard maxRouteM.isFinite, maxRouteM > 0 else { throw ValidationError("--max-route-m must be > 0") }
        guard (1...100_000).contains(maxResults) else { throw ValidationError("--max-results must be 1–100000") }
    }

    /// Applies the bounds to the parser limits.
    func apply(to limits: inout ProtocolLimits) {
        limits.maxArea = maxAreaKm2 * 1_000_000
        limits.maxRouteLength = maxRouteM
        limits.maxLimit = maxResults
        limits.defaultLimit = min(limits.defaultLimit, maxResults)
    }

    /// The access settings, with the audit spool in the data folder.
    func access(dataDir: String) -> AccessSettings {
        var a = AccessSettings()
        a.peerAdmin = peerAdmin == "yes"
        a.rateLimit = RateLimit(rate: rateLimit, burst: max(1, rateLimit * 4))
        a.auditSpoolPath = dataDir + "/audit-spool.jsonl"
        return a
    }

    /// The control server's transports and limits.
    var serverOptions: ControlServerOptions {
        var o = ControlServerOptions()
        o.maxConnections = maxConnections
        o.idleTimeout = .milliseconds(Int64(idleTimeout * 1000))
        o.socketGroup = socketGroup
        o.tcpHost = tcpHost
        o.tcpPort = tcpPort
        return o
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
