import CGEOS

/// An immutable GEOS STRtree over integer items (0-based indexes into the owner's arrays).
///
/// GEOS 3.11's STRtree is built lazily on its first query and silently drops inserts made after
/// that, and has no `build` call. So a tree is filled once in `init`, forced to build there with
/// one query, and is a read-only snapshot afterwards: concurrent queries from several threads
/// (each with its own ``GEOSContext``) only read it. New items belong in a new tree.
public final class STRtree: @unchecked Sendable {
    private let owner: GEOSContext
    private let tree: OpaquePointer
    /// Number of items in the tree.
    public let count: Int

    /// Builds a tree over boxes `(minX, minY, maxX, maxY)`; item `i` is `boxes[i]`.
    ///
    /// Inlinable, so that the boxes are gathered by code specialised for the caller's collection:
    /// an unspecialised generic loop looked up type metadata for every element, which was most
    /// of a million-camera tree's build time.
    @inlinable
    public convenience init<Boxes: Collection>(boxes: Boxes, nodeCapacity: Int = 10) throws
    where Boxes.Element == (Double, Double, Double, Double) {
        try self.init(count: boxes.count, nodeCapacity: nodeCapacity) { insert in
            for (i, b) in boxes.enumerated() { try insert(i, b) }
        }
    }

    /// Builds a tree over `count` boxes `(minX, minY, maxX, maxY)` that `fill` hands, in item
    /// order, to the `insert` function it is given (no copy of the boxes is made).
    public init(count: Int, nodeCapacity: Int = 10,
                fill: (_ insert: (Int, (Double, Double, Double, Double)) throws -> Void) throws -> Void) throws {
        let ctx = GEOSContext()
        owner = ctx
        guard let t = GEOSSTRtree_create_r(ctx.handle, max(2, nodeCapacity)) else { throw ctx.takeError("STRtree create") }
        tree = t
        self.count = count
        try fill { i, b in
            let g: OpaquePointer?
            if b.0 == b.2 && b.1 == b.3 {
                g = GEOSGeom_createPointFromXY_r(ctx.handle, b.0, b.1)
            } else {
                g = GEOSGeom_createRectangle_r(ctx.handle, b.0, b.1, b.2, b.3)
            }
            guard let g else { throw ctx.takeError("STRtree item geometry") }
            // The tree copies the envelope; the geometry is not kept.
            GEOSSTRtree_insert_r(ctx.handle, tree, g, UnsafeMutableRawPointer(bitPattern: i + 1))
            GEOSGeom_destroy_r(ctx.handle, g)
        }
        // Force the lazy build now, on this thread, before the tree is shared.
        var sink: [Int] = []
        try query(minX: 0, minY: 0, maxX: 0, maxY: 0, context: ctx, into: &sink)
    }

    deinit {
        GEOSSTRtree_destroy_r(owner.handle, tree)
    }

    /// Appends to `result` the items whose boxes intersect the query box.
    public func query(minX: Double, minY: Double, maxX: Double, maxY: Double,
                      context: GEOSContext = .current, into result: inout [Int]) throws {
        guard count > 0 else { return }
        guard let box = GEOSGeom_createRectangle_r(context.handle, minX, minY, maxX, maxY) else {
            throw context.takeError("query rectangle")
        }
        defer { GEOSGeom_destroy_r(context.handle, box) }
        withUnsafeMutablePointer(to: &result) { ptr in
            GEOSSTRtree_query_r(context.handle, tree, box, { item, userdata in
                guard let item, let userdata else { return }
                userdata.assumingMemoryBound(to: [Int].self).pointee.append(Int(bitPattern: item) - 1)
            }, ptr)
        }
    }
}
