import Foundation
import NIOConcurrencyHelpers
import Postgres
import RegistryStore
import Testing

/// Counts shared by load tasks.
final class LoadCounters: Sendable {
    let box = NIOLockedValueBox((ok: 0, failed: 0, stop: false, failures: [String]()))
    var stop: Bool { box.withLockedValue { $0.stop } }
    func finish() { box.withLockedValue { $0.stop = true } }
    func ok() { box.withLockedValue { $0.ok += 1 } }
    func failed(_ why: String) { box.withLockedValue { $0.failed += 1; if $0.failures.count < 5 { $0.failures.append(why) } } }
}

/// PostgreSQL goes away under load: searches go on, writes fail fast, and come back by themselves.
@Suite("Reliability: PostgreSQL outages", .serialized)
struct ReliabilityOutageTests {
    @Test(.timeLimit(.minutes(2))) func searchesContinueWritesFailFastAndRecoverWithoutRestart() async throws {
        let pg = try await OwnCluster("ro")
        let dir = try shortTempDirectory("rod")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = try await startDaemon(dir, "d", ["--database-url", pg.url, "--write-timeout", "2"])
        let c = try await TestClient(path: d.socket)
        #expect(field(try await c.request(registration(client: 1, n: 0).line), "camera", "id") as? String == "BC-00001")
        #expect(field(try await c.request("STATS"), "database", "state") as? String == "up")

        // A search load from three connections for the whole outage.
        let load = LoadCounters()
        let socket = d.socket
        let searchers = (0..<3).map { _ in
            Task {
                let s = try await TestClient(path: socket)
                while !load.stop {
                    do {
                        let r = try await s.request("NEAR 11.11 106.60 radius=3000")
                        if r["ok"] as? Bool == true, (r["cameras"] as? [[String: Any]])?.contains(where: { $0["id"] as? String == "BC-00001" }) == true { load.ok() } else { load.failed("\(r)") }
                    } catch {
                        load.failed("\(error)")
                        return
                    }
                }
                await s.close()
            }
        }

        try await pg.stop()
        // The daemon notices by itself (its change feed loses its connection), before any write.
        #expect(try await eventually(3) { field(try await c.request("STATS"), "database", "state") as? String != "up" })
        #expect(try await eventually(3) { field(try await c.request("STATS"), "feed", "connected") as? Bool == false })
        // Writes: `unavailable`, fast, and nothing written.
        for n in 1...5 {
            let started = Date()
            let r = try await c.request(registration(client: 1, n: n).line)
            let took = Date().timeIntervalSince(started)
            #expect(errorCode(r) == "unavailable", "\(r)")
            // Client-side time includes this test process's scheduling (the whole suite runs in
            // parallel on few cores): a loose bound here, the daemon's own timing below.
            #expect(took < 15, "a write took \(took) s with the database down")
        }
        let served = (field(try await c.request("STATS"), "latency_ms", "CAMERA REGISTER", "max") as? NSNumber)?.doubleValue ?? -1
        #expect(served >= 0 && served < 2500, "the daemon took \(served) ms to answer a write with the database down (timeout 2 s)")
        let owner = try await c.request(#"OWNER ADD kind=household name="X" phone=0912345678 address="a" ward="b""#)
        #expect(errorCode(owner) == "unavailable")
        let state = field(try await c.request("STATS"), "database", "state") as? String
        #expect(state == "down" || state == "reconnecting", "state \(String(describing: state))")
        try await Task.sleep(for: .seconds(1))  // searches keep being served while it is down

        // PostgreSQL back: writes succeed again within 5 s, same daemon.
        try await pg.start()
        let back = Date()
        var written: String?
        while written == nil && Date().timeIntervalSince(back) < 5 {
            let r = try await c.request(registration(client: 1, n: 100).line)
            if r["ok"] as? Bool == true { written = field(r, "camera", "id") as? String } else {
                #expect(errorCode(r) == "unavailable", "\(r)")
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(written != nil, "writes did not come back within 5 s")
        #expect(Date().timeIntervalSince(back) < 5)
        #expect(field(try await c.request("STATS"), "database", "state") as? String == "up")

        load.finish()
        for t in searchers { _ = await t.result }
        let counts = load.box.withLockedValue { $0 }
        #expect(counts.failed == 0, "failed searches: \(counts.failures)")
        #expect(counts.ok > 50)

        // Nothing of the refused writes reached the database; the feed is back too.
        let db = try pg.connect()
        #expect(try db.query("SELECT count(*) FROM cameras").scalar() == "2")
        #expect(try db.query("SELECT count(*) FROM owners").scalar() == "0")
        #expect(try await eventually(5) { field(try await stats(d.socket), "feed", "connected") as? Bool == true })
        #expect(d.logText.contains("database unavailable") && d.logText.contains("database available again"))

        await c.close()
        #expect(try await d.terminate() == 0)
        await pg.destroy()
    }

    /// The postmaster of a cluster and its children (backends, background processes).
    static func serverProcesses(_ pg: OwnCluster) throws -> [pid_t] {
        let text = try String(contentsOfFile: pg.cluster.pgData + "/postmaster.pid", encoding: .utf8)
        let postmaster = try #require(pid_t(text.split(separator: "\n").first ?? ""))
        var pids = [postmaster]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, pid_t(fields[1]) == postmaster { pids.append(pid) }
        }
        return pids
    }

    @Test(.timeLimit(.minutes(2))) func aFrozenDatabaseNeverHoldsAWritePastTheTimeout() async throws {
        let pg = try await OwnCluster("rz")
        let dir = try shortTempDirectory("rzd")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = try await startDaemon(dir, "d", ["--database-url", pg.url, "--write-timeout", "2"])
        let c = try await TestClient(path: d.socket)
        #expect(field(try await c.request(registration(client: 3, n: 0).line), "camera", "id") as? String == "BC-00001")

        // Freeze PostgreSQL (SIGSTOP: the server neither answers nor closes connections, like a
        // hung machine). A write must not wait for it past the write timeout.
        let frozen = try Self.serverProcesses(pg)
        #expect(frozen.count > 3)
        for pid in frozen { kill(pid, SIGSTOP) }
        let started = Date()
        let first = try await c.request(registration(client: 3, n: 1).line)
        let took = Date().timeIntervalSince(started)
        #expect(errorCode(first) == "unavailable", "\(first)")
        #expect(took < 15, "the write waited \(took) s for a frozen database")  // client side: loose (see above)
        #expect((field(first, "error", "message") as? String)?.contains("outcome of this request is unknown") == true)
        let again = Date()
        #expect(errorCode(try await c.request(registration(client: 3, n: 2).line)) == "unavailable")
        #expect(Date().timeIntervalSince(again) < 10)
        // The daemon's own timing: the abandoned write within the 2 s timeout (plus a margin),
        // the refused one at once.
        let served = try #require(field(try await c.request("STATS"), "latency_ms", "CAMERA REGISTER") as? [String: Any])
        #expect(((served["max"] as? NSNumber)?.doubleValue ?? 99_999) < 3000, "\(served)")
        #expect(((served["p50"] as? NSNumber)?.doubleValue ?? 99_999) < 500, "\(served)")  // 3 writes: fast, abandoned, refused
        #expect(try await c.request("NEAR 11.13 106.60 radius=3000")["ok"] as? Bool == true)

        // Thawed: writes come back by themselves.
        for pid in frozen { kill(pid, SIGCONT) }
        let back = Date()
        #expect(try await eventually(5) { try await c.request(registration(client: 3, n: 3).line)["ok"] as? Bool == true })
        #expect(Date().timeIntervalSince(back) < 5)
        // The write whose outcome was unknown either committed whole (then the feed put it in
        // the index) or not at all; the one refused at once is not there.
        let db = try pg.connect()
        let count = Int(try db.query("SELECT count(*) FROM cameras").scalar() ?? "") ?? -1
        #expect(count == 2 || count == 3)
        #expect(try db.query("SELECT count(*) FROM cameras WHERE address = 'client 3 number 2'").scalar() == "0")
        #expect(try await eventually(3) { (try await stats(d.socket))["cameras"] as? Int == count })
        await c.close()
        #expect(try await d.terminate() == 0)
        await pg.destroy()
    }
}
