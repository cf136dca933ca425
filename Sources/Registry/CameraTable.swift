import Foundation
import Geo

/// The text members of a camera, in the order a ``CameraTable`` stores them.
public enum CameraText: Int, Sendable, CaseIterable {
    case id = 0, address, ward, ownerName, ownerPhone, verifiedBy, statusReason

    /// Members with few distinct values (a registry has some thousands of wards and registrars):
    /// the table stores each distinct value once and a camera refers to it by number. (The
    /// status reason is free text, so it stays with the camera.)
    var isShared: Bool { self == .ward || self == .verifiedBy }
}

/// The cameras of an index snapshot, packed: one fixed-size record per camera in one array and
/// all their text in one byte arena, laid out in space order (along a Hilbert curve of their
/// positions), with an id index beside them (``byID``: slots in id order, bytewise).
///
/// A million `Camera` values cost about 280 bytes each, plus a heap object for every string
/// longer than 15 bytes, plus a dictionary from id to position; copying one for a search hit
/// retains each of its strings. Here a camera is 16 bytes of coordinates, a 64-byte record (what
/// a search and a short answer read: one cache line), 40 bytes of ``Extra`` members and its text
/// bytes (wards and registrars stored once per distinct value), a search reads
/// coordinates and status straight from those arrays, and ``CameraRef`` reads any other member
/// in place. Space order puts a search's candidates, which are neighbours, in
/// neighbouring records and text (a few cache lines and pages instead of one or two each,
/// scattered over hundreds of MiB). The id index (4 bytes a camera) makes a binary search the id
/// lookup (no dictionary) and lets ``CameraIndex/list(after:limit:where:)`` start at the
/// requested id.
///
/// Immutable once built, so it is read from any thread without locks. The positions, records,
/// id index and text are allocations owned by the table and freed in `deinit` (the one place): readers get
/// pointers into them that are valid while they hold the table. `@unchecked Sendable`: nothing
/// is written after `init`.
public final class CameraTable: @unchecked Sendable {
    /// One camera's fixed-size members that a search and a short answer read: 64 bytes, one
    /// cache line (the records start on a 64-byte boundary), the id included when it is short
    /// (nearly always): at a million cameras a search's candidates are cache misses, and with
    /// 88-byte records, the id read from the text arena, a hit cost two or three lines where it
    /// now costs one. Optional numbers use a sentinel (`NaN`, `Int64.min`), which a valid camera
    /// never holds (``Camera/validate()`` refuses non-finite numbers).
    struct Record: Sendable {
        /// Offset in the arena of the camera's text: for each ``CameraText`` in order, a LEB128
        /// varint `length + 1` (0 = nil) then the UTF-8 bytes, or for a shared member
        /// (``CameraText/isShared``) a varint `number + 1` (0 = nil) in the shared strings.
        var text: UInt32
        var status: CameraStatus
        var siteKind: SiteKind
        var ownerKind: OwnerKind
        /// Bytes of the id held in ``id`` (1…16), or 0 when it is longer: then only the text has it.
        var idCount: UInt8
        /// Minutes after midnight; `scheduleStart < 0` means 24/7.
        var scheduleStart: Int16
        var scheduleEnd: Int16
        var retentionDays: Int32
        var heading: Double      // NaN = none
        var fov: Double
        var range: Double
        var ownerID: Int64       // Int64.min = none
        /// The id's UTF-8 bytes when `idCount > 0`, zero-padded (also in the text: this is a copy
        /// beside the members an answer reads with it). The last member: see ``idOffset``.
        var id: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                 UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)
    }

    /// The longest id a record holds.
    static let inlineIDBytes = 16
    /// Where ``Record/id`` starts in a record (it is the last member).
    @inline(__always) static var idOffset: Int { MemoryLayout<Record>.size - 16 }

    /// A camera's members that only the whole camera reads (`CAMERA GET`, exports, rebuilds),
    /// apart from the records so that a record stays one cache line.
    struct Extra: Sendable {
        var mountHeight: Double  // NaN = none
        var createdAt: Double    // Date.timeIntervalSinceReferenceDate
        var updatedAt: Double
        var verifiedAt: Double   // NaN = none
        var version: Int64
    }

    /// The records, `count` of them (the allocation may be larger), in space order.
    let records: UnsafeMutableBufferPointer<Record>
    /// The rest of each camera's fixed-size members, slot by slot as the records.
    let extras: UnsafeMutableBufferPointer<Extra>

    /// A camera's coordinates (degrees, WGS84).
    struct Position {
        var lat: Double
        var lon: Double
    }

    /// The cameras' coordinates, slot by slot, 16 bytes a camera, apart from their records:
    /// what a search scans to pick its candidates. A small search reads some hundred cameras
    /// around its point to keep the twenty in its radius; when the coordinates led 104-byte
    /// records, that was a cache line or two a camera (the load of a candidate's latitude was
    /// the daemon's hottest instruction at a million cameras, 5 % of its CPU in `perf`); here it
    /// is a line per four, and only the records of cameras in the radius are read.
    let positions: UnsafeMutableBufferPointer<Position>
    /// The slots in id order: `byID[rank]` is the slot of the camera with the `rank`-th id.
    let byID: UnsafeMutableBufferPointer<UInt32>
    /// The text arena, `textCount` bytes used.
    let text: UnsafeMutableBufferPointer<UInt8>
    /// Number of cameras.
    public let count: Int
    let textCount: Int
    /// The distinct values of the shared members, one after the other; value `n` is
    /// `sharedText[sharedStarts[n]..<sharedStarts[n + 1]]`.
    let sharedText: UnsafeMutableBufferPointer<UInt8>
    /// Not an `Array`: reading an array held by the table retains its buffer, and every view of
    /// a camera reads it (see ``TableHold``).
    let sharedStarts: UnsafeMutableBufferPointer<Int>

    /// Bytes held by the records and the text (for statistics).
    public var bytes: Int { count * (MemoryLayout<Record>.stride + MemoryLayout<Extra>.stride + MemoryLayout<Position>.stride + 4) + textCount + sharedText.count + sharedStarts.count * 8 }

    private init(_ b: Builder) {
        records = b.records
        extras = b.extras
        positions = b.positions
        byID = b.byID
        text = b.text
        count = b.count
        textCount = b.textCount
        sharedText = CameraTable.allocate(UInt8.self, count: b.shared.text.count)
        _ = sharedText.initialize(from: b.shared.text)
        let starts = CameraTable.allocate(Int.self, count: b.shared.starts.count)
        _ = starts.initialize(from: b.shared.starts)
        sharedStarts = UnsafeMutableBufferPointer(start: starts.baseAddress, count: b.shared.starts.count)
    }

    deinit {
        free(records.baseAddress)
        free(extras.baseAddress)
        free(positions.baseAddress)
        free(byID.baseAddress)
        free(text.baseAddress)
        free(sharedText.baseAddress)
        free(sharedStarts.baseAddress)
    }

    /// Room for `count` values of `T`, 64-byte aligned (a cache line: a record is one), or for
    /// 4 MiB and more 2 MiB-aligned and advised as transparent huge pages: a search touches
    /// records and text at random over hundreds of MiB, and with 4 KiB pages nearly every such
    /// touch also misses the TLB. Freed with `free`.
    static func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutableBufferPointer<T> {
        let bytes = max(1, count) * MemoryLayout<T>.stride
        var raw: UnsafeMutableRawPointer?
        if bytes >= 4 << 20 {
            let huge = 2 << 20
            let rounded = (bytes + huge - 1) / huge * huge
            if posix_memalign(&raw, huge, rounded) == 0, let raw {
                _ = madvise(raw, rounded, 14 /* MADV_HUGEPAGE */)
            }
        }
        if raw == nil, posix_memalign(&raw, 64, bytes) != 0 { raw = nil }
        guard let raw else { fatalError("out of memory allocating \(bytes) bytes for the camera table") }
        return UnsafeMutableBufferPointer(start: raw.bindMemory(to: T.self, capacity: max(1, count)), count: max(1, count))
    }

    /// The most text a table holds: records address it with 32 bits (4 GiB is some 40 million
    /// cameras at today's ~100 bytes each; a record is 8 bytes smaller for it).
    public static let maximumTextBytes = Int(UInt32.max)

    /// A table of `cameras`, in space order. When an id occurs more than once, the highest
    /// version is kept (the later one on a tie). Throws ``RegistryError`` when their text exceeds
    /// ``maximumTextBytes``.
    public convenience init(cameras: [Camera]) throws {
        let order = Self.sortedUnique(cameras)
        // Through a buffer pointer: an element is borrowed, where `cameras[i]` copied a `Camera`
        // (a dozen retains and releases) — 40 % of a million-camera build.
        let b = try cameras.withUnsafeBufferPointer { all in
            var b = try Builder(capacity: order.count, textBytes: order.reduce(0) { $0 + Self.encodedTextCount(all[Int($1)]) })
            let slots = try Self.spaceOrder(count: order.count) { rank in
                let c = all[Int(order[rank])]
                return Self.hilbertKey(lat: c.lat, lon: c.lon)
            }
            for rank in slots.buffer {
                b.byID[Int(rank)] = UInt32(b.count)
                b.append(all[Int(order[Int(rank)])])
            }
            return b
        }
        self.init(b)
    }

    /// A table of `count` cameras given as raw parts, without `Camera` values, in the order
    /// given: slot `k` holds `camera(k)` (the index cache's start: its file is in space order).
    /// `idOrder()`, called once they are packed (so that a caller can sort ids meanwhile), gives
    /// the slots in id order with no id twice (the cache file's id index, checked), which
    /// becomes the id index. `textBytes` is the sum of their
    /// ``encodedTextCount(id:address:ownerName:ownerPhone:statusReason:)``; text that does not
    /// fit throws ``RegistryError`` (`index_capacity`).
    public convenience init(count: Int, textBytes: Int, camera: (Int) throws -> RawCamera,
                            idOrder: () throws -> UnsafeBufferPointer<Int32>) throws {
        var b = try Builder(capacity: count, textBytes: textBytes)
        for k in 0..<count { try b.append(try camera(k), limit: textBytes) }
        let order = try idOrder()
        precondition(order.count == count)
        for rank in 0..<count { b.byID[rank] = UInt32(order[rank]) }
        self.init(b)
    }

    /// The slot order of `count` cameras given in id order: their ranks (`0..<count`) sorted by
    /// `key(rank)`, the ``hilbertKey(lat:lon:)`` of the camera's position, ties by rank (so the
    /// order depends only on the cameras). In memory of its own (`mmap`), like the id sort's keys.
    /// The one definition of the table's space order (the index cache writes its file in it).
    public static func spaceOrder(count: Int, key: (Int) -> UInt64) throws -> ScratchBuffer<UInt32> {
        struct Key { var key: UInt64; var rank: UInt32 }
        let scratch = try ScratchBuffer<Key>(count: count)
        var keys = scratch.buffer
        for rank in 0..<count { keys[rank] = Key(key: key(rank), rank: UInt32(rank)) }
        keys.sort { $0.key != $1.key ? $0.key < $1.key : $0.rank < $1.rank }
        let slots = try ScratchBuffer<UInt32>(count: count)
        for k in 0..<count { slots.buffer[k] = keys[k].rank }
        return slots
    }

    /// The position of (lat, lon) along a Hilbert curve through a 2³² × 2³² grid over the
    /// world (about 1 cm a cell at the equator): points close on the curve are close in space,
    /// and the converse mostly holds, so sorting by it gathers neighbours.
    public static func hilbertKey(lat: Double, lon: Double) -> UInt64 {
        var x = gridX(lon: lon), y = gridY(lat: lat)
        var d: UInt64 = 0
        var s: UInt32 = 1 << 31
        var shift: UInt32 = 31
        while s > 0 {
            let rx = (x >> shift) & 1, ry = (y >> shift) & 1
            d &+= UInt64(s) &* UInt64(s) &* UInt64((3 &* rx) ^ ry)
            // Turn the quadrant so that the curve's pieces join up: in the lower half (ry = 0)
            // mirror it when on the right (rx = 1), then swap x and y. Without branches (their
            // outcomes are random: a million keys at every start from the cache). Bits above
            // `shift` change too, but are never read again.
            let flip = 0 &- (rx & (ry ^ 1))
            x ^= flip
            y ^= flip
            let swap = (x ^ y) & (0 &- (ry ^ 1))
            x ^= swap
            y ^= swap
            s >>= 1
            shift &-= 1
        }
        return d
    }

    /// The column of `lon` in the 2³² × 2³² grid of ``hilbertKey(lat:lon:)`` (clamped).
    @inline(__always) static func gridX(lon: Double) -> UInt32 { gridCell(lon, -180, 360) }
    /// The row of `lat` in the 2³² × 2³² grid of ``hilbertKey(lat:lon:)`` (clamped).
    @inline(__always) static func gridY(lat: Double) -> UInt32 { gridCell(lat, -90, 180) }

    @inline(__always) private static func gridCell(_ v: Double, _ lo: Double, _ span: Double) -> UInt32 {
        let x = (v - lo) / span * 4_294_967_296.0
        return x.isNaN || x <= 0 ? 0 : x >= 4_294_967_295.0 ? .max : UInt32(x)
    }

    /// The text bytes one camera takes in a table (an upper bound: shared members count 5).
    public static func encodedTextCount(id: Int, address: Int, ownerName: Int?, ownerPhone: Int?, statusReason: Int?) -> Int {
        func size(_ n: Int?) -> Int { n.map { varintCount($0 + 1) + $0 } ?? 1 }
        return size(id) + size(address) + 5 + size(ownerName) + size(ownerPhone) + 5 + size(statusReason)
    }

    /// This table with `changes` applied: a change replaces the held camera of the same id when
    /// its version is at least the held one's, and adds a camera whose id is not held. Records and
    /// text of untouched cameras are copied as bytes. The result is in space order again.
    public func merging(_ changes: [Camera]) throws -> CameraTable {
        guard !changes.isEmpty else { return self }
        let order = Self.sortedUnique(changes)
        // Through a buffer pointer, so that a change is borrowed, not copied (see `init(cameras:)`).
        let b = try changes.withUnsafeBufferPointer { changes in
            // The merged cameras in id order: a held slot (≥ 0) or a change (−1 − its index).
            let merged = try ScratchBuffer<Int32>(count: count + order.count)
            var n = 0
            var rank = 0
            func take(_ source: Int32) { merged.buffer[n] = source; n += 1 }
            for i in order {
                var cmp = 1
                while rank < count {
                    cmp = compareID(slot: Int(byID[rank]), with: changes[Int(i)].id)
                    if cmp >= 0 { break }
                    take(Int32(byID[rank]))
                    rank += 1
                }
                if rank < count, cmp == 0 {
                    let slot = Int(byID[rank])
                    take(extras[slot].version > Int64(changes[Int(i)].version) ? Int32(slot) : -1 - i)
                    rank += 1
                } else {
                    take(-1 - i)
                }
            }
            while rank < count {
                take(Int32(byID[rank]))
                rank += 1
            }
            let sources = UnsafeBufferPointer(rebasing: merged.buffer[..<n])
            var b = try Builder(capacity: n,
                                textBytes: textCount + order.reduce(0) { $0 + Self.encodedTextCount(changes[Int($1)]) },
                                sharedFrom: self)
            let slots = try Self.spaceOrder(count: n) { rank in
                let source = Int(sources[rank])
                return source >= 0 ? Self.hilbertKey(lat: positions[source].lat, lon: positions[source].lon)
                    : Self.hilbertKey(lat: changes[-1 - source].lat, lon: changes[-1 - source].lon)
            }
            for rank in slots.buffer {
                b.byID[Int(rank)] = UInt32(b.count)
                let source = Int(sources[Int(rank)])
                if source >= 0 { b.copy(slot: source, of: self) } else { b.append(changes[-1 - source]) }
            }
            return b
        }
        return CameraTable(b)
    }

    // MARK: Reading

    /// The slot holding `id`, by binary search of the id index.
    public func slot(of id: String) -> Int? {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            let c = compareID(slot: Int(byID[mid]), with: id)
            if c == 0 { return Int(byID[mid]) }
            if c < 0 { lo = mid + 1 } else { hi = mid }
        }
        return nil
    }

    /// The slot of the camera with the `rank`-th id (`0..<count`).
    @inline(__always) public func slot(rank: Int) -> Int { Int(byID[rank]) }

    /// The rank (place in id order) of the first id greater than `id` (the table's count when
    /// none is): ``slot(rank:)`` of it and the ranks after it list the cameras by id from there.
    public func firstRank(after id: String) -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if compareID(slot: Int(byID[mid]), with: id) <= 0 { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Compares the id in `slot` with `id`, bytewise: negative, zero or positive.
    func compareID(slot: Int, with id: String) -> Int {
        var key = id
        let h = textPointer(slot: slot, .id)!
        return key.withUTF8 { k in
            let n = min(h.count, k.count)
            let c = n == 0 ? 0 : Int(memcmp(h.baseAddress!, k.baseAddress!, n))
            return c != 0 ? c : h.count - k.count
        }
    }

    @inline(__always) func lat(_ slot: Int) -> Double { positions[slot].lat }
    @inline(__always) func lon(_ slot: Int) -> Double { positions[slot].lon }
    @inline(__always) func isRetired(_ slot: Int) -> Bool { records[slot].status == .retired }

    /// The UTF-8 bytes of one text member of the camera in `slot` (`nil` when the member is
    /// absent), in place: valid while the caller holds this table.
    func textPointer(slot: Int, _ member: CameraText) -> UnsafeBufferPointer<UInt8>? {
        var cursor = TextCursor(table: self, slot: slot)
        for k in 0..<member.rawValue { _ = cursor.next(CameraText(rawValue: k)!) }
        return cursor.next(member)
    }

    /// Reads a camera's text members in their stored order (see `Record.text`), one after the
    /// other, from one pass over the arena.
    struct TextCursor {
        /// Not retained: a cursor lives inside a call on its table.
        unowned(unsafe) let table: CameraTable
        var at: Int

        init(table: CameraTable, slot: Int) {
            self.table = table
            at = Int(table.records[slot].text)
        }

        /// The next member, which must be `member` (`nil` when the camera has none).
        @inline(__always)
        mutating func next(_ member: CameraText) -> UnsafeBufferPointer<UInt8>? {
            let text = UnsafeBufferPointer(table.text)
            let n = CameraTable.readVarint(text, &at)
            guard n > 0 else { return nil }
            if member.isShared {
                return UnsafeBufferPointer(rebasing: UnsafeBufferPointer(table.sharedText)[table.sharedStarts[n - 1]..<table.sharedStarts[n]])
            }
            defer { at += n - 1 }
            return UnsafeBufferPointer(rebasing: text[at..<(at + n - 1)])
        }
    }

    /// Every member an answer reads of the camera in `slot`, the text found in one walk of the
    /// arena (``textPointer(slot:_:)`` walks it once per member), as far as `last`: the text
    /// members after it stay `nil` (an answer of ids and distances reads only the id). Valid
    /// while the caller holds this table.
    @usableFromInline
    func view(slot: Int, through last: CameraText) -> CameraView {
        let r = records.baseAddress! + slot
        var v = CameraView(record: r.pointee, position: positions[slot])
        // An answer of ids and numbers reads the id from the record: the text is not touched.
        let n = Int(r.pointee.idCount)
        if last == .id, n > 0 {
            v.id = UnsafeBufferPointer(start: UnsafeRawPointer(r).advanced(by: Self.idOffset).assumingMemoryBound(to: UInt8.self), count: n)
            return v
        }
        var cursor = TextCursor(table: self, slot: slot)
        v.id = cursor.next(.id) ?? UnsafeBufferPointer(start: nil, count: 0)
        guard last.rawValue >= CameraText.address.rawValue else { return v }
        v.address = cursor.next(.address)
        guard last.rawValue >= CameraText.ward.rawValue else { return v }
        v.ward = cursor.next(.ward)
        guard last.rawValue >= CameraText.ownerName.rawValue else { return v }
        v.ownerName = cursor.next(.ownerName)
        guard last.rawValue >= CameraText.ownerPhone.rawValue else { return v }
        v.ownerPhone = cursor.next(.ownerPhone)
        return v
    }

    /// Touches the start of the text of `slots` in one loop of independent loads (their records,
    /// which say where it is, a search has read already). At a million cameras nearly every one
    /// is a cache miss; taken here together they overlap, instead of one by one while an answer
    /// is written.
    func prefetch<S: Sequence>(_ slots: S) where S.Element == Int {
        var sum: UInt64 = 0
        for slot in slots {
            let at = Int(records[slot].text)
            sum &+= UInt64(text[at])
            if at + 64 < textCount { sum &+= UInt64(text[at + 64]) }
        }
        cameraTableSink(sum)
    }

    /// One text member as a `String` (`nil` when absent).
    func string(slot: Int, _ member: CameraText) -> String? {
        textPointer(slot: slot, member).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The id in `slot`.
    public func id(at slot: Int) -> String { string(slot: slot, .id)! }

    func schedule(_ slot: Int) -> RecordingSchedule {
        let r = records[slot]
        return r.scheduleStart < 0 ? .always : .daily(start: Int(r.scheduleStart), end: Int(r.scheduleEnd))
    }

    /// The camera in `slot`, as a value.
    public func camera(at slot: Int) -> Camera {
        let r = records[slot], x = extras[slot]
        var c = Camera(id: id(at: slot), lat: positions[slot].lat, lon: positions[slot].lon, siteKind: r.siteKind,
                       address: string(slot: slot, .address) ?? "", ward: string(slot: slot, .ward) ?? "",
                       heading: r.heading.isNaN ? nil : r.heading, fov: r.fov, range: r.range,
                       mountHeight: x.mountHeight.isNaN ? nil : x.mountHeight, ownerKind: r.ownerKind,
                       ownerName: string(slot: slot, .ownerName), ownerPhone: string(slot: slot, .ownerPhone),
                       schedule: schedule(slot), retentionDays: Int(r.retentionDays), status: r.status,
                       createdAt: Date(timeIntervalSinceReferenceDate: x.createdAt),
                       updatedAt: Date(timeIntervalSinceReferenceDate: x.updatedAt), version: Int(x.version))
        c.ownerID = r.ownerID == .min ? nil : r.ownerID
        c.verifiedBy = string(slot: slot, .verifiedBy)
        c.verifiedAt = x.verifiedAt.isNaN ? nil : Date(timeIntervalSinceReferenceDate: x.verifiedAt)
        c.statusReason = string(slot: slot, .statusReason)
        return c
    }

    // MARK: Building

    @inline(__always) static func readVarint(_ t: UnsafeBufferPointer<UInt8>, _ at: inout Int) -> Int {
        var v = 0, shift = 0
        while true {
            let b = t[at]
            at += 1
            v |= Int(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }

    static func varintCount(_ v: Int) -> Int {
        var n = 1, v = v
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    /// At most the arena bytes of `c`'s text (a shared member counts its largest varint).
    static func encodedTextCount(_ c: Camera) -> Int {
        encodedTextCount(id: c.id.utf8.count, address: c.address.utf8.count, ownerName: c.ownerName?.utf8.count,
                         ownerPhone: c.ownerPhone?.utf8.count, statusReason: c.statusReason?.utf8.count)
    }

    /// The distinct values of the shared text members, numbered in order of first use.
    struct SharedStrings {
        var text: [UInt8] = []
        var starts: [Int] = [0]
        var numbers: [String: Int] = [:]

        /// The number of the value with these bytes: found by comparing bytes while there are
        /// few distinct values (wards, registrars), through a `String` otherwise.
        mutating func number(bytes: UnsafeRawBufferPointer) -> Int {
            if starts.count <= 65 {
                for n in 0..<(starts.count - 1) where starts[n + 1] - starts[n] == bytes.count {
                    let same = text.withUnsafeBytes { t in
                        bytes.count == 0 || memcmp(t.baseAddress! + starts[n], bytes.baseAddress!, bytes.count) == 0
                    }
                    if same { return n }
                }
            }
            return number(String(decoding: bytes, as: UTF8.self))
        }

        /// The number of `s` (added when new).
        mutating func number(_ s: String) -> Int {
            if let n = numbers[s] { return n }
            let n = starts.count - 1
            numbers[s] = n
            text.append(contentsOf: s.utf8)
            starts.append(text.count)
            return n
        }
    }

    /// Fills a table's allocations, sized up front (at most `capacity` cameras and
    /// `textBytes` bytes of text); the table takes them over.
    struct Builder {
        let records: UnsafeMutableBufferPointer<Record>
        let extras: UnsafeMutableBufferPointer<Extra>
        let positions: UnsafeMutableBufferPointer<Position>
        /// The id index; the builder's user sets each camera's entry (``CameraTable/byID``).
        let byID: UnsafeMutableBufferPointer<UInt32>
        let text: UnsafeMutableBufferPointer<UInt8>
        var count = 0
        var textCount = 0

        var shared = SharedStrings()

        /// Room for `capacity` cameras and `textBytes` of text; with `sharedFrom`, its shared
        /// strings keep their numbers, so that its cameras' text is copied as bytes.
        init(capacity: Int, textBytes: Int, sharedFrom source: CameraTable? = nil) throws {
            guard textBytes <= CameraTable.maximumTextBytes else {
                throw RegistryError(.capacity, "the cameras' text (\(textBytes >> 20) MiB) exceeds the index's limit of 4 GiB")
            }
            records = CameraTable.allocate(Record.self, count: capacity)
            extras = CameraTable.allocate(Extra.self, count: capacity)
            positions = CameraTable.allocate(Position.self, count: capacity)
            byID = CameraTable.allocate(UInt32.self, count: capacity)
            text = CameraTable.allocate(UInt8.self, count: textBytes)
            if let source {
                for n in 0..<(source.sharedStarts.count - 1) {
                    let bytes = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(source.sharedText)[source.sharedStarts[n]..<source.sharedStarts[n + 1]])
                    _ = shared.number(String(decoding: bytes, as: UTF8.self))
                }
            }
        }

        mutating func varint(_ v: Int) {
            var v = v
            while v >= 0x80 {
                text[textCount] = UInt8(v & 0x7F) | 0x80
                textCount += 1
                v >>= 7
            }
            text[textCount] = UInt8(v)
            textCount += 1
        }

        mutating func put(_ s: String?) {
            guard var s else { varint(0); return }
            s.withUTF8 { put(bytes: UnsafeRawBufferPointer($0)) }
        }

        mutating func putShared(_ s: String?) {
            guard let s else { varint(0); return }
            varint(shared.number(s) + 1)
        }

        mutating func put(bytes u: UnsafeRawBufferPointer?) {
            guard let u else { varint(0); return }
            varint(u.count + 1)
            guard u.count > 0 else { return }
            UnsafeMutableRawPointer(text.baseAddress! + textCount).copyMemory(from: u.baseAddress!, byteCount: u.count)
            textCount += u.count
        }

        mutating func putShared(bytes u: UnsafeRawBufferPointer?) {
            guard let u else { varint(0); return }
            varint(shared.number(bytes: u) + 1)
        }

        mutating func append(_ c: Camera) {
            let start = textCount
            put(c.id)
            put(c.address)
            putShared(c.ward)
            put(c.ownerName)
            put(c.ownerPhone)
            putShared(c.verifiedBy)
            put(c.statusReason)
            appendRecord(RawCamera(scalarsOf: c), text: start)
        }

        /// Appends a camera given as raw parts; throws when its text would pass `limit` bytes.
        mutating func append(_ c: RawCamera, limit: Int) throws {
            let need = CameraTable.encodedTextCount(id: c.id.count, address: c.address.count, ownerName: c.ownerName?.count,
                                                    ownerPhone: c.ownerPhone?.count, statusReason: c.statusReason?.count)
            guard textCount + need <= limit else {
                throw RegistryError(.capacity, "the cameras' text is longer than announced (\(limit) bytes)")
            }
            let start = textCount
            put(bytes: c.id)
            put(bytes: c.address)
            putShared(bytes: c.ward)
            put(bytes: c.ownerName)
            put(bytes: c.ownerPhone)
            putShared(bytes: c.verifiedBy)
            put(bytes: c.statusReason)
            appendRecord(c, text: start)
        }

        /// The record of `c`'s scalar members, its text starting at `text`.
        private mutating func appendRecord(_ c: RawCamera, text start: Int) {
            let schedule: (Int16, Int16)
            switch c.schedule {
            case .always: schedule = (-1, -1)
            case .daily(let s, let e): schedule = (Int16(s), Int16(e))
            }
            (positions.baseAddress! + count).initialize(to: Position(lat: c.lat, lon: c.lon))
            // The id as just written to the text (the first member), copied into the record.
            var at = start
            let idBytes = CameraTable.readVarint(UnsafeBufferPointer(text), &at) - 1
            let inline = idBytes >= 1 && idBytes <= CameraTable.inlineIDBytes
            var record = Record(
                text: UInt32(start),
                status: c.status, siteKind: c.siteKind, ownerKind: c.ownerKind, idCount: inline ? UInt8(idBytes) : 0,
                scheduleStart: schedule.0, scheduleEnd: schedule.1, retentionDays: Int32(clamping: c.retentionDays),
                heading: c.heading ?? .nan, fov: c.fov, range: c.range, ownerID: c.ownerID ?? .min,
                id: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            if inline {
                withUnsafeMutableBytes(of: &record.id) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(text)[at..<(at + idBytes)])) }
            }
            (records.baseAddress! + count).initialize(to: record)
            (extras.baseAddress! + count).initialize(to: Extra(
                mountHeight: c.mountHeight ?? .nan, createdAt: c.createdAt, updatedAt: c.updatedAt,
                verifiedAt: c.verifiedAt ?? .nan, version: c.version))
            count += 1
        }

        /// Copies the camera in `slot` of `table` (record and text bytes).
        mutating func copy(slot: Int, of table: CameraTable) {
            var r = table.records[slot]
            let from = Int(r.text)
            let t = UnsafeBufferPointer(table.text)
            var end = from
            for member in CameraText.allCases {
                let n = CameraTable.readVarint(t, &end)
                if n > 0, !member.isShared { end += n - 1 }
            }
            r.text = UInt32(textCount)
            UnsafeMutableRawPointer(text.baseAddress! + textCount).copyMemory(from: t.baseAddress! + from, byteCount: end - from)
            textCount += end - from
            (records.baseAddress! + count).initialize(to: r)
            (extras.baseAddress! + count).initialize(to: table.extras[slot])
            (positions.baseAddress! + count).initialize(to: table.positions[slot])
            count += 1
        }
    }

    /// The first 16 bytes of an id as two big-endian words (zero-padded): they order as the bytes do.
    @inline(__always)
    static func prefixKey<S: Sequence>(_ bytes: S) -> (UInt64, UInt64) where S.Element == UInt8 {
        var a: UInt64 = 0, b: UInt64 = 0
        var k = 0
        for byte in bytes {
            if k == 16 { break }
            if k < 8 { a |= UInt64(byte) << (56 - 8 * k) } else { b |= UInt64(byte) << (56 - 8 * (k - 8)) }
            k += 1
        }
        return (a, b)
    }

    /// Indexes of `cameras` sorted by id, one per id: the highest version (the later on a tie).
    static func sortedUnique(_ cameras: [Camera]) -> [Int32] {
        // Sort keys: the id's first 16 bytes, big-endian (zero-padded), then the whole id on a tie.
        struct Key { var a: UInt64; var b: UInt64; var index: Int32 }
        var keys: [Key] = []
        keys.reserveCapacity(cameras.count)
        for (i, c) in cameras.enumerated() {
            let (a, b) = prefixKey(c.id.utf8)
            keys.append(Key(a: a, b: b, index: Int32(i)))
        }
        func less(_ x: Key, _ y: Key) -> Bool {
            if x.a != y.a { return x.a < y.a }
            if x.b != y.b { return x.b < y.b }
            let ix = cameras[Int(x.index)].id, iy = cameras[Int(y.index)].id
            if ix.utf8.count > 16 || iy.utf8.count > 16, ix != iy { return ix.utf8.lexicographicallyPrecedes(iy.utf8) }
            return x.index < y.index
        }
        keys.sort(by: less)
        var order: [Int32] = []
        order.reserveCapacity(keys.count)
        var i = 0
        while i < keys.count {
            // A run of the same id: keep the highest version, the later one on a tie.
            var best = keys[i].index
            var j = i + 1
            while j < keys.count, keys[j].a == keys[i].a, keys[j].b == keys[i].b,
                  cameras[Int(keys[j].index)].id == cameras[Int(keys[i].index)].id {
                if cameras[Int(keys[j].index)].version >= cameras[Int(best)].version { best = keys[j].index }
                j += 1
            }
            order.append(best)
            i = j
        }
        return order
    }
}

/// A reader's reference to a ``CameraTable``: what a ``CameraRef`` to a slot retains. A snapshot
/// keeps one per ``ThreadStripe``, so that the references counted for every hit of every answer
/// are counted on the answering thread's own hold, not on the one table all threads share.
@usableFromInline
final class TableHold: Sendable {
    @usableFromInline let table: CameraTable
    /// Makes a hold 128 bytes, so that two holds never share a cache line.
    private let padding: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    init(_ table: CameraTable) { self.table = table }
}

/// One camera of the index, read in place: a slot of a ``CameraTable``, or a camera value (a
/// recent change not yet folded into a table). Copying one costs one reference, not a
/// `Camera`'s strings; ``camera`` builds the full value when a caller needs it.
public struct CameraRef: Sendable {
    /// A camera value kept by reference, so that a `CameraRef` stays three words.
    @usableFromInline
    final class Box: Sendable {
        @usableFromInline let camera: Camera
        init(_ camera: Camera) { self.camera = camera }
    }

    @usableFromInline
    enum Storage: Sendable {
        /// A slot of the hold's table. The hold, not the table, is retained: one per thread
        /// (``IndexSnapshot/ref(_:)``), so copies of refs on different threads do not
        /// contend for one reference count.
        case slot(TableHold, Int)
        case value(Box)
    }

    @usableFromInline let storage: Storage

    /// A reference to a camera value.
    public init(_ camera: Camera) { storage = .value(Box(camera)) }

    init(hold: TableHold, slot: Int) { storage = .slot(hold, slot) }

    /// A ref with a hold of its own (tests, and callers outside a snapshot).
    init(table: CameraTable, slot: Int) { storage = .slot(TableHold(table), slot) }

    /// The table slot, when this refers to one.
    var slot: Int? {
        if case .slot(_, let s) = storage { return s }
        return nil
    }

    /// Reads one member: from the packed record for a table slot, from the value otherwise.
    @inline(__always)
    private func read<T>(_ packed: (CameraTable, Int) -> T, _ value: (Camera) -> T) -> T {
        switch storage {
        case .slot(let h, let s): return packed(h.table, s)
        case .value(let b): return value(b.camera)
        }
    }

    /// The whole camera.
    public var camera: Camera { read({ $0.camera(at: $1) }, { $0 }) }
    /// See ``Camera/id``.
    public var id: String { read({ $0.id(at: $1) }, \.id) }
    /// See ``Camera/lat``.
    public var lat: Double { read({ $0.positions[$1].lat }, \.lat) }
    /// See ``Camera/lon``.
    public var lon: Double { read({ $0.positions[$1].lon }, \.lon) }
    /// See ``Camera/heading``; the table stores "none" as NaN.
    public var heading: Double? { read({ let h = $0.records[$1].heading; return h.isNaN ? nil : h }, \.heading) }
    /// See ``Camera/fov``.
    public var fov: Double { read({ $0.records[$1].fov }, \.fov) }
    /// See ``Camera/range``.
    public var range: Double { read({ $0.records[$1].range }, \.range) }
    /// See ``Camera/status``.
    public var status: CameraStatus { read({ $0.records[$1].status }, \.status) }
    /// See ``Camera/siteKind``.
    public var siteKind: SiteKind { read({ $0.records[$1].siteKind }, \.siteKind) }
    /// See ``Camera/ownerKind``.
    public var ownerKind: OwnerKind { read({ $0.records[$1].ownerKind }, \.ownerKind) }
    /// See ``Camera/retentionDays``.
    public var retentionDays: Int { read({ Int($0.records[$1].retentionDays) }, \.retentionDays) }
    /// See ``Camera/schedule``.
    public var schedule: RecordingSchedule { read({ $0.schedule($1) }, \.schedule) }
    /// See ``Camera/ownerID``; the table stores "none" as `Int64.min`.
    public var ownerID: Int64? { read({ let o = $0.records[$1].ownerID; return o == .min ? nil : o }, \.ownerID) }

    /// Calls `body` with the UTF-8 bytes of a text member (`nil` when absent), without making a
    /// `String` for a table slot. (An answer reads its hits through ``withView(_:)``.)
    public func withUTF8<R>(_ member: CameraText, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        switch storage {
        case .slot(let h, let s):
            return withExtendedLifetime(h) { body(h.table.textPointer(slot: s, member)) }
        case .value(let b):
            let c = b.camera
            let value: String?
            switch member {
            case .id: value = c.id
            case .address: value = c.address
            case .ward: value = c.ward
            case .ownerName: value = c.ownerName
            case .ownerPhone: value = c.ownerPhone
            case .verifiedBy: value = c.verifiedBy
            case .statusReason: value = c.statusReason
            }
            guard var v = value else { return body(nil) }
            return v.withUTF8 { body($0) }
        }
    }

    /// This camera's field of view (see ``Camera/sector()``); a table slot's record is read once.
    public func sector() throws -> Sector {
        switch storage {
        case .slot(let h, let s):
            let r = h.table.records[s], p = h.table.positions[s]
            return try Sector(lat: p.lat, lon: p.lon, heading: r.heading.isNaN ? nil : r.heading, fov: r.fov, range: r.range)
        case .value(let b):
            return try b.camera.sector()
        }
    }

    /// The footage state for an incident window (see ``Camera/footage(during:now:timeZone:)``).
    public func footage(during window: IncidentWindow?, now: Date, timeZone: ScheduleTimeZone = .hoChiMinh) -> FootageStatus {
        FootageStatus.of(status: status, retentionDays: retentionDays, schedule: schedule,
                         during: window, now: now, timeZone: timeZone)
    }
}

/// One camera's members as an answer reads them, all at once: the numbers copied from its
/// record, the text as UTF-8 bytes in place (``CameraRef/withView(_:)``). The text pointers are
/// valid only inside the `withView` call that made the view; a view is never stored.
public struct CameraView {
    public var lat: Double, lon: Double
    /// `nil`: no heading (a 360° camera).
    public var heading: Double?
    public var fov: Double, range: Double
    public var status: CameraStatus
    public var siteKind: SiteKind
    public var ownerKind: OwnerKind
    public var retentionDays: Int
    public var schedule: RecordingSchedule
    public var ownerID: Int64?
    public var id = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
    public var address: UnsafeBufferPointer<UInt8>?
    public var ward: UnsafeBufferPointer<UInt8>?
    public var ownerName: UnsafeBufferPointer<UInt8>?
    public var ownerPhone: UnsafeBufferPointer<UInt8>?

    init(record r: CameraTable.Record, position p: CameraTable.Position) {
        lat = p.lat; lon = p.lon
        heading = r.heading.isNaN ? nil : r.heading
        fov = r.fov; range = r.range
        status = r.status; siteKind = r.siteKind; ownerKind = r.ownerKind
        retentionDays = Int(r.retentionDays)
        schedule = r.scheduleStart < 0 ? .always : .daily(start: Int(r.scheduleStart), end: Int(r.scheduleEnd))
        ownerID = r.ownerID == .min ? nil : r.ownerID
    }

    init(camera c: Camera) {
        lat = c.lat; lon = c.lon; heading = c.heading; fov = c.fov; range = c.range
        status = c.status; siteKind = c.siteKind; ownerKind = c.ownerKind
        retentionDays = c.retentionDays; schedule = c.schedule; ownerID = c.ownerID
    }
}

extension CameraRef {
    /// Calls `body` with every member an answer reads, found at once: for a table slot one walk
    /// of its text (instead of one per member), which stops after `last` (the text members after
    /// it are then `nil`: pass the last one the caller reads); for a camera value, its strings
    /// copied into one scratch buffer for the call.
    @inlinable
    public func withView<R>(through last: CameraText = .ownerPhone, _ body: (CameraView) -> R) -> R {
        switch storage {
        case .slot(let h, let s):
            return withExtendedLifetime(h) { body(h.table.view(slot: s, through: last)) }
        case .value(let b):
            return Self.view(of: b.camera, body)
        }
    }

    @usableFromInline
    static func view<R>(of c: Camera, _ body: (CameraView) -> R) -> R {
        var bytes: [UInt8] = []
        var ranges: [Range<Int>?] = []
        for text in [c.id, c.address, c.ward, c.ownerName, c.ownerPhone] as [String?] {
            guard let text else { ranges.append(nil); continue }
            let start = bytes.count
            bytes.append(contentsOf: text.utf8)
            ranges.append(start..<bytes.count)
        }
        return bytes.withUnsafeBufferPointer { all in
            func part(_ i: Int) -> UnsafeBufferPointer<UInt8>? {
                ranges[i].map { UnsafeBufferPointer(rebasing: all[$0]) }
            }
            var v = CameraView(camera: c)
            v.id = part(0) ?? UnsafeBufferPointer(start: nil, count: 0)
            v.address = part(1); v.ward = part(2); v.ownerName = part(3); v.ownerPhone = part(4)
            return body(v)
        }
    }
}

/// The table an answer's hits were found in, held once for the whole answer, so that a hit can
/// name its camera by slot (``HitCamera/slot(_:)``) without a reference of its own. Valid for as
/// long as it is kept, whatever rebuilds the index meanwhile.
public struct AnswerTable: Sendable {
    /// Keeps the table alive.
    @usableFromInline let hold: TableHold
    /// The same table, read without counting a reference (a plain word, which a hit's read
    /// takes out of an optional `AnswerTable` without copying the hold).
    @usableFromInline let unretained: Unmanaged<CameraTable>
    init(hold: TableHold) {
        self.hold = hold
        unretained = Unmanaged.passUnretained(hold.table)
    }
}

/// A hit's camera: a slot of its answer's ``AnswerTable`` (no reference counted: copying,
/// reading and freeing such a hit touch no shared count), or a camera held by reference (a
/// recent change not yet in the table, or a search answered without a table). A `.slot` is
/// only ever read with the table of the answer that made it.
public enum HitCamera: Sendable {
    case slot(Int)
    case ref(CameraRef)

    /// Calls `body` with the table of a `.slot`, not counting a reference to it (the answer's
    /// table holds it meanwhile: a reference counted here was one atomic increment and one
    /// decrement a hit). A `.slot` without a table is a programming error.
    @inlinable @inline(__always)
    static func withTable<R>(_ table: AnswerTable?, _ body: (CameraTable) -> R) -> R {
        guard let t = table?.unretained else { preconditionFailure("a hit's slot read without its answer's table") }
        return t._withUnsafeGuaranteedRef(body)
    }

    /// Calls `body` with the camera's members, as ``CameraRef/withView(through:_:)``.
    @inlinable
    public func withView<R>(in table: AnswerTable?, through last: CameraText = .ownerPhone, _ body: (CameraView) -> R) -> R {
        switch self {
        case .slot(let s): return body(Self.withTable(table) { $0.view(slot: s, through: last) })
        case .ref(let r): return r.withView(through: last, body)
        }
    }

    /// The camera's id.
    public func id(in table: AnswerTable?) -> String {
        switch self {
        case .slot(let s): return Self.withTable(table) { $0.id(at: s) }
        case .ref(let r): return r.id
        }
    }

    /// The camera as a reference that stands alone (one reference counted).
    public func ref(in table: AnswerTable?) -> CameraRef {
        switch self {
        case .slot(let s):
            guard let table else { preconditionFailure("a hit's slot read without its answer's table") }
            return CameraRef(hold: table.hold, slot: s)
        case .ref(let r): return r
        }
    }

    /// The footage state for an incident window (see ``Camera/footage(during:now:timeZone:)``).
    public func footage(in table: AnswerTable?, during window: IncidentWindow?, now: Date,
                        timeZone: ScheduleTimeZone = .hoChiMinh) -> FootageStatus {
        switch self {
        case .slot(let s):
            return Self.withTable(table) { t in
                let r = t.records[s]
                return FootageStatus.of(status: r.status, retentionDays: Int(r.retentionDays), schedule: t.schedule(s),
                                        during: window, now: now, timeZone: timeZone)
            }
        case .ref(let r): return r.footage(during: window, now: now, timeZone: timeZone)
        }
    }
}

/// A radius search's answer read in place (``CameraIndex/nearInPlace(lat:lon:radius:limit:)``):
/// its hits, nearest first, and the table their slots are in.
public struct NearAnswer: Sendable {
    /// One camera found, with its ellipsoidal distance, the bearing from the camera to the
    /// searched point, and whether its field of view covers the point (as ``NearHit``).
    public struct Hit: Sendable {
        public let camera: HitCamera
        public let distance: Double
        public let bearing: Double
        public let sees: Bool
    }

    /// The table the hits' slots are in.
    public let table: AnswerTable
    /// The hits, nearest first (ties by id).
    public var hits: [Hit]
}

/// Keeps ``CameraTable/prefetch(_:)``'s loads from being optimised away.
@inline(never) @_optimize(none)
func cameraTableSink(_ value: UInt64) {}

/// A camera as raw parts, its text as UTF-8 bytes: what ``CameraTable/init(count:textBytes:id:camera:)``
/// packs without making `Camera` values (the index cache's start-up path). Times are seconds
/// since the reference date (`Date.timeIntervalSinceReferenceDate`). The byte buffers need only
/// stay valid until the table has copied them.
public struct RawCamera {
    public var id = UnsafeRawBufferPointer(start: nil, count: 0)
    public var address = UnsafeRawBufferPointer(start: nil, count: 0)
    public var ward = UnsafeRawBufferPointer(start: nil, count: 0)
    public var ownerName: UnsafeRawBufferPointer?
    public var ownerPhone: UnsafeRawBufferPointer?
    public var verifiedBy: UnsafeRawBufferPointer?
    public var statusReason: UnsafeRawBufferPointer?
    public var lat = 0.0, lon = 0.0, fov = 0.0, range = 0.0
    public var heading: Double?, mountHeight: Double?
    public var siteKind = SiteKind.other, ownerKind = OwnerKind.household, status = CameraStatus.pending
    public var schedule = RecordingSchedule.always
    public var retentionDays = 0
    public var createdAt = 0.0, updatedAt = 0.0
    public var verifiedAt: Double?
    public var version: Int64 = 0
    public var ownerID: Int64?

    public init() {}

    /// The scalar members of `c` (its text stays empty).
    init(scalarsOf c: Camera) {
        lat = c.lat; lon = c.lon; fov = c.fov; range = c.range
        heading = c.heading; mountHeight = c.mountHeight
        siteKind = c.siteKind; ownerKind = c.ownerKind; status = c.status
        schedule = c.schedule; retentionDays = c.retentionDays
        createdAt = c.createdAt.timeIntervalSinceReferenceDate; updatedAt = c.updatedAt.timeIntervalSinceReferenceDate
        verifiedAt = c.verifiedAt?.timeIntervalSinceReferenceDate
        version = Int64(c.version); ownerID = c.ownerID
    }

    /// The `Camera` value (its text decoded into strings).
    public var camera: Camera {
        func text(_ u: UnsafeRawBufferPointer) -> String { String(decoding: u, as: UTF8.self) }
        var c = Camera(id: text(id), lat: lat, lon: lon, siteKind: siteKind, address: text(address), ward: text(ward),
                       heading: heading, fov: fov, range: range, mountHeight: mountHeight, ownerKind: ownerKind,
                       ownerName: ownerName.map(text), ownerPhone: ownerPhone.map(text), schedule: schedule,
                       retentionDays: retentionDays, status: status,
                       createdAt: Date(timeIntervalSinceReferenceDate: createdAt),
                       updatedAt: Date(timeIntervalSinceReferenceDate: updatedAt), version: Int(version))
        c.ownerID = ownerID
        c.verifiedBy = verifiedBy.map(text)
        c.verifiedAt = verifiedAt.map { Date(timeIntervalSinceReferenceDate: $0) }
        c.statusReason = statusReason.map(text)
        return c
    }
}

/// Scratch memory of its own, from `mmap`, returned with `munmap` in `deinit` (the one place):
/// large build temporaries (sort keys, offsets) stay out of malloc's arenas, where a freed
/// block of tens of MiB can stay resident for the daemon's life. One owner; not `Sendable`.
public final class ScratchBuffer<T> {
    /// The memory, `count` values, uninitialised until written (zero-filled by the kernel).
    public let buffer: UnsafeMutableBufferPointer<T>
    private let bytes: Int

    /// Maps room for `count` values; throws ``RegistryError`` (`index_capacity`) when it cannot.
    public init(count: Int) throws {
        bytes = max(1, count * MemoryLayout<T>.stride)
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw RegistryError(.capacity, "cannot map \(bytes) bytes of scratch memory: \(String(cString: strerror(errno)))")
        }
        buffer = UnsafeMutableBufferPointer(start: p.bindMemory(to: T.self, capacity: max(1, count)), count: count)
    }

    deinit { munmap(UnsafeMutableRawPointer(buffer.baseAddress!), bytes) }
}
