import Foundation
import Postgres
import Registry
import RegistryStore
import Testing

/// Uploads `data` over the socket with IMPORT BEGIN/DATA/COMMIT; returns the COMMIT answer.
func upload(_ client: TestClient, _ data: [UInt8], begin: String, chunk: Int = 1000) async throws -> [String: Any] {
    let b = try await client.request(begin)
    guard b["ok"] as? Bool == true else { return b }
    var i = 0
    while i < data.count {
        let part = Data(data[i..<min(i + chunk, data.count)])
        let r = try await client.request("IMPORT DATA data=" + part.base64EncodedString())
        guard r["ok"] as? Bool == true else { return r }
        i += chunk
    }
    return try await client.request("IMPORT COMMIT")
}

@Suite("Bulk import and export over the socket")
struct ImportSocketTests {
    static let messyCSV: String = {
        let header = "id,lat,lon,site_kind,address,ward,heading,fov,range_m,retention_days,owner_phone\r\n"
        let rows = [
            "BC-90001,11.1201,106.6001,alley,\"Số 12/3, Hẻm 12, Đường NA3\",Phường Mỹ Phước,90,80,40,30,0912345678",  // line 2 ok
            "BC-90002,12.9000,106.6001,alley,Số 1,Phường Mỹ Phước,90,80,40,30,",                                   // 3 outside the town
            "BC-90003,11.1202,106.6002,alley,,Phường Mỹ Phước,90,80,40,30,",                                        // 4 empty address
            "BC-90004,abc,106.6003,alley,Số 4,Phường Mỹ Phước,90,80,40,30,",                                        // 5 wrong type
            "BC-90005,11.1204,106.6004,alley,\"Số 5, broken,Phường Mỹ Phước,90,80,40,30,",                          // 6 broken quote
            "BC-90006,11.1205,106.6005,intersection,\"Ngã tư Sở Sao\",Phường Hòa Lợi,,360,60,90,",                // 7 ok
            "BC-90007,11.1206,106.6006,alley,Số 7,Phường Tân Định,400,80,40,30,",                                   // 8 heading out of range
            "BC-90001,11.1207,106.6007,alley,Số 8,Phường Tân Định,10,80,40,30,",                                    // 9 repeated id
            "BC-00042,11.1208,106.6008,alley,Số 9,Phường Tân Định,10,80,40,30,",                                    // 10 id exists
        ]
        return "\u{FEFF}" + header + rows.joined(separator: "\r\n") + "\r\n"
    }()

    @Test func csvWithBadRowsImportsTheGoodOnesAndReportsEachBadOne() async throws {
        let (store, index, pg) = try await writableRegistry("imp")
        try await withTestServer(index: index, store: store) { path, _ in
            let c = try await TestClient(path: path)
            let r = try await upload(c, Array(Self.messyCSV.utf8), begin: "IMPORT BEGIN format=csv by=tester", chunk: 97)
            #expect(r["ok"] as? Bool == true, "\(r)")
            #expect(r["committed"] as? Bool == true)
            #expect((r["imported"] as? NSNumber)?.intValue == 2)
            let rejected = (r["rejected"] as? [[String: Any]] ?? []).compactMap { ($0["number"] as? NSNumber)?.intValue }
            #expect(Set(rejected) == [3, 4, 5, 6, 8, 9, 10], "\(r)")
            // Imported cameras are live and keep their Vietnamese text exactly.
            let got = try await c.request("CAMERA GET BC-90006")
            #expect(field(got, "camera", "address") as? String == "Ngã tư Sở Sao")
            #expect(field(got, "camera", "ward") as? String == "Phường Hòa Lợi")
            let near = try await c.request("NEAR 11.1201 106.6001 radius=2")
            #expect((near["cameras"] as? [[String: Any]])?.first?["id"] as? String == "BC-90001")
            #expect(errorCode(try await c.request("IMPORT COMMIT")) == "no_upload")
            #expect(errorCode(try await c.request("IMPORT DATA data=!!!")) == "no_upload")
        }
        // A taken id sent this file to the staging path, which logs a row per camera.
        #expect(try pg.query("SELECT count(*) FROM camera_changes WHERE kind = 'import' AND actor = 'tester' AND camera_id IS NOT NULL").scalar() == "2")
        await store.shutdown()
    }

    /// A file above the direct-snapshot size (4,096 rows) read in several batches: stored,
    /// logged and in a new snapshot (no delta) when COMMIT answers; the id sequence moves past
    /// its ids. A second big file with one taken id goes through the staging path.
    @Test func bigCSVImportIsStreamedAndIndexed() async throws {
        let (store, index, pg) = try await writableRegistry("big")
        @Sendable func csv(_ ids: Range<Int>, extra: String = "") -> [UInt8] {
            var text = "id,lat,lon,address,ward\n"
            for n in ids {
                text += "BC-\(n),\(11.12 + Double(n % 100) * 0.0001),\(106.60 + Double(n / 100 % 100) * 0.0001),Số \(n),Phường Mỹ Phước\n"
            }
            return Array((text + extra).utf8)
        }
        try await withTestServer(index: index, store: store) { path, _ in
            let c = try await TestClient(path: path)
            let before = (try await c.request("STATS")["cameras"] as? NSNumber)?.intValue ?? -1
            let r = try await upload(c, csv(500_000..<506_000), begin: "IMPORT BEGIN format=csv by=big", chunk: 48_000)
            #expect(r["committed"] as? Bool == true, "\(r)")
            #expect((r["rows"] as? NSNumber)?.intValue == 6000)
            #expect((r["imported"] as? NSNumber)?.intValue == 6000)
            let stats = try await c.request("STATS")
            #expect((stats["cameras"] as? NSNumber)?.intValue == before + 6000)
            #expect((stats["delta"] as? NSNumber)?.intValue == 0, "a new snapshot, not a delta")
            #expect(field(try await c.request("CAMERA GET BC-505999"), "camera", "address") as? String == "Số 505999")
            let near = try await c.request("NEAR 11.1200 106.6000 radius=1")
            #expect((near["cameras"] as? [[String: Any]])?.first?["id"] as? String == "BC-500000")

            // One id taken (the last row): the staging path imports the others.
            let again = try await upload(c, csv(506_000..<511_000, extra: "BC-500001,11.13,106.61,Số lặp,Phường Mỹ Phước\n"),
                                         begin: "IMPORT BEGIN format=csv by=big", chunk: 48_000)
            #expect(again["committed"] as? Bool == true, "\(again)")
            #expect((again["imported"] as? NSNumber)?.intValue == 5000)
            let rejected = (again["rejected"] as? [[String: Any]]) ?? []
            #expect(rejected.count == 1 && (rejected.first?["number"] as? NSNumber)?.intValue == 5002)
            #expect((try await c.request("STATS")["cameras"] as? NSNumber)?.intValue == before + 11_000)
            #expect(field(try await c.request("CAMERA GET BC-510999"), "camera", "address") as? String == "Số 510999")
            // The index snapshot prepared from the whole file while the COPY ran was dropped:
            // the taken id keeps its camera, in the table and in the index.
            #expect(field(try await c.request("CAMERA GET BC-500001"), "camera", "address") as? String == "Số 500001")
            let taken = try await c.request("NEAR 11.13 106.61 radius=1")
            #expect(((taken["cameras"] as? [[String: Any]]) ?? []).isEmpty, "\(taken)")
            #expect((try await c.request("STATS")["delta"] as? NSNumber)?.intValue ?? 0 <= 5000)
        }
        // The direct path logged two blocks (4,096 + 1,904 cameras), the staging path a row per camera.
        #expect(try pg.query("SELECT cardinality(camera_ids), detail FROM camera_changes WHERE actor = 'big' AND camera_ids IS NOT NULL ORDER BY seq").rows
                == [["4096", "rows 2–4097 (4096 cameras)"], ["1904", "rows 4098–6001 (1904 cameras)"]])
        #expect(try pg.query("SELECT count(*) FROM camera_changes WHERE kind = 'import' AND actor = 'big' AND camera_id IS NOT NULL").scalar() == "5000")
        #expect(try pg.query("SELECT nextval('camera_number_seq')").scalar() == "511000")
        await store.shutdown()
    }

    /// A CSV upload is loaded while it arrives: `IMPORT BEGIN` opens the import's transaction
    /// and COPY, nothing is visible before `IMPORT COMMIT`, and `IMPORT ABORT`, a file that
    /// cannot be read, or a closed connection roll it back and free the streaming slot. One
    /// streaming import at a time: another connection's upload meanwhile is buffered.
    @Test func csvUploadIsLoadedWhileItArrives() async throws {
        let (store, index, pg) = try await writableRegistry("stream")
        @Sendable func csv(_ ids: Range<Int>) -> [UInt8] {
            var text = "id,lat,lon,address,ward\n"
            for n in ids { text += "BC-\(n),\(11.12 + Double(n % 100) * 0.0001),106.6,\"Số \(n), Hẻm \(n % 7)\",Phường Mỹ Phước\n" }
            return Array(text.utf8)
        }
        @Sendable func send(_ c: TestClient, _ bytes: ArraySlice<UInt8>) async throws {
            for start in stride(from: bytes.startIndex, to: bytes.endIndex, by: 777) {
                let r = try await c.request("IMPORT DATA data=" + Data(bytes[start..<min(bytes.endIndex, start + 777)]).base64EncodedString())
                #expect(r["ok"] as? Bool == true, "\(r)")
            }
        }
        /// Transactions open in the test's database, other than this connection's.
        @Sendable func openTransactions() throws -> Int {
            Int(try pg.query("""
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
                """).scalar() ?? "") ?? -1
        }
        @Sendable func becomes(_ n: Int) async throws -> Bool {
            for _ in 0..<200 {
                if try openTransactions() == n { return true }
                try await Task.sleep(for: .milliseconds(25))
            }
            return false
        }
        @Sendable func stored(_ prefix: String) throws -> String? { try pg.query("SELECT count(*) FROM cameras WHERE id LIKE '\(prefix)%'").scalar() }
        try await withTestServer(index: index, store: store) { path, service in
            let a = try await TestClient(path: path)
            let file = csv(610_000..<612_000)
            _ = try await a.request("IMPORT BEGIN format=csv by=stream")
            try await send(a, file[..<(file.count / 2)])
            #expect(try await becomes(1), "the import's transaction is open while the file arrives")
            // Meanwhile another connection's CSV upload is buffered, and commits on its own.
            let b = try await TestClient(path: path)
            let other = try await upload(b, csv(620_000..<620_010), begin: "IMPORT BEGIN format=csv by=other")
            #expect((other["imported"] as? NSNumber)?.intValue == 10, "\(other)")
            #expect(try stored("BC-61") == "0", "nothing is visible before IMPORT COMMIT")
            try await send(a, file[(file.count / 2)...])
            let done = try await a.request("IMPORT COMMIT")
            #expect(done["committed"] as? Bool == true && (done["imported"] as? NSNumber)?.intValue == 2000, "\(done)")
            #expect(try stored("BC-61") == "2000")
            #expect(field(try await a.request("CAMERA GET BC-611999"), "camera", "address") as? String == "Số 611999, Hẻm \(611_999 % 7)")
            #expect(try await becomes(0))

            // IMPORT ABORT half-way: rolled back.
            _ = try await a.request("IMPORT BEGIN format=csv")
            let second = csv(630_000..<631_000)
            try await send(a, second[..<(second.count / 2)])
            #expect(try await becomes(1))
            #expect(try await a.request("IMPORT ABORT")["aborted"] as? Bool == true)
            #expect(try await becomes(0), "IMPORT ABORT rolls the streaming import back")
            #expect(errorCode(try await a.request("IMPORT COMMIT")) == "no_upload")

            // A file that cannot be read: the chunks after the failure are still taken, and
            // IMPORT COMMIT answers the error.
            let unreadable = try await upload(a, Array("id,lat,lon\n".utf8) + second, begin: "IMPORT BEGIN format=csv", chunk: 500)
            #expect(errorCode(unreadable) == "bad_file", "\(unreadable)")

            // A closed connection half-way: rolled back, and the slot is free for the next one.
            let d = try await TestClient(path: path)
            _ = try await d.request("IMPORT BEGIN format=csv")
            try await send(d, second[..<(second.count / 2)])
            #expect(try await becomes(1))
            await d.close()
            #expect(try await becomes(0), "a closed connection rolls the streaming import back")
            // The slot is free once the import's task has ended, a moment after its rollback.
            for _ in 0..<200 where service.streamingImportActive { try await Task.sleep(for: .milliseconds(25)) }
            #expect(!service.streamingImportActive, "the closed connection's import frees the streaming slot")
            _ = try await a.request("IMPORT BEGIN format=csv by=again")
            try await send(a, second[..<(second.count / 2)])
            #expect(try await becomes(1), "the next upload streams again")
            try await send(a, second[(second.count / 2)...])
            let again = try await a.request("IMPORT COMMIT")
            #expect((again["imported"] as? NSNumber)?.intValue == 1000, "\(again)")
        }
        #expect(try stored("BC-63") == "1000")
        #expect(try pg.query("SELECT count(*) FROM camera_changes WHERE actor IN ('stream', 'again', 'other')").scalar() == "3")
        await store.shutdown()
    }

    /// A client that uploads faster than the import reads is slowed down, not buffered without
    /// bound: with the import held up (its COPY waits for a table lock), the daemon answers the
    /// chunks that fit the import's queue and then waits; once the import goes on, every chunk
    /// is answered in order with the running byte count, and the whole file is imported.
    @Test func fastStreamingUploadWaitsForTheImport() async throws {
        let (store, index, pg) = try await writableRegistry("fast")
        var text = "id,lat,lon,address,ward\n"
        for n in 640_000..<642_000 { text += "BC-\(n),\(11.12 + Double(n % 100) * 0.0001),106.6,Số \(n),Phường Mỹ Phước\n" }
        let file = Array(text.utf8)
        let chunk = 200
        let chunks = (file.count + chunk - 1) / chunk
        #expect(chunks > 2 * 128, "more chunks than the import's queue holds")
        try await withTestServer(index: index, store: store) { path, _ in
            let a = try await TestClient(path: path)
            // Hold the import's COPY: SHARE mode conflicts with the rows it inserts.
            try pg.query("BEGIN")
            try pg.query("LOCK TABLE cameras IN SHARE MODE")
            #expect(try await a.request("IMPORT BEGIN format=csv by=fast")["ok"] as? Bool == true)
            var lines: [UInt8] = []
            for start in stride(from: 0, to: file.count, by: chunk) {
                lines += Array(("IMPORT DATA data=" + Data(file[start..<min(file.count, start + chunk)]).base64EncodedString() + "\n").utf8)
            }
            try await a.sendRaw(lines)
            var answered: [Int] = []
            func readAnswer() async throws {
                let line = try #require(try await a.readLine(within: 60))
                let r = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                #expect(r["ok"] as? Bool == true, "\(r)")
                answered.append((r["bytes"] as? NSNumber)?.intValue ?? -1)
            }
            // The queue's 128 chunks are answered; the next one waits for the import.
            for _ in 0..<128 { try await readAnswer() }
            let b = try await TestClient(path: path)
            var waits = 0
            for _ in 0..<200 {
                waits = (try await b.request("STATS")["import_waits"] as? NSNumber)?.intValue ?? -1
                if waits > 0 { break }
                try await Task.sleep(for: .milliseconds(25))
            }
            #expect(waits == 1, "one chunk waits while the import is held up")
            try await Task.sleep(for: .milliseconds(300))
            #expect((try await b.request("STATS")["import_waits"] as? NSNumber)?.intValue == 1, "and the lines after it are not read")
            try pg.query("COMMIT")
            for _ in 128..<chunks { try await readAnswer() }
            #expect(answered == (1...chunks).map { min($0 * chunk, file.count) }, "every chunk answered, in order")
            let done = try await a.request("IMPORT COMMIT")
            #expect(done["committed"] as? Bool == true && (done["imported"] as? NSNumber)?.intValue == 2000, "\(done)")
            #expect((try await b.request("STATS")["import_waits"] as? NSNumber)?.intValue ?? 0 >= 1)
        }
        #expect(try pg.query("SELECT count(*) FROM cameras WHERE id LIKE 'BC-64%'").scalar() == "2000")
        await store.shutdown()
    }

    @Test func allOrNothingImportsNone() async throws {
        let (store, index, pg) = try await writableRegistry("aon2")
        try await withTestServer(index: index, store: store) { path, _ in
            let c = try await TestClient(path: path)
            let r = try await upload(c, Array(Self.messyCSV.utf8), begin: "IMPORT BEGIN format=csv all_or_nothing=yes")
            #expect(r["committed"] as? Bool == false)
            #expect((r["imported"] as? NSNumber)?.intValue == 0)
            #expect(((r["rejected"] as? [Any])?.count ?? 0) >= 6)
            #expect(errorCode(try await c.request("CAMERA GET BC-90001")) == "not_found")
            // A clean file with all_or_nothing goes in whole.
            let clean = "id,lat,lon,address,ward\nBC-91001,11.12,106.60,Số 1,Phường Mỹ Phước\nBC-91002,11.13,106.61,Số 2,Phường Mỹ Phước\n"
            let ok = try await upload(c, Array(clean.utf8), begin: "IMPORT BEGIN format=csv all_or_nothing=yes")
            #expect((ok["imported"] as? NSNumber)?.intValue == 2)
            // A file that cannot be read at all.
            #expect(errorCode(try await upload(c, Array("{not json".utf8), begin: "IMPORT BEGIN format=geojson")) == "bad_file")
        }
        #expect(try pg.query("SELECT count(*) FROM cameras WHERE id LIKE 'BC-90%'").scalar() == "0")
        #expect(try pg.query("SELECT count(*) FROM cameras WHERE id LIKE 'BC-91%'").scalar() == "2")
        await store.shutdown()
    }

    @Test func columnMappingAndOSM() async throws {
        let (store, index, _) = try await writableRegistry("osm", demo: false)
        try await withTestServer(index: index, store: store) { path, _ in
            let c = try await TestClient(path: path)
            let csv = "ID;Latitude;Longitude;Địa chỉ;Phường\nX-1;11.10;106.60;Số 1;Phường Thới Hòa\n"
            let r = try await upload(c, Array(csv.utf8), begin: #"IMPORT BEGIN format=csv separator=";" col_id=ID col_lat=Latitude col_lon=Longitude col_address="Địa chỉ" col_ward=Phường"#)
            #expect((r["imported"] as? NSNumber)?.intValue == 1, "\(r)")
            let osm = """
                {"elements":[
                 {"type":"node","id":101,"lat":11.11,"lon":106.61,"tags":{"man_made":"surveillance","surveillance:type":"camera","camera:direction":"90-270","camera:angle":"15","height":"4 m","addr:street":"Đường NA3","addr:housenumber":"7"}},
                 {"type":"node","id":102,"lat":11.12,"lon":106.62,"tags":{"man_made":"surveillance","camera:direction":"NE"}},
                 {"type":"node","id":103,"lat":11.13,"lon":106.63,"tags":{"man_made":"surveillance","camera:direction":"0;180"}},
                 {"type":"node","id":104,"lat":11.14,"lon":106.64,"tags":{"amenity":"bench"}}
                ]}
                """
            let o = try await upload(c, Array(osm.utf8), begin: "IMPORT BEGIN format=osm-json")
            #expect((o["imported"] as? NSNumber)?.intValue == 4, "\(o)")
            let range = try await c.request("CAMERA GET OSM-101")
            #expect((field(range, "camera", "heading_deg") as? NSNumber)?.doubleValue == 180)
            #expect((field(range, "camera", "fov_deg") as? NSNumber)?.doubleValue == 180)  // the range, not camera:angle
            #expect((field(range, "camera", "mount_height_m") as? NSNumber)?.doubleValue == 4)
            #expect((field(try await c.request("CAMERA GET OSM-102"), "camera", "heading_deg") as? NSNumber)?.doubleValue == 45)
            #expect(field(try await c.request("CAMERA GET OSM-103-1"), "camera", "id") as? String == "OSM-103-1")
            #expect(field(try await c.request("CAMERA GET OSM-103-2"), "camera", "id") as? String == "OSM-103-2")
            #expect(errorCode(try await c.request("CAMERA GET OSM-104")) == "not_found")
        }
        await store.shutdown()
    }

    @Test func exportThenImportRoundTripsTheRegistry() async throws {
        let (store, index, _) = try await writableRegistry("exp")
        let (store2, index2, pg2) = try await writableRegistry("exp2", demo: false)
        for format in ["csv", "geojson"] {
            // Export page by page.
            let file: String = try await withTestServer(index: index, store: store) { path, _ in
                let c = try await TestClient(path: path)
                var text = "", cursor: String? = nil
                repeat {
                    let r = try await c.request("CAMERA EXPORT format=\(format) limit=500" + (cursor.map { " after=\($0)" } ?? ""))
                    text += r["text"] as? String ?? ""
                    cursor = r["next_cursor"] as? String
                } while cursor != nil
                return text
            }
            if format == "geojson" {
                let o = try #require(try JSONSerialization.jsonObject(with: Data(file.utf8)) as? [String: Any])
                #expect((o["features"] as? [Any])?.count == 1202)
            }
            try pg2.query("DELETE FROM camera_changes")
            try pg2.query("DELETE FROM cameras")
            let fresh = try CameraIndex(cameras: [])
            try await withTestServer(index: fresh, store: store2) { path, _ in
                let c = try await TestClient(path: path)
                let r = try await upload(c, Array(file.utf8), begin: "IMPORT BEGIN format=\(format) all_or_nothing=yes", chunk: 40_000)
                #expect((r["imported"] as? NSNumber)?.intValue == 1202, "\(format): \(r)")
            }
            let original = DemoInventory.generate().cameras
            let back = try CameraRepository.all(on: pg2)
            #expect(back.count == original.count)
            for (a, b) in zip(original, back) {
                var b2 = b
                b2.ownerID = nil
                #expect(a.id == b.id && a.lat == b.lat && a.lon == b.lon && a.heading == b.heading && a.fov == b.fov, "\(format) \(a.id)")
                #expect(a.address == b.address && a.ward == b.ward && a.schedule == b.schedule && a.status == b.status, "\(format) \(a.id)")
                #expect(a.ownerName == b.ownerName && a.ownerPhone == b.ownerPhone && a.retentionDays == b.retentionDays, "\(format) \(a.id)")
                #expect(abs(a.createdAt.timeIntervalSince(b.createdAt)) < 1e-5 && a.version == b.version, "\(format) \(a.id)")
            }
            _ = index2
        }
        await store.shutdown()
        await store2.shutdown()
    }

    @Test func cliImportAndExport() async throws {
        let (store, index, _) = try await writableRegistry("cli")
        let dir = try shortTempDirectory("ie")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.messyCSV.write(toFile: dir + "/in.csv", atomically: true, encoding: .utf8)
        try await withTestServer(index: index, store: store) { path, _ in
            let imp = try await runCLI(["import", dir + "/in.csv", "--socket", path])
            #expect(imp.status == 3, "\(imp.output)")  // some rows refused
            #expect(imp.output.contains("2 imported") && imp.output.contains("7 refused"), "\(imp.output)")
            let exp = try await runCLI(["export", "--format", "geojson", "--sectors", "--ward", "Phường Hòa Lợi", "-o", dir + "/out.geojson", "--socket", path])
            #expect(exp.status == 0, "\(exp.output)")
            let data = try #require(FileManager.default.contents(atPath: dir + "/out.geojson"))
            let o = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let features = o["features"] as? [[String: Any]] ?? []
            let points = features.filter { ($0["geometry"] as? [String: Any])?["type"] as? String == "Point" }
            let sectors = features.filter { ($0["geometry"] as? [String: Any])?["type"] as? String == "Polygon" }
            #expect(points.count == DemoInventory.generate().cameras.filter { $0.ward == "Phường Hòa Lợi" }.count + 1)
            #expect(sectors.count == points.count)
            let reg = try await runCLI(["camera", "register", "--lat", "11.15", "--lon", "106.61", "--site", "alley", "--address", "Số 1",
                                        "--ward", "Phường Mỹ Phước", "--heading", "45", "--socket", path])
            #expect(reg.status == 0 && reg.output.contains("pending"), "\(reg.output)")
            let list = try await runCLI(["camera", "list", "--status", "pending", "--site", "alley", "--socket", path])
            #expect(list.status == 0 && list.output.contains("camera"), "\(list.output)")
        }
        await store.shutdown()
    }

    @Test func cliIncidents() async throws {
        let (store, index, _) = try await writableRegistry("clinc")
        try await withTestServer(index: index, store: store) { path, _ in
            let add = try await runCLI(["incident", "add", "--case", "BC-2026-7", "--kind", "robbery", "--at", "2026-11-28T06:40+07:00",
                                        "--point", "11.1470,106.6076", "--radius", "300", "--description", "Cướp giật", "--socket", path])
            #expect(add.status == 0, "\(add.output)")
            #expect(add.output.contains("BC-00252") && add.output.contains("Cướp giật"), "\(add.output)")
            let list = try await runCLI(["incident", "list", "--case", "BC-2026-7", "--socket", path])
            #expect(list.status == 0 && list.output.contains("1 incident"), "\(list.output)")
            let get = try await runCLI(["incident", "get", "1", "--socket", path])
            #expect(get.status == 0 && get.output.contains("BC-2026-7"), "\(get.output)")
            let imp = try await runCLI(["incident", "import", sharedData.appendingPathComponent("sf-robbery-2019.csv").path, "--socket", path])
            #expect(imp.status == 0 && imp.output.contains("951 incidents imported"), "\(imp.output)")
            let bad = try await runCLI(["incident", "add", "--case", "X", "--kind", "theft", "--at", "2026-11-28T06:40", "--point", "11.1,106.6", "--socket", path])
            #expect(bad.status != 0 && bad.output.contains("time_without_offset"), "\(bad.output)")
        }
        await store.shutdown()
    }
}
