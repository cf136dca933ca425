import Foundation

/// Reads cameras from a GeoJSON FeatureCollection (RFC 7946).
///
/// - Each camera is a `Feature` with a `Point` geometry, coordinates `[lon, lat]` (a third,
///   altitude, value is ignored).
/// - Properties use the CSV default names (``CameraField``'s raw values: `id`, `site_kind`,
///   `address`, `ward`, `heading`, `fov`, `range_m`, …); `direction` is accepted for `heading`
///   (a number or a compass point such as `NE`). The camera id is `properties.id`, else the
///   feature's own `id` member. `lat`/`lon` properties are ignored: the geometry is the position.
/// - Numbers may be JSON numbers or numeric strings; they are read exactly as written.
/// - A feature whose `properties.role` is `fov_sector` (the field-of-view polygons
///   ``GeoJSONExporter`` can add) is skipped without a row.
/// - A feature without a geometry, with a non-Point geometry or bad coordinates is a row error
///   (field `geometry` or `coordinates`).
public enum GeoJSONImporter {
    /// One ``ImportRow`` per camera feature; ``ImportRow/number`` is the 1-based index of the
    /// feature in `features`. Throws ``ImportError`` when the data is not JSON or not a
    /// FeatureCollection with a `features` array.
    public static func parse(_ data: Data, jurisdiction: Jurisdiction? = nil) throws -> [ImportRow] {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw ImportError("not valid JSON: \(error.localizedDescription)")
        }
        guard let object = root as? [String: Any], object["type"] as? String == "FeatureCollection" else {
            throw ImportError("not a GeoJSON FeatureCollection (the top-level \"type\" must be \"FeatureCollection\")")
        }
        guard let features = object["features"] as? [Any] else {
            throw ImportError("the FeatureCollection has no \"features\" array")
        }
        var rows: [ImportRow] = []
        for (k, f) in features.enumerated() {
            let number = k + 1
            if let props = (f as? [String: Any])?["properties"] as? [String: Any],
               props["role"] as? String == GeoJSONExporter.sectorRole {
                continue
            }
            do {
                rows.append(ImportRow(number: number, result: .success(try feature(f, number: number, jurisdiction: jurisdiction))))
            } catch {
                rows.append(ImportRow(number: number, result: .failure(error)))
            }
        }
        return rows
    }

    private static func feature(_ f: Any, number: Int, jurisdiction: Jurisdiction?) throws(ImportRowError) -> CameraDraft {
        func fail(_ field: String, _ reason: String) -> ImportRowError {
            ImportRowError(number: number, field: field, reason: reason)
        }
        guard let f = f as? [String: Any] else { throw fail("feature", "must be a JSON object") }
        guard f["type"] as? String == "Feature" else { throw fail("type", "must be \"Feature\"") }
        guard let g = f["geometry"], !(g is NSNull) else { throw fail("geometry", "is missing (a Point is required)") }
        guard let geometry = g as? [String: Any], let type = geometry["type"] as? String else {
            throw fail("geometry", "must be a GeoJSON geometry object")
        }
        guard type == "Point" else { throw fail("geometry", "must be a Point, not a \(type)") }
        guard let coordinates = geometry["coordinates"] as? [Any], coordinates.count >= 2,
              let lon = ImportValue.jsonNumber(coordinates[0]), let lat = ImportValue.jsonNumber(coordinates[1]) else {
            throw fail("coordinates", "must be [longitude, latitude] numbers")
        }
        var props: [String: Any] = [:]
        switch f["properties"] {
        case nil, is NSNull: break
        case let p as [String: Any]: props = p
        default: throw fail("properties", "must be a JSON object or null")
        }

        var headingName = CameraField.heading.rawValue
        var headingValue = ImportValue.json(props["heading"])
        if headingValue == nil, let direction = ImportValue.json(props["direction"]) {
            headingName = "direction"
            if case .text(let s) = direction, ImportValue.decimal(s.trimmingCharacters(in: .whitespaces)) == nil {
                // A compass point (N, NE, NNE, …).
                guard let h = OSMDirection.compassDegrees(s.trimmingCharacters(in: .whitespaces)) else {
                    throw fail("direction", "must be degrees or a compass point (N, NE, …), not '\(DraftReader.clip(s))'")
                }
                headingValue = .number(h, text: String(h))
            } else {
                headingValue = direction
            }
        }
        let headingField = headingName
        let reader = DraftReader(number: number, name: { $0 == .heading ? headingField : $0.rawValue })
        let idValue: RawValue?
        if let id = ImportValue.json(props["id"]) {
            idValue = id
        } else if case .number(_, let text)? = ImportValue.json(f["id"]) {
            idValue = .text(text)
        } else {
            idValue = ImportValue.json(f["id"])
        }
        return try reader.draft({ field in
            switch field {
            case .lat: return .number(lat.value, text: lat.text)
            case .lon: return .number(lon.value, text: lon.text)
            case .id: return idValue
            case .heading: return headingValue
            default: return ImportValue.json(props[field.rawValue])
            }
        }, jurisdiction: jurisdiction)
    }
}
