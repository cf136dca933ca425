import Foundation
import Geo

/// The area a police unit is responsible for: cameras outside it are refused at registration
/// and import. Either a latitude/longitude box (``Jurisdiction/benCat`` by default) or a WGS84
/// polygon given as WKT.
///
/// Boundaries count as inside, for both kinds. A polygon is read and checked with GEOS once, in
/// `init`; point tests use a GEOS prepared geometry that lives on a private GEOS context and is
/// used under a lock, so a `Jurisdiction` can be shared between threads and tasks freely.
public struct Jurisdiction: Sendable, Equatable, CustomStringConvertible {
    /// The shape of a jurisdiction.
    public enum Area: Sendable, Equatable {
        /// Every point with `minLat ≤ lat ≤ maxLat` and `minLon ≤ lon ≤ maxLon` (degrees).
        case box(minLat: Double, maxLat: Double, minLon: Double, maxLon: Double)
        /// A `POLYGON` or `MULTIPOLYGON` in WKT, x = longitude and y = latitude (WGS84 degrees).
        case polygon(wkt: String)
    }

    /// The shape.
    public let area: Area
    /// A name for messages, e.g. `Thị xã Bến Cát`.
    public let name: String
    private let tester: PolygonTester?

    /// Bến Cát town: the box ``BenCat/minLat``…``BenCat/maxLat``, ``BenCat/minLon``…``BenCat/maxLon``.
    public static let benCat = Jurisdiction(uncheckedName: BenCat.townName, minLat: BenCat.minLat, maxLat: BenCat.maxLat,
                                            minLon: BenCat.minLon, maxLon: BenCat.maxLon)

    /// Bến Cát town (the default jurisdiction).
    public init() { self = .benCat }

    private init(uncheckedName name: String, minLat: Double, maxLat: Double, minLon: Double, maxLon: Double) {
        self.name = name
        area = .box(minLat: minLat, maxLat: maxLat, minLon: minLon, maxLon: maxLon)
        tester = nil
    }

    /// A box. Throws a ``FieldError`` on field `jurisdiction` when a bound is not a finite
    /// number within ±90/±180 or a minimum exceeds its maximum.
    public init(name: String, minLat: Double, maxLat: Double, minLon: Double, maxLon: Double) throws {
        let all = [minLat, maxLat, minLon, maxLon]
        guard all.allSatisfy(\.isFinite), (-90...90).contains(minLat), (-90...90).contains(maxLat),
              (-180...180).contains(minLon), (-180...180).contains(maxLon) else {
            throw FieldError("jurisdiction", "box bounds must be finite, latitudes within ±90 and longitudes within ±180")
        }
        guard minLat <= maxLat, minLon <= maxLon else {
            throw FieldError("jurisdiction", "box minimum must not exceed its maximum")
        }
        self.init(uncheckedName: name, minLat: minLat, maxLat: maxLat, minLon: minLon, maxLon: maxLon)
    }

    /// A polygon from WKT (`POLYGON((lon lat, …))` or `MULTIPOLYGON`). Throws a ``FieldError``
    /// on field `jurisdiction` when GEOS cannot read it, when it is not a non-empty (multi)polygon,
    /// when GEOS finds it invalid (the reason is GEOS's, e.g. a self-intersection), or when a
    /// coordinate is outside ±180 (x) / ±90 (y).
    public init(name: String, wkt: String) throws {
        let tester = try PolygonTester(wkt: wkt)
        self.name = name
        area = .polygon(wkt: wkt)
        self.tester = tester
    }

    /// Whether (lat, lon) is inside or on the boundary. Non-finite coordinates are outside.
    public func contains(lat: Double, lon: Double) -> Bool {
        guard lat.isFinite, lon.isFinite else { return false }
        switch area {
        case .box(let minLat, let maxLat, let minLon, let maxLon):
            return lat >= minLat && lat <= maxLat && lon >= minLon && lon <= maxLon
        case .polygon:
            return tester?.covers(lat: lat, lon: lon) ?? false
        }
    }

    /// `nil` when the camera's position is inside (or on the boundary), else a ``FieldError``
    /// on field `position` with reason `outside the jurisdiction (<description>)`.
    public func check(_ camera: Camera) -> FieldError? {
        check(lat: camera.lat, lon: camera.lon)
    }

    /// ``check(_:)`` for a bare position.
    public func check(lat: Double, lon: Double) -> FieldError? {
        contains(lat: lat, lon: lon) ? nil : FieldError("position", "outside the jurisdiction (\(description))")
    }

    /// The name and the extent, for messages: `Thị xã Bến Cát: lat 11.0341…11.2295, lon
    /// 106.5077…106.6999`, or for a polygon its name and bounding box.
    public var description: String {
        switch area {
        case .box(let minLat, let maxLat, let minLon, let maxLon):
            return "\(name): lat \(minLat)…\(maxLat), lon \(minLon)…\(maxLon)"
        case .polygon:
            guard let b = tester?.bounds else { return "\(name): polygon" }
            return "\(name): polygon within lat \(b.minY)…\(b.maxY), lon \(b.minX)…\(b.maxX)"
        }
    }

    /// Equal when the name and the shape (box bounds or WKT text) are equal.
    public static func == (a: Jurisdiction, b: Jurisdiction) -> Bool {
        a.name == b.name && a.area == b.area
    }
}

/// A prepared GEOS polygon on a private context, used under a lock (GEOS builds the prepared
/// geometry's index lazily on the first test, so tests must not run concurrently).
private final class PolygonTester: @unchecked Sendable {
    private let lock = NSLock()
    private let context: GEOSContext
    private let prepared: PreparedGeometry
    let bounds: (minX: Double, minY: Double, maxX: Double, maxY: Double)

    init(wkt: String) throws {
        let ctx = GEOSContext()
        let g: Geometry
        do {
            g = try Geometry.wkt(wkt, context: ctx)
        } catch let e as GeoError {
            throw FieldError("jurisdiction", "cannot read the WKT: \(e.message)")
        }
        guard g.typeName == "Polygon" || g.typeName == "MultiPolygon" else {
            throw FieldError("jurisdiction", "must be a Polygon or MultiPolygon, not a \(g.typeName)")
        }
        guard !g.isEmpty else { throw FieldError("jurisdiction", "the polygon is empty") }
        if let reason = try g.invalidReason() { throw FieldError("jurisdiction", "invalid polygon: \(reason)") }
        let b = try g.bounds()
        guard b.minX >= -180, b.maxX <= 180, b.minY >= -90, b.maxY <= 90 else {
            throw FieldError("jurisdiction", "coordinates must be longitude (x, ±180) and latitude (y, ±90) in WGS84 degrees")
        }
        context = ctx
        prepared = try PreparedGeometry(g)
        bounds = b
    }

    /// Intersects = covers for a point: a point on the boundary counts.
    func covers(lat: Double, lon: Double) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return (try? prepared.intersects(x: lon, y: lat)) ?? false
    }
}

/// When two cameras are probably the same camera registered twice.
public enum DuplicateRule {
    /// Largest distance between the two positions, metres (geodesic, WGS84), inclusive.
    public static let maxDistance = 3.0
    /// Largest difference between the two headings, degrees, inclusive.
    public static let maxHeadingDifference = 10.0

    /// True when the cameras have the same owner, stand within ``maxDistance`` of each other
    /// (WGS84 geodesic distance) and face the same way: headings within
    /// ``maxHeadingDifference`` measured around the circle (355° and 3° are 8° apart), or both
    /// headings unknown (`nil`). One known and one unknown heading are not the same.
    public static func isLikelyDuplicate(_ a: Camera, _ b: Camera, sameOwner: Bool) -> Bool {
        guard sameOwner else { return false }
        guard sameHeading(a.heading, b.heading) else { return false }
        guard a.lat.isFinite, a.lon.isFinite, b.lat.isFinite, b.lon.isFinite else { return false }
        let d = Geodesic.wgs84.distance(lat1: a.lat, lon1: a.lon, lat2: b.lat, lon2: b.lon)
        return d <= maxDistance
    }

    /// Whether two headings count as the same (see ``isLikelyDuplicate(_:_:sameOwner:)``).
    public static func sameHeading(_ a: Double?, _ b: Double?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case (let x?, let y?):
            guard let d = headingDifference(x, y) else { return false }
            return d <= maxHeadingDifference
        default: return false
        }
    }

    /// The smaller angle between two directions, 0…180 degrees (`nil` if either is not finite).
    public static func headingDifference(_ a: Double, _ b: Double) -> Double? {
        guard a.isFinite, b.isFinite else { return nil }
        let d = abs(a - b).truncatingRemainder(dividingBy: 360)
        return min(d, 360 - d)
    }
}
