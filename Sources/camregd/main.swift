import ArgumentParser
import ControlProtocol
import ControlServer
import Foundation
import Logging
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

    @Flag(name: .long, help: "Serve searches only, from --database-url (e.g. a streaming replica); writes answer `unavailable`.")
    var readOnly = false

    @Option(name: .long, help: "Seconds a write may wait for PostgreSQL (connect and lock waits) before answering `unavailable` (default 5, or $CAMREG_WRITE_TIMEOUT).")
    var writeTimeout: Double = Double(ProcessInfo.processInfo.environment["CAMREG_WRITE_TIMEOUT"] ?? "") ?? 5

    mutating func validate() throws {
        guard writeTimeout.isFinite, writeTimeout >= 1, writeTimeout <= 300 else {
            throw ValidationError("--write-timeout must be 1–300 seconds")
        }
        if readOnly && (databaseURL ?? "").isEmpty {
            throw ValidationError("--read-only needs --database-url (a replica or the primary)")
        }
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
        let client = PostgresClient(configuration: Self.withTimeouts(pgConfig, seconds: writeTimeout),
                                    maximumConnections: dbConnections)
        var feed: ChangeFeed?
        do {
            // 2. Schema, demo data, index. A read-only daemon (on a replica) changes nothing.
            if !readOnly {
                let migrationsDir = migrations ?? Migrator.defaultDirectory()
                let migrator = try Migrator(directory: migrationsDir)
                try await client.withConnection { try migrator.apply(on: $0, logger: logger) }
            }
            if demo && !readOnly {
                let inventory = DemoInventory.generate()
                let loaded = try await client.withConnection { try CameraRepository.loadIfEmpty(inventory.cameras, on: $0) }
                logger.info(loaded ? "loaded the Bến Cát demo inventory" : "database already has cameras; demo inventory not loaded",
                            metadata: loaded ? ["cameras": "\(inventory.cameras.count)"] : [:])
            }
            // The change number first: what is committed after it reaches the index through the
            // feed (applying a change twice is harmless, missing one is not).
            let startSeq = try await client.withConnection { try ChangeFeed.currentSequence(on: $0) }
            let cameras = try await client.withConnection { try CameraRepository.all(on: $0) }
            let index = try CameraIndex(cameras: cameras)
            logger.info("index built", metadata: ["cameras": "\(cameras.count)",
                                                  "ms": "\(Int(index.snapshot.buildSeconds * 1000))"])

            // 3. Serve until SIGTERM/SIGINT.
            var limits = ProtocolLimits()
            limits.maxRadius = maxRadius
            let jurisdiction = try jurisdictionWkt.map { try Jurisdiction(name: "configured jurisdiction", wkt: $0) } ?? .benCat
            let service = RegistryService(index: index, limits: limits, store: readOnly ? nil : client,
                                          jurisdiction: jurisdiction, logger: logger)
            service.loadConsents(try await client.withConnection { try OwnerRepository.allConsents(on: $0) })
            // Outages: writes fail fast while PostgreSQL is away; probes with backoff bring it back.
            let monitor = readOnly ? nil : DatabaseMonitor(client: client, logger: logger)
            monitor?.start()
            // Changes made by other daemons (or replicated to this replica) reach the index.
            let changeFeed = ChangeFeed(configuration: Self.withTimeouts(pgConfig, seconds: writeTimeout), index: index,
                                        appliedSeq: startSeq, applyConsents: { service.applyConsents($0) }, logger: logger)
            changeFeed.start()
            feed = changeFeed
            service.reliability.attach(monitor: monitor, feed: changeFeed, readOnly: readOnly)
            let server = ControlServer(socketPath: socketPath, service: service, logger: logger)
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: server)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
            Task {
                await server.waitUntilReady()
                logger.notice("camregd ready", metadata: ["socket": "\(socketPath)", "cameras": "\(cameras.count)"])
                SystemdNotify.send("READY=1\nSTATUS=serving \(cameras.count) cameras")
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
