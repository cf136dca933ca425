import Foundation
import Postgres
import Registry

/// Reads and writes incidents and their candidate cameras (`incidents`, `incident_cameras`,
/// migration 0003). Stateless; callers choose the connection and the transaction.
public enum IncidentRepository {
    static let columns = [
        "id", "case_id", "kind", "time_from", "time_to", "geometry_kind", "geometry_wkt",
        "min_lat", "min_lon", "max_lat", "max_lon", "radius_m", "description", "created_at",
    ]

    static let selectList = columns.map { ["time_from", "time_to", "created_at"].contains($0) ? "extract(epoch from i.\($0))::float8" : "i.\($0)" }
        .joined(separator: ", ")

    static let linkColumns = ["incident_id", "camera_id", "distance_m", "sees", "footage", "expires_at"]

    static func timestamp(_ date: Date) -> String {
        ISO8601Text.format(micros: Int64((date.timeIntervalSince1970 * 1_000_000).rounded()))
    }

    static func encode(_ i: Incident) -> [String?] {
        [String(i.id), i.caseID, i.kind, timestamp(i.window.from), timestamp(i.window.to), i.shape.kind.rawValue, i.shape.wkt,
         i.shape.minLat.description, i.shape.minLon.description, i.shape.maxLat.description, i.shape.maxLon.description,
         i.radius.description, i.description, timestamp(i.createdAt)]
    }

    static func encode(_ l: IncidentCameraLink, incident: Int64) -> [String?] {
        [String(incident), l.cameraID, l.distance.description, l.sees ? "t" : "f", l.footage.rawValue, l.expiresAt.map(timestamp)]
    }

    static func decode(_ r: [String?], offset o: Int = 0) throws -> Incident {
        func date(_ k: Int) -> Date { Date(timeIntervalSince1970: Double(r[o + k]!)!) }
        let shape = try IncidentShape.parse(wkt: r[o + 6]!)
        guard let window = IncidentWindow(from: date(3), to: date(4)) else {
            throw PostgresError(code: .unexpectedResult, message: "incident \(r[o]!) has from after to")
        }
        return Incident(id: Int64(r[o]!)!, caseID: r[o + 1]!, kind: r[o + 2]!, window: window, shape: shape,
                        radius: Double(r[o + 11]!)!, description: r[o + 12], createdAt: date(13))
    }

    static func decodeLink(_ r: [String?], offset o: Int) -> IncidentCameraLink {
        IncidentCameraLink(cameraID: r[o]!, distance: Double(r[o + 1]!)!, sees: r[o + 2] == "t",
                           footage: FootageState(rawValue: r[o + 3]!) ?? .unknown,
                           expiresAt: r[o + 4].flatMap(Double.init).map { Date(timeIntervalSince1970: $0) })
    }

    static let linkSelect = "l.camera_id, l.distance_m, l.sees, l.footage, extract(epoch from l.expires_at)::float8"

    /// Stores incidents with their links in one transaction (ids are taken from the sequence
    /// first, then both tables are filled with COPY). Returns the incidents with their ids, in
    /// input order.
    public static func insert(_ items: [(incident: Incident, links: [IncidentCameraLink])],
                              on c: PostgresConnection) throws -> [Incident] {
        guard !items.isEmpty else { return [] }
        return try c.transaction { c in
            let ids = try c.query("SELECT nextval('incidents_id_seq') FROM generate_series(1, $1::int)", [String(items.count)])
                .rows.map { Int64($0[0]!)! }
            var stored: [Incident] = []
            stored.reserveCapacity(items.count)
            for (k, item) in items.enumerated() {
                var i = item.incident
                i.id = ids[k]
                stored.append(i)
            }
            try copy("COPY incidents (\(columns.joined(separator: ", "))) FROM STDIN", rows: stored.lazy.map(encode), on: c)
            let links = zip(stored, items).lazy.flatMap { pair in pair.1.links.lazy.map { encode($0, incident: pair.0.id) } }
            try copy("COPY incident_cameras (\(linkColumns.joined(separator: ", "))) FROM STDIN", rows: links, on: c)
            return stored
        }
    }

    static func copy<S: Sequence>(_ sql: String, rows: S, on c: PostgresConnection) throws where S.Element == [String?] {
        _ = try c.copyIn(sql) { send in
            var chunk = ""
            chunk.reserveCapacity(1 << 16)
            for r in rows {
                chunk += PostgresConnection.copyLine(r)
                if chunk.utf8.count > 60_000 {
                    try send(Array(chunk.utf8))
                    chunk.removeAll(keepingCapacity: true)
                }
            }
            if !chunk.isEmpty { try send(Array(chunk.utf8)) }
        }
    }

    /// Every incident, by id (to build the in-memory index).
    public static func all(on c: PostgresConnection) throws -> [Incident] {
        try c.query("SELECT \(selectList) FROM incidents i ORDER BY id").rows.map { try decode($0) }
    }

    /// One incident and its linked cameras (nearest first).
    public static func get(id: Int64, on c: PostgresConnection) throws -> (Incident, [IncidentCameraLink])? {
        guard let row = try c.query("SELECT \(selectList) FROM incidents i WHERE id = $1", [String(id)]).rows.first else { return nil }
        let links = try c.query("SELECT \(linkSelect) FROM incident_cameras l WHERE incident_id = $1 ORDER BY distance_m, camera_id",
                                [String(id)]).rows.map { decodeLink($0, offset: 0) }
        return (try decode(row), links)
    }

    /// The incidents a camera is linked to, by id after `after`, whose window overlaps
    /// [from, to] (either bound optional), at most `limit`, with the link.
    public static func forCamera(_ cameraID: String, from: Date?, to: Date?, after: Int64?, limit: Int,
                                 on c: PostgresConnection) throws -> [(Incident, IncidentCameraLink)] {
        let rows = try c.query("""
            SELECT \(selectList), \(linkSelect)
            FROM incident_cameras l JOIN incidents i ON i.id = l.incident_id
            WHERE l.camera_id = $1
              AND ($2::timestamptz IS NULL OR i.time_to >= $2::timestamptz)
              AND ($3::timestamptz IS NULL OR i.time_from <= $3::timestamptz)
              AND ($4::bigint IS NULL OR i.id > $4::bigint)
            ORDER BY i.id
            LIMIT $5::int
            """, [cameraID, from.map(timestamp), to.map(timestamp), after.map { String($0) }, String(limit)]).rows
        return try rows.map { (try decode($0), decodeLink($0, offset: columns.count)) }
    }
}
