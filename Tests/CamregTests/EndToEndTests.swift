import ControlProtocol
import ControlServer
import Foundation
import Postgres
import Registry
import RegistryStore
import Testing

/// A demo index loaded through PostgreSQL (as the daemon does it), shared by the tests here.
actor DemoDatabase {
    static let shared = DemoDatabase()
    private var cached: (PostgresConfiguration, [Camera])?

    func get() async throws -> (config: PostgresConfiguration, cameras: [Camera]) {
        if let cached { return cached }
        let config = try await TestPostgres.shared.migratedDatabase("e2e")
        let c = try PostgresConnection(configuration: config)
        _ = try CameraRepository.loadIfEmpty(DemoInventory.generate().cameras, on: c)
        let cameras = try CameraRepository.all(on: c)
        cached = (config, cameras)
        return (config, cameras)
    }
}

@Suite("End to end over the real Unix socket")
struct EndToEndTests {
    @Test func pingHelpStatsAndCameraGet() async throws {
        let cameras = try await DemoDatabase.shared.get().cameras
        try await withTestServer(index: try CameraIndex(cameras: cameras)) { path, _ in
            let client = try await TestClient(path: path)
            #expect(try await client.request("PING")["pong"] as? Bool == true)

            let help = try await client.request("HELP")
            let listed = (help["commands"] as? [[String: Any]] ?? []).compactMap { $0["command"] as? String }
            #expect(listed == CommandTable.all.map(\.name))
            #expect(listed.contains("NEAR") && listed.contains("CAMERA GET") && listed.contains("STATS"))
            let near = try await client.request("HELP near")
            let opts = ((near["commands"] as? [[String: Any]])?.first?["options"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            #expect(opts == ["radius", "limit", "at", "from", "to", "sees", "order", "offset", "fields"])

            let get = try await client.request("CAMERA GET bc-00042")
            let cam = try #require(get["camera"] as? [String: Any])
            #expect(cam["id"] as? String == "BC-00042")
            let expected = try #require(cameras.first { $0.id == "BC-00042" })
            #expect((cam["lat"] as? NSNumber)?.doubleValue == expected.lat)
            #expect(cam["address"] as? String == expected.address)
            #expect(cam["status"] as? String == expected.status.rawValue)
            let missing = try await client.request("CAMERA GET BC-99999")
            #expect(errorCode(missing) == "not_found")

            let stats = try await client.request("STATS")
            #expect((stats["cameras"] as? NSNumber)?.intValue == 1202)
            #expect((stats["connections"] as? NSNumber)?.intValue == 1)
            #expect(((stats["requests"] as? NSNumber)?.intValue ?? 0) >= 5)
            #expect(stats["index_build_ms"] is NSNumber && stats["uptime_s"] is NSNumber)

            try await client.send("QUIT")
            #expect(try await client.readLine()?.contains("\"bye\":true") == true)
            #expect(try await client.readLine() == nil)
        }
    }

    @Test func nearOrdersByDistanceWithAllFields() async throws {
        let cameras = try await DemoDatabase.shared.get().cameras
        try await withTestServer(index: try CameraIndex(cameras: cameras)) { path, _ in
            let client = try await TestClient(path: path)
            let r = try await client.request("NEAR 11.1470 106.6076 radius=1500")
            #expect(r["ok"] as? Bool == true)
            let cams = try #require(r["cameras"] as? [[String: Any]])
            #expect(cams.count > 5)
            #expect((r["count"] as? NSNumber)?.intValue == cams.count)
            let d = cams.compactMap { ($0["distance_m"] as? NSNumber)?.doubleValue }
            #expect(d == d.sorted())
            #expect(d.allSatisfy { $0 <= 1500 })
            for c in cams {
                for key in ["id", "lat", "lon", "distance_m", "bearing_deg", "site", "address", "ward", "status"] {
                    #expect(c[key] != nil, "missing \(key)")
                }
            }
            let limited = try await client.request("NEAR 11.1470 106.6076 radius=1500 limit=3")
            let ids = (limited["cameras"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            #expect(ids == cams.prefix(3).compactMap { $0["id"] as? String })
            let none = try await client.request("NEAR 0 0 radius=100")
            #expect((none["cameras"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func errorsKeepTheConnectionAndPipelinesAnswerInOrder() async throws {
        let cameras = try await DemoDatabase.shared.get().cameras
        try await withTestServer(index: try CameraIndex(cameras: cameras)) { path, _ in
            let client = try await TestClient(path: path)
            let bad: [(String, String)] = [
                ("FROB", "unknown_command"), ("NEAR 1", "wrong_arity"), ("NEAR 1 2 radius=5 x=1", "unknown_option"),
                ("NEAR a 2 radius=5", "not_a_number"), ("NEAR 95 2 radius=5", "out_of_range"),
                ("NEAR nan 2 radius=5", "not_finite"), ("NEAR 1 2 radius=0", "radius_not_positive"),
                ("NEAR 1 2 radius=60000", "radius_too_large"), ("NEAR 1 2", "missing_option"),
            ]
            for (line, code) in bad {
                #expect(errorCode(try await client.request(line)) == code, "\(line)")
            }
            // Invalid UTF-8 and a NUL byte: structured errors, connection still usable.
            try await client.sendRaw([0x4E, 0xFF, 0x0A])
            #expect(try errorCode(decodeJSON(try #require(await client.readLine()))) == "invalid_utf8")
            try await client.sendRaw(Array("PI\u{0}NG\n".utf8))
            #expect(try errorCode(decodeJSON(try #require(await client.readLine()))) == "control_character")
            #expect(try await client.request("PING")["ok"] as? Bool == true)

            // 200 requests in one write are answered in order.
            let ids = cameras.prefix(200).map(\.id)
            try await client.sendRaw(Array(ids.map { "CAMERA GET \($0)\n" }.joined().utf8))
            for id in ids {
                let line = try #require(try await client.readLine())
                let cam = try decodeJSON(line)["camera"] as? [String: Any]
                #expect(cam?["id"] as? String == id)
            }
        }
    }

    @Test func overLongLineGetsAnErrorThenClose() async throws {
        let cameras = try await DemoDatabase.shared.get().cameras
        try await withTestServer(index: try CameraIndex(cameras: cameras)) { path, service in
            let client = try await TestClient(path: path)
            #expect(try await client.request("PING")["ok"] as? Bool == true)
            try await client.sendRaw(Array(repeating: UInt8(ascii: "A"), count: 70_000))
            let line = try #require(try await client.readLine())
            #expect(errorCode(try decodeJSON(line)) == "line_too_long")
            #expect(try await client.readLine() == nil)
            // Other connections are unaffected.
            let other = try await TestClient(path: path)
            #expect(try await other.request("PING")["ok"] as? Bool == true)
            // Exactly the maximum is fine.
            let max = "PING" + String(repeating: " ", count: service.limits.maxLineBytes - 4)
            #expect(try await other.request(max)["ok"] as? Bool == true)
        }
    }

    /// Lines cut across reads, CRLF endings, and a large answer between small ones: the handler's
    /// own line cutting (NIOExtras' decoder, single-step) and its reused reply buffer.
    @Test func linesSplitAcrossReadsAndReusedReplyBuffer() async throws {
        let cameras = try await DemoDatabase.shared.get().cameras
        let c = try #require(cameras.first { $0.status != .retired })
        let (lat, lon) = (String(format: "%.5f", c.lat), String(format: "%.5f", c.lon))
        try await withTestServer(index: try CameraIndex(cameras: cameras)) { path, _ in
            let client = try await TestClient(path: path)
            // The big answer's size, asked on a connection of its own.
            let other = try await TestClient(path: path)
            let bigLine = "NEAR \(lat) \(lon) radius=3000 limit=400"
            let bigCount = try #require(try await other.request(bigLine)["count"] as? Int)
            let cut = lat.index(lat.startIndex, offsetBy: 3)
            let fragments = ["PI", "NG\r\nNEAR \(lat[..<cut])", "\(lat[cut...]) \(lon)", " radius=300 limit=2\nPING\n", bigLine + "\n"]
            for f in fragments {
                try await client.sendRaw(Array(f.utf8))
                try await Task.sleep(for: .milliseconds(30))  // each fragment its own read
            }
            let ping = try decodeJSON(try #require(try await client.readLine()))
            #expect(ping["ok"] as? Bool == true && ping["pong"] != nil)
            let near = try decodeJSON(try #require(try await client.readLine()))
            #expect((near["cameras"] as? [[String: Any]])?.first?["id"] as? String == c.id)
            #expect(try decodeJSON(try #require(try await client.readLine()))["ok"] as? Bool == true)
            let big = try #require(try await client.readLine())
            #expect(big.utf8.count > 64 * 1024)   // past the buffer a connection keeps
            #expect(try decodeJSON(big)["count"] as? Int == bigCount)
            // Many small answers after it, pipelined: each one whole and in order.
            let small = (0..<50).map { "NEAR \(lat) \(lon) radius=\(200 + 40 * ($0 % 10)) limit=3" }
            try await client.sendRaw(Array(small.map { $0 + "\n" }.joined().utf8))
            var answers: [[String: Any]] = []
            for _ in small { answers.append(try decodeJSON(try #require(try await client.readLine()))) }
            for (line, r) in zip(small, answers) {
                let expected = try await other.request(line)
                #expect(r["ok"] as? Bool == true)
                #expect((r["cameras"] as? [[String: Any]])?.map { $0["id"] as? String } == (expected["cameras"] as? [[String: Any]])?.map { $0["id"] as? String })
            }
        }
    }

    @Test func manyConcurrentConnections() async throws {
        let cameras = try await DemoDatabase.shared.get().cameras
        try await withTestServer(index: try CameraIndex(cameras: cameras)) { path, _ in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<32 {
                    group.addTask {
                        let c = try await TestClient(path: path)
                        var n = 0
                        for j in 0..<20 {
                            let lat = 11.05 + Double((i * 20 + j) % 17) * 0.01
                            let r = try await c.request("NEAR \(lat) 106.6 radius=800 limit=5")
                            if r["ok"] as? Bool == true { n += 1 }
                        }
                        await c.close()
                        return n
                    }
                }
                var total = 0
                for try await n in group { total += n }
                #expect(total == 32 * 20)
            }
        }
    }

    @Test func staleSocketFileIsReplacedAndLiveOneRefused() async throws {
        let cameras = try await DemoDatabase.shared.get().cameras
        let index = try CameraIndex(cameras: cameras)
        try await withTestServer(index: index) { path, service in
            // A second server on the same, live socket is refused.
            let second = ControlServer(socketPath: path, service: service)
            await #expect(throws: ControlServerError.self) { try await second.run() }
        }
        // A leftover socket file with nobody listening is replaced.
        let dir = try shortTempDirectory("stale")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/s.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let b = Array(path.utf8); raw.copyBytes(from: b); raw[b.count] = 0
        }
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(fd)
        #expect(FileManager.default.fileExists(atPath: path))
        let service = RegistryService(index: index)
        let server = ControlServer(socketPath: path, service: service)
        let task = Task { try await server.run() }
        await server.waitUntilReady()
        let c = try await TestClient(path: path)
        #expect(try await c.request("PING")["ok"] as? Bool == true)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o660)
        task.cancel()
        _ = try? await task.value
    }
}
