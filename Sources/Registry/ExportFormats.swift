import Foundation

// Streaming export writers: the caller asks for the header, then one chunk per camera, then the
// footer, and writes each chunk out as it goes, so the whole registry is never held as text.
// What these write, the importers read back to the same cameras (doubles are written with
// Swift's shortest round-trip `description`, timestamps to the microsecond as PostgreSQL keeps
// them, text as UTF-8).

/// Writes cameras as CSV (RFC 4180): the header of ``CSVMapping/default`` (every
/// ``CameraField``, in declaration order), one CRLF-terminated record per camera.
///
/// Values: numbers in Swift's shortest round-trip form (`106.60123456789012`, `90.0`), a
/// missing optional as an empty field, enums by their raw value, the schedule as `24/7` or
/// `HH:MM-HH:MM`, timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. A field is quoted when it holds
/// the separator, a quote, a line break, or leading or trailing whitespace.
///
/// ``CSVImporter`` reads the output back to the same cameras (with the same mapping), as long
/// as text fields have no surrounding whitespace, are NFC, and optional text is never the
/// empty string (the importer trims, normalises, and reads an empty field as missing).
///
/// No protection against spreadsheet formula injection is applied (a prefix would break the
/// round trip); values starting with `=`, `+`, `-` or `@` are written as they are.
public struct CSVExporter: Sendable {
    /// Column names and separator.
    public var mapping: CSVMapping
    /// Whether ``header()`` starts with a UTF-8 byte order mark (Excel needs one to show
    /// Vietnamese text correctly; ``CSVImporter`` skips it).
    public var byteOrderMark: Bool

    /// The fields written, in column order.
    public static let fields: [CameraField] = CameraField.allCases

    /// A writer with the default mapping and no byte order mark.
    public init(mapping: CSVMapping = .default, byteOrderMark: Bool = false) {
        self.mapping = mapping
        self.byteOrderMark = byteOrderMark
    }

    /// The header line (CRLF-terminated), with the byte order mark if requested.
    public func header() -> String {
        (byteOrderMark ? "\u{FEFF}" : "") + Self.fields.map { quote(mapping[$0]) }.joined(separator: String(mapping.separator)) + "\r\n"
    }

    /// One camera's record, CRLF-terminated.
    public func row(_ camera: Camera) -> String {
        Self.fields.map { quote(ExportValue.text(of: $0, camera) ?? "") }.joined(separator: String(mapping.separator)) + "\r\n"
    }

    /// The end of the file (nothing: CSV has no footer; here for symmetry with the GeoJSON writer).
    public func footer() -> String { "" }

    /// `value`, quoted if it must be.
    func quote(_ value: String) -> String {
        let sep = Character(mapping.separator)
        let needs = value.contains { $0 == sep || $0 == "\"" || $0.isNewline }
            || value.first?.isWhitespace == true || value.last?.isWhitespace == true
        guard needs else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// Writes cameras as a GeoJSON FeatureCollection (RFC 7946).
///
/// Each camera is a `Feature` whose `id` member is the camera id, whose geometry is a `Point`
/// `[lon, lat]`, and whose properties are every other field under its ``CameraField`` name
/// (`id`, `site_kind`, `address`, …, `version`; `null` for a missing optional; numbers as JSON
/// numbers, timestamps as RFC 3339 strings). The position is only in the geometry.
///
/// **Field-of-view sectors.** When the caller passes a sector ring for a camera, it is written
/// as a *second* feature right after the camera's: geometry `Polygon`, `id` `<camera id>/fov`,
/// properties `{"camera_id": <id>, "role": "fov_sector"}`. A separate feature rather than a
/// `GeometryCollection` because map tools (QGIS, Leaflet, geojson.io, PostGIS
/// `ST_GeomFromGeoJSON`) style and filter single geometries well and collections poorly, and
/// because the camera stays a plain Point feature. ``GeoJSONImporter`` skips sector features.
/// The ring is closed if it is not, and reversed if needed so that it runs counter-clockwise
/// (RFC 7946's right-hand rule); a ring with fewer than three distinct positions or a
/// non-finite coordinate is not written.
///
/// The writer counts the features it has written so that it can put commas between them; use
/// one writer value per file.
public struct GeoJSONExporter: Sendable {
    /// `properties.role` of a sector feature.
    public static let sectorRole = "fov_sector"
    /// Properties written for each camera, in order (every field except `lat` and `lon`).
    public static let propertyFields: [CameraField] = CameraField.allCases.filter { $0 != .lat && $0 != .lon }

    private var written = 0

    /// A writer for one file.
    public init() {}

    /// The start of the file.
    public func header() -> String { "{\"type\":\"FeatureCollection\",\"features\":[\n" }

    /// The camera's feature, and its sector feature when `sector` (a ring of (lat, lon)
    /// positions, such as a ``Sector``'s ring) is given; with the separating comma when needed.
    public mutating func feature(_ camera: Camera, sector: [(lat: Double, lon: Double)]? = nil) -> String {
        var out = written > 0 ? ",\n" : ""
        written += 1
        out += "{\"type\":\"Feature\",\"id\":\(ExportValue.json(camera.id)),\"geometry\":{\"type\":\"Point\",\"coordinates\":["
        out += ExportValue.json(camera.lon) + "," + ExportValue.json(camera.lat) + "]},\"properties\":{"
        out += Self.propertyFields.map { field in
            ExportValue.json(field.rawValue) + ":" + ExportValue.jsonValue(of: field, camera)
        }.joined(separator: ",")
        out += "}}"
        if let sector, let ring = Self.ring(sector) {
            out += ",\n{\"type\":\"Feature\",\"id\":\(ExportValue.json(camera.id + "/fov")),\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[["
            out += ring.map { "[\(ExportValue.json($0.lon)),\(ExportValue.json($0.lat))]" }.joined(separator: ",")
            out += "]]},\"properties\":{\"camera_id\":\(ExportValue.json(camera.id)),\"role\":\(ExportValue.json(Self.sectorRole))}}"
        }
        return out
    }

    /// The end of the file.
    public func footer() -> String { "\n]}\n" }

    /// The ring closed and counter-clockwise, or `nil` when it cannot be a polygon.
    static func ring(_ points: [(lat: Double, lon: Double)]) -> [(lat: Double, lon: Double)]? {
        guard points.allSatisfy({ $0.lat.isFinite && $0.lon.isFinite }) else { return nil }
        var r = points
        if let f = r.first, let l = r.last, f != l { r.append(f) }
        var distinct: [(Double, Double)] = []
        for p in r.dropLast() where !distinct.contains(where: { $0 == (p.lat, p.lon) }) { distinct.append((p.lat, p.lon)) }
        guard distinct.count >= 3 else { return nil }
        // Shoelace in (x = lon, y = lat): positive = counter-clockwise.
        var twiceArea = 0.0
        for k in 0..<(r.count - 1) { twiceArea += r[k].lon * r[k + 1].lat - r[k + 1].lon * r[k].lat }
        if twiceArea < 0 { r.reverse() }
        return r
    }
}

/// Field values as export text.
enum ExportValue {
    /// A field's text (CSV), or `nil` for a missing optional.
    static func text(of field: CameraField, _ c: Camera) -> String? {
        switch field {
        case .id: return c.id
        case .lat: return c.lat.description
        case .lon: return c.lon.description
        case .siteKind: return c.siteKind.rawValue
        case .address: return c.address
        case .ward: return c.ward
        case .heading: return c.heading?.description
        case .fov: return c.fov.description
        case .range: return c.range.description
        case .mountHeight: return c.mountHeight?.description
        case .ownerKind: return c.ownerKind.rawValue
        case .ownerName: return c.ownerName
        case .ownerPhone: return c.ownerPhone
        case .schedule: return c.schedule.description
        case .retentionDays: return String(c.retentionDays)
        case .status: return c.status.rawValue
        case .createdAt: return timestamp(c.createdAt)
        case .updatedAt: return timestamp(c.updatedAt)
        case .version: return String(c.version)
        }
    }

    /// A field as a JSON value.
    static func jsonValue(of field: CameraField, _ c: Camera) -> String {
        switch field {
        case .lat: return json(c.lat)
        case .lon: return json(c.lon)
        case .heading: return c.heading.map(json) ?? "null"
        case .fov: return json(c.fov)
        case .range: return json(c.range)
        case .mountHeight: return c.mountHeight.map(json) ?? "null"
        case .retentionDays: return String(c.retentionDays)
        case .version: return String(c.version)
        default: return text(of: field, c).map(json) ?? "null"
        }
    }

    /// Microseconds, as PostgreSQL stores timestamps.
    static func timestamp(_ d: Date) -> String { ISO8601Text.format(d) }

    /// A JSON number (`null` for a non-finite value, which JSON cannot hold).
    static func json(_ d: Double) -> String { d.isFinite ? d.description : "null" }

    /// A JSON string literal: `"`, `\` and control characters escaped, everything else as UTF-8.
    static func json(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default:
                if u.value < 0x20 || u.value == 0x7F {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
