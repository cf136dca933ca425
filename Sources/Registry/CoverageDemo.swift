import Foundation
import Geo

/// The demo's reference layers for the coverage analysis: plausible ward polygons (the Voronoi
/// cells of the 8 ward centroids, clipped to the town's bounding box, so they partition it) and
/// the demo inventory's generated streets.
public enum CoverageDemoLayers {
    /// The wards: one polygon per ``BenCat/wards`` entry, in that order (WKT, lon/lat, 7 decimals).
    public static func wards() throws -> [CoverageWard] {
        try wards(for: BenCat.wards, minLat: BenCat.minLat, minLon: BenCat.minLon, maxLat: BenCat.maxLat, maxLon: BenCat.maxLon)
    }

    /// Voronoi cells of the centroids of `wards`, clipped to a lon/lat box.
    public static func wards(for list: [Ward], minLat: Double, minLon: Double, maxLat: Double, maxLon: Double) throws -> [CoverageWard] {
        let ctx = GEOSContext.current
        let box = try Geometry.rectangle(minX: minLon, minY: minLat, maxX: maxLon, maxY: maxLat, context: ctx)
        let points = try Geometry.collection(list.map { try Geometry.point(x: $0.lon, y: $0.lat, context: ctx) }, kind: .multiPoint, context: ctx)
        let cells = try points.voronoiPolygons(extent: box).parts()
        var out: [CoverageWard] = []
        for w in list {
            let site = try Geometry.point(x: w.lon, y: w.lat, context: ctx)
            guard let cell = try cells.first(where: { try PreparedGeometry($0).intersects(site) }) else {
                throw GeoError(.invalidGeometry, "no Voronoi cell for \(w.name)")
            }
            let clipped = try cell.intersection(box)
            let rings = try clipped.polygonRings()
            let wkt = "MULTIPOLYGON(" + rings.map { poly in
                "(" + poly.map { ring in "(" + ring.map { "\(GeoJSONText.fmt($0.x)) \(GeoJSONText.fmt($0.y))" }.joined(separator: ",") + ")" }
                    .joined(separator: ",") + ")"
            }.joined(separator: ",") + ")"
            out.append(CoverageWard(name: w.name, wkt: wkt))
        }
        return out
    }

    /// The demo inventory's streets as the street layer.
    public static func streets(_ inventory: DemoInventory) -> [CoverageStreet] {
        inventory.streets.map(CoverageStreet.init)
    }
}
