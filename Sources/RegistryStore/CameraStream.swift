import Foundation
import Postgres
import Registry

/// Every camera as of one database snapshot, with what the start-up needs to continue from it:
/// the change number it reflects and each row's `xmin` (for the index cache's check).
public struct CameraSnapshotLoad: Sendable {
    /// The cameras, in no particular order (the table's physical order).
    public var cameras: [Camera]
    /// `xmin` of each camera's row (same order as `cameras`): any later `UPDATE` of the row,
    /// even one that bypasses the change log, gives it another `xmin`.
    public var xmins: [UInt32]
    /// The highest change number committed in the snapshot (``ChangeFeed/currentSequence(on:)``):
    /// the feed continues after it.
    public var sequence: Int64
    /// The highest `camera_changes.seq` in the snapshot (0 when the log is empty): while that row
    /// exists, no change after the snapshot has been pruned from the log.
    public var anchor: Int64

    public init(cameras: [Camera], xmins: [UInt32], sequence: Int64, anchor: Int64) {
        self.cameras = cameras
        self.xmins = xmins
        self.sequence = sequence
        self.anchor = anchor
    }

    /// `count(*)`, `sum(version)` and `sum(xmin)` over the cameras, as the database computes them.
    public var fingerprint: CameraTableFingerprint {
        var versions: Int64 = 0, xminSum: Int64 = 0
        for c in cameras { versions &+= Int64(c.version) }
        for x in xmins { xminSum &+= Int64(x) }
        return CameraTableFingerprint(count: Int64(cameras.count), versionSum: versions, xminSum: xminSum)
    }
}

/// Cheap figures of the whole `cameras` table that change with any insert, delete or update.
public struct CameraTableFingerprint: Sendable, Equatable, CustomStringConvertible {
    /// `count(*)`.
    public var count: Int64
    /// `sum(version)`.
    public var versionSum: Int64
    /// `sum(xmin)`: every new row version has the `xmin` of the transaction that wrote it.
    public var xminSum: Int64

    public init(count: Int64, versionSum: Int64, xminSum: Int64) {
        self.count = count
        self.versionSum = versionSum
        self.xminSum = xminSum
    }

    /// The database's figures, in the caller's transaction (snapshot).
    public static func read(on c: PostgresConnection) throws -> CameraTableFingerprint {
        let r = try c.query("SELECT count(*), coalesce(sum(version), 0), coalesce(sum(xmin::text::bigint), 0) FROM cameras")
        guard let row = r.rows.first, row.count == 3, let n = row[0].flatMap({ Int64($0) }),
              let v = row[1].flatMap({ Int64($0) }), let x = row[2].flatMap({ Int64($0) }) else {
            throw PostgresError(code: .unexpectedResult, message: "unexpected answer to the cameras fingerprint query")
        }
        return CameraTableFingerprint(count: n, versionSum: v, xminSum: x)
    }

    public var description: String { "count \(count), sum(version) \(versionSum), sum(xmin) \(xminSum)" }
}

/// The start-up load: every camera streamed with `COPY (SELECT …) TO STDOUT (FORMAT binary)`
/// and decoded straight from libpq's buffers into `Camera` values — no result set, no
/// intermediate strings for numbers, no `ORDER BY` (the index does not need id order).
public enum CameraStream {
    /// The columns read, in order: ``CameraRepository``'s 23 plus `xmin`. Timestamps are read
    /// raw (microseconds) and converted exactly as `extract(epoch …)::float8` would.
    static let selectList = (CameraRepository.columns + CameraRepository.extraColumns + ["xmin"]).joined(separator: ", ")
    static let fieldCount = CameraRepository.columns.count + CameraRepository.extraColumns.count + 1

    /// Every camera in one repeatable-read snapshot, with the change numbers of that snapshot.
    public static func loadAll(on c: PostgresConnection) throws -> CameraSnapshotLoad {
        try c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        do {
            let sequence = try ChangeFeed.currentSequence(on: c)
            let anchor = Int64(try c.query("SELECT coalesce(max(seq), 0) FROM camera_changes").scalar() ?? "0") ?? 0
            // A capacity hint only (so that the array is not regrown and copied 20 times).
            let estimate = Int(try c.query("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'cameras'::regclass").scalar() ?? "0") ?? 0
            var load = CameraSnapshotLoad(cameras: [], xmins: [], sequence: sequence, anchor: anchor)
            try stream(where: nil, expected: estimate, into: &load, on: c)
            try c.query("COMMIT")
            return load
        } catch {
            if c.isHealthy { _ = try? c.query("ROLLBACK") }
            throw error
        }
    }

    /// Streams the cameras matching `condition` (an SQL condition on `cameras` built by this
    /// module, with literals only: COPY takes no parameters; `nil` for all)
    /// into `load`, in the caller's transaction.
    static func stream(where condition: String?, expected: Int,
                       into load: inout CameraSnapshotLoad, on c: PostgresConnection) throws {
        load.cameras.reserveCapacity(load.cameras.count + min(max(expected, 0), 50_000_000))
        load.xmins.reserveCapacity(load.xmins.count + min(max(expected, 0), 50_000_000))
        var decoder = PostgresBinaryCopyDecoder(columns: fieldCount)
        var interner = StringInterner()
        let filter = condition.map { " WHERE \($0)" } ?? ""
        try c.copyOut("COPY (SELECT \(selectList) FROM cameras\(filter)) TO STDOUT (FORMAT binary)") { chunk in
            try decoder.feed(chunk) { row in
                let (camera, xmin) = try decode(row, interner: &interner)
                load.cameras.append(camera)
                load.xmins.append(xmin)
            }
        }
        try decoder.finish()
    }

    /// One camera from a binary row of ``selectList``.
    static func decode(_ r: PostgresBinaryRow, interner: inout StringInterner) throws -> (Camera, UInt32) {
        func text(_ i: Int) throws -> String {
            guard let s = r.string(i) else { throw PostgresError(code: .unexpectedResult, message: "NULL in NOT NULL column \(i)") }
            return s
        }
        func double(_ i: Int) throws -> Double {
            guard let d = try r.double(i) else { throw PostgresError(code: .unexpectedResult, message: "NULL in NOT NULL column \(i)") }
            return d
        }
        func seconds(_ i: Int) throws -> Double {
            guard let d = try r.epochSeconds(i) else { throw PostgresError(code: .unexpectedResult, message: "NULL in NOT NULL column \(i)") }
            return d
        }
        func int(_ i: Int) throws -> Int {
            guard let v = try r.int32(i) else { throw PostgresError(code: .unexpectedResult, message: "NULL in NOT NULL column \(i)") }
            return Int(v)
        }
        let scheduleText = try text(13)
        let schedule = r.bytes(13).flatMap(Self.schedule) ?? RecordingSchedule(text: scheduleText) ?? .always
        var camera = Camera(
            id: try text(0), lat: try double(1), lon: try double(2),
            siteKind: SiteKind(rawValue: interner.intern(try text(3))) ?? .other,
            address: try text(4), ward: interner.intern(try text(5)), heading: try r.double(6), fov: try double(7),
            range: try double(8), mountHeight: try r.double(9),
            ownerKind: OwnerKind(rawValue: interner.intern(try text(10))) ?? .household,
            ownerName: r.string(11), ownerPhone: r.string(12), schedule: schedule,
            retentionDays: try int(14), status: CameraStatus(rawValue: interner.intern(try text(15))) ?? .offline,
            createdAt: Date(timeIntervalSince1970: try seconds(16)), updatedAt: Date(timeIntervalSince1970: try seconds(17)),
            version: try int(18))
        camera.ownerID = try r.int64(19)
        camera.verifiedBy = r.string(20).map { interner.intern($0) }
        camera.verifiedAt = try r.epochSeconds(21).map { Date(timeIntervalSince1970: $0) }
        camera.statusReason = r.string(22).map { interner.intern($0) }
        guard let xmin = try r.uint32(23) else { throw PostgresError(code: .unexpectedResult, message: "NULL xmin") }
        return (camera, xmin)
    }

    /// `24/7` or `HH:MM-HH:MM` from bytes, without building a string (`nil`: let the text parser decide).
    static func schedule(_ b: UnsafeRawBufferPointer) -> RecordingSchedule? {
        if b.count == 4, b[0] == 0x32, b[1] == 0x34, b[2] == 0x2F, b[3] == 0x37 { return .always }
        guard b.count == 11, b[2] == 0x3A, b[5] == 0x2D, b[8] == 0x3A else { return nil }
        func digit(_ i: Int) -> Int? { (0x30...0x39).contains(b[i]) ? Int(b[i] - 0x30) : nil }
        guard let h1 = digit(0), let h2 = digit(1), let m1 = digit(3), let m2 = digit(4),
              let h3 = digit(6), let h4 = digit(7), let m3 = digit(9), let m4 = digit(10) else { return nil }
        let a = (h1 * 10 + h2) * 60 + m1 * 10 + m2, e = (h3 * 10 + h4) * 60 + m3 * 10 + m4
        guard h1 * 10 + h2 < 24, m1 * 10 + m2 < 60, h3 * 10 + h4 < 24, m3 * 10 + m4 < 60, a != e else { return nil }
        return .daily(start: a, end: e)
    }
}

/// Shares one `String` storage among equal values that repeat across cameras (ward names,
/// enum texts, verifiers), so that a million cameras do not hold a million copies of eight ward
/// names. Bounded: past `limit` distinct values new ones are returned as they are.
struct StringInterner {
    private var seen: Set<String> = []
    let limit = 4096

    mutating func intern(_ s: String) -> String {
        // Small strings are stored inline in the String value: nothing to share.
        if s.utf8.count <= 15 { return s }
        if let i = seen.firstIndex(of: s) { return seen[i] }
        if seen.count < limit { seen.insert(s) }
        return s
    }
}
