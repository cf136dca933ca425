import Foundation
import Geo

/// A camera found along a route: its ellipsoidal distance to the route and where along the route
/// its closest point lies.
public struct RouteHit: Sendable {
    /// The camera.
    public let camera: Camera
    /// Distance in metres from the camera to the closest point of the route (WGS84 ellipsoid,
    /// route segments taken as geodesics).
    public let distance: Double
    /// Metres from the start of the route to that closest point, measured along the route.
    public let alongMetres: Double
    /// Index of the segment holding the closest point (segment `i` joins `route[i]` and `route[i+1]`).
    public let segmentIndex: Int
    /// Latitude of the closest point of the route.
    public let closestLat: Double
    /// Longitude of the closest point of the route.
    public let closestLon: Double
}

extension Camera {
    /// The largest range ``Camera/validate()`` accepts, in metres: searches for cameras that see a
    /// place look this far.
    public static let maximumRange = 1000.0

    /// This camera's field of view (``Sector``): heading (nil = full disc), fov and range.
    public func sector() throws -> Sector {
        try Sector(lat: lat, lon: lon, heading: heading, fov: fov, range: range)
    }
}

extension CameraIndex {
    // MARK: k nearest

    /// The `k` non-retired cameras nearest to (lat, lon) by ellipsoidal distance (PROJ
    /// `geod_inverse`, as ``near(lat:lon:radius:limit:)``), nearest first, ties by id — what
    /// PostGIS returns for `ORDER BY ST_Distance(cam::geography, point::geography), id LIMIT k`.
    /// Only cameras within `maxDistance` metres (inclusive) when it is given. Returns every
    /// searchable camera when `k` exceeds their number, `[]` for `k ≤ 0` or a negative `maxDistance`.
    ///
    /// Algorithm: searches of growing radius `r` (250 m, then ×4 while nothing is found, ×2 while
    /// fewer than `k` are), each one STRtree query with boxes that provably contain the geodesic
    /// disc of radius `r` (see `GeodesicDisc`), plus every delta camera. The search is complete
    /// once `k` cameras lie within `r`: every camera closer than the `k`-th was inside the searched
    /// boxes. Discs over a pole or across the antimeridian get full-longitude or split boxes, so
    /// any query point works. Within a round, candidates are taken in order of a cheap rigorous
    /// lower bound of their distance (the larger of the 3-D chord between geocentric positions and
    /// `b·θ`, see `GeocentricPoint`), and exact geodesics are computed only until the `k`-th best
    /// is below the next bound: about `k` of them at city scale. Rounds with more than 512
    /// candidates first go through a grid of cells (see `KNNCandidates`), so that a query point
    /// thousands of kilometres away — where per-camera bounds (0.3 % loose) cannot separate the
    /// cameras of one city — costs about one geodesic per cell plus the cameras of the cells
    /// nearest the answer. Measured on 20 000 cameras in a 11 km square, k = 10: 10 geodesics
    /// from inside it, 23 from 15 km away, 322 from Hà Nội, 1 161 from Sydney, 1 640 from near the
    /// antipode (the rest of the cost is one pass over the candidates).
    public func nearest(lat: Double, lon: Double, k: Int, maxDistance: Double? = nil) throws -> [NearHit] {
        try Self.checkPoint(lat: lat, lon: lon)
        if let m = maxDistance, m.isNaN { throw GeoError(.invalidGeometry, "maxDistance must be a number") }
        let cap = maxDistance ?? .infinity
        guard k > 0, cap >= 0 else { return [] }
        let (snapshot, delta) = searchState
        let deltaCameras = delta.values.filter { $0.status != .retired }
        let query = GeocentricPoint(lat: lat, lon: lon)

        var radius = 250.0
        let everything = k >= snapshot.count + deltaCameras.count
        while true {
            let limit = min(radius, cap)
            let disc = everything ? GeodesicDisc.world : GeodesicDisc(lat: lat, lon: lon, radius: limit)
            let bound = disc.isWorld ? cap : limit

            // Candidates: snapshot items (key = index) and delta cameras (key = −1 − position).
            var items: [Int] = []
            for box in disc.boxes {
                try snapshot.candidates(minLon: box.minLon, minLat: box.minLat, maxLon: box.maxLon, maxLat: box.maxLat, into: &items)
            }
            var candidates = KNNCandidates()
            candidates.reserve(items.count + deltaCameras.count)
            let table = snapshot.table
            withExtendedLifetime(table) {
                let records = table.records, positions = table.positions
                for i in items where records[i].status != .retired {
                    if !delta.isEmpty, delta[table.id(at: i)] != nil { continue }
                    candidates.append(key: i, lat: positions[i].lat, lon: positions[i].lon)
                }
            }
            for (j, c) in deltaCameras.enumerated() { candidates.append(key: -1 - j, lat: c.lat, lon: c.lon) }

            let best = candidates.nearest(k: k, toLat: lat, lon: lon, query: query, within: bound) { key in
                key >= 0 ? table.id(at: key) : deltaCameras[-1 - key].id
            }
            if best.isFull || disc.isWorld || limit >= cap {
                return best.sorted().map { h in
                    var bearing = h.azimuth
                    if bearing < 0 { bearing += 360 }
                    if bearing >= 360 { bearing -= 360 }
                    let c = h.key >= 0 ? snapshot.ref(h.key) : CameraRef(deltaCameras[-1 - h.key])
                    return NearHit(ref: c, distance: h.distance, bearing: bearing)
                }
            }
            radius *= best.count == 0 ? 4 : 2
        }
    }

    // MARK: Within a polygon

    /// Non-retired cameras inside or on the boundary of a WGS84 polygon (x = lon, y = lat), by id.
    ///
    /// The test is planar in lon/lat degrees, as PostGIS `ST_Intersects(polygon::geometry,
    /// point::geometry)` (for a point this equals `ST_Covers`: boundary points count). The STRtree
    /// gives the candidates in the polygon's bounding box and a prepared geometry tests each.
    /// The polygon must be a non-empty, valid `Polygon` or `MultiPolygon` with coordinates within
    /// ±180 / ±90; otherwise ``GeoError/Code/invalidGeometry`` is thrown with GEOS's reason.
    public func within(polygon: Geometry) throws -> [Camera] {
        try Self.validateSearchPolygon(polygon)
        let (snapshot, delta) = searchState
        let b = try polygon.bounds()
        let prepared = try PreparedGeometry(polygon)
        var items: [Int] = []
        try snapshot.candidates(minLon: b.minX, minLat: b.minY, maxLon: b.maxX, maxLat: b.maxY, context: polygon.context, into: &items)
        var found: [Camera] = []
        func consider(_ c: Camera) throws {
            guard c.status != .retired, c.lon >= b.minX, c.lon <= b.maxX, c.lat >= b.minY, c.lat <= b.maxY else { return }
            if try prepared.intersects(x: c.lon, y: c.lat) { found.append(c) }
        }
        let table = snapshot.table
        for i in items {
            let r = table.records[i], p = table.positions[i]
            guard r.status != .retired, p.lon >= b.minX, p.lon <= b.maxX, p.lat >= b.minY, p.lat <= b.maxY,
                  try prepared.intersects(x: p.lon, y: p.lat) else { continue }
            if !delta.isEmpty, delta[table.id(at: i)] != nil { continue }
            found.append(table.camera(at: i))
        }
        for c in delta.values { try consider(c) }
        found.sort { $0.id < $1.id }
        return found
    }

    /// ``within(polygon:)`` for a WKT text (read with this thread's GEOS context); a WKT that
    /// cannot be read throws ``GeoError/Code/parse``.
    public func within(wkt: String) throws -> [Camera] {
        try within(polygon: Geometry.wkt(wkt))
    }

    /// Checks that `polygon` can be searched: a non-empty, valid `Polygon` / `MultiPolygon` in
    /// lon/lat range. Throws ``GeoError/Code/invalidGeometry`` with the reason (GEOS's
    /// `GEOSisValidReason` text for invalid ones, e.g. `Self-intersection[106.6 10.9]`).
    public static func validateSearchPolygon(_ polygon: Geometry) throws {
        let type = polygon.typeName
        guard type == "Polygon" || type == "MultiPolygon" else {
            throw GeoError(.invalidGeometry, "expected a Polygon or MultiPolygon, got \(type)")
        }
        guard !polygon.isEmpty else { throw GeoError(.invalidGeometry, "the polygon is empty") }
        if let reason = try polygon.invalidReason() { throw GeoError(.invalidGeometry, "invalid polygon: \(reason)") }
        let b = try polygon.bounds()
        guard b.minX >= -180, b.maxX <= 180, b.minY >= -90, b.maxY <= 90 else {
            throw GeoError(.invalidGeometry, "polygon coordinates must be longitude (x, ±180) and latitude (y, ±90)")
        }
    }

    // MARK: Along a route

    /// Non-retired cameras within `width` metres of a route (WGS84 points joined by geodesic
    /// segments), ordered by position along the route, then distance, then id: PostGIS
    /// `ST_DWithin(route::geography, cam::geography, width)` (inclusive).
    ///
    /// Distance to the route is the minimum over its segments of the ellipsoidal distance to the
    /// closest point of the segment, found by iterating on the geodesic (`geod_direct` to a
    /// point at `t` metres along the segment, `geod_inverse` to the camera, then
    /// `t += s·cos(angle between the segment and the direction to the camera)` — Newton's step for
    /// the foot of the perpendicular, converging to nanometres in 2–4 steps; clamped to the
    /// segment, and endpoints checked). PostGIS instead takes the closest point on the spherical
    /// great-circle edge (geodetic latitudes used as spherical ones) and measures the spheroidal
    /// distance to it; the two agree to millimetres for segments of a few kilometres (see the
    /// tests for the measured difference), so only cameras that close to `width` can differ.
    /// Ties between segments (e.g. at a vertex) go to the earlier position.
    ///
    /// Candidates come from STRtree queries over boxes that provably contain the `width`-buffer of
    /// pieces (≤ max(2·width, 250 m)) of each segment, plus every delta camera; each candidate is
    /// measured only against the segments whose boxes found it.
    /// Throws ``GeoError/Code/invalidGeometry`` for fewer than 2 points, a point outside the
    /// WGS84 range, or a width that is negative or not finite.
    public func along(route: [(lat: Double, lon: Double)], width: Double) throws -> [RouteHit] {
        let path = try GeodesicPath(route)
        guard width.isFinite, width >= 0 else { throw GeoError(.invalidGeometry, "width must be a finite number of metres ≥ 0") }
        let (snapshot, delta) = searchState

        // Camera key (snapshot index, or −1 − delta position) → segments whose boxes found it.
        var segmentsOf: [Int: [Int]] = [:]
        let deltaCameras = Array(delta.values)
        var items: [Int] = []
        for (si, seg) in path.segments.enumerated() {
            let piece = max(2 * width, 250)
            let n = max(1, min(100_000, Int((seg.length / piece).rounded(.up))))
            let len = seg.length / Double(n)
            for j in 0..<n {
                let centre = seg.point(at: (Double(j) + 0.5) * len)
                let disc = GeodesicDisc(lat: centre.lat, lon: centre.lon, radius: len / 2 + width + 1e-6 * (len + width) + 1e-6)
                items.removeAll(keepingCapacity: true)
                for box in disc.boxes {
                    try snapshot.candidates(minLon: box.minLon, minLat: box.minLat, maxLon: box.maxLon, maxLat: box.maxLat, into: &items)
                }
                for i in items where segmentsOf[i]?.last != si { segmentsOf[i, default: []].append(si) }
                for (dj, c) in deltaCameras.enumerated() where disc.mayContain(lat: c.lat, lon: c.lon) {
                    if segmentsOf[-1 - dj]?.last != si { segmentsOf[-1 - dj, default: []].append(si) }
                }
            }
        }

        var hits: [RouteHit] = []
        let table = snapshot.table
        for (key, segs) in segmentsOf {
            let c: CameraRef
            if key >= 0 {
                if !delta.isEmpty, delta[table.id(at: key)] != nil { continue }
                guard !table.isRetired(key) else { continue }
                c = snapshot.ref(key)
            } else {
                c = CameraRef(deltaCameras[-1 - key])
                guard c.status != .retired else { continue }
            }
            var best: (d: Double, along: Double, seg: Int, lat: Double, lon: Double)?
            for si in segs {
                let seg = path.segments[si]
                let p = seg.closestPoint(toLat: c.lat, lon: c.lon)
                let along = path.starts[si] + p.t
                if best == nil || p.distance < best!.d || (p.distance == best!.d && along < best!.along) {
                    best = (p.distance, along, si, p.lat, p.lon)
                }
            }
            if let b = best, b.d <= width {
                hits.append(RouteHit(camera: c.camera, distance: b.d, alongMetres: b.along, segmentIndex: b.seg,
                                     closestLat: b.lat, closestLon: b.lon))
            }
        }
        hits.sort {
            if $0.alongMetres != $1.alongMetres { return $0.alongMetres < $1.alongMetres }
            if $0.distance != $1.distance { return $0.distance < $1.distance }
            return $0.camera.id < $1.camera.id
        }
        return hits
    }

    // MARK: Field of view

    /// Non-retired cameras whose field of view (``Camera/sector()``) sees (lat, lon), nearest
    /// first (ties by id), with the distance and the bearing from each camera to the point.
    /// Looks ``Camera/maximumRange`` metres around the point.
    public func seeing(lat: Double, lon: Double) throws -> [NearHit] {
        try Self.checkPoint(lat: lat, lon: lon)
        // `NearHit.sees`: the sector test the search made on each hit's geodesic to the point.
        return try near(lat: lat, lon: lon, radius: Camera.maximumRange + 1e-3, limit: .max).filter(\.sees)
    }

    /// Non-retired cameras whose field of view intersects `geometry` (WGS84 lon/lat: a line or
    /// polygon incident; see ``PreparedSector/intersects(_:)``), ordered by id. Candidates are the
    /// cameras within ``Camera/maximumRange`` of the geometry's bounding box.
    public func viewing(_ geometry: Geometry) throws -> [Camera] {
        guard !geometry.isEmpty else { throw GeoError(.invalidGeometry, "the geometry is empty") }
        let b = try geometry.bounds()
        guard b.minX >= -180, b.maxX <= 180, b.minY >= -90, b.maxY <= 90 else {
            throw GeoError(.invalidGeometry, "coordinates must be longitude (x, ±180) and latitude (y, ±90)")
        }
        // A disc around the box centre reaching every corner and edge midpoint, plus the range.
        let cLat = (b.minY + b.maxY) / 2, cLon = (b.minX + b.maxX) / 2
        var reach = 0.0
        for (y, x) in [(b.minY, b.minX), (b.minY, b.maxX), (b.maxY, b.minX), (b.maxY, b.maxX),
                       (b.minY, cLon), (b.maxY, cLon), (cLat, b.minX), (cLat, b.maxX)] {
            reach = max(reach, Geodesic.wgs84.distance(lat1: cLat, lon1: cLon, lat2: y, lon2: x))
        }
        let disc = GeodesicDisc(lat: cLat, lon: cLon, radius: reach * 1.01 + Camera.maximumRange + 1)
        let (snapshot, delta) = searchState
        var items: [Int] = []
        for box in disc.boxes {
            try snapshot.candidates(minLon: box.minLon, minLat: box.minLat, maxLon: box.maxLon, maxLat: box.maxLat,
                                    context: geometry.context, into: &items)
        }
        var found: [Camera] = []
        func consider(_ c: Camera) throws {
            guard c.status != .retired else { return }
            if try c.sector().prepared(context: geometry.context).intersects(geometry) { found.append(c) }
        }
        let table = snapshot.table
        for i in items where !table.isRetired(i) {
            guard try snapshot.ref(i).sector().prepared(context: geometry.context).intersects(geometry) else { continue }
            if !delta.isEmpty, delta[table.id(at: i)] != nil { continue }
            found.append(table.camera(at: i))
        }
        for c in delta.values where disc.mayContain(lat: c.lat, lon: c.lon) { try consider(c) }
        found.sort { $0.id < $1.id }
        return found
    }

    // MARK: Helpers

    static func checkPoint(lat: Double, lon: Double) throws {
        guard lat.isFinite, lon.isFinite, (-90...90).contains(lat), (-180...180).contains(lon) else {
            throw GeoError(.invalidGeometry, "point (\(lat), \(lon)) is outside the WGS84 range")
        }
    }
}

/// The k best candidates so far by (distance, id): a bounded max-heap whose root is the worst kept.
struct NearestHits {
    /// A measured candidate: distance and azimuth (camera → point), its key and id.
    struct Scored {
        let distance: Double
        let azimuth: Double
        let key: Int
        let id: String
    }

    let k: Int
    private var heap: [Scored] = []

    init(k: Int) { self.k = k }

    var count: Int { heap.count }
    var isFull: Bool { heap.count >= k }
    var worst: Scored? { heap.first }

    /// `a` ranks after `b` (farther, or as far with a larger id).
    private static func after(_ a: Scored, _ b: Scored) -> Bool {
        a.distance != b.distance ? a.distance > b.distance : a.id > b.id
    }

    mutating func insert(_ h: Scored) {
        if heap.count < k {
            heap.append(h)
            var i = heap.count - 1
            while i > 0 {
                let p = (i - 1) / 2
                guard Self.after(heap[i], heap[p]) else { break }
                heap.swapAt(i, p)
                i = p
            }
        } else if let root = heap.first, Self.after(root, h) {
            heap[0] = h
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count, Self.after(heap[l], heap[m]) { m = l }
                if r < heap.count, Self.after(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
    }

    /// Best first.
    func sorted() -> [Scored] {
        heap.sorted { Self.after($1, $0) }
    }
}

/// A point as Earth-centred Cartesian coordinates (WGS84, metres), for cheap lower bounds of
/// geodesic distances (see ``lowerBound(lat:lon:)``).
struct GeocentricPoint {
    let x: Double, y: Double, z: Double
    /// Sine and cosine of the geodetic latitude and of the longitude.
    let sinLat: Double, cosLat: Double, sinLon: Double, cosLon: Double

    // Computed, so that they are constants in the hot loops rather than lazily initialised globals.
    @inline(__always) static var a: Double { 6_378_137.0 }
    @inline(__always) static var f: Double { 1 / 298.257223563 }
    @inline(__always) static var e2: Double { f * (2 - f) }

    /// The point at (lat, lon) in degrees. Sines and cosines are taken of angles reduced
    /// exactly to ±45° (``sincos(degrees:)``), so that cos 90° is 0 and sin 180° is 0, and two
    /// points mirrored about a meridian stay exactly mirrored.
    init(lat: Double, lon: Double) {
        let (sp, cp) = Self.sincos(degrees: lat)
        self.init(lat: lat, sinLat: sp, cosLat: cp, lon: lon)
    }

    /// The point at (lat, lon) in the frame turned so that longitude `origin` is 0 (see
    /// ``init(lat:lon:origin:)``), its latitude's sine and cosine found from `near`'s when the two
    /// latitudes are under 1° apart: by the angle-sum formulas with the difference's Taylor series
    /// (``sincos(degrees:)``), a few multiplications where two libm calls cost about 120
    /// instructions, for every candidate of a search. The sum's rounding is a few units in the last
    /// place, some 10⁻⁹ m of position: three orders below ``shortGeodesicError``.
    @inline(__always)
    init(lat: Double, lon: Double, origin: Double, near: GeocentricPoint, nearLat: Double) {
        let d = lat - nearLat
        let lon = Self.longitudeDifference(from: origin, to: lon)
        guard abs(d) < 1 else { self.init(lat: lat, lon: lon); return }
        let (sd, cd) = Self.sincos(degrees: d)
        self.init(lat: lat, sinLat: near.sinLat * cd + near.cosLat * sd, cosLat: near.cosLat * cd - near.sinLat * sd, lon: lon)
    }

    @inline(__always)
    private init(lat: Double, sinLat sp: Double, cosLat cp: Double, lon: Double) {
        let (sl, cl) = Self.sincos(degrees: lon)
        let n = Self.a / (1 - Self.e2 * sp * sp).squareRoot()
        x = n * cp * cl
        y = n * cp * sl
        z = n * (1 - Self.e2) * sp
        sinLat = sp; cosLat = cp; sinLon = sl; cosLon = cl
    }

    /// The point at (lat, lon) in the frame turned about the polar axis so that longitude
    /// `origin` is 0. Distances and azimuths do not change; the longitude difference is taken
    /// exactly (as `geod_inverse` does), so a query at 180° sees cameras at ±179.9999° alike.
    init(lat: Double, lon: Double, origin: Double) {
        self.init(lat: lat, lon: Self.longitudeDifference(from: origin, to: lon))
    }

    /// `to − from` reduced to −180…180, as exactly as a double holds it (an error-free sum
    /// and an exact IEEE remainder, like GeographicLib's `AngDiff`).
    static func longitudeDifference(from x: Double, to y: Double) -> Double {
        let d = y - x  // y + (−x), then its rounding error by Knuth's two-sum
        let part = d - y
        let error = (y - (d - part)) + (-x - part)
        return (abs(d) <= 180 ? d : d.remainder(dividingBy: 360)) + error
    }

    /// Sine and cosine of an angle in degrees, reduced exactly to ±45° first (GeographicLib's
    /// `sincosd`).
    /// Under 1° (a camera's longitude in a search's frame, turned to the query's: a few
    /// hundredths of a degree) by their Taylor series instead of two libm calls: with
    /// |x| < 0.0175 rad the first term left out is under 10⁻²¹ of the result, far below its last
    /// bit; odd and even like sine and cosine, so mirrored points stay mirrored.
    @inline(__always)
    static func sincos(degrees x: Double) -> (sin: Double, cos: Double) {
        if abs(x) < 1 {
            let r = x * .pi / 180, r2 = r * r
            let s = r * (1 - r2 / 6 * (1 - r2 / 20 * (1 - r2 / 42 * (1 - r2 / 72))))
            let c = 1 - r2 / 2 * (1 - r2 / 12 * (1 - r2 / 30 * (1 - r2 / 56)))
            return (s, c)
        }
        if abs(x) <= 45 {
            let radians = x * .pi / 180
            return (sin(radians), cos(radians))
        }
        let r = x.remainder(dividingBy: 90)
        let quadrant = Int(((x - r) / 90).rounded()) & 3
        let radians = r * .pi / 180
        let s = sin(radians), c = cos(radians)
        switch quadrant {
        case 0: return (s, c)
        case 1: return (c, 0 - s)
        case 2: return (0 - s, 0 - c)
        default: return (0 - c, s)
        }
    }

    /// The longest chord (metres) ``shortGeodesic(to:)`` answers.
    @inline(__always) static var shortGeodesicLimit: Double { 2_000.0 }
    /// A bound of ``shortGeodesic(to:)``'s distance error, metres. Measured against
    /// `geod_inverse` on 4 million pairs at every latitude: at most 7·10⁻⁹ m up to 10 km, and its
    /// azimuth moves the far end sideways by at most 1.1·10⁻⁷ m at 2 km (`GeodesicTests`).
    @inline(__always) static var shortGeodesicError: Double { 1e-6 }

    /// The geodesic from this point to `o` (distance in metres, azimuth here in degrees
    /// clockwise from north, in −180…180) when the two are between a millimetre and
    /// ``shortGeodesicLimit`` apart; `nil` otherwise (ask `geod_inverse`).
    ///
    /// At city scale an ellipsoid's geodesic is its normal section to far better than a
    /// micrometre. The 3-D chord is exact; the arc is the chord lengthened for the section's
    /// curvature, `c·(1 + k/24 + 3k²/640)` with `k = c²/R²`, `R` Euler's radius of curvature in
    /// the chord's direction at the mean latitude; the azimuth is the chord's direction in this
    /// point's east-north plane. Cheaper than `geod_inverse` by a factor of about ten.
    @inline(__always)
    func shortGeodesic(to o: GeocentricPoint) -> (distance: Double, azimuth: Double)? {
        let dx = o.x - x, dy = o.y - y, dz = o.z - z
        let c2 = dx * dx + dy * dy + dz * dz
        let limit = Self.shortGeodesicLimit
        guard c2 <= limit * limit, c2 >= 1e-6 else { return nil }
        let east = -sinLon * dx + cosLon * dy
        let north = -sinLat * cosLon * dx - sinLat * sinLon * dy + cosLat * dz
        let h = (east * east + north * north).squareRoot()
        let sm = (sinLat + o.sinLat) / 2
        let w = 1 - Self.e2 * sm * sm
        let primeVertical = Self.a / w.squareRoot()
        let meridian = Self.a * (1 - Self.e2) / (w * w.squareRoot())
        // cos²α and sin²α of the chord's azimuth, without a trigonometric call.
        let cos2 = h > 0 ? (north * north) / (h * h) : 1
        let invR = cos2 / meridian + (1 - cos2) / primeVertical
        let k = c2 * invR * invR
        let distance = c2.squareRoot() * (1 + k / 24 + 3 * k * k / 640)
        return (distance, atan2(east, north) * 180 / .pi)
    }

    /// A lower bound (metres) of the geodesic distance to (lat, lon), the larger of two:
    /// - the 3-D chord (tight at city scale: within (s/R)²/24 of the distance);
    /// - `b·θ`, θ the angle between the two position vectors: radial projection onto the sphere of
    ///   radius `b` (inside the ellipsoid) is the nearest-point map onto a convex ball, so it never
    ///   lengthens a path, and maps the geodesic onto a path of length ≥ `b·θ` (within 0.34 % of
    ///   the distance at any range, so far-away query points still get a useful bound).
    /// Less a micrometre for rounding, so that ties at equal positions are never cut off.
    /// Under 100 km the chord alone is taken (no `atan2`): both points lie at least `b` from the
    /// centre, so the chord is at least `2b·sin(θ/2)`, within `b·θ³/24` (under 0.1 m there) of
    /// `b·θ`; the bound stays a bound either way, and a search's candidates are that close.
    func lowerBound(lat: Double, lon: Double) -> Double {
        lowerBound(GeocentricPoint(lat: lat, lon: lon))
    }

    /// ``lowerBound(lat:lon:)`` for a point already converted.
    func lowerBound(_ o: GeocentricPoint) -> Double {
        let dx = x - o.x, dy = y - o.y, dz = z - o.z
        let chord = (dx * dx + dy * dy + dz * dz).squareRoot()
        if chord < 100_000 { return max(0, chord * (1 - 1e-12) - 1e-6) }
        let cx = y * o.z - z * o.y, cy = z * o.x - x * o.z, cz = x * o.y - y * o.x
        let theta = atan2((cx * cx + cy * cy + cz * cz).squareRoot(), x * o.x + y * o.y + z * o.z)
        let b = 6_378_137.0 * (1 - 1 / 298.257223563)
        return max(0, max(chord, b * theta) * (1 - 1e-12) - 1e-6)
    }
}

/// The candidates of one k-nearest round and their best-first search.
///
/// Every candidate gets a rigorous lower bound of its distance (``GeocentricPoint``); exact
/// geodesics are computed in increasing bound order until the `k`-th best distance is below the
/// next bound. When there are many candidates they are first bucketed in a lon/lat grid of
/// about 16 per cell; a cell's bound is `d(query, centre) − ρ` (triangle inequality), `ρ` being
/// an upper bound of the distance from the centre to any point of the cell (the length of a
/// meridian-then-parallel path), and the centre's exact distance is only computed when the cell
/// reaches the front of the queue. So a query point thousands of kilometres away, for which the
/// per-camera bounds are too loose to separate cameras of one city, costs about one geodesic per
/// cell plus the cameras of the few cells nearest the answer.
struct KNNCandidates {
    private var keys: [Int] = []
    private var lats: [Double] = []
    private var lons: [Double] = []

    mutating func reserve(_ n: Int) {
        keys.reserveCapacity(n)
        lats.reserveCapacity(n)
        lons.reserveCapacity(n)
    }

    mutating func append(key: Int, lat: Double, lon: Double) {
        keys.append(key)
        lats.append(lat)
        lons.append(lon)
    }

    private enum Entry {
        case camera(Int)
        case cell(Int)
        case measuredCell(Int)
    }

    /// The best `k` candidates within `bound` metres of (lat, lon), by (distance, id).
    func nearest(k: Int, toLat lat: Double, lon: Double, query: GeocentricPoint, within bound: Double,
                 id: (Int) -> String) -> NearestHits {
        let n = keys.count
        var heap = BoundHeap<Entry>()
        var grid: CellGrid?
        if n > 512 {
            let g = CellGrid(lats: lats, lons: lons, targetCells: n / 16)
            for c in 0..<g.cellCount where !g.members(of: c).isEmpty {
                let centre = g.centre(of: c)
                let lb = query.lowerBound(lat: centre.lat, lon: centre.lon) - g.radius(of: c)
                if lb <= bound { heap.append(max(0, lb), .cell(c)) }
            }
            grid = g
        } else {
            for i in 0..<n {
                let lb = query.lowerBound(lat: lats[i], lon: lons[i])
                if lb <= bound { heap.append(lb, .camera(i)) }
            }
        }
        heap.heapify()

        var best = NearestHits(k: k)
        while let e = heap.popMin() {
            if best.isFull, let worst = best.worst, e.lower > worst.distance { break }
            switch e.payload {
            case .cell(let c):
                let centre = grid!.centre(of: c)
                let d = Geodesic.wgs84.distance(lat1: centre.lat, lon1: centre.lon, lat2: lat, lon2: lon)
                let lb = max(e.lower, d - grid!.radius(of: c))
                if lb <= bound { heap.push(lb, .measuredCell(c)) }
            case .measuredCell(let c):
                for i in grid!.members(of: c) {
                    let lb = max(e.lower, query.lowerBound(lat: lats[i], lon: lons[i]))
                    if lb <= bound { heap.push(lb, .camera(i)) }
                }
            case .camera(let i):
                // Camera first, as `near` does, so that both give the same distances.
                let g = Geodesic.wgs84.inverse(lat1: lats[i], lon1: lons[i], lat2: lat, lon2: lon)
                guard g.distance <= bound else { continue }
                if best.isFull, let worst = best.worst, g.distance > worst.distance { continue }
                best.insert(.init(distance: g.distance, azimuth: g.azimuth1, key: keys[i], id: id(keys[i])))
            }
        }
        return best
    }
}

/// A lon/lat grid over a set of points, with the points bucketed by cell.
struct CellGrid {
    private let minLat: Double, minLon: Double, dLat: Double, dLon: Double
    private let columns: Int, rows: Int
    /// `order[start[c]..<start[c + 1]]` are the indexes of the points in cell `c`.
    private var start: [Int]
    private var order: [Int]

    var cellCount: Int { columns * rows }

    init(lats: [Double], lons: [Double], targetCells: Int) {
        let minLat = lats.min() ?? 0, maxLat = lats.max() ?? 0
        let minLon = lons.min() ?? 0, maxLon = lons.max() ?? 0
        let target = max(1, min(1 << 20, targetCells))
        let h = maxLat - minLat, w = (maxLon - minLon) * cos((minLat + maxLat) / 2 * .pi / 180)
        var columns = 1, rows = 1
        if h > 0 && w > 0 {
            columns = max(1, min(1024, Int((Double(target) * w / h).squareRoot().rounded())))
            rows = max(1, min(1024, target / columns))
        } else if w > 0 {
            columns = min(1024, target)
        } else if h > 0 {
            rows = min(1024, target)
        }
        self.minLat = minLat
        self.minLon = minLon
        self.columns = columns
        self.rows = rows
        dLat = (maxLat - minLat) / Double(rows)
        dLon = (maxLon - minLon) / Double(columns)
        // Counting sort of the points by cell.
        var cellOf = [Int](repeating: 0, count: lats.count)
        var count = [Int](repeating: 0, count: columns * rows + 1)
        for i in 0..<lats.count {
            let r = dLat > 0 ? min(rows - 1, max(0, Int((lats[i] - minLat) / dLat))) : 0
            let c = dLon > 0 ? min(columns - 1, max(0, Int((lons[i] - minLon) / dLon))) : 0
            cellOf[i] = r * columns + c
            count[cellOf[i] + 1] += 1
        }
        for c in 0..<(columns * rows) { count[c + 1] += count[c] }
        start = count
        var next = count
        order = [Int](repeating: 0, count: lats.count)
        for i in 0..<lats.count {
            order[next[cellOf[i]]] = i
            next[cellOf[i]] += 1
        }
    }

    func members(of cell: Int) -> ArraySlice<Int> { order[start[cell]..<start[cell + 1]] }

    private func extent(of cell: Int) -> (lat0: Double, lat1: Double, lon0: Double, lon1: Double) {
        let r = cell / columns, c = cell % columns
        let lat0 = minLat + Double(r) * dLat, lon0 = minLon + Double(c) * dLon
        return (lat0, lat0 + dLat, lon0, lon0 + dLon)
    }

    func centre(of cell: Int) -> (lat: Double, lon: Double) {
        let e = extent(of: cell)
        return ((e.lat0 + e.lat1) / 2, (e.lon0 + e.lon1) / 2)
    }

    /// An upper bound (metres) of the geodesic distance from the cell's centre to any point of
    /// the cell: the length of the path along the centre's meridian, then along the point's
    /// parallel — at most `M_max·Δφ/2 + p(φ*)·Δλ/2`, with `M_max = a/√(1−e²)` the largest meridian
    /// radius of curvature and `p(φ*)` the radius of the cell's parallel nearest the equator.
    func radius(of cell: Int) -> Double {
        let e = extent(of: cell)
        let a = 6_378_137.0, f = 1 / 298.257223563
        let e2 = f * (2 - f)
        let mMax = a / (1 - e2).squareRoot()
        let nearestEquator = e.lat0 <= 0 && e.lat1 >= 0 ? 0 : min(abs(e.lat0), abs(e.lat1))
        let phi = min(90, nearestEquator) * .pi / 180
        let parallel = a * cos(phi) / (1 - e2 * sin(phi) * sin(phi)).squareRoot()
        let r = mMax * (e.lat1 - e.lat0) / 2 * .pi / 180 + parallel * (e.lon1 - e.lon0) / 2 * .pi / 180
        return r * (1 + 1e-9) + 1e-6
    }
}

/// A binary min-heap of (lower bound, payload).
struct BoundHeap<Payload> {
    private var lower: [Double] = []
    private var payload: [Payload] = []

    /// Adds an entry without keeping the heap order; call ``heapify()`` before popping.
    mutating func append(_ l: Double, _ p: Payload) {
        lower.append(l)
        payload.append(p)
    }

    /// Restores the heap order after ``append(_:_:)`` (O(n)).
    mutating func heapify() {
        var i = lower.count / 2 - 1
        while i >= 0 {
            siftDown(i)
            i -= 1
        }
    }

    /// Adds an entry to a heap in order.
    mutating func push(_ l: Double, _ p: Payload) {
        lower.append(l)
        payload.append(p)
        var i = lower.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard lower[i] < lower[parent] else { break }
            lower.swapAt(i, parent)
            payload.swapAt(i, parent)
            i = parent
        }
    }

    mutating func popMin() -> (lower: Double, payload: Payload)? {
        guard !lower.isEmpty else { return nil }
        let top = (lower[0], payload[0])
        let last = lower.count - 1
        lower.swapAt(0, last)
        payload.swapAt(0, last)
        lower.removeLast()
        payload.removeLast()
        if !lower.isEmpty { siftDown(0) }
        return top
    }

    private mutating func siftDown(_ from: Int) {
        var i = from
        let n = lower.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n, lower[l] < lower[m] { m = l }
            if r < n, lower[r] < lower[m] { m = r }
            if m == i { return }
            lower.swapAt(i, m)
            payload.swapAt(i, m)
            i = m
        }
    }
}

/// Lon/lat boxes that provably contain every point within a geodesic distance of a centre.
///
/// On Karney's auxiliary sphere a geodesic of length `s` spans an arc `σ ≤ s/b` (`ds/dσ =
/// b·√(1 + k² sin²σ) ≥ b`), so the disc lies in the spherical cap of radius `σ = r/b` around the
/// centre's reduced latitude `β₀`: reduced latitudes within `β₀ ± σ`, auxiliary longitudes within
/// `asin(sin σ / cos β₀)` (when the cap holds no pole), and ellipsoidal longitude differs from the
/// auxiliary one by at most `f·σ`. A cap over a pole gives a full-longitude band; a box past ±180°
/// is split in two; a radius reaching half-way round the Earth gives the whole world.
struct GeodesicDisc {
    /// A box: (minLon, minLat, maxLon, maxLat), in degrees.
    typealias Box = (minLon: Double, minLat: Double, maxLon: Double, maxLat: Double)

    /// One box, or two (split at ±180°), held inline (a search makes a disc: no allocation).
    struct Boxes: RandomAccessCollection {
        let first: Box
        let second: Box?
        var startIndex: Int { 0 }
        var endIndex: Int { second == nil ? 1 : 2 }
        subscript(i: Int) -> Box {
            precondition(i >= 0 && i < endIndex, "box index out of range")
            return i == 0 ? first : second!
        }
    }

    /// The boxes.
    let boxes: Boxes
    /// True when the boxes cover the whole world (every point is a candidate).
    let isWorld: Bool

    static let world = GeodesicDisc((-180, -90, 180, 90), isWorld: true)

    private init(_ first: Box, _ second: Box? = nil, isWorld: Bool) {
        self.boxes = Boxes(first: first, second: second)
        self.isWorld = isWorld
    }

    init(lat: Double, lon: Double, radius: Double) {
        let f = 1 / 298.257223563
        let b = 6_378_137.0 * (1 - f)
        let sigma = max(0, radius) / b * (1 + 1e-9) + 1e-12
        guard sigma < .pi else { self = .world; return }
        let beta = atan((1 - f) * tan(lat * .pi / 180))
        func latitude(_ reduced: Double) -> Double { atan(tan(reduced) / (1 - f)) * 180 / .pi }
        let north = beta + sigma, south = beta - sigma
        if north >= .pi / 2 || south <= -.pi / 2 {
            let minLat = south <= -.pi / 2 ? -90 : latitude(south) - 1e-9
            let maxLat = north >= .pi / 2 ? 90 : latitude(north) + 1e-9
            self.init((-180, minLat, 180, maxLat), isWorld: minLat <= -90 && maxLat >= 90)
            return
        }
        let minLat = latitude(south) - 1e-9, maxLat = latitude(north) + 1e-9
        let dOmega = asin(min(1, sin(sigma) / cos(beta)))
        let dLon = (dOmega + f * sigma) * 180 / .pi * (1 + 1e-9) + 1e-9
        if dLon >= 180 {
            self.init((-180, minLat, 180, maxLat), isWorld: false)
            return
        }
        let lo = lon - dLon, hi = lon + dLon
        if lo < -180 {
            self.init((-180, minLat, hi, maxLat), (lo + 360, minLat, 180, maxLat), isWorld: false)
        } else if hi > 180 {
            self.init((lo, minLat, 180, maxLat), (-180, minLat, hi - 360, maxLat), isWorld: false)
        } else {
            self.init((lo, minLat, hi, maxLat), isWorld: false)
        }
    }

    /// Whether (lat, lon) is in one of the boxes.
    func mayContain(lat: Double, lon: Double) -> Bool {
        boxes.contains { Self.box($0, contains: lat, lon) }
    }

    /// Whether (lat, lon) is in the closed box `b` (as GEOS's envelope test takes a point).
    @inline(__always) static func box(_ b: Box, contains lat: Double, _ lon: Double) -> Bool {
        lon >= b.minLon && lon <= b.maxLon && lat >= b.minLat && lat <= b.maxLat
    }
}

/// A route as geodesic segments, with the distance from the start to each segment.
struct GeodesicPath {
    struct Segment {
        let lat1: Double, lon1: Double, lat2: Double, lon2: Double
        /// Geodesic length, metres.
        let length: Double
        /// Azimuth at the start, degrees.
        let azimuth: Double

        /// The point `t` metres from the start along the segment's geodesic.
        func point(at t: Double) -> (lat: Double, lon: Double) {
            t <= 0 ? (lat1, lon1) : Geodesic.wgs84.direct(lat: lat1, lon: lon1, azimuth: azimuth, distance: t)
        }

        /// The closest point of the segment to (lat, lon): its distance `t` from the start, its
        /// position, and the ellipsoidal distance to it (see `CameraIndex.along`).
        func closestPoint(toLat lat: Double, lon: Double) -> (distance: Double, t: Double, lat: Double, lon: Double) {
            let g = Geodesic.wgs84
            let fromStart = g.inverse(lat1: lat1, lon1: lon1, lat2: lat, lon2: lon)
            guard length > 0 else { return (fromStart.distance, 0, lat1, lon1) }
            func clamp(_ v: Double) -> Double { min(length, max(0, v)) }
            // Start from the planar foot of the perpendicular seen from the segment's start.
            var t = clamp(fromStart.distance * cos((fromStart.azimuth1 - azimuth) * .pi / 180))
            for _ in 0..<40 {
                let x = point(at: t)
                let toCamera = t == 0 ? fromStart : g.inverse(lat1: x.lat, lon1: x.lon, lat2: lat, lon2: lon)
                if toCamera.distance == 0 { break }
                // The segment's direction at x: its azimuth on arrival there from the start.
                let lineAzimuth = t == 0 ? azimuth : g.inverse(lat1: lat1, lon1: lon1, lat2: x.lat, lon2: x.lon).azimuth2
                let next = clamp(t + toCamera.distance * cos((toCamera.azimuth1 - lineAzimuth) * .pi / 180))
                let moved = abs(next - t)
                t = next
                if moved < 1e-9 { break }
            }
            let x = point(at: t)
            var best = (distance: g.distance(lat1: lat, lon1: lon, lat2: x.lat, lon2: x.lon), t: t, lat: x.lat, lon: x.lon)
            if fromStart.distance < best.distance { best = (fromStart.distance, 0, lat1, lon1) }
            let fromEnd = g.distance(lat1: lat, lon1: lon, lat2: lat2, lon2: lon2)
            if fromEnd < best.distance { best = (fromEnd, length, lat2, lon2) }
            return best
        }
    }

    let segments: [Segment]
    /// Distance along the route to the start of each segment.
    let starts: [Double]
    /// Total length.
    let length: Double

    init(_ points: [(lat: Double, lon: Double)]) throws {
        guard points.count >= 2 else { throw GeoError(.invalidGeometry, "a route needs at least 2 points") }
        for p in points {
            guard p.lat.isFinite, p.lon.isFinite, (-90...90).contains(p.lat), (-180...180).contains(p.lon) else {
                throw GeoError(.invalidGeometry, "route point (\(p.lat), \(p.lon)) is outside the WGS84 range")
            }
        }
        var segments: [Segment] = []
        var starts: [Double] = []
        var total = 0.0
        for i in 0..<(points.count - 1) {
            let a = points[i], b = points[i + 1]
            let g = Geodesic.wgs84.inverse(lat1: a.lat, lon1: a.lon, lat2: b.lat, lon2: b.lon)
            segments.append(Segment(lat1: a.lat, lon1: a.lon, lat2: b.lat, lon2: b.lon, length: g.distance, azimuth: g.azimuth1))
            starts.append(total)
            total += g.distance
        }
        self.segments = segments
        self.starts = starts
        length = total
    }
}
