import CGEOS

/// A GEOS geometry and the context that made it: the single owner of the `GEOSGeometry*`,
/// destroyed in `deinit`. Use it on the thread that owns its context.
public final class Geometry: @unchecked Sendable {
    /// The context this geometry belongs to.
    public let context: GEOSContext
    let raw: OpaquePointer

    /// Takes ownership of `raw`, or throws the context's error if it is NULL.
    init(context: GEOSContext, taking raw: OpaquePointer?, _ what: @autoclosure () -> String) throws {
        guard let raw else { throw context.takeError("\(what()) failed") }
        self.context = context
        self.raw = raw
    }

    deinit {
        GEOSGeom_destroy_r(context.handle, raw)
    }

    /// A point at (x, y).
    public static func point(x: Double, y: Double, context: GEOSContext = .current) throws -> Geometry {
        try Geometry(context: context, taking: GEOSGeom_createPointFromXY_r(context.handle, x, y), "point")
    }

    /// An axis-aligned rectangle.
    public static func rectangle(minX: Double, minY: Double, maxX: Double, maxY: Double,
                                 context: GEOSContext = .current) throws -> Geometry {
        try Geometry(context: context,
                     taking: GEOSGeom_createRectangle_r(context.handle, minX, minY, maxX, maxY), "rectangle")
    }

    /// Reads WKT; GEOS's parse message is reported as a ``GeoError/Code/parse`` error.
    public static func wkt(_ text: String, context: GEOSContext = .current) throws -> Geometry {
        guard let reader = GEOSWKTReader_create_r(context.handle) else { throw context.takeError("WKT reader") }
        defer { GEOSWKTReader_destroy_r(context.handle, reader) }
        guard let g = GEOSWKTReader_read_r(context.handle, reader, text) else {
            let e = context.takeError("cannot read WKT")
            throw GeoError(.parse, e.message)
        }
        return try Geometry(context: context, taking: g, "WKT")
    }

    /// The geometry as WKT, with trimmed trailing zeros.
    public func wkt() throws -> String {
        guard let writer = GEOSWKTWriter_create_r(context.handle) else { throw context.takeError("WKT writer") }
        defer { GEOSWKTWriter_destroy_r(context.handle, writer) }
        GEOSWKTWriter_setTrim_r(context.handle, writer, 1)
        guard let s = GEOSWKTWriter_write_r(context.handle, writer, raw) else { throw context.takeError("write WKT") }
        defer { GEOSFree_r(context.handle, s) }
        return String(cString: s)
    }

    /// The GEOS type name (`Point`, `Polygon`, …).
    public var typeName: String {
        guard let p = GEOSGeomType_r(context.handle, raw) else { return "Unknown" }
        defer { GEOSFree_r(context.handle, p) }
        return String(cString: p)
    }

    /// True for an empty geometry.
    public var isEmpty: Bool { GEOSisEmpty_r(context.handle, raw) == 1 }

    /// `nil` when valid, else GEOS's reason (e.g. "Self-intersection[…]").
    public func invalidReason() throws -> String? {
        switch GEOSisValid_r(context.handle, raw) {
        case 1: return nil
        case 0:
            guard let p = GEOSisValidReason_r(context.handle, raw) else { return "invalid" }
            defer { GEOSFree_r(context.handle, p) }
            return String(cString: p)
        default: throw context.takeError("isValid")
        }
    }

    /// The bounding box (minX, minY, maxX, maxY).
    public func bounds() throws -> (minX: Double, minY: Double, maxX: Double, maxY: Double) {
        var a = 0.0, b = 0.0, c = 0.0, d = 0.0
        guard GEOSGeom_getXMin_r(context.handle, raw, &a) == 1, GEOSGeom_getYMin_r(context.handle, raw, &b) == 1,
              GEOSGeom_getXMax_r(context.handle, raw, &c) == 1, GEOSGeom_getYMax_r(context.handle, raw, &d) == 1
        else { throw context.takeError("bounds") }
        return (a, b, c, d)
    }

    /// The area (in the units of the coordinates squared).
    public func area() throws -> Double {
        var v = 0.0
        guard GEOSArea_r(context.handle, raw, &v) == 1 else { throw context.takeError("area") }
        return v
    }

    /// The length (in the units of the coordinates).
    public func length() throws -> Double {
        var v = 0.0
        guard GEOSLength_r(context.handle, raw, &v) == 1 else { throw context.takeError("length") }
        return v
    }

    /// Whether this geometry intersects `other`.
    public func intersects(_ other: Geometry) throws -> Bool {
        let r = GEOSIntersects_r(context.handle, raw, other.raw)
        guard r != 2 else { throw context.takeError("intersects") }
        return r == 1
    }
}

extension Geometry {
    /// Reads a GeoJSON geometry (RFC 7946, lon/lat); GEOS's message is reported as a parse error.
    public static func geoJSON(_ text: String, context: GEOSContext = .current) throws -> Geometry {
        guard let reader = GEOSGeoJSONReader_create_r(context.handle) else { throw context.takeError("GeoJSON reader") }
        defer { GEOSGeoJSONReader_destroy_r(context.handle, reader) }
        guard let g = GEOSGeoJSONReader_readGeometry_r(context.handle, reader, text) else {
            throw GeoError(.parse, context.takeError("cannot read GeoJSON").message)
        }
        return try Geometry(context: context, taking: g, "GeoJSON")
    }

    /// The centroid (x, y).
    public func centroid() throws -> (x: Double, y: Double) {
        guard let c = GEOSGetCentroid_r(context.handle, raw) else { throw context.takeError("centroid") }
        defer { GEOSGeom_destroy_r(context.handle, c) }
        var x = 0.0, y = 0.0
        guard GEOSGeomGetX_r(context.handle, c, &x) == 1, GEOSGeomGetY_r(context.handle, c, &y) == 1 else {
            throw context.takeError("centroid coordinates")
        }
        return (x, y)
    }
}
