/// `COVERAGE RUN` options, syntax-checked (the time is checked by the server, which parses dates).
public struct CoverageRunRequest: Sendable, Equatable {
    /// Only this ward.
    public var ward: String?
    /// Count a camera only if its schedule records at this instant (ISO-8601 with offset).
    public var at: String?
    /// Number of new camera sites to suggest (0–50).
    public var suggest: Int
    /// Cameras with a shorter range (m) are not counted.
    public var minRange: Double
    /// Incidents of the last `days` days weigh the gaps.
    public var days: Int
    /// Suggested cameras' range (m) and field of view (degrees).
    public var range: Double
    public var fov: Double
    /// Tile side (m).
    public var tile: Double
    /// Store map features (for `--geojson`/`--svg`).
    public var map: Bool

    public init(ward: String? = nil, at: String? = nil, suggest: Int = 0, minRange: Double = 0, days: Int = 90,
                range: Double = 40, fov: Double = 90, tile: Double = 2000, map: Bool = true) {
        self.ward = ward
        self.at = at
        self.suggest = suggest
        self.minRange = minRange
        self.days = days
        self.range = range
        self.fov = fov
        self.tile = tile
        self.map = map
    }
}

/// A parsed coverage command.
public enum CoverageCommand: Sendable, Equatable {
    /// `COVERAGE RUN …`: starts a background job; answers with its id at once.
    case run(CoverageRunRequest)
    /// `COVERAGE RESULT <id> [stretches=<n>]`: the stored figures of a complete run.
    case result(id: Int64, stretches: Int)
    /// `COVERAGE MAP <id> [ward=…]`: the stored map features (GeoJSON) of a complete run.
    case map(id: Int64, ward: String?)
    /// `COVERAGE LAYERS`: how many wards and streets the reference layers hold.
    case layers
}

/// A parsed job command (the job registry holds background jobs such as coverage runs).
public enum JobCommand: Sendable, Equatable {
    /// `JOB STATUS <id>`: phase, percent, elapsed and ETA (or the final state).
    case status(id: Int64)
    /// `JOB CANCEL <id>`: stops a running job.
    case cancel(id: Int64)
}

/// The coverage and job commands of the command table.
public enum CoverageCommands {
    /// Formats `IMPORT BEGIN` accepts for the reference layers.
    public static let layerFormats = ["wards-geojson", "streets-geojson"]

    static func id(_ s: String) throws(ProtocolError) -> Int64 {
        Int64(try Values.int(s, field: "id", range: 1...Int(Int64.max)))
    }

    static func name(_ options: [String: String], _ key: String) throws(ProtocolError) -> String? {
        guard let v = options[key] else { return nil }
        let t = v.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
        guard !t.isEmpty, t.count <= 200 else { throw ProtocolError(.invalidValue, "\(key) must be 1–200 characters", field: key) }
        return t
    }

    static let specs: [CommandSpec] = [
        CommandSpec(words: ["COVERAGE", "RUN"], access: .analysisRun, arguments: [], optionalArguments: 0,
                    options: [
                        .opt("ward", "<name>", "Only this ward (default: every ward)."),
                        .opt("at", "<time>", "Count a camera only if its schedule records then (ISO-8601 with offset)."),
                        .opt("suggest", "<n>", "Suggest this many new camera sites (0–50, default 0)."),
                        .opt("min_range", "<m>", "Do not count cameras whose range is shorter (default 0)."),
                        .opt("days", "<n>", "Weigh gaps by the incidents of the last n days (1–3650, default 90)."),
                        .opt("range", "<m>", "Suggested cameras' range (1–500 m, default 40)."),
                        .opt("fov", "<deg>", "Suggested cameras' field of view (1–360°, default 90)."),
                        .opt("tile", "<m>", "Tile side (100–20000 m, default 2000): bounds memory."),
                        .opt("map", "<yes|no>", "Store map features for GeoJSON/SVG output (default yes)."),
                    ],
                    summary: "Starts a coverage-gap analysis in the background; answers with the job id at once.") { _, o, _ throws(ProtocolError) in
            var r = CoverageRunRequest()
            r.ward = try name(o, "ward")
            r.at = o["at"]
            if let v = o["suggest"] { r.suggest = try Values.int(v, field: "suggest", range: 0...50) }
            if let v = o["min_range"] { r.minRange = try Values.double(v, field: "min_range", range: 0...1000) }
            if let v = o["days"] { r.days = try Values.int(v, field: "days", range: 1...3650) }
            if let v = o["range"] { r.range = try Values.double(v, field: "range", range: 1...500) }
            if let v = o["fov"] { r.fov = try Values.double(v, field: "fov", range: 1...360) }
            if let v = o["tile"] { r.tile = try Values.double(v, field: "tile", range: 100...20_000) }
            if let v = o["map"] {
                guard ["yes", "no"].contains(v.lowercased()) else { throw ProtocolError(.invalidValue, "map must be yes or no", field: "map") }
                r.map = v.lowercased() == "yes"
            }
            return .coverage(.run(r))
        },
        CommandSpec(words: ["COVERAGE", "RESULT"], access: .analysisRead, arguments: ["id"], optionalArguments: 0,
                    options: [.opt("stretches", "<n>", "Uncovered stretches listed, best first (0–1000, default 20).")],
                    summary: "The per-ward and town figures, stretches and suggestions of a complete coverage run.") { a, o, _ throws(ProtocolError) in
            .coverage(.result(id: try id(a[0]), stretches: try o["stretches"].map { v throws(ProtocolError) in
                try Values.int(v, field: "stretches", range: 0...1000)
            } ?? 20))
        },
        CommandSpec(words: ["COVERAGE", "MAP"], access: .analysisRead, arguments: ["id"], optionalArguments: 0,
                    options: [.opt("ward", "<name>", "Only this ward's features.")],
                    summary: "GeoJSON features of a complete run: wards, covered streets, gaps, intersections, sectors, suggestions.") { a, o, _ throws(ProtocolError) in
            .coverage(.map(id: try id(a[0]), ward: try name(o, "ward")))
        },
        CommandSpec(words: ["COVERAGE", "LAYERS"], access: .analysisRead, arguments: [], optionalArguments: 0, options: [],
                    summary: "How many wards and streets the reference layers hold.") { _, _, _ in .coverage(.layers) },
        CommandSpec(words: ["JOB", "STATUS"], access: .analysisRead, arguments: ["id"], optionalArguments: 0, options: [],
                    summary: "A background job's state: phase, percent, elapsed and ETA while it runs.") { a, _, _ throws(ProtocolError) in
            .job(.status(id: try id(a[0])))
        },
        CommandSpec(words: ["JOB", "CANCEL"], access: .analysisRun, arguments: ["id"], optionalArguments: 0, options: [],
                    summary: "Stops a running background job; it ends as cancelled, with no results.") { a, _, _ throws(ProtocolError) in
            .job(.cancel(id: try id(a[0])))
        },
    ]
}
