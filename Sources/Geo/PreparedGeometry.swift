import CGEOS

/// A GEOS prepared geometry (`GEOSPrepare_r`): a geometry with lazily built internal indexes that
/// make repeated `intersects` / `contains` / `covers` tests against it fast.
///
/// The single owner of the `GEOSPreparedGeometry*`, destroyed in `deinit` with
/// `GEOSPreparedGeom_destroy_r`. It keeps its ``base`` geometry alive (GEOS's prepared geometry
/// points into it). GEOS builds the indexes on the first predicate call, so an instance must be
/// used from one thread at a time (the thread that owns ``Geometry/context``, or under a lock).
/// `@unchecked Sendable` only so that an owner may hand it to the thread that will use it.
public final class PreparedGeometry: @unchecked Sendable {
    /// The geometry this was prepared from (kept alive as long as this object lives).
    public let base: Geometry
    private let raw: OpaquePointer

    /// Prepares `geometry`; throws GEOS's message if `GEOSPrepare_r` fails.
    public init(_ geometry: Geometry) throws {
        let ctx = geometry.context
        guard let p = GEOSPrepare_r(ctx.handle, geometry.raw) else { throw ctx.takeError("GEOSPrepare failed") }
        base = geometry
        raw = p
    }

    deinit {
        GEOSPreparedGeom_destroy_r(base.context.handle, raw)
    }

    private var handle: GEOSContextHandle_t { base.context.handle }

    private func predicate(_ r: CChar, _ what: String) throws -> Bool {
        switch r {
        case 1: return true
        case 0: return false
        default: throw base.context.takeError("\(what) failed")
        }
    }

    /// Whether the prepared geometry and `other` share at least one point (DE-9IM intersects;
    /// a point on the boundary intersects).
    public func intersects(_ other: Geometry) throws -> Bool {
        try predicate(GEOSPreparedIntersects_r(handle, raw, other.raw), "prepared intersects")
    }

    /// Whether `other` lies in the prepared geometry with no point of `other` in its exterior and
    /// at least one in its interior (DE-9IM contains: a point on the boundary is *not* contained).
    public func contains(_ other: Geometry) throws -> Bool {
        try predicate(GEOSPreparedContains_r(handle, raw, other.raw), "prepared contains")
    }

    /// Whether no point of `other` lies outside the prepared geometry (DE-9IM covers: a point on
    /// the boundary is covered).
    public func covers(_ other: Geometry) throws -> Bool {
        try predicate(GEOSPreparedCovers_r(handle, raw, other.raw), "prepared covers")
    }

    /// ``intersects(_:)`` for the point (x, y), without allocating a ``Geometry`` object.
    /// For a point, intersects = covers: a point on the boundary counts.
    public func intersects(x: Double, y: Double) throws -> Bool {
        guard let p = GEOSGeom_createPointFromXY_r(handle, x, y) else { throw base.context.takeError("point") }
        defer { GEOSGeom_destroy_r(handle, p) }
        return try predicate(GEOSPreparedIntersects_r(handle, raw, p), "prepared intersects")
    }

    /// ``contains(_:)`` for the point (x, y) (a point on the boundary is not contained).
    public func contains(x: Double, y: Double) throws -> Bool {
        guard let p = GEOSGeom_createPointFromXY_r(handle, x, y) else { throw base.context.takeError("point") }
        defer { GEOSGeom_destroy_r(handle, p) }
        return try predicate(GEOSPreparedContains_r(handle, raw, p), "prepared contains")
    }
}
