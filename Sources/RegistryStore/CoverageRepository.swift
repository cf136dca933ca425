import Foundation
import Postgres
import Registry

/// Reads and writes the coverage reference layers (`wards`, `streets`) and the coverage runs
/// (`coverage_runs`, `coverage_ward_results`, migration 0004). Stateless; callers choose the
/// connection.
public enum CoverageRepository {
    // MARK: Layers

    /// Replaces the ward layer in one transaction; returns the number of wards stored.
    @discardableResult
    public static func replaceWards(_ wards: [CoverageWard], source: String, on c: PostgresConnection) throws -> Int {
        try c.transaction { try storeWards(wards, source: source, on: $0) }
    }

    static func storeWards(_ wards: [CoverageWard], source: String, on c: PostgresConnection) throws -> Int {
        try c.query("DELETE FROM wards")
        for (i, w) in wards.enumerated() {
            try c.query("INSERT INTO wards (name, geometry_wkt, source, position) VALUES ($1, $2, $3, $4)",
                        [w.name, w.wkt, source, String(i)])
        }
        return wards.count
    }

    /// Replaces the street layer in one transaction (COPY); returns the number of streets stored.
    @discardableResult
    public static func replaceStreets(_ streets: [CoverageStreet], source: String, on c: PostgresConnection) throws -> Int {
        try c.transaction { try storeStreets(streets, source: source, on: $0) }
    }

    static func storeStreets(_ streets: [CoverageStreet], source: String, on c: PostgresConnection) throws -> Int {
        try c.query("DELETE FROM streets")
        return try c.copyIn("COPY streets (name, kind, geometry_wkt, source) FROM STDIN") { send in
            for s in streets {
                try send(Array(PostgresConnection.copyLine([s.name, s.kind, wkt(s.points), source]).utf8))
            }
        }
    }

    /// Stores the demo's layers where the tables are empty (wards and streets separately);
    /// returns what was stored.
    public static func loadDemoLayersIfEmpty(wards: [CoverageWard], streets: [CoverageStreet],
                                             on c: PostgresConnection) throws -> (wards: Bool, streets: Bool) {
        try c.transaction { c in
            try c.query("LOCK TABLE wards, streets IN SHARE ROW EXCLUSIVE MODE")
            let noWards = try c.query("SELECT count(*) FROM wards").scalar() == "0"
            let noStreets = try c.query("SELECT count(*) FROM streets").scalar() == "0"
            if noWards { _ = try storeWards(wards, source: "demo", on: c) }
            if noStreets { _ = try storeStreets(streets, source: "demo", on: c) }
            return (noWards, noStreets)
        }
    }

    /// The ward layer, in import order.
    public static func wards(on c: PostgresConnection) throws -> [CoverageWard] {
        try c.query("SELECT name, geometry_wkt FROM wards ORDER BY position, name").rows.map { CoverageWard(name: $0[0]!, wkt: $0[1]!) }
    }

    /// The street layer, in id order.
    public static func streets(on c: PostgresConnection) throws -> [CoverageStreet] {
        try c.query("SELECT name, kind, geometry_wkt FROM streets ORDER BY id").rows.map { r in
            CoverageStreet(name: r[0], kind: r[1]!, points: try points(r[2]!))
        }
    }

    /// Counts of the layers: wards, streets, and where each came from.
    public static func layerCounts(on c: PostgresConnection) throws -> (wards: Int, streets: Int) {
        let r = try c.query("SELECT (SELECT count(*) FROM wards), (SELECT count(*) FROM streets)").rows[0]
        return (Int(r[0]!)!, Int(r[1]!)!)
    }

    /// Incidents for weighting gaps: the centre of each incident's bounding box and the end of its
    /// window, for windows ending in [from, to].
    public static func incidents(from: Date, to: Date, on c: PostgresConnection) throws -> [CoverageIncident] {
        try c.query("""
            SELECT id, (min_lat + max_lat) / 2, (min_lon + max_lon) / 2, extract(epoch FROM time_to)::float8
            FROM incidents WHERE time_to >= to_timestamp($1::float8) AND time_to <= to_timestamp($2::float8) ORDER BY id
            """, [from.timeIntervalSince1970.description, to.timeIntervalSince1970.description]).rows.map { r in
            CoverageIncident(id: Int64(r[0]!)!, lat: Double(r[1]!)!, lon: Double(r[2]!)!, time: Date(timeIntervalSince1970: Double(r[3]!)!))
        }
    }

    static func wkt(_ pts: [LatLonPoint]) -> String {
        "LINESTRING(" + pts.map { "\($0.lon) \($0.lat)" }.joined(separator: ",") + ")"
    }

    /// The vertices of `LINESTRING(lon lat, …)` as written by ``replaceStreets(_:source:on:)``.
    static func points(_ wkt: String) throws -> [LatLonPoint] {
        guard let open = wkt.firstIndex(of: "("), let close = wkt.lastIndex(of: ")") else {
            throw PostgresError(code: .unexpectedResult, message: "bad street WKT")
        }
        return try wkt[wkt.index(after: open)..<close].split(separator: ",").map { pair in
            let xy = pair.split(separator: " ")
            guard xy.count == 2, let lon = Double(xy[0]), let lat = Double(xy[1]) else {
                throw PostgresError(code: .unexpectedResult, message: "bad street WKT vertex \(pair)")
            }
            return LatLonPoint(lat: lat, lon: lon)
        }
    }

    // MARK: Runs

    /// A stored run.
    public struct Run: Sendable {
        public var id: Int64
        public var status: String
        public var parameters: String
        public var startedAt: Date
        public var finishedAt: Date?
        public var error: String?
        public var summary: String?
        public var suggestionsGeoJSON: String?
        public var stretches: String?
    }

    /// A stored ward row.
    public struct WardRow: Sendable {
        public var figures: CoverageFigures
        public var map: String?
    }

    /// Creates a run in state `running`; returns its id.
    public static func createRun(parameters: String, on c: PostgresConnection) throws -> Int64 {
        Int64(try c.query("INSERT INTO coverage_runs (status, parameters) VALUES ('running', $1) RETURNING id", [parameters]).scalar()!)!
    }

    /// Stores the ward rows and marks the run complete, in one transaction; false (and nothing
    /// written) when the run is no longer `running` (cancelled or failed meanwhile).
    public static func complete(run id: Int64, result: CoverageResult, summary: String, stretches: String,
                                on c: PostgresConnection) throws -> Bool {
        try c.transaction { c in
            let updated = try c.query("""
                UPDATE coverage_runs SET status = 'complete', finished_at = now(), summary = $2, suggestions_geojson = $3, stretches = $4
                WHERE id = $1 AND status = 'running'
                """, [String(id), summary, result.suggestionFeatures, stretches]).affected
            guard updated == 1 else { return false }
            for (i, f) in result.wards.enumerated() {
                try c.query("""
                    INSERT INTO coverage_ward_results (run_id, ward, position, cameras, street_m, covered_m, area_m2, covered_area_m2,
                        intersections, intersections_unseen, intersections_single, intersections_multi, incidents, incidents_unseen,
                        gap_score, map_geojson)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                    """, [String(id), f.ward, String(i), String(f.cameras), f.streetLength.description, f.coveredLength.description,
                          f.area.description, f.coveredArea.description, String(f.intersections), String(f.unseenIntersections),
                          String(f.singleIntersections), String(f.multiIntersections), String(f.incidents), String(f.unseenIncidents),
                          f.gapScore.description, result.mapFeatures[f.ward]])
            }
            return true
        }
    }

    /// Ends a running run as `cancelled` or `failed`; false when it was not running.
    @discardableResult
    public static func end(run id: Int64, status: String, error: String?, on c: PostgresConnection) throws -> Bool {
        try c.query("UPDATE coverage_runs SET status = $2, finished_at = now(), error = $3 WHERE id = $1 AND status = 'running'",
                    [String(id), status, error]).affected == 1
    }

    /// Marks every `running` run `failed` (at daemon start-up: their job died with the old
    /// process); returns how many.
    @discardableResult
    public static func failInterruptedRuns(on c: PostgresConnection) throws -> Int {
        try c.query("""
            UPDATE coverage_runs SET status = 'failed', finished_at = now(), error = 'the daemon stopped during the run'
            WHERE status = 'running'
            """).affected
    }

    /// One run.
    public static func run(_ id: Int64, on c: PostgresConnection) throws -> Run? {
        guard let r = try c.query("""
            SELECT id, status, parameters, extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)::float8,
                   error, summary, suggestions_geojson, stretches FROM coverage_runs WHERE id = $1
            """, [String(id)]).rows.first else { return nil }
        return Run(id: Int64(r[0]!)!, status: r[1]!, parameters: r[2]!, startedAt: Date(timeIntervalSince1970: Double(r[3]!)!),
                   finishedAt: r[4].flatMap(Double.init).map { Date(timeIntervalSince1970: $0) }, error: r[5], summary: r[6],
                   suggestionsGeoJSON: r[7], stretches: r[8])
    }

    /// The ward rows of a run, in layer order (with the map features when `map`).
    public static func wardRows(_ id: Int64, ward: String? = nil, map: Bool = false, on c: PostgresConnection) throws -> [WardRow] {
        try c.query("""
            SELECT ward, cameras, street_m, covered_m, area_m2, covered_area_m2, intersections, intersections_unseen,
                   intersections_single, intersections_multi, incidents, incidents_unseen, gap_score,
                   CASE WHEN $3 THEN map_geojson END
            FROM coverage_ward_results WHERE run_id = $1 AND ($2::text IS NULL OR ward = $2) ORDER BY position
            """, [String(id), ward, map ? "true" : "false"]).rows.map { r in
            var f = CoverageFigures(ward: r[0]!)
            f.cameras = Int(r[1]!)!
            f.streetLength = Double(r[2]!)!
            f.coveredLength = Double(r[3]!)!
            f.area = Double(r[4]!)!
            f.coveredArea = Double(r[5]!)!
            f.intersections = Int(r[6]!)!
            f.unseenIntersections = Int(r[7]!)!
            f.singleIntersections = Int(r[8]!)!
            f.multiIntersections = Int(r[9]!)!
            f.incidents = Int(r[10]!)!
            f.unseenIncidents = Int(r[11]!)!
            f.gapScore = Double(r[12]!)!
            return WardRow(figures: f, map: r[13])
        }
    }
}
