import ControlProtocol
import Foundation
import Geo
import Registry
import Testing

/// A hand-built street corner: cameras placed around a scene with known headings, schedules
/// and retention, so that `sees`, footage and ranking can be checked by hand.
enum Scene {
    static let lat = 11.1470, lon = 106.6076
    static func camera(_ id: String, bearingFromScene: Double, distance: Double, heading: Double?, fov: Double = 90,
                       range: Double = 60, schedule: RecordingSchedule = .always, retention: Int = 30,
                       status: CameraStatus = .active) -> Camera {
        let p = Geodesic.wgs84.direct(lat: lat, lon: lon, azimuth: bearingFromScene, distance: distance)
        return Camera(id: id, lat: p.lat, lon: p.lon, siteKind: .intersection, address: "Số 1, Đường NA3", ward: "Phường Mỹ Phước",
                      heading: heading, fov: fov, range: range, mountHeight: 3, ownerKind: .household, ownerName: "Chủ \(id)",
                      ownerPhone: "0912345678", schedule: schedule, retentionDays: retention, status: status,
                      createdAt: Date(timeIntervalSince1970: 1_600_000_000), updatedAt: Date(timeIntervalSince1970: 1_600_000_000))
    }

    /// A is 40 m north facing south (sees the scene), B is 30 m east facing east (away), C is a
    /// 360° camera 50 m west, D faces the scene but records only 18:00–06:00, E sees it and keeps
    /// footage 2 days, F is retired facing it, G is 200 m south (too far for its 60 m range).
    static let cameras: [Camera] = [
        camera("S-A", bearingFromScene: 0, distance: 40, heading: 180),
        camera("S-B", bearingFromScene: 90, distance: 30, heading: 90),
        camera("S-C", bearingFromScene: 270, distance: 50, heading: nil, fov: 360),
        camera("S-D", bearingFromScene: 180, distance: 20, heading: 0, schedule: .daily(start: 18 * 60, end: 6 * 60)),
        camera("S-E", bearingFromScene: 45, distance: 25, heading: 225, retention: 2),
        camera("S-F", bearingFromScene: 135, distance: 10, heading: 315, status: .retired),
        camera("S-G", bearingFromScene: 180, distance: 200, heading: 0),
    ]
}

@Suite("Investigator search over the socket: field of view, footage, ranking")
struct InvestigatorSearchTests {
    func ids(_ o: [String: Any]) -> [String] {
        (o["cameras"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
    }

    func byID(_ o: [String: Any]) -> [String: [String: Any]] {
        Dictionary(uniqueKeysWithValues: (o["cameras"] as? [[String: Any]] ?? []).map { ($0["id"] as! String, $0) })
    }

    /// An incident time in local (+07:00) form, `daysAgo` days before now, at `hour`:`minute` local.
    func localTime(daysAgo: Int, hour: Int, minute: Int = 0) -> String {
        let local = Date().addingTimeInterval(Double(-daysAgo) * 86_400 + 7 * 3600)
        let day = ISO8601Text.format(local).prefix(10)
        return "\(day)T\(String(format: "%02d:%02d", hour, minute))+07:00"
    }

    @Test func seesFootageAndUrgency() async throws {
        try await withTestServer(index: try CameraIndex(cameras: Scene.cameras)) { path, _ in
            let c = try await TestClient(path: path)
            // Daytime, 1 day ago: D does not record then; E's 2-day retention is the most urgent.
            let day = try await c.request("NEAR \(Scene.lat) \(Scene.lon) radius=300 at=\(localTime(daysAgo: 1, hour: 10))")
            let h = byID(day)
            #expect(Set(h.keys) == ["S-A", "S-B", "S-C", "S-D", "S-E", "S-G"])  // the retired one is never returned
            #expect(h["S-A"]?["sees"] as? Bool == true)
            #expect(h["S-B"]?["sees"] as? Bool == false)
            #expect(h["S-C"]?["sees"] as? Bool == true)
            #expect(h["S-D"]?["sees"] as? Bool == true)
            #expect(h["S-E"]?["sees"] as? Bool == true)
            #expect(h["S-G"]?["sees"] as? Bool == false)
            #expect(h["S-A"]?["footage"] as? String == "available")
            #expect(h["S-D"]?["footage"] as? String == "not_recording")
            #expect(h["S-E"]?["footage"] as? String == "available")
            #expect(abs(((h["S-A"]?["bearing_deg"] as? NSNumber)?.doubleValue ?? 0) - 180) < 0.5)
            let expiresA = try #require(h["S-A"]?["expires_at"] as? String)
            let incident = try #require(IncidentTime.parse(localTime(daysAgo: 1, hour: 10)))
            #expect(expiresA == ISO8601Text.format(incident.addingTimeInterval(30 * 86_400)))
            #expect(h["S-A"]?["owner_phone"] as? String == "0912345678")

            let urgent = try await c.request("NEAR \(Scene.lat) \(Scene.lon) radius=300 at=\(localTime(daysAgo: 1, hour: 10)) sees=only order=urgency")
            #expect(ids(urgent) == ["S-E", "S-A", "S-C", "S-D"])  // E expires first, A and C (same expiry) by distance, D not recording

            // At night D records; 3 days ago E's footage is gone.
            let night = byID(try await c.request("NEAR \(Scene.lat) \(Scene.lon) radius=300 at=\(localTime(daysAgo: 3, hour: 23))"))
            #expect(night["S-D"]?["footage"] as? String == "available")
            #expect(night["S-E"]?["footage"] as? String == "expired")
            // 05:59 local is inside 18:00–06:00, 06:00 is not.
            let edge1 = byID(try await c.request("NEAR \(Scene.lat) \(Scene.lon) radius=30 at=\(localTime(daysAgo: 2, hour: 5, minute: 59))"))
            let edge2 = byID(try await c.request("NEAR \(Scene.lat) \(Scene.lon) radius=30 at=\(localTime(daysAgo: 2, hour: 6))"))
            #expect(edge1["S-D"]?["footage"] as? String == "available")
            #expect(edge2["S-D"]?["footage"] as? String == "not_recording")
            // A window: from 05:00 to 07:00 local the camera recorded for part of it.
            let win = byID(try await c.request("NEAR \(Scene.lat) \(Scene.lon) radius=30 from=\(localTime(daysAgo: 2, hour: 5)) to=\(localTime(daysAgo: 2, hour: 7))"))
            #expect(win["S-D"]?["footage"] as? String == "available")
            // No time: footage unknown.
            #expect(byID(try await c.request("NEAR \(Scene.lat) \(Scene.lon) radius=30"))["S-D"]?["footage"] as? String == "unknown")
        }
    }

    /// `fields=`: each hit holds exactly the members asked for (plus `id`), with the values of
    /// the full answer; an unknown member is refused by name.
    @Test func fieldsProjection() async throws {
        try await withTestServer(index: try CameraIndex(cameras: Scene.cameras)) { path, _ in
            let c = try await TestClient(path: path)
            let at = localTime(daysAgo: 1, hour: 10)
            for query in ["NEAR \(Scene.lat) \(Scene.lon) radius=300", "NEAREST \(Scene.lat) \(Scene.lon) k=4",
                          "ALONG route=\"\(Scene.lat),\(Scene.lon - 0.001);\(Scene.lat),\(Scene.lon + 0.001)\" width=100",
                          "WITHIN polygon=\"POLYGON((106.606 11.146, 106.609 11.146, 106.609 11.148, 106.606 11.148, 106.606 11.146))\""] {
                let full = try await c.request("\(query) at=\(at)")
                let slim = try await c.request("\(query) at=\(at) fields=distance_m,sees,footage,ward")
                #expect(ids(slim) == ids(full) && !ids(full).isEmpty, "\(query)")
                let fullByID = byID(full)
                for hit in slim["cameras"] as? [[String: Any]] ?? [] {
                    #expect(Set(hit.keys) == ["id", "distance_m", "sees", "footage", "ward"], "\(query): \(hit.keys)")
                    let id = hit["id"] as! String
                    for k in ["distance_m", "sees", "footage", "ward"] {
                        #expect("\(hit[k]!)" == "\(fullByID[id]?[k] ?? "missing")", "\(query) \(id) \(k)")
                    }
                }
                // Every member by name gives the full answer.
                let named = try await c.request("\(query) at=\(at) fields=\(HitFields.names.joined(separator: ","))")
                #expect(String(decoding: try JSONSerialization.data(withJSONObject: named, options: .sortedKeys), as: UTF8.self)
                        == String(decoding: try JSONSerialization.data(withJSONObject: full, options: .sortedKeys), as: UTF8.self), "\(query)")
            }
            let bad = try await c.request("NEAR \(Scene.lat) \(Scene.lon) radius=300 fields=id,phone")
            let err = try #require(bad["error"] as? [String: Any])
            #expect(err["code"] as? String == "invalid_value" && err["field"] as? String == "fields")
            #expect((err["message"] as? String ?? "").contains("phone"))
        }
    }

    @Test func nearestAlongWithin() async throws {
        try await withTestServer(index: try CameraIndex(cameras: Scene.cameras)) { path, _ in
            let c = try await TestClient(path: path)
            #expect(ids(try await c.request("NEAREST \(Scene.lat) \(Scene.lon) k=3")) == ["S-D", "S-E", "S-B"])
            #expect(ids(try await c.request("NEAREST \(Scene.lat) \(Scene.lon) k=100")).count == 6)
            #expect(ids(try await c.request("NEAREST \(Scene.lat) \(Scene.lon) k=5 max=35")) == ["S-D", "S-E", "S-B"])
            // From far away: the two closest by brute force.
            let far = Scene.cameras.filter { $0.status != .retired }
                .sorted { Geodesic.wgs84.distance(lat1: 0, lon1: 0, lat2: $0.lat, lon2: $0.lon) < Geodesic.wgs84.distance(lat1: 0, lon1: 0, lat2: $1.lat, lon2: $1.lon) }
            let farIDs = ids(try await c.request("NEAREST 0 0 k=2"))
            #expect(farIDs == far.prefix(2).map(\.id))

            // A route from 100 m west to 100 m east of the scene, 5 minutes apart.
            let w = Geodesic.wgs84.direct(lat: Scene.lat, lon: Scene.lon, azimuth: 270, distance: 100)
            let e = Geodesic.wgs84.direct(lat: Scene.lat, lon: Scene.lon, azimuth: 90, distance: 100)
            let t0 = localTime(daysAgo: 1, hour: 10), t1 = localTime(daysAgo: 1, hour: 10, minute: 5)
            let along = try await c.request("ALONG route=\"\(w.lat),\(w.lon);\(e.lat),\(e.lon)\" width=45 times=\"\(t0);\(t1)\"")
            let route = ids(along)
            // West to east: C (50 m along), A and D (both 100 m along, north and south of the scene:
            // equal up to rounding), E (118 m), B (130 m). A at 40 m north is inside 45 m.
            #expect(route.count == 5)
            #expect(route.first == "S-C" && Set(route[1...2]) == ["S-A", "S-D"] && Array(route[3...]) == ["S-E", "S-B"], "\(route)")
            let cams = along["cameras"] as? [[String: Any]] ?? []
            let alongs = cams.compactMap { ($0["along_m"] as? NSNumber)?.doubleValue }
            #expect(alongs == alongs.sorted())
            // C is 50 m west of the scene = 50 m along a 200 m route → 1 min 15 s after t0.
            let cWindow = try #require(cams.first?["window_from"] as? String)
            let expected = try #require(IncidentTime.parse(t0)).addingTimeInterval(75 - 60)
            #expect(abs(try #require(IncidentTime.parse(cWindow)).timeIntervalSince(expected)) < 1)

            let square = "POLYGON((\(Scene.lon - 0.0004) \(Scene.lat - 0.0004), \(Scene.lon + 0.0004) \(Scene.lat - 0.0004), \(Scene.lon + 0.0004) \(Scene.lat + 0.0004), \(Scene.lon - 0.0004) \(Scene.lat + 0.0004), \(Scene.lon - 0.0004) \(Scene.lat - 0.0004)))"
            let within = try await c.request("WITHIN polygon=\"\(square)\"")
            #expect(Set(ids(within)) == ["S-A", "S-B", "S-D", "S-E"])
            let geojson = #"{"type":"Polygon","coordinates":[[[\#(Scene.lon - 0.0004),\#(Scene.lat - 0.0004)],[\#(Scene.lon + 0.0004),\#(Scene.lat - 0.0004)],[\#(Scene.lon + 0.0004),\#(Scene.lat + 0.0004)],[\#(Scene.lon - 0.0004),\#(Scene.lat + 0.0004)],[\#(Scene.lon - 0.0004),\#(Scene.lat - 0.0004)]]]}"#
            let within2 = try await c.request("WITHIN polygon=\(Tokenizer.quote(geojson))")
            #expect(Set(ids(within2)) == Set(ids(within)))
        }
    }

    @Test func inputErrorsHaveDistinctCodes() async throws {
        try await withTestServer(index: try CameraIndex(cameras: Scene.cameras)) { path, _ in
            let c = try await TestClient(path: path)
            let p = "\(Scene.lat) \(Scene.lon)"
            let cases: [(String, String)] = [
                ("NEAR \(p) radius=50 at=2022-06-26T06:40", "time_without_offset"),
                ("NEAR \(p) radius=50 at=yesterday", "bad_time"),
                ("NEAR \(p) radius=50 from=2022-06-26T06:40Z to=2022-06-25T06:40Z", "bad_time_window"),
                ("NEAR \(p) radius=50 from=2022-06-01T00:00Z to=2022-06-20T00:00Z", "time_window_too_long"),
                ("NEAR \(p) radius=50 from=2022-06-01T00:00Z", "missing_option"),
                ("NEAR \(p) radius=50 at=2022-06-01T00:00Z from=2022-06-01T00:00Z to=2022-06-01T01:00Z", "invalid_value"),
                ("NEAR \(p) radius=50 sees=maybe", "invalid_value"),
                ("NEAR \(p) radius=50 order=random", "invalid_value"),
                ("NEAREST \(p) k=0", "out_of_range"),
                ("NEAREST \(p) k=10001", "out_of_range"),
                ("NEAREST \(p)", "missing_option"),
                ("ALONG route=\"11.1,106.6\" width=10", "route_too_short"),
                ("ALONG route=\"LINESTRING(106.6 11.1)\" width=10", "invalid_geometry"),
                ("ALONG route=\"11.1,106.6;11.2\" width=10", "invalid_value"),
                ("ALONG route=\"11.1,106.6;11.2,106.7\" width=0", "radius_not_positive"),
                ("ALONG route=\"11.1,106.6;11.2,106.7\" width=10 times=\"2022-06-01T00:00Z\"", "invalid_value"),
                ("ALONG route=\"11.1,106.6;11.2,106.7\" width=10 times=\"2022-06-01T01:00Z;2022-06-01T00:00Z\"", "bad_time_window"),
                ("WITHIN polygon=\"POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))\"", "invalid_geometry"),
                ("WITHIN polygon=\"POLYGON EMPTY\"", "invalid_geometry"),
                ("WITHIN polygon=\"POINT(1 2)\"", "invalid_geometry"),
                ("WITHIN polygon=\"POLYGON((0 0, 1 1\"", "invalid_geometry"),
            ]
            for (line, code) in cases {
                let r = try await c.request(line)
                #expect(errorCode(r) == code, "\(line) → \(r)")
            }
            let bowtie = try await c.request("WITHIN polygon=\"POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))\"")
            #expect(((bowtie["error"] as? [String: Any])?["message"] as? String)?.contains("Self-intersection") == true)
        }
    }
}
