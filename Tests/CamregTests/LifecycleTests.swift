import Foundation
import Postgres
import Registry
import RegistryStore
import Testing

/// A registry database with the demo inventory, a client for writes and a fresh index, per test.
func writableRegistry(_ label: String, demo: Bool = true) async throws -> (PostgresClient, CameraIndex, PostgresConnection) {
    let config = try await TestPostgres.shared.migratedDatabase(label)
    let c = try PostgresConnection(configuration: config)
    if demo { _ = try CameraRepository.loadIfEmpty(DemoInventory.generate().cameras, on: c) }
    let index = try CameraIndex(cameras: try CameraRepository.all(on: c))
    return (PostgresClient(configuration: config, maximumConnections: 4), index, c)
}

func field(_ o: [String: Any], _ path: String...) -> Any? {
    var cur: Any? = o
    for p in path { cur = (cur as? [String: Any])?[p] }
    return cur
}

func fieldsOfError(_ o: [String: Any]) -> Set<String> {
    Set(((o["error"] as? [String: Any])?["fields"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String })
}

let registerLine = #"CAMERA REGISTER owner=%@ lat=11.1481 lon=106.6049 site=alley address="Số 12/3, Hẻm 12, Đường NA3" ward="Phường Mỹ Phước" heading=90 fov=80 range=40 retention=30 by=registrar1"#

@Suite("Owners and the camera life cycle over the socket")
struct LifecycleTests {
    /// Graceful shutdown answers every request a client sent before it, even those still in the
    /// socket buffer because the connection was holding its reads behind a slow write.
    @Test func shutdownAnswersWhatWasSentBeforeIt() async throws {
        let (store, index, pg) = try await writableRegistry("drain")
        try await withStoppableTestServer(index: index, store: store, drainTimeout: .seconds(30)) { path, _, _, stop in
            let c = try await TestClient(path: path)
            let owner = try await c.request(#"OWNER ADD kind=business name="Tiệm A" phone="0912 000 111" address="x" ward="y" consent=yes consent_until=2027-12-31"#)
            let ownerID = try #require((field(owner, "owner", "id") as? NSNumber)?.intValue, "\(owner)")
            // A write that waits on a lock: the connection holds its reads while it runs.
            try pg.query("BEGIN")
            try pg.query("LOCK TABLE cameras IN EXCLUSIVE MODE")
            try await c.sendFlushed(String(format: registerLine, "\(ownerID)"))
            try await Task.sleep(for: .milliseconds(300))
            // These stay in the socket buffer, unread, while the write waits.
            try await c.sendFlushed("PING\nCAMERA GET BC-00007")
            let stopping = Task { await stop() }
            // Well past the quiet period, the lock goes.
            try await Task.sleep(for: .milliseconds(800))
            try pg.query("COMMIT")
            let reg = try decodeJSON(try #require(try await c.readLine(), "no answer to the register"))
            #expect(reg["ok"] as? Bool == true, "\(reg)")
            let pong = try await c.readLine()
            #expect(pong?.contains("pong") == true, "\(pong ?? "closed")")
            let got = try await c.readLine()
            #expect(got?.contains("BC-00007") == true, "\(got ?? "closed")")
            // Then the connection ends.
            #expect(try await c.readLine() == nil)
            await stopping.value
        }
        await store.shutdown()
    }

    @Test func ownerRegisterVerifyUpdateRetire() async throws {
        let (store, index, pg) = try await writableRegistry("life")
        try await withTestServer(index: index, store: store) { path, _ in
            let a = try await TestClient(path: path)
            let b = try await TestClient(path: path)
            // Owner: phone formats normalised.
            let owner = try await a.request(#"OWNER ADD kind=boarding_house name="Nguyễn Thị Hoa" phone="0912 345 678" address="Số 5, Đường NA3" ward="Phường Mỹ Phước" consent=yes consent_until=2027-12-31"#)
            #expect(owner["ok"] as? Bool == true, "\(owner)")
            let ownerID = try #require((field(owner, "owner", "id") as? NSNumber)?.intValue)
            #expect(field(owner, "owner", "phone") as? String == "+84912345678")
            #expect(field(owner, "owner", "consent", "valid_until") as? String == "2027-12-31")
            let same = try await a.request(#"OWNER ADD kind=household name="B" phone="+84 912 345 678" address="x" ward="y""#)
            #expect(field(same, "owner", "phone") as? String == "+84912345678")
            let got = try await b.request("OWNER GET \(ownerID)")
            #expect(field(got, "owner", "name") as? String == "Nguyễn Thị Hoa")

            // Register: pending, immediately visible to NEAR on another connection.
            let reg = try await a.request(String(format: registerLine, "\(ownerID)"))
            #expect(reg["ok"] as? Bool == true, "\(reg)")
            let id = try #require(field(reg, "camera", "id") as? String)
            #expect(id.hasPrefix("BC-") && id > "BC-01202")
            #expect(field(reg, "camera", "status") as? String == "pending")
            #expect(field(reg, "camera", "owner_kind") as? String == "boarding_house")
            #expect(field(reg, "camera", "owner_phone") as? String == "+84912345678")
            let near = try await b.request("NEAR 11.1481 106.6049 radius=5")
            #expect((near["cameras"] as? [[String: Any]])?.first?["id"] as? String == id)

            // Illegal transitions.
            #expect(errorCode(try await a.request("CAMERA STATUS \(id) active")) == "illegal_transition")
            #expect(errorCode(try await a.request("CAMERA STATUS \(id) offline")) == "illegal_transition")
            // Verify: pending → active, who and when.
            #expect(errorCode(try await a.request("CAMERA VERIFY \(id) by=\"Đại úy Lê Văn Tám\" version=7")) == "conflict")
            let ver = try await a.request("CAMERA VERIFY \(id) by=\"Đại úy Lê Văn Tám\" version=1")
            #expect(field(ver, "camera", "status") as? String == "active")
            #expect(field(ver, "camera", "verified_by") as? String == "Đại úy Lê Văn Tám")
            #expect(field(ver, "camera", "verified_at") is String)
            #expect((field(ver, "camera", "version") as? NSNumber)?.intValue == 2)
            #expect(errorCode(try await a.request("CAMERA VERIFY \(id) by=x")) == "illegal_transition")

            // Update needs the current version; a stale one changes nothing.
            let upd = try await a.request("CAMERA UPDATE \(id) version=2 heading=180 retention=60")
            #expect((field(upd, "camera", "heading_deg") as? NSNumber)?.doubleValue == 180)
            #expect((field(upd, "camera", "version") as? NSNumber)?.intValue == 3)
            let stale = try await b.request("CAMERA UPDATE \(id) version=2 heading=270")
            #expect(errorCode(stale) == "conflict")
            #expect((field(try await b.request("CAMERA GET \(id)"), "camera", "heading_deg") as? NSNumber)?.doubleValue == 180)

            // active ↔ offline, then retire (reason required): gone from NEAR, kept in CAMERA GET.
            #expect(field(try await a.request("CAMERA STATUS \(id) offline"), "camera", "status") as? String == "offline")
            #expect(field(try await a.request("CAMERA STATUS \(id) active"), "camera", "status") as? String == "active")
            #expect(errorCode(try await a.request("CAMERA STATUS \(id) retired")) == "validation_failed")
            let ret = try await a.request("CAMERA STATUS \(id) retired reason=\"owner moved away\"")
            #expect(field(ret, "camera", "status_reason") as? String == "owner moved away")
            let after = try await b.request("NEAR 11.1481 106.6049 radius=5")
            #expect((after["cameras"] as? [Any])?.isEmpty == true)
            #expect(field(try await b.request("CAMERA GET \(id)"), "camera", "status") as? String == "retired")
            #expect(errorCode(try await a.request("CAMERA STATUS \(id) active")) == "illegal_transition")
            #expect(errorCode(try await a.request("CAMERA UPDATE \(id) version=7 heading=1")) == "illegal_transition")

            // Owner update with versions.
            #expect(errorCode(try await a.request("OWNER UPDATE \(ownerID) version=9 name=X")) == "conflict")
            let ou = try await a.request("OWNER UPDATE \(ownerID) version=1 phone=0274.3812.345 consent=no")
            #expect(field(ou, "owner", "phone") as? String == "+842743812345")
            #expect(field(ou, "owner", "consent", "granted") as? Bool == false)
            #expect(errorCode(try await a.request("OWNER GET 99999")) == "not_found")
        }
        // Every change is in camera_changes, in order (after the demo inventory's own rows).
        let kinds = try pg.query("SELECT kind FROM camera_changes WHERE kind <> 'demo' ORDER BY seq").rows.map { $0[0]! }
        #expect(kinds == ["register", "verify", "update", "status", "status", "retire"])
        await store.shutdown()
    }

    @Test func validationNamesEveryBadField() async throws {
        let (store, index, _) = try await writableRegistry("val", demo: false)
        try await withTestServer(index: index, store: store) { path, _ in
            let c = try await TestClient(path: path)
            let missing = try await c.request("CAMERA REGISTER lat=11.1 lon=106.6 site=alley address=x")
            #expect(errorCode(missing) == "missing_option")  // ward is required by the command table
            let bad = try await c.request(#"CAMERA REGISTER lat=12.5 lon=106.6 site=roof address=x ward=y heading=400 fov=0 range=-1 retention=0 schedule=25:00-01:00 owner_phone=12345 owner_kind=alien mount_height=abc"#)
            #expect(errorCode(bad) == "validation_failed")
            let fields = fieldsOfError(bad)
            #expect(fields == ["site", "heading", "fov", "range", "retention", "schedule", "owner_phone", "owner_kind", "mount_height"])
            // An update reports every bad field at once too, named as the options are.
            let reg = try await c.request(#"CAMERA REGISTER lat=11.1 lon=106.6 site=alley address=x ward=y"#)
            let id = try #require(field(reg, "camera", "id") as? String)
            let upd = try await c.request("CAMERA UPDATE \(id) version=1 heading=abc fov=0 retention=0 range=5000")
            #expect(fieldsOfError(upd) == ["heading", "fov", "retention", "range"])
            #expect((field(try await c.request("CAMERA GET \(id)"), "camera", "version") as? NSNumber)?.intValue == 1)
            // Outside the jurisdiction (Bến Cát's box), reported on its own.
            let outside = try await c.request(#"CAMERA REGISTER lat=10.77 lon=106.70 site=alley address=x ward=y"#)
            #expect(errorCode(outside) == "validation_failed")
            #expect(!fieldsOfError(outside).isEmpty)
            let owner = try await c.request(#"OWNER ADD kind=household name="A" phone="123" address=x ward=y email=bad"#)
            #expect(fieldsOfError(owner) == ["phone", "email"])
            #expect(errorCode(try await c.request(#"CAMERA REGISTER owner=424242 lat=11.1 lon=106.6 site=alley address=x ward=y"#)) == "validation_failed")
            // Nothing but the one good registration was written.
            #expect((try await c.request("CAMERA LIST")["count"] as? NSNumber)?.intValue == 1)
        }
        await store.shutdown()
    }

    @Test func duplicatesAreRefusedUnlessDistinct() async throws {
        let (store, index, _) = try await writableRegistry("dup", demo: false)
        try await withTestServer(index: index, store: store) { path, _ in
            let c = try await TestClient(path: path)
            let o = try await c.request(#"OWNER ADD kind=business name="Tiệm Hoa" phone=0987654321 address=x ward=y"#)
            let owner = try #require((field(o, "owner", "id") as? NSNumber)?.intValue)
            let base = #"CAMERA REGISTER owner=\#(owner) site=building address=x ward=y range=30"#
            #expect(try await c.request(base + " lat=11.1000000 lon=106.6000000 heading=90")["ok"] as? Bool == true)
            // 2 m away, heading 95°: a likely duplicate.
            let dup = try await c.request(base + " lat=11.1000180 lon=106.6000000 heading=95")
            #expect(errorCode(dup) == "likely_duplicate")
            // Same place, opposite heading: a different camera.
            #expect(try await c.request(base + " lat=11.1000180 lon=106.6000000 heading=270")["ok"] as? Bool == true)
            // 10 m away: a different camera.
            #expect(try await c.request(base + " lat=11.1000900 lon=106.6000000 heading=90")["ok"] as? Bool == true)
            // distinct=yes overrides.
            #expect(try await c.request(base + " lat=11.1000180 lon=106.6000000 heading=95 distinct=yes")["ok"] as? Bool == true)
            // An explicit id that is taken.
            let first = try await c.request(base + " id=BC-77777 lat=11.15 lon=106.62")
            #expect(first["ok"] as? Bool == true)
            #expect(errorCode(try await c.request(base + " id=BC-77777 lat=11.16 lon=106.62")) == "already_exists")
        }
        await store.shutdown()
    }

    @Test func listFiltersAndPages() async throws {
        let (store, index, _) = try await writableRegistry("list")
        let demo = DemoInventory.generate().cameras
        try await withTestServer(index: index, store: store) { path, _ in
            let c = try await TestClient(path: path)
            var seen: [String] = []
            var cursor: String? = nil
            repeat {
                let r = try await c.request("CAMERA LIST ward=\"Phường Hòa Lợi\" limit=50" + (cursor.map { " after=\($0)" } ?? ""))
                let ids = (r["cameras"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                #expect(ids.count <= 50)
                seen += ids
                cursor = r["next_cursor"] as? String
            } while cursor != nil
            #expect(seen == demo.filter { $0.ward == "Phường Hòa Lợi" }.map(\.id).sorted())
            let pending = try await c.request("CAMERA LIST status=pending site=intersection limit=1000")
            let want = demo.filter { $0.status == .pending && $0.siteKind == .intersection }.count
            #expect((pending["count"] as? NSNumber)?.intValue == want)
            #expect(errorCode(try await c.request("CAMERA LIST status=broken")) == "invalid_value")
        }
        await store.shutdown()
    }

    @Test func tenThousandConcurrentRegistrationsWhileQuerying() async throws {
        let (store, index, pg) = try await writableRegistry("bulk", demo: false)
        let cameraCount = try await withTestServer(index: index, store: store, rebuildThreshold: 1000) { path, _ in
            let querying = Task {
                let q = try await TestClient(path: path)
                var answered = 0
                while !Task.isCancelled {
                    let r: [String: Any]
                    do {
                        r = try await q.request("NEAR 11.13 106.60 radius=3000 limit=10")
                    } catch is CancellationError {
                        break
                    }
                    if r["ok"] as? Bool == true { answered += 1 } else { return -1 }
                }
                return answered
            }
            let ids = try await withThrowingTaskGroup(of: [String].self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        let c = try await TestClient(path: path)
                        var ids: [String] = []
                        for i in 0..<1250 {
                            let n = worker * 1250 + i
                            let lat = 11.04 + Double(n % 100) * 0.0018
                            let lon = 106.51 + Double(n / 100) * 0.0018
                            let r = try await c.request("CAMERA REGISTER lat=\(lat) lon=\(lon) site=alley address=\"Số \(n)\" ward=\"Phường Thới Hòa\" heading=\(n % 360)")
                            guard let id = field(r, "camera", "id") as? String else { throw TestFailure("\(r)") }
                            ids.append(id)
                        }
                        return ids
                    }
                }
                var all: [String] = []
                for try await part in group { all += part }
                return all
            }
            querying.cancel()
            let answered = try await querying.value
            #expect(answered > 0, "queries were not answered during the writes")
            #expect(Set(ids).count == 10_000)
            // Every registration is in the index (snapshot + delta) and visible to searches.
            #expect(index.count == 10_000)
            for id in ids.prefix(200) { #expect(index.camera(id: id) != nil) }
            let hits = try index.near(lat: 11.04, lon: 106.51, radius: 1, limit: 10)
            #expect(hits.count == 1)
            return index.count
        }
        #expect(cameraCount == 10_000)
        #expect(try pg.query("SELECT count(*) FROM cameras").scalar() == "10000")
        #expect(try pg.query("SELECT count(*) FROM camera_changes WHERE kind = 'register'").scalar() == "10000")
        await store.shutdown()
    }
}
