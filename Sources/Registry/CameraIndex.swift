import Foundation
import Geo
import NIOConcurrencyHelpers

/// A camera found by a search, with its ellipsoidal distance and the bearing from the camera to
/// the searched point.
public struct NearHit: Sendable {
    /// The camera.
    public let camera: Camera
    /// Distance in metres on the WGS84 ellipsoid (PROJ `geod_inverse`).
    public let distance: Double
    /// Azimuth from the camera to the searched point, degrees clockwise from north in [0, 360).
    public let bearing: Double
}

/// An immutable snapshot of the index: the cameras and a GEOS STRtree over their positions.
/// Built once, then only read (from any thread).
public final class IndexSnapshot: Sendable {
    /// The cameras, in tree item order.
    public let cameras: [Camera]
    /// Position of each id in `cameras`.
    let positions: [String: Int]
    /// Latitude, longitude and "searchable" (not retired) of `cameras[i]`, side by side: a search
    /// filters its candidates on these few bytes and copies a `Camera` only for a hit (at a
    /// million cameras the 280-byte values are far apart in memory).
    let lats: [Double]
    let lons: [Double]
    let searchable: [Bool]
    let tree: STRtree
    /// How long the build took, in seconds.
    public let buildSeconds: Double
    /// When the build finished.
    public let builtAt: Date

    /// Builds a snapshot over `cameras` (retired ones are kept for `CAMERA GET` but never searched).
    public init(cameras: [Camera]) throws {
        let start = DispatchTime.now()
        self.cameras = cameras
        lats = cameras.map(\.lat)
        lons = cameras.map(\.lon)
        searchable = cameras.map { $0.status != .retired }
        // The id dictionary and the STRtree are built side by side (the tree has its own GEOS
        // context): each is about half of a large snapshot's build time.
        let byID = NIOLockedValueBox([String: Int]())
        if cameras.count >= 50_000 {
            let treeBox = NIOLockedValueBox<Result<STRtree, Error>?>(nil)
            let boxes = zip(lons, lats).map { ($0, $1, $0, $1) }
            DispatchQueue.concurrentPerform(iterations: 2) { part in
                if part == 0 {
                    byID.withLockedValue { $0 = Self.positions(of: cameras) }
                } else {
                    let built = Result { try STRtree(boxes: boxes) }
                    treeBox.withLockedValue { $0 = built }
                }
            }
            tree = try treeBox.withLockedValue { $0! }.get()
            positions = byID.withLockedValue { $0 }
        } else {
            positions = Self.positions(of: cameras)
            tree = try STRtree(boxes: zip(lons, lats).map { ($0, $1, $0, $1) })
        }
        buildSeconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        builtAt = Date()
    }

    private static func positions(of cameras: [Camera]) -> [String: Int] {
        var positions: [String: Int] = [:]
        positions.reserveCapacity(cameras.count)
        for (i, c) in cameras.enumerated() { positions[c.id] = i }
        return positions
    }
}

/// The in-memory camera index: an immutable ``IndexSnapshot`` plus a small delta of changes made
/// since it was built. Readers take a reference to the current state and never wait for a
/// rebuild; writers add to the delta, and ``rebuildIfNeeded(threshold:)`` folds the delta into a
/// new snapshot off the read path and swaps it in.
public final class CameraIndex: Sendable {
    private struct State: Sendable {
        var snapshot: IndexSnapshot
        /// Changes since the snapshot: a camera (upserted) by id. Searches consult it first.
        var delta: [String: Camera]
    }

    private let state: NIOLockedValueBox<State>
    private let rebuilding = NIOLockedValueBox(false)
    private let geodesic = Geodesic.wgs84

    /// An index over `cameras`.
    public init(cameras: [Camera]) throws {
        state = NIOLockedValueBox(State(snapshot: try IndexSnapshot(cameras: cameras), delta: [:]))
    }

    private var current: State { state.withLockedValue { $0 } }

    /// Number of cameras held (retired included).
    public var count: Int {
        let s = current
        return s.snapshot.cameras.count + s.delta.keys.filter { s.snapshot.positions[$0] == nil }.count
    }

    /// Number of changes waiting in the delta.
    public var deltaCount: Int { current.delta.count }

    /// The current snapshot (for statistics).
    public var snapshot: IndexSnapshot { current.snapshot }

    /// The snapshot and the delta taken together at one moment, for the queries in
    /// `SpatialQueries.swift` (a search must see one consistent state).
    var searchState: (snapshot: IndexSnapshot, delta: [String: Camera]) {
        let s = current
        return (s.snapshot, s.delta)
    }

    /// One camera by id, retired included.
    public func camera(id: String) -> Camera? {
        let s = current
        if let c = s.delta[id] { return c }
        return s.snapshot.positions[id].map { s.snapshot.cameras[$0] }
    }

    /// Adds or replaces a camera; visible to every search that starts after this returns.
    /// A camera older (lower version) than the one held is ignored, so that two writers
    /// finishing out of order cannot bring back a stale row.
    public func upsert(_ camera: Camera) {
        state.withLockedValue { st in
            let held = st.delta[camera.id] ?? st.snapshot.positions[camera.id].map { st.snapshot.cameras[$0] }
            if let held, held.version > camera.version { return }
            st.delta[camera.id] = camera
        }
    }

    /// Cameras (retired included) ordered by id, after `after`, matching `filter`, at most `limit`.
    public func list(after: String?, limit: Int, where filter: (Camera) -> Bool) -> [Camera] {
        let s = current
        var merged: [Camera] = []
        merged.reserveCapacity(min(limit, 1024))
        for c in s.snapshot.cameras where s.delta[c.id] == nil { merged.append(c) }
        merged.append(contentsOf: s.delta.values)
        let ordered = merged.lazy.filter { after == nil || $0.id > after! }.filter(filter).sorted { $0.id < $1.id }
        return Array(ordered.prefix(limit))
    }

    /// Cameras within `radius` metres of (lat, lon), nearest first (ties by id), at most `limit`;
    /// retired cameras are never returned.
    public func near(lat: Double, lon: Double, radius: Double, limit: Int) throws -> [NearHit] {
        let s = current
        // Boxes that provably hold the geodesic disc (no geodesic calls; split at ±180°, whole
        // longitude bands over a pole), see `GeodesicDisc`.
        let disc = GeodesicDisc(lat: lat, lon: lon, radius: radius)
        var items: [Int] = []
        for box in disc.boxes {
            try s.snapshot.tree.query(minX: box.minLon, minY: box.minLat, maxX: box.maxLon, maxY: box.maxLat, into: &items)
        }
        var hits: [NearHit] = []
        // Candidates in the boxes' corners are dropped by a cheap rigorous lower bound of their
        // distance before any geodesic is computed.
        let query = GeocentricPoint(lat: lat, lon: lon)
        /// Distance and bearing (camera → point) of a camera at (cLat, cLon) within the radius.
        func measure(_ cLat: Double, _ cLon: Double) -> (distance: Double, bearing: Double)? {
            guard query.lowerBound(lat: cLat, lon: cLon) <= radius else { return nil }
            let g = geodesic.inverse(lat1: cLat, lon1: cLon, lat2: lat, lon2: lon)
            guard g.distance <= radius else { return nil }
            var bearing = g.azimuth1
            if bearing < 0 { bearing += 360 }
            if bearing >= 360 { bearing -= 360 }
            return (g.distance, bearing)
        }
        // Candidates are filtered on the side arrays; a camera is copied only when it is a hit.
        let snap = s.snapshot
        for i in items where snap.searchable[i] {
            guard let m = measure(snap.lats[i], snap.lons[i]) else { continue }
            if !s.delta.isEmpty, s.delta[snap.cameras[i].id] != nil { continue }
            hits.append(NearHit(camera: snap.cameras[i], distance: m.distance, bearing: m.bearing))
        }
        for c in s.delta.values where c.status != .retired {
            if let m = measure(c.lat, c.lon) { hits.append(NearHit(camera: c, distance: m.distance, bearing: m.bearing)) }
        }
        hits.sort { $0.distance != $1.distance ? $0.distance < $1.distance : $0.camera.id < $1.camera.id }
        if hits.count > limit { hits.removeSubrange(limit...) }
        return hits
    }

    /// Adds or replaces many cameras at once (a bulk import). A large batch goes straight into a
    /// new snapshot, built off the lock and swapped in before this returns, instead of through
    /// the delta: every search scans the whole delta, so a million-camera delta would slow each
    /// one until a background rebuild caught up. Small batches, or a batch arriving while a
    /// rebuild runs, are upserted one by one.
    public func upsert(contentsOf batch: [Camera], directAbove threshold: Int = 4096) throws {
        guard batch.count >= threshold, claimRebuild() else {
            for c in batch { upsert(c) }
            return
        }
        defer { rebuilding.withLockedValue { $0 = false } }
        try rebuild(from: current, adding: batch)
    }

    /// Builds a snapshot of `s` with its delta folded in, then `extra` (a newer or equal version
    /// replaces a held camera), without holding the lock, and swaps it in. Changes made
    /// meanwhile stay in the delta. The caller holds the `rebuilding` claim.
    private func rebuild(from s: State, adding extra: [Camera] = []) throws {
        var cameras = s.snapshot.cameras
        var positions = s.snapshot.positions
        cameras.reserveCapacity(cameras.count + s.delta.count + extra.count)
        positions.reserveCapacity(cameras.count + s.delta.count + extra.count)
        func place(_ c: Camera) {
            if let p = positions[c.id] {
                if cameras[p].version <= c.version { cameras[p] = c }
            } else {
                positions[c.id] = cameras.count
                cameras.append(c)
            }
        }
        for (_, c) in s.delta.sorted(by: { $0.key < $1.key }) { place(c) }
        for c in extra { place(c) }
        let fresh = try IndexSnapshot(cameras: cameras)
        state.withLockedValue { st in
            // Keep only changes made after the copy was taken (or that differ from it).
            var remaining: [String: Camera] = [:]
            for (id, c) in st.delta where s.delta[id] != c { remaining[id] = c }
            st.snapshot = fresh
            st.delta = remaining
        }
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
