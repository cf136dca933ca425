import Foundation
import Geo
import Registry
import Testing

/// A small hand-built town around (11.10, 106.60), laid out in metres east (x) and north (y) of
/// the origin with exact geodesics:
///
/// - street A along y = 0 from x = −200 to 300; street B along x = 0 from y = −200 to 200
///   (crossing A at the origin: a node of degree 4); street C north from (200, 0) to (200, 150)
///   (a T-junction on A: degree 3). Total 1 050 m.
/// - camera 1 at the origin, 360°, range 50 m; camera 2 at (−100, 0) looking east, FOV 60°,
///   range 120 m; camera 3 on C, offline (not counted).
/// - one ward: the square ±400 m.
///
/// Covered: A from −100 (camera 2's apex) to +50 (camera 1's disc) = 150 m; B within camera 2's
/// wedge, |y| ≤ 100·tan 30° = 57.735 m → 115.470 m; C nothing. The crossing is seen by both
/// cameras, the T-junction by none.
@Suite("Coverage: hand-built town")
struct CoverageTownTests {
    static let origin = (lat: 11.10, lon: 106.60)

    static func at(_ x: Double, _ y: Double) -> LatLonPoint {
        let d = (x * x + y * y).squareRoot()
        if d == 0 { return LatLonPoint(lat: origin.lat, lon: origin.lon) }
        let p = Geodesic.wgs84.direct(lat: origin.lat, lon: origin.lon, azimuth: atan2(x, y) * 180 / .pi, distance: d)
        return LatLonPoint(lat: p.lat, lon: p.lon)
    }

    static func camera(_ id: String, _ x: Double, _ y: Double, heading: Double?, fov: Double, range: Double,
                       status: CameraStatus = .active, schedule: RecordingSchedule = .always) -> Camera {
        let p = at(x, y)
        let t = Date(timeIntervalSince1970: 1_600_000_000)
        return Camera(id: id, lat: p.lat, lon: p.lon, siteKind: .street, address: "test", ward: "Test ward",
                      heading: heading, fov: fov, range: range, mountHeight: nil, ownerKind: .household,
                      ownerName: nil, ownerPhone: nil, schedule: schedule, retentionDays: 30, status: status,
                      createdAt: t, updatedAt: t)
    }

    static let streets = [
        CoverageStreet(name: "A", kind: "street", points: [at(-200, 0), at(0, 0), at(300, 0)]),
        CoverageStreet(name: "B", kind: "street", points: [at(0, -200), at(0, 0), at(0, 200)]),
        CoverageStreet(name: "C", kind: "street", points: [at(200, 0), at(200, 150)]),
    ]

    static var ward: CoverageWard {
        let corners = [at(-400, -400), at(400, -400), at(400, 400), at(-400, 400), at(-400, -400)]
        return CoverageWard(name: "Test ward", wkt: "POLYGON((" + corners.map { "\($0.lon) \($0.lat)" }.joined(separator: ",") + "))")
    }

    static let cameras = [
        camera("T-1", 0, 0, heading: nil, fov: 360, range: 50),
        camera("T-2", -100, 0, heading: 90, fov: 60, range: 120, schedule: .daily(start: 18 * 60, end: 6 * 60)),
        camera("T-3", 200, 75, heading: 0, fov: 90, range: 30, status: .offline),
    ]

    static let reference = Date(timeIntervalSince1970: 1_700_000_000)

    static var incidents: [CoverageIncident] {
        let onA = at(100, 0), seen = at(0, 20), old = at(250, 0)
        return [
            CoverageIncident(id: 1, lat: onA.lat, lon: onA.lon, time: reference.addingTimeInterval(-86_400)),
            CoverageIncident(id: 2, lat: seen.lat, lon: seen.lon, time: reference.addingTimeInterval(-86_400)),
            CoverageIncident(id: 3, lat: old.lat, lon: old.lon, time: reference.addingTimeInterval(-200 * 86_400)),
        ]
    }

    static func run(_ p: CoverageParameters, cameras: [Camera] = cameras) throws -> CoverageResult {
        try CoverageEngine.run(cameras: cameras, wards: [ward], streets: streets, incidents: incidents, parameters: p)
    }

    @Test func coveredLengthsIntersectionsAndIncidents() throws {
        let r = try Self.run(CoverageParameters(referenceDate: Self.reference, days: 90))
        #expect(r.camerasCounted == 2)
        let w = try #require(r.wards.first)
        #expect(abs(w.streetLength - 1050) < 0.05, "street length \(w.streetLength)")
        let expected = 150 + 2 * 100 * tan(30 * Double.pi / 180)
        #expect(abs(w.coveredLength - expected) < 0.05, "covered \(w.coveredLength), expected \(expected)")
        #expect(w.intersections == 2)
        #expect(w.unseenIntersections == 1 && w.singleIntersections == 0 && w.multiIntersections == 1)
        #expect(w.cameras == 2)
        #expect(w.incidents == 2 && w.unseenIncidents == 1)
        #expect(abs(w.area - 640_000) < 640, "area \(w.area)")
        let disc = Double.pi * 50 * 50, wedge = Double.pi * 120 * 120 / 6
        #expect(w.coveredArea > max(disc, wedge) * 0.99 && w.coveredArea < (disc + wedge) * 1.001, "covered area \(w.coveredArea)")
        // Gaps: A west 100 m, A east 250 m (weight 2: the unseen incident lies on it), B 2 × 142.265 m, C 150 m.
        let b = 200 - 100 * tan(30 * Double.pi / 180)
        #expect(abs(w.gapScore - (100 + 250 * 2 + 2 * b + 150) / 1000) < 1e-4, "gap score \(w.gapScore)")
        #expect(r.stretchCount == 5)
        let top = try #require(r.stretches.first)
        #expect(top.street == "A" && abs(top.length - 250) < 0.05 && top.weight == 2)
        #expect(r.town == { var t = CoverageFigures(ward: CoverageResult.townName); t.add(w); return t }())
    }

    @Test func theObviousSuggestionIsTheUnseenTJunction() throws {
        var p = CoverageParameters(referenceDate: Self.reference, days: 90, suggest: 3, suggestRange: 40, suggestFOV: 200)
        p.map = true
        let r = try Self.run(p)
        // Only the T-junction helps: 40 m each way along A and 40 m up C; the crossing is covered already.
        #expect(r.suggestions.count == 1)
        let s = try #require(r.suggestions.first)
        let t = Self.at(200, 0)
        #expect(abs(s.lat - t.lat) < 1e-6 && abs(s.lon - t.lon) < 1e-6)
        #expect(s.site == "intersection")
        #expect(abs(s.gain - 120) < 0.05, "gain \(s.gain)")
        #expect(abs(s.weightedGain - 200) < 1, "weighted gain \(s.weightedGain)")
        #expect(abs(s.coveredAfter - (r.town.coveredLength + s.gain)) < 1e-6)
        let heading = try #require(s.heading)
        #expect(heading <= 10 || heading >= 350, "heading \(heading)")
        // The map holds every layer.
        let map = try #require(r.mapFeatures["Test ward"])
        for layer in ["ward", "covered", "gap", "intersection", "sector"] { #expect(map.contains("\"layer\":\"\(layer)\"")) }
        #expect(r.suggestionFeatures.contains("\"layer\":\"suggestion\""))
        let json = try JSONSerialization.jsonObject(with: Data(("[" + map + "," + r.suggestionFeatures + "]").utf8)) as? [Any]
        #expect(json?.count ?? 0 > 10)
    }

    @Test func scheduleAndMinimumRangeTurnCamerasOff() throws {
        // 12:00 in Ho Chi Minh City: camera 2 (18:00–06:00) is off; only camera 1's disc remains.
        let noon = try #require(IncidentTime.parse("2023-11-14T12:00+07:00"))
        let day = try Self.run(CoverageParameters(at: noon, referenceDate: noon))
        #expect(day.camerasCounted == 1)
        #expect(abs(day.wards[0].coveredLength - 200) < 0.05, "covered \(day.wards[0].coveredLength)")
        #expect(day.wards[0].singleIntersections == 1 && day.wards[0].multiIntersections == 0)
        let night = try #require(IncidentTime.parse("2023-11-14T22:00+07:00"))
        #expect(try Self.run(CoverageParameters(at: night, referenceDate: night)).camerasCounted == 2)
        // min_range 60 drops camera 1 (50 m).
        let far = try Self.run(CoverageParameters(referenceDate: Self.reference, minRange: 60))
        #expect(far.camerasCounted == 1)
        #expect(abs(far.wards[0].coveredLength - (120 + 2 * 100 * tan(30 * Double.pi / 180))) < 0.05)
    }

    @Test func cancellationStopsTheRun() throws {
        #expect(throws: CoverageCancelled.self) {
            _ = try CoverageEngine.run(cameras: Self.cameras, wards: [Self.ward], streets: Self.streets, incidents: [],
                                       parameters: CoverageParameters(tileSize: 100), isCancelled: { true })
        }
        // Tiles do not change the figures (100 m tiles: at least 64 of them).
        let tiled = try Self.run(CoverageParameters(referenceDate: Self.reference, tileSize: 100))
        let whole = try Self.run(CoverageParameters(referenceDate: Self.reference))
        #expect(tiled.tiles >= 64 && whole.tiles == 1)
        #expect(abs(tiled.town.coveredLength - whole.town.coveredLength) < 0.01)
        #expect(abs(tiled.town.streetLength - whole.town.streetLength) < 0.01)
        #expect(abs(tiled.town.coveredArea - whole.town.coveredArea) < 0.5)
        #expect(tiled.town.intersections == whole.town.intersections)
        #expect(tiled.town.unseenIntersections == whole.town.unseenIntersections)
        // Tiles are computed by several threads; the result does not depend on how many.
        var one = CoverageParameters(referenceDate: Self.reference, suggest: 2, suggestFOV: 200, tileSize: 100)
        one.threads = 1
        var four = one
        four.threads = 4
        let a = try Self.run(one), b = try Self.run(four)
        #expect(a.wards == b.wards && a.stretches == b.stretches && a.suggestions == b.suggestions)
        #expect(a.mapFeatures == b.mapFeatures)
    }
}
