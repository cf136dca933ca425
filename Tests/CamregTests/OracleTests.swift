import Foundation
import Geo
import Postgres
import Registry
import RegistryStore
import Testing

/// PostGIS as the oracle: the same demo cameras in a geography column, the same questions.
@Suite("PostGIS oracle")
struct OracleTests {
    struct Query: Sendable { let lat, lon, radius: Double }

    /// A database with the demo inventory and a PostGIS copy of the positions.
    static func postgisDemo() async throws -> (PostgresConnection, [Camera]) {
        let (config, cameras) = try await PostGISDemo.shared.prepare()
        return (try PostgresConnection(configuration: config), cameras)
    }
}

/// Sets up PostGIS and the oracle table once (tests run in parallel).
actor PostGISDemo {
    static let shared = PostGISDemo()
    private var done: (PostgresConfiguration, [Camera])?

    func prepare() async throws -> (PostgresConfiguration, [Camera]) {
        if let done { return done }
        let (config, cameras) = try await DemoDatabase.shared.get()
        let c = try PostgresConnection(configuration: config)
        try c.query("CREATE EXTENSION IF NOT EXISTS postgis")
        try c.execute(script: """
            CREATE TABLE IF NOT EXISTS oracle_cams AS
                SELECT id, status, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography AS g FROM cameras;
            CREATE INDEX IF NOT EXISTS oracle_cams_g ON oracle_cams USING gist (g);
            ANALYZE oracle_cams;
            """)
        done = (config, cameras)
        return (config, cameras)
    }
}

extension OracleTests {

    @Test func nearEqualsSTDWithinOn2000RandomQueries() async throws {
        let (pg, cameras) = try await Self.postgisDemo()
        var rng = SeededRandom(seed: 2022)
        var queries: [Query] = []
        for i in 0..<2000 {
            let lat: Double, lon: Double
            if i % 2 == 0 {
                // Anywhere in the town.
                lat = Double.random(in: BenCat.minLat...BenCat.maxLat, using: &rng)
                lon = Double.random(in: BenCat.minLon...BenCat.maxLon, using: &rng)
            } else {
                // Near a camera, where answers are dense.
                let c = cameras[Int(rng.next() % UInt64(cameras.count))]
                lat = c.lat + Double.random(in: -0.004...0.004, using: &rng)
                lon = c.lon + Double.random(in: -0.004...0.004, using: &rng)
            }
            queries.append(Query(lat: lat, lon: lon, radius: Double.random(in: 50...1000, using: &rng)))
        }
        // PostGIS answers.
        var expected: [[String: Double]] = []
        for q in queries {
            let rows = try pg.query("""
                SELECT o.id, ST_Distance(o.g, q.g)
                FROM oracle_cams o, (SELECT ST_SetSRID(ST_MakePoint($2::float8, $1::float8), 4326)::geography AS g) q
                WHERE o.status <> 'retired' AND ST_DWithin(o.g, q.g, $3::float8)
                """, [q.lat.description, q.lon.description, q.radius.description])
            expected.append(Dictionary(uniqueKeysWithValues: rows.rows.map { ($0[0]!, Double($0[1]!)!) }))
        }
        // camregd answers, over the socket, pipelined in batches.
        let all = queries
        let answers: [[(String, Double)]] = try await withTestServer(index: try CameraIndex(cameras: cameras)) { path, _ in
            let client = try await TestClient(path: path)
            var out: [[(String, Double)]] = []
            for batch in stride(from: 0, to: all.count, by: 100) {
                let part = all[batch..<min(batch + 100, all.count)]
                try await client.sendRaw(Array(part.map { "NEAR \($0.lat) \($0.lon) radius=\($0.radius) limit=10000\n" }.joined().utf8))
                for _ in part {
                    let o = try decodeJSON(try #require(try await client.readLine()))
                    let cams = try #require(o["cameras"] as? [[String: Any]])
                    out.append(cams.map { ($0["id"] as! String, ($0["distance_m"] as! NSNumber).doubleValue) })
                }
            }
            return out
        }
        var nonEmpty = 0, compared = 0
        for (i, (want, got)) in zip(expected, answers).enumerated() {
            let gotIDs = Set(got.map(\.0))
            #expect(gotIDs == Set(want.keys), "query \(i) \(queries[i]): sets differ")
            for (id, d) in got {
                if let w = want[id] {
                    #expect(abs(w - d) <= 0.01, "query \(i): \(id) distance \(d) vs PostGIS \(w)")
                    compared += 1
                }
            }
            if !want.isEmpty { nonEmpty += 1 }
        }
        #expect(nonEmpty > 800, "too few queries with answers to be a meaningful comparison")
        #expect(compared > 5000)
    }

    @Test func geodesicAgreesWithPostGISToTheMicrometre() async throws {
        let (pg, _) = try await Self.postgisDemo()
        var rng = SeededRandom(seed: 99)
        for _ in 0..<300 {
            let a = (Double.random(in: -80...80, using: &rng), Double.random(in: -179...179, using: &rng))
            let b = (a.0 + Double.random(in: -2...2, using: &rng), a.1 + Double.random(in: -2...2, using: &rng))
            let ours = Geodesic.wgs84.distance(lat1: a.0, lon1: a.1, lat2: b.0, lon2: b.1)
            let text = try pg.query(
                "SELECT ST_Distance(ST_SetSRID(ST_MakePoint($2::float8,$1::float8),4326)::geography, ST_SetSRID(ST_MakePoint($4::float8,$3::float8),4326)::geography)",
                [a.0.description, a.1.description, b.0.description, b.1.description]).scalar()
            let theirs = try #require(text.flatMap(Double.init))
            #expect(abs(ours - theirs) < 1e-6, "\(a) → \(b): \(ours) vs \(theirs)")
        }
    }
}
