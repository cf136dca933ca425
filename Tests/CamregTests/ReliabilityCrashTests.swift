import Foundation
import NIOConcurrencyHelpers
import Postgres
import RegistryStore
import Testing

/// `kill -9` of the daemon (and of PostgreSQL) during writes; SIGTERM under load.
@Suite("Reliability: crashes and shutdown under load", .serialized)
struct ReliabilityCrashTests {
    struct Acked: Sendable { let id: String; let client: Int; let n: Int }

    /// Registers `count` cameras from one connection until done or the connection fails.
    static func registrations(socket: String, client: Int, count: Int, acked: NIOLockedValueBox<[Acked]>) async -> Int {
        guard let c = try? await TestClient(path: socket) else { return 0 }
        var torn = 0
        for n in 0..<count {
            do {
                try await c.send(registration(client: client, n: n).line)
                guard let line = try await c.readLine() else { break }
                guard let o = try? decodeJSON(line) else { torn += 1; break }
                if let id = field(o, "camera", "id") as? String { acked.withLockedValue { $0.append(Acked(id: id, client: client, n: n)) } }
            } catch {
                break
            }
        }
        await c.close()
        return torn
    }

    /// Every acknowledged camera is in the database as sent; nothing is there half (each camera
    /// has its `register` change and each change its camera); at most the requests in flight
    /// (one per client) were committed without an answer. Returns the number of cameras.
    static func checkDatabase(_ config: PostgresConfiguration, acked: [Acked], clients: Int) throws -> Int {
        let db = try PostgresConnection(configuration: config)
        var rows: [String: [String?]] = [:]
        for r in try db.query("SELECT id, lat::text, lon::text, heading::text, address, status, version FROM cameras").rows {
            rows[r[0]!] = r
        }
        for a in acked {
            let sent = registration(client: a.client, n: a.n)
            guard let r = rows[a.id] else {
                Issue.record("acknowledged camera \(a.id) is missing")
                continue
            }
            #expect(Double(r[1]!) == sent.lat && Double(r[2]!) == sent.lon && Int(Double(r[3]!)!) == sent.heading, "\(a.id): \(r)")
            #expect(r[4] == "client \(a.client) number \(a.n)" && r[5] == "pending" && r[6] == "1", "\(a.id): \(r)")
        }
        #expect(try db.query("SELECT count(*) FROM cameras c WHERE NOT EXISTS (SELECT 1 FROM camera_changes x WHERE x.camera_id = c.id AND x.kind = 'register' AND x.version = 1)").scalar() == "0")
        #expect(try db.query("SELECT count(*) FROM camera_changes x WHERE NOT EXISTS (SELECT 1 FROM cameras c WHERE c.id = x.camera_id)").scalar() == "0")
        #expect(try db.query("SELECT count(*) FROM (SELECT camera_id FROM camera_changes GROUP BY camera_id HAVING count(*) > 1) d").scalar() == "0")
        #expect(rows.count >= acked.count && rows.count <= acked.count + clients, "\(rows.count) cameras for \(acked.count) acknowledged")
        return rows.count
    }

    @Test(.timeLimit(.minutes(3))) func killNineDuringRegistrationsLosesNothingAcknowledged() async throws {
        let dir = try shortTempDirectory("rk")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try await startDaemon(dir, "d", [])
        let acked = NIOLockedValueBox([Acked]())
        let socket = first.socket
        // 5,000 registrations from 4 clients; kill -9 once 1,500 are acknowledged.
        let clients = (0..<4).map { client in Task { await Self.registrations(socket: socket, client: client, count: 1250, acked: acked) } }
        let killedAfter: Int = await {
            while acked.withLockedValue({ $0.count }) < 1500 && first.process.isRunning {
                try? await Task.sleep(for: .milliseconds(5))
            }
            first.process.signal(SIGKILL)
            return acked.withLockedValue { $0.count }
        }()
        var torn = 0
        for t in clients { torn += await t.value }
        #expect(try await first.exit() == 128 + SIGKILL)
        #expect(torn == 0)
        let all = acked.withLockedValue { $0 }
        #expect(killedAfter >= 1500 && all.count < 5000, "killed after \(killedAfter), \(all.count) acknowledged")

        // Restart: the cluster left running is adopted; the index is rebuilt from PostgreSQL.
        let second = try await startDaemon(dir, "d", [])
        #expect(second.logText.contains("adopting the embedded PostgreSQL"))
        let cluster = try EmbeddedCluster(dataDirectory: dir + "/d", database: "camreg")
        let count = try Self.checkDatabase(cluster.configuration, acked: all, clients: 4)
        #expect((try await stats(second.socket))["cameras"] as? Int == count)
        let c = try await TestClient(path: second.socket)
        for a in all.shuffled().prefix(20) {
            #expect(field(try await c.request("CAMERA GET \(a.id)"), "camera", "address") as? String == "client \(a.client) number \(a.n)")
        }
        await c.close()

        // Unclean shutdown of PostgreSQL too: kill -9 the daemon and the postmaster. The next
        // start removes the stale pid file, PostgreSQL recovers from its WAL, nothing is lost.
        let pidText = try String(contentsOfFile: dir + "/d/pg/postmaster.pid", encoding: .utf8)
        let postmaster = try #require(Int32(pidText.split(separator: "\n").first ?? ""))
        second.process.signal(SIGKILL)
        _ = try await second.exit()
        kill(postmaster, SIGKILL)
        #expect(await eventually(10) { kill(postmaster, 0) != 0 })
        let third = try await startDaemon(dir, "d", [])
        #expect(third.logText.contains("stale postmaster.pid"))
        #expect(try Self.checkDatabase(cluster.configuration, acked: all, clients: 4) == count)
        #expect((try await stats(third.socket))["cameras"] as? Int == count)
        #expect(try await third.terminate() == 0)
    }

    @Test(.timeLimit(.minutes(2))) func sigtermUnderLoadAnswersCompletelyAndKeepsEveryAcknowledgedWrite() async throws {
        let dir = try shortTempDirectory("rt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = try await startDaemon(dir, "d", [])
        let socket = d.socket
        let acked = NIOLockedValueBox([Acked]())
        let answered = NIOLockedValueBox(0)
        // Six clients: searches and registrations, each request answered before the next.
        let clients = (0..<6).map { client in
            Task { () -> Int in
                guard let c = try? await TestClient(path: socket) else { return 0 }
                var torn = 0
                for n in 0..<100_000 {
                    let write = n % 3 == 0
                    let line = write ? registration(client: client, n: n).line : "NEAR 11.12 106.60 radius=2000 limit=50"
                    do {
                        try await c.send(line)
                        guard let text = try await c.readLine() else { break }
                        guard let o = try? decodeJSON(text), o["ok"] as? Bool == true || o["error"] != nil else { torn += 1; break }
                        answered.withLockedValue { $0 += 1 }
                        if write, let id = field(o, "camera", "id") as? String {
                            acked.withLockedValue { $0.append(Acked(id: id, client: client, n: n)) }
                        }
                    } catch {
                        break
                    }
                }
                await c.close()
                return torn
            }
        }
        #expect(await eventually(20) { answered.withLockedValue { $0 } > 600 })
        let status = try await d.terminate(timeout: 30)
        var torn = 0
        for t in clients { torn += await t.value }
        #expect(status == 0, "camregd exited with \(status):\n\(d.logText)")
        #expect(torn == 0, "torn responses")
        let all = acked.withLockedValue { $0 }
        #expect(all.count > 100)

        // Restart: every acknowledged registration is there.
        let again = try await startDaemon(dir, "d", [])
        let cluster = try EmbeddedCluster(dataDirectory: dir + "/d", database: "camreg")
        let count = try Self.checkDatabase(cluster.configuration, acked: all, clients: 6)
        #expect((try await stats(again.socket))["cameras"] as? Int == count)
        #expect(try await again.terminate() == 0)
    }
}
