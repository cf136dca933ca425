import Foundation
import Geo
import Postgres
import Registry

/// Changes to cameras, each in one transaction together with its `camera_changes` row, so that
/// a write is either entirely committed (and logged) or not at all. Every function returns the
/// camera as committed, for the index.
public enum CameraWrites {
    /// Registers a camera as `pending`. An empty `id` gets the next `BC-<n>` number. Unless
    /// `distinct`, a camera of the same owner within 3 m facing the same way (±10°) is refused
    /// as a likely duplicate.
    public static func register(_ draft: Camera, actor: String, distinct: Bool, on c: PostgresConnection) throws -> Camera {
        var camera = draft
        camera.status = .pending
        camera.version = 1
        let errors = camera.validate().filter { !($0.field == "id" && draft.id.isEmpty) }
        guard errors.isEmpty else { throw RegistryError(.validation, "the camera is not valid", fields: errors) }
        return try c.transaction { c in
            if !distinct, let owner = camera.ownerID {
                // Serialise registrations of one owner so that two concurrent duplicates cannot both pass.
                try c.query("SELECT pg_advisory_xact_lock(7, $1::int)", [String(owner % 2_000_000_000)])
                let box = Geodesic.wgs84.boundingBox(lat: camera.lat, lon: camera.lon, radius: 3)
                let near = try c.query("""
                    SELECT \(CameraRepository.selectList) FROM cameras
                    WHERE owner_id = $1 AND status <> 'retired' AND lat BETWEEN $2 AND $3 AND lon BETWEEN $4 AND $5
                    """, [String(owner), box.minLat.description, box.maxLat.description, box.minLon.description, box.maxLon.description])
                    .rows.map(CameraRepository.decode)
                if let dup = near.first(where: { DuplicateRule.isLikelyDuplicate($0, camera, sameOwner: true) }) {
                    throw RegistryError(.duplicate, "camera \(dup.id) of the same owner is within 3 m and faces the same way; send distinct=yes if this is another camera")
                }
            }
            for _ in 0..<5 {
                if draft.id.isEmpty {
                    let n = try c.query("SELECT nextval('camera_number_seq')").scalar() ?? "0"
                    camera.id = "BC-" + String(repeating: "0", count: max(0, 5 - n.count)) + n
                }
                try c.query("SAVEPOINT reg")
                do {
                    let inserted = try insert(camera, on: c)
                    try c.query("RELEASE SAVEPOINT reg")
                    try logChange(inserted, kind: "register", actor: actor, detail: nil, on: c)
                    return inserted
                } catch let e as PostgresError where e.isUniqueViolation {
                    try c.query("ROLLBACK TO SAVEPOINT reg")
                    if !draft.id.isEmpty {
                        throw RegistryError(.alreadyExists, "a camera with id \(draft.id) already exists")
                    }
                    // An explicit id took this number: move the sequence on and retry.
                    try CameraRepository.advanceIDSequence(on: c)
                }
            }
            throw RegistryError(.alreadyExists, "could not find a free camera number")
        }
    }

    /// `pending → active`, recording who verified it and when.
    public static func verify(id: String, expectedVersion: Int?, actor: String, on c: PostgresConnection) throws -> Camera {
        try c.transaction { c in
            let current = try lockedCamera(id, on: c)
            try check(current, expectedVersion)
            guard current.status == .pending else {
                throw RegistryError(.illegalTransition, "only a pending camera can be verified; \(id) is \(current.status.rawValue)")
            }
            let rows = try c.query("""
                UPDATE cameras SET status = 'active', verified_by = $2, verified_at = now(), status_reason = NULL,
                    updated_at = greatest(now(), created_at), version = version + 1
                WHERE id = $1 RETURNING \(CameraRepository.selectList)
                """, [id, actor])
            let camera = CameraRepository.decode(rows.rows[0])
            try logChange(camera, kind: "verify", actor: actor, detail: nil, on: c)
            return camera
        }
    }

    /// Changes the status (`active ↔ offline`, any → `retired`) with an optional reason.
    public static func setStatus(id: String, to status: CameraStatus, reason: String?, expectedVersion: Int?,
                                 actor: String, on c: PostgresConnection) throws -> Camera {
        try c.transaction { c in
            let current = try lockedCamera(id, on: c)
            try check(current, expectedVersion)
            guard Lifecycle.canChangeStatus(from: current.status, to: status) else {
                throw RegistryError(.illegalTransition, Lifecycle.refusal(from: current.status, to: status))
            }
            if status == .retired, (reason ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
                throw RegistryError(.validation, "retiring a camera needs a reason", fields: [FieldError("reason", "required when retiring")])
            }
            let rows = try c.query("""
                UPDATE cameras SET status = $2, status_reason = $3, updated_at = greatest(now(), created_at), version = version + 1
                WHERE id = $1 RETURNING \(CameraRepository.selectList)
                """, [id, status.rawValue, reason])
            let camera = CameraRepository.decode(rows.rows[0])
            try logChange(camera, kind: status == .retired ? "retire" : "status", actor: actor,
                          detail: "\(current.status.rawValue) → \(status.rawValue)" + (reason.map { ": \($0)" } ?? ""), on: c)
            return camera
        }
    }

    /// Replaces the editable fields of a camera with those of `edit(current)`, if
    /// `expectedVersion` is the current version (else `conflict`, nothing changed).
    public static func update(id: String, expectedVersion: Int, actor: String, on c: PostgresConnection,
                              edit: (inout Camera) throws -> Void) throws -> Camera {
        try c.transaction { c in
            let current = try lockedCamera(id, on: c)
            guard current.status != .retired else {
                throw RegistryError(.illegalTransition, "\(id) is retired; a retired camera is kept as history and not edited")
            }
            try check(current, expectedVersion)
            var next = current
            try edit(&next)
            next.id = current.id
            next.status = current.status
            next.version = current.version
            let errors = next.validate()
            guard errors.isEmpty else { throw RegistryError(.validation, "the update is not valid", fields: errors) }
            let values = CameraRepository.encode(next)
            // Columns 1…15 of `columns` (lat … retention_days) are editable.
            let editable = Array(CameraRepository.columns[1...14])
            let sets = editable.enumerated().map { "\($0.element) = $\($0.offset + 2)" }.joined(separator: ", ")
            let rows = try c.query("""
                UPDATE cameras SET \(sets), owner_id = $\(editable.count + 2)::bigint,
                    updated_at = greatest(now(), created_at), version = version + 1
                WHERE id = $1 RETURNING \(CameraRepository.selectList)
                """, [id] + Array(values[1...14]) + [next.ownerID.map { String($0) }])
            let camera = CameraRepository.decode(rows.rows[0])
            try logChange(camera, kind: "update", actor: actor, detail: nil, on: c)
            return camera
        }
    }

    static func insert(_ camera: Camera, on c: PostgresConnection) throws -> Camera {
        let cols = CameraRepository.columns.filter { $0 != "created_at" && $0 != "updated_at" } + ["owner_id"]
        var values = CameraRepository.encode(camera)
        values.remove(at: 17)  // updated_at
        values.remove(at: 16)  // created_at
        values.append(camera.ownerID.map { String($0) })
        let placeholders = cols.indices.map { "$\($0 + 1)" }.joined(separator: ", ")
        let rows = try c.query("INSERT INTO cameras (\(cols.joined(separator: ", "))) VALUES (\(placeholders)) RETURNING \(CameraRepository.selectList)", values)
        return CameraRepository.decode(rows.rows[0])
    }

    static func lockedCamera(_ id: String, on c: PostgresConnection) throws -> Camera {
        guard let row = try c.query("SELECT \(CameraRepository.selectList) FROM cameras WHERE id = $1 FOR UPDATE", [id]).rows.first else {
            throw RegistryError(.notFound, "no camera with id \(id)")
        }
        return CameraRepository.decode(row)
    }

    static func check(_ current: Camera, _ expected: Int?) throws {
        if let expected, expected != current.version {
            throw RegistryError(.conflict, "\(current.id) is at version \(current.version), not \(expected): it changed since you read it; read it again")
        }
    }

    static func logChange(_ camera: Camera, kind: String, actor: String, detail: String?, on c: PostgresConnection) throws {
        try c.query("INSERT INTO camera_changes (camera_id, kind, actor, version, detail) VALUES ($1, $2, $3, $4, $5)",
                    [camera.id, kind, actor, String(camera.version), detail])
    }
}
