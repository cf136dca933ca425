import Foundation
import Testing
import Geo
@testable import Registry

/// The packed camera table behind the index: every member survives packing, ids are ordered and
/// found by binary search, merges keep the newest version, and `CameraRef` reads what `Camera` holds.
@Suite("Packed camera table")
struct CameraTableTests {
    static let base = Date(timeIntervalSince1970: 1_700_000_000.123456)

    static func camera(_ id: String, _ i: Int, version: Int = 1) -> Camera {
        var c = Camera(id: id, lat: 11.1 + Double(i) * 1e-4, lon: 106.6 - Double(i) * 1e-4,
                       siteKind: SiteKind.allCases[i % SiteKind.allCases.count],
                       address: i % 3 == 0 ? "Số \(i) đường Ngô Quyền, khu phố \(i % 7)" : "\(i) \"quoted\" \\ back\nslash",
                       ward: i % 2 == 0 ? "Mỹ Phước" : "Chánh Phú Hòa",
                       heading: i % 4 == 0 ? nil : Double(i % 360) + 0.25, fov: 90.5, range: 12.75 + Double(i % 50),
                       mountHeight: i % 5 == 0 ? nil : 3.5, ownerKind: OwnerKind.allCases[i % OwnerKind.allCases.count],
                       ownerName: i % 6 == 0 ? nil : "Nguyễn Văn \(i)", ownerPhone: i % 7 == 0 ? nil : "09\(i)",
                       schedule: i % 2 == 0 ? .always : .daily(start: 18 * 60 + i % 60, end: 6 * 60),
                       retentionDays: 1 + i % 3650, status: CameraStatus.allCases[i % CameraStatus.allCases.count],
                       createdAt: base.addingTimeInterval(Double(i)), updatedAt: base.addingTimeInterval(Double(i) + 0.5),
                       version: version)
        c.ownerID = i % 3 == 1 ? nil : Int64(i)
        c.verifiedBy = i % 2 == 0 ? "registrar-\(i)" : nil
        c.verifiedAt = i % 2 == 0 ? base.addingTimeInterval(-Double(i)) : nil
        c.statusReason = i % 9 == 0 ? "lý do \(i)" : nil
        // A text longer than 127 bytes needs a two-byte length.
        if i % 11 == 0 { c.address = String(repeating: "đường ", count: 40) + "\(i)" }
        return c
    }

    /// Ids in shuffled order, some longer than 16 bytes and sharing their first 16.
    static func ids() -> [String] {
        var ids = (0..<300).map { "BC-\(String(format: "%05d", ($0 * 7919) % 300))" }
        ids += ["LONG-ID-PREFIX-0000-B", "LONG-ID-PREFIX-0000-A", "LONG-ID-PREFIX-0000", "A", "Z_9", "BC-"]
        // The longest id a record holds (16 bytes) and one byte more.
        ids += ["SIXTEEN-BYTES-ID", "SEVENTEEN-BYTES-I"]
        return ids
    }

    @Test("every member survives packing; the id index lists the slots in id order")
    func roundTrip() throws {
        let cams = Self.ids().enumerated().map { Self.camera($0.element, $0.offset) }
        let table = try CameraTable(cameras: cams)
        #expect(table.count == cams.count)
        let sorted = cams.sorted { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }
        for (rank, c) in sorted.enumerated() {
            let slot = table.slot(rank: rank)
            #expect(table.camera(at: slot) == c)
            #expect(table.id(at: slot) == c.id)
            #expect(table.slot(of: c.id) == slot)
            // A short id is also in the record, a long one only in the text.
            #expect(Int(table.records[slot].idCount) == (c.id.utf8.count <= 16 ? c.id.utf8.count : 0), "\(c.id)")
            let ref = CameraRef(table: table, slot: slot)
            #expect(ref.camera == c)
            #expect(ref.id == c.id && ref.lat == c.lat && ref.lon == c.lon && ref.heading == c.heading)
            #expect(ref.fov == c.fov && ref.range == c.range && ref.status == c.status && ref.siteKind == c.siteKind)
            #expect(ref.ownerKind == c.ownerKind && ref.retentionDays == c.retentionDays && ref.schedule == c.schedule)
            #expect(ref.ownerID == c.ownerID)
            for (member, value) in [(CameraText.id, Optional(c.id)), (.address, c.address), (.ward, c.ward),
                                    (.ownerName, c.ownerName), (.ownerPhone, c.ownerPhone),
                                    (.verifiedBy, c.verifiedBy), (.statusReason, c.statusReason)] {
                let packed = ref.withUTF8(member) { $0.map { String(decoding: $0, as: UTF8.self) } }
                let boxed = CameraRef(c).withUTF8(member) { $0.map { String(decoding: $0, as: UTF8.self) } }
                #expect(packed == value, "\(member)")
                #expect(boxed == value, "\(member)")
            }
            let now = Self.base.addingTimeInterval(86_400)
            let w = IncidentWindow(instant: Self.base.addingTimeInterval(3600))
            #expect(ref.footage(during: w, now: now) == c.footage(during: w, now: now))
            // The answer's view (one walk of the text) reads the same, packed and boxed.
            for view in [ref, CameraRef(c)] {
                view.withView { v in
                    func text(_ u: UnsafeBufferPointer<UInt8>?) -> String? { u.map { String(decoding: $0, as: UTF8.self) } }
                    #expect(text(v.id) == c.id && text(v.address) == c.address && text(v.ward) == c.ward)
                    #expect(text(v.ownerName) == c.ownerName && text(v.ownerPhone) == c.ownerPhone)
                    #expect(v.lat == c.lat && v.lon == c.lon && v.heading == c.heading && v.fov == c.fov && v.range == c.range)
                    #expect(v.status == c.status && v.siteKind == c.siteKind && v.ownerKind == c.ownerKind)
                    #expect(v.retentionDays == c.retentionDays && v.schedule == c.schedule && v.ownerID == c.ownerID)
                }
            }
            // A view read only as far as the members an answer asks for: those read the same, the
            // later ones of a table slot stay nil.
            let order: [CameraText] = [.id, .address, .ward, .ownerName, .ownerPhone]
            for last in order {
                ref.withView(through: last) { v in
                    func text(_ u: UnsafeBufferPointer<UInt8>?) -> String? { u.map { String(decoding: $0, as: UTF8.self) } }
                    let expected: [String?] = [c.id, c.address, c.ward, c.ownerName, c.ownerPhone].enumerated().map { $0.offset <= last.rawValue ? $0.element : nil }
                    #expect([text(v.id), text(v.address), text(v.ward), text(v.ownerName), text(v.ownerPhone)] == expected, "\(last)")
                    #expect(v.lat == c.lat && v.ownerID == c.ownerID)
                }
            }
            let sector = try ref.sector(), own = try c.sector()
            #expect(sector.lat == own.lat && sector.lon == own.lon && sector.heading == own.heading && sector.fov == own.fov && sector.range == own.range)
        }
        #expect(table.slot(of: "BC-99999") == nil)
        #expect(table.slot(of: "") == nil)
        #expect(table.slot(of: "LONG-ID-PREFIX-0000-C") == nil)
    }

    @Test("an id given twice keeps its highest version, the later on a tie")
    func duplicates() throws {
        var a1 = Self.camera("BC-1", 1, version: 3)
        let a2 = Self.camera("BC-1", 2, version: 2)
        var b1 = Self.camera("BC-2", 3, version: 5)
        var b2 = Self.camera("BC-2", 4, version: 5)
        a1.address = "kept"
        b1.address = "first"
        b2.address = "second"
        let table = try CameraTable(cameras: [a1, b1, a2, b2])
        #expect(table.count == 2)
        #expect(table.camera(at: table.slot(of: "BC-1")!).address == "kept")
        #expect(table.camera(at: table.slot(of: "BC-2")!).address == "second")
    }

    @Test("a record is one 64-byte cache line (the id last), the rest 40 bytes, a position 16, and text beyond the 32-bit offsets is refused with a typed error")
    func layoutAndCapacity() throws {
        #expect(MemoryLayout<CameraTable.Record>.stride == 64)
        #expect(MemoryLayout<CameraTable.Record>.offset(of: \CameraTable.Record.id) == CameraTable.idOffset)
        #expect(CameraTable.idOffset + CameraTable.inlineIDBytes == MemoryLayout<CameraTable.Record>.size)
        #expect(MemoryLayout<CameraTable.Extra>.stride == 40)
        #expect(MemoryLayout<CameraTable.Position>.stride == 16)
        // The records start on a cache line, small table or large.
        for n in [1, 3, 100_000] {
            let records = CameraTable.allocate(CameraTable.Record.self, count: n)
            defer { free(records.baseAddress) }
            #expect(Int(bitPattern: records.baseAddress) % 64 == 0, "\(n)")
        }
        #expect(throws: RegistryError.self) {
            _ = try CameraTable.Builder(capacity: 1, textBytes: CameraTable.maximumTextBytes + 1)
        }
        do {
            _ = try CameraTable.Builder(capacity: 1, textBytes: CameraTable.maximumTextBytes + 1)
        } catch let e as RegistryError {
            #expect(e.code == .capacity)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("firstRank(after:) is the rank of the first id greater than the given one")
    func firstRankAfter() throws {
        let table = try CameraTable(cameras: ["B", "D", "F"].enumerated().map { Self.camera($0.element, $0.offset) })
        #expect(table.firstRank(after: "") == 0)
        #expect(table.firstRank(after: "A") == 0)
        #expect(table.firstRank(after: "B") == 1)
        #expect(table.firstRank(after: "C") == 1)
        #expect(table.firstRank(after: "F") == 3)
        #expect(table.firstRank(after: "Z") == 3)
        #expect((0..<3).map { table.id(at: table.slot(rank: $0)) } == ["B", "D", "F"])
    }

    /// The records lie in space order (Hilbert keys never go down from slot to slot), the id
    /// index is a permutation of the slots, and cameras close in space are close in memory:
    /// built, merged, and packed from an index cache alike.
    @Test("records in space order, with a complete id index")
    func spaceOrder() throws {
        var rng = SeededRandom(seed: 77)
        let cams = (0..<3000).map { i in
            var c = Self.camera("S-\(String(format: "%05d", (i * 7919) % 3000))", i)
            c.lat = Double.random(in: 10.9...11.2, using: &rng)
            c.lon = Double.random(in: 106.5...106.8, using: &rng)
            return c
        }
        func check(_ table: CameraTable, _ expected: [Camera], sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(table.count == expected.count, sourceLocation: sourceLocation)
            let keys = (0..<table.count).map { CameraTable.hilbertKey(lat: table.lat($0), lon: table.lon($0)) }
            #expect(zip(keys, keys.dropFirst()).allSatisfy { $0 <= $1 }, sourceLocation: sourceLocation)
            #expect(Set((0..<table.count).map { table.slot(rank: $0) }).count == table.count, sourceLocation: sourceLocation)
            let sorted = expected.sorted { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }
            #expect((0..<table.count).map { table.camera(at: table.slot(rank: $0)) } == sorted, sourceLocation: sourceLocation)
        }
        let table = try CameraTable(cameras: cams)
        check(table, cams)
        // Neighbours in memory are near in space: the median gap between consecutive slots is
        // far below the typical distance between two random cameras here (~15 km).
        var gaps = (1..<table.count).map { Geodesic.wgs84.distance(lat1: table.lat($0 - 1), lon1: table.lon($0 - 1), lat2: table.lat($0), lon2: table.lon($0)) }
        gaps.sort()
        #expect(gaps[gaps.count / 2] < 1_000, "median gap \(gaps[gaps.count / 2]) m")
        // Merged: changes (one moved far away) and new cameras find their places in space.
        var moved = cams[5]
        moved.lat = 11.19; moved.lon = 106.79; moved.version = 2
        let added = (0..<50).map { i in
            var c = Self.camera("T-\(i)", i)
            c.lat = Double.random(in: 10.9...11.2, using: &rng)
            c.lon = Double.random(in: 106.5...106.8, using: &rng)
            return c
        }
        let merged = try table.merging([moved] + added)
        var expected = cams
        expected[5] = moved
        check(merged, expected + added)
    }

    @Test("merging replaces older versions, keeps newer held ones and adds new ids")
    func merging() throws {
        let held = (0..<50).map { Self.camera("BC-\(String(format: "%03d", $0 * 2))", $0, version: 2) }
        let table = try CameraTable(cameras: held)
        var newer = Self.camera("BC-010", 90, version: 3)
        newer.address = "newer"
        var older = Self.camera("BC-012", 91, version: 1)
        older.address = "older"
        var same = Self.camera("BC-014", 92, version: 2)
        same.address = "same version"
        var newWard = Self.camera("BC-999", 94)
        newWard.ward = "Phường Mới"
        newWard.verifiedBy = "registrar-new"
        let added = [Self.camera("BC-001", 93), newWard, Self.camera("AA", 95)]
        let merged = try table.merging([newer, older, same] + added)
        #expect(merged.count == 53)
        #expect(merged.camera(at: merged.slot(of: "BC-010")!).address == "newer")
        #expect(merged.camera(at: merged.slot(of: "BC-012")!) == held[6])
        #expect(merged.camera(at: merged.slot(of: "BC-014")!).address == "same version")
        for c in added { #expect(merged.camera(at: merged.slot(of: c.id)!) == c) }
        let ids = (0..<merged.count).map { merged.id(at: merged.slot(rank: $0)) }
        #expect(ids == ids.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        // Untouched cameras are copied whole; the source table is unchanged.
        #expect(merged.camera(at: merged.slot(of: "BC-098")!) == held[49])
        #expect(table.count == 50 && table.camera(at: table.slot(rank: 5)) == held[5])
    }

    @Test("the index lists in id order with the delta merged in, from any `after`")
    func listWithDelta() throws {
        let cams = (0..<40).map { Self.camera("BC-\(String(format: "%03d", $0))", $0) }
        let index = try CameraIndex(cameras: cams)
        var changed = cams[10]
        changed.version = 7
        changed.address = "changed"
        index.upsert(changed)
        index.upsert(Self.camera("BC-0105", 200))   // between BC-010 and BC-011
        index.upsert(Self.camera("AAA", 201))
        let all = index.list(after: nil, limit: .max) { _ in true }
        #expect(all.count == 42)
        #expect(all.map(\.id) == all.map(\.id).sorted())
        #expect(all.first?.id == "AAA")
        #expect(all.first { $0.id == "BC-010" }?.address == "changed")
        let page = index.list(after: "BC-010", limit: 3) { _ in true }
        #expect(page.map(\.id) == ["BC-0105", "BC-011", "BC-012"])
        let filtered = index.list(after: "BC-005", limit: 2) { $0.status == .active }
        let expected = all.filter { $0.id > "BC-005" && $0.status == .active }.prefix(2).map(\.id)
        #expect(filtered.map(\.id) == Array(expected))
        #expect(index.count == 42)
        #expect(index.camera(id: "BC-010")?.address == "changed")
        #expect(index.camera(id: "BC-0105") != nil)
        // After a rebuild the same answers come from the table alone.
        try index.rebuildIfNeeded()
        #expect(index.deltaCount == 0)
        #expect(index.list(after: nil, limit: .max) { _ in true } == all)
        #expect(index.camera(id: "BC-010")?.address == "changed")
    }
}
