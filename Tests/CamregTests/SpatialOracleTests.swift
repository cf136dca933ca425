import Foundation
import Geo
import Postgres
import Registry
import RegistryStore
import Testing

/// PostGIS as the oracle for the spatial queries of `SpatialQueries.swift`: the demo inventory in
/// `oracle_cams` (set up once by ``PostGISDemo``), one ``CameraIndex`` built from what
/// PostgreSQL holds, and 1 000 seeded random questions for each of NEAREST, WITHIN and ALONG.
/// Retired cameras are excluded on both sides. Each test uses one connection and parameterised
/// queries; mismatches are collected and reported together (the first few in full).
@Suite("PostGIS oracle: NEAREST, WITHIN, ALONG")
struct SpatialOracleTests {
    /// `$1` = lat, `$2` = lon, as a geography point.
    static let pointSQL = "ST_SetSRID(ST_MakePoint($2::float8, $1::float8), 4326)::geography"

    /// Metres per degree at the town's latitude (only used to size random shapes).
    static let metresPerDegreeLat = 110_600.0
    static let metresPerDegreeLon = 111_320.0 * cos((BenCat.minLat + BenCat.maxLat) / 2 * .pi / 180)

    /// A connection to the oracle database, the shared index, and the searchable cameras.
    static func fixture() async throws -> (PostgresConnection, CameraIndex, [Camera]) {
        let (config, index, cameras) = try await SpatialOracleFixture.shared.get()
        return (try PostgresConnection(configuration: config), index, cameras.filter { $0.status != .retired })
    }

    static func double(_ text: String?) throws -> Double {
        guard let text, let v = Double(text) else { throw TestFailure("not a number: \(String(describing: text))") }
        return v
    }

    /// A short report of mismatches for an `#expect` message.
    static func summary(_ mismatches: [String], of total: Int) -> Comment {
        Comment(rawValue: "\(mismatches.count) of \(total) differ from PostGIS; first ones:\n"
            + mismatches.prefix(8).joined(separator: "\n"))
    }
}

/// The oracle database and one index over `CameraRepository.all(on:)`, built once for the suite.
actor SpatialOracleFixture {
    static let shared = SpatialOracleFixture()
    private var cached: (PostgresConfiguration, CameraIndex, [Camera])?

    func get() async throws -> (PostgresConfiguration, CameraIndex, [Camera]) {
        if let cached { return cached }
        let (config, _) = try await PostGISDemo.shared.prepare()
        let c = try PostgresConnection(configuration: config)
        let cameras = try CameraRepository.all(on: c)
        // The oracle table must hold exactly these cameras (same ids, statuses and coordinates).
        let same = try SpatialOracleTests.double(c.query("""
            SELECT count(*) FROM oracle_cams o JOIN cameras c USING (id)
            WHERE o.status = c.status AND ST_X(o.g::geometry) = c.lon AND ST_Y(o.g::geometry) = c.lat
            """).scalar())
        let oracleCount = try SpatialOracleTests.double(c.query("SELECT count(*) FROM oracle_cams").scalar())
        guard Int(same) == cameras.count, Int(oracleCount) == cameras.count, cameras.count == BenCat.cameraCount else {
            throw TestFailure("oracle_cams (\(oracleCount) rows, \(same) identical) does not mirror cameras (\(cameras.count))")
        }
        let value = (config, try CameraIndex(cameras: cameras), cameras)
        cached = value
        return value
    }
}

// MARK: - NEAREST

extension SpatialOracleTests {
    struct NearestQuery: CustomStringConvertible {
        let lat, lon: Double
        let k: Int
        let maxDistance: Double?
        var description: String {
            "nearest(lat: \(lat), lon: \(lon), k: \(k)\(maxDistance.map { ", maxDistance: \($0)" } ?? ""))"
        }
    }

    static func nearestQueries(cameras: [Camera]) -> [NearestQuery] {
        var rng = SeededRandom(seed: 0x4E45_4152)
        let cLat = (BenCat.minLat + BenCat.maxLat) / 2, cLon = (BenCat.minLon + BenCat.maxLon) / 2
        // Far away: Hà Nội, Sydney, near the town's antipode, the north pole, (0, 0).
        let far: [(Double, Double)] = [(21.0285, 105.8542), (-33.8688, 151.2093), (-10.83, -73.1), (90, 0), (0, 0)]
        var queries: [NearestQuery] = []
        for i in 0..<1000 {
            var lat: Double, lon: Double
            switch i % 20 {
            case 0..<13:  // anywhere in the town's box
                lat = Double.random(in: BenCat.minLat...BenCat.maxLat, using: &rng)
                lon = Double.random(in: BenCat.minLon...BenCat.maxLon, using: &rng)
            case 13..<16:  // close to a camera, where answers are dense (and co-located cameras tie)
                let c = cameras[Int.random(in: 0..<cameras.count, using: &rng)]
                lat = c.lat + Double.random(in: -0.002...0.002, using: &rng)
                lon = c.lon + Double.random(in: -0.002...0.002, using: &rng)
                if Int.random(in: 0..<4, using: &rng) == 0 { (lat, lon) = (c.lat, c.lon) }  // exactly on one
            case 16..<19:  // around the box, up to about 5 km outside
                lat = Double.random(in: (BenCat.minLat - 0.045)...(BenCat.maxLat + 0.045), using: &rng)
                lon = Double.random(in: (BenCat.minLon - 0.045)...(BenCat.maxLon + 0.045), using: &rng)
            default:  // 50–70 km from the centre, any direction
                let p = Geodesic.wgs84.direct(lat: cLat, lon: cLon, azimuth: Double.random(in: -180..<180, using: &rng),
                                              distance: Double.random(in: 50_000...70_000, using: &rng))
                (lat, lon) = (p.lat, p.lon)
            }
            if i >= 1000 - far.count { (lat, lon) = far[i - (1000 - far.count)] }
            let k = Int.random(in: 1...20, using: &rng)
            let cap: Double? = i % 4 == 3 ? Double.random(in: 30...1500, using: &rng) : nil
            queries.append(NearestQuery(lat: lat, lon: lon, k: k, maxDistance: cap))
        }
        return queries
    }

    /// Why `got` (ours) is not PostGIS's answer, or nil. `pg` is PostGIS's top of the list by
    /// `(ST_Distance, id)` without the cap, longer than `k` so that boundary ties can be checked.
    /// Ids must be equal in order, except that cameras whose (PostGIS) distances are equal within
    /// 1e-6 m may come in either order, and a camera within 1e-6 m of the cap may be in or out.
    static func nearestMismatch(_ got: [NearHit], _ pg: [(id: String, d: Double)], k: Int, cap: Double?) -> String? {
        let limit = cap ?? .infinity
        var pgDistance: [String: Double] = [:]
        for r in pg { pgDistance[r.id] = r.d }
        let want = Array(pg.filter { $0.d <= limit }.prefix(k))
        guard got.count <= k else { return "\(got.count) results for k = \(k)" }
        guard Set(got.map(\.camera.id)).count == got.count else { return "duplicate ids: \(got.map(\.camera.id))" }
        for (a, b) in zip(got, got.dropFirst()) where a.distance > b.distance || (a.distance == b.distance && a.camera.id >= b.camera.id) {
            return "not ordered by (distance, id): \(a.camera.id) \(a.distance) before \(b.camera.id) \(b.distance)"
        }
        let wantText = want.map { "\($0.id) \($0.d)" }
        for (i, h) in got.enumerated() {
            guard let d = pgDistance[h.camera.id] else {
                return "#\(i) \(h.camera.id) (ours \(h.distance) m) is not among PostGIS's \(pg.count) nearest; want \(wantText)"
            }
            if abs(d - h.distance) > 0.01 { return "#\(i) \(h.camera.id): distance \(h.distance) vs PostGIS \(d)" }
            if i < want.count {
                if h.camera.id != want[i].id && abs(d - want[i].d) > 1e-6 {
                    return "#\(i): ours \(h.camera.id) (PostGIS distance \(d)), PostGIS \(want[i].id) at \(want[i].d); want \(wantText), got \(got.map { "\($0.camera.id) \($0.distance)" })"
                }
            } else if abs(d - limit) > 1e-6 {
                return "#\(i): ours has \(h.camera.id) at \(d) m beyond PostGIS's \(want.count) answers \(wantText)"
            }
        }
        for w in want.dropFirst(got.count) where abs(w.d - limit) > 1e-6 {
            return "ours stops after \(got.count); PostGIS also has \(w.id) at \(w.d) m: want \(wantText)"
        }
        return nil
    }

    @Test func nearestEqualsPostGISOn1000RandomPoints() async throws {
        let (pg, index, cameras) = try await Self.fixture()
        let queries = Self.nearestQueries(cameras: cameras)
        var mismatches: [String] = []
        var compared = 0, tiesSeen = 0, capped = 0, maxDifference = 0.0
        // `ORDER BY g <-> q` (KNN operator) against the explicit order: reported, not asserted.
        var knnOrderDiffers = 0, knnSetDiffers = 0, knnRows = 0, knnIsSphere = 0, knnIsSpheroid = 0
        let explicit = """
            SELECT id, ST_Distance(g, \(Self.pointSQL)) AS d FROM oracle_cams
            WHERE status <> 'retired' ORDER BY d, id COLLATE "C" LIMIT $3::int
            """
        let knn = """
            SELECT id, g <-> \(Self.pointSQL), ST_Distance(g, \(Self.pointSQL), false), ST_Distance(g, \(Self.pointSQL))
            FROM oracle_cams WHERE status <> 'retired' ORDER BY g <-> \(Self.pointSQL) LIMIT $3::int
            """
        for q in queries {
            let params = [q.lat.description, q.lon.description]
            let rows = try pg.query(explicit, params + [String(q.k + 30)]).rows
            let top = try rows.map { (id: $0[0]!, d: try Self.double($0[1])) }
            let got = try index.nearest(lat: q.lat, lon: q.lon, k: q.k, maxDistance: q.maxDistance)
            if let why = Self.nearestMismatch(got, top, k: q.k, cap: q.maxDistance) { mismatches.append("\(q): \(why)") }
            let byId = Dictionary(top.map { ($0.id, $0.d) }, uniquingKeysWith: { a, _ in a })
            for h in got { if let d = byId[h.camera.id] { maxDifference = max(maxDifference, abs(d - h.distance)) } }
            compared += got.count
            if q.maxDistance != nil { capped += 1 }
            let kth = top.prefix(q.k)
            if let last = kth.last, top.dropFirst(q.k).first.map({ abs($0.d - last.d) <= 1e-6 }) == true { tiesSeen += 1 }

            let k = try pg.query(knn, params + [String(q.k)]).rows
            let knnIDs = k.map { $0[0]! }, wantIDs = top.prefix(q.k).map(\.id)
            if knnIDs != wantIDs { knnOrderDiffers += 1 }
            if Set(knnIDs) != Set(wantIDs) { knnSetDiffers += 1 }
            for r in k {
                let v = try Self.double(r[1]), sphere = try Self.double(r[2]), spheroid = try Self.double(r[3])
                knnRows += 1
                if abs(v - sphere) <= 1e-6 { knnIsSphere += 1 }
                if abs(v - spheroid) <= 1e-6 { knnIsSpheroid += 1 }
            }
        }
        print("""
            SpatialOracle NEAREST: \(queries.count) queries (\(capped) with maxDistance), \(compared) hits compared, \
            \(mismatches.count) mismatches, \(tiesSeen) with a tie at the k-th place, max |distance − PostGIS| \
            \(maxDifference) m. ORDER BY g <-> q: \(knnOrderDiffers) lists differ from ORDER BY ST_Distance, id \
            (\(knnSetDiffers) as sets); its value is the sphere distance in \(knnIsSphere)/\(knnRows) rows, \
            the spheroid one in \(knnIsSpheroid).
            """)
        #expect(mismatches.isEmpty, Self.summary(mismatches, of: queries.count))
        #expect(compared > 6000, "too few hits compared to be meaningful")
    }
}

// MARK: - WITHIN

extension SpatialOracleTests {
    struct PolygonCase {
        let wkt: String
        let kind: String
        /// Cameras that lie on the polygon's boundary by construction (must be found).
        let onBoundary: [String]
    }

    /// A star-shaped ring around (lat, lon): `n` vertices at angles spaced by 2π/n (jittered by up
    /// to 0.8 of the spacing, so that every gap is below π and the ring is simple), at radii
    /// `radius × [0.75, 1]`, or alternating with `radius × [0.25, 0.5]` when `concave`.
    /// `first` replaces vertex 0 (used to put a camera exactly on a vertex). Closed, as (lon, lat).
    static func starRing(lat: Double, lon: Double, radius: Double, n: Int, concave: Bool, rotation: Double,
                         first: (lon: Double, lat: Double)? = nil, rng: inout SeededRandom) -> [(lon: Double, lat: Double)] {
        var ring: [(lon: Double, lat: Double)] = []
        for i in 0..<n {
            let a = rotation + (Double(i) + (i == 0 && first != nil ? 0 : Double.random(in: 0...0.8, using: &rng))) * 2 * .pi / Double(n)
            let r = radius * (concave && i % 2 == 1 ? Double.random(in: 0.25...0.5, using: &rng) : Double.random(in: 0.75...1, using: &rng))
            ring.append((lon + r * cos(a) / metresPerDegreeLon, lat + r * sin(a) / metresPerDegreeLat))
        }
        if let first { ring[0] = first }
        ring.append(ring[0])
        return ring
    }

    static func ringText(_ ring: [(lon: Double, lat: Double)]) -> String {
        "(" + ring.map { "\($0.lon) \($0.lat)" }.joined(separator: ", ") + ")"
    }

    static func polygonCases(cameras: [Camera]) -> [PolygonCase] {
        var rng = SeededRandom(seed: 0x5749_5448)
        func centre(margin metres: Double) -> (lat: Double, lon: Double) {
            let dLat = metres / metresPerDegreeLat, dLon = metres / metresPerDegreeLon
            return (Double.random(in: (BenCat.minLat + dLat)...(BenCat.maxLat - dLat), using: &rng),
                    Double.random(in: (BenCat.minLon + dLon)...(BenCat.maxLon - dLon), using: &rng))
        }
        var cases: [PolygonCase] = []
        for i in 0..<1000 {
            let across = Double.random(in: 100...3000, using: &rng)
            let radius = across / 2
            let rotation = Double.random(in: 0..<(2 * .pi), using: &rng)
            switch i % 20 {
            case 0..<14:  // convex-ish (12 in 20) or concave (2 in 20)
                let concave = i % 20 >= 12
                let c = centre(margin: radius)
                let ring = starRing(lat: c.lat, lon: c.lon, radius: radius, n: Int.random(in: 4...10, using: &rng),
                                    concave: concave, rotation: rotation, rng: &rng)
                cases.append(PolygonCase(wkt: "POLYGON(\(ringText(ring)))", kind: concave ? "concave" : "convex", onBoundary: []))
            case 14:  // with a hole (the shell keeps ≥ 0.44 R from the centre for n ≥ 6; the hole ≤ 0.3 R)
                let c = centre(margin: radius)
                let shell = starRing(lat: c.lat, lon: c.lon, radius: radius, n: Int.random(in: 6...10, using: &rng),
                                     concave: false, rotation: rotation, rng: &rng)
                let hole = starRing(lat: c.lat, lon: c.lon, radius: 0.3 * radius, n: Int.random(in: 4...6, using: &rng),
                                    concave: false, rotation: rotation, rng: &rng)
                cases.append(PolygonCase(wkt: "POLYGON(\(ringText(shell)), \(ringText(hole)))", kind: "hole", onBoundary: []))
            case 15:  // two disjoint parts
                let c = centre(margin: radius * 1.2)
                let dx = 0.6 * radius * cos(rotation), dy = 0.6 * radius * sin(rotation)
                let a = starRing(lat: c.lat + dy / metresPerDegreeLat, lon: c.lon + dx / metresPerDegreeLon, radius: radius / 2,
                                 n: Int.random(in: 4...8, using: &rng), concave: false, rotation: rotation, rng: &rng)
                let b = starRing(lat: c.lat - dy / metresPerDegreeLat, lon: c.lon - dx / metresPerDegreeLon, radius: radius / 2,
                                 n: Int.random(in: 4...8, using: &rng), concave: i % 40 == 15, rotation: -rotation, rng: &rng)
                cases.append(PolygonCase(wkt: "MULTIPOLYGON((\(ringText(a))), (\(ringText(b))))", kind: "multi", onBoundary: []))
            case 16, 17:  // a camera exactly on a vertex
                let cam = cameras[Int.random(in: 0..<cameras.count, using: &rng)]
                let r0 = radius * Double.random(in: 0.75...1, using: &rng)
                let cLat = cam.lat - r0 * sin(rotation) / metresPerDegreeLat
                let cLon = cam.lon - r0 * cos(rotation) / metresPerDegreeLon
                let ring = starRing(lat: cLat, lon: cLon, radius: radius, n: Int.random(in: 4...10, using: &rng),
                                    concave: i % 20 == 17, rotation: rotation, first: (cam.lon, cam.lat), rng: &rng)
                cases.append(PolygonCase(wkt: "POLYGON(\(ringText(ring)))", kind: "camera vertex", onBoundary: [cam.id]))
            default:  // a rectangle whose edges go through cameras' exact coordinates
                let cam = cameras[Int.random(in: 0..<cameras.count, using: &rng)]
                let w = across / metresPerDegreeLon, h = Double.random(in: 100...3000, using: &rng) / metresPerDegreeLat
                var minX = cam.lon, minY = cam.lat - h * Double.random(in: 0.1...0.9, using: &rng)
                var maxX = cam.lon + w, maxY = minY + h
                var boundary = [cam.id]
                var kind = "camera on edge"
                if i % 40 == 19 {  // a corner on the camera
                    (minX, maxX, maxY) = (cam.lon - w, cam.lon, cam.lat)
                    minY = cam.lat - h
                    kind = "camera corner"
                } else if i % 40 == 38 {
                    // Edges through four cameras of the neighbourhood (each lies on the boundary).
                    let nearby = cameras.filter {
                        abs($0.lat - cam.lat) * metresPerDegreeLat < 1500 && abs($0.lon - cam.lon) * metresPerDegreeLon < 1500
                    }
                    if nearby.count >= 4 {
                        let four = (0..<4).map { _ in nearby[Int.random(in: 0..<nearby.count, using: &rng)] }
                        let west = four.min { $0.lon < $1.lon }!, east = four.max { $0.lon < $1.lon }!
                        let south = four.min { $0.lat < $1.lat }!, north = four.max { $0.lat < $1.lat }!
                        if east.lon - west.lon > 2e-4 && north.lat - south.lat > 2e-4 {
                            (minX, maxX, minY, maxY) = (west.lon, east.lon, south.lat, north.lat)
                            boundary = [west.id, east.id, south.id, north.id]
                            kind = "four cameras on edges"
                        }
                    }
                }
                let ring = [(minX, minY), (maxX, minY), (maxX, maxY), (minX, maxY), (minX, minY)].map { (lon: $0.0, lat: $0.1) }
                cases.append(PolygonCase(wkt: "POLYGON(\(ringText(ring)))", kind: kind, onBoundary: boundary))
            }
        }
        return cases
    }

    @Test func withinEqualsPostGISOn1000RandomPolygons() async throws {
        let (pg, index, cameras) = try await Self.fixture()
        let cases = Self.polygonCases(cameras: cameras)
        var mismatches: [String] = []
        var hits = 0, nonEmpty = 0, boundaryChecked = 0
        var kinds: [String: Int] = [:]
        let sql = """
            SELECT id FROM oracle_cams
            WHERE status <> 'retired' AND ST_Intersects(ST_GeomFromText($1, 4326), g::geometry) ORDER BY id COLLATE "C"
            """
        for p in cases {
            kinds[p.kind, default: 0] += 1
            let valid = try pg.query("SELECT ST_IsValid(ST_GeomFromText($1, 4326))", [p.wkt]).scalar()
            guard valid == "t" else {
                mismatches.append("\(p.kind) polygon invalid for PostGIS (test generator): \(p.wkt)")
                continue
            }
            let want = try pg.query(sql, [p.wkt]).rows.map { $0[0]! }
            let got: [String]
            do {
                got = try index.within(wkt: p.wkt).map(\.id)
            } catch {
                mismatches.append("\(p.kind) within(wkt: \"\(p.wkt)\") threw \(error)")
                continue
            }
            if got != want {
                let missing = Set(want).subtracting(got).sorted(), extra = Set(got).subtracting(want).sorted()
                mismatches.append("\(p.kind) within(wkt: \"\(p.wkt)\"): missing \(missing), extra \(extra) (PostGIS \(want.count), ours \(got.count))")
            }
            for id in p.onBoundary {
                boundaryChecked += 1
                if !got.contains(id) { mismatches.append("\(p.kind): boundary camera \(id) not found by within(wkt: \"\(p.wkt)\")") }
                if !want.contains(id) { mismatches.append("\(p.kind): boundary camera \(id) not found by PostGIS for \(p.wkt)") }
            }
            hits += want.count
            if !want.isEmpty { nonEmpty += 1 }
        }
        print("""
            SpatialOracle WITHIN: \(cases.count) polygons \(kinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }), \
            \(nonEmpty) non-empty, \(hits) hits, \(boundaryChecked) cameras on boundaries by construction, \
            \(mismatches.count) mismatches.
            """)
        #expect(mismatches.isEmpty, Self.summary(mismatches, of: cases.count))
        #expect(nonEmpty > 350 && hits > 4000, "too few hits to be meaningful")
    }
}

// MARK: - ALONG

extension SpatialOracleTests {
    struct RouteCase: CustomStringConvertible {
        let points: [(lat: Double, lon: Double)]
        let width: Double
        var wkt: String { "LINESTRING(" + points.map { "\($0.lon) \($0.lat)" }.joined(separator: ", ") + ")" }
        var description: String {
            "along(route: [" + points.map { "(\($0.lat), \($0.lon))" }.joined(separator: ", ") + "], width: \(width))"
        }
    }

    static func routeCases(cameras: [Camera]) -> [RouteCase] {
        var rng = SeededRandom(seed: 0x414C_4F4E)
        let inset = 0.002
        func inside(_ p: (lat: Double, lon: Double)) -> Bool {
            p.lat > BenCat.minLat + inset && p.lat < BenCat.maxLat - inset && p.lon > BenCat.minLon + inset && p.lon < BenCat.maxLon - inset
        }
        var cases: [RouteCase] = []
        for i in 0..<1000 {
            let n = Int.random(in: 2...6, using: &rng)
            let width = Double.random(in: 10...300, using: &rng)
            var points: [(lat: Double, lon: Double)] = []
            if i % 10 == 9 {
                // Vertices on cameras (distance 0 on both sides), 60 m – 1.9 km apart.
                var cam = cameras[Int.random(in: 0..<cameras.count, using: &rng)]
                points.append((cam.lat, cam.lon))
                while points.count < n {
                    let options = cameras.filter {
                        let dy = ($0.lat - cam.lat) * metresPerDegreeLat, dx = ($0.lon - cam.lon) * metresPerDegreeLon
                        let d = (dx * dx + dy * dy).squareRoot()
                        return d > 60 && d < 1900
                    }
                    guard !options.isEmpty else { break }
                    cam = options[Int.random(in: 0..<options.count, using: &rng)]
                    points.append((cam.lat, cam.lon))
                }
            }
            if points.count < 2 {
                points = [(Double.random(in: (BenCat.minLat + inset)...(BenCat.maxLat - inset), using: &rng),
                           Double.random(in: (BenCat.minLon + inset)...(BenCat.maxLon - inset), using: &rng))]
                while points.count < n {
                    var next = points.last!
                    for _ in 0..<50 {
                        let p = Geodesic.wgs84.direct(lat: points.last!.lat, lon: points.last!.lon,
                                                      azimuth: Double.random(in: -180..<180, using: &rng),
                                                      distance: Double.random(in: 50...2000, using: &rng))
                        if inside(p) { next = p; break }
                    }
                    points.append(next)
                }
            }
            cases.append(RouteCase(points: points, width: width))
        }
        return cases
    }

    /// The distance from (lat, lon) to a route of geodesic segments, found without `GeodesicPath`:
    /// for each segment, the best of 65 evenly spaced points, then a golden-section search between
    /// its neighbours (the distance along a segment of ≤ 2 km to a point ≤ 300 m away is unimodal).
    /// Used to tell which side is right where ours and PostGIS differ by more than a millimetre.
    static func independentRouteDistance(_ points: [(lat: Double, lon: Double)], lat: Double, lon: Double) -> Double {
        let g = Geodesic.wgs84
        var best = Double.infinity
        for (a, b) in zip(points, points.dropFirst()) {
            let seg = g.inverse(lat1: a.lat, lon1: a.lon, lat2: b.lat, lon2: b.lon)
            func f(_ t: Double) -> Double {
                let p = g.direct(lat: a.lat, lon: a.lon, azimuth: seg.azimuth1, distance: t)
                return g.distance(lat1: p.lat, lon1: p.lon, lat2: lat, lon2: lon)
            }
            let n = 64
            var bestI = 0, bestV = Double.infinity
            for i in 0...n {
                let v = f(seg.distance * Double(i) / Double(n))
                if v < bestV { (bestI, bestV) = (i, v) }
            }
            var lo = seg.distance * Double(max(0, bestI - 1)) / Double(n)
            var hi = seg.distance * Double(min(n, bestI + 1)) / Double(n)
            let r = (5.0.squareRoot() - 1) / 2
            var x1 = hi - r * (hi - lo), x2 = lo + r * (hi - lo)
            var f1 = f(x1), f2 = f(x2)
            for _ in 0..<90 {
                if f1 <= f2 {
                    (hi, x2, f2) = (x2, x1, f1)
                    x1 = hi - r * (hi - lo)
                    f1 = f(x1)
                } else {
                    (lo, x1, f1) = (x1, x2, f2)
                    x2 = lo + r * (hi - lo)
                    f2 = f(x2)
                }
            }
            best = min(best, bestV, f1, f2)
        }
        return best
    }

    @Test func alongEqualsPostGISOn1000RandomRoutes() async throws {
        let (pg, index, cameras) = try await Self.fixture()
        let cases = Self.routeCases(cameras: cameras)
        let slack = 0.05  // both sides are also asked at width + 5 cm, to get both distances near the edge
        let tolerance = 0.02
        var mismatches: [String] = []
        var hits = 0, nonEmpty = 0, compared = 0, tolerated: [String] = [], toleratedOuter = 0
        var maxDifference = 0.0, maxRelative = 0.0, arbitrated = 0, maxIndependent = 0.0
        let sql = """
            SELECT o.id, ST_Distance(q.r, o.g), ST_DWithin(q.r, o.g, $2::float8)
            FROM oracle_cams o, (SELECT ST_GeomFromText($1, 4326)::geography AS r) q
            WHERE o.status <> 'retired' AND ST_DWithin(q.r, o.g, $3::float8)
            """
        for route in cases {
            let w = route.width
            let rows = try pg.query(sql, [route.wkt, w.description, (w + slack).description]).rows
            var pgDistance: [String: Double] = [:]
            var pgWithin = Set<String>()
            for r in rows {
                pgDistance[r[0]!] = try Self.double(r[1])
                if r[2] == "t" { pgWithin.insert(r[0]!) }
            }
            let got: [RouteHit], wider: [RouteHit]
            do {
                got = try index.along(route: route.points, width: w)
                wider = try index.along(route: route.points, width: w + slack)
            } catch {
                mismatches.append("\(route) threw \(error)")
                continue
            }
            var ourDistance: [String: Double] = [:]
            for h in wider { ourDistance[h.camera.id] = h.distance }

            // Our own contract: ordered by (along, distance, id), within the width, and the same
            // as the wider search cut at the width.
            for (a, b) in zip(got, got.dropFirst())
            where (a.alongMetres, a.distance, a.camera.id) >= (b.alongMetres, b.distance, b.camera.id) {
                mismatches.append("\(route): not ordered: \(a.camera.id) (\(a.alongMetres), \(a.distance)) before \(b.camera.id) (\(b.alongMetres), \(b.distance))")
                break
            }
            if let h = got.first(where: { !($0.distance <= w) || $0.segmentIndex < 0 || $0.segmentIndex >= route.points.count - 1 }) {
                mismatches.append("\(route): \(h.camera.id) at \(h.distance) m, segment \(h.segmentIndex)")
            }
            if got.map(\.camera.id) != wider.filter({ $0.distance <= w }).map(\.camera.id) {
                mismatches.append("\(route): differs from along(width: \(w + slack)) cut at \(w)")
            }

            // The sets at the width (and at width + slack), exact except within 2 cm of the edge.
            let ours = Set(got.map(\.camera.id))
            for id in ours.symmetricDifference(pgWithin).sorted() {
                let side = ours.contains(id) ? "only ours" : "only PostGIS"
                if let d = ourDistance[id], abs(d - w) <= tolerance {
                    tolerated.append("\(route): \(id) \(side), ours \(d) m, PostGIS \(pgDistance[id].map { "\($0)" } ?? "-") m")
                } else {
                    mismatches.append("\(route): \(id) \(side); ours \(ourDistance[id].map { "\($0)" } ?? "> \(w + slack)") m, PostGIS \(pgDistance[id].map { "\($0)" } ?? "> \(w + slack)") m")
                }
            }
            for id in Set(ourDistance.keys).symmetricDifference(pgDistance.keys).sorted() {
                let d = ourDistance[id] ?? pgDistance[id]!
                if abs(d - (w + slack)) <= tolerance {
                    toleratedOuter += 1
                } else {
                    mismatches.append("\(route) at width \(w + slack): \(id) only \(ourDistance[id] != nil ? "ours" : "PostGIS") at \(d) m")
                }
            }
            // Distances; where they differ by more than a millimetre (and for tolerated cameras),
            // an independent measurement must agree with ours to a micrometre.
            for (id, d) in ourDistance {
                guard let e = pgDistance[id] else { continue }
                compared += 1
                maxDifference = max(maxDifference, abs(d - e))
                if d > 1 { maxRelative = max(maxRelative, abs(d - e) / d) }
                if abs(d - e) > tolerance { mismatches.append("\(route): \(id) distance \(d) m vs PostGIS \(e) m") }
                if abs(d - e) > 0.001 || abs(d - w) <= tolerance {
                    let cam = try #require(index.camera(id: id))
                    let x = Self.independentRouteDistance(route.points, lat: cam.lat, lon: cam.lon)
                    arbitrated += 1
                    maxIndependent = max(maxIndependent, abs(x - d))
                    if abs(x - d) > 1e-6 {
                        mismatches.append("\(route): \(id) ours \(d) m, independent \(x) m, PostGIS \(e) m")
                    }
                }
            }
            hits += ours.union(pgWithin).count
            if !ours.isEmpty { nonEmpty += 1 }
        }
        print("""
            SpatialOracle ALONG: \(cases.count) routes, \(nonEmpty) non-empty, \(hits) hits, \(compared) distances compared \
            (max |ours − PostGIS| \(maxDifference) m, max relative \(maxRelative)), \(tolerated.count) tolerated at the width \
            and \(toleratedOuter) at width + \(slack) m, \(mismatches.count) mismatches; \(arbitrated) distances re-measured \
            independently (differing > 1 mm from PostGIS, or near the width): max |independent − ours| \(maxIndependent) m.
            """ + tolerated.prefix(10).map { "\n  tolerated: " + $0 }.joined())
        #expect(mismatches.isEmpty, Self.summary(mismatches, of: cases.count))
        #expect(tolerated.count * 1000 < hits, "\(tolerated.count) cameras within \(tolerance) m of the width out of \(hits) hits")
        #expect(nonEmpty > 300 && hits > 2500 && compared > 2500, "too few hits to be meaningful")
    }
}
