import Foundation
import Logging
import NIOPosix
import Postgres
import RegistryStore
import Testing

/// Several daemons on one database: the change feed (LISTEN/NOTIFY + catch-up by sequence).
@Suite("Reliability: several daemons on one database", .serialized)
struct ReliabilityFeedTests {
    @Test(.timeLimit(.minutes(2))) func writesOnOneDaemonReachTheOtherAndCatchUpAfterALostConnection() async throws {
        let pg = try await OwnCluster("rf")
        let dir = try shortTempDirectory("rfd")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try await startDaemon(dir, "a", ["--database-url", pg.url])
        let b = try await startDaemon(dir, "b", ["--database-url", pg.url])
        let ca = try await TestClient(path: a.socket)
        let cb = try await TestClient(path: b.socket)
        // B's searches run as an analyst: no owner data, so no audit entry to commit per query —
        // what is timed is the feed, not the audit log's fsync.
        let analyst = try #require(try await ca.request("TOKEN CREATE role=analyst name=feed-test")["secret"] as? String)
        let cbq = try await TestClient(path: b.socket)
        #expect(try await cbq.request("AUTH \(analyst)")["role"] as? String == "analyst")

        // 1. A write on A is seen by NEAR on B within a second.
        for n in 0..<5 {
            let r = registration(client: 0, n: n)
            let reg = try await ca.request(r.line)
            let id = try #require(field(reg, "camera", "id") as? String, "\(reg)")
            let acked = Date()
            let seen = try await eventually(1) {
                let near = try await cbq.request("NEAR \(r.lat) \(r.lon) radius=2")
                return (near["cameras"] as? [[String: Any]])?.contains { $0["id"] as? String == id } == true
            }
            #expect(seen, "camera \(id) not visible on B within 1 s")
            #expect(Date().timeIntervalSince(acked) < 1)
        }
        // An update on B reaches A (both directions), with its version.
        let first = try #require(field(try await cb.request("CAMERA GET BC-00001"), "camera") as? [String: Any])
        #expect(first["version"] as? Int == 1)
        let upd = try await cb.request("CAMERA UPDATE BC-00001 version=1 heading=200")
        #expect(field(upd, "camera", "version") as? Int == 2, "\(upd)")
        #expect(try await eventually(1) { field(try await ca.request("CAMERA GET BC-00001"), "camera", "heading_deg") as? Int == 200 })

        // Owners' consent written on A reaches B's search answers.
        let owner = try await ca.request(#"OWNER ADD kind=household name="Lê Văn Tám" phone=0912345678 address="Số 1" ward="Phường Mỹ Phước" consent=no"#)
        let ownerID = try #require((field(owner, "owner", "id") as? NSNumber)?.intValue, "\(owner)")
        let withOwner = try await ca.request(#"CAMERA REGISTER owner=\#(ownerID) lat=11.2 lon=106.62 site=alley address="Số 1" ward="Phường Mỹ Phước""#)
        let ownedID = try #require(field(withOwner, "camera", "id") as? String, "\(withOwner)")
        func consentOnB() async throws -> String? {
            let near = try await cbq.request("NEAR 11.2 106.62 radius=2")
            return (near["cameras"] as? [[String: Any]])?.first { $0["id"] as? String == ownedID }?["consent"] as? String
        }
        #expect(try await eventually(1) { try await consentOnB() == "withdrawn" })
        let granted = try await ca.request("OWNER UPDATE \(ownerID) version=1 consent=yes")
        #expect(granted["ok"] as? Bool == true, "\(granted)")
        #expect(try await eventually(1) { try await consentOnB() == "granted" }, "the consent change did not reach B")

        // Incidents recorded on A reach B's incident index (loaded before, and added to).
        #expect(try await cb.request("INCIDENT LIST")["ok"] as? Bool == true)
        let incident = try await ca.request(#"INCIDENT ADD case=BC-2026-101 kind=robbery at=2026-11-28T21:30+07:00 point=11.2,106.62 radius=200"#)
        let incidentID = try #require((field(incident, "incident", "id") as? NSNumber)?.intValue, "\(incident)")
        #expect(try await eventually(1) {
            let near = try await cbq.request("INCIDENTS NEAR 11.2 106.62 radius=50")
            return (near["incidents"] as? [[String: Any]])?.contains { ($0["id"] as? NSNumber)?.intValue == incidentID } == true
        }, "incident \(incidentID) not in B's index within 1 s")

        // 2. B's LISTEN connection is lost while A writes: B does not see the writes, then
        // catches up exactly once it reconnects.
        let feedB = try #require(field(try await stats(b.socket), "feed") as? [String: Any])
        #expect(feedB["mode"] as? String == "listen" && feedB["connected"] as? Bool == true)
        let pid = try #require(feedB["backend_pid"] as? Int)
        let reconnectsBefore = try #require(feedB["reconnects"] as? Int)
        kill(pid_t(pid), SIGSTOP)  // the server process of B's feed connection: frozen
        var missed: [String] = []
        for n in 5..<45 {
            let reg = try await ca.request(registration(client: 0, n: n).line)
            missed.append(try #require(field(reg, "camera", "id") as? String, "\(reg)"))
        }
        for id in missed.prefix(10) {
            let v = try await ca.request("CAMERA VERIFY \(id) by=officer")
            #expect(field(v, "camera", "version") as? Int == 2, "\(v)")
        }
        try await Task.sleep(for: .milliseconds(1200))
        #expect(errorCode(try await cb.request("CAMERA GET \(missed.last!)")) == "not_found", "B saw a change while its feed was frozen")
        // Kill the frozen connection: terminate it, then let it run to act on the signal.
        let admin = try pg.connect()
        #expect(try admin.query("SELECT pg_terminate_backend($1)", [String(pid)]).scalar() == "t")
        kill(pid_t(pid), SIGCONT)

        let dbSeq = Int(try admin.query("SELECT max(seq) FROM camera_changes").scalar() ?? "") ?? -1
        #expect(try await eventually(10) {
            let f = field(try await stats(b.socket), "feed") as? [String: Any]
            return f?["applied_seq"] as? Int == dbSeq && f?["connected"] as? Bool == true
        }, "B did not catch up to \(dbSeq)")
        let feedAfter = try #require(field(try await stats(b.socket), "feed") as? [String: Any])
        #expect((feedAfter["reconnects"] as? Int ?? 0) > reconnectsBefore)
        #expect(feedAfter["lag"] as? Int == 0)
        #expect(feedAfter["backend_pid"] as? Int != pid)
        #expect(b.logText.contains("change feed reconnected and caught up"))

        // Exactly: every camera of A is on B, field for field (ids, versions, status), none extra.
        let listA = try await ca.request("CAMERA LIST limit=1000")
        let listB = try await cb.request("CAMERA LIST limit=1000")
        let camsA = try #require(listA["cameras"] as? [[String: Any]])
        let camsB = try #require(listB["cameras"] as? [[String: Any]])
        #expect(camsA.count == 46 && camsB.count == camsA.count)
        #expect(NSArray(array: camsA).isEqual(to: camsB))
        let dbCount = Int(try admin.query("SELECT count(*) FROM cameras").scalar() ?? "") ?? -1
        #expect(dbCount == camsB.count)
        #expect((try await stats(b.socket))["cameras"] as? Int == dbCount)

        // 3. A big import on A: A's index has it when IMPORT COMMIT answers, and A's feed does
        // not read those cameras back (it was told the import's change numbers); B's reads
        // each of them once.
        let appliedA = try #require((field(try await stats(a.socket), "feed") as? [String: Any])?["applied"] as? Int)
        let appliedB = try #require((field(try await stats(b.socket), "feed") as? [String: Any])?["applied"] as? Int)
        var csv = "id,lat,lon,address,ward\n"
        for n in 0..<5000 { csv += "BC-\(700_000 + n),\(11.12 + Double(n % 100) * 0.0001),\(106.60 + Double(n / 100) * 0.0001),Số \(n),Phường Mỹ Phước\n" }
        let imported = try await upload(ca, Array(csv.utf8), begin: "IMPORT BEGIN format=csv by=feed-test", chunk: 45_000)
        #expect((imported["imported"] as? NSNumber)?.intValue == 5000, "\(imported)")
        #expect((try await stats(a.socket))["cameras"] as? Int == dbCount + 5000)
        let topSeq = Int(try admin.query("SELECT max(seq) FROM camera_changes").scalar() ?? "") ?? -1
        for daemon in [a, b] {
            #expect(try await eventually(10) {
                (field(try await stats(daemon.socket), "feed") as? [String: Any])?["applied_seq"] as? Int == topSeq
            }, "the feed did not pass the import's change rows")
        }
        #expect((field(try await stats(a.socket), "feed") as? [String: Any])?["applied"] as? Int == appliedA,
                "A's feed read its own import back")
        #expect((field(try await stats(b.socket), "feed") as? [String: Any])?["applied"] as? Int == appliedB + 5000)
        #expect((try await stats(b.socket))["cameras"] as? Int == dbCount + 5000)

        await ca.close()
        await cb.close()
        #expect(try await a.terminate() == 0)
        #expect(try await b.terminate() == 0)
        await pg.destroy()
    }

    @Test(.timeLimit(.minutes(2))) func readOnlyDaemonOnAStreamingReplicaFollowsThePrimary() async throws {
        let primary = try await OwnCluster("rp")
        let dir = try shortTempDirectory("rr")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try await startDaemon(dir, "a", ["--database-url", primary.url])  // migrates the primary
        let ca = try await TestClient(path: a.socket)
        let before = try #require(field(try await ca.request(registration(client: 2, n: 0).line), "camera", "id") as? String)

        // A real streaming replica: pg_basebackup -R into a second folder, its own socket and port.
        var quiet = Logger(label: "test.replica")
        quiet.logLevel = .warning
        let replica = try EmbeddedCluster(dataDirectory: dir + "/replica", database: "camreg", port: 5433, logger: quiet)
        try FileManager.default.createDirectory(atPath: replica.pgData, withIntermediateDirectories: true)
        chmod(dir + "/replica", 0o711)
        chmod(replica.pgData, 0o700)
        if let user = replica.runAsUser, let pw = getpwnam(user) { chown(replica.pgData, pw.pointee.pw_uid, pw.pointee.pw_gid) }
        let basebackup = [replica.binDirectory + "/pg_basebackup", "-D", replica.pgData, "-R", "-X", "stream", "-c", "fast",
                          "-h", primary.cluster.socketDirectory, "-p", "5432", "-U", "camreg"]
        let argv = ["/usr/bin/env", "-C", "/"] + (replica.runAsUser.map { ["/usr/sbin/runuser", "-u", $0, "--"] } ?? []) + basebackup
        let out = dir + "/basebackup.out"
        #expect(try ChildProcess(argv, outputPath: out).wait() == 0, "\((try? String(contentsOfFile: out, encoding: .utf8)) ?? "")")
        try await NIOThreadPool.singleton.runIfActive { try replica.start() }
        let standby = try PostgresConnection(configuration: replica.configuration)
        #expect(try standby.query("SELECT pg_is_in_recovery()").scalar() == "t")
        let replicaURL = "postgresql:///camreg?host=\(replica.socketDirectory)&port=5433&user=camreg"

        // Without a primary for its audit log, a read-only daemon does not disclose owner data.
        let blind = try await startDaemon(dir, "b", ["--read-only", "--database-url", replicaURL])
        let cb = try await TestClient(path: blind.socket)
        #expect(errorCode(try await cb.request("CAMERA GET \(before)")) == "audit_unavailable")
        await cb.close()
        #expect(try await blind.terminate() == 0)

        // With audit_database_url it audits to the primary, and checks tokens on the replica.
        let r = try await startDaemon(dir, "r", ["--read-only", "--database-url", replicaURL, "--audit-database-url", primary.url])
        let cr = try await TestClient(path: r.socket)
        #expect(field(try await cr.request("CAMERA GET \(before) case=RO-1"), "camera", "id") as? String == before)
        #expect(try await eventually(3) {
            try primary.connect().query("SELECT count(*) FROM audit_log WHERE case_id = 'RO-1'").scalar() == "1"
        }, "the replica daemon's read of owner data is in the primary's audit log")
        let token = try #require(try await ca.request("TOKEN CREATE role=analyst name=replica-reader")["secret"] as? String)
        let crq = try await TestClient(path: r.socket)
        #expect(try await eventually(3) {
            try await crq.request("AUTH \(token)")["role"] as? String == "analyst"
        }, "a token made on the primary works on the replica's daemon")
        let st = try await stats(r.socket)
        #expect(st["read_only"] as? Bool == true)
        #expect(field(st, "feed", "mode") as? String == "poll")
        #expect(field(st, "database", "state") as? String == "read_only")

        // Writes on the read-only daemon are refused; writes on the primary's daemon arrive.
        #expect(errorCode(try await cr.request(registration(client: 2, n: 1).line)) == "unavailable")
        for n in 2..<6 {
            let reg = registration(client: 2, n: n)
            let id = try #require(field(try await ca.request(reg.line), "camera", "id") as? String)
            let acked = Date()
            #expect(try await eventually(2) {
                let near = try await crq.request("NEAR \(reg.lat) \(reg.lon) radius=2")
                return (near["cameras"] as? [[String: Any]])?.contains { $0["id"] as? String == id } == true
            })
            #expect(Date().timeIntervalSince(acked) < 2)
        }
        let dbSeq = Int(try primary.connect().query("SELECT max(seq) FROM camera_changes").scalar() ?? "") ?? -1
        #expect(try await eventually(3) { field(try await stats(r.socket), "feed", "applied_seq") as? Int == dbSeq })
        #expect(field(try await stats(r.socket), "feed", "lag") as? Int == 0)

        await ca.close()
        await cr.close()
        #expect(try await r.terminate() == 0)
        #expect(try await a.terminate() == 0)
        try await NIOThreadPool.singleton.runIfActive { try replica.stop() }
        await primary.destroy()
    }
}
