/// `INCIDENT ADD`: the incident's fields, syntax-checked. Times and WKT are checked by the
/// server (`time_without_offset`, `bad_time_window`, `time_window_too_long`, `invalid_geometry`),
/// since this module has no date or GEOS code.
public struct IncidentAddRequest: Sendable, Equatable {
    public var caseID: String
    public var kind: String
    /// `at=` (an instant), or `from=` and `to=`.
    public var at: String?
    public var from: String?
    public var to: String?
    /// `point=<lat>,<lon>`.
    public var point: LatLon?
    /// `wkt="…"` (lon lat order, as WKT is).
    public var wkt: String?
    /// Candidate-camera radius in metres; nil = the server's default (200 m).
    public var radius: Double?
    public var description: String?

    public init(caseID: String, kind: String, at: String? = nil, from: String? = nil, to: String? = nil,
                point: LatLon? = nil, wkt: String? = nil, radius: Double? = nil, description: String? = nil) {
        self.caseID = caseID
        self.kind = kind
        self.at = at
        self.from = from
        self.to = to
        self.point = point
        self.wkt = wkt
        self.radius = radius
        self.description = description
    }
}

/// A WGS84 position.
public struct LatLon: Sendable, Equatable {
    public var lat: Double
    public var lon: Double
    public init(lat: Double, lon: Double) {
        self.lat = lat
        self.lon = lon
    }
}

/// A lat/lon box (`bbox=minLat,minLon,maxLat,maxLon`).
public struct LatLonBox: Sendable, Equatable {
    public var minLat: Double, minLon: Double, maxLat: Double, maxLon: Double
    public init(minLat: Double, minLon: Double, maxLat: Double, maxLon: Double) {
        self.minLat = minLat
        self.minLon = minLon
        self.maxLat = maxLat
        self.maxLon = maxLon
    }
}

/// `INCIDENT LIST` filters and paging.
public struct IncidentListQuery: Sendable, Equatable {
    public var caseID: String?
    public var kind: String?
    /// Time filter (raw text; windows overlapping [from, to] are listed).
    public var from: String?
    public var to: String?
    public var bbox: LatLonBox?
    public var after: Int64?
    public var limit: Int
    public init(caseID: String? = nil, kind: String? = nil, from: String? = nil, to: String? = nil,
                bbox: LatLonBox? = nil, after: Int64? = nil, limit: Int = 100) {
        self.caseID = caseID
        self.kind = kind
        self.from = from
        self.to = to
        self.bbox = bbox
        self.after = after
        self.limit = limit
    }
}

/// A parsed incident command.
public enum IncidentCommand: Sendable, Equatable {
    /// `INCIDENT ADD …`.
    case add(IncidentAddRequest)
    /// `INCIDENT GET <id>`.
    case get(id: Int64)
    /// `INCIDENT LIST …`.
    case list(IncidentListQuery)
    /// `INCIDENTS NEAR <lat> <lon> radius=<m> [from=] [to=] [limit=]`.
    case near(lat: Double, lon: Double, radius: Double, from: String?, to: String?, limit: Int)
    /// `INCIDENTS FOR CAMERA <id> [from=] [to=] [after=] [limit=]`.
    case forCamera(id: String, from: String?, to: String?, after: Int64?, limit: Int)
    /// `INCIDENT IMPORT BEGIN format=csv|geojson [options]`: answers with an upload token.
    case importBegin(format: String, options: [String: String])
    /// `INCIDENT IMPORT DATA upload=<token> data=<base64>`.
    case importData(upload: String, base64: String)
    /// `INCIDENT IMPORT COMMIT upload=<token>`.
    case importCommit(upload: String)
    /// `INCIDENT IMPORT ABORT upload=<token>`.
    case importAbort(upload: String)
}

/// The incident commands of the command table.
enum IncidentCommands {
    static func opt(_ name: String, _ placeholder: String, _ summary: String, required: Bool = false) -> OptionSpec {
        OptionSpec(name: name, placeholder: placeholder, required: required, summary: summary)
    }

    static func incidentID(_ s: String, field: String = "id") throws(ProtocolError) -> Int64 {
        Int64(try Values.int(s, field: field, range: 1...Int(Int64.max)))
    }

    static func text(_ options: [String: String], _ name: String, max: Int = 100) throws(ProtocolError) -> String? {
        guard let v = options[name] else { return nil }
        let t = v.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
        guard !t.isEmpty else { throw ProtocolError(.invalidValue, "\(name) must not be empty", field: name) }
        guard t.count <= max else { throw ProtocolError(.invalidValue, "\(name) is longer than \(max) characters", field: name) }
        return t
    }

    /// `<lat>,<lon>`.
    static func point(_ s: String, field: String) throws(ProtocolError) -> LatLon {
        let parts = s.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        guard parts.count == 2 else {
            throw ProtocolError(.invalidValue, "\(field) must be <lat>,<lon> (e.g. 11.1481,106.6049), not \(Values.clip(s))", field: field)
        }
        return LatLon(lat: try Values.double(parts[0], field: field, range: -90...90),
                      lon: try Values.double(parts[1], field: field, range: -180...180))
    }

    static func bbox(_ s: String) throws(ProtocolError) -> LatLonBox {
        let p = s.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        guard p.count == 4 else {
            throw ProtocolError(.invalidValue, "bbox must be minLat,minLon,maxLat,maxLon, not \(Values.clip(s))", field: "bbox")
        }
        let b = LatLonBox(minLat: try Values.double(p[0], field: "bbox", range: -90...90),
                          minLon: try Values.double(p[1], field: "bbox", range: -180...180),
                          maxLat: try Values.double(p[2], field: "bbox", range: -90...90),
                          maxLon: try Values.double(p[3], field: "bbox", range: -180...180))
        guard b.minLat <= b.maxLat, b.minLon <= b.maxLon else {
            throw ProtocolError(.invalidValue, "bbox must be minLat,minLon,maxLat,maxLon with min ≤ max", field: "bbox")
        }
        return b
    }

    static func limit(_ options: [String: String], _ limits: ProtocolLimits) throws(ProtocolError) -> Int {
        try options["limit"].map { v throws(ProtocolError) in try Values.int(v, field: "limit", range: 1...limits.maxLimit) }
            ?? limits.defaultLimit
    }

    static func token(_ options: [String: String]) throws(ProtocolError) -> String {
        let t = options["upload"]!
        guard !t.isEmpty, t.count <= 64, t.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)) }) else {
            throw ProtocolError(.invalidValue, "upload must be the token INCIDENT IMPORT BEGIN returned", field: "upload")
        }
        return t
    }

    static let timeFilter = [
        opt("from", "<time>", "Only incidents whose window ends at or after this time (ISO-8601 with offset)."),
        opt("to", "<time>", "Only incidents whose window starts at or before this time."),
    ]

    /// Fields whose CSV column (or GeoJSON property) can be named with `col_<field>=<header>`.
    static let mappableFields = ["case", "kind", "at", "from", "to", "lat", "lon", "wkt", "description"]

    static let uploadOption = opt("upload", "<token>", "The token INCIDENT IMPORT BEGIN returned.", required: true)

    static let specs: [CommandSpec] = [
        CommandSpec(words: ["INCIDENT", "ADD"], access: .incidentWrite, arguments: [], optionalArguments: 0,
                    options: [
                        opt("case", "<case-id>", "The case the incident belongs to.", required: true),
                        opt("kind", "<text>", "What happened (robbery, theft, traffic, …; stored lower case).", required: true),
                        opt("at", "<time>", "When, for an instant: ISO-8601 with an offset (2022-06-26T06:40+07:00)."),
                        opt("from", "<time>", "Start of the window (with to=; at most 7 days long by default)."),
                        opt("to", "<time>", "End of the window (inclusive)."),
                        opt("point", "<lat>,<lon>", "Where, as a point."),
                        opt("wkt", "<wkt>", "Where, as WKT in lon lat order: \"POINT(…)\", \"LINESTRING(…)\" or \"POLYGON((…))\"."),
                        opt("radius", "<m>", "Link the non-retired cameras within this many metres of the geometry (default 200)."),
                        opt("description", "<text>", "Free text (quote it)."),
                    ],
                    summary: "Records an incident and links its candidate cameras (distance, field of view, footage state).") { _, options, limits throws(ProtocolError) in
            guard let caseID = try text(options, "case"), let kind = try text(options, "kind") else {
                throw ProtocolError(.missingOption, "INCIDENT ADD needs case= and kind=")
            }
            if options["at"] == nil {
                if options["from"] == nil && options["to"] == nil {
                    throw ProtocolError(.missingOption, "INCIDENT ADD needs at=<time>, or from=<time> and to=<time>", field: "at")
                }
                if options["from"] == nil { throw ProtocolError(.missingOption, "to= needs from= as well (or use at=)", field: "from") }
                if options["to"] == nil { throw ProtocolError(.missingOption, "from= needs to= as well (or use at=)", field: "to") }
            } else if options["from"] != nil || options["to"] != nil {
                throw ProtocolError(.invalidValue, "give either at=<time> or from=<time> to=<time>, not both", field: "at")
            }
            let p = try options["point"].map { v throws(ProtocolError) in try point(v, field: "point") }
            if p == nil && options["wkt"] == nil {
                throw ProtocolError(.missingOption, "INCIDENT ADD needs point=<lat>,<lon> or wkt=\"…\"", field: "point")
            }
            if p != nil && options["wkt"] != nil {
                throw ProtocolError(.invalidValue, "give either point= or wkt=, not both", field: "wkt")
            }
            let radius = try options["radius"].map { v throws(ProtocolError) in try Values.radius(v, limits: limits) }
            let description = options["description"]
            if let description, description.count > 4000 {
                throw ProtocolError(.invalidValue, "description is longer than 4000 characters", field: "description")
            }
            return .incident(.add(IncidentAddRequest(caseID: caseID, kind: kind, at: options["at"], from: options["from"], to: options["to"],
                                                      point: p, wkt: options["wkt"], radius: radius, description: description)))
        },
        CommandSpec(words: ["INCIDENT", "GET"], access: .incidentRead, arguments: ["id"], optionalArguments: 0, options: [],
                    summary: "One incident with its candidate cameras.") { args, _, _ throws(ProtocolError) in
            .incident(.get(id: try incidentID(args[0])))
        },
        CommandSpec(words: ["INCIDENT", "LIST"], access: .incidentRead, arguments: [], optionalArguments: 0,
                    options: [opt("case", "<case-id>", "Only this case."), opt("kind", "<text>", "Only this kind.")] + timeFilter + [
                        opt("bbox", "<minLat,minLon,maxLat,maxLon>", "Only incidents whose geometry meets this box."),
                        opt("after", "<cursor>", "The next_cursor of the previous page."),
                        opt("limit", "<n>", "Page size, 1–10000 (default 100)."),
                    ],
                    summary: "Lists incidents by id with filters, a page at a time (next_cursor).") { _, options, limits throws(ProtocolError) in
            .incident(.list(IncidentListQuery(
                caseID: try text(options, "case"), kind: try text(options, "kind"), from: options["from"], to: options["to"],
                bbox: try options["bbox"].map { v throws(ProtocolError) in try bbox(v) },
                after: try options["after"].map { v throws(ProtocolError) in try incidentID(v, field: "after") },
                limit: try limit(options, limits))))
        },
        CommandSpec(words: ["INCIDENTS", "NEAR"], access: .incidentRead, arguments: ["lat", "lon"], optionalArguments: 0,
                    options: [opt("radius", "<m>", "Search radius in metres (to the incident's geometry).", required: true)] + timeFilter
                        + [opt("limit", "<n>", "At most this many incidents, nearest first (default 100).")],
                    summary: "Incidents within a radius of a point, nearest first.") { args, options, limits throws(ProtocolError) in
            let lat = try Values.double(args[0], field: "lat", range: -90...90)
            let lon = try Values.double(args[1], field: "lon", range: -180...180)
            return .incident(.near(lat: lat, lon: lon, radius: try Values.radius(options["radius"]!, limits: limits),
                                   from: options["from"], to: options["to"], limit: try limit(options, limits)))
        },
        CommandSpec(words: ["INCIDENTS", "FOR", "CAMERA"], access: .incidentRead, arguments: ["id"], optionalArguments: 0,
                    options: timeFilter + [opt("after", "<cursor>", "The next_cursor of the previous page."),
                                           opt("limit", "<n>", "Page size (default 100).")],
                    summary: "The incidents a camera was linked to as a candidate, by id, with the link.") { args, options, limits throws(ProtocolError) in
            .incident(.forCamera(id: try Values.cameraID(args[0]), from: options["from"], to: options["to"],
                                 after: try options["after"].map { v throws(ProtocolError) in try incidentID(v, field: "after") },
                                 limit: try limit(options, limits)))
        },
        CommandSpec(words: ["INCIDENT", "IMPORT", "BEGIN"], access: .incidentUpload, arguments: [], optionalArguments: 0,
                    options: [
                        opt("format", "<csv|geojson>", "The file's format.", required: true),
                        opt("case", "<case-id>", "Case id for rows without one."),
                        opt("kind", "<text>", "Kind for rows without one."),
                        opt("radius", "<m>", "Camera-linking radius for every incident (default 200)."),
                        opt("all_or_nothing", "<yes|no>", "Import nothing if any row is bad (default no)."),
                        opt("separator", "<char>", "CSV separator (default ,)."),
                    ] + mappableFields.map { opt("col_\($0)", "<header>", "CSV column (GeoJSON property) holding \($0).") },
                    summary: "Starts uploading a CSV or GeoJSON file of incidents; answers with an upload token.") { _, options, limits throws(ProtocolError) in
            let format = options["format"]!.lowercased()
            guard ["csv", "geojson"].contains(format) else {
                throw ProtocolError(.invalidValue, "format must be csv or geojson", field: "format")
            }
            if let a = options["all_or_nothing"], !["yes", "no", "true", "false"].contains(a.lowercased()) {
                throw ProtocolError(.invalidValue, "all_or_nothing must be yes or no", field: "all_or_nothing")
            }
            if let sep = options["separator"], sep.unicodeScalars.count != 1 {
                throw ProtocolError(.invalidValue, "separator must be one character", field: "separator")
            }
            if let r = options["radius"] { _ = try Values.radius(r, limits: limits) }
            return .incident(.importBegin(format: format, options: options))
        },
        CommandSpec(words: ["INCIDENT", "IMPORT", "DATA"], access: .incidentUpload, arguments: [], optionalArguments: 0,
                    options: [uploadOption, opt("data", "<base64>", "The next chunk of the file, base64.", required: true)],
                    summary: "Appends a chunk to an incident upload.") { _, options, _ throws(ProtocolError) in
            .incident(.importData(upload: try token(options), base64: options["data"]!))
        },
        CommandSpec(words: ["INCIDENT", "IMPORT", "COMMIT"], access: .incidentWrite, arguments: [], optionalArguments: 0, options: [uploadOption],
                    summary: "Loads the uploaded incidents and links their cameras in one transaction; reports refused rows.") { _, options, _ throws(ProtocolError) in
            .incident(.importCommit(upload: try token(options)))
        },
        CommandSpec(words: ["INCIDENT", "IMPORT", "ABORT"], access: .incidentUpload, arguments: [], optionalArguments: 0, options: [uploadOption],
                    summary: "Drops an incident upload.") { _, options, _ throws(ProtocolError) in
            .incident(.importAbort(upload: try token(options)))
        },
    ]
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
