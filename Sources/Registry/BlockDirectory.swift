import Foundation

/// Where the cameras of each Hilbert block lie in a ``CameraTable``: the fast path of a small
/// radius search.
///
/// The table is in space order, sorted by ``CameraTable/hilbertKey(lat:lon:)``, and the Hilbert
/// curve visits every aligned block of its grid in one run: so the cameras in a block of 2¹⁶ ×
/// 2¹⁶ grid cells (``shift``; 0.0055° of longitude by 0.0027° of latitude, about 600 × 300 m at
/// the equator) are one run of consecutive slots. This directory maps each block that holds a
/// camera to its run (an open-addressing hash table, a few bytes a camera at most).
///
/// A search whose boxes cover a few blocks (``maxBlocks``) holding a few cameras (``maxScan``)
/// reads those runs straight from the table: a few hash probes, then records one after the
/// other, instead of a walk down the GEOS STRtree (about a sixth of the daemon's CPU at a million
/// cameras, most of it cache misses on tree nodes) and then a cache miss on each candidate's
/// record somewhere in the table. Wider searches, and blocks crowded beyond `maxScan`, use the
/// tree, which stays the index for every other query.
///
/// Immutable once built; read from any thread. The entries are one allocation, owned by this
/// object and freed in `deinit` (a failed `init` frees it before the object exists).
/// `@unchecked Sendable`: nothing is written after `init`.
final class BlockDirectory: @unchecked Sendable {
    /// Grid bits a block drops from each 32-bit grid coordinate: a block is `key >> (2 · shift)`.
    static let shift: UInt32 = 16
    /// The most blocks a search reads through the directory.
    static let maxBlocks = 16
    /// The most cameras a search reads through the directory (a crowded block goes to the tree).
    static let maxScan = 2048

    struct Entry {
        var block: UInt32
        var start: UInt32
        /// 0: an empty entry.
        var count: UInt32
    }

    /// A run of slots that holds every camera of one block, and the box searched there.
    struct Run {
        var start: Int
        var end: Int
        var box: Int
    }

    private let entries: UnsafeMutableBufferPointer<Entry>
    private let hashShift: UInt64
    private let mask: Int
    /// Number of blocks that hold a camera.
    let blockCount: Int

    /// The directory of `table`, or `nil` when its slots are not in space order (a block's
    /// cameras would not be one run; every search then uses the tree).
    init?(table: CameraTable) {
        let n = table.count
        // The runs, in slot order: a block per run when the slots are in space order.
        var found: [Entry] = []
        withExtendedLifetime(table) {
            let positions = table.positions
            var slot = 0
            while slot < n {
                let block = Self.block(lat: positions[slot].lat, lon: positions[slot].lon)
                var end = slot + 1
                while end < n, Self.block(lat: positions[end].lat, lon: positions[end].lon) == block { end += 1 }
                found.append(Entry(block: block, start: UInt32(slot), count: UInt32(end - slot)))
                slot = end
            }
        }
        // At most half the entries used (linear probing stays short).
        var bits = 4
        while (1 << bits) < 2 * found.count { bits += 1 }
        let capacity = 1 << bits
        guard let raw = calloc(capacity, MemoryLayout<Entry>.stride) else {
            fatalError("out of memory allocating the block directory (\(capacity) entries)")
        }
        let buffer = UnsafeMutableBufferPointer(start: raw.bindMemory(to: Entry.self, capacity: capacity), count: capacity)
        let hashShift = UInt64(64 - bits)
        for entry in found {
            // A block seen before: the slots are not in space order. (Freed here, before the
            // object is initialised: its `deinit` does not run.)
            guard Self.insert(entry, into: buffer, hashShift: hashShift, mask: capacity - 1) else {
                free(raw)
                return nil
            }
        }
        entries = buffer
        self.hashShift = hashShift
        mask = capacity - 1
        blockCount = found.count
    }

    deinit {
        free(entries.baseAddress)
    }

    /// The block of (lat, lon).
    @inline(__always) static func block(lat: Double, lon: Double) -> UInt32 {
        block(x: CameraTable.gridX(lon: lon) >> shift, y: CameraTable.gridY(lat: lat) >> shift)
    }

    /// The block in column `x`, row `y` of the block grid (each below 2¹⁶): the two packed in
    /// one word. Any one-to-one number would do, since the directory only looks blocks up; the
    /// block's position on the Hilbert curve (the top half of its cameras' keys) cost a search
    /// 16 dependent steps a block, 7 % of the daemon's time at 100 000 cameras.
    @inline(__always) static func block(x: UInt32, y: UInt32) -> UInt32 {
        x << (32 - shift) | y
    }

    @inline(__always) private static func slot(of block: UInt32, hashShift: UInt64) -> Int {
        Int(truncatingIfNeeded: (UInt64(block) &* 0x9E37_79B9_7F4A_7C15) >> hashShift)
    }

    /// Adds `entry`; false if its block is there already.
    private static func insert(_ entry: Entry, into entries: UnsafeMutableBufferPointer<Entry>, hashShift: UInt64, mask: Int) -> Bool {
        var h = slot(of: entry.block, hashShift: hashShift)
        while entries[h].count != 0 {
            if entries[h].block == entry.block { return false }
            h = (h + 1) & mask
        }
        entries[h] = entry
        return true
    }

    /// The slots of the cameras in `block` (empty when it holds none).
    @inline(__always) func slots(of block: UInt32) -> Range<Int> {
        var h = Self.slot(of: block, hashShift: hashShift)
        while true {
            let e = entries[h]
            if e.count == 0 { return 0..<0 }
            if e.block == block { return Int(e.start)..<Int(e.start + e.count) }
            h = (h + 1) & mask
        }
    }

    /// The runs that hold every camera in `disc`'s boxes, each tagged with its box's index in
    /// `disc.boxes`: their number, or `nil` when the boxes cover more than ``maxBlocks`` blocks
    /// or those blocks hold more than ``maxScan`` cameras (or the disc is the whole world). Then
    /// the caller asks the tree. `runs` must have room for ``maxBlocks``.
    func runs(covering disc: GeodesicDisc, into runs: UnsafeMutableBufferPointer<Run>) -> Int? {
        guard !disc.isWorld else { return nil }
        var count = 0, scanned = 0
        for (k, box) in disc.boxes.enumerated() {
            guard self.runs(minLon: box.minLon, minLat: box.minLat, maxLon: box.maxLon, maxLat: box.maxLat,
                            box: k, into: runs, count: &count, scanned: &scanned) else { return nil }
        }
        return count
    }

    /// Appends to `runs` (from `count`) the runs of the blocks that the box (degrees) covers,
    /// tagged with `box`. False, with `runs` and `count` in an unspecified state, when the box
    /// covers more than ``maxBlocks`` blocks in all, or their cameras (with `scanned`, the
    /// count so far) are more than ``maxScan``.
    private func runs(minLon: Double, minLat: Double, maxLon: Double, maxLat: Double, box: Int,
                      into runs: UnsafeMutableBufferPointer<Run>, count: inout Int, scanned: inout Int) -> Bool {
        let x0 = CameraTable.gridX(lon: minLon) >> Self.shift, x1 = CameraTable.gridX(lon: maxLon) >> Self.shift
        let y0 = CameraTable.gridY(lat: minLat) >> Self.shift, y1 = CameraTable.gridY(lat: maxLat) >> Self.shift
        guard x0 <= x1, y0 <= y1 else { return true }
        let blocks = Int(x1 - x0 + 1) * Int(y1 - y0 + 1)
        guard count + blocks <= Self.maxBlocks, count + blocks <= runs.count else { return false }
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: blocks) { numbers in
            // The blocks' numbers first, each one's first probe loaded as it goes (independent
            // loads: their cache misses overlap), then the probes.
            var touched: UInt32 = 0
            var k = 0
            for y in y0...y1 {
                for x in x0...x1 {
                    numbers[k] = Self.block(x: x, y: y)
                    touched &+= entries[Self.slot(of: numbers[k], hashShift: hashShift)].count
                    k += 1
                }
            }
            cameraTableSink(UInt64(touched))
            for block in numbers[..<blocks] {
                let slots = self.slots(of: block)
                guard !slots.isEmpty else { continue }
                scanned += slots.count
                guard scanned <= Self.maxScan else { return false }
                runs[count] = Run(start: slots.lowerBound, end: slots.upperBound, box: box)
                count += 1
            }
            return true
        }
    }
}
