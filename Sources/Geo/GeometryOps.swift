import CGEOS

// Overlay operations, collections, component access and projection of whole geometries, for the
// coverage analysis (issue 4). Every result is a new ``Geometry`` owned by the caller, made in
// the receiver's context: use it on the same thread.

/// The kinds of collection ``Geometry/collection(_:kind:context:)`` makes (GEOS type ids).
public enum CollectionKind: Int32, Sendable {
    case multiPoint = 4, multiLineString = 5, multiPolygon = 6, geometryCollection = 7
}

extension Geometry {
    /// The GEOS type id of this geometry (`GEOS_POINT`, `GEOS_LINESTRING`, …).
    public var typeID: Int32 { GEOSGeomTypeId_r(context.handle, raw) }

    /// The union of all parts of this geometry (GEOS cascaded unary union): e.g. a collection of
    /// overlapping sector polygons becomes one (multi)polygon without overlaps.
    public func unaryUnion() throws -> Geometry {
        try Geometry(context: context, taking: GEOSUnaryUnion_r(context.handle, raw), "unary union")
    }

    /// The unary union computed with snap-rounding to a grid of `gridSize` units: line work is
    /// fully noded (crossings and T-junctions within a grid cell become shared vertices).
    public func unaryUnion(gridSize: Double) throws -> Geometry {
        try Geometry(context: context, taking: GEOSUnaryUnionPrec_r(context.handle, raw, gridSize), "unary union (snap-rounded)")
    }

    /// The part of this geometry inside `other`.
    public func intersection(_ other: Geometry) throws -> Geometry {
        try Geometry(context: context, taking: GEOSIntersection_r(context.handle, raw, other.raw), "intersection")
    }

    /// The part of this geometry outside `other`.
    public func difference(_ other: Geometry) throws -> Geometry {
        try Geometry(context: context, taking: GEOSDifference_r(context.handle, raw, other.raw), "difference")
    }

    /// The part of this geometry inside an axis-aligned rectangle (fast, but the result may be
    /// invalid for polygons: use it for lines, or for a coarse pre-clip).
    public func clip(minX: Double, minY: Double, maxX: Double, maxY: Double) throws -> Geometry {
        try Geometry(context: context, taking: GEOSClipByRect_r(context.handle, raw, minX, minY, maxX, maxY), "clip by rectangle")
    }

    /// A valid version of this geometry (GEOS make-valid), for imported polygons.
    public func makeValid() throws -> Geometry {
        try Geometry(context: context, taking: GEOSMakeValid_r(context.handle, raw), "make valid")
    }

    /// A deep copy.
    public func clone() throws -> Geometry {
        try Geometry(context: context, taking: GEOSGeom_clone_r(context.handle, raw), "clone")
    }

    /// The shortest distance to `other`.
    public func distance(to other: Geometry) throws -> Double {
        var d = 0.0
        guard GEOSDistance_r(context.handle, raw, other.raw, &d) == 1 else { throw context.takeError("distance") }
        return d
    }

    /// Number of parts of a collection (1 for a simple geometry).
    public var partCount: Int { Int(GEOSGetNumGeometries_r(context.handle, raw)) }

    /// Copies of the parts of a collection (`[self copy]` for a simple geometry).
    public func parts() throws -> [Geometry] {
        let n = GEOSGetNumGeometries_r(context.handle, raw)
        guard n >= 0 else { throw context.takeError("number of parts") }
        return try (0..<n).map { i in
            guard let p = GEOSGetGeometryN_r(context.handle, raw, i) else { throw context.takeError("part \(i)") }
            return try Geometry(context: context, taking: GEOSGeom_clone_r(context.handle, p), "clone part")
        }
    }

    /// A collection of copies of `geometries`; all must belong to `context` (and match `kind`).
    public static func collection(_ geometries: [Geometry], kind: CollectionKind = .geometryCollection,
                                  context: GEOSContext = .current) throws -> Geometry {
        let type = kind.rawValue
        var copies: [OpaquePointer?] = []
        copies.reserveCapacity(geometries.count)
        for g in geometries {
            guard let c = GEOSGeom_clone_r(context.handle, g.raw) else {
                for p in copies { GEOSGeom_destroy_r(context.handle, p) }
                throw context.takeError("clone for collection")
            }
            copies.append(c)
        }
        // createCollection takes ownership of the parts.
        let out = copies.withUnsafeMutableBufferPointer { buf in
            GEOSGeom_createCollection_r(context.handle, type, buf.baseAddress, UInt32(buf.count))
        }
        return try Geometry(context: context, taking: out, "collection")
    }

    /// The coordinates of every line string and polygon ring of this geometry (any nesting of
    /// collections), each as an array of (x, y); points give one-element arrays.
    public func paths() throws -> [[(x: Double, y: Double)]] {
        var out: [[(x: Double, y: Double)]] = []
        try collectPaths(raw, into: &out)
        return out
    }

    /// The coordinates of every line string of this geometry (polygons are skipped).
    public func lineStrings() throws -> [[(x: Double, y: Double)]] {
        var out: [[(x: Double, y: Double)]] = []
        try collectPaths(raw, into: &out, linesOnly: true)
        return out
    }

    /// The polygons of this geometry, each as rings (exterior first) of (x, y).
    public func polygonRings() throws -> [[[(x: Double, y: Double)]]] {
        var out: [[[(x: Double, y: Double)]]] = []
        func visit(_ g: OpaquePointer) throws {
            let t = GEOSGeomTypeId_r(context.handle, g)
            if t == Int32(GEOS_POLYGON.rawValue) {
                guard !(GEOSisEmpty_r(context.handle, g) == 1) else { return }
                var rings: [[(x: Double, y: Double)]] = []
                guard let ext = GEOSGetExteriorRing_r(context.handle, g) else { throw context.takeError("exterior ring") }
                rings.append(try coordinates(ext))
                let holes = GEOSGetNumInteriorRings_r(context.handle, g)
                for i in 0..<max(0, holes) {
                    guard let r = GEOSGetInteriorRingN_r(context.handle, g, i) else { throw context.takeError("interior ring") }
                    rings.append(try coordinates(r))
                }
                out.append(rings)
            } else if t == Int32(GEOS_MULTIPOLYGON.rawValue) || t == Int32(GEOS_GEOMETRYCOLLECTION.rawValue) {
                for i in 0..<GEOSGetNumGeometries_r(context.handle, g) {
                    if let p = GEOSGetGeometryN_r(context.handle, g, i) { try visit(p) }
                }
            }
        }
        try visit(raw)
        return out
    }

    private func collectPaths(_ g: OpaquePointer, into out: inout [[(x: Double, y: Double)]], linesOnly: Bool = false) throws {
        let h = context.handle
        let t = GEOSGeomTypeId_r(h, g)
        guard GEOSisEmpty_r(h, g) == 0 else { return }
        switch t {
        case Int32(GEOS_POINT.rawValue):
            if !linesOnly { out.append(try coordinates(g)) }
        case Int32(GEOS_LINESTRING.rawValue), Int32(GEOS_LINEARRING.rawValue):
            out.append(try coordinates(g))
        case Int32(GEOS_POLYGON.rawValue):
            if linesOnly { return }
            if let ext = GEOSGetExteriorRing_r(h, g) { out.append(try coordinates(ext)) }
            for i in 0..<max(0, GEOSGetNumInteriorRings_r(h, g)) {
                if let r = GEOSGetInteriorRingN_r(h, g, i) { out.append(try coordinates(r)) }
            }
        default:
            for i in 0..<GEOSGetNumGeometries_r(h, g) {
                if let p = GEOSGetGeometryN_r(h, g, i) { try collectPaths(p, into: &out, linesOnly: linesOnly) }
            }
        }
    }

    private func coordinates(_ g: OpaquePointer) throws -> [(x: Double, y: Double)] {
        let h = context.handle
        guard let seq = GEOSGeom_getCoordSeq_r(h, g) else { throw context.takeError("coordinate sequence") }
        var n: UInt32 = 0
        guard GEOSCoordSeq_getSize_r(h, seq, &n) == 1 else { throw context.takeError("coordinate count") }
        var out: [(x: Double, y: Double)] = []
        out.reserveCapacity(Int(n))
        for i in 0..<n {
            var x = 0.0, y = 0.0
            guard GEOSCoordSeq_getXY_r(h, seq, i, &x, &y) == 1 else { throw context.takeError("coordinate \(i)") }
            out.append((x, y))
        }
        return out
    }

    /// A MultiPolygon from polygons given as rings (exterior first, then holes) of (x, y), e.g.
    /// as ``polygonRings()`` returns them; rings are closed if needed.
    public static func multiPolygon(_ polygons: [[[(x: Double, y: Double)]]], context: GEOSContext = .current) throws -> Geometry {
        let h = context.handle
        var made: [Geometry] = []
        for rings in polygons where !rings.isEmpty {
            var raw: [OpaquePointer?] = []
            for ring in rings {
                var pts = ring.map { ($0.x, $0.y) }
                if let f = pts.first, let l = pts.last, f != l { pts.append(f) }
                guard pts.count >= 4, let seq = GEOSCoordSeq_create_r(h, UInt32(pts.count), 2) else {
                    for r in raw { GEOSGeom_destroy_r(h, r) }
                    throw GeoError(.invalidGeometry, "a polygon ring needs at least 3 corners")
                }
                for (i, p) in pts.enumerated() { GEOSCoordSeq_setXY_r(h, seq, UInt32(i), p.0, p.1) }
                guard let r = GEOSGeom_createLinearRing_r(h, seq) else {
                    for r in raw { GEOSGeom_destroy_r(h, r) }
                    throw context.takeError("linear ring")
                }
                raw.append(r)
            }
            let shell = raw.removeFirst()
            let poly = raw.withUnsafeMutableBufferPointer { holes in
                GEOSGeom_createPolygon_r(h, shell, holes.baseAddress, UInt32(holes.count))
            }
            made.append(try Geometry(context: context, taking: poly, "polygon"))
        }
        return try collection(made, kind: .multiPolygon, context: context)
    }

    /// The Voronoi diagram of the points of this geometry, as a collection of polygons reaching
    /// at least to the envelope of `extent` (GEOS `GEOSVoronoiDiagram`).
    public func voronoiPolygons(extent: Geometry) throws -> Geometry {
        try Geometry(context: context, taking: GEOSVoronoiDiagram_r(context.handle, raw, extent.raw, 0, 0), "voronoi diagram")
    }

    /// A copy with every coordinate projected from WGS84 (x = lon, y = lat) to `projection`'s
    /// UTM zone (metres). The projection must be used by this thread only.
    public func projected(to projection: UTMProjection) throws -> Geometry {
        try transformed(projection, inverse: false)
    }

    /// A copy with every coordinate taken back from `projection`'s UTM zone to WGS84 lon/lat.
    public func unprojected(from projection: UTMProjection) throws -> Geometry {
        try transformed(projection, inverse: true)
    }

    private func transformed(_ projection: UTMProjection, inverse: Bool) throws -> Geometry {
        final class Box {
            let p: UTMProjection
            let inverse: Bool
            init(_ p: UTMProjection, _ i: Bool) { self.p = p; inverse = i }
        }
        let box = Unmanaged.passRetained(Box(projection, inverse))
        defer { box.release() }
        let out = GEOSGeom_transformXY_r(context.handle, raw, { x, y, userdata in
            guard let x, let y, let userdata else { return 0 }
            let b = Unmanaged<Box>.fromOpaque(userdata).takeUnretainedValue()
            if b.inverse {
                guard let r = try? b.p.inverse(x: x.pointee, y: y.pointee) else { return 0 }
                x.pointee = r.lon
                y.pointee = r.lat
            } else {
                guard let r = try? b.p.forward(lon: x.pointee, lat: y.pointee) else { return 0 }
                x.pointee = r.x
                y.pointee = r.y
            }
            return 1
        }, box.toOpaque())
        return try Geometry(context: context, taking: out, inverse ? "unproject from UTM" : "project to UTM")
    }
}
