import Foundation
import Geo
import Testing
@testable import Registry

/// The block directory: small radius searches read runs of slots instead of the STRtree.
@Suite("Block directory: NEAR's fast path")
struct BlockDirectoryTests {
    /// Cameras within `radius` of (lat, lon), nearest first, ties by id: by brute force.
    static func brute(_ cams: [Camera], _ lat: Double, _ lon: Double, _ radius: Double) -> [String] {
        var measured: [(id: String, d: Double)] = []
        for c in cams where c.status != .retired {
            let d = Geodesic.wgs84.inverse(lat1: c.lat, lon1: c.lon, lat2: lat, lon2: lon).distance
            if d <= radius { measured.append((c.id, d)) }
        }
        measured.sort { a, b in a.d != b.d ? a.d < b.d : a.id < b.id }
        return measured.map(\.id)
    }

    /// Whether a search of (lat, lon, radius) would read blocks (true) or ask the tree (false).
    static func readsBlocks(_ directory: BlockDirectory, _ lat: Double, _ lon: Double, _ radius: Double) -> Bool {
        withUnsafeTemporaryAllocation(of: BlockDirectory.Run.self, capacity: BlockDirectory.maxBlocks) { runs in
            directory.runs(covering: GeodesicDisc(lat: lat, lon: lon, radius: radius), into: runs) != nil
        }
    }

    /// A block's cameras are one run of the Hilbert-sorted table only if a block is exactly an
    /// aligned square of the curve: the points of one block share the top half of their keys,
    /// and points of different blocks do not.
    @Test("points share a block exactly when their Hilbert keys share the top half")
    func blocksAreHilbertSquares() {
        var rng = SeededRandom(seed: 71)
        var points: [(Double, Double)] = [(-90, -180), (90, 180), (0, 0), (-90, 180), (90, -180), (11.05, 106.6)]
        for _ in 0..<20_000 { points.append((Double.random(in: -90...90, using: &rng), Double.random(in: -180...180, using: &rng))) }
        // Crowded places too, so that many points share blocks and neighbour blocks meet.
        for (lat, lon) in [(11.05, 106.6), (-33.9, 151.2), (0, 179.999), (89.999, -0.01)] {
            for _ in 0..<5_000 {
                points.append((min(90, lat + Double.random(in: -0.02...0.02, using: &rng)),
                               min(180, lon + Double.random(in: -0.02...0.02, using: &rng))))
            }
        }
        var prefixOf: [UInt32: UInt64] = [:], blockOf: [UInt64: UInt32] = [:]
        var shared = 0
        for (lat, lon) in points {
            let block = BlockDirectory.block(lat: lat, lon: lon)
            let prefix = CameraTable.hilbertKey(lat: lat, lon: lon) >> 32
            if let p = prefixOf[block] { shared += 1; #expect(p == prefix, "(\(lat), \(lon))") } else { prefixOf[block] = prefix }
            if let b = blockOf[prefix] { #expect(b == block, "(\(lat), \(lon))") } else { blockOf[prefix] = block }
        }
        #expect(shared > 10_000)
    }

    @Test("every slot is in the run of its own block, once")
    func runsCoverTheTable() throws {
        let cams = SpatialQueryTests.randomCameras(20_000, seed: 72)
        let table = try CameraTable(cameras: cams)
        let directory = try #require(BlockDirectory(table: table))
        var seen = Set<UInt32>()
        var total = 0
        for slot in 0..<table.count {
            let p = table.positions[slot]
            let block = BlockDirectory.block(lat: p.lat, lon: p.lon)
            let run = directory.slots(of: block)
            #expect(run.contains(slot))
            if seen.insert(block).inserted { total += run.count }
        }
        #expect(total == table.count && seen.count == directory.blockCount && directory.blockCount > 100)
        // A block with no camera has an empty run.
        #expect(directory.slots(of: BlockDirectory.block(lat: -45, lon: 10)).isEmpty)
    }

    @Test("NEAR through blocks and through the tree: the same answers as brute force")
    func nearEqualsBruteForceOnBothPaths() throws {
        var cams = SpatialQueryTests.randomCameras(30_000, seed: 73)
        // A crowded spot: 3,000 cameras within about 50 m, more than a search may read in blocks.
        var rng = SeededRandom(seed: 74)
        for i in 0..<3_000 {
            cams.append(SpatialQueryTests.camera("Z-\(i)", 11.07 + Double.random(in: -0.0004...0.0004, using: &rng),
                                                 106.62 + Double.random(in: -0.0004...0.0004, using: &rng)))
        }
        // A smaller crowd, 600 cameras within about 35 m: few enough to be read in blocks, more
        // than the search gathers at once (64), so its candidates are measured in batches.
        for i in 0..<600 {
            cams.append(SpatialQueryTests.camera("Y-\(i)", 11.03 + Double.random(in: -0.0003...0.0003, using: &rng),
                                                 106.58 + Double.random(in: -0.0003...0.0003, using: &rng)))
        }
        // Exact ties: ten cameras on each of twelve spots, four of them added after the build
        // (the search finds the delta's last; their ids sort first).
        var late: [Camera] = []
        let spots: [(Double, Double)] = (0..<12).map { (s: Int) -> (Double, Double) in (11.0 + 0.009 * Double(s), 106.56 + 0.008 * Double(s)) }
        for (s, (lat, lon)) in spots.enumerated() {
            for k in 0..<6 { cams.append(SpatialQueryTests.camera("T-\(s)-\(k)", lat, lon)) }
            for k in 0..<4 { late.append(SpatialQueryTests.camera("S-\(s)-\(k)", lat, lon)) }
        }
        let index = try CameraIndex(cameras: cams)
        for c in late { index.upsert(c) }
        cams += late
        let directory = try #require(index.readView.snapshot.blocks)
        var byBlocks = 0, byTree = 0
        var queries: [(Double, Double, Double)] = []
        for radius in [1.0, 30, 200, 500, 800, 3_000] {
            // On a spot (ten hits at distance 0) and beside one (ten at one distance).
            let spot = spots[Int.random(in: 0..<spots.count, using: &rng)]
            queries.append((spot.0, spot.1, radius))
            queries.append((spot.0 + 0.0002, spot.1 - 0.0001, radius))
            for _ in 0..<40 {
                queries.append((Double.random(in: 10.99...11.11, using: &rng), Double.random(in: 106.54...106.66, using: &rng), radius))
            }
            // On a camera (the centre is a hit at distance 0), and in the crowd.
            let c = cams[Int.random(in: 0..<cams.count, using: &rng)]
            queries.append((c.lat, c.lon, radius))
            queries.append((11.07, 106.62, radius))
            queries.append((11.03, 106.58, radius))
        }
        for (lat, lon, radius) in queries {
            if Self.readsBlocks(directory, lat, lon, radius) { byBlocks += 1 } else { byTree += 1 }
            let hits = try index.near(lat: lat, lon: lon, radius: radius, limit: 100_000)
            #expect(hits.map(\.camera.id) == Self.brute(cams, lat, lon, radius), "NEAR \(lat) \(lon) radius=\(radius)")
            try SpatialQueryTests.checkSees(hits, lat, lon)
        }
        // Both paths were taken: small searches by blocks, the crowd and wide searches by the tree.
        #expect(byBlocks > 100 && byTree > 50, "blocks \(byBlocks), tree \(byTree)")
        #expect(!Self.readsBlocks(directory, 11.07, 106.62, 30))
        #expect(!Self.readsBlocks(directory, 11.05, 106.6, 3_000))
        #expect(Self.readsBlocks(directory, 11.02, 106.56, 200))
        // The smaller crowd is read in blocks, all 600 (and more) candidates of it.
        #expect(Self.readsBlocks(directory, 11.03, 106.58, 200))
        #expect(try index.near(lat: 11.03, lon: 106.58, radius: 200, limit: 100_000).count > 600)
    }

    @Test("NEAR through blocks sees the delta: moved, retired and new cameras")
    func blocksAndTheDelta() throws {
        let base = SpatialQueryTests.randomCameras(20_000, seed: 75)
        let index = try CameraIndex(cameras: base)
        var rng = SeededRandom(seed: 76)
        var upserts: [Camera] = []
        for i in 0..<300 {
            var c = base[i * 13]
            c.lat += Double.random(in: -0.002...0.002, using: &rng)
            c.lon += Double.random(in: -0.002...0.002, using: &rng)
            c.status = i % 3 == 0 ? .retired : .active
            upserts.append(c)
        }
        upserts += SpatialQueryTests.randomCameras(300, seed: 77, firstId: 90_000)
        for c in upserts { index.upsert(c) }
        #expect(index.deltaCount == upserts.count)
        let cams = SpatialQueryTests.merged(base, upserts)
        let directory = try #require(index.readView.snapshot.blocks)
        for c in upserts.prefix(150) {
            #expect(Self.readsBlocks(directory, c.lat, c.lon, 250))
            let got = try index.near(lat: c.lat, lon: c.lon, radius: 250, limit: 100_000).map(\.camera.id)
            #expect(got == Self.brute(cams, c.lat, c.lon, 250), "NEAR at \(c.id)")
        }
    }

    @Test("NEAR through blocks on both sides of ±180°")
    func blocksAcrossTheAntimeridian() throws {
        var cams: [Camera] = []
        var rng = SeededRandom(seed: 78)
        for i in 0..<2_000 {
            var lon = 180 - Double.random(in: 0...0.02, using: &rng)
            if i % 2 == 0 { lon = -lon }
            cams.append(SpatialQueryTests.camera("A-\(i)", 10 + Double.random(in: -0.01...0.01, using: &rng), lon))
        }
        let index = try CameraIndex(cameras: cams)
        let directory = try #require(index.readView.snapshot.blocks)
        for (lat, lon) in [(10.0, 180.0), (10.0, -180.0), (10.003, 179.999), (9.998, -179.9995)] {
            #expect(Self.readsBlocks(directory, lat, lon, 300))
            #expect(GeodesicDisc(lat: lat, lon: lon, radius: 300).boxes.count == 2)
            let got = try index.near(lat: lat, lon: lon, radius: 300, limit: 100_000).map(\.camera.id)
            let want = Self.brute(cams, lat, lon, 300)
            #expect(got == want && want.contains { $0.hasPrefix("A-") }, "NEAR \(lat) \(lon)")
        }
    }
}
