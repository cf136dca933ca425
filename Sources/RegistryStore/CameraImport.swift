import Foundation
import Postgres
import Registry

/// The outcome of a bulk import.
public struct ImportReport: Sendable {
    /// Cameras imported (0 when nothing was committed).
    public var imported: [Camera] = []
    /// Every refused row: its line/feature/element number, the field and the reason.
    public var rejected: [ImportRowError] = []
    /// Whether the import was committed.
    public var committed = false
}

/// Bulk loads through a staging table: valid rows are COPYed into a temporary table, rows
/// whose id already exists are refused, the rest are inserted into `cameras` (and logged in
/// `camera_changes`) in the same transaction. Either the whole batch commits or none of it
/// does, so a crash never leaves half an import.
public enum CameraImport {
    /// Imports `rows` (already validated by the caller; each with its row number). With
    /// `allOrNothing`, any refused row (including `earlierRejections`) means nothing is imported.
    public static func importRows(_ rows: [(number: Int, camera: Camera)], earlierRejections: [ImportRowError],
                                  allOrNothing: Bool, actor: String, on c: PostgresConnection) throws -> ImportReport {
        var report = ImportReport()
        report.rejected = earlierRejections
        // Ids repeated inside the file: the first one wins.
        var seen = Set<String>()
        var unique: [(number: Int, camera: Camera)] = []
        for r in rows {
            if seen.insert(r.camera.id).inserted { unique.append(r) } else {
                report.rejected.append(ImportRowError(number: r.number, field: "id", reason: "id \(r.camera.id) appears earlier in the file"))
            }
        }
        if allOrNothing && !report.rejected.isEmpty {
            report.rejected.sort { $0.number < $1.number }
            return report
        }
        return try c.transaction { c in
            try c.query("CREATE TEMP TABLE import_stage (LIKE cameras INCLUDING DEFAULTS, row_number integer) ON COMMIT DROP")
            let cols = CameraRepository.columns + ["row_number"]
            try c.copyIn("COPY import_stage (\(cols.joined(separator: ", "))) FROM STDIN") { send in
                var chunk = ""
                for r in unique {
                    chunk += PostgresConnection.copyLine(CameraRepository.encode(r.camera) + [String(r.number)])
                    if chunk.utf8.count > 60_000 {
                        try send(Array(chunk.utf8))
                        chunk.removeAll(keepingCapacity: true)
                    }
                }
                if !chunk.isEmpty { try send(Array(chunk.utf8)) }
            }
            let taken = try c.query("SELECT s.row_number, s.id FROM import_stage s JOIN cameras USING (id) ORDER BY 1")
            for t in taken.rows {
                report.rejected.append(ImportRowError(number: Int(t[0]!)!, field: "id", reason: "a camera with id \(t[1]!) already exists"))
            }
            report.rejected.sort { $0.number < $1.number }
            if allOrNothing && !report.rejected.isEmpty {
                try c.query("ROLLBACK")
                try c.query("BEGIN")  // the transaction wrapper commits an empty transaction
                return report
            }
            let list = CameraRepository.columns.joined(separator: ", ")
            let inserted = try c.query("""
                INSERT INTO cameras (\(list)) SELECT \(list) FROM import_stage s
                WHERE NOT EXISTS (SELECT 1 FROM cameras x WHERE x.id = s.id) ORDER BY row_number
                RETURNING \(CameraRepository.selectList)
                """)
            report.imported = inserted.rows.map(CameraRepository.decode)
            try c.query("""
                INSERT INTO camera_changes (camera_id, kind, actor, version, detail)
                SELECT id, 'import', $1, version, 'row ' || row_number FROM import_stage s
                WHERE NOT EXISTS (SELECT 1 FROM camera_changes x WHERE x.camera_id = s.id AND x.kind = 'import' AND x.detail = 'row ' || s.row_number)
                  AND s.id = ANY($2::text[])
                """, [actor, "{" + report.imported.map(\.id).joined(separator: ",") + "}"])
            try CameraRepository.advanceIDSequence(on: c)
            report.committed = true
            return report
        }
    }
}
