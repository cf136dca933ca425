import CPROJ
import Foundation
import Geo
import Testing

@Suite("SectorTests")
struct SectorTests {
    /// A camera in Bến Cát (Bình Dương).
    static let lat = 11.05, lon = 106.60
    static let g = Geodesic.wgs84

    /// The point `distance` metres from the camera at `azimuth` (geod_direct).
    static func at(_ azimuth: Double, _ distance: Double) -> (lat: Double, lon: Double) {
        g.direct(lat: lat, lon: lon, azimuth: azimuth, distance: distance)
    }

    static func sector(_ heading: Double?, _ fov: Double, _ range: Double = 100) throws -> Sector {
        try Sector(lat: lat, lon: lon, heading: heading, fov: fov, range: range)
    }

    static func sees(_ s: Sector, _ azimuth: Double, _ distance: Double) -> Bool {
        let p = at(azimuth, distance)
        return s.sees(lat: p.lat, lon: p.lon)
    }

    // MARK: sees(lat:lon:) with hand-computed offsets

    /// Offsets in degrees, converted to metres by hand: at 11.05° N the meridian radius of
    /// curvature is M = a(1−e²)/(1−e² sin²φ)^1.5 ≈ 6 337 570 m, so 0.0004° of latitude ≈ 44.2 m;
    /// the prime-vertical radius is N ≈ 6 378 914 m, so 0.0004° of longitude ≈ 0.0004·π/180·N·cos φ ≈ 43.7 m.
    @Test func handComputedOffsets() throws {
        let north = (Self.lat + 0.0004, Self.lon)        // ≈ 44.2 m north
        let south = (Self.lat - 0.0004, Self.lon)        // ≈ 44.2 m south
        let east = (Self.lat, Self.lon + 0.0004)         // ≈ 43.7 m east (azimuth ≈ 89.99996°)
        let west = (Self.lat, Self.lon - 0.0004)
        let farNorth = (Self.lat + 0.001, Self.lon)      // ≈ 110.6 m north: beyond a 100 m range
        let northEast = (Self.lat + 0.0004, Self.lon + 0.000404)  // ≈ 44.2 m N, 44.1 m E: azimuth ≈ 44.9°

        let h0 = try Self.sector(0, 90)
        #expect(h0.sees(lat: north.0, lon: north.1))
        #expect(!h0.sees(lat: south.0, lon: south.1))
        #expect(!h0.sees(lat: east.0, lon: east.1))     // azimuth ≈ 90 > 45
        #expect(!h0.sees(lat: farNorth.0, lon: farNorth.1))
        #expect(h0.sees(lat: northEast.0, lon: northEast.1))
        #expect(h0.sees(lat: Self.lat, lon: Self.lon))  // the camera's own position

        let h90 = try Self.sector(90, 10)
        #expect(h90.sees(lat: east.0, lon: east.1))
        #expect(!h90.sees(lat: west.0, lon: west.1))
        #expect(!h90.sees(lat: north.0, lon: north.1))
        #expect(!h90.sees(lat: northEast.0, lon: northEast.1))  // 44.9° is outside 85…95

        let h359 = try Self.sector(359, 10)                // 354° … 4°, across north
        #expect(h359.sees(lat: north.0, lon: north.1))
        #expect(!h359.sees(lat: northEast.0, lon: northEast.1))
        #expect(!h359.sees(lat: south.0, lon: south.1))

        // Range 200 m reaches farNorth (≈ 110.6 m).
        #expect(try Self.sector(0, 10, 200).sees(lat: farNorth.0, lon: farNorth.1))
        #expect(!(try Self.sector(0, 10, 110).sees(lat: farNorth.0, lon: farNorth.1)))
        #expect(try Self.sector(0, 10, 111).sees(lat: farNorth.0, lon: farNorth.1))
    }

    @Test func fullDisc() throws {
        for s in [try Self.sector(nil, 90), try Self.sector(123, 360), try Self.sector(nil, 360)] {
            #expect(s.isFullDisc)
            for az in stride(from: 0.0, to: 360, by: 7.5) {
                #expect(Self.sees(s, az, 99.9), "az \(az)")
                #expect(Self.sees(s, az, 100), "boundary at az \(az)")
                #expect(!Self.sees(s, az, 100.01), "outside at az \(az)")
            }
            #expect(s.sees(lat: Self.lat, lon: Self.lon))
        }
    }

    @Test func angularEdgesAndWrapAround() throws {
        // (heading, fov, azimuths seen, azimuths not seen)
        let cases: [(Double, Double, [Double], [Double])] = [
            (0, 10, [0, 4.9, 5, 355, 355.1, 359.99], [5.01, 354.99, 90, 180, 270]),
            (359, 10, [354, 354.01, 359, 0, 3.99, 4], [353.99, 4.01, 180, 90]),
            (90, 10, [85, 90, 95], [84.99, 95.01, 270, 0]),
            (0, 90, [315, 0, 45, 30, 330], [45.01, 314.99, 180, 90]),
            (359, 90, [314, 44, 0, 359], [44.01, 313.99]),
            (90, 90, [45, 135, 90], [44.99, 135.01, 270]),
            (180, 350, [5, 5.01, 90, 180, 270, 355], [0, 4.99, 355.01]),
        ]
        for (h, fov, yes, no) in cases {
            let s = try Self.sector(h, fov)
            for az in yes {
                #expect(Self.sees(s, az, 60), "h \(h) fov \(fov): az \(az) should be seen")
                #expect(Self.sees(s, az, 100), "h \(h) fov \(fov): az \(az) at the range should be seen")
            }
            for az in no {
                #expect(!Self.sees(s, az, 60), "h \(h) fov \(fov): az \(az) should not be seen")
            }
        }
        // fov 359 at heading 0 leaves out 179.5 … 180.5 (exclusive).
        let s = try Self.sector(0, 359)
        #expect(!Self.sees(s, 180, 60))
        #expect(!Self.sees(s, 179.6, 60))
        #expect(Self.sees(s, 179.5, 60))
        #expect(Self.sees(s, 180.5, 60))
    }

    @Test func boundaryPointsAreSeen() throws {
        for (h, fov) in [(0.0, 10.0), (359.0, 10.0), (90.0, 90.0), (0.0, 90.0), (200.0, 270.0), (45.0, 1.0)] {
            let s = try Self.sector(h, fov, 250)
            for d in [0.0, 1e-3, 1, 50, 125.5, 249.999, 250] {
                #expect(Self.sees(s, h - fov / 2, d), "h \(h) fov \(fov) left edge at \(d) m")
                #expect(Self.sees(s, h + fov / 2, d), "h \(h) fov \(fov) right edge at \(d) m")
                if d >= 1 {
                    // 0.001° sideways is ≥ 17 µm at ≥ 1 m: beyond the 1 µm tolerance.
                    #expect(!Self.sees(s, h - fov / 2 - 1e-3, d), "just outside the left edge at \(d) m")
                    #expect(!Self.sees(s, h + fov / 2 + 1e-3, d), "just outside the right edge at \(d) m")
                }
            }
            for az in stride(from: h - fov / 2, through: h + fov / 2, by: max(0.25, fov / 16)) {
                #expect(Self.sees(s, az, 250), "arc at az \(az)")
                #expect(!Self.sees(s, az, 250.001), "beyond the arc at az \(az)")
            }
            #expect(s.sees(lat: Self.lat, lon: Self.lon))
        }
    }

    @Test func invalidParameters() throws {
        #expect(throws: GeoError.self) { try Self.sector(0, 0) }
        #expect(throws: GeoError.self) { try Self.sector(0, 360.5) }
        #expect(throws: GeoError.self) { try Self.sector(0, -10) }
        #expect(throws: GeoError.self) { try Self.sector(0, 90, 0) }
        #expect(throws: GeoError.self) { try Self.sector(0, 90, .infinity) }
        #expect(throws: GeoError.self) { try Self.sector(.nan, 90) }
        #expect(throws: GeoError.self) { try Sector(lat: 91, lon: 0, heading: 0, fov: 90, range: 10) }
        #expect(throws: GeoError.self) { try Sector(lat: 0, lon: 181, heading: 0, fov: 90, range: 10) }
        // Headings are normalised.
        #expect(try Self.sector(-1, 10).heading == 359)
        #expect(try Self.sector(720, 10).heading == 0)
    }

    // MARK: Polygons

    @Test func vertexCounts() throws {
        // fov 10 → 8 chords (the minimum) → apex + 9 arc points + closing apex.
        #expect(try Self.sector(0, 10).localRing().count == 11)
        #expect(try Self.sector(0, 16).arcSegments == 8)
        #expect(try Self.sector(0, 17).arcSegments == 9)
        #expect(try Self.sector(0, 90).localRing().count == 48)  // 45 chords: apex + 46 + apex
        #expect(try Self.sector(nil, 90).localRing().count == 181)
        #expect(try Self.sector(0, 360).arcSegments == 180)
        #expect(try Self.sector(0, 359).arcSegments == 180)
        let ring = try Self.sector(90, 10).localRing()
        #expect(ring.first!.x == 0 && ring.first!.y == 0 && ring.last!.x == 0 && ring.last!.y == 0)
    }

    /// Area of a polygon of n chords over an angle θ at radius r: n · ½ r² sin(θ/n).
    static func chordArea(_ r: Double, _ thetaDegrees: Double, _ n: Int) -> Double {
        Double(n) * 0.5 * r * r * sin(thetaDegrees * .pi / 180 / Double(n))
    }

    @Test func localPolygonAreaAndValidity() throws {
        for (h, fov, r) in [(0.0, 10.0, 100.0), (359.0, 90.0, 500.0), (90.0, 270.0, 1000.0), (nil, 90.0, 250.0), (10.0, 360.0, 30.0)] as [(Double?, Double, Double)] {
            let s = try Self.sector(h, fov, r)
            let poly = try s.localPolygon()
            #expect(try poly.invalidReason() == nil)
            let expected = Self.chordArea(r, s.sweep, s.arcSegments)
            #expect(abs(try poly.area() - expected) <= 1e-9 * expected, "h \(String(describing: h)) fov \(fov)")
            // The chords lose at most 0.03 % of the true sector's area.
            let exact = Double.pi * r * r * s.sweep / 360
            #expect(try poly.area() <= exact && (try poly.area()) >= exact * (1 - 3e-4))
            let lonLat = try s.lonLatPolygon()
            #expect(try lonLat.invalidReason() == nil)
            #expect(lonLat.typeName == "Polygon")
        }
    }

    @Test func ringsAreCounterClockwiseAndOnTheArc() throws {
        let s = try Self.sector(359, 90, 300)
        let ring = s.localRing()
        var twiceArea = 0.0
        for i in 0..<(ring.count - 1) { twiceArea += ring[i].x * ring[i + 1].y - ring[i + 1].x * ring[i].y }
        #expect(twiceArea > 0)  // counter-clockwise
        for p in ring.dropFirst().dropLast() {
            #expect(abs((p.x * p.x + p.y * p.y).squareRoot() - 300) < 1e-9)
        }
        // lon/lat ring vertices are exactly `range` metres from the camera.
        for p in s.lonLatRing().dropFirst().dropLast() {
            #expect(abs(Self.g.distance(lat1: Self.lat, lon1: Self.lon, lat2: p.lat, lon2: p.lon) - 300) < 1e-6)
        }
        // The radii are at heading ± fov/2: 359 + 45 = 44 and 359 − 45 = 314.
        #expect(abs(atan2(ring[1].x, ring[1].y) * 180 / .pi - 44) < 1e-9)
        #expect(abs(atan2(ring[ring.count - 2].x, ring[ring.count - 2].y) * 180 / .pi + 46) < 1e-9)
    }

    /// The local plane is PROJ's ellipsoidal azimuthal equidistant projection centred on the camera.
    @Test func localPlaneIsProjAEQD() throws {
        let s = try Self.sector(0, 90, 500)
        guard let ctx = proj_context_create() else { throw GeoError(.proj, "context") }
        defer { proj_context_destroy(ctx) }
        let def = "+proj=aeqd +lat_0=\(Self.lat) +lon_0=\(Self.lon) +ellps=WGS84 +x_0=0 +y_0=0 +units=m"
        guard let pj = proj_create(ctx, def) else { throw GeoError(.proj, "create") }
        defer { proj_destroy(pj) }
        var rng = SeededRandom(seed: 7)
        for _ in 0..<200 {
            let p = Self.at(Double.random(in: 0..<360, using: &rng), Double.random(in: 0...2000, using: &rng))
            let mine = s.localXY(lat: p.lat, lon: p.lon)
            let out = proj_trans(pj, PJ_FWD, proj_coord(p.lon * .pi / 180, p.lat * .pi / 180, 0, 0))
            #expect(abs(mine.x - out.xy.x) < 1e-6 && abs(mine.y - out.xy.y) < 1e-6, "\(mine) vs \(out.xy.x), \(out.xy.y)")
            let back = s.lonLat(x: mine.x, y: mine.y)
            #expect(abs(back.lat - p.lat) < 1e-11 && abs(back.lon - p.lon) < 1e-11)
        }
        // Known polar coordinates: 300 m at azimuth 30° → (150, 259.8076…).
        let p = Self.at(30, 300)
        let xy = s.localXY(lat: p.lat, lon: p.lon)
        #expect(abs(xy.x - 150) < 1e-6 && abs(xy.y - 300 * 3.0.squareRoot() / 2) < 1e-6)
    }

    /// `sees` agrees with the polygons everywhere except in the thin band between the chords and
    /// the true arc (distance in (r·cos 1°, r]).
    @Test func seesAgreesWithPolygons() throws {
        var rng = SeededRandom(seed: 42)
        let ctx = GEOSContext.current
        for (h, fov) in [(0.0, 10.0), (359.0, 90.0), (90.0, 10.0), (180.0, 300.0)] as [(Double?, Double)] + [(nil, 90)] {
            let s = try Self.sector(h, fov, 200)
            let local = try PreparedGeometry(s.localPolygon(context: ctx))
            let lonLat = try PreparedGeometry(s.lonLatPolygon(context: ctx))
            for _ in 0..<400 {
                let az = Double.random(in: 0..<360, using: &rng), d = Double.random(in: 0...260, using: &rng)
                let p = Self.at(az, d)
                let seen = s.sees(lat: p.lat, lon: p.lon)
                #expect(seen == (d <= 200 && (h == nil || abs(((az - h! + 540).truncatingRemainder(dividingBy: 360)) - 180) <= fov / 2)))
                if d > 200 * cos(.pi / 180) && d <= 200 { continue }
                let xy = s.localXY(lat: p.lat, lon: p.lon)
                #expect(try local.intersects(x: xy.x, y: xy.y) == seen, "local: az \(az) d \(d)")
                // lon/lat edges are straight in degrees; away from the edges they agree too.
                if abs(d - 200) > 0.5, d > 0.5, h == nil || abs(abs(((az - h! + 540).truncatingRemainder(dividingBy: 360)) - 180) - fov / 2) > 0.05 {
                    #expect(try lonLat.intersects(x: p.lon, y: p.lat) == seen, "lonlat: az \(az) d \(d)")
                }
            }
        }
    }

    @Test func utmPolygonMatchesLocalArea() throws {
        let s = try Self.sector(45, 120, 800)
        let utm = try UTMProjection(lat: Self.lat, lon: Self.lon)
        #expect(utm.epsg == 32648)
        let a = try s.polygon(in: utm).area(), b = try s.localPolygon().area()
        // UTM scale in zone 48 near 106.6° E is about 0.9996–0.9997: areas within 0.1 %.
        #expect(abs(a / b - 1) < 1e-3)
    }

    // MARK: Prepared intersection tests

    @Test func intersectsLinesAndPolygons() throws {
        let s = try Self.sector(0, 90, 100)  // looks north, 315°…45°
        let ps = try s.prepared()
        // A street crossing the view from west to east 50 m north of the camera.
        let w = Self.at(270, 300), e = Self.at(90, 300)
        func street(_ lat: Double) throws -> Geometry { try Geometry.wkt("LINESTRING(\(w.lon) \(lat), \(e.lon) \(lat))") }
        #expect(try ps.intersects(street(Self.at(0, 50).lat)))
        // The same street 120 m north: beyond the range.
        #expect(!(try ps.intersects(street(Self.at(0, 120).lat))))
        // A street 50 m south: behind the camera.
        #expect(!(try ps.intersects(street(Self.at(180, 50).lat))))
        // A line through the camera's position touches the apex.
        let a = Self.at(135, 80), b = Self.at(315, 200)
        #expect(try ps.intersects(Geometry.wkt("LINESTRING(\(a.lon) \(a.lat), \(Self.lon) \(Self.lat), \(b.lon) \(b.lat))")))
        // A segment from 80 m at azimuth 90° to 80 m at 50°: along a straight segment the azimuth
        // from the camera moves monotonically between its ends, so it never enters 315°…45°.
        let p1 = Self.at(90, 80), p2 = Self.at(50, 80)
        #expect(!(try ps.intersects(Geometry.wkt("LINESTRING(\(p1.lon) \(p1.lat), \(p2.lon) \(p2.lat))"))))
        // Extended to 80 m at azimuth 10°, it does.
        let p3 = Self.at(10, 80)
        #expect(try ps.intersects(Geometry.wkt("LINESTRING(\(p1.lon) \(p1.lat), \(p2.lon) \(p2.lat), \(p3.lon) \(p3.lat))")))
        // A polygon incident around the camera intersects; one far away does not.
        let around = try Geometry.wkt("POLYGON((\(Self.lon - 0.001) \(Self.lat - 0.001), \(Self.lon + 0.001) \(Self.lat - 0.001), \(Self.lon + 0.001) \(Self.lat + 0.001), \(Self.lon - 0.001) \(Self.lat + 0.001), \(Self.lon - 0.001) \(Self.lat - 0.001)))")
        #expect(try ps.intersects(around))
        #expect(try s.intersects(around))
        let far = try Geometry.wkt("POLYGON((\(Self.lon + 0.01) \(Self.lat), \(Self.lon + 0.02) \(Self.lat), \(Self.lon + 0.02) \(Self.lat + 0.01), \(Self.lon + 0.01) \(Self.lat)))")
        #expect(!(try ps.intersects(far)))
        // A small square 60 m north is entirely in view; the square around the camera is not.
        let c = Self.at(0, 60)
        let inView = try Geometry.wkt("POLYGON((\(c.lon - 0.0001) \(c.lat - 0.0001), \(c.lon + 0.0001) \(c.lat - 0.0001), \(c.lon + 0.0001) \(c.lat + 0.0001), \(c.lon - 0.0001) \(c.lat + 0.0001), \(c.lon - 0.0001) \(c.lat - 0.0001)))")
        #expect(try ps.contains(inView))
        #expect(!(try ps.contains(around)))
        // A point incident is judged exactly (sees): on the arc at azimuth 0°, midway between two
        // arc vertices (at ±1°), it is seen although the inscribed polygon's chord passes
        // 100·(1 − cos 1°) ≈ 1.5 cm inside it.
        let onArc = Self.at(0, 100), inBand = Self.at(0, 99.99)
        #expect(try ps.intersects(Geometry.point(x: onArc.lon, y: onArc.lat)))
        #expect(try ps.intersects(Geometry.point(x: inBand.lon, y: inBand.lat)))
        #expect(!(try ps.intersects(Geometry.point(x: Self.at(0, 100.001).lon, y: Self.at(0, 100.001).lat))))
        let local = try s.localPolygon()
        #expect(!(try local.intersects(s.localGeometry(Geometry.point(x: inBand.lon, y: inBand.lat)))))
        #expect(try local.intersects(s.localGeometry(Geometry.point(x: Self.at(0, 99.98).lon, y: Self.at(0, 99.98).lat))))
        // A tiny segment lying in that band misses the polygon (the documented chord approximation).
        let b1 = Self.at(-0.1, 99.99), b2 = Self.at(0.1, 99.99)
        #expect(!(try ps.intersects(Geometry.wkt("LINESTRING(\(b1.lon) \(b1.lat), \(b2.lon) \(b2.lat))"))))
    }

    @Test func preparedGeometryErrorsAndPredicates() throws {
        let square = try Geometry.wkt("POLYGON((0 0, 10 0, 10 10, 0 10, 0 0))")
        let p = try PreparedGeometry(square)
        #expect(try p.intersects(x: 5, y: 5))
        #expect(try p.intersects(x: 10, y: 5))     // boundary: intersects
        #expect(!(try p.contains(x: 10, y: 5)))    // boundary: not contained
        #expect(try p.covers(Geometry.point(x: 10, y: 10)))
        #expect(!(try p.intersects(x: 10.000001, y: 5)))
        #expect(try p.contains(Geometry.wkt("LINESTRING(1 1, 9 9)")))
        #expect(!(try p.contains(Geometry.wkt("LINESTRING(1 1, 11 9)"))))
        #expect(try p.intersects(Geometry.wkt("LINESTRING(1 1, 11 9)")))
        // Polygon construction checks.
        #expect(throws: GeoError.self) { try Geometry.polygon(ring: [(0, 0), (1, 1)]) }
        #expect(try Geometry.polygon(ring: [(0, 0), (1, 0), (1, 1)]).area() == 0.5)
        #expect(throws: GeoError.self) { try Geometry.lineString([(0, 0)]) }
        #expect(try Geometry.lineString([(0, 0), (3, 4)]).length() == 5)
        // A bad coordinate in the geometry to map into the local plane is reported.
        let s = try Self.sector(0, 90)
        #expect(throws: GeoError.self) { try s.localGeometry(Geometry.wkt("POINT(0 95)")) }
    }
}
