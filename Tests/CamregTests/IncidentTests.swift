import ControlProtocol
import ControlServer
import Foundation
import Geo
import Postgres
import Registry
import RegistryStore
import Testing

/// Uploads a file through `INCIDENT IMPORT BEGIN/DATA/COMMIT`; returns the COMMIT reply (or the
/// first error).
func incidentUpload(_ client: TestClient, _ data: [UInt8], begin: String, chunk: Int = 30_000) async throws -> [String: Any] {
    let b = try await client.request(begin)
    guard b["ok"] as? Bool == true, let token = b["upload"] as? String else { return b }
    var i = 0
    while i < data.count {
        let part = Data(data[i..<min(i + chunk, data.count)])
        let r = try await client.request("INCIDENT IMPORT DATA upload=\(token) data=" + part.base64EncodedString())
        guard r["ok"] as? Bool == true else { return r }
        i += chunk
    }
    return try await client.request("INCIDENT IMPORT COMMIT upload=\(token)")
}

/// Creates PostGIS in a test database, one database at a time (parallel tests).
actor IncidentPostGIS {
    static let shared = IncidentPostGIS()
    func enable(on c: PostgresConnection) throws {
        try c.query("CREATE EXTENSION IF NOT EXISTS postgis")
    }
}

private func number(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue }

private func linkIDs(_ incident: Any?) -> [String] {
    ((incident as? [String: Any])?["cameras"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
}

@Suite("Incidents")
struct IncidentTests {
    /// A searchable demo camera to put incidents next to.
    static func anchor(_ index: CameraIndex) -> Camera {
        index.list(after: nil, limit: 1) { $0.status == .active }.first!
    }

    @Test func addPointLinePolygonAndGet() async throws {
        let (store, index, _) = try await writableRegistry("inc_add")
        let cam = Self.anchor(index)
        try await withTestServer(index: index, store: store) { path, service in
            let c = try await TestClient(path: path)
            // A point 20 m north of the camera.
            let p = Geodesic.wgs84.direct(lat: cam.lat, lon: cam.lon, azimuth: 0, distance: 20)
            let add = try await c.request(#"INCIDENT ADD case=BC-2024-001 kind=Robbery at=2024-05-01T21:30+07:00 point=\#(p.lat),\#(p.lon) radius=250 description="Cướp giật điện thoại""#)
            #expect(add["ok"] as? Bool == true, "\(add)")
            let inc = try #require(add["incident"] as? [String: Any])
            let id = try #require((inc["id"] as? NSNumber)?.int64Value)
            #expect(inc["kind"] as? String == "robbery")
            #expect(inc["from"] as? String == "2024-05-01T21:30:00+07:00")
            #expect(inc["instant"] as? Bool == true)
            #expect(field(inc, "geometry", "type") as? String == "point")
            // Links of a point incident = NEAR within the radius, same order and distances.
            let near = try service.index.near(lat: p.lat, lon: p.lon, radius: 250, limit: .max)
            #expect(!near.isEmpty)
            #expect(linkIDs(inc) == near.map(\.camera.id))
            let links = inc["cameras"] as? [[String: Any]] ?? []
            for (l, h) in zip(links, near) {
                #expect(abs((number(l["distance_m"]) ?? -1) - h.distance) < 0.001)
                #expect(l["sees"] as? Bool == (try h.camera.sector().sees(lat: p.lat, lon: p.lon)))
                #expect(l["footage"] as? String == h.camera.footage(during: IncidentWindow(instant: IncidentTime.parse("2024-05-01T21:30+07:00")!), now: Date()).state.rawValue)
            }
            // GET (from PostgreSQL) returns the same links.
            let got = try await c.request("INCIDENT GET \(id)")
            #expect(got["ok"] as? Bool == true, "\(got)")
            #expect(linkIDs(got["incident"]) == near.map(\.camera.id))
            #expect(field(got, "incident", "description") as? String == "Cướp giật điện thoại")
            #expect(field(got, "incident", "camera_count") as? Int == near.count)

            // A line through the camera: the camera is at distance ~0 and is linked.
            let a = Geodesic.wgs84.direct(lat: cam.lat, lon: cam.lon, azimuth: 270, distance: 300)
            let b = Geodesic.wgs84.direct(lat: cam.lat, lon: cam.lon, azimuth: 90, distance: 300)
            let line = try await c.request(#"INCIDENT ADD case=BC-2024-002 kind=chase from=2024-05-02T10:00+07:00 to=2024-05-02T10:20+07:00 wkt="LINESTRING(\#(a.lon) \#(a.lat), \#(b.lon) \#(b.lat))" radius=100"#)
            #expect(line["ok"] as? Bool == true, "\(line)")
            #expect(field(line, "incident", "geometry", "type") as? String == "line")
            let lineLinks = field(line, "incident", "cameras") as? [[String: Any]] ?? []
            let camLink = lineLinks.first { $0["id"] as? String == cam.id }
            #expect(camLink != nil)
            #expect((number(camLink?["distance_m"]) ?? 1) < 0.01)
            // Links equal a brute-force scan with the shape's distance.
            let lineShape = try IncidentShape.parse(wkt: "LINESTRING(\(a.lon) \(a.lat), \(b.lon) \(b.lat))")
            let all = index.list(after: nil, limit: .max) { $0.status != .retired }
            let expectLine = all.filter { lineShape.distance(toLat: $0.lat, lon: $0.lon) <= 100 }.map(\.id).sorted()
            #expect(linkIDs(line["incident"]).sorted() == expectLine)

            // A polygon around the camera: the camera is inside (distance 0, sees).
            let ring = [45.0, 135, 225, 315].map { Geodesic.wgs84.direct(lat: cam.lat, lon: cam.lon, azimuth: $0, distance: 80) }
            let wkt = "POLYGON((" + (ring + [ring[0]]).map { "\($0.lon) \($0.lat)" }.joined(separator: ", ") + "))"
            let poly = try await c.request(#"INCIDENT ADD case=BC-2024-003 kind=brawl at=2024-05-03T23:00Z wkt="\#(wkt)""#)
            #expect(poly["ok"] as? Bool == true, "\(poly)")
            let polyLinks = field(poly, "incident", "cameras") as? [[String: Any]] ?? []
            let inside = polyLinks.first { $0["id"] as? String == cam.id }
            #expect(number(inside?["distance_m"]) == 0)
            #expect(inside?["sees"] as? Bool == true)
            let polyShape = try IncidentShape.parse(wkt: wkt)
            let expectPoly = all.filter { polyShape.distance(toLat: $0.lat, lon: $0.lon) <= 200 }.map(\.id).sorted()
            #expect(linkIDs(poly["incident"]).sorted() == expectPoly)
            let polyID = try #require((field(poly, "incident", "id") as? NSNumber)?.intValue)
            let polyGot = try await c.request("INCIDENT GET \(polyID)")
            #expect(linkIDs(polyGot["incident"]).sorted() == expectPoly)

            #expect(errorCode(try await c.request("INCIDENT GET 999999")) == "not_found")
        }
    }

    @Test func inputErrorsHaveDistinctCodes() async throws {
        let (store, index, pg) = try await writableRegistry("inc_err")
        try await withTestServer(index: index, store: store) { path, _ in
            let c = try await TestClient(path: path)
            let pt = "point=11.1481,106.6049"
            let cases: [(String, String)] = [
                ("INCIDENT ADD case=X kind=k at=2024-05-01T21:30 \(pt)", "time_without_offset"),
                ("INCIDENT ADD case=X kind=k at=2024-05-01T21:30:00 \(pt)", "time_without_offset"),
                ("INCIDENT ADD case=X kind=k from=2024-05-01T21:30+07:00 to=2024-05-01T22:30 \(pt)", "time_without_offset"),
                ("INCIDENT ADD case=X kind=k at=yesterday \(pt)", "invalid_value"),
                ("INCIDENT ADD case=X kind=k at=2024-02-30T10:00Z \(pt)", "invalid_value"),
                ("INCIDENT ADD case=X kind=k from=2024-05-02T10:00+07:00 to=2024-05-01T10:00+07:00 \(pt)", "bad_time_window"),
                ("INCIDENT ADD case=X kind=k from=2024-05-01T00:00Z to=2024-05-08T00:00:01Z \(pt)", "time_window_too_long"),
                (#"INCIDENT ADD case=X kind=k at=2024-05-01T10:00Z wkt="POLYGON((106.60 11.14, 106.61 11.15, 106.61 11.14, 106.60 11.15, 106.60 11.14))""#, "invalid_geometry"),
                (#"INCIDENT ADD case=X kind=k at=2024-05-01T10:00Z wkt="POLYGON EMPTY""#, "invalid_geometry"),
                (#"INCIDENT ADD case=X kind=k at=2024-05-01T10:00Z wkt="POLYGON((106.6 11.1, 106.7 11.1""#, "invalid_geometry"),
                (#"INCIDENT ADD case=X kind=k at=2024-05-01T10:00Z wkt="LINESTRING(106.6 11.1, 106.6 11.1)""#, "invalid_geometry"),
                (#"INCIDENT ADD case=X kind=k at=2024-05-01T10:00Z wkt="POINT(11.1 206.6)""#, "invalid_geometry"),
                (#"INCIDENT ADD case=X kind=k at=2024-05-01T10:00Z wkt="MULTIPOINT((106.6 11.1))""#, "invalid_geometry"),
                ("INCIDENT ADD case=X kind=k \(pt)", "missing_option"),
                ("INCIDENT ADD case=X kind=k at=2024-05-01T10:00Z", "missing_option"),
                ("INCIDENT ADD case=X kind=k at=2024-05-01T10:00Z from=2024-05-01T10:00Z \(pt)", "invalid_value"),
                ("INCIDENT ADD case=X kind=k at=2024-05-01T10:00Z point=91,10", "out_of_range"),
                ("INCIDENT ADD case=X kind=k at=2024-05-01T10:00Z \(pt) radius=0", "radius_not_positive"),
                ("INCIDENT LIST from=2024-05-02T00:00Z to=2024-05-01T00:00Z", "bad_time_window"),
                ("INCIDENTS NEAR 11.1 106.6 radius=100 from=2024-05-01", "invalid_value"),
                ("INCIDENTS NEAR 11.1 106.6 radius=100 to=2024-05-01T10:00", "time_without_offset"),
                ("INCIDENTS FOR CAMERA NO-SUCH", "not_found"),
            ]
            for (line, code) in cases {
                let r = try await c.request(line)
                #expect(errorCode(r) == code, "\(line) → \(r)")
            }
            // GEOS's reason is in the message.
            let bowtie = try await c.request(#"INCIDENT ADD case=X kind=k at=2024-05-01T10:00Z wkt="POLYGON((106.60 11.14, 106.61 11.15, 106.61 11.14, 106.60 11.15, 106.60 11.14))""#)
            let message = (bowtie["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.contains("Self-intersection"), "\(message)")
            #expect((bowtie["error"] as? [String: Any])?["field"] as? String == "wkt")
            // Exactly 7 days is allowed.
            let week = try await c.request("INCIDENT ADD case=X kind=k from=2024-05-01T00:00Z to=2024-05-08T00:00Z \(pt)")
            #expect(week["ok"] as? Bool == true, "\(week)")
            // Nothing bad was stored.
            #expect(try pg.query("SELECT count(*) FROM incidents").scalar() == "1")
        }
    }

    @Test func listNearAndForCamera() async throws {
        let (store, index, pg) = try await writableRegistry("inc_list")
        let cam = Self.anchor(index)
        let ids = try await withTestServer(index: index, store: store) { path, _ -> [Int] in
            let c = try await TestClient(path: path)
            var ids: [Int] = []
            // 12 incidents: 3 cases, 2 kinds, a day apart, marching east of the camera 50 m apart.
            for k in 0..<12 {
                let p = Geodesic.wgs84.direct(lat: cam.lat, lon: cam.lon, azimuth: 90, distance: Double(k) * 50)
                let day = String(format: "%02d", k + 1)
                let r = try await c.request("INCIDENT ADD case=C\(k % 3) kind=\(k % 2 == 0 ? "theft" : "robbery") at=2024-06-\(day)T12:00+07:00 point=\(p.lat),\(p.lon) radius=60")
                #expect(r["ok"] as? Bool == true, "\(r)")
                ids.append((field(r, "incident", "id") as? NSNumber)?.intValue ?? 0)
            }
            func listIDs(_ line: String) async throws -> ([Int], Int?) {
                let r = try await c.request(line)
                #expect(r["ok"] as? Bool == true, "\(line) → \(r)")
                let items = (r["incidents"] as? [[String: Any]] ?? []).compactMap { ($0["id"] as? NSNumber)?.intValue }
                return (items, (r["next_cursor"] as? NSNumber)?.intValue)
            }
            #expect(try await listIDs("INCIDENT LIST").0 == ids)
            #expect(try await listIDs("INCIDENT LIST case=C1").0 == [ids[1], ids[4], ids[7], ids[10]])
            #expect(try await listIDs("INCIDENT LIST kind=THEFT case=C0").0 == [ids[0], ids[6]])
            #expect(try await listIDs("INCIDENT LIST from=2024-06-03T00:00+07:00 to=2024-06-05T23:59+07:00").0 == [ids[2], ids[3], ids[4]])
            // Area: a box around the first 3 points.
            let east = Geodesic.wgs84.direct(lat: cam.lat, lon: cam.lon, azimuth: 90, distance: 120)
            let box = "\(cam.lat - 0.001),\(cam.lon - 0.001),\(cam.lat + 0.001),\(east.lon)"
            #expect(try await listIDs("INCIDENT LIST bbox=\(box)").0 == [ids[0], ids[1], ids[2]])
            // Paging.
            var seen: [Int] = []
            var cursor: Int?
            repeat {
                let (page, next) = try await listIDs("INCIDENT LIST limit=5" + (cursor.map { " after=\($0)" } ?? ""))
                #expect(page.count <= 5)
                seen += page
                cursor = next
            } while cursor != nil
            #expect(seen == ids)

            // NEAR: within 120 m of the camera → the first 3, nearest first, with distances.
            let near = try await c.request("INCIDENTS NEAR \(cam.lat) \(cam.lon) radius=120")
            let nearIDs = (near["incidents"] as? [[String: Any]] ?? []).compactMap { ($0["id"] as? NSNumber)?.intValue }
            #expect(nearIDs == [ids[0], ids[1], ids[2]], "\(near)")
            let d = (near["incidents"] as? [[String: Any]] ?? []).compactMap { number($0["distance_m"]) }
            #expect(d.count == 3 && abs(d[1] - 50) < 0.01 && abs(d[2] - 100) < 0.01)
            let nearTimed = try await c.request("INCIDENTS NEAR \(cam.lat) \(cam.lon) radius=120 from=2024-06-02T00:00+07:00")
            #expect((nearTimed["incidents"] as? [[String: Any]])?.count == 2)

            // FOR CAMERA: incidents within 60 m of the camera's position link it (k = 0, 1).
            let forCam = try await c.request("INCIDENTS FOR CAMERA \(cam.id)")
            #expect(forCam["ok"] as? Bool == true, "\(forCam)")
            let forIDs = (forCam["incidents"] as? [[String: Any]] ?? []).compactMap { ($0["id"] as? NSNumber)?.intValue }
            #expect(forIDs.contains(ids[0]) && forIDs.contains(ids[1]) && !forIDs.contains(ids[2]))
            let first = (forCam["incidents"] as? [[String: Any]])?.first { ($0["id"] as? NSNumber)?.intValue == ids[1] }
            #expect(abs((number(field(first ?? [:], "link", "distance_m")) ?? 0) - 50) < 0.01)
            let forTimed = try await c.request("INCIDENTS FOR CAMERA \(cam.id) from=2024-06-02T00:00+07:00 to=2024-06-30T00:00+07:00")
            let forTimedIDs = (forTimed["incidents"] as? [[String: Any]] ?? []).compactMap { ($0["id"] as? NSNumber)?.intValue }
            #expect(forTimedIDs.contains(ids[1]) && !forTimedIDs.contains(ids[0]))
            return ids
        }
        // A new service over the same database (a restarted daemon) loads the incident index
        // from PostgreSQL on first use.
        let again = try CameraIndex(cameras: try CameraRepository.all(on: pg))
        try await withTestServer(index: again, store: store) { path, _ in
            let c = try await TestClient(path: path)
            let near = try await c.request("INCIDENTS NEAR \(cam.lat) \(cam.lon) radius=120")
            let nearIDs = (near["incidents"] as? [[String: Any]] ?? []).compactMap { ($0["id"] as? NSNumber)?.intValue }
            #expect(nearIDs == Array(ids.prefix(3)), "\(near)")
            let list = try await c.request("INCIDENT LIST limit=1000")
            #expect((list["incidents"] as? [[String: Any]])?.count == 12)
        }
    }

    @Test func importReportsBadRowsAndAllOrNothing() async throws {
        let (store, index, pg) = try await writableRegistry("inc_imp")
        try await withTestServer(index: index, store: store) { path, _ in
            let c = try await TestClient(path: path)
            let csv = """
                case_id,kind,from,to,lat,lon,description
                A-1,theft,2024-01-01T10:00+07:00,2024-01-01T11:00+07:00,11.1481,106.6049,ok
                A-2,theft,2024-01-01T10:00,2024-01-01T11:00+07:00,11.1481,106.6049,no offset
                A-3,theft,2024-01-02T10:00+07:00,2024-01-01T11:00+07:00,11.1481,106.6049,backwards
                A-4,theft,2024-01-01T10:00+07:00,2024-01-11T11:00+07:00,11.1481,106.6049,too long
                A-5,,2024-01-01T10:00+07:00,2024-01-01T11:00+07:00,11.1481,106.6049,no kind
                A-6,theft,2024-01-01T10:00+07:00,2024-01-01T11:00+07:00,abc,106.6049,bad lat
                A-7,theft,2024-01-01T10:00+07:00,2024-01-01T11:00+07:00,11.1482,106.6050,ok

                """
            let nothing = try await incidentUpload(c, Array(csv.utf8), begin: "INCIDENT IMPORT BEGIN format=csv all_or_nothing=yes")
            #expect(nothing["committed"] as? Bool == false, "\(nothing)")
            #expect(try pg.query("SELECT count(*) FROM incidents").scalar() == "0")
            let r = try await incidentUpload(c, Array(csv.utf8), begin: "INCIDENT IMPORT BEGIN format=csv")
            #expect(r["committed"] as? Bool == true, "\(r)")
            #expect(r["imported"] as? Int == 2)
            let rejected = r["rejected"] as? [[String: Any]] ?? []
            let summary = rejected.map { "\($0["number"] as? Int ?? 0):\($0["field"] as? String ?? ""):\($0["code"] as? String ?? "")" }
            #expect(summary == ["3:from:time_without_offset", "4:from:bad_time_window", "5:to:time_window_too_long",
                                "6:kind:missing_option", "7:lat:invalid_value"], "\(rejected)")

            // GeoJSON: a line and a polygon; a bow-tie polygon is refused with GEOS's reason.
            let geojson = """
                {"type":"FeatureCollection","features":[
                 {"type":"Feature","properties":{"case":"G-1","kind":"chase","time":"2024-03-01T08:00Z"},
                  "geometry":{"type":"LineString","coordinates":[[106.60,11.14],[106.61,11.15]]}},
                 {"type":"Feature","properties":{"case":"G-2","kind":"brawl","from":"2024-03-01T08:00Z","to":"2024-03-01T09:00Z"},
                  "geometry":{"type":"Polygon","coordinates":[[[106.60,11.14],[106.61,11.15],[106.61,11.14],[106.60,11.15],[106.60,11.14]]]}},
                 {"type":"Feature","properties":{"case":"G-3","kind":"brawl","time":"2024-03-01T08:00Z"},
                  "geometry":{"type":"Polygon","coordinates":[[[106.60,11.14],[106.61,11.14],[106.61,11.15],[106.60,11.14]]]}}
                ]}
                """
            let g = try await incidentUpload(c, Array(geojson.utf8), begin: "INCIDENT IMPORT BEGIN format=geojson radius=50")
            #expect(g["imported"] as? Int == 2, "\(g)")
            let gr = (g["rejected"] as? [[String: Any]])?.first
            #expect(gr?["number"] as? Int == 2 && gr?["code"] as? String == "invalid_geometry")
            let grReason = gr?["reason"] as? String ?? ""
            #expect(grReason.contains("Self-intersection"), "\(grReason)")
            let list = try await c.request("INCIDENT LIST case=G-1")
            #expect(field((list["incidents"] as? [[String: Any]])?.first ?? [:], "geometry", "type") as? String == "line")

            // Unknown token, bad file.
            #expect(errorCode(try await c.request("INCIDENT IMPORT COMMIT upload=abc")) == "no_upload")
            let bad = try await incidentUpload(c, Array("x,y\n1,2\n".utf8), begin: "INCIDENT IMPORT BEGIN format=csv")
            #expect(errorCode(bad) == "bad_file")
        }
    }

    /// The SF oracle: 2,000 seeded random cameras over San Francisco, the 951 real 2019 robbery
    /// incidents imported through the socket, and every incident's linked cameras checked against
    /// PostGIS `ST_DWithin(camera::geography, incident::geography, radius)`, distances within 1 cm.
    @Test func sanFranciscoRobberiesAgreeWithPostGIS() async throws {
        let (store, _, pg) = try await writableRegistry("inc_sf", demo: false)
        var rng = SeededRandom(seed: 415)
        let now = Date()
        var cameras: [Camera] = []
        for k in 1...2000 {
            let lat = Double.random(in: 37.705...37.832, using: &rng)
            let lon = Double.random(in: (-122.512)...(-122.370), using: &rng)
            let heading: Double? = k % 5 == 0 ? nil : Double.random(in: 0..<360, using: &rng)
            cameras.append(Camera(id: String(format: "SF-%05d", k), lat: lat, lon: lon, siteKind: .street, address: "SF \(k)", ward: "SF",
                                  heading: heading, fov: heading == nil ? 360 : 90, range: Double.random(in: 20...120, using: &rng),
                                  mountHeight: nil, ownerKind: .business, ownerName: nil, ownerPhone: nil,
                                  schedule: .always, retentionDays: 30, status: k % 40 == 0 ? .retired : .active,
                                  createdAt: now, updatedAt: now))
        }
        try CameraRepository.copyInsert(cameras, on: pg)
        let index = try CameraIndex(cameras: cameras)
        let csv = try Data(contentsOf: sharedData.appendingPathComponent("sf-robbery-2019.csv"))
        let radius = 300.0
        let probes = (0..<25).map { _ in
            (Double.random(in: 37.72...37.80, using: &rng), Double.random(in: (-122.50)...(-122.38), using: &rng))
        }

        try await withTestServer(index: index, store: store) { path, _ in
            let c = try await TestClient(path: path)
            let r = try await incidentUpload(c, Array(csv), begin: "INCIDENT IMPORT BEGIN format=csv radius=\(Int(radius))")
            #expect(r["committed"] as? Bool == true, "\(r)")
            #expect(r["rows"] as? Int == 951)
            #expect(r["imported"] as? Int == 951, "\(String(describing: r["rejected"]))")
            #expect(r["rejected_count"] as? Int == 0)

            // Every incident's links against PostGIS.
            try await IncidentPostGIS.shared.enable(on: pg)
            var ours: [Int64: [String: Double]] = [:]
            for row in try pg.query("SELECT incident_id, camera_id, distance_m FROM incident_cameras").rows {
                ours[Int64(row[0]!)!, default: [:]][row[1]!] = Double(row[2]!)!
            }
            var theirs: [Int64: [String: Double]] = [:]
            let oracle = try pg.query("""
                WITH i AS (SELECT id, radius_m, ST_GeomFromText(geometry_wkt, 4326)::geography AS g FROM incidents),
                     c AS (SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography AS g FROM cameras WHERE status <> 'retired')
                SELECT i.id, c.id, ST_Distance(c.g, i.g), i.radius_m FROM i JOIN c ON ST_DWithin(c.g, i.g, i.radius_m + 0.05)
                """)
            var incidentsWithLinks = 0
            for row in oracle.rows {
                let d = Double(row[2]!)!
                if d <= radius { theirs[Int64(row[0]!)!, default: [:]][row[1]!] = d }
                // A camera within 1 cm of the boundary may fall on either side: accept both.
                if abs(d - radius) <= 0.01, let mine = ours[Int64(row[0]!)!]?[row[1]!] {
                    theirs[Int64(row[0]!)!, default: [:]][row[1]!] = mine
                }
            }
            let ids = try pg.query("SELECT id FROM incidents ORDER BY id").rows.map { Int64($0[0]!)! }
            #expect(ids.count == 951)
            var mismatches = 0
            for id in ids {
                let a = ours[id] ?? [:], b = theirs[id] ?? [:]
                if !a.isEmpty { incidentsWithLinks += 1 }
                if Set(a.keys) != Set(b.keys) {
                    mismatches += 1
                    if mismatches <= 5 { Issue.record("incident \(id): ours \(a.keys.sorted()) PostGIS \(b.keys.sorted())") }
                    continue
                }
                for (cam, d) in a {
                    #expect(abs(d - b[cam]!) <= 0.01, "incident \(id) camera \(cam): \(d) vs PostGIS \(b[cam]!)")
                }
            }
            #expect(mismatches == 0)
            #expect(incidentsWithLinks > 800, "most incidents should have cameras within \(radius) m")

            // GET over the socket gives the stored links.
            for id in ids.prefix(20) {
                let got = try await c.request("INCIDENT GET \(id)")
                #expect(Set(linkIDs(got["incident"])) == Set((ours[id] ?? [:]).keys), "\(id)")
                #expect(field(got, "incident", "kind") as? String == "personal robbery")
            }
            let first = try await c.request("INCIDENT LIST case=24103841")
            let item = (first["incidents"] as? [[String: Any]])?.first ?? [:]
            #expect(item["from"] as? String == "2019-01-02T02:50:00+07:00")
            #expect(abs((number(field(item, "geometry", "lat")) ?? 0) - 37.788721) < 1e-9)

            // INCIDENTS NEAR against PostGIS at 25 random points.
            for (lat, lon) in probes {
                let near = try await c.request("INCIDENTS NEAR \(lat) \(lon) radius=400 limit=10000")
                let got = (near["incidents"] as? [[String: Any]] ?? []).compactMap { ($0["id"] as? NSNumber)?.int64Value }
                let want = try pg.query("""
                    SELECT id, ST_Distance(ST_GeomFromText(geometry_wkt, 4326)::geography, ST_SetSRID(ST_MakePoint($2::float8, $1::float8), 4326)::geography) AS d
                    FROM incidents
                    WHERE ST_DWithin(ST_GeomFromText(geometry_wkt, 4326)::geography, ST_SetSRID(ST_MakePoint($2::float8, $1::float8), 4326)::geography, 400)
                    ORDER BY d, id
                    """, [String(lat), String(lon)]).rows.map { Int64($0[0]!)! }
                #expect(Set(got) == Set(want), "NEAR \(lat) \(lon)")
            }
        }
    }
}
