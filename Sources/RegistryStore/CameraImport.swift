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
    /// Whether the cameras went in by the direct path: `imported` is then exactly what
    /// `whileCommitting` was given (see ``CameraImport/importRows(from:allOrNothing:actor:whileCommitting:on:)``).
    /// False when an id turned out to be taken and the staging path wrote a subset.
    public var direct = false
    /// Where the database's time went, in seconds, by step (`read` — the source read to its
    /// end, with the COPY open; `copy_end` — PostgreSQL finishing the COPY; `changes`; `commit`),
    /// for the log line of a big import.
    public var steps: [(name: String, seconds: Double)] = []
}

/// Bulk loads: valid rows are COPYed (binary) straight into `cameras` while the file is read,
/// and logged in `camera_changes`, in one transaction. When an id turns out to be taken, the
/// rows go through a staging table instead, where the taken ids are found and refused. Either
/// the whole batch commits or none of it does, so a crash never leaves half an import.
public enum CameraImport {
    /// Where an import's rows come from: it calls `emit` with batches of valid rows (each with
    /// its row number) and of refusals, in file order, until the file is read. Thrown errors
    /// (an unreadable file) end the import with nothing written.
    public typealias RowSource = @Sendable (_ emit: (_ rows: [(number: Int, camera: Camera)], _ rejected: [ImportRowError]) throws -> Void) throws -> Void

    /// Imports `rows` (already validated by the caller; each with its row number). With
    /// `allOrNothing`, any refused row (including `earlierRejections`) means nothing is imported.
    public static func importRows(_ rows: [(number: Int, camera: Camera)], earlierRejections: [ImportRowError],
                                  allOrNothing: Bool, actor: String, on c: PostgresConnection) throws -> ImportReport {
        try importRows(from: { emit in try emit(rows, earlierRejections) }, allOrNothing: allOrNothing, actor: actor, on: c)
    }

    /// Imports the rows `source` yields while it reads them: each batch goes into the open
    /// binary COPY at once, so that PostgreSQL stores one batch while the next is parsed. Ids
    /// repeated inside the file are refused after their first row. With `allOrNothing`, any
    /// refused row means nothing is imported (nothing more is sent once one is found).
    ///
    /// `whileCommitting`, if given, is called on another thread with the cameras as stored once
    /// the file is read, while PostgreSQL finishes the COPY, writes the change log and commits (a
    /// daemon builds its new index snapshot meanwhile); it has returned before this does. It is
    /// not called when the import is refused as a whole. The COPY may still fail after it was
    /// called (an id already taken sends the rows through the staging path): only a report with
    /// ``ImportReport/direct`` set committed exactly the cameras it was given.
    ///
    /// `ownChanges`, if given, is called before the commit with the change numbers of the
    /// direct path's change rows (for ``ChangeFeed/skipOwn(_:)``: the caller applies the
    /// cameras to its index itself). Not called on the staging path.
    public static func importRows(from source: @escaping RowSource, allOrNothing: Bool, actor: String,
                                  whileCommitting: (@Sendable ([Camera]) -> Void)? = nil,
                                  ownChanges: ((ClosedRange<Int64>) -> Void)? = nil,
                                  on c: PostgresConnection) throws -> ImportReport {
        let rows = Collected()
        // The usual bulk load takes no existing id: COPY straight into `cameras`. If an id is
        // taken after all (the unique index refuses it, the transaction rolls back), the staging
        // path below finds and reports every taken id, from the rows collected on the way.
        do {
            return try importDirectly(from: source, collecting: rows, allOrNothing: allOrNothing, actor: actor,
                                      whileCommitting: whileCommitting, ownChanges: ownChanges, on: c)
        } catch let e as PostgresError where e.sqlState == "23505" && rows.complete {
            // An id is taken: fall through to the staging path.
        }
        var report = ImportReport()
        report.rejected = rows.rejected
        let unique = rows.unique
        return try c.transaction { c in
            try c.query("""
                CREATE TEMP TABLE import_stage (LIKE cameras INCLUDING DEFAULTS, row_number integer,
                                                row_taken boolean NOT NULL DEFAULT false) ON COMMIT DROP
                """)
            let cols = CameraRepository.columns + ["row_number"]
            try BinaryRows.copy(unique, rowNumbers: true, into: "import_stage (\(cols.joined(separator: ", ")))", on: c)
            // Ids already taken: refused, and marked so that nothing below touches them.
            let taken = try c.query("""
                UPDATE import_stage s SET row_taken = true FROM cameras x WHERE x.id = s.id RETURNING s.row_number, s.id
                """)
            var refused = Set<Int>()
            for t in taken.rows {
                let number = Int(t[0]!)!
                refused.insert(number)
                report.rejected.append(ImportRowError(number: number, field: "id", reason: "a camera with id \(t[1]!) already exists"))
            }
            func rollBack() throws -> ImportReport {
                report.rejected.sort { $0.number < $1.number }
                try c.query("ROLLBACK")
                try c.query("BEGIN")  // the transaction wrapper commits an empty transaction
                return report
            }
            if allOrNothing && !report.rejected.isEmpty { return try rollBack() }
            let list = CameraRepository.columns.joined(separator: ", ")
            // NOT EXISTS still guards against a camera registered with one of these ids since
            // the check above (a concurrent writer): such rows are skipped here and found below.
            let inserted = try c.query("""
                INSERT INTO cameras (\(list)) SELECT \(list) FROM import_stage s
                WHERE NOT s.row_taken AND NOT EXISTS (SELECT 1 FROM cameras x WHERE x.id = s.id) ORDER BY row_number
                """).affected
            if inserted != unique.count - refused.count {
                // Rows of `cameras` with these ids that this transaction did not write.
                let late = try c.query("""
                    UPDATE import_stage s SET row_taken = true FROM cameras x
                    WHERE x.id = s.id AND NOT s.row_taken
                      AND x.xmin::text::bigint <> (pg_current_xact_id()::text::bigint & 4294967295)
                    RETURNING s.row_number, s.id
                    """)
                for t in late.rows {
                    let number = Int(t[0]!)!
                    refused.insert(number)
                    report.rejected.append(ImportRowError(number: number, field: "id", reason: "a camera with id \(t[1]!) already exists"))
                }
                if allOrNothing && !report.rejected.isEmpty { return try rollBack() }
                guard inserted == unique.count - refused.count else {
                    throw PostgresError(code: .unexpectedResult, message: "import inserted \(inserted) cameras, expected \(unique.count - refused.count)")
                }
            }
            report.rejected.sort { $0.number < $1.number }
            // The change log: numbered in the statement under the change lock (migration 0007),
            // taken only now so that other writers wait for it as briefly as before.
            try c.query("SELECT pg_advisory_xact_lock(99097114101104)")
            try c.query("""
                INSERT INTO camera_changes (seq, camera_id, kind, actor, version, detail)
                SELECT nextval('camera_changes_seq_seq'), id, 'import', $1, version, 'row ' || row_number FROM import_stage s
                WHERE NOT s.row_taken
                  AND NOT EXISTS (SELECT 1 FROM camera_changes x WHERE x.camera_id = s.id AND x.kind = 'import' AND x.detail = 'row ' || s.row_number)
                """, [actor])
            try CameraRepository.advanceIDSequence(past: unique.lazy.map(\.camera.id), on: c)
            // The inserted rows are exactly the staged ones not refused; their values are what
            // PostgreSQL stored (the text COPY round-trips doubles; timestamps are kept to the
            // microsecond, as CameraRepository.decode would read them back).
            report.imported.reserveCapacity(unique.count - refused.count)
            for r in unique where !refused.contains(r.number) { report.imported.append(storedImport(r.camera)) }
            report.committed = true
            return report
        }
    }
}

extension CameraImport {
    /// The rows an import has read so far: the first row of each id (its camera as stored,
    /// ``storedImport(_:)``), and every refusal. Used by one thread at a time (the import's
    /// database call, or its reader thread while that call waits for it).
    final class Collected: @unchecked Sendable {
        var seen = Set<String>()
        /// The kept rows' numbers and cameras, side by side (the cameras array is the index's
        /// batch as it is: no copy of a million cameras into another array).
        var numbers: [Int] = []
        var cameras: [Camera] = []
        var rejected: [ImportRowError] = []

        /// The kept rows, as pairs (for the staging path).
        var unique: [(number: Int, camera: Camera)] { Array(zip(numbers, cameras)) }
        /// The source has been read to its end.
        var complete = false

        /// Keeps the rows of ids not seen before; refuses the others. Returns the cameras kept.
        func add(_ rows: [(number: Int, camera: Camera)], _ refused: [ImportRowError]) -> ArraySlice<Camera> {
            rejected += refused
            let first = cameras.count
            for r in rows {
                if seen.insert(r.camera.id).inserted {
                    numbers.append(r.number)
                    cameras.append(storedImport(r.camera))
                } else {
                    rejected.append(ImportRowError(number: r.number, field: "id", reason: "id \(r.camera.id) appears earlier in the file"))
                }
            }
            return cameras[first...]
        }
    }

    /// The import was refused as a whole (`allOrNothing` with a refused row): roll back.
    private struct RefusedAsAWhole: Error {}

    /// The fast path of ``importRows(from:allOrNothing:actor:on:)``: one transaction that COPYs
    /// the rows into `cameras` (binary, batch by batch as `source` reads them), logs them in
    /// `camera_changes` and moves the id sequence. Throws the unique violation (23505) when an
    /// id is taken; nothing is then written, and `rows` holds everything read.
    static func importDirectly(from source: @escaping RowSource, collecting rows: Collected, allOrNothing: Bool, actor: String,
                               whileCommitting: (@Sendable ([Camera]) -> Void)?, ownChanges: ((ClosedRange<Int64>) -> Void)? = nil,
                               on c: PostgresConnection) throws -> ImportReport {
        var report = ImportReport()
        /// What the reader thread leaves: the change rows, and the job making the stored cameras'
        /// index snapshot (started as soon as the file is read).
        struct ReaderResult: Sendable {
            var blocks: ChangeBlocks
            var alongside: BackgroundJob<[Camera]>
        }
        var reader: BackgroundJob<ReaderResult?>?
        // Every path waits for the helper threads (they read `rows` and the caller's closures).
        defer {
            if let r = try? reader?.result() { _ = try? r.alongside.result() }
        }
        let clock = ContinuousClock()
        var mark = clock.now
        func step(_ name: String) {
            let now = clock.now
            report.steps.append((name, Double((now - mark) / .microseconds(1)) / 1e6))
            mark = now
        }
        do {
            try c.transaction { c in
                let list = CameraRepository.columns.joined(separator: ", ")
                try c.copyIn("COPY cameras (\(list)) FROM STDIN (FORMAT binary)") { send in
                    // The file is read and encoded on a thread of its own, so that reading goes
                    // on while this thread waits for PostgreSQL to take the bytes (a socket
                    // buffer holds only a few hundred kilobytes).
                    let chunks = ChunkQueue(capacity: 16)
                    let job = BackgroundJob(name: "camreg-import-read") { () -> ReaderResult? in
                        do {
                            var out = PostgresBinaryCopyEncoder(reserve: 1 << 19)
                            try source { batch, refused in
                                try chunks.throwIfCancelled()
                                let kept = rows.add(batch, refused)
                                // Once a row is refused, an all-or-nothing import sends nothing more.
                                if allOrNothing && !rows.rejected.isEmpty { return }
                                for camera in kept { BinaryRows.append(camera, to: &out) }
                                if out.bytes.count >= 1 << 18 { try chunks.put(out.take()) }
                            }
                            rows.complete = true
                            out.finish()
                            try chunks.put(out.take())
                            chunks.finish(nil)
                        } catch {
                            chunks.finish(error)
                            return nil
                        }
                        if allOrNothing && !rows.rejected.isEmpty { return nil }
                        // While PostgreSQL works through the rows still queued for it, the index
                        // snapshot is built on a thread of its own (not a Dispatch worker, see
                        // `BackgroundJob`), and the change rows are encoded here, both off the
                        // database thread's path.
                        let ready = rows.cameras
                        let alongside = BackgroundJob(name: "camreg-import-index") { () -> [Camera] in
                            whileCommitting?(ready)
                            return ready
                        }
                        return ReaderResult(blocks: ChangeBlocks(numbers: rows.numbers, cameras: rows.cameras, actor: actor), alongside: alongside)
                    }
                    reader = job
                    do {
                        while let chunk = try chunks.take() { try send(chunk) }
                    } catch {
                        chunks.cancel()  // the reader stops at its next batch
                        _ = try? job.result()
                        throw error
                    }
                    step("read")
                }
                step("copy_end")
                if allOrNothing && !rows.rejected.isEmpty { throw RefusedAsAWhole() }
                guard let read = try reader?.result() else {
                    throw PostgresError(code: .unexpectedResult, message: "the import's reader ended without its change rows")
                }
                let blocks = read.blocks
                try logChanges(blocks, on: c)
                if let ownChanges, let numbers = try ownNumbers(blocks, on: c) { ownChanges(numbers) }
                try CameraRepository.advanceIDSequence(to: blocks.topSerial, on: c)
                step("changes")
            }
            step("commit")
            if let read = try reader?.result() {
                report.imported = try read.alongside.result()
            }
        } catch is RefusedAsAWhole {
            report.rejected = rows.rejected.sorted { $0.number < $1.number }
            return report
        }
        report.rejected = rows.rejected.sorted { $0.number < $1.number }
        report.committed = true
        report.direct = true
        return report
    }

    /// The most cameras one import change row names (migration 0008's CHECK).
    static let changeBlock = 4096

    /// The import's change rows: one per block of up to ``changeBlock`` cameras, in file order
    /// (migration 0008: `camera_ids` the block's ids, `detail` `rows <first>–<last> (<n> cameras)`),
    /// not one per camera, so that a million-camera import writes 245 rows instead of a million.
    /// Encoded as a binary COPY by the import's reader thread; also the highest `BC-<n>` among
    /// the ids, for the id sequence.
    struct ChangeBlocks: Sendable {
        /// The COPY stream of `camera_changes (camera_ids, kind, actor, detail)`.
        var copy: [UInt8] = []
        /// The rows in it.
        var count = 0
        /// The highest `n` of an imported id `BC-<n>` (0 when none).
        var topSerial: Int64 = 0

        /// The blocks of the rows numbered `numbers` (file order), holding `cameras`.
        init(numbers: [Int], cameras: [Camera], actor: String) {
            topSerial = CameraRepository.topSerial(of: cameras.lazy.map(\.id))
            guard !cameras.isEmpty else { return }
            var out = PostgresBinaryCopyEncoder(reserve: cameras.count * 16 + 1024)
            for start in stride(from: 0, to: cameras.count, by: changeBlock) {
                let end = min(cameras.count, start + changeBlock)
                out.row(fields: 4)
                out.textArray(cameras[start..<end].lazy.map(\.id))
                out.text("import")
                out.text(actor)
                out.text("rows \(numbers[start])–\(numbers[end - 1]) (\(end - start) camera\(end - start == 1 ? "" : "s"))")
                count += 1
            }
            out.finish()
            copy = out.take()
        }
    }

    /// Writes the import's change rows. Each is numbered as it is inserted, by the trigger
    /// (migrations 0005 and 0007: under the change lock, which the first row takes and the
    /// transaction holds until it ends), so they follow each other in file order, after every
    /// change committed before.
    static func logChanges(_ blocks: ChangeBlocks, on c: PostgresConnection) throws {
        guard blocks.count > 0 else { return }
        try c.copyIn("COPY camera_changes (camera_ids, kind, actor, detail) FROM STDIN (FORMAT binary)") { send in
            var at = 0
            while at < blocks.copy.count {
                let end = min(blocks.copy.count, at + (1 << 20))
                try send(Array(blocks.copy[at..<end]))
                at = end
            }
        }
    }

    /// The change numbers `logChanges` gave the blocks: consecutive, as they were numbered under
    /// the change lock, which this transaction holds until it ends (migrations 0005 and 0007),
    /// ending at this session's last number; checked against this transaction's rows (nil if
    /// they do not match, or there were none).
    static func ownNumbers(_ blocks: ChangeBlocks, on c: PostgresConnection) throws -> ClosedRange<Int64>? {
        guard blocks.count > 0, let top = Int64(try c.query("SELECT currval('camera_changes_seq_seq')").scalar() ?? "") else { return nil }
        let numbers = (top - Int64(blocks.count) + 1)...top
        let mine = try c.query("""
            SELECT count(*) FROM camera_changes WHERE seq BETWEEN $1 AND $2
               AND xmin::text::bigint = (pg_current_xact_id()::text::bigint & 4294967295)
            """, [String(numbers.lowerBound), String(numbers.upperBound)]).scalar()
        return mine == String(blocks.count) ? numbers : nil
    }

    /// An imported camera as PostgreSQL stored it (the text COPY round-trips doubles; timestamps
    /// are kept to the microsecond, as `CameraRepository.decode` would read them back), with
    /// the columns an import does not write left empty.
    static func storedImport(_ camera: Camera) -> Camera {
        var camera = camera
        camera.createdAt = BinaryRows.microsecondDate(camera.createdAt)
        camera.updatedAt = BinaryRows.microsecondDate(camera.updatedAt)
        camera.ownerID = nil
        camera.verifiedBy = nil
        camera.verifiedAt = nil
        camera.statusReason = nil
        return camera
    }
}

/// Rows of `CameraRepository.columns` for `COPY … (FORMAT binary)`: the values as stored, with
/// no text conversion on either side (doubles keep their bits; timestamps are rounded to the
/// microsecond, as `CameraRepository.timestamp` rounds them).
enum BinaryRows {
    /// `COPY <target> FROM STDIN (FORMAT binary)` of `rows`, sent in chunks of about 64 KiB;
    /// each row holds `CameraRepository.columns`, then the row number when `rowNumbers` (the
    /// staging table).
    static func copy(_ rows: [(number: Int, camera: Camera)], rowNumbers: Bool, into target: String,
                     on c: PostgresConnection) throws {
        try c.copyIn("COPY \(target) FROM STDIN (FORMAT binary)") { send in
            var out = PostgresBinaryCopyEncoder()
            for r in rows {
                append(r.camera, rowNumber: rowNumbers ? r.number : nil, to: &out)
                if out.bytes.count >= 1 << 16 { try send(out.take()) }
            }
            out.finish()
            try send(out.take())
        }
    }

    /// One row: `CameraRepository.columns`, then `rowNumber` when given.
    static func append(_ cam: Camera, rowNumber: Int? = nil, to out: inout PostgresBinaryCopyEncoder) {
        out.row(fields: rowNumber == nil ? 19 : 20)
        out.text(cam.id)
        out.double(cam.lat)
        out.double(cam.lon)
        out.text(cam.siteKind.rawValue)
        out.text(cam.address)
        out.text(cam.ward)
        out.double(cam.heading)
        out.double(cam.fov)
        out.double(cam.range)
        out.double(cam.mountHeight)
        out.text(cam.ownerKind.rawValue)
        out.text(cam.ownerName)
        out.text(cam.ownerPhone)
        out.text(cam.schedule.description)
        out.int32(Int32(clamping: cam.retentionDays))
        out.text(cam.status.rawValue)
        out.timestamp(unixMicros: CameraRepository.micros(cam.createdAt))
        out.timestamp(unixMicros: CameraRepository.micros(cam.updatedAt))
        out.int32(Int32(clamping: cam.version))
        if let rowNumber { out.int32(Int32(clamping: rowNumber)) }
    }

    /// `date` as PostgreSQL keeps it and `CameraRepository.decode` reads it back: rounded to the
    /// microsecond (``CameraRepository/micros(_:)``), then `extract(epoch …)::float8`, which is
    /// exactly microseconds ÷ 10⁶ correctly rounded.
    static func microsecondDate(_ date: Date) -> Date {
        Date(timeIntervalSince1970: Double(CameraRepository.micros(date)) / 1_000_000)
    }
}

/// A bounded queue of byte chunks from one producer thread to one consumer, which ends with
/// the producer's ``finish(_:)`` (its error, if any, is thrown to the consumer after the
/// chunks before it). ``cancel()`` makes the producer's next ``put(_:)`` throw. Used between an
/// import's reader and database threads, and between an event loop receiving an upload and the
/// import parsing it (the event loop puts only when ``hasRoom``, and otherwise waits with
/// ``waitForRoom()`` on a thread-pool thread, so that a client uploading faster than the import
/// reads is slowed down instead of filling the daemon's memory).
public final class ChunkQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var chunks: [[UInt8]] = []
    private var head = 0
    private var finished = false
    private var failure: Error?
    private var cancelled = false
    private let capacity: Int

    /// The consumer stopped taking chunks.
    public struct Cancelled: Error {}

    public init(capacity: Int) { self.capacity = capacity }

    /// Adds a chunk, waiting while the queue is full; throws ``Cancelled`` once cancelled.
    public func put(_ chunk: [UInt8]) throws {
        condition.lock(); defer { condition.unlock() }
        while chunks.count - head >= capacity && !cancelled { condition.wait() }
        if cancelled { throw Cancelled() }
        chunks.append(chunk)
        condition.broadcast()
    }

    /// Throws ``Cancelled`` once the consumer has stopped (the producer checks it between
    /// batches, also when it has nothing to put).
    public func throwIfCancelled() throws {
        condition.lock(); defer { condition.unlock() }
        if cancelled { throw Cancelled() }
    }

    /// The producer is done (with `error` if it failed).
    public func finish(_ error: Error?) {
        condition.lock(); defer { condition.unlock() }
        finished = true
        failure = error
        condition.broadcast()
    }

    /// The next chunk, waiting for one; nil after the last; the producer's error after the
    /// chunks it put before failing.
    public func take() throws -> [UInt8]? {
        condition.lock(); defer { condition.unlock() }
        while head == chunks.count && !finished { condition.wait() }
        if head < chunks.count {
            let chunk = chunks[head]
            chunks[head] = []
            head += 1
            if head > 64 && head * 2 > chunks.count { chunks.removeFirst(head); head = 0 }
            condition.broadcast()
            return chunk
        }
        if let failure { throw failure }
        return nil
    }

    /// Whether ``put(_:)`` would add a chunk without waiting: the queue is below its capacity,
    /// or cancelled (the chunk is then refused at once).
    public var hasRoom: Bool {
        condition.lock(); defer { condition.unlock() }
        return chunks.count - head < capacity || cancelled || finished
    }

    /// Waits until ``hasRoom`` (for a producer that must not wait inside ``put(_:)``, e.g. on
    /// an event loop: it checks `hasRoom` there and waits here, on another thread, when full).
    public func waitForRoom() {
        condition.lock(); defer { condition.unlock() }
        while chunks.count - head >= capacity && !cancelled && !finished { condition.wait() }
    }

    /// Tells the producer to stop.
    public func cancel() {
        condition.lock(); defer { condition.unlock() }
        cancelled = true
        condition.broadcast()
    }
}
