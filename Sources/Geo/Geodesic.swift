import CPROJ

/// Distances and azimuths on the WGS84 ellipsoid with PROJ's `geod_inverse` (Karney's
/// algorithm, the one PostGIS geography uses): agrees with `ST_Distance(geography)` to the
/// micrometre. A value type of plain numbers, safe to share between threads.
public struct Geodesic: @unchecked Sendable {
    private var g = geod_geodesic()

    /// The WGS84 ellipsoid.
    public static let wgs84 = Geodesic(a: 6378137, f: 1 / 298.257223563)

    /// An ellipsoid with equatorial radius `a` (metres) and flattening `f`.
    public init(a: Double, f: Double) {
        geod_init(&g, a, f)
    }

    /// The geodesic between two points: distance in metres, and the azimuths (degrees clockwise
    /// from north) at the first point and at the second.
    public func inverse(lat1: Double, lon1: Double, lat2: Double, lon2: Double)
        -> (distance: Double, azimuth1: Double, azimuth2: Double)
    {
        var s12 = 0.0, azi1 = 0.0, azi2 = 0.0
        withUnsafePointer(to: g) { geod_inverse($0, lat1, lon1, lat2, lon2, &s12, &azi1, &azi2) }
        return (s12, azi1, azi2)
    }

    /// The distance in metres.
    public func distance(lat1: Double, lon1: Double, lat2: Double, lon2: Double) -> Double {
        var s12 = 0.0
        withUnsafePointer(to: g) { geod_inverse($0, lat1, lon1, lat2, lon2, &s12, nil, nil) }
        return s12
    }

    /// The point reached from (lat, lon) going `distance` metres at `azimuth` degrees.
    public func direct(lat: Double, lon: Double, azimuth: Double, distance: Double) -> (lat: Double, lon: Double) {
        var lat2 = 0.0, lon2 = 0.0
        withUnsafePointer(to: g) { geod_direct($0, lat, lon, azimuth, distance, &lat2, &lon2, nil) }
        return (lat2, lon2)
    }

    /// A lat/lon box that certainly contains every point within `radius` metres of (lat, lon)
    /// (a small margin is added; callers filter by exact distance). Not valid across a pole or
    /// the antimeridian; the box is clamped to ±90° latitude.
    public func boundingBox(lat: Double, lon: Double, radius: Double)
        -> (minLat: Double, minLon: Double, maxLat: Double, maxLon: Double)
    {
        let r = radius * 1.0001 + 0.01
        let north = direct(lat: lat, lon: lon, azimuth: 0, distance: r).lat
        let south = direct(lat: lat, lon: lon, azimuth: 180, distance: r).lat
        // The widest longitude span is reached at the latitude nearest the pole within the box.
        let extremeLat = abs(north) > abs(south) ? north : south
        let east = direct(lat: min(89.9, max(-89.9, extremeLat)), lon: lon, azimuth: 90, distance: r).lon
        let dLon = abs(east - lon) * 1.01 + 1e-9
        return (max(-90, south), lon - dLon, min(90, north), lon + dLon)
    }
}
