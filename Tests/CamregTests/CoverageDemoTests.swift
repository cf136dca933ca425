import ControlProtocol
import ControlServer
import Foundation
import Geo
import Postgres
import Registry
import RegistryStore
import Testing

/// The demo inventory's analysis, computed once for the suite (engine only, no database).
actor CoverageDemoFixture {
    static let shared = CoverageDemoFixture()
    private var cached: (CoverageResult, [CoverageWard], [CoverageStreet], [Camera])?

    static let parameters = CoverageParameters(referenceDate: DemoInventory.defaultReferenceDate, suggest: 10)

    func get() throws -> (result: CoverageResult, wards: [CoverageWard], streets: [CoverageStreet], cameras: [Camera]) {
        if let cached { return cached }
        let inventory = DemoInventory.generate()
        let wards = try CoverageDemoLayers.wards()
        let streets = CoverageDemoLayers.streets(inventory)
        let r = try CoverageEngine.run(cameras: inventory.cameras, wards: wards, streets: streets, incidents: [],
                                       parameters: Self.parameters)
        cached = (r, wards, streets, inventory.cameras)
        return (r, wards, streets, inventory.cameras)
    }
}

@Suite("Coverage: the demo inventory")
struct CoverageDemoTests {
    @Test func sharesAreWithinZeroAndOneAndWardsAddUpToTheTown() async throws {
        let (r, wards, _, cameras) = try await CoverageDemoFixture.shared.get()
        #expect(r.wards.count == 8 && wards.count == 8)
        #expect(r.camerasCounted == cameras.filter { $0.status == .active }.count)
        var sum = CoverageFigures(ward: CoverageResult.townName)
        for w in r.wards {
            #expect((0...1).contains(w.coveredShare) && (0...1).contains(w.coveredAreaShare), "\(w.ward)")
            #expect(w.coveredLength <= w.streetLength + 1e-6 && w.coveredArea <= w.area + 1e-3)
            #expect(w.streetLength > 0 && w.coveredLength > 0 && w.intersections > 0, "\(w.ward)")
            #expect(w.intersections == w.unseenIntersections + w.singleIntersections + w.multiIntersections)
            sum.add(w)
        }
        #expect(abs(sum.coveredLength - r.town.coveredLength) < 1e-6 && abs(sum.streetLength - r.town.streetLength) < 1e-6)
        #expect(sum.intersections == r.town.intersections && sum.cameras == r.town.cameras)
        // Every counted camera stands in one of the generated wards (they partition the town's box).
        #expect(r.town.cameras == r.camerasCounted)
        // The wards partition the box: their areas add up to the box's.
        let box = try Geometry.rectangle(minX: BenCat.minLon, minY: BenCat.minLat, maxX: BenCat.maxLon, maxY: BenCat.maxLat)
        let utm = try UTMProjection(lat: (BenCat.minLat + BenCat.maxLat) / 2, lon: (BenCat.minLon + BenCat.maxLon) / 2)
        #expect(abs(try box.projected(to: utm).area() - r.town.area) / r.town.area < 1e-4)
        // Every demo street lies inside the box, so the ward rows hold the whole network.
        let network = CoverageDemoLayers.streets(DemoInventory.generate()).reduce(0.0) { total, s in
            total + zip(s.points, s.points.dropFirst()).reduce(0.0) { $0 + Geodesic.wgs84.inverse(lat1: $1.0.lat, lon1: $1.0.lon, lat2: $1.1.lat, lon2: $1.1.lon).distance }
        }
        #expect(abs(network - r.town.streetLength) / network < 1e-3, "network \(network) m, wards \(r.town.streetLength) m")
    }

    @Test func suggestionsStrictlyImproveCoverageInOrder() async throws {
        let (r, _, _, _) = try await CoverageDemoFixture.shared.get()
        #expect(r.suggestions.count == 10)
        var covered = r.town.coveredLength
        for s in r.suggestions {
            #expect(s.gain > 0, "suggestion \(s.rank) gains \(s.gain) m")
            #expect(s.coveredAfter > covered)
            #expect(abs(s.coveredAfter - covered - s.gain) < 1e-6)
            #expect(s.coveredAfter <= r.town.streetLength)
            covered = s.coveredAfter
        }
        #expect(r.suggestions.map(\.rank) == Array(1...10))
        // Greedy order: the weighted gains never increase.
        for (a, b) in zip(r.suggestions, r.suggestions.dropFirst()) { #expect(a.weightedGain >= b.weightedGain - 1e-6) }
    }

    @Test func resultsAreStableAcrossRuns() async throws {
        let (r, wards, streets, cameras) = try await CoverageDemoFixture.shared.get()
        let again = try CoverageEngine.run(cameras: cameras, wards: wards, streets: streets, incidents: [],
                                           parameters: CoverageDemoFixture.parameters)
        #expect(again.wards == r.wards)
        #expect(again.suggestions == r.suggestions)
        #expect(again.stretches == r.stretches)
        #expect(try CoverageDemoLayers.wards() == wards)
    }

    /// PostGIS as the oracle: the same streets and the same sector polygons (WGS84) in PostGIS,
    /// covered length = Σ ST_Length(ST_Intersection(street, ST_Union(sectors))::geography).
    @Test func coveredLengthMatchesPostGISWithinHalfAPercent() async throws {
        let (r, _, streets, cameras) = try await CoverageDemoFixture.shared.get()
        let config = try await TestPostgres.shared.freshDatabase("covpg")
        let c = try PostgresConnection(configuration: config)
        try c.query("CREATE EXTENSION IF NOT EXISTS postgis")
        try c.execute(script: "CREATE TABLE s (g geometry(LineString, 4326)); CREATE TABLE f (g geometry(Polygon, 4326));")
        _ = try c.copyIn("COPY s (g) FROM STDIN") { send in
            for s in streets {
                try send(Array(("SRID=4326;LINESTRING(" + s.points.map { "\($0.lon) \($0.lat)" }.joined(separator: ",") + ")\n").utf8))
            }
        }
        _ = try c.copyIn("COPY f (g) FROM STDIN") { send in
            for cam in cameras where cam.status == .active {
                let ring = try cam.sector().lonLatRing()
                try send(Array(("SRID=4326;POLYGON((" + ring.map { "\($0.lon) \($0.lat)" }.joined(separator: ",") + "))\n").utf8))
            }
        }
        let text = try c.query("""
            WITH u AS (SELECT ST_Union(g) AS g FROM f)
            SELECT sum(ST_Length(ST_Intersection(s.g, u.g)::geography)), sum(ST_Length(s.g::geography)) FROM s, u
            """).rows[0]
        let covered = try #require(Double(text[0] ?? "")), total = try #require(Double(text[1] ?? ""))
        #expect(abs(r.town.coveredLength - covered) / covered < 0.005,
                "camreg \(r.town.coveredLength) m, PostGIS \(covered) m")
        #expect(abs(r.town.streetLength - total) / total < 0.005, "camreg \(r.town.streetLength) m, PostGIS \(total) m")
    }
}
