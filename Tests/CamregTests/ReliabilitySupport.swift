import Foundation
import Logging
import NIOPosix
import Postgres
import RegistryStore
import Testing

/// A PostgreSQL cluster of one test's own (not `TestPostgres.shared`), so that the test can
/// stop, start or crash it without disturbing the other suites.
final class OwnCluster: Sendable {
    let cluster: EmbeddedCluster
    let directory: String

    init(_ label: String) async throws {
        directory = try shortTempDirectory(label)
        var logger = Logger(label: "test.own-cluster")
        logger.logLevel = .warning
        cluster = try EmbeddedCluster(dataDirectory: directory, database: "camreg", logger: logger)
        try await start()
    }

    /// A URL for `camregd --database-url`.
    var url: String {
        "postgresql:///\(cluster.database)?host=\(cluster.socketDirectory)&port=\(cluster.port)&user=\(cluster.user)"
    }

    func connect() throws -> PostgresConnection {
        try PostgresConnection(configuration: cluster.configuration)
    }

    func start() async throws {
        let c = cluster
        try await NIOThreadPool.singleton.runIfActive { try c.start() }
    }

    func stop() async throws {
        let c = cluster
        try await NIOThreadPool.singleton.runIfActive { try c.stop() }
    }

    /// Stops the cluster and removes its folder.
    func destroy() async {
        try? await stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A camregd started by a reliability test, with its own data folder and socket.
func startDaemon(_ dir: String, _ name: String, _ extra: [String]) async throws -> DaemonProcess {
    let d = try DaemonProcess(arguments: ["--data-dir", dir + "/" + name] + extra, socket: dir + "/\(name).sock",
                              log: dir + "/\(name)-\(UInt32.random(in: 0...UInt32.max)).log")
    try await d.waitReady(timeout: 90)
    return d
}

/// One registration line for camera number `n` of client `client` (distinct positions, no owner).
func registration(client: Int, n: Int) -> (line: String, lat: Double, lon: Double, heading: Int) {
    let lat = 11.10 + Double(client) * 0.01 + Double(n) * 0.00001
    let lon = 106.60 + Double(n % 97) * 0.0001
    let heading = (n * 7) % 360
    return (#"CAMERA REGISTER lat=\#(lat) lon=\#(lon) site=alley address="client \#(client) number \#(n)" ward="Phường Mỹ Phước" heading=\#(heading) fov=80 range=40 retention=30 by=loadtest"#,
            lat, lon, heading)
}

/// The `STATS` answer of a daemon.
func stats(_ socket: String) async throws -> [String: Any] {
    let c = try await TestClient(path: socket)
    let answer = try await c.request("STATS")
    await c.close()
    return answer
}

/// Polls `condition` every 20 ms until it holds or `timeout` seconds pass; returns whether it held.
func eventually(_ timeout: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    } while Date() < deadline
    return try await condition()
}
