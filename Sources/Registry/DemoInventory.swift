import Foundation

// A deterministic demo inventory of security cameras for Bến Cát town (Bình Dương): 8 wards, a
// generated street layout (rotated street grids, Quốc lộ 13, dead-end alleys) and cameras at the
// grid intersections and along the alleys, with plausible Vietnamese owners and addresses.
//
// Determinism: everything is drawn from one seeded SplitMix64 stream per purpose, nothing is
// iterated in hash order, and the geometry uses only IEEE-754 basic operations (+ − × ÷ √ and
// rounding; the few trigonometric values come from the polynomial helpers at the end of this
// file, not from the platform's libm), so a seed gives the same bytes on every run, process and
// platform.

// MARK: - Public types

/// One ward or commune of Bến Cát town, with its centroid, population and area.
public struct Ward: Sendable, Equatable {
    /// Official name with diacritics and its prefix, e.g. `Phường Mỹ Phước` or `Xã An Điền`.
    public let name: String
    /// Name without diacritics or prefix, e.g. `My Phuoc`.
    public let asciiName: String
    /// Latitude of the centroid (WGS84 degrees).
    public let lat: Double
    /// Longitude of the centroid (WGS84 degrees).
    public let lon: Double
    /// Population.
    public let population: Int
    /// Area in hectares.
    public let areaHectares: Double

    /// Creates a ward.
    public init(name: String, asciiName: String, lat: Double, lon: Double, population: Int, areaHectares: Double) {
        self.name = name
        self.asciiName = asciiName
        self.lat = lat
        self.lon = lon
        self.population = population
        self.areaHectares = areaHectares
    }

    /// Whether this is a rural commune (`Xã …`, divided into `Ấp`) rather than an urban ward
    /// (`Phường …`, divided into `Khu phố`).
    public var isCommune: Bool { name.hasPrefix("Xã ") }

    /// The name without its `Phường `/`Xã ` prefix, e.g. `Mỹ Phước`.
    public var shortName: String {
        if name.hasPrefix("Phường ") { return String(name.dropFirst("Phường ".count)) }
        if name.hasPrefix("Xã ") { return String(name.dropFirst("Xã ".count)) }
        return name
    }
}

/// The class of a street in the demo layout.
public enum StreetKind: String, Sendable, CaseIterable {
    /// A through road between towns (Quốc lộ 13).
    case arterial
    /// An ordinary street of a ward's grid.
    case street
    /// A short dead-end lane (hẻm) branching off a street.
    case alley
}

/// A street of the demo layout: a named polyline.
public struct Street: Sendable, Equatable {
    /// Name, e.g. `Đường NA3`, `Đường Hùng Vương`, `Quốc lộ 13` or `Hẻm 12`.
    public let name: String
    /// The ward (name with diacritics) the street belongs to; `Thị xã Bến Cát` for Quốc lộ 13,
    /// which crosses several wards.
    public let ward: String
    /// Class of street.
    public let kind: StreetKind
    /// For an alley, the name of the street it branches off (`nil` otherwise). Alley names repeat
    /// across streets (`Hẻm 12` of `Đường NA3` and of `Đường NE1`), so the pair identifies it.
    public let parent: String?
    /// Vertices in order (WGS84 degrees), all strictly inside the town's bounding box.
    public let points: [(lat: Double, lon: Double)]

    /// Creates a street.
    public init(name: String, ward: String, kind: StreetKind, parent: String? = nil, points: [(lat: Double, lon: Double)]) {
        self.name = name
        self.ward = ward
        self.kind = kind
        self.parent = parent
        self.points = points
    }

    /// Equal when every field and every vertex is equal.
    public static func == (a: Street, b: Street) -> Bool {
        guard a.name == b.name, a.ward == b.ward, a.kind == b.kind, a.parent == b.parent,
              a.points.count == b.points.count else { return false }
        for (p, q) in zip(a.points, b.points) where p.lat != q.lat || p.lon != q.lon { return false }
        return true
    }
}

/// Constants of Bến Cát town.
public enum BenCat {
    /// The town as a whole, used as the `ward` of streets that cross several wards.
    public static let townName = "Thị xã Bến Cát"

    /// The 8 wards and communes.
    public static let wards: [Ward] = [
        Ward(name: "Phường Mỹ Phước", asciiName: "My Phuoc", lat: 11.1470, lon: 106.6076, population: 9737, areaHectares: 2144),
        Ward(name: "Phường Chánh Phú Hòa", asciiName: "Chanh Phu Hoa", lat: 11.1639, lon: 106.6579, population: 8512, areaHectares: 4585),
        Ward(name: "Xã An Điền", asciiName: "An Dien", lat: 11.1245, lon: 106.5719, population: 6342, areaHectares: 3101),
        Ward(name: "Xã An Tây", asciiName: "An Tay", lat: 11.1009, lon: 106.5424, population: 7357, areaHectares: 4429),
        Ward(name: "Phường Thới Hòa", asciiName: "Thoi Hoa", lat: 11.1044, lon: 106.6232, population: 8683, areaHectares: 3799),
        Ward(name: "Phường Hòa Lợi", asciiName: "Hoa Loi", lat: 11.0987, lon: 106.6706, population: 12616, areaHectares: 1762),
        Ward(name: "Xã Phú An", asciiName: "Phu An", lat: 11.0599, lon: 106.5865, population: 6007, areaHectares: 1992),
        Ward(name: "Phường Tân Định", asciiName: "Tan Dinh", lat: 11.0633, lon: 106.6320, population: 8949, areaHectares: 1626),
    ]

    /// Southern edge of the town's bounding box (degrees).
    public static let minLat = 11.0341
    /// Northern edge of the town's bounding box (degrees).
    public static let maxLat = 11.2295
    /// Western edge of the town's bounding box (degrees).
    public static let minLon = 106.5077
    /// Eastern edge of the town's bounding box (degrees).
    public static let maxLon = 106.6999

    /// Number of cameras in the standard demo inventory.
    public static let cameraCount = 1202

    /// Whether a point lies strictly inside the town's bounding box.
    public static func contains(lat: Double, lon: Double) -> Bool {
        lat > minLat && lat < maxLat && lon > minLon && lon < maxLon
    }
}

/// A deterministic, plausible demo inventory of Bến Cát's security cameras and streets.
public struct DemoInventory: Sendable, Equatable {
    /// The cameras, ids `BC-00001`, `BC-00002`, … in id order. Ids are numbered in order of
    /// registration (`createdAt`) and zero-padded to at least 5 digits — to 6 or more when
    /// `count` needs them, so the text order always equals the numeric order.
    public let cameras: [Camera]
    /// The streets: each ward's grid streets and alleys (wards in ``BenCat/wards`` order), then
    /// Quốc lộ 13. Independent of the camera count.
    public let streets: [Street]

    /// Creates an inventory from its parts.
    public init(cameras: [Camera], streets: [Street]) {
        self.cameras = cameras
        self.streets = streets
    }

    /// The default reference date: 2022-06-30T00:00:00Z.
    public static let defaultReferenceDate = Date(timeIntervalSince1970: 1_656_547_200)

    /// Generates the inventory: `count` cameras spread over the wards in proportion to their
    /// population (largest remainder; every ward gets at least one when `count ≥ 8`), two thirds
    /// of them at street intersections and most of the rest along alleys. The same `seed`,
    /// `count` and `referenceDate` always give the same inventory; the street layout depends on
    /// `seed` only. Creation and update dates fall between 2019-01-01 and `referenceDate`.
    public static func generate(seed: UInt64 = 20220626, count: Int = BenCat.cameraCount,
                                referenceDate: Date = DemoInventory.defaultReferenceDate) -> DemoInventory {
        var layoutRNG = DemoRNG(seed: seed ^ 0x5354_5245_4554_5321)   // "STREETS!"
        let layouts = BenCat.wards.enumerated().map { DemoWardLayout(index: $0.offset, ward: $0.element, rng: &layoutRNG) }
        let highway = DemoHighway(rng: &layoutRNG)

        var streets: [Street] = []
        for layout in layouts { streets.append(contentsOf: layout.streets()) }
        streets.append(highway.street)

        let n = max(0, count)
        let perWard = DemoAllocation.largestRemainder(total: n, weights: BenCat.wards.map(\.population))
        let clock = DemoClock(reference: referenceDate)
        var drafts: [DemoDraft] = []
        drafts.reserveCapacity(n)
        var camRNG = DemoRNG(seed: seed ^ 0x4341_4D45_5241_5321)      // "CAMERAS!"
        for (w, layout) in layouts.enumerated() {
            let k = perWard[w]
            let nIntersections = (2 * k + 1) / 3
            let nStreet = (k - nIntersections) / 10
            var kinds = [SiteKind](repeating: .intersection, count: nIntersections)
            kinds += [SiteKind](repeating: .street, count: nStreet)
            kinds += [SiteKind](repeating: .alley, count: k - nIntersections - nStreet)
            for kind in kinds {
                drafts.append(DemoDraft.make(kind: kind, layout: layout, highway: highway, clock: clock, rng: &camRNG))
            }
        }
        // Ids follow registration order; ties are broken by generation order (a total order, so
        // the result does not depend on the sort's stability).
        let created = drafts.map(\.created)
        let order = created.indices.sorted { created[$0] != created[$1] ? created[$0] < created[$1] : $0 < $1 }
        let width = max(5, String(n).count)
        var cameras: [Camera] = []
        cameras.reserveCapacity(n)
        for (i, k) in order.enumerated() {
            cameras.append(drafts[k].camera(id: "BC-" + DemoText.pad(i + 1, width)))
        }
        return DemoInventory(cameras: cameras, streets: streets)
    }
}

// MARK: - Random numbers

typealias DemoRNG = SeededRNG

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, fast, seeded generator, good enough for demo
/// data, benchmarks and tests; the same seed gives the same stream on every platform.
public struct SeededRNG: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A stream for `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform in [a, b).
    public mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * unit() }

    /// Uniform in 0..<n (n > 0).
    public mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// Uniform in the closed range.
    mutating func int(in r: ClosedRange<Int>) -> Int { r.lowerBound + int(r.upperBound - r.lowerBound + 1) }

    mutating func chance(_ p: Double) -> Bool { unit() < p }

    mutating func pick<T>(_ a: [T]) -> T { a[int(a.count)] }

    /// A value drawn from a weighted table.
    mutating func weighted<T: Sendable>(_ table: DemoWeights<T>) -> T {
        let r = int(table.total)
        var i = 0
        while r >= table.cumulative[i] { i += 1 }
        return table.values[i]
    }
}

/// Values with positive integer weights, prepared for drawing.
struct DemoWeights<T: Sendable>: Sendable {
    let values: [T]
    /// Running sums of the weights.
    let cumulative: [Int]
    var total: Int { cumulative[cumulative.count - 1] }

    init(_ table: [(T, Int)]) {
        values = table.map { $0.0 }
        var sum = 0
        cumulative = table.map { sum += $0.1; return sum }
    }
}

// MARK: - Allocation

enum DemoAllocation {
    /// Splits `total` in proportion to `weights` (largest remainder, ties to the lower index);
    /// when `total ≥ weights.count` every share is at least 1.
    static func largestRemainder(total: Int, weights: [Int]) -> [Int] {
        let sum = weights.reduce(0, +)
        guard total > 0, sum > 0 else { return [Int](repeating: 0, count: weights.count) }
        var shares = weights.map { total * $0 / sum }
        // Remainders as exact integers: total*w mod sum.
        let order = weights.indices.sorted {
            let ra = total * weights[$0] % sum, rb = total * weights[$1] % sum
            return ra != rb ? ra > rb : $0 < $1
        }
        var left = total - shares.reduce(0, +)
        for i in order where left > 0 {
            shares[i] += 1
            left -= 1
        }
        if total >= weights.count {
            for i in shares.indices where shares[i] == 0 {
                // Take one from the largest share (lowest index on ties).
                let j = shares.indices.max { shares[$0] != shares[$1] ? shares[$0] < shares[$1] : $0 > $1 }!
                shares[j] -= 1
                shares[i] += 1
            }
        }
        return shares
    }
}

// MARK: - Geometry

/// A point in a ward's local plane: metres east (`x`) and north (`y`) of the ward's centroid.
struct DemoPoint {
    var x: Double
    var y: Double

    static func + (a: DemoPoint, b: DemoPoint) -> DemoPoint { DemoPoint(x: a.x + b.x, y: a.y + b.y) }
    static func - (a: DemoPoint, b: DemoPoint) -> DemoPoint { DemoPoint(x: a.x - b.x, y: a.y - b.y) }
    static func * (a: DemoPoint, s: Double) -> DemoPoint { DemoPoint(x: a.x * s, y: a.y * s) }
    var length: Double { (x * x + y * y).squareRoot() }

    /// Unit vector pointing along `bearing` (degrees clockwise from north).
    static func unit(bearing: Double) -> DemoPoint {
        let r = bearing * DemoTrig.degree
        return DemoPoint(x: DemoTrig.sin(r), y: DemoTrig.cos(r))
    }
}

/// Equirectangular projection around a centroid; accurate to well under a metre over a ward.
struct DemoFrame {
    let lat0: Double
    let lon0: Double
    let metresPerDegreeLat: Double
    let metresPerDegreeLon: Double

    init(lat: Double, lon: Double) {
        lat0 = lat
        lon0 = lon
        let phi = lat * DemoTrig.degree
        // WGS84 metres per degree (series in the latitude).
        metresPerDegreeLat = 111_132.954 - 559.822 * DemoTrig.cos(2 * phi) + 1.175 * DemoTrig.cos(4 * phi)
        metresPerDegreeLon = 111_412.84 * DemoTrig.cos(phi) - 93.5 * DemoTrig.cos(3 * phi)
    }

    /// Latitude and longitude of a local point, rounded to 1e-7° (about 1 cm) and clamped to lie
    /// strictly inside the town's bounding box.
    func latLon(_ p: DemoPoint) -> (lat: Double, lon: Double) {
        DemoFrame.clamp(lat: lat0 + p.y / metresPerDegreeLat, lon: lon0 + p.x / metresPerDegreeLon)
    }

    static let margin = 0.0001   // about 11 m inside the box

    static func clamp(lat: Double, lon: Double) -> (lat: Double, lon: Double) {
        func round7(_ v: Double) -> Double { (v * 1e7).rounded() / 1e7 }
        let la = min(max(round7(lat), BenCat.minLat + margin), BenCat.maxLat - margin)
        let lo = min(max(round7(lon), BenCat.minLon + margin), BenCat.maxLon - margin)
        return (la, lo)
    }
}

/// Normalises an angle in degrees to [0, 360), rounded to 0.1°.
func demoNormalizeBearing(_ b: Double) -> Double {
    var h = b.truncatingRemainder(dividingBy: 360)
    if h < 0 { h += 360 }
    h = (h * 10).rounded() / 10
    return h >= 360 ? 0 : h
}

// MARK: - Street layout

/// Street names for a ward's grid: a code scheme per ward, plus a few named streets.
enum DemoStreetNames {
    /// Code prefixes (north–south, east–west) per ward, in ``BenCat/wards`` order, and whether
    /// the code is written with a dash and two digits (`DX-05`) or run together (`NA3`).
    static let codes: [(ns: String, ew: String, dashed: Bool)] = [
        ("NA", "NE", false),     // Mỹ Phước: Đường NA3, Đường NE8
        ("DX-", "NX-", true),    // Chánh Phú Hòa: Đường DX-05
        ("AĐ", "ĐA", false),     // An Điền
        ("AT", "TA", false),     // An Tây
        ("TH-", "HT-", true),    // Thới Hòa
        ("D", "N", false),       // Hòa Lợi: Đường D4, Đường N7
        ("PA-", "AP-", true),    // Phú An
        ("TĐ", "ĐN", false),     // Tân Định
    ]

    /// Named streets, handed out in order: two per ward (one each way).
    static let named = [
        "Hùng Vương", "Lê Lợi", "Trần Hưng Đạo", "Nguyễn Trãi", "Quang Trung", "Lý Thường Kiệt",
        "Hai Bà Trưng", "Trần Phú", "Nguyễn Du", "Điện Biên Phủ", "30 Tháng 4", "Cách Mạng Tháng Tám",
        "Nguyễn Thị Minh Khai", "Võ Thị Sáu", "Phan Bội Châu", "Lê Hồng Phong", "Tôn Đức Thắng",
        "Ngô Quyền", "Bà Triệu", "Nguyễn Văn Cừ", "Lê Duẩn", "Phạm Văn Đồng", "Hoàng Hoa Thám", "Độc Lập",
    ]
}

/// A dead-end alley of a ward's grid.
struct DemoAlley {
    /// `Hẻm <number>`; the number is the house number of its entrance on the parent street.
    let number: Int
    let parent: String
    /// Vertices from the entrance inwards.
    let points: [DemoPoint]
    /// Cumulative length at each vertex.
    let cumulative: [Double]
    /// Bearing from the entrance inwards (the alley's general direction).
    let bearing: Double

    var length: Double { cumulative[cumulative.count - 1] }

    /// The point `s` metres in, and the bearing of the segment there.
    func point(at s: Double) -> (DemoPoint, Double) {
        var k = 1
        while k < cumulative.count - 1 && cumulative[k] < s { k += 1 }
        let a = points[k - 1], b = points[k]
        let seg = cumulative[k] - cumulative[k - 1]
        let t = seg > 0 ? min(max((s - cumulative[k - 1]) / seg, 0), 1) : 0
        return (a + (b - a) * t, bearing)
    }
}

/// One ward's generated street grid and alleys.
struct DemoWardLayout {
    let index: Int
    let ward: Ward
    let frame: DemoFrame
    /// Grid rotation: bearing of the "north–south" streets (degrees, small).
    let theta: Double
    /// Unit vectors along the east–west streets (`u`) and the north–south streets (`v`).
    let axisU: DemoPoint
    let axisV: DemoPoint
    /// Grid line offsets along `u` (north–south streets) and `v` (east–west streets).
    let us: [Double]
    let vs: [Double]
    /// Jittered intersections: `nodes[i][j]` is where north–south street `i` meets east–west street `j`.
    let nodes: [[DemoPoint]]
    let nsNames: [String]
    let ewNames: [String]
    /// Distance along north–south street `i` (from its southern end) of node `j`.
    let nsDistance: [[Double]]
    /// Distance along east–west street `j` (from its western end) of node `i`.
    let ewDistance: [[Double]]
    let alleys: [DemoAlley]
    /// Number of `Khu phố`/`Ấp` zones across `u` and `v`.
    let zonesU: Int
    let zonesV: Int

    init(index: Int, ward: Ward, rng: inout DemoRNG) {
        self.index = index
        self.ward = ward
        frame = DemoFrame(lat: ward.lat, lon: ward.lon)
        theta = rng.uniform(-12, 12)
        axisV = DemoPoint.unit(bearing: theta)
        axisU = DemoPoint.unit(bearing: theta + 90)

        // The built-up core: a rectangle of about a third of the ward's side, split into blocks
        // of 200–400 m.
        let half = 0.3 * (ward.areaHectares * 10_000).squareRoot()
        let aspect = rng.uniform(0.85, 1.18)
        func lines(halfExtent: Double, rng: inout DemoRNG) -> [Double] {
            let spacing = rng.uniform(230, 340)
            var xs: [Double] = [0]
            while xs[xs.count - 1] < 2 * halfExtent || xs.count < 3 {
                xs.append(xs[xs.count - 1] + min(max(spacing * rng.uniform(0.8, 1.2), 200), 400))
            }
            let mid = (xs[0] + xs[xs.count - 1]) / 2
            return xs.map { $0 - mid }
        }
        let us = lines(halfExtent: half * aspect, rng: &rng)
        let vs = lines(halfExtent: half / aspect, rng: &rng)
        self.us = us
        self.vs = vs

        var nodes: [[DemoPoint]] = []
        for u in us {
            var column: [DemoPoint] = []
            for v in vs {
                let p = axisU * u + axisV * v
                column.append(p + DemoPoint(x: rng.uniform(-8, 8), y: rng.uniform(-8, 8)))
            }
            nodes.append(column)
        }
        self.nodes = nodes

        // Names: codes numbered from the west/south, except one named street each way near the
        // middle of the grid.
        let code = DemoStreetNames.codes[index % DemoStreetNames.codes.count]
        let namedPool = DemoStreetNames.named
        let nsNamed = us.count / 2 + rng.int(in: -1...1)
        let ewNamed = vs.count / 2 + rng.int(in: -1...1)
        func codeName(_ prefix: String, _ k: Int) -> String {
            "Đường " + prefix + (code.dashed ? DemoText.pad(k, 2) : String(k))
        }
        var nsNames: [String] = [], ewNames: [String] = []
        var k = 0
        for i in us.indices {
            if i == nsNamed { nsNames.append("Đường " + namedPool[(2 * index) % namedPool.count]) } else { k += 1; nsNames.append(codeName(code.ns, k)) }
        }
        k = 0
        for j in vs.indices {
            if j == ewNamed { ewNames.append("Đường " + namedPool[(2 * index + 1) % namedPool.count]) } else { k += 1; ewNames.append(codeName(code.ew, k)) }
        }
        self.nsNames = nsNames
        self.ewNames = ewNames
        func cumulative(_ pts: [DemoPoint]) -> [Double] {
            var d: [Double] = [0]
            for m in 1..<pts.count { d.append(d[m - 1] + (pts[m] - pts[m - 1]).length) }
            return d
        }
        // Street numbering starts a little before the first intersection (the street goes on).
        let nsDistance = us.indices.map { i in cumulative(nodes[i]).map { $0 + 40 } }
        let ewDistance = vs.indices.map { j in cumulative(us.indices.map { nodes[$0][j] }).map { $0 + 40 } }
        self.nsDistance = nsDistance
        self.ewDistance = ewDistance


        zonesU = ward.isCommune ? 2 : 3
        zonesV = 2

        // Alleys: 0–2 per block side, entering the block perpendicular to the street.
        var alleys: [DemoAlley] = []
        var used: [String: Set<Int>] = [:]   // membership only, never iterated
        func addAlleys(street: String, a: DemoPoint, b: DemoPoint, startDistance: Double, bearing: Double,
                       depthLeft: Double, depthRight: Double, rng: inout DemoRNG) {
            let r = rng.unit()
            let n = r < 0.40 ? 0 : (r < 0.88 ? 1 : 2)
            if n == 0 { return }
            let seg = (b - a).length
            for m in 0..<n {
                let t = n == 1 ? rng.uniform(0.2, 0.8) : (m == 0 ? rng.uniform(0.15, 0.42) : rng.uniform(0.58, 0.85))
                let right = rng.chance(0.5)
                let depth = right ? depthRight : depthLeft
                let length = rng.uniform(40, max(45, 0.45 * depth))
                let entry = a + (b - a) * t
                let inward = bearing + (right ? 90 : -90)
                let dir = DemoPoint.unit(bearing: inward)
                let side = DemoPoint.unit(bearing: inward + 90)
                let vertices = 2 + rng.int(3)
                var pts = [entry]
                for q in 1...vertices {
                    let along = length * Double(q) / Double(vertices)
                    pts.append(entry + dir * along + side * rng.uniform(-4, 4))
                }
                // Even numbers on the right-hand side, odd on the left.
                var number = Int((startDistance + seg * t) / 4) + 1
                if (number % 2 == 0) != right { number += 1 }
                var taken = used[street, default: []]
                while taken.contains(number) { number += 2 }
                taken.insert(number)
                used[street] = taken
                alleys.append(DemoAlley(number: number, parent: street, points: pts,
                                        cumulative: cumulative(pts), bearing: inward))
            }
        }
        let outsideDepth = 160.0
        for i in us.indices {
            for j in 0..<(vs.count - 1) {
                let left = i > 0 ? us[i] - us[i - 1] : outsideDepth
                let right = i < us.count - 1 ? us[i + 1] - us[i] : outsideDepth
                addAlleys(street: nsNames[i], a: nodes[i][j], b: nodes[i][j + 1], startDistance: nsDistance[i][j],
                          bearing: theta, depthLeft: left, depthRight: right, rng: &rng)
            }
        }
        for j in vs.indices {
            for i in 0..<(us.count - 1) {
                // Travelling east, the left-hand side is north.
                let left = j < vs.count - 1 ? vs[j + 1] - vs[j] : outsideDepth
                let right = j > 0 ? vs[j] - vs[j - 1] : outsideDepth
                addAlleys(street: ewNames[j], a: nodes[i][j], b: nodes[i + 1][j], startDistance: ewDistance[j][i],
                          bearing: theta + 90, depthLeft: left, depthRight: right, rng: &rng)
            }
        }
        self.alleys = alleys
    }

    /// The ward's streets: north–south, east–west, then alleys.
    func streets() -> [Street] {
        var out: [Street] = []
        for i in us.indices {
            out.append(Street(name: nsNames[i], ward: ward.name, kind: .street, points: nodes[i].map(frame.latLon)))
        }
        for j in vs.indices {
            out.append(Street(name: ewNames[j], ward: ward.name, kind: .street,
                              points: us.indices.map { frame.latLon(nodes[$0][j]) }))
        }
        for a in alleys {
            out.append(Street(name: "Hẻm \(a.number)", ward: ward.name, kind: .alley, parent: a.parent,
                              points: a.points.map(frame.latLon)))
        }
        return out
    }

    /// `Khu phố n` (wards) or `Ấp n` (communes) of a local point.
    func zone(of p: DemoPoint) -> String {
        let u = p.x * axisU.x + p.y * axisU.y
        let v = p.x * axisV.x + p.y * axisV.y
        func cell(_ w: Double, _ lo: Double, _ hi: Double, _ n: Int) -> Int {
            min(max(Int((w - lo) / (hi - lo) * Double(n)), 0), n - 1)
        }
        let zu = cell(u, us[0], us[us.count - 1], zonesU)
        let zv = cell(v, vs[0], vs[vs.count - 1], zonesV)
        return (ward.isCommune ? "Ấp " : "Khu phố ") + String(zv * zonesU + zu + 1)
    }
}

/// Quốc lộ 13: north–south through the town between longitudes 106.60 and 106.62.
struct DemoHighway {
    let street: Street
    /// Vertices as (lat, lon), south to north.
    let vertices: [(lat: Double, lon: Double)]

    init(rng: inout DemoRNG) {
        let phase = rng.uniform(0, 2 * DemoTrig.pi)
        var pts: [(lat: Double, lon: Double)] = []
        let south = BenCat.minLat + 0.0005, north = BenCat.maxLat - 0.0005
        let steps = 40
        for k in 0...steps {
            let lat = south + (north - south) * Double(k) / Double(steps)
            var lon = 106.610 + 0.006 * DemoTrig.sin(phase + lat * 35) + rng.uniform(-0.0004, 0.0004)
            lon = min(max(lon, 106.6005), 106.6195)
            pts.append(DemoFrame.clamp(lat: lat, lon: lon))
        }
        vertices = pts
        street = Street(name: "Quốc lộ 13", ward: BenCat.townName, kind: .arterial, points: pts)
    }

    /// The longitude of the road at `lat`, if the road spans it.
    func longitude(at lat: Double) -> Double? {
        guard lat >= vertices[0].lat, lat <= vertices[vertices.count - 1].lat else { return nil }
        var k = 1
        while k < vertices.count - 1 && vertices[k].lat < lat { k += 1 }
        let a = vertices[k - 1], b = vertices[k]
        let t = b.lat > a.lat ? (lat - a.lat) / (b.lat - a.lat) : 0
        return a.lon + (b.lon - a.lon) * t
    }
}

// MARK: - Cameras

/// Registration dates: between 2019-01-01 and the reference date, whole seconds.
struct DemoClock {
    let start: Double
    let end: Double

    init(reference: Date) {
        end = reference.timeIntervalSince1970.rounded(.down)
        start = min(1_546_300_800, end)   // 2019-01-01T00:00:00Z
    }

    /// A registration time, more frequent in recent years.
    func created(_ rng: inout DemoRNG) -> Double {
        let u = rng.unit()
        let t = rng.chance(0.5) ? u : u.squareRoot()
        return (start + (end - start) * t).rounded(.down)
    }

    /// A registration time within the last `days` days.
    func recent(days: Double, _ rng: inout DemoRNG) -> Double {
        max(start, (end - rng.uniform(0, days * 86_400)).rounded(.down))
    }
}

/// A camera before its id is known.
struct DemoDraft {
    var lat = 0.0, lon = 0.0
    var siteKind = SiteKind.intersection
    var address = ""
    var ward = ""
    var heading: Double?
    var fov = 90.0, range = 30.0
    var mountHeight: Double?
    var ownerKind = OwnerKind.household
    var ownerName: String?
    var ownerPhone: String?
    var schedule = RecordingSchedule.always
    var retentionDays = 30
    var status = CameraStatus.active
    var created = 0.0, updated = 0.0

    func camera(id: String) -> Camera {
        Camera(id: id, lat: lat, lon: lon, siteKind: siteKind, address: address, ward: ward, heading: heading,
               fov: fov, range: range, mountHeight: mountHeight, ownerKind: ownerKind, ownerName: ownerName,
               ownerPhone: ownerPhone, schedule: schedule, retentionDays: retentionDays, status: status,
               createdAt: Date(timeIntervalSince1970: created), updatedAt: Date(timeIntervalSince1970: updated),
               version: 1)
    }

    // Owner kind weights per site: public cameras watch intersections; boarding houses line the
    // alleys. Over the whole inventory (2/3 intersections) this gives about 45 % households,
    // 25 % businesses, 15 % boarding houses, 10 % companies and 5 % public.
    static let ownersAtIntersections = DemoWeights<OwnerKind>([
        (.household, 400), (.business, 280), (.boardingHouse, 120), (.company, 125), (.public, 75)])
    static let ownersInAlleys = DemoWeights<OwnerKind>([
        (.household, 550), (.business, 190), (.boardingHouse, 210), (.company, 50)])
    static let retention = DemoWeights<Int>([(7, 10), (14, 15), (15, 15), (30, 35), (45, 8), (60, 10), (90, 7)])
    static let dailySchedules = DemoWeights<RecordingSchedule>([
        (.daily(start: 18 * 60, end: 6 * 60), 40), (.daily(start: 6 * 60, end: 22 * 60), 25),
        (.daily(start: 22 * 60, end: 6 * 60), 15), (.daily(start: 17 * 60 + 30, end: 6 * 60 + 30), 10),
        (.daily(start: 7 * 60, end: 21 * 60), 10)])
    /// Lens angles 60°…120° in 5° steps; 90° is the most common.
    static let fields = DemoWeights<Double>([(60, 3), (65, 1), (70, 2), (75, 1), (80, 4), (85, 1), (90, 8),
                                             (95, 1), (100, 3), (105, 1), (110, 4), (115, 1), (120, 3)])

    static func make(kind: SiteKind, layout: DemoWardLayout, highway: DemoHighway, clock: DemoClock,
                     rng: inout DemoRNG) -> DemoDraft {
        var d = DemoDraft()
        d.siteKind = kind
        d.ward = layout.ward.name
        d.ownerKind = rng.weighted(kind == .intersection ? ownersAtIntersections : ownersInAlleys)

        var position = DemoPoint(x: 0, y: 0)
        var streetBearing = 0.0
        var streetLine = ""
        var houseNumber = ""
        var absolute: (lat: Double, lon: Double)?

        switch kind {
        case .alley where !layout.alleys.isEmpty:
            let alley = rng.pick(layout.alleys)
            let s = rng.uniform(min(8, alley.length / 2), alley.length)
            let (p, b) = alley.point(at: s)
            let right = rng.chance(0.5)
            position = p + DemoPoint.unit(bearing: b + (right ? 90 : -90)) * rng.uniform(1.5, 4)
            // Cameras look along the alley (either way) or straight across it from a gate.
            streetBearing = rng.chance(0.75) ? b + (rng.chance(0.5) ? 0 : 180) : b + (right ? -90 : 90)
            var sub = Int(s / 4) + 1
            if (sub % 2 == 0) != right { sub += 1 }
            houseNumber = "Số \(alley.number)/\(sub)"
            streetLine = "Hẻm \(alley.number), \(alley.parent)"
        case .street, .alley:
            // Mid-block on a grid street, or on Quốc lộ 13 where it crosses the ward's grid.
            d.siteKind = .street
            let onHighway = rng.chance(0.5)
            let v = rng.uniform(layout.vs[0], layout.vs[layout.vs.count - 1])
            let probe = layout.frame.latLon(layout.axisV * v)
            if onHighway, let lon = highway.longitude(at: probe.lat) {
                let local = DemoPoint(x: (lon - layout.frame.lon0) * layout.frame.metresPerDegreeLon,
                                      y: (probe.lat - layout.frame.lat0) * layout.frame.metresPerDegreeLat)
                let u = local.x * layout.axisU.x + local.y * layout.axisU.y
                if u >= layout.us[0] - 300, u <= layout.us[layout.us.count - 1] + 300 {
                    let right = rng.chance(0.5)
                    let metresEast = (right ? 1.0 : -1.0) * rng.uniform(10, 18)   // a wide road
                    absolute = DemoFrame.clamp(lat: probe.lat, lon: lon + metresEast / layout.frame.metresPerDegreeLon)
                    position = local + DemoPoint(x: metresEast, y: 0)
                    streetBearing = rng.chance(0.5) ? 0 : 180
                    // Quốc lộ 13 is numbered from Thủ Dầu Một, about 12 km to the south.
                    var n = Int((12_000 + (probe.lat - BenCat.minLat) * layout.frame.metresPerDegreeLat) / 4) + 1
                    if (n % 2 == 0) != right { n += 1 }
                    houseNumber = "Số \(n)"
                    streetLine = highway.street.name
                }
            }
            if absolute == nil {
                let ns = rng.chance(0.5)
                let i = rng.int(ns ? layout.us.count : layout.us.count - 1)
                let j = rng.int(ns ? layout.vs.count - 1 : layout.vs.count)
                let a = layout.nodes[i][j], b = ns ? layout.nodes[i][j + 1] : layout.nodes[i + 1][j]
                let t = rng.uniform(0.2, 0.8)
                let bearing = ns ? layout.theta : layout.theta + 90
                let right = rng.chance(0.5)
                position = a + (b - a) * t + DemoPoint.unit(bearing: bearing + (right ? 90 : -90)) * rng.uniform(5, 9)
                streetBearing = bearing + (rng.chance(0.5) ? 0 : 180)
                let start = ns ? layout.nsDistance[i][j] : layout.ewDistance[j][i]
                var n = Int((start + (b - a).length * t) / 4) + 1
                if (n % 2 == 0) != right { n += 1 }
                houseNumber = "Số \(n)"
                streetLine = ns ? layout.nsNames[i] : layout.ewNames[j]
            }
        default:
            // An intersection: a few metres from the junction, facing down one of its arms.
            let i = rng.int(layout.us.count), j = rng.int(layout.vs.count)
            let r = 6 * rng.unit().squareRoot()
            position = layout.nodes[i][j] + DemoPoint.unit(bearing: rng.uniform(0, 360)) * r
            streetBearing = layout.theta + 90 * Double(rng.int(4))
            let ns = rng.chance(0.5)
            let right = rng.chance(0.5)
            let along = ns ? layout.nsDistance[i][j] : layout.ewDistance[j][i]
            var n = max(1, Int(along / 4) + 1 + rng.int(in: -2...2))
            if (n % 2 == 0) != right { n += 1 }
            houseNumber = "Số \(n)"
            streetLine = ns ? layout.nsNames[i] : layout.ewNames[j]
        }

        let ll = absolute ?? layout.frame.latLon(position)
        d.lat = ll.lat
        d.lon = ll.lon
        d.address = "\(houseNumber), \(streetLine), \(layout.zone(of: position)), \(layout.ward.name)"

        let official = d.ownerKind == .public || d.ownerKind == .company
        if rng.chance(0.10) {
            d.heading = nil
            d.fov = 360
            d.range = Double(rng.int(in: 15...40))
        } else {
            let jitter = kind == .intersection ? 15.0 : 20.0
            d.heading = demoNormalizeBearing(streetBearing + rng.uniform(-jitter, jitter))
            d.fov = rng.weighted(fields)
            d.range = Double(official ? rng.int(in: 30...120) : rng.int(in: 15...80))
        }
        d.mountHeight = (rng.uniform(official ? 3.5 : 2.5, 6.0) * 10).rounded() / 10
        d.retentionDays = rng.weighted(retention)
        d.schedule = rng.chance(0.2) ? rng.weighted(dailySchedules) : .always
        if d.ownerKind == .public { d.schedule = .always }   // police cameras record around the clock

        let r = rng.unit()
        d.status = r < 0.92 ? .active : (r < 0.97 ? .offline : .pending)
        switch d.status {
        case .pending:
            d.created = clock.recent(days: 45, &rng)
            d.updated = d.created
        case .offline:
            d.created = clock.created(&rng)
            d.updated = (d.created + (clock.end - d.created) * rng.uniform(0.3, 1)).rounded(.down)
        default:
            d.created = clock.created(&rng)
            d.updated = rng.chance(0.55) ? d.created : (d.created + (clock.end - d.created) * rng.unit()).rounded(.down)
        }

        d.ownerName = DemoText.ownerName(d.ownerKind, ward: layout.ward, rng: &rng)
        d.ownerPhone = DemoText.mobile(&rng)
        return d
    }
}

// MARK: - Vietnamese text

enum DemoText {
    /// `v` in decimal, zero-padded to `width` digits.
    static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// Family names with rough frequencies (per mille) in southern Vietnam.
    static let families = DemoWeights<String>([
        ("Nguyễn", 380), ("Trần", 110), ("Lê", 95), ("Phạm", 70), ("Hoàng", 30), ("Huỳnh", 45), ("Phan", 45),
        ("Võ", 40), ("Đặng", 20), ("Bùi", 20), ("Đỗ", 15), ("Hồ", 15), ("Ngô", 13), ("Dương", 10), ("Lý", 8),
        ("Trương", 12), ("Đinh", 8), ("Lâm", 8), ("Mai", 6), ("Tô", 4)])
    static let maleMiddle = ["Văn", "Văn", "Văn", "Minh", "Thanh", "Quốc", "Hữu", "Đức", "Công", "Hoàng"]
    static let femaleMiddle = ["Thị", "Thị", "Thị", "Ngọc", "Thanh", "Thu", "Kim", "Mỹ", "Bích", "Hồng"]
    static let maleGiven = ["An", "Bình", "Cường", "Dũng", "Hải", "Hùng", "Khang", "Long", "Minh", "Nam", "Phong",
                            "Phúc", "Quang", "Sơn", "Tài", "Thắng", "Tuấn", "Vinh", "Huy", "Trung", "Hiếu", "Lộc",
                            "Tín", "Nghĩa", "Toàn", "Đạt", "Khoa", "Tâm"]
    static let femaleGiven = ["Anh", "Hà", "Hạnh", "Hoa", "Hồng", "Hương", "Lan", "Linh", "Mai", "Ngân", "Nhung",
                              "Oanh", "Phương", "Thảo", "Trang", "Tuyết", "Vân", "Yến", "Diễm", "Loan", "Hằng",
                              "Nga", "Trinh", "Thủy"]
    /// Shop and trade names.
    static let trades = ["Phát Đạt", "Thành Công", "Minh Khang", "Hoàng Long", "An Phú", "Tân Tiến", "Thịnh Phát",
                         "Kim Ngân", "Phú Quý", "Hưng Thịnh", "Vạn Phúc", "Bình An", "Hồng Phúc", "Phước Lộc",
                         "Tân Phú", "Đại Việt", "Nam Việt", "Thái Bình", "Sao Mai", "Trường Thịnh", "Quang Minh",
                         "Gia Huy", "Ngọc Ánh", "Bảo Châu", "Mộc", "Xanh", "Hạnh Phúc", "Thuận Phát"]
    /// Southern Vietnamese nicknames by birth order, used for shop names (`Quán cơm Cô Ba`).
    static let nicknames = ["Cô Ba", "Cô Tư", "Cô Năm", "Cô Sáu", "Chú Tư", "Chú Bảy", "Bà Tám", "Anh Hai", "Chị Hai",
                            "Út", "Dì Ba", "Bác Sáu"]
    static let shops = DemoWeights<String>([("Tiệm tạp hóa", 30), ("Quán cà phê", 22), ("Tiệm sửa xe", 10), ("Quán cơm", 9),
                        ("Nhà thuốc", 6), ("Cửa hàng điện thoại", 5), ("Tiệm vàng", 3), ("Tiệm bánh mì", 6),
                        ("Tiệm uốn tóc", 5), ("Cửa hàng vật liệu xây dựng", 4)])
    static let industries = ["Sản xuất Thương mại", "Bao bì", "May mặc", "Cơ khí", "Gỗ", "Nhựa", "Điện tử",
                             "Thép", "Giao nhận Vận tải", "Thực phẩm", "Xây dựng"]

    static func person(_ rng: inout DemoRNG) -> String {
        let family = rng.weighted(families)
        if rng.chance(0.5) {
            return "\(family) \(rng.pick(maleMiddle)) \(rng.pick(maleGiven))"
        }
        return "\(family) \(rng.pick(femaleMiddle)) \(rng.pick(femaleGiven))"
    }

    /// A two-syllable given name as shop owners use them (`Thu Hà`, `Minh Tâm`).
    static let shopFemaleMiddle = ["Ngọc", "Thanh", "Thu", "Kim", "Mỹ", "Bích", "Hồng"]
    static let shopMaleMiddle = ["Minh", "Thanh", "Quốc", "Hữu", "Đức", "Công", "Hoàng"]
    static func shortName(_ rng: inout DemoRNG) -> String {
        rng.chance(0.5) ? "\(rng.pick(shopFemaleMiddle)) \(rng.pick(femaleGiven))"
                        : "\(rng.pick(shopMaleMiddle)) \(rng.pick(maleGiven))"
    }

    static func ownerName(_ kind: OwnerKind, ward: Ward, rng: inout DemoRNG) -> String {
        switch kind {
        case .household:
            return person(&rng)
        case .business:
            let shop = rng.weighted(shops)
            let r = rng.unit()
            let name = r < 0.4 ? shortName(&rng) : (r < 0.7 ? rng.pick(nicknames) : rng.pick(trades))
            return "\(shop) \(name)"
        case .boardingHouse:
            let r = rng.unit()
            let name = r < 0.45 ? rng.pick(trades) : (r < 0.75 ? rng.pick(nicknames) : shortName(&rng))
            return "Nhà trọ \(name)"
        case .company:
            let suffix = rng.chance(0.3) ? " Bình Dương" : (rng.chance(0.3) ? " Việt Nam" : "")
            return "Công ty TNHH \(rng.pick(industries)) \(rng.pick(trades))\(suffix)"
        case .public:
            return (ward.isCommune ? "Công an xã " : "Công an phường ") + ward.shortName
        }
    }

    /// A Vietnamese mobile number: `09x…` or `03[2-9]…`, 10 digits.
    static func mobile(_ rng: inout DemoRNG) -> String {
        let head = rng.chance(0.55) ? "09\(rng.int(10))" : "03\(rng.int(in: 2...9))"
        return head + pad(rng.int(10_000_000), 7)
    }
}

// MARK: - Deterministic trigonometry

/// Sine and cosine from polynomials on IEEE-754 basic operations, so results are identical on
/// every platform (libm implementations differ in the last bit). Accurate to about 1e-15.
enum DemoTrig {
    static let pi = 3.141_592_653_589_793
    static let degree = pi / 180

    static func sin(_ x: Double) -> Double {
        // Reduce to [−π, π], then to [−π/2, π/2] using sin(π − r) = sin r.
        var r = x - (x / (2 * pi)).rounded() * (2 * pi)
        if r > pi / 2 { r = pi - r } else if r < -pi / 2 { r = -pi - r }
        let r2 = r * r
        // Taylor series to r^19 (error below 1e-15 on [−π/2, π/2]).
        var s = -1.0 / 121_645_100_408_832_000
        s = s * r2 + 1.0 / 355_687_428_096_000
        s = s * r2 - 1.0 / 1_307_674_368_000
        s = s * r2 + 1.0 / 6_227_020_800
        s = s * r2 - 1.0 / 39_916_800
        s = s * r2 + 1.0 / 362_880
        s = s * r2 - 1.0 / 5_040
        s = s * r2 + 1.0 / 120
        s = s * r2 - 1.0 / 6
        s = s * r2 + 1
        return s * r
    }

    static func cos(_ x: Double) -> Double { sin(x + pi / 2) }
}
