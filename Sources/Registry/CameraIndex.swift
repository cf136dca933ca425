import Atomics
import Foundation
import Geo
import NIOConcurrencyHelpers

/// A camera found by a search, with its ellipsoidal distance and the bearing from the camera to
/// the searched point.
public struct NearHit: Sendable {
    /// The camera, read in place from the index.
    public let ref: CameraRef
    /// Distance in metres on the WGS84 ellipsoid (PROJ `geod_inverse`).
    public let distance: Double
    /// Azimuth from the camera to the searched point, degrees clockwise from north in [0, 360).
    public let bearing: Double
    /// Whether the camera's field of view covers the searched point (``Sector/sees(distance:azimuth:)``
    /// with this distance and bearing), tested while the camera's record is at hand.
    public let sees: Bool

    /// The camera, as a value (built from the index's packed table).
    public var camera: Camera { ref.camera }

    /// A hit whose sector test was made already.
    init(ref: CameraRef, distance: Double, bearing: Double, sees: Bool) {
        self.ref = ref
        self.distance = distance
        self.bearing = bearing
        self.sees = sees
    }

    /// A hit on `ref`, its sector test made with the field of view read from it.
    init(ref: CameraRef, distance: Double, bearing: Double) {
        self.init(ref: ref, distance: distance, bearing: bearing,
                  sees: Sector.sees(distance: distance, azimuth: bearing, heading: ref.heading, fov: ref.fov, range: ref.range))
    }
}

/// A point search's hit before it becomes a ``NearHit``: plain values, sorted without reference
/// counting. `source` ≥ 0 is a slot of the snapshot's table; < 0 is the delta camera `-1 − source`
/// of the search's own list.
struct FoundHit {
    var distance: Double
    var bearing: Double
    var source: Int
    var sees: Bool

    /// Sorts `hits` nearest first, hits at equal distances (rare) by `tie`. The distances are
    /// compared inline (by insertion when there are few, else by the standard library's sort
    /// with a literal closure, which it specialises); `tie` is called only inside a run of equal
    /// distances. (With one comparator for both, every comparison of a big answer went through
    /// the closure: 10 % of an answer's time at a million cameras.)
    static func sort(_ hits: inout [FoundHit], tie: (FoundHit, FoundHit) -> Bool) {
        guard hits.count > 1 else { return }
        hits.withUnsafeMutableBufferPointer { b in
            if b.count <= 48 {
                insertionSort(b, 0..<b.count) { $0.distance < $1.distance }
            } else {
                b.sort { $0.distance < $1.distance }
            }
            var i = 0
            while i < b.count - 1 {
                var j = i + 1
                while j < b.count, b[j].distance == b[i].distance { j += 1 }
                if j - i > 1 { insertionSort(b, i..<j, by: tie) }
                i = j
            }
        }
    }

    @inline(__always)
    private static func insertionSort(_ b: UnsafeMutableBufferPointer<FoundHit>, _ range: Range<Int>, by before: (FoundHit, FoundHit) -> Bool) {
        for i in range.dropFirst() {
            let x = b[i]
            var j = i
            while j > range.lowerBound, before(x, b[j - 1]) {
                b[j] = b[j - 1]
                j -= 1
            }
            b[j] = x
        }
    }
}

/// An immutable snapshot of the index: the cameras, packed in a ``CameraTable`` ordered by id,
/// and a GEOS STRtree over their positions whose items are runs of the table's slots
/// (``slotsPerItem``; see ``candidates(minLon:minLat:maxLon:maxLat:context:into:)``).
/// Built once, then only read (from any thread): `@unchecked Sendable` for its holds, which are
/// written only in `init`.
public final class IndexSnapshot: @unchecked Sendable {
    /// The cameras (retired ones included: `CAMERA GET` finds them, searches skip them).
    public let table: CameraTable
    let tree: STRtree
    /// Each Hilbert block's run of slots: small radius searches read it instead of the tree
    /// (`nil` if the table is not in space order).
    let blocks: BlockDirectory?
    /// How long the build took, in seconds.
    public let buildSeconds: Double
    /// When the build finished.
    public let builtAt: Date

    /// Builds a snapshot over `cameras` (an id given twice keeps its highest version).
    public convenience init(cameras: [Camera]) throws {
        let start = DispatchTime.now()
        try self.init(table: try CameraTable(cameras: cameras), startedAt: start)
    }

    /// Builds a snapshot over a packed table, and its STRtree unless `tree` is given. A given
    /// tree must be ``buildTree(count:run:position:)``'s over the table's positions in slot order
    /// (with ``treeRun``; for a table not in space order it is built again, one camera an item).
    init(table: CameraTable, tree: STRtree? = nil, startedAt start: DispatchTime = .now()) throws {
        self.table = table
        holds = .allocate(capacity: ThreadStripe.count)
        for i in 0..<ThreadStripe.count { (holds.baseAddress! + i).initialize(to: TableHold(table)) }
        blocks = BlockDirectory(table: table)
        // Runs of neighbouring slots make small tree items only in space order; a table in
        // another order (an index cache written so) gets one item per camera.
        let run = blocks == nil ? 1 : Self.treeRun
        slotsPerItem = run
        if let tree, tree.count == Self.treeItemCount(cameras: table.count, run: run) {
            self.tree = tree
        } else if let tree, !(run == 1 && tree.count == Self.treeItemCount(cameras: table.count)) {
            throw RegistryError(.validation, "the index tree has \(tree.count) items for \(table.count) cameras")
        } else {
            // No tree given, or one of runs given for a table found out of space order.
            self.tree = try withExtendedLifetime(table) {
                let positions = table.positions
                return try Self.buildTree(count: table.count, run: run) { (positions[$0].lat, positions[$0].lon) }
            }
        }
        buildSeconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        builtAt = Date()
    }

    /// Consecutive slots per tree item. The tree holds runs of slots (neighbours in space
    /// order), each with the box of its cameras, not one item per camera: GEOS keeps about 50
    /// bytes an item, 50 MiB at a million cameras as points, a sixth of the daemon's memory.
    public static let treeRun = 8

    /// This snapshot's slots per tree item: ``treeRun``, or 1 when the table is not in space order.
    let slotsPerItem: Int

    /// Number of tree items over `cameras` slots, `run` slots an item.
    public static func treeItemCount(cameras: Int, run: Int = treeRun) -> Int { (cameras + run - 1) / run }

    /// The tree of a table of `count` cameras whose positions, slot by slot, `position` gives:
    /// item `k` is the run of slots `k · run ..< (k + 1) · run` with their bounding box.
    public static func buildTree(count: Int, run: Int = treeRun, position: (Int) throws -> (lat: Double, lon: Double)) throws -> STRtree {
        try STRtree(count: treeItemCount(cameras: count, run: run)) { insert in
            var item = 0, slot = 0
            while slot < count {
                let end = min(slot + run, count)
                var (minLat, minLon) = try position(slot)
                var (maxLat, maxLon) = (minLat, minLon)
                for s in (slot + 1)..<end {
                    let p = try position(s)
                    minLat = min(minLat, p.lat); maxLat = max(maxLat, p.lat)
                    minLon = min(minLon, p.lon); maxLon = max(maxLon, p.lon)
                }
                try insert(item, (minLon, minLat, maxLon, maxLat))
                item += 1
                slot = end
            }
        }
    }

    /// Appends to `slots` the slots of the cameras inside the closed box (degrees; retired ones
    /// included), from the tree: the slots of the runs whose boxes meet it, each camera's own
    /// position then tested.
    func candidates(minLon: Double, minLat: Double, maxLon: Double, maxLat: Double,
                    context: GEOSContext = .current, into slots: inout [Int]) throws {
        var items: [Int] = []
        items.reserveCapacity(16)
        try tree.query(minX: minLon, minY: minLat, maxX: maxLon, maxY: maxLat, context: context, into: &items)
        let positions = table.positions, n = table.count
        let box: GeodesicDisc.Box = (minLon, minLat, maxLon, maxLat)
        for item in items {
            for s in (item * slotsPerItem)..<min((item + 1) * slotsPerItem, n)
            where GeodesicDisc.box(box, contains: positions[s].lat, positions[s].lon) {
                slots.append(s)
            }
        }
    }

    deinit {
        holds.baseAddress!.deinitialize(count: ThreadStripe.count)
        holds.deallocate()
    }

    /// Number of cameras (retired included).
    public var count: Int { table.count }

    /// One ``TableHold`` per ``ThreadStripe``, allocated in `init` and freed in `deinit` (not an
    /// `Array`, whose one buffer every reader would retain).
    private let holds: UnsafeMutableBufferPointer<TableHold>

    /// The camera in `slot`, read in place (through the calling thread's hold).
    @inline(__always) func ref(_ slot: Int) -> CameraRef { CameraRef(hold: hold, slot: slot) }

    /// The calling thread's hold of the table: a search takes it once, then makes its refs with
    /// ``ref(_:hold:)``.
    @inline(__always) var hold: TableHold { holds[ThreadStripe.current] }

    /// The camera in `slot`, read in place through `hold`.
    @inline(__always) func ref(_ slot: Int, hold: TableHold) -> CameraRef { CameraRef(hold: hold, slot: slot) }
}

/// The in-memory camera index: an immutable ``IndexSnapshot`` plus a small delta of changes made
/// since it was built. Readers take a reference to the current state and never wait for a
/// rebuild; writers add to the delta, and ``rebuildIfNeeded(threshold:)`` folds the delta into a
/// new snapshot off the read path and swaps it in. `@unchecked Sendable`: its stripe slots are
/// a buffer written only in `init` (each slot behind its own lock).
public final class CameraIndex: @unchecked Sendable {
    fileprivate struct State: Sendable {
        var snapshot: IndexSnapshot
        /// Changes since the snapshot: a camera (upserted) by id. Searches consult it first.
        var delta: [String: Camera]
    }

    /// The state as a search reads it: taken from a reader stripe's slot (``readView``), so
    /// that searches on different threads share neither a lock nor a reference count.
    final class ReadView: Sendable {
        let snapshot: IndexSnapshot
        let delta: [String: Camera]
        /// The snapshot's table hold of the stripe this view was made for.
        let hold: TableHold
        /// Keeps two stripes' views out of one cache line (their reference counts change on
        /// every search).
        private let padding: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

        fileprivate init(_ s: State) {
            snapshot = s.snapshot
            delta = s.delta
            hold = s.snapshot.hold
        }
    }

    /// A reader stripe's view and the generation it was made at, and its searches' working array
    /// of hits (lent to a search by ``takeFound()``, given back by ``giveBack(found:)``), so that a
    /// search allocates no array of its own: an answer's hits, a few KiB, were a malloc and a free
    /// of the shared arena, whose lock the event loops contended for.
    private struct StripeSlot: Sendable {
        var generation: UInt64 = .max
        var view: ReadView?
        var found: [FoundHit] = []
    }

    /// The largest working array a stripe keeps (in hits).
    private static var keptHits: Int { 4096 }

    private let state: NIOLockedValueBox<State>
    /// Bumped after every change of `state`; readers compare it with their stripe's.
    private let generation = ManagedAtomic<UInt64>(0)
    /// One slot per ``ThreadStripe`` (see ``readView``); allocated in `init`, freed in `deinit`.
    private let slots: UnsafeMutableBufferPointer<NIOLockedValueBox<StripeSlot>>
    private let rebuilding = NIOLockedValueBox(false)
    private let geodesic = Geodesic.wgs84

    private static func makeSlots() -> UnsafeMutableBufferPointer<NIOLockedValueBox<StripeSlot>> {
        let slots = UnsafeMutableBufferPointer<NIOLockedValueBox<StripeSlot>>.allocate(capacity: ThreadStripe.count)
        for i in 0..<ThreadStripe.count { (slots.baseAddress! + i).initialize(to: NIOLockedValueBox(StripeSlot())) }
        return slots
    }

    deinit {
        slots.baseAddress!.deinitialize(count: ThreadStripe.count)
        slots.deallocate()
    }

    /// The calling thread's stripe's working array of hits, emptied (another thread of the same
    /// stripe meanwhile gets a new one).
    private func takeFound() -> [FoundHit] {
        var found = slots[ThreadStripe.current].withLockedValue { slot in
            defer { slot.found = [] }
            return slot.found
        }
        found.removeAll(keepingCapacity: true)
        return found
    }

    /// Gives a working array back to the calling thread's stripe (a huge answer's is let go).
    private func giveBack(found: [FoundHit]) {
        guard found.capacity <= Self.keptHits else { return }
        slots[ThreadStripe.current].withLockedValue { $0.found = found }
    }

    /// The current state, for a search: the calling thread's stripe keeps a view of it, made
    /// again only after a change (the generation moved). No shared lock, and no shared
    /// reference count, is touched: only the stripe's own lock, uncontended unless two threads
    /// share the stripe. A search that starts after a change returned sees it (the change
    /// bumps the generation before it returns, and the view is made after the bump is read).
    var readView: ReadView {
        let g = generation.load(ordering: .acquiring)
        return slots[ThreadStripe.current].withLockedValue { slot in
            if slot.generation != g || slot.view == nil {
                slot.view = ReadView(state.withLockedValue { $0 })
                slot.generation = g
            }
            return slot.view!
        }
    }

    /// Changes the state, then moves the generation (readers' views are made again) unless
    /// `body` says it changed nothing (an upsert of a camera already held, which the change feed
    /// sends a million times after a big import).
    private func changeState(_ body: (inout State) -> Bool) {
        if state.withLockedValue(body) { generation.wrappingIncrement(ordering: .releasing) }
    }

    /// An index over `cameras`.
    public init(cameras: [Camera]) throws {
        state = NIOLockedValueBox(State(snapshot: try IndexSnapshot(cameras: cameras), delta: [:]))
        slots = Self.makeSlots()
    }

    /// An index over a packed table (the start from the index cache). `startedAt` is when the
    /// table's build began, for the snapshot's build time.
    public init(table: CameraTable, startedAt start: DispatchTime = .now()) throws {
        state = NIOLockedValueBox(State(snapshot: try IndexSnapshot(table: table, startedAt: start), delta: [:]))
        slots = Self.makeSlots()
    }

    /// An index over a packed table and an STRtree already built over its slots
    /// (``IndexSnapshot/buildTree(count:run:position:)``), e.g. built beside the table at start-up.
    public init(table: CameraTable, tree: STRtree, startedAt start: DispatchTime = .now()) throws {
        state = NIOLockedValueBox(State(snapshot: try IndexSnapshot(table: table, tree: tree, startedAt: start), delta: [:]))
        slots = Self.makeSlots()
    }

    /// The state under the lock: for writers and rebuilds (searches use ``readView``).
    private var current: State { state.withLockedValue { $0 } }

    /// Number of cameras held (retired included).
    public var count: Int {
        let s = current
        return s.snapshot.count + s.delta.keys.filter { s.snapshot.table.slot(of: $0) == nil }.count
    }

    /// Number of changes waiting in the delta.
    public var deltaCount: Int { current.delta.count }

    /// The current snapshot (for statistics).
    public var snapshot: IndexSnapshot { current.snapshot }

    /// The snapshot and the delta taken together at one moment, for the queries in
    /// `SpatialQueries.swift` (a search must see one consistent state).
    var searchState: (snapshot: IndexSnapshot, delta: [String: Camera]) {
        let v = readView
        return (v.snapshot, v.delta)
    }

    /// One camera by id, retired included.
    public func camera(id: String) -> Camera? {
        let s = readView
        if let c = s.delta[id] { return c }
        return s.snapshot.table.slot(of: id).map { s.snapshot.table.camera(at: $0) }
    }

    /// Adds or replaces a camera; visible to every search that starts after this returns.
    /// A camera older (lower version) than the one held is ignored, so that two writers
    /// finishing out of order cannot bring back a stale row; so is one equal to the one held
    /// (the change feed hands a daemon its own writes back: after a big import, a million of
    /// them, which would otherwise fill the delta and force rebuilds).
    public func upsert(_ camera: Camera) {
        changeState { st in
            let table = st.snapshot.table
            if let held = st.delta[camera.id] {
                if held.version > camera.version || held == camera { return false }
            } else if let slot = table.slot(of: camera.id) {
                let version = Int(table.extras[slot].version)
                if version > camera.version || (version == camera.version && table.camera(at: slot) == camera) { return false }
            }
            st.delta[camera.id] = camera
            return true
        }
    }

    /// Cameras (retired included) ordered by id, after `after`, matching `filter`, at most `limit`.
    /// Starts at `after` in the table's id index (a binary search) and merges the delta in.
    public func list(after: String?, limit: Int, where filter: (Camera) -> Bool) -> [Camera] {
        let s = readView
        let table = s.snapshot.table
        var changed = s.delta.values.filter { after == nil || after!.utf8.lexicographicallyPrecedes($0.id.utf8) }
        changed.sort { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }
        var result: [Camera] = []
        result.reserveCapacity(min(limit, 1024))
        var rank = after.map { table.firstRank(after: $0) } ?? 0
        var d = 0
        while result.count < limit {
            let camera: Camera
            let order = rank < table.count && d < changed.count ? table.compareID(slot: table.slot(rank: rank), with: changed[d].id)
                : rank < table.count ? -1 : d < changed.count ? 1 : nil
            guard let order else { break }
            if order < 0 {
                camera = table.camera(at: table.slot(rank: rank))
                rank += 1
            } else {
                if order == 0 { rank += 1 }   // the delta's version replaces the table's
                camera = changed[d]
                d += 1
            }
            if filter(camera) { result.append(camera) }
        }
        return result
    }

    /// Cameras within `radius` metres of (lat, lon), nearest first (ties by id), at most `limit`;
    /// retired cameras are never returned.
    public func near(lat: Double, lon: Double, radius: Double, limit: Int) throws -> [NearHit] {
        try nearFound(lat: lat, lon: lon, radius: radius, limit: limit, prefetchText: true) { snap, hold, found, deltaHits in
            found.map { f in
                NearHit(ref: f.source >= 0 ? snap.ref(f.source, hold: hold) : CameraRef(deltaHits[-1 - f.source]),
                        distance: f.distance, bearing: f.bearing, sees: f.sees)
            }
        }
    }

    /// ``near(lat:lon:radius:limit:)``'s answer read in place: the hits name slots of the table
    /// searched, held once in the answer's ``AnswerTable``, instead of a reference each (four
    /// atomic counts a hit, as it was made, read and freed: 3.6 % of the daemon's time at a
    /// million cameras). The search behind both is the same. `readsText`: the caller reads more
    /// of the hits' text than their ids (an address, an owner), which is then fetched for all
    /// the hits at once; a short id is in the record the search has read already.
    public func nearInPlace(lat: Double, lon: Double, radius: Double, limit: Int, readsText: Bool = true) throws -> NearAnswer {
        try nearFound(lat: lat, lon: lon, radius: radius, limit: limit, prefetchText: readsText) { _, hold, found, deltaHits in
            let hits = [NearAnswer.Hit](unsafeUninitializedCapacity: found.count) { buffer, count in
                for (i, f) in found.enumerated() {
                    (buffer.baseAddress! + i).initialize(to: NearAnswer.Hit(
                        camera: f.source >= 0 ? .slot(f.source) : .ref(CameraRef(deltaHits[-1 - f.source])),
                        distance: f.distance, bearing: f.bearing, sees: f.sees))
                }
                count = found.count
            }
            return NearAnswer(table: AnswerTable(hold: hold), hits: hits)
        }
    }

    /// The search of ``near(lat:lon:radius:limit:)``: hands `body` the snapshot searched, the
    /// calling thread's hold of its table, the kept hits, nearest first, as slots of the table
    /// (source ≥ 0) or of `delta` (source < 0: `delta[-1 - source]`), their text prefetched
    /// when `prefetchText`, and `delta`. The hits are valid only inside `body`: their array is
    /// the stripe's working array (``StripeSlot``), reused by the next search.
    private func nearFound<R>(lat: Double, lon: Double, radius: Double, limit: Int, prefetchText: Bool,
                              _ body: (IndexSnapshot, TableHold, ArraySlice<FoundHit>, [Camera]) throws -> R) throws -> R {
        let s = readView
        // Boxes that provably hold the geodesic disc (no geodesic calls; split at ±180°, whole
        // longitude bands over a pole), see `GeodesicDisc`.
        let disc = GeodesicDisc(lat: lat, lon: lon, radius: radius)
        // Candidates in the boxes' corners are dropped by a cheap rigorous lower bound of their
        // distance before any geodesic is computed.
        // In a frame turned so that the query's longitude is 0 (see `GeocentricPoint`).
        let query = GeocentricPoint(lat: lat, lon: 0)
        /// Distance and bearing (camera → point) of a camera at (cLat, cLon) within the radius.
        /// Within the short-geodesic range its result decides, unless it lies within its error
        /// bound of the radius; then, and beyond that range, `geod_inverse` does.
        func measure(_ cLat: Double, _ cLon: Double) -> (distance: Double, bearing: Double)? {
            let camera = GeocentricPoint(lat: cLat, lon: cLon, origin: lon, near: query, nearLat: lat)
            guard query.lowerBound(camera) <= radius else { return nil }
            var g: (distance: Double, azimuth: Double)
            if let short = camera.shortGeodesic(to: query), abs(short.distance - radius) > GeocentricPoint.shortGeodesicError {
                g = short
            } else {
                let exact = geodesic.inverse(lat1: cLat, lon1: cLon, lat2: lat, lon2: lon)
                g = (exact.distance, exact.azimuth1)
            }
            guard g.distance <= radius else { return nil }
            var bearing = g.azimuth
            if bearing < 0 { bearing += 360 }
            if bearing >= 360 { bearing -= 360 }
            return (g.distance, bearing)
        }
        // Candidates are read from the packed records; a hit is a slot, not a copied camera.
        // Hits are gathered as plain values (sorted without reference counting), and become
        // `NearHit`s only up to `limit`.
        let snap = s.snapshot
        let table = snap.table
        // The stripe's array (see ``StripeSlot``).
        var found = takeFound()
        found.reserveCapacity(64 + s.delta.count)
        var deltaHits: [Camera] = []
        try withExtendedLifetime(snap) {
            let records = table.records, positions = table.positions
            @inline(__always) func consider(_ i: Int) {
                // The record first: at a million cameras it is a cache miss, and read before the
                // geodesic (whose work the processor does while the load is outstanding, the
                // status test being predicted) it costs little; read after it, the search waited.
                let r = records[i]
                guard r.status != .retired else { return }
                guard let m = measure(positions[i].lat, positions[i].lon) else { return }
                if !s.delta.isEmpty, s.delta[table.id(at: i)] != nil { return }
                found.append(FoundHit(distance: m.distance, bearing: m.bearing, source: i,
                                      sees: Sector.sees(distance: m.distance, azimuth: m.bearing, heading: r.heading.isNaN ? nil : r.heading,
                                                        fov: r.fov, range: r.range)))
            }
            // A small search reads its blocks' runs of slots (see `BlockDirectory`), keeping the
            // cameras inside its boxes: the same candidates as the tree's.
            if let blocks = snap.blocks {
                let read = withUnsafeTemporaryAllocation(of: BlockDirectory.Run.self, capacity: BlockDirectory.maxBlocks) { runs in
                    guard let count = blocks.runs(covering: disc, into: runs) else { return false }
                    // The first coordinates of every run, touched together: each run starts a
                    // cache miss, and issued at once they overlap instead of coming one by one.
                    var touch = 0.0
                    for run in runs[..<count] where run.start < run.end { touch += positions[run.start].lat }
                    cameraTableSink(touch.bitPattern)
                    // The candidates (slots in a box) are gathered first, their records touched
                    // as they are found: each record is a cache miss at a million cameras, and
                    // loaded back to back (a few instructions apart) the misses overlap; loaded
                    // from `consider`, a geodesic apart, they came nearly one at a time (the
                    // status test was a third of the search loop's own samples).
                    // (64 at a time, on the stack; a search with more measures them batch by batch.)
                    withUnsafeTemporaryAllocation(of: Int.self, capacity: 64) { batch in
                        var n = 0
                        var touched: UInt8 = 0
                        for run in runs[..<count] {
                            let box = disc.boxes[run.box]
                            for i in run.start..<run.end where GeodesicDisc.box(box, contains: positions[i].lat, positions[i].lon) {
                                if n == batch.count {
                                    for c in batch { consider(c) }
                                    n = 0
                                }
                                batch[n] = i
                                n += 1
                                touched &+= records[i].idCount
                            }
                        }
                        cameraTableSink(UInt64(touched))
                        for c in batch[..<n] { consider(c) }
                    }
                    return true
                }
                if read { return }
            }
            // Otherwise the tree's candidates (GEOS STRtree, closed boxes).
            var items: [Int] = []
            items.reserveCapacity(64)
            for box in disc.boxes {
                try snap.candidates(minLon: box.minLon, minLat: box.minLat, maxLon: box.maxLon, maxLat: box.maxLat, into: &items)
            }
            for i in items { consider(i) }
        }
        for c in s.delta.values where c.status != .retired {
            if let m = measure(c.lat, c.lon) {
                deltaHits.append(c)
                found.append(FoundHit(distance: m.distance, bearing: m.bearing, source: -deltaHits.count,
                                      sees: Sector.sees(distance: m.distance, azimuth: m.bearing, heading: c.heading, fov: c.fov, range: c.range)))
            }
        }
        // Nearest first; equal distances are rare: only then are ids compared.
        func id(_ f: FoundHit) -> String { f.source >= 0 ? table.id(at: f.source) : deltaHits[-1 - f.source].id }
        FoundHit.sort(&found) { a, b in id(a).utf8.lexicographicallyPrecedes(id(b).utf8) }
        let kept = found.prefix(limit)
        if prefetchText { table.prefetch(kept.lazy.compactMap { $0.source >= 0 ? $0.source : nil }) }
        let result = try body(snap, s.hold, kept, deltaHits)
        giveBack(found: found)
        return result
    }

    /// Adds or replaces many cameras at once (a bulk import). A large batch goes straight into a
    /// new snapshot, built off the lock and swapped in before this returns, instead of through
    /// the delta: every search scans the whole delta, so a million-camera delta would slow each
    /// one until a background rebuild caught up. A batch under `threshold` cameras, or under an
    /// eighth of the index (merging it would rebuild the whole table and tree before the answer,
    /// 2.5 s for 9,240 cameras into a million), is upserted one by one, and the background
    /// rebuild folds it in later.
    public func upsert(contentsOf batch: [Camera], directAbove threshold: Int = 4096) throws {
        publish(try prepare(contentsOf: batch, directAbove: threshold))
    }

    /// A bulk batch made ready by ``prepare(contentsOf:directAbove:)``: for a large batch, the
    /// new snapshot, built but not yet swapped in. Hand it to ``publish(_:)`` once the batch is
    /// committed, or to ``discard(_:)``; until then no other rebuild runs.
    public final class PreparedBatch: @unchecked Sendable {
        fileprivate let batch: [Camera]
        fileprivate let build: (base: State, fresh: IndexSnapshot)?
        fileprivate let done = NIOLockedValueBox(false)
        fileprivate init(batch: [Camera], build: (base: State, fresh: IndexSnapshot)?) {
            self.batch = batch
            self.build = build
        }
    }

    /// The first half of ``upsert(contentsOf:directAbove:)``: builds the new snapshot of a large
    /// batch (off the lock; searches go on against the current one), so that a bulk import can
    /// build it while its transaction commits and swap it in right after. A large batch waits
    /// for a rebuild in progress to end (it blocks: never call it on an event loop).
    public func prepare(contentsOf batch: [Camera], directAbove threshold: Int = 4096) throws -> PreparedBatch {
        guard batch.count >= max(threshold, current.snapshot.table.count / 8) else { return PreparedBatch(batch: batch, build: nil) }
        // A rebuild in progress (the change feed folding its delta, say) is waited for: without
        // the claim a million cameras would go into the delta one at a time (9 s, seen in the
        // benchmark when the daemon's own feed caught up with the import's blocks).
        while !claimRebuild() { usleep(2_000) }
        do {
            let s = current
            return PreparedBatch(batch: batch, build: (s, try build(from: s, adding: batch)))
        } catch {
            rebuilding.withLockedValue { $0 = false }
            throw error
        }
    }

    /// Makes a prepared batch visible: swaps its snapshot in (changes made since it was
    /// prepared stay in the delta), or upserts a small batch one by one. Once per batch; a
    /// second call, or one after ``discard(_:)``, does nothing.
    public func publish(_ prepared: PreparedBatch) {
        guard prepared.done.withLockedValue({ d in defer { d = true }; return !d }) else { return }
        guard let build = prepared.build else {
            for c in prepared.batch { upsert(c) }
            return
        }
        swapIn(build.fresh, builtFrom: build.base)
        rebuilding.withLockedValue { $0 = false }
    }

    /// Drops a prepared batch that was not committed (and lets rebuilds run again).
    public func discard(_ prepared: PreparedBatch) {
        guard prepared.done.withLockedValue({ d in defer { d = true }; return !d }) else { return }
        if prepared.build != nil { rebuilding.withLockedValue { $0 = false } }
    }

    /// Builds a snapshot of `s` with its delta folded in, then `extra` (a newer or equal version
    /// replaces a held camera), without holding the lock, and swaps it in. Changes made
    /// meanwhile stay in the delta. The caller holds the `rebuilding` claim.
    private func rebuild(from s: State, adding extra: [Camera] = []) throws {
        swapIn(try build(from: s, adding: extra), builtFrom: s)
    }

    /// A snapshot of `s` with its delta folded in, then `extra` (for equal versions of an id the
    /// later one wins). Takes no lock.
    private func build(from s: State, adding extra: [Camera]) throws -> IndexSnapshot {
        let start = DispatchTime.now()
        // Without a delta the batch is merged as it is (a copy of a million cameras was a
        // sixth of a big import's index build).
        let changes = s.delta.isEmpty ? extra : s.delta.values.sorted { $0.id < $1.id } + extra
        return try IndexSnapshot(table: try s.snapshot.table.merging(changes), startedAt: start)
    }

    /// Makes `fresh` (built from `s`) current, keeping in the delta only the changes made after
    /// `s` was taken (or that differ from it).
    private func swapIn(_ fresh: IndexSnapshot, builtFrom s: State) {
        changeState { st in
            var remaining: [String: Camera] = [:]
            for (id, c) in st.delta where s.delta[id] != c { remaining[id] = c }
            st.snapshot = fresh
            st.delta = remaining
            return true
        }
        // Views of the old snapshot would keep it (a table of hundreds of MiB) alive until
        // their stripe's next search: drop them now. A view made meanwhile is of the new one.
        for slot in slots { slot.withLockedValue { $0 = StripeSlot() } }
    }

    private func claimRebuild() -> Bool {
        rebuilding.withLockedValue { busy -> Bool in
            if busy { return false }
            busy = true
            return true
        }
    }

    /// Folds the delta into a new snapshot when it holds at least `threshold` changes. The
    /// build runs without holding the lock; changes made meanwhile stay in the delta.
    /// Returns whether a new snapshot was swapped in.
    @discardableResult
    public func rebuildIfNeeded(threshold: Int = 1) throws -> Bool {
        guard claimRebuild() else { return false }
        defer { rebuilding.withLockedValue { $0 = false } }
        let s = current
        guard s.delta.count >= threshold, !s.delta.isEmpty else { return false }
        try rebuild(from: s)
        return true
    }
}
