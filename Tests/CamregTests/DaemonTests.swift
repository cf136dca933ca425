import Foundation
import ControlServer
import Postgres
import RegistryStore
import Testing

/// The built `camregd` binary, next to the test bundle (`swift build` builds it with the tests).
func daemonBinary() throws -> String {
    if let dir = ProcessInfo.processInfo.environment["CAMREG_BIN_DIR"] { return dir + "/camregd" }
    var candidates: [String] = []
    let me = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
    candidates.append(me.deletingLastPathComponent().appendingPathComponent("camregd").path)
    if let bundle = Bundle.main.executableURL {
        candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("camregd").path)
    }
    candidates.append(packageRoot.appendingPathComponent(".build/debug/camregd").path)
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw TestFailure("camregd not built; looked in \(candidates)")
    }
    return found
}

/// A `postgresql://` URL for a test database, built from its connection parameters.
func databaseURL(for config: PostgresConfiguration) throws -> String {
    let conn = try PostgresConnection(configuration: config)
    let host = try #require(try conn.query("SELECT coalesce(inet_server_addr()::text, current_setting('unix_socket_directories'))").scalar())
    let port = try #require(try conn.query("SELECT current_setting('port')").scalar())
    let db = try #require(try conn.query("SELECT current_database()").scalar())
    let user = try #require(try conn.query("SELECT current_user").scalar())
    let socketDir = host.split(separator: ",").first.map(String.init) ?? host
    return "postgresql://\(user)@/\(db)?host=\(socketDir.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? socketDir)&port=\(port)"
}

/// Runs the `camreg` CLI to completion; returns its exit status and output.
func runCLI(_ arguments: [String]) async throws -> (status: Int32, output: String) {
    let bin = URL(fileURLWithPath: try daemonBinary()).deletingLastPathComponent().appendingPathComponent("camreg").path
    let out = try shortTempDirectory("cli") + "/out"
    defer { try? FileManager.default.removeItem(atPath: (out as NSString).deletingLastPathComponent) }
    // The whole suite runs in parallel on small CI machines: give the client more than its
    // default 30 s to hear back, and the test more than that to wait for the client.
    var environment = ProcessInfo.processInfo.environment
    environment["CAMREG_TIMEOUT"] = environment["CAMREG_TIMEOUT"] ?? "120"
    let p = try ChildProcess([bin] + arguments, environment: environment, outputPath: out)
    let deadline = Date().addingTimeInterval(180)
    while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
    let status = p.exitStatus() ?? { p.signal(SIGKILL); return p.wait() }()
    return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
}

/// A `camregd` process started by a test; its output goes to a log file in its folder.
final class DaemonProcess: @unchecked Sendable {
    let process: ChildProcess
    let socket: String
    let log: String

    /// `openFiles`: start it under `ulimit -n` of that many (soft and hard).
    init(arguments: [String], socket: String, log: String, migrations: String = migrationsDirectory, openFiles: Int? = nil) throws {
        self.socket = socket
        self.log = log
        let command = [try daemonBinary()] + arguments + ["--socket", socket, "--migrations", migrations]
        if let openFiles {
            process = try ChildProcess(["/bin/sh", "-c", "ulimit -n \(openFiles) && exec \"$0\" \"$@\""] + command, outputPath: log)
        } else {
            process = try ChildProcess(command, outputPath: log)
        }
    }

    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Waits until the daemon answers PING (or fails with its log).
    func waitReady(timeout: Double = 120) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard process.isRunning else { throw TestFailure("camregd exited early:\n\(logText)") }
            if FileManager.default.fileExists(atPath: socket), let c = try? await TestClient(path: socket),
               let r = try? await c.request("PING"), r["ok"] as? Bool == true {
                await c.close()
                return
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestFailure("camregd not ready in \(timeout)s:\n\(logText)")
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    func terminate(timeout: Double = 60) async throws -> Int32 {
        process.signal(SIGTERM)
        return try await exit(timeout: timeout)
    }

    /// Waits for the daemon to exit by itself; returns its status.
    func exit(timeout: Double = 60) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let status = process.exitStatus() { return status }
            guard Date() < deadline else {
                process.signal(SIGKILL)
                throw TestFailure("camregd did not stop:\n\(logText)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// glibc's thread arenas in a process: each is a heap mapped at a 64 MiB-aligned address, its
/// used part `rw-p` followed by a `---p` reserve that ends exactly 64 MiB after its start.
func threadHeaps(of pid: pid_t) throws -> Int {
    let lines = try String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8).split(separator: "\n")
    let maps = lines.compactMap { line -> (start: UInt64, end: UInt64, perms: Substring)? in
        let f = line.split(separator: " ", omittingEmptySubsequences: true)
        let r = f.first?.split(separator: "-") ?? []
        guard f.count >= 2, r.count == 2, let a = UInt64(r[0], radix: 16), let b = UInt64(r[1], radix: 16) else { return nil }
        return (a, b, f[1])
    }
    let heap: UInt64 = 64 << 20
    return zip(maps, maps.dropFirst()).filter { m, next in
        m.start % heap == 0 && m.perms == "rw-p" && next.start == m.end && next.perms == "---p" && next.end == m.start + heap
    }.count
}

@Suite("The camregd daemon as a process")
struct DaemonTests {
    @Test func embeddedClusterDemoRestartKeepsCameras() async throws {
        let dir = try shortTempDirectory("d")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = dir + "/data"
        let sock = dir + "/d.sock"

        // First start: creates the cluster, loads the demo inventory.
        let first = try DaemonProcess(arguments: ["--demo", "--data-dir", data], socket: sock, log: dir + "/1.log")
        try await first.waitReady()
        // All its threads allocate from glibc's main arena (`mallopt` before any thread exists):
        // the process has no thread heap (see `threadHeaps`).
        if ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil {
            #expect(try threadHeaps(of: first.process.pid) == 0)
        }
        let c = try await TestClient(path: sock)
        let near = try await c.request("NEAR 11.1470 106.6076 radius=500")
        let cams = try #require(near["cameras"] as? [[String: Any]])
        #expect(!cams.isEmpty)
        let distances = cams.compactMap { ($0["distance_m"] as? NSNumber)?.doubleValue }
        #expect(distances == distances.sorted())
        #expect((try await c.request("STATS")["cameras"] as? NSNumber)?.intValue == 1202)

        // The CLI: a table for people, JSON for scripts, non-zero exit on errors.
        let firstID = try #require(cams.first?["id"] as? String)
        let table = try await runCLI(["near", "11.1470", "106.6076", "--radius", "500", "--socket", sock])
        #expect(table.status == 0)
        #expect(table.output.contains("DIST m") && table.output.contains(firstID))
        #expect(table.output.contains("\(cams.count) camera"))
        // --fields: only the columns the answer holds.
        let slim = try await runCLI(["near", "11.1470", "106.6076", "--radius", "500", "--fields", "distance_m,sees", "--socket", sock])
        #expect(slim.status == 0 && slim.output.contains("DIST m") && slim.output.contains("SEES") && slim.output.contains(firstID), "\(slim.output)")
        #expect(!slim.output.contains("ADDRESS") && !slim.output.contains("STATUS"), "\(slim.output)")
        let json = try await runCLI(["near", "11.1470", "106.6076", "--radius", "500", "--json", "--socket", sock])
        #expect(json.status == 0)
        #expect((try decodeJSON(json.output.trimmingCharacters(in: .whitespacesAndNewlines))["cameras"] as? [Any])?.count == cams.count)
        let get = try await runCLI(["camera", "get", "BC-00042", "--socket", sock])
        #expect(get.status == 0 && get.output.contains("BC-00042") && get.output.contains("retention_days"))
        let stats = try await runCLI(["stats", "--socket", sock])
        #expect(stats.status == 0 && stats.output.contains("1202"))
        #expect(try await runCLI(["ping", "--socket", sock]).output.contains("pong"))
        let bad = try await runCLI(["near", "95", "106.6", "--radius", "500", "--socket", sock])
        #expect(bad.status != 0 && bad.output.contains("out_of_range"))
        let noDaemon = try await runCLI(["ping", "--socket", dir + "/none.sock"])
        #expect(noDaemon.status != 0 && noDaemon.output.contains("cannot connect"))

        // A request in flight when SIGTERM arrives is still answered.
        try await c.sendFlushed("CAMERA GET BC-00001")
        #expect(try await first.terminate() == 0)
        let answered = try await c.readLine()
        #expect(answered?.contains("BC-00001") == true)
        #expect(first.logText.contains("stopping embedded PostgreSQL"))
        #expect(!FileManager.default.fileExists(atPath: data + "/pg/postmaster.pid"), "the cluster was not stopped")
        #expect(!FileManager.default.fileExists(atPath: sock), "the socket file was left behind")

        // Restart without --demo: the cameras are still there (they live in PostgreSQL).
        let second = try DaemonProcess(arguments: ["--data-dir", data], socket: sock, log: dir + "/2.log")
        try await second.waitReady()
        let c2 = try await TestClient(path: sock)
        #expect((try await c2.request("STATS")["cameras"] as? NSNumber)?.intValue == 1202)
        let again = try await c2.request("NEAR 11.1470 106.6076 radius=500")
        #expect((again["cameras"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
            == cams.compactMap { $0["id"] as? String })
        await c2.close()
        #expect(try await second.terminate() == 0)
    }

    @Test func staleCrashLeftoversAreHandled() async throws {
        let dir = try shortTempDirectory("k")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = dir + "/data"
        let sock = dir + "/d.sock"
        let first = try DaemonProcess(arguments: ["--demo", "--data-dir", data], socket: sock, log: dir + "/1.log")
        try await first.waitReady()
        // kill -9 the daemon: its cluster keeps running and the socket file stays behind.
        first.process.signal(SIGKILL)
        #expect(try await first.exit() == 128 + SIGKILL)
        #expect(FileManager.default.fileExists(atPath: sock))
        let second = try DaemonProcess(arguments: ["--data-dir", data], socket: sock, log: dir + "/2.log")
        try await second.waitReady()
        #expect(second.logText.contains("adopting"))
        let c = try await TestClient(path: sock)
        #expect((try await c.request("STATS")["cameras"] as? NSNumber)?.intValue == 1202)
        await c.close()
        #expect(try await second.terminate() == 0)

        // A postmaster.pid naming a dead process (a crash of the whole machine) is removed.
        try "999999\n\(data)/pg\n".write(toFile: data + "/pg/postmaster.pid", atomically: true, encoding: .utf8)
        if getuid() == 0, let pw = getpwnam("postgres") { chown(data + "/pg/postmaster.pid", pw.pointee.pw_uid, pw.pointee.pw_gid) }
        let third = try DaemonProcess(arguments: ["--data-dir", data], socket: sock, log: dir + "/3.log")
        try await third.waitReady()
        #expect(third.logText.contains("stale postmaster.pid"))
        #expect(try await third.terminate() == 0)
    }

    /// Under an open-file limit too small for `max_connections`, the daemon says so at start and
    /// admits only what the limit holds: the next client is refused with `too_many_connections`
    /// at once, not left unaccepted in the listen backlog.
    @Test func connectionsAreCappedByTheOpenFileLimit() async throws {
        let config = try await TestPostgres.shared.freshDatabase("nofile")
        let dir = try shortTempDirectory("n")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let limit = 150, admitted = limit - OpenFileLimit.reserve
        let d = try DaemonProcess(arguments: ["--data-dir", dir + "/data", "--database-url", try databaseURL(for: config)],
                                  socket: dir + "/d.sock", log: dir + "/1.log", openFiles: limit)
        try await d.waitReady()
        #expect(d.logText.contains("the open-file limit allows fewer connections than configured"), "\(d.logText)")
        #expect(d.logText.contains("admitted=\(admitted)"), "\(d.logText)")
        var clients: [TestClient] = []
        for _ in 0..<admitted { clients.append(try await TestClient(path: d.socket)) }
        try await waitForAdmissions(clients[0], count: admitted)
        #expect(try await clients[admitted - 1].request("PING")["ok"] as? Bool == true)
        let extra = try await TestClient(path: d.socket)
        let line = try await extra.readLine(within: 60)
        #expect(try line.map { errorCode(try decodeJSON($0)) } == "too_many_connections", "\(line ?? "closed")")
        #expect((try line.map { try decodeJSON($0) }).flatMap { field($0, "error", "message") as? String }?.contains("maximum of \(admitted)") == true)
        for c in clients { await c.close() }
        await extra.close()
        #expect(try await d.terminate() == 0)
    }

    @Test func externalDatabaseURLAndFailedMigrationStopsTheDaemon() async throws {
        let config = try await TestPostgres.shared.freshDatabase("url")
        let conn = try PostgresConnection(configuration: config)
        let url = try databaseURL(for: config)

        let dir = try shortTempDirectory("u")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = try DaemonProcess(arguments: ["--demo", "--data-dir", dir + "/data", "--database-url", url],
                                  socket: dir + "/d.sock", log: dir + "/1.log")
        try await d.waitReady()
        #expect(!FileManager.default.fileExists(atPath: dir + "/data/pg"), "no embedded cluster with --database-url")
        #expect(try conn.query("SELECT count(*) FROM cameras").scalar() == "1202")
        #expect(try await d.terminate() == 0)

        // A broken migration: the daemon stops, naming the file and the server's error.
        let migrations = dir + "/migrations"
        try FileManager.default.createDirectory(atPath: migrations, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: migrationsDirectory + "/0001_cameras.sql", toPath: migrations + "/0001_cameras.sql")
        try "CREATE TABLE oops (x int);\nSELECT nope FROM oops;\n".write(toFile: migrations + "/0999_broken.sql", atomically: true, encoding: .utf8)
        let broken = try DaemonProcess(arguments: ["--data-dir", dir + "/data", "--database-url", url],
                                       socket: dir + "/e.sock", log: dir + "/2.log", migrations: migrations)
        #expect(try await broken.exit() != 0)
        let log = broken.log
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("0999_broken.sql"))
        #expect(text.contains("nope"))
        #expect(try conn.query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'oops'").scalar() == "0")
    }
}
