import Foundation
import Geo
import Postgres
@testable import Registry
@testable import RegistryStore
import Testing

/// A camera with every optional field nil (`bare`) or set, with awkward text.
fileprivate func startupCamera(_ n: Int, bare: Bool) -> Camera {
    var c = Camera(id: String(format: "ST-%05d", n), lat: 11.05 + Double(n) * 0.000123456789, lon: 106.6 + Double(n) * 0.0000987654321,
                   siteKind: SiteKind.allCases[n % SiteKind.allCases.count],
                   address: n % 3 == 0 ? "Số \(n), Đường\tNA6\\khu \"A\"\nKhu phố 5, Phường Mỹ Phước" : "Số \(n), Đường Hùng Vương, Thị xã Bến Cát",
                   ward: n % 2 == 0 ? "Phường Mỹ Phước" : "Phường Thới Hòa",
                   heading: bare ? nil : Double(n % 360) + 0.25, fov: 90.5, range: 30 + Double(n % 50),
                   mountHeight: bare ? nil : 3.75, ownerKind: OwnerKind.allCases[n % OwnerKind.allCases.count],
                   ownerName: bare ? nil : "Nguyễn Thị Ánh \\ \(n)\r\n", ownerPhone: bare ? nil : "+8490\(String(format: "%07d", n))",
                   schedule: n % 2 == 0 ? .always : .daily(start: 18 * 60 + n % 60, end: 6 * 60),
                   retentionDays: 1 + n % 3650, status: CameraStatus.allCases[n % 3],
                   createdAt: Date(timeIntervalSince1970: 1_600_000_000.123456 + Double(n)),
                   updatedAt: Date(timeIntervalSince1970: 1_700_000_000.654321 + Double(n)), version: 1 + n % 4)
    if !bare { c.statusReason = "lý do\t\(n)" }
    return c
}

/// Inserts `count` cameras (half bare, half with every field) and gives some an owner and a
/// verification; returns the connection.
fileprivate func seededDatabase(_ count: Int) async throws -> (PostgresConfiguration, PostgresConnection) {
    let config = try await TestPostgres.shared.migratedDatabase("stl")
    let c = try PostgresConnection(configuration: config)
    try c.transaction { c in
        _ = try CameraRepository.copyInsert((0..<count).map { startupCamera($0, bare: $0 % 2 == 0) }, on: c)
        try c.query("INSERT INTO camera_changes (camera_id, kind, actor, version) SELECT id, 'import', 'test', version FROM cameras")
    }
    let owner = try #require(try c.query("""
        INSERT INTO owners (kind, name, phone, address, ward) VALUES ('household', 'Trần Văn Bình', '+84901234567', 'Số 1', 'Phường Mỹ Phước') RETURNING id
        """).scalar())
    try c.query("""
        UPDATE cameras SET owner_id = $1, verified_by = 'cán bộ\\x', verified_at = '2024-02-29T12:34:56.789012+07',
               status_reason = 'đã kiểm tra' WHERE id IN (SELECT id FROM cameras WHERE NOT (id ~ '[02468]$') ORDER BY id LIMIT 20)
        """, [owner])
    return (config, c)
}

@Suite("Start-up load: binary COPY stream and the index cache")
struct StartupLoadTests {
    @Test func streamedCamerasEqualCameraRepositoryAll() async throws {
        let (_, c) = try await seededDatabase(300)
        let expected = try CameraRepository.all(on: c)
        let load = try CameraStream.loadAll(on: c)
        #expect(load.cameras.count == 300)
        #expect(load.xmins.count == 300)
        let streamed = load.cameras.sorted { $0.id < $1.id }
        #expect(streamed == expected)
        #expect(expected.contains { $0.heading == nil && $0.ownerName == nil && $0.ownerID == nil })
        #expect(expected.contains { $0.ownerID != nil && $0.verifiedAt != nil && $0.statusReason != nil })
        #expect(expected.contains { $0.address.contains("\t") && $0.address.contains("\\") && $0.address.contains("\n") })
        #expect(load.sequence == (try ChangeFeed.currentSequence(on: c)))
        #expect(load.anchor > 0)
        // The database's fingerprint equals the loaded one.
        #expect(try CameraTableFingerprint.read(on: c) == load.fingerprint)
        // The connection is usable after the COPY.
        #expect(try c.query("SELECT 1").scalar() == "1")
        // An empty table streams nothing.
        let e = try PostgresConnection(configuration: try await TestPostgres.shared.migratedDatabase("stle"))
        #expect(try CameraStream.loadAll(on: e).cameras.isEmpty)
    }

    @Test func copyOutErrorsAreTypedAndLeaveTheConnectionUsable() async throws {
        let (_, c) = try await seededDatabase(10)
        // A failing statement: a server error, the connection stays usable.
        #expect(throws: PostgresError.self) { try c.copyOut("COPY (SELECT 1/0) TO STDOUT") { _ in } }
        #expect(try c.query("SELECT 2").scalar() == "2")
        // Not a COPY.
        #expect(throws: PostgresError.self) { try c.copyOut("SELECT 1") { _ in } }
        #expect(try c.query("SELECT 3").scalar() == "3")
        // The receiver throws: the COPY is cancelled, the error is the receiver's.
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try c.copyOut("COPY (SELECT g FROM generate_series(1, 200000) g) TO STDOUT") { _ in throw Stop() }
        }
        #expect(try c.query("SELECT 4").scalar() == "4")
        // Text COPY delivers rows.
        var lines = 0
        let n = try c.copyOut("COPY (SELECT g FROM generate_series(1, 1000) g) TO STDOUT") { _ in lines += 1 }
        #expect(n == 1000 && lines == 1000)
    }

    @Test func binaryDecoderRejectsMalformedStreams() throws {
        var d = PostgresBinaryCopyDecoder(columns: 1)
        let bad: [UInt8] = Array("NOTPGCOPY\n\0\0\0\0\0\0\0\0\0\0\0\0".utf8)
        #expect(throws: PostgresError.self) { try bad.withUnsafeBytes { try d.feed($0) { _ in } } }
        // A valid header, a row split over two chunks, then the trailer.
        var ok = PostgresBinaryCopyDecoder(columns: 1)
        let stream: [UInt8] = [0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
                               0, 1, 0, 0, 0, 4, 0, 0, 0, 42, 0xFF, 0xFF]
        var values: [Int32] = []
        for part in [Array(stream[0..<23]), Array(stream[23...])] {
            try part.withUnsafeBytes { try ok.feed($0) { values.append(try $0.int32(0) ?? -1) } }
        }
        try ok.finish()
        #expect(values == [42])
        // Truncated: finish() refuses.
        var cut = PostgresBinaryCopyDecoder(columns: 1)
        try Array(stream[0..<25]).withUnsafeBytes { try cut.feed($0) { _ in } }
        #expect(throws: PostgresError.self) { try cut.finish() }
        // Wrong field count.
        var wrong = PostgresBinaryCopyDecoder(columns: 2)
        #expect(throws: PostgresError.self) { try stream.withUnsafeBytes { try wrong.feed($0) { _ in } } }
    }

    /// The cache's id index is checked, not trusted: each position once and in range, each id
    /// greater than the one before.
    @Test func cacheIDIndexIsChecked() throws {
        let ids = ["B", "A", "D", "C", "AB"].map { Array($0.utf8) }
        func check(_ index: [UInt32]) throws -> [Int32] {
            let bytes = index.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
            return try bytes.withUnsafeBytes { payload in
                try ids.withUnsafeBufferPointer { all in
                    let order = try IndexCache.checkedIDOrder(count: ids.count, at: 0, of: payload) { i in
                        all[i].withUnsafeBytes { UnsafeRawBufferPointer(start: $0.baseAddress, count: $0.count) }
                    }
                    return Array(order.buffer)
                }
            }
        }
        #expect(try check([1, 4, 0, 3, 2]) == [1, 4, 0, 3, 2])  // A, AB, B, C, D
        for bad: [UInt32] in [[1, 4, 0, 2, 3], [1, 1, 0, 3, 2], [1, 4, 0, 3, 9], [4, 1, 0, 3, 2]] {
            #expect(throws: IndexCacheError.self, "\(bad)") { try check(bad) }
        }
    }

    @Test func cacheRoundTripCatchUpAndRefusals() async throws {
        let (config, c) = try await seededDatabase(200)
        let dir = try shortTempDirectory("ic")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/" + IndexCache.fileName
        let load = try CameraStream.loadAll(on: c)
        let identity = try DatabaseIdentity.read(on: c)
        try IndexCache.write(load, identity: identity, to: path)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))

        // Round trip: the same cameras, xmins and numbers; the file holds them in the table's
        // space order (Hilbert key, then id), so that a start reads it front to back.
        let file = try IndexCache.read(path: path)
        let back = try IndexCache.decode(file)
        func byID(_ cams: [Camera], _ xmins: [UInt32]) -> [String: (Camera, UInt32)] {
            Dictionary(uniqueKeysWithValues: zip(cams, xmins).map { ($0.0.id, ($0.0, $0.1)) })
        }
        let loaded = byID(load.cameras, load.xmins), decoded = byID(back.cameras, back.xmins)
        #expect(back.cameras.count == load.cameras.count && Set(loaded.keys) == Set(decoded.keys))
        #expect(loaded.allSatisfy { decoded[$0.key]?.0 == $0.value.0 && decoded[$0.key]?.1 == $0.value.1 })
        let keys = back.cameras.map { CameraTable.hilbertKey(lat: $0.lat, lon: $0.lon) }
        #expect(zip(keys, keys.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(file.header.sequence == load.sequence && file.header.anchor == load.anchor)
        #expect(file.header.identity == identity)

        // No changes: the catch-up agrees.
        let same = try IndexCache.merge(back, header: file.header, with: try IndexCache.catchUp(after: file.header, on: c))
        #expect(same.cameras == back.cameras)

        // Packed straight from the file: the same table as from the decoded cameras, and the
        // same fingerprint, which the catch-up accepts.
        let packed = try IndexCache.decodeTable(file)
        let reference = try CameraTable(cameras: back.cameras)
        #expect(packed.table.count == reference.count && packed.table.count == load.cameras.count)
        #expect((0..<reference.count).allSatisfy { packed.table.camera(at: $0) == reference.camera(at: $0) })
        #expect((0..<reference.count).allSatisfy { packed.table.slot(rank: $0) == reference.slot(rank: $0) })
        // A file in another order packs into a table of the same cameras, ids, tree and
        // fingerprint (its slots follow the file: correct, only less compact).
        let unordered = dir + "/unordered.cache"
        var shuffled = load
        let perm = Array(load.cameras.indices.reversed())
        shuffled.cameras = perm.map { load.cameras[$0] }
        shuffled.xmins = perm.map { load.xmins[$0] }
        try IndexCache.write(shuffled, identity: identity, to: unordered, inSpaceOrder: false)
        let fromUnordered = try IndexCache.decodeTable(try IndexCache.read(path: unordered))
        #expect(try IndexCache.decode(try IndexCache.read(path: unordered)).cameras == shuffled.cameras)
        let shuffledKeys = shuffled.cameras.map { CameraTable.hilbertKey(lat: $0.lat, lon: $0.lon) }
        #expect(!zip(shuffledKeys, shuffledKeys.dropFirst()).allSatisfy { $0 <= $1 })  // really out of order
        #expect((0..<reference.count).allSatisfy {
            fromUnordered.table.camera(at: fromUnordered.table.slot(rank: $0)) == reference.camera(at: reference.slot(rank: $0))
        })
        let unorderedIndex = try CameraIndex(table: fromUnordered.table, tree: fromUnordered.tree)
        for cam in back.cameras.prefix(20) {
            #expect(try unorderedIndex.near(lat: cam.lat, lon: cam.lon, radius: 300, limit: 100).map(\.ref.id)
                    == CameraIndex(table: packed.table, tree: packed.tree).near(lat: cam.lat, lon: cam.lon, radius: 300, limit: 100).map(\.ref.id))
        }
        #expect(fromUnordered.fingerprint == packed.fingerprint && fromUnordered.tree.count == IndexSnapshot.treeItemCount(cameras: reference.count))
        // Out of space order, runs of slots would make wide tree items: one camera an item instead.
        #expect(unorderedIndex.readView.snapshot.slotsPerItem == 1 && unorderedIndex.readView.snapshot.blocks == nil)
        #expect(packed.fingerprint == back.fingerprint)
        // The STRtree built beside the table (from the file's positions) holds the table's runs
        // of slots: searches answer as over an index built from the decoded cameras.
        #expect(packed.tree.count == IndexSnapshot.treeItemCount(cameras: packed.table.count) && packed.table.count > 100)
        let fromFile = try CameraIndex(table: packed.table, tree: packed.tree)
        #expect(fromFile.readView.snapshot.slotsPerItem == IndexSnapshot.treeRun && fromFile.readView.snapshot.blocks != nil)
        let fromValues = try CameraIndex(cameras: back.cameras)
        for cam in back.cameras.prefix(40) {
            let a = try fromFile.near(lat: cam.lat, lon: cam.lon, radius: 300, limit: 1000).map { ($0.ref.id, $0.distance) }
            let b = try fromValues.near(lat: cam.lat, lon: cam.lon, radius: 300, limit: 1000).map { ($0.ref.id, $0.distance) }
            #expect(a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1))
            if cam.status != .retired { #expect(a.contains { $0.0 == cam.id && $0.1 == 0 }) }
        }
        // A tree that does not fit the table is refused.
        #expect(throws: RegistryError.self) { _ = try CameraIndex(table: reference, tree: try STRtree(boxes: [(106.6, 11.1, 106.6, 11.1)])) }
        let noChanges = try IndexCache.catchUp(after: file.header, on: c)
        #expect(noChanges.changeRows == 0)
        try IndexCache.checkLineage(header: file.header, with: noChanges)
        try IndexCache.checkFingerprint(packed.fingerprint, with: noChanges)
        // A cache holding an id twice is refused, not packed.
        var doubled = load
        doubled.cameras.append(load.cameras[3])
        doubled.xmins.append(load.xmins[3])
        try IndexCache.write(doubled, identity: identity, to: dir + "/doubled.bin")
        #expect(throws: IndexCacheError.self) { _ = try IndexCache.decodeTable(try IndexCache.read(path: dir + "/doubled.bin")) }

        // A change through the log (and a new camera) is applied.
        try c.transaction { c in
            try c.query("UPDATE cameras SET address = 'Địa chỉ mới', version = version + 1 WHERE id = 'ST-00007'")
            _ = try CameraRepository.copyInsert([startupCamera(999, bare: false)], on: c)
            try c.query("INSERT INTO camera_changes (camera_id, kind, actor, version) SELECT id, 'update', 'sql', version FROM cameras WHERE id IN ('ST-00007', 'ST-00999')")
        }
        let merged = try IndexCache.merge(back, header: file.header, with: try IndexCache.catchUp(after: file.header, on: c))
        #expect(merged.cameras.sorted { $0.id < $1.id } == (try CameraRepository.all(on: c)))
        #expect(merged.cameras.first { $0.id == "ST-00007" }?.address == "Địa chỉ mới")
        #expect(merged.sequence > file.header.sequence)

        // An import after the cache, logged as one block row naming its 30 cameras: they are
        // read back too, and counted as camera changes.
        let block = (0..<30).map { n in (number: n + 2, camera: startupCamera(1_000 + n, bare: n % 2 == 0)) }
        let imported = try CameraImport.importRows(from: { emit in try emit(block, []) }, allOrNothing: true, actor: "t", on: c)
        #expect(imported.committed && imported.imported.count == 30)
        let afterImport = try IndexCache.catchUp(after: file.header, on: c)
        #expect(afterImport.changeRows == 32, "two rows of their own, and 30 cameras in one block")
        let withImport = try IndexCache.merge(back, header: file.header, with: afterImport)
        #expect(withImport.cameras.sorted { $0.id < $1.id } == (try CameraRepository.all(on: c)))

        // A change that bypassed the log (no camera_changes row, same version): the xmin sum differs.
        try c.query("UPDATE cameras SET address = 'lén sửa' WHERE id = 'ST-00011'")
        #expect(throws: IndexCacheError.self) {
            _ = try IndexCache.merge(back, header: file.header, with: try IndexCache.catchUp(after: file.header, on: c))
        }

        // The log pruned past the cache's anchor.
        let fresh = try CameraStream.loadAll(on: c)
        try IndexCache.write(fresh, identity: identity, to: path)
        let f2 = try IndexCache.read(path: path)
        try c.query("DELETE FROM camera_changes WHERE seq <= $1", [String(f2.header.anchor)])
        let pruned = try IndexCache.catchUp(after: f2.header, on: c)
        #expect(!pruned.anchorPresent)
        #expect(throws: IndexCacheError.self) { _ = try IndexCache.merge(try IndexCache.decode(f2), header: f2.header, with: pruned) }

        // Another database: refused by identity.
        let other = try PostgresConnection(configuration: try await TestPostgres.shared.migratedDatabase("stlo"))
        let foreign = try IndexCache.catchUp(after: f2.header, on: other)
        #expect(foreign.identity != f2.header.identity)
        #expect(throws: IndexCacheError.self) { _ = try IndexCache.merge(try IndexCache.decode(f2), header: f2.header, with: foreign) }
        _ = config

        // Corruption anywhere and truncation are refused, never a crash.
        let good = try #require(FileManager.default.contents(atPath: path))
        for offset in [3, 20, 60, good.count / 2, good.count - 1] {
            var bytes = [UInt8](good)
            bytes[offset] ^= 0x5A
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            #expect(throws: IndexCacheError.self) { _ = try IndexCache.decode(try IndexCache.read(path: path)) }
            #expect(throws: IndexCacheError.self) { _ = try IndexCache.decodeTable(try IndexCache.read(path: path)) }
        }
        for length in [0, 10, 79, 100, good.count - 1] {
            try Data(good.prefix(length)).write(to: URL(fileURLWithPath: path))
            #expect(throws: IndexCacheError.self) { _ = try IndexCache.decode(try IndexCache.read(path: path)) }
            #expect(throws: IndexCacheError.self) { _ = try IndexCache.decodeTable(try IndexCache.read(path: path)) }
        }
        try? FileManager.default.removeItem(atPath: path)
        let missing = try? IndexCache.read(path: path)
        #expect(missing == nil)
        do { _ = try IndexCache.read(path: path) } catch let e as IndexCacheError { #expect(e.missing) }
    }
}

@Suite("Bulk import: staged COPY, change numbers, imported values")
struct BulkImportStoreTests {
    @Test func importedCamerasEqualWhatPostgreSQLStored() async throws {
        let (_, c) = try await seededDatabase(10)
        let before = try ChangeFeed.currentSequence(on: c)
        var rows: [(number: Int, camera: Camera)] = []
        for n in 0..<500 {
            var cam = startupCamera(1000 + n, bare: n % 2 == 0)
            cam.statusReason = nil
            // Sub-microsecond dates, as `Date()` gives them.
            cam.createdAt = Date(timeIntervalSince1970: 1_650_000_000.1234567891 + Double(n) * 0.3333333)
            cam.updatedAt = cam.createdAt.addingTimeInterval(12.987654321)
            rows.append((n + 2, cam))
        }
        rows.append((600, startupCamera(3, bare: true)))          // id taken in the database
        rows.append((601, rows[0].camera))                        // repeated in the file
        // All or nothing: the taken id stops everything.
        let refused = try CameraImport.importRows(Array(rows.dropLast()), earlierRejections: [], allOrNothing: true, actor: "t", on: c)
        #expect(!refused.committed && refused.imported.isEmpty)
        #expect(refused.rejected.map(\.number) == [600])
        #expect(try CameraRepository.count(on: c) == 10)
        #expect(try ChangeFeed.currentSequence(on: c) == before)

        let report = try CameraImport.importRows(rows, earlierRejections: [], allOrNothing: false, actor: "t", on: c)
        #expect(report.committed)
        #expect(report.rejected.map(\.number) == [600, 601])
        #expect(report.imported.count == 500)
        let stored = try CameraRepository.all(on: c).filter { Int($0.id.dropFirst(3))! >= 1000 }
        #expect(report.imported.sorted { $0.id < $1.id } == stored)
        // One change row per imported camera, numbered after everything before, all distinct.
        let changes = try c.query("SELECT seq, camera_id, detail FROM camera_changes WHERE seq > $1 ORDER BY seq", [String(before)]).rows
        #expect(changes.count == 500)
        #expect(Set(changes.map { $0[1]! }) == Set(stored.map(\.id)))
        #expect(changes.contains { $0[2] == "row 2" })
        #expect(try ChangeFeed.currentSequence(on: c) == Int64(changes.last![0]!)!)
        // Other writers are still numbered by the trigger.
        try c.query("INSERT INTO camera_changes (camera_id, kind, actor, version) VALUES ('ST-00001', 'update', 't', 2)")
        #expect(try ChangeFeed.currentSequence(on: c) == Int64(changes.last![0]!)! + 1)

        // A file whose ids are all free takes the direct path (COPY straight into cameras): the
        // same stored values, one change row each, numbered in file order.
        let afterFirst = try ChangeFeed.currentSequence(on: c)
        let clean = (0..<200).map { n in (number: n + 2, camera: startupCamera(3000 + n, bare: n % 3 == 0)) }
        let direct = try CameraImport.importRows(clean, earlierRejections: [], allOrNothing: true, actor: "direct", on: c)
        #expect(direct.committed && direct.rejected.isEmpty && direct.imported.count == 200)
        let storedDirect = try CameraRepository.all(on: c).filter { Int($0.id.dropFirst(3))! >= 3000 }
        #expect(direct.imported.sorted { $0.id < $1.id } == storedDirect)
        // One change row for the block (migration 0008), naming every camera in file order.
        let directChanges = try c.query("SELECT seq, array_to_string(camera_ids, ','), detail, actor, camera_id IS NULL AND version IS NULL FROM camera_changes WHERE seq > $1 ORDER BY seq", [String(afterFirst)]).rows
        #expect(directChanges.count == 1)
        #expect(directChanges.first?[1] == clean.map(\.camera.id).joined(separator: ","))
        #expect(directChanges.first?[2] == "rows 2–201 (200 cameras)")
        #expect(directChanges.first?[3] == "direct" && directChanges.first?[4] == "t")
        #expect(try ChangeFeed.currentSequence(on: c) == Int64(directChanges.last?[0] ?? "") ?? -1)
    }
}

extension BulkImportStoreTests {
    /// Rows streamed in batches (as `IMPORT COMMIT` reads a CSV file) through the binary COPY:
    /// stored exactly, numbered as one block in file order, and the refusals of every batch
    /// reported whichever path ends the import.
    @Test func streamedBatchesThroughBinaryCopy() async throws {
        let (_, c) = try await seededDatabase(10)
        func batches(_ rows: [(number: Int, camera: Camera)], size: Int, refusals: [Int: ImportRowError] = [:]) -> CameraImport.RowSource {
            { emit in
                for start in stride(from: 0, to: rows.count, by: size) {
                    let batch = Array(rows[start..<min(rows.count, start + size)])
                    try emit(batch, refusals[start / size].map { [$0] } ?? [])
                }
            }
        }
        let rows: [(number: Int, camera: Camera)] = (0..<700).map { n in
            var cam = startupCamera(5000 + n, bare: n % 2 == 1)
            cam.statusReason = nil
            // Sub-microsecond dates, as `Date()` gives them; the binary COPY rounds them as
            // `storedImport` says it does.
            cam.createdAt = Date(timeIntervalSince1970: 1_650_000_000.1234567891 + Double(n) * 0.3333333)
            cam.updatedAt = cam.createdAt.addingTimeInterval(12.987654321)
            return (n + 2, cam)
        }
        let before = try ChangeFeed.currentSequence(on: c)

        // All or nothing: a refusal in the second batch stops the sending, but the rest of the
        // file is still read and its refusals reported; nothing is written, no number taken.
        let bad = ImportRowError(number: 250, field: "lat", reason: "is not a number")
        let late = ImportRowError(number: 650, field: "lon", reason: "is not a number")
        let refused = try CameraImport.importRows(from: batches(rows, size: 200, refusals: [1: bad, 3: late]),
                                                  allOrNothing: true, actor: "t", on: c)
        #expect(!refused.committed && refused.imported.isEmpty)
        #expect(refused.rejected.map(\.number) == [250, 650])
        #expect(try CameraRepository.count(on: c) == 10)
        #expect(try ChangeFeed.currentSequence(on: c) == before)

        // A source that fails half-way (an unreadable file) leaves nothing behind, and the
        // connection is usable.
        struct Unreadable: Error {}
        #expect(throws: Unreadable.self) {
            try CameraImport.importRows(from: { emit in try emit(Array(rows.prefix(300)), []); throw Unreadable() },
                                        allOrNothing: false, actor: "t", on: c)
        }
        #expect(try CameraRepository.count(on: c) == 10)

        // All ids free: the direct path, seven batches, stored exactly, one block of numbers.
        let given = Given()
        let direct = try CameraImport.importRows(from: batches(Array(rows.prefix(650)), size: 100), allOrNothing: true, actor: "stream",
                                                 whileCommitting: { given.cameras = $0 }, on: c)
        #expect(direct.committed && direct.direct && direct.rejected.isEmpty && direct.imported.count == 650)
        #expect(given.cameras == direct.imported, "the hook is given exactly the cameras stored")
        let stored = try CameraRepository.all(on: c).filter { $0.id.hasPrefix("ST-05") || $0.id.hasPrefix("ST-06") }
        #expect(direct.imported.sorted { $0.id < $1.id } == stored)
        let changes = try c.query("SELECT seq, array_to_string(camera_ids, ','), detail, actor, kind FROM camera_changes WHERE seq > $1 ORDER BY seq", [String(before)]).rows
        #expect(changes.count == 1, "one change row for a block of up to 4,096 cameras")
        #expect(changes.first?[1] == rows.prefix(650).map(\.camera.id).joined(separator: ","))
        #expect(changes.first?[2] == "rows 2–651 (650 cameras)")
        #expect(changes.first?[3] == "stream" && changes.first?[4] == "import")
        let number = try #require(Int64(changes.first?[0] ?? ""))
        // Numbered under the change lock: the next writer numbered by the trigger comes after it.
        try c.query("INSERT INTO camera_changes (camera_id, kind, actor, version) VALUES ('ST-00001', 'update', 't', 2)")
        #expect(try ChangeFeed.currentSequence(on: c) == number + 1)

        // A taken id in the last batch (and one repeated across batches): the staging path
        // imports the rest and names both.
        var more = Array(rows.suffix(50))
        more.append((900, startupCamera(5003, bare: false)))   // imported just above
        more.append((901, rows[660].camera))                    // repeated in this file
        let staged = try CameraImport.importRows(from: batches(more, size: 20), allOrNothing: false, actor: "t",
                                                 whileCommitting: { given.cameras = $0 }, on: c)
        #expect(staged.committed && !staged.direct, "the staging path wrote a subset of what the hook was given")
        #expect(given.cameras.count == 51, "the hook ran while the COPY was still going")
        #expect(staged.rejected.map(\.number) == [900, 901])
        #expect(staged.imported.map(\.id) == rows.suffix(50).map(\.camera.id))
        #expect(try CameraRepository.count(on: c) == 710)
    }
}

/// What an import's `whileCommitting` hook was given (written on the import's helper thread,
/// read after the import returned, which waits for it).
final class Given: @unchecked Sendable {
    var cameras: [Camera] = []
}

extension BulkImportStoreTests {
    /// A big import logs one change row per 4,096 cameras; a follower's feed applies every camera
    /// of every block (in rounds of about 5,000 cameras), and the rows' CHECK refuses malformed
    /// blocks.
    /// Ten cameras in a new database, an index of them with its feed from the current change
    /// number, and 9,000 import rows (cameras `first`…), fed to an import 1,000 at a time.
    private func feedFixture(first: Int) async throws -> (config: PostgresConfiguration, c: PostgresConnection, before: Int64,
                                                           index: CameraIndex, feed: ChangeFeed, source: CameraImport.RowSource) {
        let (config, c) = try await seededDatabase(10)
        let before = try ChangeFeed.currentSequence(on: c)
        let index = try CameraIndex(cameras: try CameraRepository.all(on: c))
        let feed = ChangeFeed(configuration: config, index: index, appliedSeq: before, applyConsents: { _ in })
        let rows = (0..<9000).map { n in (number: n + 2, camera: startupCamera(first + n, bare: n % 2 == 0)) }
        return (config, c, before, index, feed, { emit in
            for start in stride(from: 0, to: rows.count, by: 1000) { try emit(Array(rows[start..<min(rows.count, start + 1000)]), []) }
        })
    }

    @Test func importBlocksReachAFollowerThroughTheFeed() async throws {
        let (_, c, before, follower, feed, source) = try await feedFixture(first: 20_000)
        let report = try CameraImport.importRows(from: source, allOrNothing: true, actor: "bulk", on: c)
        #expect(report.committed && report.imported.count == 9000)
        let blocks = try c.query("SELECT cardinality(camera_ids), detail, (camera_ids)[1] FROM camera_changes WHERE seq > $1 ORDER BY seq", [String(before)]).rows
        #expect(blocks == [["4096", "rows 2–4097 (4096 cameras)", "ST-20000"],
                           ["4096", "rows 4098–8193 (4096 cameras)", "ST-24096"],
                           ["808", "rows 8194–9001 (808 cameras)", "ST-28192"]])
        // A change of one camera after the blocks.
        try c.query("UPDATE cameras SET heading = 77, version = version + 1 WHERE id = 'ST-28999'")
        try c.query("INSERT INTO camera_changes (camera_id, kind, actor, version) SELECT id, 'update', 't', version FROM cameras WHERE id = 'ST-28999'")

        try feed.catchUp(on: c)
        #expect(follower.count == 9010)
        #expect(follower.camera(id: "ST-24096") == report.imported.first { $0.id == "ST-24096" })
        #expect(follower.camera(id: "ST-28999")?.heading == 77)
        #expect(feed.status.appliedSeq == (try ChangeFeed.currentSequence(on: c)))
        #expect(feed.status.applied == 9000, "each camera loaded once per round")

        // The CHECK: a block names cameras only as an import, without camera_id or version,
        // 1–4,096 of them, none NULL.
        for bad in ["(NULL, ARRAY['A'], 'update', NULL)", "('A', ARRAY['A'], 'import', NULL)", "(NULL, ARRAY['A'], 'import', 1)",
                    "(NULL, ARRAY[]::text[], 'import', NULL)", "(NULL, ARRAY['A', NULL], 'import', NULL)",
                    "(NULL, array_fill('A'::text, ARRAY[4097]), 'import', NULL)", "(NULL, NULL, 'import', 1)"] {
            #expect(throws: PostgresError.self, "\(bad)") {
                try c.query("INSERT INTO camera_changes (camera_id, camera_ids, kind, version, actor) VALUES \(bad.dropLast()), 't')")
            }
        }
    }

    /// The daemon that imports applies the cameras to its own index: its feed is told the
    /// numbers of the import's change rows before the commit and does not read those cameras
    /// back, but still applies a later change to one of them, and every change of others.
    @Test func ownImportBlocksAreNotReadBackByTheFeed() async throws {
        let (config, c, before, index, feed, source) = try await feedFixture(first: 30_000)
        var told: [ClosedRange<Int64>] = []
        let report = try CameraImport.importRows(from: source, allOrNothing: true, actor: "own",
                                                 ownChanges: { told.append($0); feed.skipOwn($0) }, on: c)
        #expect(report.committed && report.direct && report.imported.count == 9000)
        let numbers = try c.query("SELECT seq FROM camera_changes WHERE seq > $1 ORDER BY seq", [String(before)]).rows.compactMap { Int64($0[0] ?? "") }
        #expect(numbers.count == 3)
        #expect(told == [numbers.first!...numbers.last!], "the three block rows, told before the commit")
        try index.upsert(contentsOf: report.imported)  // as the daemon does
        // Another writer's change to one of the imported cameras, after the blocks.
        try c.query("UPDATE cameras SET heading = 55, version = version + 1 WHERE id = 'ST-38999'")
        try c.query("INSERT INTO camera_changes (camera_id, kind, actor, version) SELECT id, 'update', 't', version FROM cameras WHERE id = 'ST-38999'")

        try feed.catchUp(on: c)
        #expect(feed.status.applied == 1, "only the other writer's change was read back")
        #expect(index.camera(id: "ST-38999")?.heading == 55)
        #expect(index.count == 9010)
        #expect(feed.status.appliedSeq == (try ChangeFeed.currentSequence(on: c)))

        // A follower not told about them reads every camera of the blocks back.
        let follower = try CameraIndex(cameras: try CameraRepository.all(on: c).filter { !$0.id.hasPrefix("ST-3") })
        let other = ChangeFeed(configuration: config, index: follower, appliedSeq: before, applyConsents: { _ in })
        try other.catchUp(on: c)
        #expect(other.status.applied == 9000, "each camera read once, the updated one too")
        #expect(follower.camera(id: "ST-38999")?.heading == 55)
        #expect(follower.count == 9010)
    }

    /// An import moves the number sequence of new `BC-<n>` ids past its own highest id (from
    /// the rows, without scanning the table), and never back.
    @Test func importMovesTheIDSequencePastItsIDs() async throws {
        let (_, c) = try await seededDatabase(3)
        func camera(_ id: String) -> (number: Int, camera: Camera) {
            var cam = startupCamera(7, bare: true)
            cam.id = id
            return (2, cam)
        }
        let first = [camera("BC-000000123456"), camera("BC-7"), camera("XBC-999999999")]
        let a = try CameraImport.importRows(from: { emit in for r in first { try emit([(r.number, r.camera)], []) } },
                                            allOrNothing: true, actor: "t", on: c)
        #expect(a.committed)
        #expect(try c.query("SELECT last_value, is_called FROM camera_number_seq").rows.first! == ["123456", "t"])
        // A lower id does not move it back (staging path: one id is taken).
        let b = try CameraImport.importRows([camera("BC-50"), (3, first[1].camera)], earlierRejections: [], allOrNothing: false, actor: "t", on: c)
        #expect(b.committed && b.rejected.map(\.number) == [3])
        #expect(try c.query("SELECT nextval('camera_number_seq')").scalar() == "123457")
        #expect(CameraRepository.serialNumber("BC-") == nil)
        #expect(CameraRepository.serialNumber("BC-1234567890123456") == nil)
        #expect(CameraRepository.serialNumber("BC-123456789012345") == 123_456_789_012_345)
        #expect(CameraRepository.serialNumber("BC-12a") == nil)
    }
}

/// The binary COPY encoder writes what the decoder reads, and what PostgreSQL stores.
@Suite("Binary COPY encoder")
struct BinaryCopyEncoderTests {
    @Test func encoderRoundTripsThroughTheDecoderAndPostgreSQL() async throws {
        var out = PostgresBinaryCopyEncoder()
        let texts: [String?] = ["Phường Mỹ Phước", nil, "tab\tnew\nline \\ \"q\"", "", "😀"]
        let doubles: [Double?] = [11.123456789012345, nil, -0.0, 1e-300, .pi]
        for k in 0..<5 {
            out.row(fields: 5)
            out.text(texts[k])
            out.double(doubles[k])
            out.int32(Int32(k) - 2)
            out.int64(Int64.max - Int64(k))
            out.timestamp(unixMicros: 1_700_000_000_123_457 + Int64(k))
        }
        out.finish()
        let bytes = out.take()
        #expect(out.bytes.isEmpty)
        var decoder = PostgresBinaryCopyDecoder(columns: 5)
        var seen = 0
        try bytes.withUnsafeBytes { raw in
            try decoder.feed(raw) { (row: PostgresBinaryRow) throws in
                let d = try row.double(1), i = try row.int32(2), l = try row.int64(3)
                #expect(row.string(0) == texts[seen])
                #expect(d?.bitPattern == doubles[seen]?.bitPattern)
                #expect(i == Int32(seen) - 2)
                #expect(l == Int64.max - Int64(seen))
                seen += 1
            }
        }
        try decoder.finish()
        #expect(seen == 5)

        let config = try await TestPostgres.shared.migratedDatabase("bce")
        let c = try PostgresConnection(configuration: config)
        try c.query("CREATE TABLE enc (t text, d float8, i int4, l int8, at timestamptz)")
        #expect(try c.copyIn("COPY enc FROM STDIN (FORMAT binary)") { send in try send(bytes) } == 5)
        let back = try c.query("SELECT t, d::text, i, l, (extract(epoch FROM at) * 1000000)::bigint FROM enc ORDER BY i").rows
        #expect(back.map { $0[0] } == texts)
        #expect(back.map { $0[1].flatMap(Double.init)?.bitPattern } == doubles.map { $0?.bitPattern })
        #expect(back[2][1] == "-0")
        #expect(back.map { $0[2]! } == ["-2", "-1", "0", "1", "2"])
        #expect(back.map { $0[4]! } == (0..<5).map { String(1_700_000_000_123_457 + $0) })
    }
}

@Suite("camregd start-up with the index cache", .serialized)
struct StartupCacheDaemonTests {
    func waitForCache(_ path: String, _ d: DaemonProcess) async throws {
        let written = await eventually(60) { FileManager.default.fileExists(atPath: path) }
        if !written { throw TestFailure("no index cache written:\n\(d.logText)") }
    }

    func snapshot(_ sock: String) async throws -> (near: [String], list: [[String: String]]) {
        let c = try await TestClient(path: sock)
        defer { Task { await c.close() } }
        let near = try await c.request("NEAR 11.1470 106.6076 radius=3000 limit=10000")
        let ids = (near["cameras"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        var all: [[String: String]] = []
        var after: String?
        repeat {
            let page = try await c.request("CAMERA LIST limit=1000" + (after.map { " after=\($0)" } ?? ""))
            let cams = page["cameras"] as? [[String: Any]] ?? []
            all += cams.map { $0.mapValues { "\($0)" } }
            after = page["next_cursor"] as? String
        } while after != nil
        return (ids, all)
    }

    @Test func restartUsesTheCacheCatchesUpAndRefusesBadCaches() async throws {
        let config = try await TestPostgres.shared.freshDatabase("scd")
        let url = try databaseURL(for: config)
        let db = try PostgresConnection(configuration: config)
        let dir = try shortTempDirectory("sc")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = dir + "/data", sock = dir + "/d.sock", cache = data + "/" + IndexCache.fileName
        func start(_ n: Int, _ extra: [String] = [], data dataDir: String? = nil) async throws -> DaemonProcess {
            let d = try DaemonProcess(arguments: ["--database-url", url, "--data-dir", dataDir ?? data, "--log-level", "info"] + extra,
                                      socket: sock, log: dir + "/\(n).log")
            try await d.waitReady()
            return d
        }

        // 1. First start: full load from PostgreSQL, then the cache is written.
        let first = try await start(1, ["--demo"])
        #expect(first.logText.contains("cameras loaded from PostgreSQL"))
        try await waitForCache(cache, first)
        let reference = try await snapshot(sock)
        #expect(reference.list.count == 1202 && !reference.near.isEmpty)
        let firstStats = try await TestClient(path: sock)
        #expect(try await firstStats.request("STATS")["index_loaded_from"] as? String == "database")
        await firstStats.close()
        #expect(try await first.terminate() == 0)

        // 2. While camregd is down: a change by SQL, logged in camera_changes as camregd logs it.
        try db.transaction { c in
            try c.query("UPDATE cameras SET address = 'Số 9, Đường mới, Phường Mỹ Phước', version = version + 1, updated_at = now() WHERE id = 'BC-00042'")
            try c.query("INSERT INTO camera_changes (camera_id, kind, actor, version) SELECT id, 'update', 'sql', version FROM cameras WHERE id = 'BC-00042'")
        }
        let second = try await start(2)
        #expect(second.logText.contains("cameras loaded from the index cache"))
        #expect(second.logText.contains("changed_cameras=1"))
        let c2 = try await TestClient(path: sock)
        #expect(try await c2.request("STATS")["index_loaded_from"] as? String == "cache")
        let got = try await c2.request("CAMERA GET BC-00042")
        #expect((got["camera"] as? [String: Any])?["address"] as? String == "Số 9, Đường mới, Phường Mỹ Phước")
        await c2.close()
        let fromCache = try await snapshot(sock)
        // The restart rewrote the cache (it had changes to apply).
        #expect(await eventually(30) { second.logText.contains("index cache written") })
        #expect(try await second.terminate() == 0)

        // 3. The same answers as a cold load without the cache.
        let cold = try await start(3, ["--index-cache", "false"])
        #expect(cold.logText.contains("cameras loaded from PostgreSQL"))
        #expect(!cold.logText.contains("index cache"))
        let coldAnswers = try await snapshot(sock)
        #expect(coldAnswers.near == fromCache.near)
        #expect(coldAnswers.list == fromCache.list)
        #expect(coldAnswers.list != reference.list)
        #expect(try await cold.terminate() == 0)

        // 4. A corrupted cache file: refused, full load, same answers.
        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: cache)))
        bytes[bytes.count / 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: cache))
        let corrupt = try await start(4)
        #expect(corrupt.logText.contains("index cache not used"))
        #expect(corrupt.logText.contains("corrupted"))
        #expect(try await snapshot(sock).list == coldAnswers.list)
        #expect(await eventually(30) { corrupt.logText.contains("index cache written") })
        #expect(try await corrupt.terminate() == 0)

        // 5. A truncated cache file: the same.
        let whole = try #require(FileManager.default.contents(atPath: cache))
        try Data(whole.prefix(whole.count - 1000)).write(to: URL(fileURLWithPath: cache))
        let truncated = try await start(5)
        #expect(truncated.logText.contains("index cache not used"))
        #expect(try await snapshot(sock).list == coldAnswers.list)
        #expect(await eventually(30) { truncated.logText.contains("index cache written") })
        #expect(try await truncated.terminate() == 0)

        // 6. A change that bypassed camera_changes: the fingerprint check refuses the cache.
        try db.query("UPDATE cameras SET address = 'Sửa thẳng trong SQL' WHERE id = 'BC-00100'")
        let bypass = try await start(6)
        #expect(bypass.logText.contains("do not match the cameras table"))
        let c6 = try await TestClient(path: sock)
        let g6 = try await c6.request("CAMERA GET BC-00100")
        #expect((g6["camera"] as? [String: Any])?["address"] as? String == "Sửa thẳng trong SQL")
        await c6.close()
        let afterBypass = try await snapshot(sock)
        #expect(await eventually(30) { bypass.logText.contains("index cache written") })
        #expect(try await bypass.terminate() == 0)

        // 7. A cache from another database is refused.
        let otherConfig = try await TestPostgres.shared.freshDatabase("scdo")
        let otherURL = try databaseURL(for: otherConfig)
        let otherData = dir + "/other"
        try FileManager.default.createDirectory(atPath: otherData, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: cache, toPath: otherData + "/" + IndexCache.fileName)
        let other = try DaemonProcess(arguments: ["--database-url", otherURL, "--data-dir", otherData, "--log-level", "info"],
                                      socket: sock, log: dir + "/7.log")
        try await other.waitReady()
        #expect(other.logText.contains("another database"))
        let c7 = try await TestClient(path: sock)
        #expect((try await c7.request("STATS")["cameras"] as? NSNumber)?.intValue == 0)
        await c7.close()
        #expect(try await other.terminate() == 0)

        // 8. A read-only daemon reads the cache but never writes it.
        let before = try FileManager.default.attributesOfItem(atPath: cache)[.modificationDate] as? Date
        let readOnly = try await start(8, ["--read-only"])
        #expect(readOnly.logText.contains("cameras loaded from the index cache"))
        // No camera changed since the cache: packed straight from the file, the same answers.
        #expect(readOnly.logText.contains("packed=true"))
        // (A read-only daemon without an audit database serves no owner data: ask for ids and distances.)
        let c8 = try await TestClient(path: sock)
        let stats8 = try await c8.request("STATS")
        #expect((stats8["cameras"] as? NSNumber)?.intValue == afterBypass.list.count)
        #expect(stats8["index_loaded_from"] as? String == "cache")
        let near8 = try await c8.request("NEAR 11.1470 106.6076 radius=3000 limit=10000 fields=id,distance_m")
        #expect((near8["cameras"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String } == afterBypass.near, "\(near8)")
        await c8.close()
        try await Task.sleep(for: .seconds(1))
        #expect(!readOnly.logText.contains("index cache written"))
        #expect(try FileManager.default.attributesOfItem(atPath: cache)[.modificationDate] as? Date == before)
        #expect(try await readOnly.terminate() == 0)
    }
}
