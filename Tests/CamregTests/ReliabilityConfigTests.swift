import ControlServer
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import RegistryStore
import Testing

/// The configuration: file, environment and flags with their precedence; `--check-config`;
/// SIGHUP reloads without dropping connections.
@Suite("Reliability: configuration file, precedence, reload", .serialized)
struct ReliabilityConfigTests {
    @Test func flagsOverEnvironmentOverFileOverDefaults() throws {
        let file = try DaemonSettings.parseFile("""
            # camregd.toml
            max_radius = 1000
            log_level = "debug"
            write_timeout = 3
            drain_timeout = 2.5
            read_only = false
            data_dir = "/var/lib/camreg"
            """)
        #expect(file == ["max_radius": "1000", "log_level": "debug", "write_timeout": "3", "drain_timeout": "2.5",
                         "read_only": "false", "data_dir": "/var/lib/camreg"])
        let env = DaemonSettings.fromEnvironment(["CAMREG_MAX_RADIUS": "2000", "CAMREG_DB_CONNECTIONS": "8", "HOME": "/root"])
        #expect(env == ["max_radius": "2000", "db_connections": "8"])

        let (fileOnly, _) = try DaemonSettings.resolve(flags: [:], environment: [:], file: file)
        #expect(fileOnly.maxRadius == 1000 && fileOnly.logLevel == .debug && fileOnly.writeTimeout == 3 && fileOnly.drainTimeout == 2.5)

        let (s, sources) = try DaemonSettings.resolve(flags: [:], environment: env, file: file)
        #expect(s.maxRadius == 2000 && sources["max_radius"] == .environment)
        #expect(s.logLevel == .debug && sources["log_level"] == .file)
        #expect(s.dbConnections == 8 && s.dataDir == "/var/lib/camreg")
        #expect(s.defaultLimit == 100 && sources["default_limit"] == nil)

        let (f, fsources) = try DaemonSettings.resolve(flags: ["max_radius": "3000"], environment: env, file: file)
        #expect(f.maxRadius == 3000 && fsources["max_radius"] == .flag)
        #expect(f.limits.maxRadius == 3000)
        #expect(DaemonSettings().dataDir == "./camreg-data" && DaemonSettings().metricsListen == nil)

        // --check-config output: each setting with where it came from.
        let text = f.describe(sources: fsources)
        #expect(text.contains("max_radius = 3000.0  # flag"))
        #expect(text.contains("log_level = \"debug\"  # file"))
        #expect(text.contains("# database_url unset  # default"))
    }

    @Test func badConfigurationsAreRefusedNamingTheSettingAndWhereItCameFrom() {
        func error(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        #expect(error { _ = try DaemonSettings.parseFile("max_radius = ", path: "/etc/camreg/camregd.toml") }.contains("/etc/camreg/camregd.toml"))
        #expect(error { _ = try DaemonSettings.parseFile("max_raduis = 5") }.contains("unknown setting max_raduis"))
        #expect(error { _ = try DaemonSettings.parseFile("[limits]\nmax_radius = 5") }.contains("unknown setting limits"))
        #expect(error { _ = try DaemonSettings.parseFile("socket = [1, 2]") }.contains("socket must be a string, number or boolean"))
        #expect(error { _ = try DaemonSettings.resolve(flags: ["max_radius": "-5"], environment: [:], file: [:]) }.contains("--max-radius must be a number"))
        #expect(error { _ = try DaemonSettings.resolve(flags: [:], environment: ["write_timeout": "0.1"], file: [:]) }.contains("CAMREG_WRITE_TIMEOUT must be a number from 1"))
        #expect(error { _ = try DaemonSettings.resolve(flags: [:], environment: [:], file: ["log_level": "loud"]) }.contains("log_level in the configuration file must be one of"))
        #expect(error { _ = try DaemonSettings.resolve(flags: [:], environment: [:], file: ["read_only": "maybe"]) }.contains("must be true or false"))
        #expect(error { _ = try DaemonSettings.resolve(flags: ["read_only": "true"], environment: [:], file: [:]) }.contains("read_only needs database_url"))
        #expect(error { _ = try DaemonSettings.resolve(flags: [:], environment: [:], file: ["metrics_listen": "9464"]) }.contains("host:port"))
        #expect(error { _ = try DaemonSettings.resolve(flags: [:], environment: [:], file: ["db_connections": "100"]) }.contains("1 to 64"))
    }

    @Test func onlyStartupSettingsNeedARestart() throws {
        let a = try DaemonSettings.resolve(flags: [:], environment: [:], file: ["max_radius": "100", "socket": "/run/a.sock"]).settings
        let b = try DaemonSettings.resolve(flags: [:], environment: [:], file: ["max_radius": "200", "log_level": "debug", "socket": "/run/b.sock"]).settings
        #expect(b.restartNeeded(comparedWith: a) == ["socket"])
        #expect(a.restartNeeded(comparedWith: a).isEmpty)
        #expect(DaemonSettings.maskPasswordForTests("postgresql://camreg:secret@db1/camreg") == "postgresql://camreg:***@db1/camreg")
    }

    /// Runs `camregd` with `arguments` to completion.
    func runDaemon(_ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> (status: Int32, output: String) {
        let dir = try shortTempDirectory("cc")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = try ChildProcess([try daemonBinary()] + arguments, environment: environment, outputPath: dir + "/out")
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let status = p.exitStatus() ?? { p.signal(SIGKILL); return p.wait() }()
        return (status, (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? "")
    }

    @Test(.timeLimit(.minutes(1))) func checkConfigReportsTheSettingsOrTheError() async throws {
        let dir = try shortTempDirectory("ck")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "max_radius = 1234\nlog_level = \"warning\"\n".write(toFile: dir + "/c.toml", atomically: true, encoding: .utf8)
        var env = ProcessInfo.processInfo.environment
        env["CAMREG_LOG_LEVEL"] = "error"
        let ok = try await runDaemon(["--check-config", "--config", dir + "/c.toml", "--db-connections", "7"], environment: env)
        #expect(ok.status == 0, "\(ok.output)")
        #expect(ok.output.contains("max_radius = 1234.0  # file"))
        #expect(ok.output.contains("log_level = \"error\"  # environment"))
        #expect(ok.output.contains("db_connections = 7  # flag"))
        #expect(ok.output.contains("configuration OK"))

        try "max_radius = \"far\"\n".write(toFile: dir + "/bad.toml", atomically: true, encoding: .utf8)
        let bad = try await runDaemon(["--check-config", "--config", dir + "/bad.toml"])
        #expect(bad.status == 2 && bad.output.contains("max_radius in the configuration file must be a number"), "\(bad.output)")
        let missing = try await runDaemon(["--check-config", "--config", dir + "/none.toml"])
        #expect(missing.status == 2 && missing.output.contains("cannot read the configuration file"))
        let wkt = try await runDaemon(["--check-config", "--jurisdiction-wkt", "POLYGON((1 2, 3"])
        #expect(wkt.status == 2, "\(wkt.output)")
    }

    @Test(.timeLimit(.minutes(2))) func sighupReloadsLimitsAndLoggingWithoutDroppingConnections() async throws {
        let dir = try shortTempDirectory("hup")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let conf = dir + "/camregd.toml"
        try "max_radius = 50000\nlog_level = \"info\"\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let d = try await startDaemon(dir, "d", ["--config", conf, "--demo"])
        let c = try await TestClient(path: d.socket)
        #expect(try await c.request("NEAR 11.147 106.6076 radius=20000 limit=1")["ok"] as? Bool == true)

        try "max_radius = 1000\nlog_level = \"debug\"\ndrain_timeout = 3\n".write(toFile: conf, atomically: true, encoding: .utf8)
        d.process.signal(SIGHUP)
        #expect(try await eventually(5) { errorCode(try await c.request("NEAR 11.147 106.6076 radius=20000 limit=1")) == "radius_too_large" })
        #expect(try await c.request("NEAR 11.147 106.6076 radius=900 limit=1")["ok"] as? Bool == true)
        #expect(d.logText.contains("configuration reloaded") && d.logText.contains("log_level=debug"))
        #expect(d.logText.contains("need a restart") && d.logText.contains("drain_timeout"))

        // A broken file changes nothing.
        try "max_radius = [".write(toFile: conf, atomically: true, encoding: .utf8)
        d.process.signal(SIGHUP)
        #expect(await eventually(5) { d.logText.contains("configuration reload failed") })
        #expect(try await c.request("NEAR 11.147 106.6076 radius=900 limit=1")["ok"] as? Bool == true)
        #expect(try await c.request("PING")["ok"] as? Bool == true)  // the same connection all along
        await c.close()
        #expect(try await d.terminate() == 0)
    }

    @Test(.timeLimit(.minutes(1))) func prometheusEndpointServesRequestCountsLatenciesAndState() async throws {
        let dir = try shortTempDirectory("prom")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = Int.random(in: 20_000...60_000)
        let d = try await startDaemon(dir, "d", ["--demo", "--metrics-listen", "127.0.0.1:\(port)"])
        let c = try await TestClient(path: d.socket)
        for _ in 0..<3 { _ = try await c.request("NEAR 11.147 106.6076 radius=500") }
        _ = try await c.request("PING")
        let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains(#"camreg_requests_total{command="NEAR"} 3"#), "\(text.prefix(2000))")
        #expect(text.contains(#"camreg_requests_total{command="PING"} "#))  // waitReady pinged too
        #expect(text.contains(#"camreg_request_duration_seconds_count{command="NEAR"} 3"#))
        #expect(text.contains("camreg_cameras 1202"))
        #expect(text.contains("camreg_database_up 1"))
        #expect(text.contains("camreg_feed_lag 0"))
        let (_, missing) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/other")!)
        #expect((missing as? HTTPURLResponse)?.statusCode == 404)

        // The same figures in STATS: latency percentiles per command, database and feed.
        let st = try await c.request("STATS")
        #expect(field(st, "latency_ms", "NEAR", "count") as? Int == 3)
        #expect((field(st, "latency_ms", "NEAR", "p99") as? NSNumber)?.doubleValue ?? -1 >= 0)
        #expect(field(st, "database", "state") as? String == "up")
        #expect(field(st, "feed", "mode") as? String == "listen")
        #expect(field(st, "feed", "lag") as? Int == 0)
        #expect(st["index_built_at"] is String && st["delta"] is Int)
        await c.close()
        #expect(try await d.terminate() == 0)
    }

    @Test(.timeLimit(.minutes(1))) func tellsSystemdWhenReadyAndWhenStopping() async throws {
        let dir = try shortTempDirectory("sd")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A datagram socket standing in for systemd's NOTIFY_SOCKET.
        let notifyPath = dir + "/notify"
        let fd = try boundUnixSocket(SOCK_DGRAM, path: notifyPath)
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        func messages(for seconds: Double, until wanted: String) async -> [String] {
            var got: [String] = []
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline, !got.contains(where: { $0.contains(wanted) }) {
                var buffer = [UInt8](repeating: 0, count: 512)
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 { got.append(String(decoding: buffer[0..<n], as: UTF8.self)) } else { try? await Task.sleep(for: .milliseconds(50)) }
            }
            return got
        }

        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notifyPath
        let p = try ChildProcess([try daemonBinary(), "--data-dir", dir + "/data", "--socket", dir + "/d.sock",
                                  "--migrations", migrationsDirectory], environment: env, outputPath: dir + "/log")
        let ready = await messages(for: 45, until: "READY=1")
        #expect(ready.contains { $0.hasPrefix("READY=1") }, "\(ready)")
        // Ready means answering.
        let c = try await TestClient(path: dir + "/d.sock")
        #expect(try await c.request("PING")["ok"] as? Bool == true)
        await c.close()
        p.signal(SIGTERM)
        let stopping = await messages(for: 20, until: "STOPPING=1")
        #expect(stopping.contains("STOPPING=1"))
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(p.exitStatus() == 0)
    }
}
