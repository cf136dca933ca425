import Foundation
import Logging
import Postgres

/// Why the embedded cluster could not be created, started or stopped.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    /// What was being done.
    public let step: String
    /// The command's output or the reason.
    public let message: String
    public var description: String { "embedded PostgreSQL: \(step): \(message)" }
}

/// A private PostgreSQL cluster in a data folder, run with the system's `initdb` and `pg_ctl`,
/// listening on a Unix socket only. Used by `camregd` when no database URL is given, and by the
/// tests for their throwaway cluster.
///
/// When the process runs as root (which `initdb` refuses), the cluster runs as an unprivileged
/// user (`postgres` by default, `CAMREG_PG_USER` to change) through `runuser`. A cluster left
/// running by a killed daemon is adopted; a stale `postmaster.pid` is removed.
public final class EmbeddedCluster: Sendable {
    /// The data folder (holds `pg/`, the cluster, and `run/` for its socket when the path is short).
    public let dataDirectory: String
    /// The cluster folder (`PGDATA`).
    public let pgData: String
    /// The folder of the Unix socket.
    public let socketDirectory: String
    /// The port number (names the socket file `.s.PGSQL.<port>`; no TCP).
    public let port: Int
    /// The superuser and database created in the cluster.
    public let user = "camreg"
    /// The database the daemon uses.
    public let database: String
    /// The folder holding `initdb`, `pg_ctl`, `postgres`.
    public let binDirectory: String
    /// The OS user the server runs as when we are root; `nil` when it runs as ourselves.
    public let runAsUser: String?
    private let logger: Logger

    /// Prepares (but does not start) the cluster for `dataDirectory`.
    public init(dataDirectory: String, database: String = "camreg", port: Int = 5432, logger: Logger = Logger(label: "camreg.cluster")) throws {
        let absolute = URL(fileURLWithPath: dataDirectory).standardizedFileURL.path
        self.dataDirectory = absolute
        self.pgData = absolute + "/pg"
        self.port = port
        self.database = database
        self.logger = logger
        self.binDirectory = try Self.findBinDirectory()
        self.runAsUser = getuid() == 0 ? (ProcessInfo.processInfo.environment["CAMREG_PG_USER"] ?? "postgres") : nil
        // A Unix socket path holds at most 107 bytes: use the data folder when it is short enough.
        let preferred = absolute + "/run"
        if (preferred + "/.s.PGSQL.\(port).lock").utf8.count <= 100 {
            socketDirectory = preferred
        } else {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in absolute.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            socketDirectory = "/tmp/camreg-pg-" + String(h, radix: 36)
        }
    }

    /// How to connect to the cluster's database.
    public var configuration: PostgresConfiguration {
        .unixSocket(directory: socketDirectory, port: port, user: user, database: database)
    }

    /// How to connect to another database of the cluster.
    public func configuration(database: String) -> PostgresConfiguration {
        .unixSocket(directory: socketDirectory, port: port, user: user, database: database)
    }

    /// Creates the cluster on first use, starts it (or adopts a running one), and makes sure the
    /// database exists.
    public func start() throws {
        let fm = FileManager.default
        try makeDirectory(dataDirectory, mode: runAsUser == nil ? 0o700 : 0o711, chownToServer: false)
        try makeDirectory(socketDirectory, mode: 0o700, chownToServer: true)
        if !fm.fileExists(atPath: pgData + "/PG_VERSION") {
            try makeDirectory(pgData, mode: 0o700, chownToServer: true)
            logger.info("creating embedded PostgreSQL cluster", metadata: ["pgdata": "\(pgData)"])
            try run("initdb", ["-D", pgData, "-U", user, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-instructions"], step: "initdb")
            let conf = pgData + "/postgresql.conf"
            let include = "\n# camreg: socket-only settings, rewritten at every start\ninclude_if_exists = 'camreg.conf'\n"
            guard let handle = FileHandle(forWritingAtPath: conf) else {
                throw ClusterError(step: "configure", message: "cannot open \(conf)")
            }
            handle.seekToEndOfFile()
            handle.write(include.data(using: .utf8)!)
            handle.closeFile()
        }
        let settings = """
            listen_addresses = ''
            unix_socket_directories = '\(socketDirectory.replacingOccurrences(of: "'", with: "''"))'
            unix_socket_permissions = 0700
            port = \(port)
            logging_collector = off
            """
        let confPath = pgData + "/camreg.conf"
        do {
            try settings.write(toFile: confPath, atomically: true, encoding: .utf8)
        } catch {
            throw ClusterError(step: "configure", message: "cannot write \(confPath): \(error)")
        }
        try chownToServer(confPath)

        if isRunning() {
            logger.info("adopting the embedded PostgreSQL that is already running", metadata: ["pgdata": "\(pgData)"])
        } else {
            removeStalePidFile()
            logger.info("starting embedded PostgreSQL", metadata: ["socket": "\(socketDirectory)"])
            try run("pg_ctl", ["start", "-w", "-t", "120", "-D", pgData, "-l", pgData + "/server.log", "-s"], step: "pg_ctl start",
                    logTail: pgData + "/server.log")
        }
        try ensureDatabase()
    }

    /// Stops the cluster (fast shutdown: sessions are ended, then a clean checkpoint).
    public func stop() throws {
        guard isRunning() else { return }
        logger.info("stopping embedded PostgreSQL")
        try run("pg_ctl", ["stop", "-w", "-t", "60", "-m", "fast", "-D", pgData, "-s"], step: "pg_ctl stop")
    }

    /// Whether a server is running on the cluster (`pg_ctl status`).
    public func isRunning() -> Bool {
        guard FileManager.default.fileExists(atPath: pgData + "/PG_VERSION") else { return false }
        return (try? run("pg_ctl", ["status", "-D", pgData], step: "pg_ctl status", quiet: true)) != nil
    }

    private func ensureDatabase() throws {
        let admin = try PostgresConnection(configuration: configuration(database: "postgres"))
        let exists = try admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]).rows.count == 1
        if !exists {
            do {
                let ident = "\"" + database.replacingOccurrences(of: "\"", with: "\"\"") + "\""
                try admin.query("CREATE DATABASE \(ident)")
            } catch let e as PostgresError where e.sqlState == "42P04" {
                // Created meanwhile by another process.
            }
        }
    }

    /// A `postmaster.pid` whose process is gone is removed, so that the start does not fail.
    private func removeStalePidFile() {
        let path = pgData + "/postmaster.pid"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        let pid = Int32(text.split(separator: "\n").first.map(String.init) ?? "") ?? 0
        let alive = pid > 0 && kill(pid, 0) == 0
        var isPostgres = false
        if alive, let cmd = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) {
            isPostgres = cmd.hasPrefix("postgres")
        }
        if !alive || !isPostgres {
            logger.warning("removing a stale postmaster.pid left by a crash", metadata: ["pid": "\(pid)"])
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    private func makeDirectory(_ path: String, mode: Int, chownToServer chown: Bool) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw ClusterError(step: "create \(path)", message: "\(error.localizedDescription)")
        }
        chmod(path, mode_t(mode))
        if chown { try chownToServer(path) }
    }

    private func chownToServer(_ path: String) throws {
        guard let user = runAsUser else { return }
        guard let pw = getpwnam(user) else {
            throw ClusterError(step: "find user", message: "running as root, the cluster needs the unprivileged user '\(user)' (install postgresql, or set CAMREG_PG_USER)")
        }
        if Glibc.chown(path, pw.pointee.pw_uid, pw.pointee.pw_gid) != 0 {
            throw ClusterError(step: "chown \(path)", message: String(cString: strerror(errno)))
        }
    }

    /// Runs a PostgreSQL program (as the server user when we are root); throws with its output.
    ///
    /// Spawned as a ``ChildProcess`` with output in a temporary file: `pg_ctl start` leaves a
    /// postmaster behind that inherits descriptors, so a pipe would never reach end of file.
    @discardableResult
    private func run(_ program: String, _ arguments: [String], step: String, quiet: Bool = false, logTail: String? = nil) throws -> String {
        let path = binDirectory + "/" + program
        // `env -C /`: run from `/`, which the server user can always reach.
        let argv: [String] = ["/usr/bin/env", "-C", "/"]
            + (runAsUser.map { ["/usr/sbin/runuser", "-u", $0, "--", path] } ?? [path]) + arguments
        var env = ProcessInfo.processInfo.environment
        env["LC_ALL"] = "C.UTF-8"
        env.removeValue(forKey: "PGDATA")
        let outPath = NSTemporaryDirectory() + "camreg-pgctl-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { unlink(outPath) }
        let status = try ChildProcess(argv, environment: env, outputPath: outPath).wait()
        let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        guard status == 0 else {
            var message = output.trimmingCharacters(in: .whitespacesAndNewlines)
            if let logTail, let log = try? String(contentsOfFile: logTail, encoding: .utf8) {
                message += "\nserver log:\n" + log.split(separator: "\n").suffix(15).joined(separator: "\n")
            }
            if !quiet { logger.error("\(step) failed", metadata: ["output": "\(message)"]) }
            throw ClusterError(step: step, message: message.isEmpty ? "exit status \(status)" : message)
        }
        return output
    }

    /// `$CAMREG_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`, else `initdb` on `PATH`.
    static func findBinDirectory() throws -> String {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["CAMREG_PG_BINDIR"], !env.isEmpty { return env }
        if let versions = try? fm.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            let sorted = versions.compactMap { Int($0) }.sorted(by: >)
            for v in sorted where fm.isExecutableFile(atPath: "/usr/lib/postgresql/\(v)/bin/initdb") {
                return "/usr/lib/postgresql/\(v)/bin"
            }
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") where fm.isExecutableFile(atPath: "\(dir)/initdb") {
            return String(dir)
        }
        throw ClusterError(step: "find PostgreSQL", message: "initdb not found: install postgresql, or set CAMREG_PG_BINDIR")
    }
}
