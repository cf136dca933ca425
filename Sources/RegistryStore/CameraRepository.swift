import Foundation
import Postgres
import Registry

/// Reads and writes cameras in PostgreSQL, the source of truth. Stateless; every method takes
/// the connection to use, so callers decide about transactions and threads.
public enum CameraRepository {
    /// The columns of `cameras`, in the order of `select` and COPY.
    static let columns = [
        "id", "lat", "lon", "site_kind", "address", "ward", "heading", "fov", "range_m", "mount_height_m",
        "owner_kind", "owner_name", "owner_phone", "schedule", "retention_days", "status",
        "created_at", "updated_at", "version",
    ]

    /// Columns that COPY does not write but reads return (added by later migrations).
    static let extraColumns = ["owner_id", "verified_by", "verified_at", "status_reason"]

    static let selectList = (columns + extraColumns).map {
        $0 == "created_at" || $0 == "updated_at" || $0 == "verified_at" ? "extract(epoch from \($0))::float8" : $0
    }.joined(separator: ", ")

    /// Every camera, ordered by id.
    public static func all(on c: PostgresConnection) throws -> [Camera] {
        try c.query("SELECT \(selectList) FROM cameras ORDER BY id").rows.map(decode)
    }

    /// One camera by id.
    public static func get(id: String, on c: PostgresConnection) throws -> Camera? {
        try c.query("SELECT \(selectList) FROM cameras WHERE id = $1", [id]).rows.first.map(decode)
    }

    /// The number of cameras.
    public static func count(on c: PostgresConnection) throws -> Int {
        Int(try c.query("SELECT count(*) FROM cameras").scalar() ?? "0") ?? 0
    }

    /// Inserts cameras with `COPY … FROM STDIN` in the caller's transaction (or its own statement).
    @discardableResult
    public static func copyInsert(_ cameras: [Camera], on c: PostgresConnection) throws -> Int {
        try c.copyIn("COPY cameras (\(columns.joined(separator: ", "))) FROM STDIN") { send in
            var chunk = ""
            chunk.reserveCapacity(1 << 16)
            for cam in cameras {
                chunk += PostgresConnection.copyLine(encode(cam))
                if chunk.utf8.count > 60_000 {
                    try send(Array(chunk.utf8))
                    chunk.removeAll(keepingCapacity: true)
                }
            }
            if !chunk.isEmpty { try send(Array(chunk.utf8)) }
        }
    }

    /// Loads `cameras` only if the table is empty, in one transaction (the table is locked so
    /// two daemons cannot both load). Returns whether they were loaded.
    public static func loadIfEmpty(_ cameras: [Camera], on c: PostgresConnection) throws -> Bool {
        try c.transaction { c in
            try c.query("LOCK TABLE cameras IN SHARE ROW EXCLUSIVE MODE")
            guard try count(on: c) == 0 else { return false }
            try copyInsert(cameras, on: c)
            // Logged like any other change, so that the other daemons' change feeds see them.
            try c.query("INSERT INTO camera_changes (camera_id, kind, actor, version) SELECT id, 'demo', 'demo', version FROM cameras")
            try advanceIDSequence(on: c)
            return true
        }
    }

    /// Moves the sequence of new camera numbers past the highest `BC-<n>` id.
    public static func advanceIDSequence(on c: PostgresConnection) throws {
        try c.query("""
            SELECT setval('camera_number_seq', greatest(m, 1), m > 0)
            FROM (SELECT coalesce(max(substring(id FROM 4)::bigint), 0) AS m FROM cameras WHERE id ~ '^BC-[0-9]{1,15}$') s
            """)
    }

    /// Moves the sequence of new camera numbers past the highest `BC-<n>` among `ids` (just
    /// written), without the table scan of ``advanceIDSequence(on:)`` (seconds at a million
    /// cameras); never moves it back.
    public static func advanceIDSequence(past ids: some Sequence<String>, on c: PostgresConnection) throws {
        try advanceIDSequence(to: topSerial(of: ids), on: c)
    }

    /// The highest `n` of an id `BC-<n>` among `ids` (0 when none).
    public static func topSerial(of ids: some Sequence<String>) -> Int64 {
        var top: Int64 = 0
        for id in ids { if let n = serialNumber(id), n > top { top = n } }
        return top
    }

    /// Moves the sequence to `top` (the highest `n` of some `BC-<n>` ids), only forward; 0 does
    /// nothing.
    public static func advanceIDSequence(to top: Int64, on c: PostgresConnection) throws {
        guard top > 0 else { return }
        try c.query("""
            SELECT setval('camera_number_seq', $1::bigint, true) FROM camera_number_seq
            WHERE CASE WHEN is_called THEN last_value < $1::bigint ELSE last_value <= $1::bigint END
            """, [String(top)])
    }

    /// `n` of an id `BC-<n>` (1–15 digits, as ``advanceIDSequence(on:)`` matches them), else nil.
    public static func serialNumber(_ id: String) -> Int64? {
        let u = id.utf8
        guard u.count >= 4, u.count <= 18, u.starts(with: "BC-".utf8) else { return nil }
        var n: Int64 = 0
        for b in u.dropFirst(3) {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            n = n * 10 + Int64(b - 0x30)
        }
        return n
    }

    static func format(_ d: Double) -> String { d.description }

    static func timestamp(_ date: Date) -> String {
        // Exact to the microsecond, as PostgreSQL stores it.
        ISO8601Text.format(micros: micros(date))
    }

    /// `date` in whole microseconds since the Unix epoch, as PostgreSQL stores a timestamp
    /// (rounded to the nearest, halves away from zero).
    static func micros(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// Values of one camera in `columns` order, as PostgreSQL text input.
    static func encode(_ cam: Camera) -> [String?] {
        [
            cam.id, format(cam.lat), format(cam.lon), cam.siteKind.rawValue, cam.address, cam.ward,
            cam.heading.map(format), format(cam.fov), format(cam.range), cam.mountHeight.map(format),
            cam.ownerKind.rawValue, cam.ownerName, cam.ownerPhone, cam.schedule.description,
            String(cam.retentionDays), cam.status.rawValue, timestamp(cam.createdAt), timestamp(cam.updatedAt),
            String(cam.version),
        ]
    }

    /// A camera from a row of `selectList`. The database's constraints guarantee the values.
    static func decode(_ r: [String?]) -> Camera {
        func d(_ i: Int) -> Double { Double(r[i]!)! }
        var camera = Camera(
            id: r[0]!, lat: d(1), lon: d(2), siteKind: SiteKind(rawValue: r[3]!) ?? .other,
            address: r[4]!, ward: r[5]!, heading: r[6].flatMap(Double.init), fov: d(7), range: d(8),
            mountHeight: r[9].flatMap(Double.init), ownerKind: OwnerKind(rawValue: r[10]!) ?? .household,
            ownerName: r[11], ownerPhone: r[12], schedule: RecordingSchedule(text: r[13]!) ?? .always,
            retentionDays: Int(r[14]!)!, status: CameraStatus(rawValue: r[15]!) ?? .offline,
            createdAt: Date(timeIntervalSince1970: d(16)), updatedAt: Date(timeIntervalSince1970: d(17)),
            version: Int(r[18]!)!)
        camera.ownerID = r[19].flatMap { Int64($0) }
        camera.verifiedBy = r[20]
        camera.verifiedAt = r[21].flatMap(Double.init).map { Date(timeIntervalSince1970: $0) }
        camera.statusReason = r[22]
        return camera
    }
}

