import Foundation

/// One refused row of an incident import: where (CSV line or GeoJSON feature number), which
/// field (the column or property as the file names it), the error code and why.
public struct IncidentRowError: Error, Equatable, Sendable, CustomStringConvertible {
    public var number: Int
    public var field: String
    /// `time_without_offset`, `bad_time_window`, `time_window_too_long`, `invalid_geometry`,
    /// `invalid_value`, `missing_option`, or `bad_record` (a CSV record that cannot be split).
    public var code: String
    public var reason: String

    public init(number: Int, field: String, code: String, reason: String) {
        self.number = number
        self.field = field
        self.code = code
        self.reason = reason
    }

    public var description: String { "#\(number) \(field) [\(code)]: \(reason)" }
}

/// Defaults and column names of an incident import.
///
/// CSV columns are found by name (case-insensitive, trimmed): for each field the first header
/// that matches one of its names. Default names (aliases, in order):
/// - case: `case`, `case_id`, `uid`, `id`
/// - kind: `kind`, `offense_type`, `type`, `category`
/// - at (an instant): `time`, `at`, `date_time`, `datetime`
/// - from / to (a window): `from`, `time_from` / `to`, `time_to`
/// - lat / lon: `lat`, `latitude` / `lon`, `lng`, `long`, `longitude`
/// - wkt (instead of lat/lon): `wkt`, `geometry`, `geom`
/// - description: `description`, `desc`, `note`
///
/// so the San Francisco open-data export (`uid,offense_type,date_time,longitude,latitude`)
/// imports as it is. `col_<field>=<header>` overrides a name. `defaultCase` / `defaultKind`
/// apply to rows (or files) without a value.
public struct IncidentImportOptions: Sendable {
    public var columns: [String: String] = [:]
    public var separator: Unicode.Scalar = ","
    public var defaultCase: String?
    public var defaultKind: String?

    public init() {}

    public static let fields = ["case", "kind", "at", "from", "to", "lat", "lon", "wkt", "description"]

    static let aliases: [String: [String]] = [
        "case": ["case", "case_id", "uid", "id"],
        "kind": ["kind", "offense_type", "type", "category"],
        "at": ["time", "at", "date_time", "datetime"],
        "from": ["from", "time_from"],
        "to": ["to", "time_to"],
        "lat": ["lat", "latitude"],
        "lon": ["lon", "lng", "long", "longitude"],
        "wkt": ["wkt", "geometry", "geom"],
        "description": ["description", "desc", "note"],
    ]

    func names(of field: String) -> [String] {
        if let c = columns[field] { return [ImportText.clean(c).lowercased()] }
        return Self.aliases[field] ?? [field]
    }
}

/// The fields of one incident as read from a file, before validation.
public struct IncidentRowInput: Sendable, Equatable {
    public var number: Int
    public var caseID: String?
    public var kind: String?
    public var at: String?
    public var from: String?
    public var to: String?
    public var lat: String?
    public var lon: String?
    /// A WKT text (CSV) or one built from a GeoJSON geometry.
    public var wkt: String?
    public var description: String?
    /// The name each field has in the file, for error messages.
    public var names: [String: String] = [:]

    public init(number: Int) { self.number = number }

    func name(_ field: String) -> String { names[field] ?? field }

    /// Validates the row into an incident (id 0) with the given radius and creation time.
    public func incident(radius: Double, now: Date, limits: IncidentLimits = .current) -> Result<Incident, IncidentRowError> {
        func fail(_ e: IncidentInputError) -> Result<Incident, IncidentRowError> {
            .failure(IncidentRowError(number: number, field: name(e.field), code: e.code.rawValue, reason: e.message))
        }
        do throws(IncidentInputError) {
            let text = try Incident.text(caseID: caseID, kind: kind, description: description, limits: limits)
            let window = try IncidentTimes.window(at: at, from: from, to: to, limits: limits)
            let shape: IncidentShape
            if let wkt {
                shape = try IncidentShape.parse(wkt: wkt)
            } else {
                guard let lat, let lon else {
                    throw IncidentInputError(.missingValue, "the row has no position (lat and lon, or wkt)", field: lat == nil ? "lat" : "lon")
                }
                guard let la = Double(lat.trimmingCharacters(in: .whitespaces)), la.isFinite else {
                    throw IncidentInputError(.invalidValue, "latitude must be a number, not '\(lat.prefix(40))'", field: "lat")
                }
                guard let lo = Double(lon.trimmingCharacters(in: .whitespaces)), lo.isFinite else {
                    throw IncidentInputError(.invalidValue, "longitude must be a number, not '\(lon.prefix(40))'", field: "lon")
                }
                do { shape = try IncidentShape.point(lat: la, lon: lo) } catch {
                    throw IncidentInputError(error.code, error.message, field: (-90...90).contains(la) ? "lon" : "lat")
                }
            }
            return .success(Incident(caseID: text.caseID, kind: text.kind, window: window, shape: shape, radius: radius,
                                     description: text.description, createdAt: now))
        } catch {
            return fail(error)
        }
    }
}

/// Reads incidents from CSV or GeoJSON.
public enum IncidentImporter {
    /// One input (or error) per CSV record; the number is the physical line the record starts
    /// on (the header is line 1). Throws ``ImportError`` for a file that cannot be read at all.
    public static func parseCSV(_ data: Data, options: IncidentImportOptions) throws -> [Result<IncidentRowInput, IncidentRowError>] {
        let opened = try CSVRecordReader.afterHeader(data, separator: options.separator)
        var reader = opened.reader
        let headerFields = opened.header
        var header: [String] = []
        var original: [String] = []
        for (k, f) in headerFields.enumerated() {
            guard let s = String(bytes: f, encoding: .utf8) else { throw ImportError(line: 1, "header column \(k + 1) is not valid UTF-8") }
            original.append(ImportText.clean(s))
            header.append(ImportText.clean(s).lowercased())
        }
        var index: [String: Int] = [:]
        for field in IncidentImportOptions.fields {
            for name in options.names(of: field) {
                if let k = header.firstIndex(of: name), !index.values.contains(k) { index[field] = k; break }
            }
            if options.columns[field] != nil, index[field] == nil {
                throw ImportError(line: 1, "column '\(options.columns[field]!)' (\(field)) is not in the header")
            }
        }
        if index["case"] == nil, options.defaultCase == nil {
            throw ImportError(line: 1, "no case column (case, case_id, uid or id; or col_case=…) and no case= default")
        }
        if index["kind"] == nil, options.defaultKind == nil {
            throw ImportError(line: 1, "no kind column (kind, offense_type, type or category; or col_kind=…) and no kind= default")
        }
        if index["at"] == nil, index["from"] == nil {
            throw ImportError(line: 1, "no time column (time, at, date_time or datetime; or from and to)")
        }
        if index["wkt"] == nil, index["lat"] == nil || index["lon"] == nil {
            throw ImportError(line: 1, "no position columns (lat and lon, latitude and longitude, or wkt)")
        }
        var names: [String: String] = [:]
        for (f, k) in index { names[f] = original[k] }

        var rows: [Result<IncidentRowInput, IncidentRowError>] = []
        while let item = try reader.next() {
            switch item {
            case .malformed(let line, let column, let reason):
                let field = column.map { $0 < original.count ? original[$0] : "record" } ?? "record"
                rows.append(.failure(IncidentRowError(number: line, field: field, code: "bad_record", reason: reason)))
            case .record(let line, let fields, let lastLine):
                if fields.count != header.count {
                    var reason = "has \(fields.count) field\(fields.count == 1 ? "" : "s"), the header has \(header.count)"
                    if lastLine > line {
                        try reader.resync(afterLineOf: line)
                        reason += " (a quoted field ran on to line \(lastLine); is a quote missing?)"
                    }
                    rows.append(.failure(IncidentRowError(number: line, field: "record", code: "bad_record", reason: reason)))
                    continue
                }
                var input = IncidentRowInput(number: line)
                input.names = names
                var bad: IncidentRowError?
                func value(_ f: String) -> String? {
                    guard let k = index[f] else { return nil }
                    guard let s = String(bytes: fields[k], encoding: .utf8) else {
                        bad = bad ?? IncidentRowError(number: line, field: original[k], code: "invalid_value", reason: "is not valid UTF-8 text")
                        return nil
                    }
                    let t = ImportText.clean(s)
                    return t.isEmpty ? nil : t
                }
                input.caseID = value("case") ?? options.defaultCase
                input.kind = value("kind") ?? options.defaultKind
                input.at = value("at")
                input.from = value("from")
                input.to = value("to")
                if input.at != nil, input.from != nil || input.to != nil { input.at = nil }  // a window wins over an instant column
                input.lat = value("lat")
                input.lon = value("lon")
                input.wkt = value("wkt")
                input.description = value("description")
                if let bad { rows.append(.failure(bad)) } else { rows.append(.success(input)) }
            }
        }
        return rows
    }

    /// One input (or error) per feature of a FeatureCollection (number = 1-based feature index).
    /// Geometry: `Point`, `LineString` or `Polygon` (`[lon, lat]` positions). Properties: the
    /// CSV names (`case`/`case_id`/`uid`/`id`, `kind`/`offense_type`, `time`/`at`/`date_time`,
    /// `from`, `to`, `description`); the feature's own `id` member is a case id of last resort.
    public static func parseGeoJSON(_ data: Data, options: IncidentImportOptions) throws -> [Result<IncidentRowInput, IncidentRowError>] {
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data, options: []) } catch {
            throw ImportError("not valid JSON: \(error.localizedDescription)")
        }
        guard let object = root as? [String: Any], object["type"] as? String == "FeatureCollection" else {
            throw ImportError("not a GeoJSON FeatureCollection (the top-level \"type\" must be \"FeatureCollection\")")
        }
        guard let features = object["features"] as? [Any] else { throw ImportError("the FeatureCollection has no \"features\" array") }
        var rows: [Result<IncidentRowInput, IncidentRowError>] = []
        for (k, f) in features.enumerated() {
            let number = k + 1
            func fail(_ field: String, _ code: String, _ reason: String) {
                rows.append(.failure(IncidentRowError(number: number, field: field, code: code, reason: reason)))
            }
            guard let f = f as? [String: Any], f["type"] as? String == "Feature" else {
                fail("feature", "invalid_value", "must be a JSON object with \"type\": \"Feature\""); continue
            }
            let props = f["properties"] as? [String: Any] ?? [:]
            var lowered: [String: (String, Any)] = [:]
            for (key, v) in props { lowered[key.lowercased()] = (key, v) }
            var input = IncidentRowInput(number: number)
            func prop(_ field: String) -> String? {
                for name in options.names(of: field) {
                    guard let (key, v) = lowered[name] else { continue }
                    input.names[field] = key
                    if let s = v as? String { let t = ImportText.clean(s); return t.isEmpty ? nil : t }
                    if let n = v as? NSNumber { return n.stringValue }
                    return nil
                }
                return nil
            }
            input.caseID = prop("case") ?? (f["id"] as? String) ?? (f["id"] as? NSNumber)?.stringValue ?? options.defaultCase
            input.kind = prop("kind") ?? options.defaultKind
            input.at = prop("at")
            input.from = prop("from")
            input.to = prop("to")
            if input.at != nil, input.from != nil || input.to != nil { input.at = nil }
            input.description = prop("description")
            guard let g = f["geometry"] as? [String: Any], let type = g["type"] as? String else {
                fail("geometry", "invalid_geometry", "is missing (a Point, LineString or Polygon is required)"); continue
            }
            input.names["wkt"] = "geometry"
            func position(_ v: Any) -> String? {
                guard let a = v as? [Any], a.count >= 2, let x = (a[0] as? NSNumber)?.doubleValue,
                      let y = (a[1] as? NSNumber)?.doubleValue, x.isFinite, y.isFinite else { return nil }
                return "\(x) \(y)"
            }
            func list(_ v: Any?) -> String? {
                guard let a = v as? [Any] else { return nil }
                var out: [String] = []
                for p in a { guard let s = position(p) else { return nil }; out.append(s) }
                return "(" + out.joined(separator: ", ") + ")"
            }
            var wkt: String?
            switch type {
            case "Point": wkt = g["coordinates"].flatMap(position).map { "POINT (\($0))" }
            case "LineString": wkt = list(g["coordinates"]).map { "LINESTRING \($0)" }
            case "Polygon":
                if let rings = g["coordinates"] as? [Any] {
                    let parts = rings.map(list)
                    if !parts.contains(where: { $0 == nil }) { wkt = "POLYGON (" + parts.map { $0! }.joined(separator: ", ") + ")" }
                }
            default:
                fail("geometry", "invalid_geometry", "must be a Point, LineString or Polygon, not a \(type)"); continue
            }
            guard let wkt else { fail("coordinates", "invalid_geometry", "are not valid \(type) coordinates ([lon, lat] numbers)"); continue }
            input.wkt = wkt
            rows.append(.success(input))
        }
        return rows
    }
}
