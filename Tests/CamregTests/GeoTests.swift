import Foundation
import Geo
import Registry
import Testing

@Suite("GEOS and PROJ wrappers")
struct GeoTests {
    @Test func geodesicKnownDistances() {
        // One degree of latitude at the equator on WGS84: 110574.3886 m (Karney).
        let d = Geodesic.wgs84.distance(lat1: 0, lon1: 0, lat2: 1, lon2: 0)
        #expect(abs(d - 110_574.388_6) < 0.001)
        let g = Geodesic.wgs84.inverse(lat1: 11.147, lon1: 106.6076, lat2: 11.147, lon2: 106.6176)
        #expect(abs(g.azimuth1 - 90) < 0.01)
        let back = Geodesic.wgs84.direct(lat: 11.147, lon: 106.6076, azimuth: g.azimuth1, distance: g.distance)
        #expect(abs(back.lat - 11.147) < 1e-9 && abs(back.lon - 106.6176) < 1e-9)
    }

    @Test func boundingBoxContainsTheWholeDisc() {
        var rng = SeededRandom(seed: 3)
        for _ in 0..<500 {
            let lat = Double.random(in: -70...70, using: &rng)
            let lon = Double.random(in: -170...170, using: &rng)
            let r = Double.random(in: 1...50_000, using: &rng)
            let box = Geodesic.wgs84.boundingBox(lat: lat, lon: lon, radius: r)
            for az in stride(from: 0.0, to: 360, by: 7.5) {
                let p = Geodesic.wgs84.direct(lat: lat, lon: lon, azimuth: az, distance: r)
                #expect(p.lat >= box.minLat && p.lat <= box.maxLat && p.lon >= box.minLon && p.lon <= box.maxLon)
            }
        }
    }

    @Test func strtreeFindsExactlyTheBoxedItems() throws {
        var rng = SeededRandom(seed: 11)
        let points = (0..<5000).map { _ in (Double.random(in: 0...100, using: &rng), Double.random(in: 0...100, using: &rng)) }
        let tree = try STRtree(boxes: points.map { ($0.0, $0.1, $0.0, $0.1) })
        #expect(tree.count == 5000)
        for _ in 0..<200 {
            let x = Double.random(in: 0...90, using: &rng), y = Double.random(in: 0...90, using: &rng)
            let w = Double.random(in: 0...10, using: &rng)
            var found: [Int] = []
            try tree.query(minX: x, minY: y, maxX: x + w, maxY: y + w, into: &found)
            let brute = points.indices.filter { points[$0].0 >= x && points[$0].0 <= x + w && points[$0].1 >= y && points[$0].1 <= y + w }
            #expect(found.sorted() == brute)
        }
        let empty = try STRtree(boxes: [])
        var none: [Int] = []
        try empty.query(minX: 0, minY: 0, maxX: 1, maxY: 1, into: &none)
        #expect(none.isEmpty)
    }

    @Test func strtreeIsSafeForConcurrentQueries() async throws {
        let cams = DemoInventory.generate().cameras
        let index = try CameraIndex(cameras: cams)
        let reference = try index.near(lat: 11.1, lon: 106.6, radius: 3000, limit: 10_000).map(\.camera.id)
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<200 where try index.near(lat: 11.1, lon: 106.6, radius: 3000, limit: 10_000).map(\.camera.id) != reference {
                        return false
                    }
                    return true
                }
            }
            for try await ok in group { #expect(ok) }
        }
    }

    @Test func geosErrorsAreTyped() throws {
        #expect(throws: GeoError.self) { try Geometry.wkt("POLYGON((0 0, 1 1") }
        let bowtie = try Geometry.wkt("POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))")
        let reason = try bowtie.invalidReason()
        #expect(reason?.contains("Self-intersection") == true)
        let square = try Geometry.wkt("POLYGON((0 0, 2 0, 2 2, 0 2, 0 0))")
        #expect(try square.invalidReason() == nil)
        #expect(try square.area() == 4)
        #expect(try square.intersects(try Geometry.point(x: 1, y: 1)))
        #expect(try !square.intersects(try Geometry.point(x: 3, y: 1)))
        #expect(try square.wkt().hasPrefix("POLYGON"))
    }

    @Test func utmRoundTripAndZone() throws {
        #expect(UTMProjection.zone(longitude: 106.6) == 48)
        let p = try UTMProjection(lat: 11.147, lon: 106.6076)
        #expect(p.epsg == 32648)
        let xy = try p.forward(lon: 106.6076, lat: 11.147)
        #expect(xy.x > 600_000 && xy.x < 700_000 && xy.y > 1_200_000 && xy.y < 1_250_000)
        let ll = try p.inverse(x: xy.x, y: xy.y)
        #expect(abs(ll.lon - 106.6076) < 1e-9 && abs(ll.lat - 11.147) < 1e-9)
        // 100 m east in UTM is 100 m on the ellipsoid within the scale factor (< 0.1 %).
        let east = try p.inverse(x: xy.x + 100, y: xy.y)
        let d = Geodesic.wgs84.distance(lat1: 11.147, lon1: 106.6076, lat2: east.lat, lon2: east.lon)
        #expect(abs(d - 100) < 0.1)
    }

    @Test func indexDeltaIsVisibleAndRebuildKeepsIt() throws {
        let cams = Array(DemoInventory.generate().cameras.prefix(100))
        let index = try CameraIndex(cameras: cams)
        var moved = cams[0]
        moved.lat = 11.0
        moved.lon = 106.55
        index.upsert(moved)
        var fresh = cams[1]
        fresh.id = "BC-NEW01"
        fresh.lat = 11.0001
        fresh.lon = 106.55
        index.upsert(fresh)
        var retired = cams[2]
        retired.status = .retired
        index.upsert(retired)
        func ids() throws -> [String] { try index.near(lat: 11.0, lon: 106.55, radius: 50, limit: 10).map(\.camera.id) }
        #expect(try ids() == [moved.id, "BC-NEW01"])
        #expect(index.count == 101 && index.deltaCount == 3)
        #expect(try !index.near(lat: cams[2].lat, lon: cams[2].lon, radius: 1, limit: 10).contains { $0.camera.id == cams[2].id })
        #expect(index.camera(id: cams[2].id)?.status == .retired)
        #expect(try index.rebuildIfNeeded(threshold: 1))
        #expect(index.deltaCount == 0 && index.count == 101)
        #expect(try ids() == [moved.id, "BC-NEW01"])
    }
}
