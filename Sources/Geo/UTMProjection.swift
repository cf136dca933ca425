import CPROJ

/// A transformation between WGS84 longitude/latitude and a UTM zone (metres), with PROJ.
///
/// The single owner of its `PJ_CONTEXT` and `PJ`, freed in `deinit`. PROJ contexts are not
/// thread-safe: use one instance per thread, or serialise access.
public final class UTMProjection: @unchecked Sendable {
    private let ctx: OpaquePointer
    private let pj: OpaquePointer
    /// The EPSG code of the UTM CRS (326zz north, 327zz south).
    public let epsg: Int

    /// The UTM zone of a longitude (1–60).
    public static func zone(longitude: Double) -> Int {
        min(60, max(1, Int(((longitude + 180) / 6).rounded(.down)) + 1))
    }

    /// The UTM CRS that contains (lat, lon).
    public convenience init(lat: Double, lon: Double) throws {
        try self.init(epsg: (lat >= 0 ? 32600 : 32700) + Self.zone(longitude: lon))
    }

    /// A transformation from EPSG:4326 (in lon, lat order) to `epsg`.
    public init(epsg: Int) throws {
        guard let c = proj_context_create() else { throw GeoError(.proj, "proj_context_create failed") }
        guard let raw = proj_create_crs_to_crs(c, "EPSG:4326", "EPSG:\(epsg)", nil) else {
            let message = String(cString: proj_context_errno_string(c, proj_context_errno(c)))
            proj_context_destroy(c)
            throw GeoError(.proj, "cannot create EPSG:4326 → EPSG:\(epsg): \(message)")
        }
        guard let norm = proj_normalize_for_visualization(c, raw) else {
            proj_destroy(raw)
            proj_context_destroy(c)
            throw GeoError(.proj, "cannot normalise axis order for EPSG:\(epsg)")
        }
        proj_destroy(raw)
        ctx = c
        pj = norm
        self.epsg = epsg
    }

    deinit {
        proj_destroy(pj)
        proj_context_destroy(ctx)
    }

    /// Longitude/latitude (degrees) to easting/northing (metres).
    public func forward(lon: Double, lat: Double) throws -> (x: Double, y: Double) {
        let out = proj_trans(pj, PJ_FWD, proj_coord(lon, lat, 0, 0))
        guard out.xy.x.isFinite, out.xy.y.isFinite else {
            throw GeoError(.proj, "cannot project (\(lat), \(lon)) to EPSG:\(epsg)")
        }
        return (out.xy.x, out.xy.y)
    }

    /// Easting/northing (metres) to longitude/latitude (degrees).
    public func inverse(x: Double, y: Double) throws -> (lon: Double, lat: Double) {
        let out = proj_trans(pj, PJ_INV, proj_coord(x, y, 0, 0))
        guard out.lp.lam.isFinite, out.lp.phi.isFinite else {
            throw GeoError(.proj, "cannot unproject (\(x), \(y)) from EPSG:\(epsg)")
        }
        return (out.lp.lam, out.lp.phi)
    }
}
