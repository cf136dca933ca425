import Foundation
import Geo

/// The coverage-gap analysis: which streets, intersections and incidents the cameras see, per
/// ward, and where new cameras would help most.
///
/// Everything is computed in one UTM zone (metres) with GEOS: each ward is cut into square tiles
/// (``CoverageParameters/tileSize``); for a tile, the sectors of the cameras that can reach it
/// are unioned (cascaded unary union), the ward∩tile region is intersected with the union
/// (covered area) and every street clipped to the region is split into the part inside the
/// union (covered) and outside (gaps). Memory is bounded by one tile's sectors and streets.
/// Intersections are the nodes of degree ≥ 3 of the street network, noded by a snap-rounded
/// union (0.1 m grid, so T-junctions whose end lies within a few centimetres of the street are
/// nodes). A node or incident is seen by a camera when ``Sector/sees(lat:lon:)`` says so.
///
/// Runs synchronously on the calling thread (GEOS objects never leave it); `isCancelled` is
/// checked between tiles and between suggestions.
public enum CoverageEngine {
    struct Cam {
        let camera: Camera
        let sector: Sector
        let x: Double, y: Double
    }

    struct Path {
        let ward: Int
        let street: Int
        let points: [(x: Double, y: Double)]
        var length: Double
        var weight: Double = 1
    }

    /// The grid of the snap-rounded network, metres.
    static let nodeGrid = 0.1

    public static func run(cameras allCameras: [Camera], wards wardLayer: [CoverageWard], streets streetLayer: [CoverageStreet],
                           incidents: [CoverageIncident], parameters p: CoverageParameters,
                           progress: @Sendable (CoverageProgress) -> Void = { _ in },
                           isCancelled: @Sendable () -> Bool = { false }) throws -> CoverageResult {
        func check() throws { if isCancelled() { throw CoverageCancelled() } }
        progress(.init(phase: "preparing", fraction: 0.01))
        guard !wardLayer.isEmpty else { throw GeoError(.invalidGeometry, "no wards: import a ward layer first") }
        let ctx = GEOSContext.current

        // Wards, in lon/lat then UTM.
        var wardLL: [Geometry] = []
        for w in wardLayer {
            var g = try Geometry.wkt(w.wkt, context: ctx)
            if try g.invalidReason() != nil { g = try g.makeValid() }
            wardLL.append(g)
        }
        var minLon = Double.infinity, minLat = Double.infinity, maxLon = -Double.infinity, maxLat = -Double.infinity
        for g in wardLL {
            let b = try g.bounds()
            minLon = min(minLon, b.minX); minLat = min(minLat, b.minY); maxLon = max(maxLon, b.maxX); maxLat = max(maxLat, b.maxY)
        }
        let proj = try UTMProjection(lat: (minLat + maxLat) / 2, lon: (minLon + maxLon) / 2)
        let wards = try wardLL.map { try $0.projected(to: proj) }
        let wardPrepared = try wards.map { try PreparedGeometry($0) }
        let wardBounds = try wards.map { try $0.bounds() }
        let selected: [Int]
        if let name = p.ward {
            guard let i = wardLayer.firstIndex(where: { $0.name == name }) else {
                throw GeoError(.invalidGeometry, "no ward named \(name)")
            }
            selected = [i]
        } else {
            selected = Array(wardLayer.indices)
        }
        func wardOf(x: Double, y: Double) throws -> Int? {
            for (i, b) in wardBounds.enumerated() where x >= b.minX && x <= b.maxX && y >= b.minY && y <= b.maxY {
                if try wardPrepared[i].intersects(x: x, y: y) { return i }
            }
            return nil
        }

        // Counted cameras.
        var cams: [Cam] = []
        for c in allCameras where c.status == .active && c.range >= p.minRange {
            if let at = p.at, !c.schedule.records(at: at) { continue }
            let xy = try proj.forward(lon: c.lon, lat: c.lat)
            cams.append(Cam(camera: c, sector: try c.sector(), x: xy.x, y: xy.y))
        }
        let camTree = try STRtree(boxes: cams.map { ($0.x - $0.sector.range, $0.y - $0.sector.range, $0.x + $0.sector.range, $0.y + $0.sector.range) })
        func seeing(lat: Double, lon: Double, x: Double, y: Double) throws -> Int {
            var hits: [Int] = []
            try camTree.query(minX: x, minY: y, maxX: x, maxY: y, context: ctx, into: &hits)
            return hits.reduce(0) { $0 + (cams[$1].sector.sees(lat: lat, lon: lon) ? 1 : 0) }
        }
        var figures = wardLayer.map { CoverageFigures(ward: $0.name) }
        for c in cams {
            if let w = try wardOf(x: c.x, y: c.y) { figures[w].cameras += 1 }
        }
        try check()

        // Streets in UTM, and the noded network's nodes.
        progress(.init(phase: "network", fraction: 0.03))
        var streets: [Geometry] = []
        var streetPaths: [[(x: Double, y: Double)]] = []
        for s in streetLayer where s.points.count >= 2 {
            let pts = try s.points.map { pt -> (x: Double, y: Double) in
                let xy = try proj.forward(lon: pt.lon, lat: pt.lat)
                return (xy.x, xy.y)
            }
            streetPaths.append(pts)
            streets.append(try Geometry.lineString(pts.map { ($0.x, $0.y) }, context: ctx))
        }
        let usedStreets = streetLayer.filter { $0.points.count >= 2 }
        let streetTree = try STRtree(boxes: streets.map { g in
            let b = (try? g.bounds()) ?? (0, 0, 0, 0)
            return (b.0, b.1, b.2, b.3)
        })
        var nodes: [(x: Double, y: Double, degree: Int)] = []
        if !streets.isEmpty {
            let network = try Geometry.collection(streets, kind: .multiLineString, context: ctx).unaryUnion(gridSize: nodeGrid)
            var degree: [Int64: Int] = [:]
            var order: [Int64] = []
            for line in try network.lineStrings() where line.count >= 2 {
                for end in [line[0], line[line.count - 1]] {
                    let key = Int64((end.x / nodeGrid).rounded()) << 32 ^ Int64((end.y / nodeGrid).rounded())
                    if degree[key] == nil { order.append(key) }
                    degree[key, default: 0] += 1
                }
            }
            // Keys back to coordinates (kept from the first end seen).
            var firstEnd: [Int64: (Double, Double)] = [:]
            for line in try network.lineStrings() where line.count >= 2 {
                for end in [line[0], line[line.count - 1]] {
                    let key = Int64((end.x / nodeGrid).rounded()) << 32 ^ Int64((end.y / nodeGrid).rounded())
                    if firstEnd[key] == nil { firstEnd[key] = (end.x, end.y) }
                }
            }
            for key in order {
                let d = degree[key]!
                if d >= 3, let e = firstEnd[key] { nodes.append((e.0, e.1, d)) }
            }
        }
        let nodeWard = try nodes.map { try wardOf(x: $0.x, y: $0.y) }
        try check()

        // Incidents of the window.
        let windowStart = p.referenceDate.addingTimeInterval(-Double(p.days) * 86_400)
        var unseenIncidents: [(x: Double, y: Double)] = []
        for i in incidents where i.time >= windowStart && i.time <= p.referenceDate {
            let xy = try proj.forward(lon: i.lon, lat: i.lat)
            guard let w = try wardOf(x: xy.x, y: xy.y) else { continue }
            figures[w].incidents += 1
            if try seeing(lat: i.lat, lon: i.lon, x: xy.x, y: xy.y) == 0 {
                figures[w].unseenIncidents += 1
                if selected.contains(w) { unseenIncidents.append(xy) }
            }
        }

        // Tiles.
        var tiles: [(ward: Int, minX: Double, minY: Double, maxX: Double, maxY: Double, i: Int, j: Int)] = []
        for w in selected {
            let b = wardBounds[w]
            let nx = max(1, Int(((b.maxX - b.minX) / p.tileSize).rounded(.up)))
            let ny = max(1, Int(((b.maxY - b.minY) / p.tileSize).rounded(.up)))
            for i in 0..<nx {
                for j in 0..<ny {
                    let x0 = b.minX + Double(i) * p.tileSize, y0 = b.minY + Double(j) * p.tileSize
                    tiles.append((w, x0, y0, min(b.maxX, x0 + p.tileSize), min(b.maxY, y0 + p.tileSize), i, j))
                }
            }
        }
        // The tiles are independent: they are computed by up to `threads` workers, each with its
        // own GEOS context, UTM projection and copies of the ward polygons and streets it needs
        // (GEOS objects never cross threads; the STRtrees are read-only and shared). Results are
        // merged in tile order, so the figures do not depend on the scheduling.
        var nodesByTile: [Int: [Int]] = [:]
        do {
            var tileIndex: [Int64: Int] = [:]
            for (t, tile) in tiles.enumerated() { tileIndex[Int64(tile.ward) << 40 ^ Int64(tile.i) << 20 ^ Int64(tile.j)] = t }
            for (k, n) in nodes.enumerated() {
                guard let w = nodeWard[k], selected.contains(w) else { continue }
                let b = wardBounds[w]
                let i = min(Int((n.x - b.minX) / p.tileSize), max(0, Int(((b.maxX - b.minX) / p.tileSize).rounded(.up)) - 1))
                let j = min(Int((n.y - b.minY) / p.tileSize), max(0, Int(((b.maxY - b.minY) / p.tileSize).rounded(.up)) - 1))
                if let t = tileIndex[Int64(w) << 40 ^ Int64(i) << 20 ^ Int64(j)] { nodesByTile[t, default: []].append(k) }
            }
        }
        let wardRings = try wards.map { try $0.polygonRings() }
        let shared = TileInputs(tiles: tiles.map { TileInputs.Tile(ward: $0.ward, minX: $0.minX, minY: $0.minY, maxX: $0.maxX, maxY: $0.maxY) },
                                wardRings: wardRings, streetPaths: streetPaths, cams: cams, camTree: camTree, streetTree: streetTree,
                                nodes: nodes.map { ($0.x, $0.y) }, nodesByTile: nodesByTile, epsg: proj.epsg, map: p.map)
        let workers = max(1, min(p.threads > 0 ? p.threads : ProcessInfo.processInfo.activeProcessorCount, tiles.count))
        let outputs = NIOLockedTileOutputs(count: tiles.count)
        let tileCount = tiles.count
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            do {
                let worker = try TileWorker(shared)
                while let t = outputs.next() {
                    if isCancelled() { throw CoverageCancelled() }
                    outputs.store(t, try worker.compute(t))
                    progress(.init(phase: "wards", fraction: 0.05 + 0.75 * Double(outputs.done) / Double(max(1, tileCount))))
                }
            } catch {
                outputs.fail(error)
            }
        }
        if let error = outputs.error { throw error }
        var gaps: [Path] = []
        var coveredPaths: [[[(x: Double, y: Double)]]] = Array(repeating: [], count: wardLayer.count)
        for (t, out) in outputs.results.enumerated() {
            guard let out else { continue }
            let w = tiles[t].ward
            figures[w].area += out.area
            figures[w].coveredArea += out.coveredArea
            figures[w].streetLength += out.streetLength
            figures[w].coveredLength += out.coveredLength
            figures[w].intersections += out.unseen + out.single + out.multi
            figures[w].unseenIntersections += out.unseen
            figures[w].singleIntersections += out.single
            figures[w].multiIntersections += out.multi
            for g in out.gaps { gaps.append(Path(ward: w, street: g.street, points: g.points, length: pathLength(g.points))) }
            coveredPaths[w] += out.covered
        }

        // Incident weights of the gaps, and the gap scores.
        progress(.init(phase: "gaps", fraction: 0.82))
        let r2 = p.incidentRadius * p.incidentRadius
        for g in gaps.indices {
            var hits = 0
            for inc in unseenIncidents where pointPathDistance2(inc, gaps[g].points) <= r2 { hits += 1 }
            gaps[g].weight = 1 + Double(hits)
            figures[gaps[g].ward].gapScore += gaps[g].length / 1000 * gaps[g].weight
        }
        var stretches: [CoverageStretch] = []
        for g in gaps where g.length > 0 {
            let mid = g.points[g.points.count / 2]
            let ll = try proj.inverse(x: mid.x, y: mid.y)
            stretches.append(CoverageStretch(ward: wardLayer[g.ward].name, street: usedStreets[g.street].name,
                                             length: g.length, weight: g.weight, lat: ll.lat, lon: ll.lon))
        }
        let stretchCount = stretches.count
        stretches.sort { $0.score != $1.score ? $0.score > $1.score : ($0.lat, $0.lon) < ($1.lat, $1.lon) }
        stretches = Array(stretches.prefix(p.stretchLimit))

        var town = CoverageFigures(ward: CoverageResult.townName)
        for w in selected { town.add(figures[w]) }
        try check()

        // Suggestions.
        var suggestions: [CoverageSuggestion] = []
        if p.suggest > 0 && !gaps.isEmpty {
            suggestions = try suggest(p: p, gaps: gaps, nodes: nodes, nodeWard: nodeWard, selected: Set(selected),
                                      streetLayer: usedStreets, streetPaths: streetPaths, wardOf: wardOf,
                                      wardNames: wardLayer.map(\.name), proj: proj, ctx: ctx,
                                      coveredBefore: town.coveredLength, progress: progress, check: check)
        }

        // Map features.
        progress(.init(phase: "map", fraction: 0.95))
        var map: [String: String] = [:]
        if p.map {
            for w in selected {
                var f: [String] = []
                let name = wardLayer[w].name
                f.append(GeoJSONText.feature(geometry: GeoJSONText.polygons(try wardLL[w].polygonRings()),
                                             properties: [("layer", .s("ward")), ("ward", .s(name))]))
                for path in coveredPaths[w] {
                    f.append(GeoJSONText.feature(geometry: GeoJSONText.line(try path.map { try proj.inverse(x: $0.x, y: $0.y) }),
                                                 properties: [("layer", .s("covered")), ("ward", .s(name))]))
                }
                for g in gaps where g.ward == w {
                    f.append(GeoJSONText.feature(geometry: GeoJSONText.line(try g.points.map { try proj.inverse(x: $0.x, y: $0.y) }),
                                                 properties: [("layer", .s("gap")), ("ward", .s(name)),
                                                              ("street", usedStreets[g.street].name.map { .s($0) } ?? .null),
                                                              ("length_m", .n(g.length)), ("weight", .n(g.weight))]))
                }
                for (k, n) in nodes.enumerated() where nodeWard[k] == w {
                    let ll = try proj.inverse(x: n.x, y: n.y)
                    let seen = try seeing(lat: ll.lat, lon: ll.lon, x: n.x, y: n.y)
                    f.append(GeoJSONText.feature(geometry: GeoJSONText.point(ll),
                                                 properties: [("layer", .s("intersection")), ("ward", .s(name)), ("cameras", .n(Double(seen)))]))
                }
                for c in cams where (try? wardOf(x: c.x, y: c.y)) == w {
                    f.append(GeoJSONText.feature(geometry: GeoJSONText.polygons([[c.sector.lonLatRing().map { (x: $0.lon, y: $0.lat) }]]),
                                                 properties: [("layer", .s("sector")), ("ward", .s(name)), ("camera", .s(c.camera.id))]))
                }
                map[name] = f.joined(separator: ",")
            }
        }
        let suggestionFeatures = suggestions.map { s in
            var fs = [GeoJSONText.feature(geometry: GeoJSONText.point((s.lon, s.lat)),
                                          properties: [("layer", .s("suggestion")), ("rank", .n(Double(s.rank))), ("site", .s(s.site)),
                                                       ("ward", .s(s.ward)), ("heading", s.heading.map { .n($0) } ?? .null),
                                                       ("gain_m", .n(s.gain))])]
            if let sector = try? Sector(lat: s.lat, lon: s.lon, heading: s.heading, fov: s.fov, range: s.range) {
                fs.append(GeoJSONText.feature(geometry: GeoJSONText.polygons([[sector.lonLatRing().map { (x: $0.lon, y: $0.lat) }]]),
                                              properties: [("layer", .s("suggestion_sector")), ("rank", .n(Double(s.rank)))]))
            }
            return fs.joined(separator: ",")
        }.joined(separator: ",")

        progress(.init(phase: "done", fraction: 0.97))
        return CoverageResult(wards: selected.map { figures[$0] }, town: town, stretches: stretches, stretchCount: stretchCount,
                              suggestions: suggestions, camerasCounted: cams.count, tiles: tiles.count,
                              mapFeatures: map, suggestionFeatures: suggestionFeatures)
    }

    // MARK: Suggestions

    /// Greedy maximal covering (lazy evaluation: a site's gain can only shrink as cameras are
    /// added, so a re-evaluated best that still beats every other bound is the true best).
    /// Gains are evaluated on samples of the uncovered streets (one per metre, each weighing its
    /// length × its stretch's incident weight); the chosen camera's reported gain is then measured
    /// exactly with GEOS on the remaining gap geometry, which is cut by its sector.
    static func suggest(p: CoverageParameters, gaps: [Path], nodes: [(x: Double, y: Double, degree: Int)], nodeWard: [Int?],
                        selected: Set<Int>, streetLayer: [CoverageStreet], streetPaths: [[(x: Double, y: Double)]],
                        wardOf: (Double, Double) throws -> Int?, wardNames: [String], proj: UTMProjection, ctx: GEOSContext,
                        coveredBefore: Double, progress: @Sendable (CoverageProgress) -> Void, check: () throws -> Void) throws -> [CoverageSuggestion] {
        // Samples.
        var sx: [Double] = [], sy: [Double] = [], sw: [Double] = []
        for g in gaps {
            for k in 1..<g.points.count {
                let a = g.points[k - 1], b = g.points[k]
                let len = ((b.x - a.x) * (b.x - a.x) + (b.y - a.y) * (b.y - a.y)).squareRoot()
                let n = max(1, Int(len.rounded(.up)))
                for i in 0..<n {
                    let t = (Double(i) + 0.5) / Double(n)
                    sx.append(a.x + (b.x - a.x) * t)
                    sy.append(a.y + (b.y - a.y) * t)
                    sw.append(len / Double(n) * g.weight)
                }
            }
        }
        var alive = [Bool](repeating: true, count: sx.count)
        let cell = max(1, p.suggestRange)
        func key(_ x: Double, _ y: Double) -> Int64 { Int64((x / cell).rounded(.down)) << 32 ^ Int64((y / cell).rounded(.down)) & 0xFFFF_FFFF }
        var grid: [Int64: [Int]] = [:]
        for i in sx.indices { grid[key(sx[i], sy[i]), default: []].append(i) }

        // Candidates: intersections and alley points of the analysed wards.
        struct Candidate {
            let x: Double, y: Double
            let site: String
            let ward: Int
            var near: [Int] = []
            var angle: [Double] = []
            var bound: Double = 0
        }
        var candidates: [Candidate] = []
        for (k, n) in nodes.enumerated() {
            if let w = nodeWard[k], selected.contains(w) { candidates.append(Candidate(x: n.x, y: n.y, site: "intersection", ward: w)) }
        }
        for (s, street) in streetLayer.enumerated() where street.kind == "alley" {
            let path = streetPaths[s]
            var along = 0.0, next = p.alleySpacing
            for k in 1..<path.count {
                let a = path[k - 1], b = path[k]
                let len = ((b.x - a.x) * (b.x - a.x) + (b.y - a.y) * (b.y - a.y)).squareRoot()
                while len > 0 && next <= along + len {
                    let t = (next - along) / len
                    let x = a.x + (b.x - a.x) * t, y = a.y + (b.y - a.y) * t
                    if let w = try wardOf(x, y), selected.contains(w) { candidates.append(Candidate(x: x, y: y, site: "alley", ward: w)) }
                    next += p.alleySpacing
                }
                along += len
            }
        }
        let r2 = p.suggestRange * p.suggestRange
        for c in candidates.indices {
            let cx = Int64((candidates[c].x / cell).rounded(.down)), cy = Int64((candidates[c].y / cell).rounded(.down))
            for dx in -1...1 {
                for dy in -1...1 {
                    for i in grid[(cx + Int64(dx)) << 32 ^ (cy + Int64(dy)) & 0xFFFF_FFFF] ?? [] {
                        let ex = sx[i] - candidates[c].x, ey = sy[i] - candidates[c].y
                        if ex * ex + ey * ey <= r2 {
                            candidates[c].near.append(i)
                            candidates[c].angle.append(atan2(ex, ey) * 180 / .pi)
                        }
                    }
                }
            }
        }
        candidates.removeAll { $0.near.isEmpty }
        let full = p.suggestFOV >= 360
        let headings = full ? [0.0] : (0..<max(1, p.headings)).map { Double($0) * 360 / Double(max(1, p.headings)) }
        // Each candidate's nearby samples sorted by azimuth, so that the weight inside any wedge is
        // a difference of prefix sums (the azimuths are repeated + 360 for wedges across ±180°).
        for c in candidates.indices {
            let order = candidates[c].angle.indices.sorted { candidates[c].angle[$0] < candidates[c].angle[$1] }
            candidates[c].near = order.map { candidates[c].near[$0] }
            candidates[c].angle = order.map { candidates[c].angle[$0] }
        }
        func lowerBound(_ a: [Double], _ v: Double) -> Int {
            var lo = 0, hi = a.count
            while lo < hi { let m = (lo + hi) / 2; if a[m] < v { lo = m + 1 } else { hi = m } }
            return lo
        }
        func upperBound(_ a: [Double], _ v: Double) -> Int {
            var lo = 0, hi = a.count
            while lo < hi { let m = (lo + hi) / 2; if a[m] <= v { lo = m + 1 } else { hi = m } }
            return lo
        }
        func best(_ c: Candidate) -> (gain: Double, heading: Double) {
            let n = c.near.count
            var prefix = [Double](repeating: 0, count: 2 * n + 1)
            for k in 0..<(2 * n) { prefix[k + 1] = prefix[k] + (alive[c.near[k % n]] ? sw[c.near[k % n]] : 0) }
            if full { return (prefix[n], 0) }
            let extended = c.angle + c.angle.map { $0 + 360 }
            var top = (gain: -1.0, heading: 0.0)
            let half = min(p.suggestFOV / 2, 180)
            for h in headings {
                var from = h - half
                while from < -180 { from += 360 }
                while from >= 180 { from -= 360 }
                let lo = lowerBound(extended, from)
                let hi = min(upperBound(extended, from + 2 * half), lo + n)
                let s = prefix[hi] - prefix[lo]
                if s > top.gain + 1e-9 { top = (s, h) }
            }
            return top
        }
        for c in candidates.indices { candidates[c].bound = best(candidates[c]).gain }

        // The exact gap geometry, one piece per gap, cut by each chosen sector (only the pieces
        // whose boxes meet the sector's are touched).
        var remaining = try gaps.map { try Geometry.lineString($0.points.map { ($0.x, $0.y) }, context: ctx) }
        let gapTree = try STRtree(boxes: gaps.map { g in
            (g.points.map(\.x).min()!, g.points.map(\.y).min()!, g.points.map(\.x).max()!, g.points.map(\.y).max()!)
        })
        var covered = coveredBefore
        var out: [CoverageSuggestion] = []
        var taken = Set<Int>()
        while out.count < p.suggest {
            try check()
            progress(.init(phase: "suggestions", fraction: 0.85 + 0.1 * Double(out.count) / Double(p.suggest)))
            var chosen: (index: Int, gain: Double, heading: Double)? = nil
            while true {
                var top = -1, second = -1.0
                for c in candidates.indices where !taken.contains(c) {
                    if top < 0 || candidates[c].bound > candidates[top].bound { if top >= 0 { second = max(second, candidates[top].bound) }; top = c } else { second = max(second, candidates[c].bound) }
                }
                guard top >= 0 else { break }
                let b = best(candidates[top])
                candidates[top].bound = b.gain
                if b.gain >= second - 1e-9 { chosen = (top, b.gain, b.heading); break }
            }
            guard let chosen, chosen.gain > 1e-6 else { break }
            taken.insert(chosen.index)
            let c = candidates[chosen.index]
            let ll = try proj.inverse(x: c.x, y: c.y)
            let sector = try Sector(lat: ll.lat, lon: ll.lon, heading: full ? nil : chosen.heading, fov: p.suggestFOV, range: p.suggestRange)
            let poly = try sector.polygon(in: proj, context: ctx)
            let pb = try poly.bounds()
            var hits: [Int] = []
            try gapTree.query(minX: pb.minX, minY: pb.minY, maxX: pb.maxX, maxY: pb.maxY, context: ctx, into: &hits)
            var gain = 0.0
            for h in hits.sorted() where try !remaining[h].isEmpty && remaining[h].intersects(poly) {
                gain += try remaining[h].intersection(poly).length()
                remaining[h] = try remaining[h].difference(poly)
            }
            for (k, i) in c.near.enumerated() where alive[i] {
                if full || abs(angleDifference(c.angle[k], chosen.heading)) <= p.suggestFOV / 2 { alive[i] = false }
            }
            covered += gain
            out.append(CoverageSuggestion(rank: out.count + 1, site: c.site, ward: wardNames[c.ward], lat: ll.lat, lon: ll.lon,
                                          heading: sector.heading, fov: p.suggestFOV, range: p.suggestRange,
                                          gain: gain, weightedGain: chosen.gain, coveredAfter: covered))
        }
        return out
    }

    // MARK: Plane helpers

    static func pathLength(_ pts: [(x: Double, y: Double)]) -> Double {
        var s = 0.0
        for k in 1..<max(1, pts.count) {
            s += ((pts[k].x - pts[k - 1].x) * (pts[k].x - pts[k - 1].x) + (pts[k].y - pts[k - 1].y) * (pts[k].y - pts[k - 1].y)).squareRoot()
        }
        return s
    }

    static func pointPathDistance2(_ p: (x: Double, y: Double), _ pts: [(x: Double, y: Double)]) -> Double {
        var best = Double.infinity
        for k in 1..<max(1, pts.count) {
            let a = pts[k - 1], b = pts[k]
            let dx = b.x - a.x, dy = b.y - a.y
            let l2 = dx * dx + dy * dy
            let t = l2 > 0 ? min(1, max(0, ((p.x - a.x) * dx + (p.y - a.y) * dy) / l2)) : 0
            let ex = a.x + dx * t - p.x, ey = a.y + dy * t - p.y
            best = min(best, ex * ex + ey * ey)
        }
        return best
    }

    /// `a − b` in degrees, in [−180, 180).
    static func angleDifference(_ a: Double, _ b: Double) -> Double {
        var d = (a - b).truncatingRemainder(dividingBy: 360)
        if d < -180 { d += 360 }
        if d >= 180 { d -= 360 }
        return d
    }
}

/// What every tile worker reads: plain values and read-only STRtrees.
struct TileInputs: @unchecked Sendable {
    struct Tile { let ward: Int; let minX, minY, maxX, maxY: Double }
    let tiles: [Tile]
    let wardRings: [[[[(x: Double, y: Double)]]]]
    let streetPaths: [[(x: Double, y: Double)]]
    let cams: [CoverageEngine.Cam]
    /// Read-only after construction; queried with each worker's own context.
    let camTree: STRtree
    let streetTree: STRtree
    let nodes: [(x: Double, y: Double)]
    let nodesByTile: [Int: [Int]]
    let epsg: Int
    let map: Bool
}

/// One tile's figures and line work.
struct TileOutput: Sendable {
    var area = 0.0, coveredArea = 0.0, streetLength = 0.0, coveredLength = 0.0
    var unseen = 0, single = 0, multi = 0
    var gaps: [(street: Int, points: [(x: Double, y: Double)])] = []
    var covered: [[(x: Double, y: Double)]] = []
}

/// The tiles' shared work queue and results, behind a lock.
final class NIOLockedTileOutputs: @unchecked Sendable {
    private let lock = NSLock()
    private var nextTile = 0
    private(set) var results: [TileOutput?]
    private var finished = 0
    private var firstError: Error?
    init(count: Int) { results = Array(repeating: nil, count: count) }
    /// The next tile to compute, or nil when all are taken or a worker failed.
    func next() -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard firstError == nil, nextTile < results.count else { return nil }
        nextTile += 1
        return nextTile - 1
    }
    func store(_ t: Int, _ out: TileOutput) {
        lock.lock(); defer { lock.unlock() }
        results[t] = out
        finished += 1
    }
    var done: Int { lock.lock(); defer { lock.unlock() }; return finished }
    func fail(_ e: Error) {
        lock.lock(); defer { lock.unlock() }
        if firstError == nil { firstError = e }
    }
    var error: Error? { lock.lock(); defer { lock.unlock() }; return firstError }
}

/// One worker's GEOS context, projection and lazily built copies of wards and streets.
final class TileWorker {
    let s: TileInputs
    let ctx = GEOSContext()
    let proj: UTMProjection
    private var wards: [Int: Geometry] = [:]
    private var streets: [Int: Geometry] = [:]

    init(_ shared: TileInputs) throws {
        s = shared
        proj = try UTMProjection(epsg: shared.epsg)
    }

    func ward(_ w: Int) throws -> Geometry {
        if let g = wards[w] { return g }
        let g = try Geometry.multiPolygon(s.wardRings[w], context: ctx)
        wards[w] = g
        return g
    }

    func street(_ i: Int) throws -> Geometry {
        if let g = streets[i] { return g }
        let g = try Geometry.lineString(s.streetPaths[i].map { ($0.x, $0.y) }, context: ctx)
        streets[i] = g
        return g
    }

    func compute(_ t: Int) throws -> TileOutput {
        var out = TileOutput()
        let tile = s.tiles[t]
        let rect = try Geometry.rectangle(minX: tile.minX, minY: tile.minY, maxX: tile.maxX, maxY: tile.maxY, context: ctx)
        let region = try ward(tile.ward).intersection(rect)
        if region.isEmpty { return out }
        let rb = try region.bounds()
        var camHits: [Int] = []
        try s.camTree.query(minX: rb.minX, minY: rb.minY, maxX: rb.maxX, maxY: rb.maxY, context: ctx, into: &camHits)
        camHits.sort()
        var union: Geometry? = nil
        var unionPrepared: PreparedGeometry? = nil
        if !camHits.isEmpty {
            let polys = try camHits.map { try s.cams[$0].sector.polygon(in: proj, context: ctx) }
            union = try Geometry.collection(polys, kind: .multiPolygon, context: ctx).unaryUnion()
            unionPrepared = try PreparedGeometry(union!)
        }
        out.area = try region.area()
        if let union { out.coveredArea = try region.intersection(union).area() }

        var streetHits: [Int] = []
        try s.streetTree.query(minX: rb.minX, minY: rb.minY, maxX: rb.maxX, maxY: rb.maxY, context: ctx, into: &streetHits)
        streetHits.sort()
        for i in streetHits {
            let clip = try street(i).intersection(region)
            if clip.isEmpty { continue }
            out.streetLength += try clip.length()
            let open: Geometry
            if let union, try unionPrepared!.intersects(clip) {
                let covered = try clip.intersection(union)
                if !covered.isEmpty {
                    out.coveredLength += try covered.length()
                    if s.map { out.covered += try covered.lineStrings() }
                }
                open = try clip.difference(union)
            } else {
                open = clip
            }
            for line in try open.lineStrings() where line.count >= 2 { out.gaps.append((i, line)) }
        }

        // The intersections of this tile (each node belongs to one tile of one ward).
        for k in s.nodesByTile[t] ?? [] {
            let n = s.nodes[k]
            let ll = try proj.inverse(x: n.x, y: n.y)
            var hits: [Int] = []
            try s.camTree.query(minX: n.x, minY: n.y, maxX: n.x, maxY: n.y, context: ctx, into: &hits)
            let seen = hits.reduce(0) { $0 + (s.cams[$1].sector.sees(lat: ll.lat, lon: ll.lon) ? 1 : 0) }
            switch seen {
            case 0: out.unseen += 1
            case 1: out.single += 1
            default: out.multi += 1
            }
        }
        return out
    }
}

/// Minimal GeoJSON text for the map features (WGS84, 7 decimals).
enum GeoJSONText {
    enum Value { case s(String), n(Double), null }

    static func coordinate(_ p: (x: Double, y: Double)) -> String {
        "[\(fmt(p.x)),\(fmt(p.y))]"
    }
    static func fmt(_ v: Double) -> String {
        let r = (v * 1e7).rounded() / 1e7
        return r == r.rounded() ? String(Int64(r)) : String(r)
    }
    static func point(_ p: (lon: Double, lat: Double)) -> String {
        "{\"type\":\"Point\",\"coordinates\":\(coordinate((p.lon, p.lat)))}"
    }
    static func line(_ pts: [(lon: Double, lat: Double)]) -> String {
        "{\"type\":\"LineString\",\"coordinates\":[" + pts.map { coordinate(($0.lon, $0.lat)) }.joined(separator: ",") + "]}"
    }
    static func polygons(_ polys: [[[(x: Double, y: Double)]]]) -> String {
        let body = polys.map { rings in "[" + rings.map { "[" + $0.map(coordinate).joined(separator: ",") + "]" }.joined(separator: ",") + "]" }
        return "{\"type\":\"MultiPolygon\",\"coordinates\":[" + body.joined(separator: ",") + "]}"
    }
    static func escape(_ s: String) -> String {
        var o = ""
        for u in s.unicodeScalars {
            switch u {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "\n": o += "\\n"
            default:
                if u.value < 0x20 { o += String(format: "\\u%04x", u.value) } else { o.unicodeScalars.append(u) }
            }
        }
        return o
    }
    static func feature(geometry: String, properties: [(String, Value)]) -> String {
        let props = properties.map { k, v -> String in
            let value: String
            switch v {
            case .s(let s): value = "\"\(escape(s))\""
            case .n(let d): value = d.isFinite ? (d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String((d * 1000).rounded() / 1000)) : "null"
            case .null: value = "null"
            }
            return "\"\(k)\":\(value)"
        }.joined(separator: ",")
        return "{\"type\":\"Feature\",\"properties\":{\(props)},\"geometry\":\(geometry)}"
    }
}
