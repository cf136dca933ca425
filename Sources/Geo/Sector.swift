import CGEOS
import Foundation

/// A camera's field of view on the WGS84 ellipsoid: every point whose geodesic distance from the
/// camera is at most ``range`` and whose azimuth from the camera is within ``heading`` ± ``fov``/2
/// (a full disc when the heading is unknown or the FOV is 360°).
///
/// ``sees(lat:lon:)`` is the definition and is evaluated exactly with PROJ's geodesic routines
/// (Karney's `geod_inverse`). The polygons are built in the camera's **local azimuthal-equidistant
/// plane** (ellipsoidal AEQD centred on the camera, the projection PROJ's `+proj=aeqd +ellps=WGS84`
/// computes): there a point at geodesic distance *s* and azimuth *α* from the camera is at
/// `(x, y) = (s·sin α, s·cos α)` metres (x east, y north), so the two straight radii of the
/// sector polygon are exactly the geodesics at heading ± fov/2 and the arc has the exact radius.
/// The only approximation is the arc's chords: one vertex every ≤ ``maxDegreesPerSegment``°, at
/// least ``minimumArcSegments`` segments; the polygon is inscribed, so it misses at most
/// `range·(1 − cos 1°)` ≈ 0.015 % of the range (15 cm at 1 km) at the middle of each chord.
///
/// The AEQD mapping is computed with `geod_inverse` / `geod_direct` themselves (no `PJ` object),
/// so a `Sector` is a plain value, safe to share between threads; GEOS objects made from it
/// belong to the context they were made with.
public struct Sector: Sendable, Hashable {
    /// Camera latitude (WGS84 degrees).
    public let lat: Double
    /// Camera longitude (WGS84 degrees).
    public let lon: Double
    /// Direction of the centre of view, degrees clockwise from north, normalised to [0, 360);
    /// `nil` = unknown (the sector is then a full disc).
    public let heading: Double?
    /// Field of view in degrees, 0 < fov ≤ 360.
    public let fov: Double
    /// Range in metres (> 0).
    public let range: Double

    /// Largest angle (degrees) one chord of the arc may span.
    public static let maxDegreesPerSegment = 2.0
    /// Fewest chords used for an arc, however narrow.
    public static let minimumArcSegments = 8
    /// Slack of ``sees(lat:lon:)`` at the boundary, metres: a point at most this far outside the
    /// sector (beyond the range, or sideways from a straight edge) still counts, so that points
    /// constructed on the boundary are seen despite floating-point rounding (a lat/lon double
    /// itself is only resolved to about a nanometre).
    public static var boundaryTolerance: Double { 1e-6 }

    /// A sector; throws ``GeoError/Code/invalidGeometry`` for a position outside ±90/±180, a
    /// non-finite heading, fov outside (0, 360] or a range that is not a positive number.
    public init(lat: Double, lon: Double, heading: Double?, fov: Double, range: Double) throws {
        guard lat.isFinite, lon.isFinite, (-90...90).contains(lat), (-180...180).contains(lon) else {
            throw GeoError(.invalidGeometry, "camera position (\(lat), \(lon)) is outside the WGS84 range")
        }
        if let h = heading, !h.isFinite { throw GeoError(.invalidGeometry, "heading must be a finite number") }
        guard fov.isFinite, fov > 0, fov <= 360 else {
            throw GeoError(.invalidGeometry, "fov must be greater than 0 and at most 360 degrees")
        }
        guard range.isFinite, range > 0 else { throw GeoError(.invalidGeometry, "range must be a positive number of metres") }
        self.lat = lat
        self.lon = lon
        self.heading = heading.map(Self.normalized)
        self.fov = fov
        self.range = range
    }

    /// True when the view is a full disc (heading unknown or FOV 360°).
    public var isFullDisc: Bool { heading == nil || fov >= 360 }

    /// The angle the arc sweeps: 360 for a full disc, else ``fov``.
    public var sweep: Double { isFullDisc ? 360 : fov }

    /// How many chords approximate the arc: `max(8, ⌈sweep / 2°⌉)`.
    public var arcSegments: Int {
        max(Self.minimumArcSegments, Int((sweep / Self.maxDegreesPerSegment - 1e-9).rounded(.up)))
    }

    /// Whether the camera sees (lat, lon): geodesic distance ≤ range and azimuth from the camera
    /// within heading ± fov/2, both inclusive (a point on the boundary is seen; so is the camera's
    /// own position). Exact up to ``boundaryTolerance`` (1 µm).
    public func sees(lat: Double, lon: Double) -> Bool {
        guard lat.isFinite, lon.isFinite, (-90...90).contains(lat) else { return false }
        let g = Geodesic.wgs84.inverse(lat1: self.lat, lon1: self.lon, lat2: lat, lon2: lon)
        return sees(distance: g.distance, azimuth: g.azimuth1)
    }

    /// ``sees(lat:lon:)`` for a point whose geodesic from the camera is already measured:
    /// `distance` in metres and `azimuth` (degrees) at the camera, as `geod_inverse` from the
    /// camera to the point gives them (a search hit has both).
    public func sees(distance: Double, azimuth: Double) -> Bool {
        Self.sees(distance: distance, azimuth: azimuth, heading: heading, fov: fov, range: range)
    }

    /// ``sees(distance:azimuth:)`` for the sector of a camera given by its members, already
    /// valid (a registered camera's), without making a `Sector`: a search tests every hit.
    public static func sees(distance: Double, azimuth: Double, heading rawHeading: Double?, fov: Double, range: Double) -> Bool {
        guard distance <= range + boundaryTolerance else { return false }
        guard let rawHeading, fov < 360 else { return true }
        return seesWithin(distance: distance, azimuth: azimuth, heading: normalized(rawHeading), fov: fov)
    }

    /// The angular part of ``sees(distance:azimuth:heading:fov:range:)``: within heading ± fov/2,
    /// or within the tolerance of the nearer straight edge.
    static func seesWithin(distance: Double, azimuth: Double, heading: Double, fov: Double) -> Bool {
        let excess = abs(Self.signedDifference(azimuth, heading)) - fov / 2
        if excess <= 0 { return true }
        // Outside the angle: seen only when within the tolerance of the nearer straight edge.
        return excess < 90 && distance * sin(excess * .pi / 180) <= Self.boundaryTolerance
            || distance <= Self.boundaryTolerance
    }

    // MARK: Local azimuthal-equidistant plane

    /// (lat, lon) in the camera's local azimuthal-equidistant plane, metres (x east, y north):
    /// `(s·sin α, s·cos α)` for geodesic distance `s` and azimuth `α` from the camera.
    public func localXY(lat: Double, lon: Double) -> (x: Double, y: Double) {
        Self.aeqdForward(lat0: self.lat, lon0: self.lon, lat: lat, lon: lon)
    }

    /// The inverse of ``localXY(lat:lon:)``: the point at geodesic distance `hypot(x, y)` and
    /// azimuth `atan2(x, y)` from the camera. Longitudes are unrolled to stay within 180° of the
    /// camera's (so a sector across the antimeridian stays one piece; values may pass ±180).
    public func lonLat(x: Double, y: Double) -> (lon: Double, lat: Double) {
        let s = (x * x + y * y).squareRoot()
        guard s > 0 else { return (lon, lat) }
        let az = atan2(x, y) * 180 / .pi
        let p = Geodesic.wgs84.direct(lat: lat, lon: lon, azimuth: az, distance: s)
        return (lon + Self.signedDifference(p.lon, lon), p.lat)
    }

    /// The azimuths (degrees) of the arc vertices, in counter-clockwise order (decreasing
    /// azimuth): from heading + fov/2 down to heading − fov/2, or 360 − k·step for a full disc.
    private func arcAzimuths() -> [Double] {
        let n = arcSegments
        let step = sweep / Double(n)
        if isFullDisc {
            return (0..<n).map { 360 - Double($0) * step }
        }
        let h = heading ?? 0
        let end = h + fov / 2
        return (0...n).map { i in i == n ? h - fov / 2 : end - Double(i) * step }
    }

    /// The closed polygon ring in the local plane (metres), counter-clockwise (GeoJSON's
    /// right-hand rule): apex (0, 0), the arc from heading + fov/2 to heading − fov/2, apex again;
    /// for a full disc just the closed arc. Arc vertices lie exactly at distance ``range``.
    public func localRing() -> [(x: Double, y: Double)] {
        var ring: [(x: Double, y: Double)] = []
        let azimuths = arcAzimuths()
        ring.reserveCapacity(azimuths.count + 2)
        if !isFullDisc { ring.append((0, 0)) }
        for a in azimuths {
            let r = a * .pi / 180
            ring.append((range * sin(r), range * cos(r)))
        }
        ring.append(ring[0])
        return ring
    }

    /// The same ring in WGS84 (lon, lat) degrees, counter-clockwise: each arc vertex is the point
    /// reached from the camera along the geodesic at its azimuth after ``range`` metres
    /// (`geod_direct`, i.e. the exact inverse AEQD of the local vertex). Longitudes are unrolled
    /// around the camera's (see ``lonLat(x:y:)``).
    public func lonLatRing() -> [(lon: Double, lat: Double)] {
        var ring: [(lon: Double, lat: Double)] = []
        let azimuths = arcAzimuths()
        ring.reserveCapacity(azimuths.count + 2)
        if !isFullDisc { ring.append((lon, lat)) }
        for a in azimuths {
            let p = Geodesic.wgs84.direct(lat: lat, lon: lon, azimuth: a, distance: range)
            ring.append((lon + Self.signedDifference(p.lon, lon), p.lat))
        }
        ring.append(ring[0])
        return ring
    }

    /// The sector polygon in the local AEQD plane (metres), for GEOS tests and areas.
    public func localPolygon(context: GEOSContext = .current) throws -> Geometry {
        try Geometry.polygon(ring: localRing().map { ($0.x, $0.y) }, context: context)
    }

    /// The sector polygon in WGS84 (x = lon, y = lat), for output (WKT / GeoJSON).
    public func lonLatPolygon(context: GEOSContext = .current) throws -> Geometry {
        try Geometry.polygon(ring: lonLatRing().map { ($0.lon, $0.lat) }, context: context)
    }

    /// The sector polygon in a UTM zone (e.g. a common plane for the coverage of several cameras):
    /// the vertices of ``lonLatRing()`` projected with `projection` (use it on one thread).
    public func polygon(in projection: UTMProjection, context: GEOSContext = .current) throws -> Geometry {
        let ring = try lonLatRing().map { p -> (Double, Double) in
            let xy = try projection.forward(lon: p.lon, lat: p.lat)
            return (xy.x, xy.y)
        }
        return try Geometry.polygon(ring: ring, context: context)
    }

    /// A copy of `geometry` (WGS84: x = lon, y = lat) with every coordinate mapped into this
    /// camera's local AEQD plane. Edges stay straight between the mapped vertices, i.e. they are
    /// taken as geodesics (straight lines through the camera are exactly geodesics there; other
    /// edges of a few km deviate from the geodesic by well under a millimetre).
    public func localGeometry(_ geometry: Geometry) throws -> Geometry {
        let ctx = geometry.context
        var centre = (lat, lon)
        let out = withUnsafeMutablePointer(to: &centre) { centrePtr in
            GEOSGeom_transformXY_r(ctx.handle, geometry.raw, { x, y, userdata in
                guard let x, let y, let userdata else { return 0 }
                let c = userdata.assumingMemoryBound(to: (Double, Double).self).pointee
                let lon = x.pointee, lat = y.pointee
                guard lat.isFinite, lon.isFinite, abs(lat) <= 90 else { return 0 }
                let p = Sector.aeqdForward(lat0: c.0, lon0: c.1, lat: lat, lon: lon)
                guard p.x.isFinite, p.y.isFinite else { return 0 }
                x.pointee = p.x
                y.pointee = p.y
                return 1
            }, centrePtr)
        }
        return try Geometry(context: ctx, taking: out, "transform to the camera's local plane")
    }

    /// This sector's polygons with a prepared geometry, for many intersection tests.
    public func prepared(context: GEOSContext = .current) throws -> PreparedSector {
        try PreparedSector(self, context: context)
    }

    /// Whether the view intersects `geometry` (WGS84 lon/lat: a point, line or polygon incident).
    /// Builds a ``PreparedSector`` each call; keep one for repeated tests.
    public func intersects(_ geometry: Geometry) throws -> Bool {
        try prepared(context: geometry.context).intersects(geometry)
    }

    // MARK: Helpers

    /// `a − b` in degrees, wrapped to [−180, 180).
    static func signedDifference(_ a: Double, _ b: Double) -> Double {
        var d = (a - b).truncatingRemainder(dividingBy: 360)
        if d < -180 { d += 360 }
        if d >= 180 { d -= 360 }
        return d
    }

    static func normalized(_ degrees: Double) -> Double {
        var d = degrees.truncatingRemainder(dividingBy: 360)
        if d < 0 { d += 360 }
        return d >= 360 ? 0 : d
    }

    static func aeqdForward(lat0: Double, lon0: Double, lat: Double, lon: Double) -> (x: Double, y: Double) {
        let g = Geodesic.wgs84.inverse(lat1: lat0, lon1: lon0, lat2: lat, lon2: lon)
        guard g.distance > 0 else { return (0, 0) }
        let a = g.azimuth1 * .pi / 180
        return (g.distance * sin(a), g.distance * cos(a))
    }
}

/// A ``Sector``'s polygons and a GEOS prepared geometry over its local-plane polygon, for
/// repeated `intersects` / `contains` tests against incidents.
///
/// Owns its ``Geometry`` objects and ``PreparedGeometry`` (each freed by its own owner). Bound to
/// the ``GEOSContext`` it was made with: use it on one thread at a time. `@unchecked Sendable`
/// only so that an owner can hand it to the thread that will use it.
public final class PreparedSector: @unchecked Sendable {
    /// The sector.
    public let sector: Sector
    /// The sector polygon in the camera's local AEQD plane (metres).
    public let localPolygon: Geometry
    private let prepared: PreparedGeometry

    /// Builds the local polygon of `sector` and prepares it.
    public init(_ sector: Sector, context: GEOSContext = .current) throws {
        self.sector = sector
        localPolygon = try sector.localPolygon(context: context)
        prepared = try PreparedGeometry(localPolygon)
    }

    /// Whether the view intersects `geometry`, given in WGS84 (x = lon, y = lat). A single point is
    /// tested exactly with ``Sector/sees(lat:lon:)``; any other geometry is mapped into the camera's
    /// local plane (see ``Sector/localGeometry(_:)``) and tested against the prepared sector
    /// polygon (a shared boundary point counts; the arc is the polygon's chords).
    public func intersects(_ geometry: Geometry) throws -> Bool {
        if let p = try geometry.singlePoint() { return sector.sees(lat: p.y, lon: p.x) }
        return try prepared.intersects(sector.localGeometry(geometry))
    }

    /// Whether `geometry` (WGS84) lies entirely in the view, with some of it inside (GEOS
    /// `contains`: a geometry lying only on the boundary is not contained).
    public func contains(_ geometry: Geometry) throws -> Bool {
        try prepared.contains(sector.localGeometry(geometry))
    }

    /// Whether `geometry`, already in this camera's local AEQD plane, intersects the sector polygon.
    public func intersects(local geometry: Geometry) throws -> Bool {
        try prepared.intersects(geometry)
    }
}

extension Geometry {
    /// The coordinates of a non-empty `Point`; `nil` for any other geometry.
    public func singlePoint() throws -> (x: Double, y: Double)? {
        let type = GEOSGeomTypeId_r(context.handle, raw)
        guard type != -1 else { throw context.takeError("geometry type") }
        guard type == Int32(GEOS_POINT.rawValue), !isEmpty else { return nil }
        var x = 0.0, y = 0.0
        guard GEOSGeomGetX_r(context.handle, raw, &x) == 1, GEOSGeomGetY_r(context.handle, raw, &y) == 1 else {
            throw context.takeError("point coordinates")
        }
        return (x, y)
    }

    /// A polygon with one exterior ring of (x, y) pairs. The ring is closed if its last point
    /// differs from its first; it needs at least 3 distinct corners. GEOS reports any failure.
    public static func polygon(ring: [(Double, Double)], context: GEOSContext = .current) throws -> Geometry {
        var pts = ring
        if let f = pts.first, let l = pts.last, f != l { pts.append(f) }
        guard pts.count >= 4 else {
            throw GeoError(.invalidGeometry, "a polygon ring needs at least 3 corners")
        }
        let seq = try coordinateSequence(pts, context: context)
        // createLinearRing / createPolygon take ownership of their argument, also on failure.
        guard let shell = GEOSGeom_createLinearRing_r(context.handle, seq) else {
            throw context.takeError("linear ring")
        }
        return try Geometry(context: context, taking: GEOSGeom_createPolygon_r(context.handle, shell, nil, 0), "polygon")
    }

    /// A line string through (x, y) pairs (at least 2).
    public static func lineString(_ points: [(Double, Double)], context: GEOSContext = .current) throws -> Geometry {
        guard points.count >= 2 else { throw GeoError(.invalidGeometry, "a line string needs at least 2 points") }
        let seq = try coordinateSequence(points, context: context)
        return try Geometry(context: context, taking: GEOSGeom_createLineString_r(context.handle, seq), "line string")
    }

    private static func coordinateSequence(_ points: [(Double, Double)], context: GEOSContext) throws -> OpaquePointer {
        guard let seq = GEOSCoordSeq_create_r(context.handle, UInt32(points.count), 2) else {
            throw context.takeError("coordinate sequence")
        }
        for (i, p) in points.enumerated() where GEOSCoordSeq_setXY_r(context.handle, seq, UInt32(i), p.0, p.1) == 0 {
            let e = context.takeError("set coordinate \(i)")
            GEOSCoordSeq_destroy_r(context.handle, seq)
            throw e
        }
        return seq
    }
}
