import Foundation
import Geo

/// A reference-layer file that cannot be used, with the feature (1-based) at fault when there is one.
public struct CoverageLayerError: Error, CustomStringConvertible, Sendable {
    public var feature: Int?
    public var reason: String
    public init(feature: Int? = nil, _ reason: String) {
        self.feature = feature
        self.reason = reason
    }
    public var description: String { feature.map { "feature \($0): \(reason)" } ?? reason }
}

/// Reads the coverage reference layers from GeoJSON FeatureCollections (RFC 7946, lon/lat).
public enum CoverageLayerImport {
    /// Properties tried, in order, for a ward's name when none is named.
    public static let wardNameProperties = ["name", "ward", "commune_vn", "commune", "NAME", "ten"]

    /// Wards: every feature must be a (Multi)Polygon with a unique, non-empty name in
    /// `nameProperty` (or the first of ``wardNameProperties`` present). Invalid polygons are
    /// repaired with GEOS make-valid; empty ones are refused. All or nothing.
    public static func wards(_ data: Data, nameProperty: String? = nil) throws -> [CoverageWard] {
        let features = try featureList(data)
        var out: [CoverageWard] = []
        var seen = Set<String>()
        let ctx = GEOSContext.current
        for (i, f) in features.enumerated() {
            let props = f["properties"] as? [String: Any] ?? [:]
            let keys = nameProperty.map { [$0] } ?? wardNameProperties
            guard let name = keys.lazy.compactMap({ (props[$0] as? String)?.trimmingCharacters(in: .whitespaces) }).first(where: { !$0.isEmpty }) else {
                throw CoverageLayerError(feature: i + 1, "no ward name (looked for property \(keys.joined(separator: ", ")))")
            }
            guard seen.insert(name).inserted else { throw CoverageLayerError(feature: i + 1, "ward \(name) appears twice") }
            guard let geometry = f["geometry"] as? [String: Any], let type = geometry["type"] as? String,
                  type == "Polygon" || type == "MultiPolygon" else {
                throw CoverageLayerError(feature: i + 1, "a ward must be a Polygon or MultiPolygon")
            }
            var g: Geometry
            do {
                g = try Geometry.geoJSON(String(decoding: try JSONSerialization.data(withJSONObject: geometry), as: UTF8.self), context: ctx)
            } catch {
                throw CoverageLayerError(feature: i + 1, "unreadable geometry: \(error)")
            }
            if try g.invalidReason() != nil { g = try g.makeValid() }
            guard !g.isEmpty, try g.area() > 0 else { throw CoverageLayerError(feature: i + 1, "the polygon is empty") }
            let b = try g.bounds()
            guard b.minX >= -180, b.maxX <= 180, b.minY >= -90, b.maxY <= 90 else {
                throw CoverageLayerError(feature: i + 1, "coordinates outside lon/lat range")
            }
            out.append(CoverageWard(name: name, wkt: try g.wkt()))
        }
        guard !out.isEmpty else { throw CoverageLayerError("the file has no ward features") }
        return out
    }

    /// Streets: LineString or MultiLineString features (each line becomes one street), named by
    /// `name` (or `ref`), of kind `kind` (arterial/street/alley) or derived from an OSM `highway`
    /// tag (trunk/primary → arterial; service/footway/path/track/living_street/pedestrian → alley).
    public static func streets(_ data: Data) throws -> [CoverageStreet] {
        let features = try featureList(data)
        var out: [CoverageStreet] = []
        for (i, f) in features.enumerated() {
            let props = f["properties"] as? [String: Any] ?? [:]
            let name = (props["name"] as? String) ?? (props["ref"] as? String)
            var kind = "street"
            if let k = props["kind"] as? String {
                guard ["arterial", "street", "alley"].contains(k) else {
                    throw CoverageLayerError(feature: i + 1, "kind must be arterial, street or alley, not \(k)")
                }
                kind = k
            } else if let h = props["highway"] as? String {
                if ["motorway", "trunk", "primary"].contains(h) { kind = "arterial" }
                if ["service", "footway", "path", "track", "living_street", "pedestrian", "alley"].contains(h) { kind = "alley" }
            }
            guard let geometry = f["geometry"] as? [String: Any], let type = geometry["type"] as? String else {
                throw CoverageLayerError(feature: i + 1, "no geometry")
            }
            let lines: [Any]
            switch type {
            case "LineString": lines = [geometry["coordinates"] as Any]
            case "MultiLineString": lines = geometry["coordinates"] as? [Any] ?? []
            default: throw CoverageLayerError(feature: i + 1, "a street must be a LineString or MultiLineString, not \(type)")
            }
            for line in lines {
                guard let coords = line as? [[Any]] else { throw CoverageLayerError(feature: i + 1, "bad coordinates") }
                var pts: [LatLonPoint] = []
                for c in coords {
                    guard c.count >= 2, let lon = (c[0] as? NSNumber)?.doubleValue, let lat = (c[1] as? NSNumber)?.doubleValue,
                          lon.isFinite, lat.isFinite, abs(lon) <= 180, abs(lat) <= 90 else {
                        throw CoverageLayerError(feature: i + 1, "a position must be [lon, lat] within range")
                    }
                    pts.append(LatLonPoint(lat: lat, lon: lon))
                }
                guard pts.count >= 2 else { throw CoverageLayerError(feature: i + 1, "a line needs at least 2 positions") }
                out.append(CoverageStreet(name: name, kind: kind, points: pts))
            }
        }
        guard !out.isEmpty else { throw CoverageLayerError("the file has no street features") }
        return out
    }

    static func featureList(_ data: Data) throws -> [[String: Any]] {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CoverageLayerError("the file is not a JSON object")
        }
        guard root["type"] as? String == "FeatureCollection", let features = root["features"] as? [[String: Any]] else {
            throw CoverageLayerError("the file is not a GeoJSON FeatureCollection")
        }
        return features
    }
}
