import Foundation
import Geo
import NIOConcurrencyHelpers

// MARK: - Input errors

/// Why an incident's input was refused. `code` is the stable wire code (see ``IncidentInputError/Code``).
public struct IncidentInputError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Stable codes (the control protocol sends them as error codes).
    public enum Code: String, Sendable {
        /// A time with no UTC offset (`2019-01-01T19:50:00`): the instant would be ambiguous.
        case timeWithoutOffset = "time_without_offset"
        /// `from` is after `to`.
        case badTimeWindow = "bad_time_window"
        /// `to − from` is longer than the maximum (7 days by default).
        case timeWindowTooLong = "time_window_too_long"
        /// A geometry that cannot be read, is empty, is invalid (GEOS's reason), of an unsupported
        /// type, or outside the WGS84 range.
        case invalidGeometry = "invalid_geometry"
        /// Any other malformed value (a time that is not ISO-8601, an empty case id, …).
        case invalidValue = "invalid_value"
        /// A required value is missing.
        case missingValue = "missing_option"
    }

    public var code: Code
    public var message: String
    /// The input field the error is about (`from`, `wkt`, a CSV column, …).
    public var field: String

    public init(_ code: Code, _ message: String, field: String) {
        self.code = code
        self.message = message
        self.field = field
    }

    public var description: String { "\(code.rawValue) (\(field)): \(message)" }
}

// MARK: - Rules

/// Limits of incident input. The process-wide value is ``IncidentLimits/current`` (the daemon may
/// set it from its configuration at start-up; tests may change it).
public struct IncidentLimits: Sendable, Equatable {
    /// Longest accepted incident window, in seconds (default 7 days).
    public var maxWindow: TimeInterval = 7 * 86_400
    /// Candidate-camera radius when none is given, metres.
    public var defaultRadius = 200.0
    /// Longest case id / kind, in characters.
    public var maxTextLength = 100
    /// Longest description, in characters.
    public var maxDescriptionLength = 4000

    public init() {}

    private static let box = NIOLockedValueBox(IncidentLimits())
    /// The limits in force in this process.
    public static var current: IncidentLimits {
        get { box.withLockedValue { $0 } }
        set { box.withLockedValue { $0 = newValue } }
    }
}

/// Parsing of incident times and windows.
public enum IncidentTimes {
    /// An ISO-8601 time with a mandatory offset (``IncidentTime/parse(_:)``). A time that would be
    /// valid with an offset is refused as `time_without_offset`; anything else as `invalid_value`.
    public static func parse(_ text: String, field: String) throws(IncidentInputError) -> Date {
        let t = text.trimmingCharacters(in: .whitespaces)
        if let d = IncidentTime.parse(t) { return d }
        if IncidentTime.parse(t + "Z") != nil {
            throw IncidentInputError(.timeWithoutOffset,
                                     "\(field) \(clip(t)) has no UTC offset; add Z or +07:00 (e.g. \(t)+07:00)", field: field)
        }
        throw IncidentInputError(.invalidValue,
                                 "\(field) must be an ISO-8601 time with an offset like 2022-06-26T06:40+07:00, not \(clip(t))", field: field)
    }

    /// The window of an incident: `at` alone (an instant) or `from` and `to` (both inclusive).
    /// Checks `from ≤ to` (`bad_time_window`) and the maximum length (`time_window_too_long`).
    public static func window(at: String?, from: String?, to: String?,
                              limits: IncidentLimits = .current) throws(IncidentInputError) -> IncidentWindow {
        if let at {
            guard from == nil, to == nil else {
                throw IncidentInputError(.invalidValue, "give either at=<time> or from=<time> to=<time>, not both", field: "at")
            }
            return IncidentWindow(instant: try parse(at, field: "at"))
        }
        guard let from else { throw IncidentInputError(.missingValue, "the incident needs at=<time> or from=<time> to=<time>", field: from == nil && to != nil ? "from" : "at") }
        guard let to else { throw IncidentInputError(.missingValue, "from= needs to= as well (or use at= for an instant)", field: "to") }
        return try window(from: parse(from, field: "from"), to: parse(to, field: "to"), limits: limits)
    }

    /// A checked window from two instants.
    public static func window(from: Date, to: Date, limits: IncidentLimits = .current,
                              checkLength: Bool = true) throws(IncidentInputError) -> IncidentWindow {
        guard let w = IncidentWindow(from: from, to: to) else {
            throw IncidentInputError(.badTimeWindow, "from (\(IncidentTime.format(from))) is after to (\(IncidentTime.format(to)))", field: "from")
        }
        if checkLength, to.timeIntervalSince(from) > limits.maxWindow {
            let hours = to.timeIntervalSince(from) / 3600
            throw IncidentInputError(.timeWindowTooLong,
                                     "the window is \(String(format: "%.1f", hours)) h long; at most \(fmt(limits.maxWindow / 3600)) h (\(fmt(limits.maxWindow / 86_400)) days) is allowed",
                                     field: "to")
        }
        return w
    }

    /// A query filter window: optional bounds, checked for order only.
    public static func filter(from: String?, to: String?) throws(IncidentInputError) -> (from: Date?, to: Date?) {
        let f = try from.map { s throws(IncidentInputError) in try parse(s, field: "from") }
        let t = try to.map { s throws(IncidentInputError) in try parse(s, field: "to") }
        if let f, let t, f > t {
            throw IncidentInputError(.badTimeWindow, "from (\(IncidentTime.format(f))) is after to (\(IncidentTime.format(t)))", field: "from")
        }
        return (f, t)
    }

    static func clip(_ s: String) -> String { s.count > 40 ? "'\(s.prefix(40))…'" : "'\(s)'" }
    static func fmt(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(format: "%.2f", d) }
}

// MARK: - Geometry

/// The geometry of an incident in WGS84 (x = lon, y = lat): a point, a line (a route, geodesic
/// segments) or a polygon (an area, with holes). A plain value (no GEOS object); its
/// ``wkt`` is GEOS's normalised text.
public struct IncidentShape: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case point, line, polygon
    }

    public let kind: Kind
    /// WKT as GEOS writes it (`POINT (lon lat)`, `LINESTRING (…)`, `POLYGON ((…), (…))`).
    public let wkt: String
    /// The rings of a polygon (exterior first), the vertices of a line, or the single point:
    /// each as (lat, lon).
    public let parts: [[(lat: Double, lon: Double)]]
    /// Bounding box.
    public let minLat: Double, minLon: Double, maxLat: Double, maxLon: Double

    public static func == (a: IncidentShape, b: IncidentShape) -> Bool { a.wkt == b.wkt }

    /// A point.
    public static func point(lat: Double, lon: Double) throws(IncidentInputError) -> IncidentShape {
        guard lat.isFinite, lon.isFinite, (-90...90).contains(lat), (-180...180).contains(lon) else {
            throw IncidentInputError(.invalidGeometry, "point (\(lat), \(lon)) is outside the WGS84 range", field: "point")
        }
        return IncidentShape(kind: .point, wkt: "POINT (\(lon) \(lat))", parts: [[(lat, lon)]])
    }

    /// Reads and validates WKT (x = longitude, y = latitude): a `POINT`, `LINESTRING` or
    /// `POLYGON`, non-empty, valid for GEOS (the reason is reported otherwise: e.g.
    /// `Self-intersection[…]`, `Too few points[…]`), within ±180/±90.
    public static func parse(wkt text: String, field: String = "wkt") throws(IncidentInputError) -> IncidentShape {
        do {
            let g: Geometry
            do { g = try Geometry.wkt(text) } catch let e as GeoError {
                throw IncidentInputError(.invalidGeometry, "cannot read the WKT: \(e.message)", field: field)
            }
            let kind: Kind
            switch g.typeName {
            case "Point": kind = .point
            case "LineString": kind = .line
            case "Polygon": kind = .polygon
            default:
                throw IncidentInputError(.invalidGeometry, "expected a POINT, LINESTRING or POLYGON, got \(g.typeName)", field: field)
            }
            guard !g.isEmpty else { throw IncidentInputError(.invalidGeometry, "the geometry is empty", field: field) }
            if let reason = try g.invalidReason() {
                throw IncidentInputError(.invalidGeometry, "invalid \(kind.rawValue): \(reason)", field: field)
            }
            let b = try g.bounds()
            guard b.minX >= -180, b.maxX <= 180, b.minY >= -90, b.maxY <= 90 else {
                throw IncidentInputError(.invalidGeometry, "coordinates must be longitude (x, ±180) then latitude (y, ±90), as WKT orders them", field: field)
            }
            let normalised = try g.wkt()
            let parts = try coordinateGroups(normalised)
            guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else {
                throw IncidentInputError(.invalidGeometry, "cannot read the coordinates of \(normalised.prefix(60))", field: field)
            }
            if kind == .line, Set(parts[0].map { "\($0.lat),\($0.lon)" }).count < 2 {
                throw IncidentInputError(.invalidGeometry, "a line needs at least 2 distinct points", field: field)
            }
            return IncidentShape(kind: kind, wkt: normalised, parts: parts)
        } catch let e as IncidentInputError {
            throw e
        } catch {
            throw IncidentInputError(.invalidGeometry, "\(error)", field: field)
        }
    }

    init(kind: Kind, wkt: String, parts: [[(lat: Double, lon: Double)]]) {
        self.kind = kind
        self.wkt = wkt
        self.parts = parts
        let all = parts.joined()
        minLat = all.map(\.lat).min() ?? 0
        maxLat = all.map(\.lat).max() ?? 0
        minLon = all.map(\.lon).min() ?? 0
        maxLon = all.map(\.lon).max() ?? 0
    }

    /// The innermost parenthesised groups of a WKT text, each as (lat, lon) pairs.
    static func coordinateGroups(_ wkt: String) throws -> [[(lat: Double, lon: Double)]] {
        var groups: [[(lat: Double, lon: Double)]] = []
        var current: String?
        for ch in wkt {
            if ch == "(" { current = "" } else if ch == ")" {
                if let text = current {
                    var pts: [(lat: Double, lon: Double)] = []
                    for tuple in text.split(separator: ",") {
                        let n = tuple.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Double($0) }
                        guard n.count >= 2 else { throw GeoError(.parse, "bad coordinate '\(tuple)'") }
                        pts.append((n[1], n[0]))
                    }
                    groups.append(pts)
                }
                current = nil
            } else if current != nil {
                current!.append(ch)
            }
        }
        return groups
    }

    /// A representative (lat, lon): the point, else the centre of the bounding box.
    public var centre: (lat: Double, lon: Double) {
        kind == .point ? parts[0][0] : ((minLat + maxLat) / 2, (minLon + maxLon) / 2)
    }

    /// Metres from the centre to the farthest corner or edge midpoint of the bounding box: every
    /// point of the shape is within this distance of ``centre`` (0 for a point).
    public var reach: Double {
        guard kind != .point else { return 0 }
        let c = centre
        var r = 0.0
        for (y, x) in [(minLat, minLon), (minLat, maxLon), (maxLat, minLon), (maxLat, maxLon),
                       (minLat, c.lon), (maxLat, c.lon), (c.lat, minLon), (c.lat, maxLon)] {
            r = max(r, Geodesic.wgs84.distance(lat1: c.lat, lon1: c.lon, lat2: y, lon2: x))
        }
        return r * 1.01 + 1
    }

    /// Ellipsoidal distance in metres from (lat, lon) to the shape:
    /// - point: the geodesic distance (as `NEAR` and PostGIS `ST_Distance(geography)`);
    /// - line: the distance to the closest point of its geodesic segments (as `CameraIndex.along`);
    /// - polygon: 0 inside or on the boundary (planar lon/lat test, as PostGIS `geometry`),
    ///   else the distance to the nearest ring.
    public func distance(toLat lat: Double, lon: Double) -> Double {
        switch kind {
        case .point:
            let p = parts[0][0]
            return Geodesic.wgs84.distance(lat1: lat, lon1: lon, lat2: p.lat, lon2: p.lon)
        case .line:
            return Self.distance(toPath: parts[0], lat: lat, lon: lon)
        case .polygon:
            if contains(lat: lat, lon: lon) { return 0 }
            return parts.map { Self.distance(toPath: $0, lat: lat, lon: lon) }.min() ?? .infinity
        }
    }

    static func distance(toPath points: [(lat: Double, lon: Double)], lat: Double, lon: Double) -> Double {
        guard let path = try? GeodesicPath(points) else {
            return points.map { Geodesic.wgs84.distance(lat1: lat, lon1: lon, lat2: $0.lat, lon2: $0.lon) }.min() ?? .infinity
        }
        var best = Double.infinity
        for seg in path.segments { best = min(best, seg.closestPoint(toLat: lat, lon: lon).distance) }
        return best
    }

    /// For a polygon: whether (lat, lon) is inside or on the boundary (even-odd rule over the
    /// rings, planar in lon/lat degrees).
    public func contains(lat: Double, lon: Double) -> Bool {
        guard kind == .polygon else { return false }
        var inside = false
        for ring in parts {
            let n = ring.count
            guard n >= 3 else { continue }
            var j = n - 1
            for i in 0..<n {
                let a = ring[i], b = ring[j]
                // On the edge?
                let cross = (b.lon - a.lon) * (lat - a.lat) - (b.lat - a.lat) * (lon - a.lon)
                if abs(cross) <= 1e-15, lon >= min(a.lon, b.lon), lon <= max(a.lon, b.lon),
                   lat >= min(a.lat, b.lat), lat <= max(a.lat, b.lat) { return true }
                if (a.lat > lat) != (b.lat > lat) {
                    let x = (b.lon - a.lon) * (lat - a.lat) / (b.lat - a.lat) + a.lon
                    if lon < x { inside.toggle() }
                }
                j = i
            }
        }
        return inside
    }

    /// Whether the shape intersects the lon/lat box (planar, GEOS).
    public func intersects(minLat: Double, minLon: Double, maxLat: Double, maxLon: Double) throws -> Bool {
        if self.maxLat < minLat || self.minLat > maxLat || self.maxLon < minLon || self.minLon > maxLon { return false }
        if kind == .point { return true }
        let box = try Geometry.rectangle(minX: minLon, minY: minLat, maxX: maxLon, maxY: maxLat)
        return try Geometry.wkt(wkt, context: box.context).intersects(box)
    }
}

// MARK: - Model

/// A candidate camera of an incident, as linked when the incident was recorded.
public struct IncidentCameraLink: Sendable, Equatable {
    public var cameraID: String
    /// Metres from the camera to the incident geometry.
    public var distance: Double
    /// Whether the camera's field of view covers (point) or intersects (line, polygon) the incident.
    public var sees: Bool
    /// Footage state for the incident window at linking time.
    public var footage: FootageState
    /// When deletion of the incident's footage starts (nil unless recorded).
    public var expiresAt: Date?

    public init(cameraID: String, distance: Double, sees: Bool, footage: FootageState, expiresAt: Date?) {
        self.cameraID = cameraID
        self.distance = distance
        self.sees = sees
        self.footage = footage
        self.expiresAt = expiresAt
    }
}

/// An incident: a case, a kind, a time window and a place, with its candidate cameras.
public struct Incident: Sendable, Equatable {
    /// Database id (0 before it is stored).
    public var id: Int64
    public var caseID: String
    /// Lower-case kind (`robbery`, `personal robbery`, …).
    public var kind: String
    public var window: IncidentWindow
    public var shape: IncidentShape
    /// The radius used to link cameras, metres.
    public var radius: Double
    public var description: String?
    public var createdAt: Date

    public init(id: Int64 = 0, caseID: String, kind: String, window: IncidentWindow, shape: IncidentShape,
                radius: Double, description: String?, createdAt: Date) {
        self.id = id
        self.caseID = caseID
        self.kind = kind
        self.window = window
        self.shape = shape
        self.radius = radius
        self.description = description
        self.createdAt = createdAt
    }

    /// Checks and normalises the text fields (trimmed, NFC; kind lower-cased).
    public static func text(caseID: String?, kind: String?, description: String?,
                            limits: IncidentLimits = .current) throws(IncidentInputError) -> (caseID: String, kind: String, description: String?) {
        let clean = ImportText.clean
        guard let c = caseID.map(clean), !c.isEmpty else { throw IncidentInputError(.missingValue, "the case id is missing or empty", field: "case") }
        guard c.count <= limits.maxTextLength else { throw IncidentInputError(.invalidValue, "the case id is longer than \(limits.maxTextLength) characters", field: "case") }
        guard let k = kind.map(clean)?.lowercased(), !k.isEmpty else { throw IncidentInputError(.missingValue, "the kind is missing or empty", field: "kind") }
        guard k.count <= limits.maxTextLength else { throw IncidentInputError(.invalidValue, "the kind is longer than \(limits.maxTextLength) characters", field: "kind") }
        let d = description.map(clean).flatMap { $0.isEmpty ? nil : $0 }
        if let d, d.count > limits.maxDescriptionLength {
            throw IncidentInputError(.invalidValue, "the description is longer than \(limits.maxDescriptionLength) characters", field: "description")
        }
        return (c, k, d)
    }

    /// Whether the incident's window overlaps the filter (both bounds inclusive, either optional).
    public func overlaps(from: Date?, to: Date?) -> Bool {
        (from == nil || window.to >= from!) && (to == nil || window.from <= to!)
    }
}

extension Incident {
    /// The candidate cameras of the incident in `index`: non-retired cameras within `radius`
    /// metres of the geometry (see ``IncidentShape/distance(toLat:lon:)``), nearest first (ties
    /// by id), with whether each sees the incident and its footage state as of `now`.
    ///
    /// Candidates come from one `near` search around the shape's centre with radius
    /// `reach + radius` (a point: exactly `near(radius)`), then the exact distance decides.
    /// `sees`: for a point ``Sector/sees(lat:lon:)``; for a line or polygon, the sector
    /// intersects the geometry (``PreparedSector/intersects(_:)``, GEOS in the camera's plane).
    public func candidateCameras(in index: CameraIndex, now: Date = Date()) throws -> [IncidentCameraLink] {
        let c = shape.centre
        let hits = try index.near(lat: c.lat, lon: c.lon, radius: shape.reach + radius, limit: .max)
        var geometry: Geometry?
        var links: [IncidentCameraLink] = []
        for h in hits {
            let d = shape.kind == .point ? h.distance : shape.distance(toLat: h.camera.lat, lon: h.camera.lon)
            guard d <= radius else { continue }
            let sector = try h.camera.sector()
            let sees: Bool
            if shape.kind == .point {
                sees = sector.sees(lat: c.lat, lon: c.lon)
            } else {
                if geometry == nil { geometry = try Geometry.wkt(shape.wkt) }
                sees = try sector.prepared(context: geometry!.context).intersects(geometry!)
            }
            let footage = h.camera.footage(during: window, now: now)
            links.append(IncidentCameraLink(cameraID: h.camera.id, distance: d, sees: sees, footage: footage.state,
                                            expiresAt: footage.expiresAt))
        }
        links.sort { $0.distance != $1.distance ? $0.distance < $1.distance : $0.cameraID < $1.cameraID }
        return links
    }
}

// MARK: - Index

/// A match of ``IncidentIndex/near(lat:lon:radius:from:to:limit:)``.
public struct IncidentHit: Sendable {
    public let incident: Incident
    /// Metres from the query point to the incident's geometry.
    public let distance: Double
}

/// The incidents in memory, in their own GEOS STRtree (over each incident's bounding box), for
/// `INCIDENTS NEAR` and `INCIDENT LIST`. Same design as ``CameraIndex``: an immutable snapshot
/// (tree + incidents) plus a delta of incidents added since; once the delta holds
/// ``rebuildThreshold`` incidents a new snapshot is built (on the adding thread, outside the
/// lock) and swapped in. Readers never wait for a build.
public final class IncidentIndex: Sendable {
    final class Snapshot: Sendable {
        let incidents: [Incident]
        let tree: STRtree
        init(_ incidents: [Incident]) throws {
            self.incidents = incidents
            tree = try STRtree(boxes: incidents.map { ($0.shape.minLon, $0.shape.minLat, $0.shape.maxLon, $0.shape.maxLat) })
        }
    }

    private struct State: Sendable {
        var snapshot: Snapshot
        var delta: [Int64: Incident]
    }

    private let state: NIOLockedValueBox<State>
    private let rebuilding = NIOLockedValueBox(false)
    public let rebuildThreshold: Int

    public init(incidents: [Incident], rebuildThreshold: Int = 256) throws {
        state = NIOLockedValueBox(State(snapshot: try Snapshot(incidents), delta: [:]))
        self.rebuildThreshold = rebuildThreshold
    }

    /// Number of incidents held.
    public var count: Int {
        state.withLockedValue { s in s.snapshot.incidents.count + s.delta.count }
    }

    /// Adds (or replaces, by id) incidents; visible to every query that starts after this returns.
    public func add(_ incidents: [Incident]) throws {
        let size = state.withLockedValue { s -> Int in
            for i in incidents { s.delta[i.id] = i }
            return s.delta.count
        }
        if size >= rebuildThreshold { try rebuild() }
    }

    private func rebuild() throws {
        guard rebuilding.withLockedValue({ busy -> Bool in defer { busy = true }; return !busy }) else { return }
        defer { rebuilding.withLockedValue { $0 = false } }
        let s = state.withLockedValue { $0 }
        var merged = s.snapshot.incidents.filter { s.delta[$0.id] == nil }
        merged += s.delta.values
        merged.sort { $0.id < $1.id }
        let next = try Snapshot(merged)
        state.withLockedValue { st in
            st.snapshot = next
            // Keep only what was added meanwhile.
            for id in s.delta.keys where st.delta[id] == s.delta[id] { st.delta[id] = nil }
        }
    }

    private var current: State { state.withLockedValue { $0 } }

    /// Incidents whose bounding box meets the box, plus matching delta ones.
    private func candidates(minLat: Double, minLon: Double, maxLat: Double, maxLon: Double) throws -> [Incident] {
        let s = current
        var items: [Int] = []
        try s.snapshot.tree.query(minX: minLon, minY: minLat, maxX: maxLon, maxY: maxLat, into: &items)
        var out: [Incident] = []
        for i in items {
            let inc = s.snapshot.incidents[i]
            if s.delta[inc.id] == nil { out.append(inc) }
        }
        for inc in s.delta.values where !(inc.shape.maxLat < minLat || inc.shape.minLat > maxLat
                                          || inc.shape.maxLon < minLon || inc.shape.minLon > maxLon) {
            out.append(inc)
        }
        return out
    }

    /// Incidents whose geometry is within `radius` metres of (lat, lon) (see
    /// ``IncidentShape/distance(toLat:lon:)``; inclusive) and whose window overlaps the filter,
    /// nearest first, ties by id.
    public func near(lat: Double, lon: Double, radius: Double, from: Date? = nil, to: Date? = nil,
                     limit: Int = .max) throws -> [IncidentHit] {
        let box = Geodesic.wgs84.boundingBox(lat: lat, lon: lon, radius: radius)
        var hits: [IncidentHit] = []
        for inc in try candidates(minLat: box.minLat, minLon: box.minLon, maxLat: box.maxLat, maxLon: box.maxLon)
        where inc.overlaps(from: from, to: to) {
            let d = inc.shape.distance(toLat: lat, lon: lon)
            if d <= radius { hits.append(IncidentHit(incident: inc, distance: d)) }
        }
        hits.sort { $0.distance != $1.distance ? $0.distance < $1.distance : $0.incident.id < $1.incident.id }
        if hits.count > limit { hits.removeSubrange(limit...) }
        return hits
    }

    /// Incidents by id after `after`, matching the filters, at most `limit`. `bbox` keeps those
    /// whose geometry intersects the box (planar lon/lat).
    public func list(caseID: String? = nil, kind: String? = nil, from: Date? = nil, to: Date? = nil,
                     bbox: (minLat: Double, minLon: Double, maxLat: Double, maxLon: Double)? = nil,
                     after: Int64? = nil, limit: Int) throws -> [Incident] {
        let pool: [Incident]
        if let b = bbox {
            pool = try candidates(minLat: b.minLat, minLon: b.minLon, maxLat: b.maxLat, maxLon: b.maxLon)
        } else {
            let s = current
            pool = s.snapshot.incidents.filter { s.delta[$0.id] == nil } + s.delta.values
        }
        let kindKey = kind.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        var out: [Incident] = []
        for inc in pool.sorted(by: { $0.id < $1.id }) {
            if let after, inc.id <= after { continue }
            if let caseID, inc.caseID != caseID { continue }
            if let kindKey, inc.kind != kindKey { continue }
            guard inc.overlaps(from: from, to: to) else { continue }
            if let b = bbox, !(try inc.shape.intersects(minLat: b.minLat, minLon: b.minLon, maxLat: b.maxLat, maxLon: b.maxLon)) { continue }
            out.append(inc)
            if out.count >= limit { break }
        }
        return out
    }

    /// One incident by id.
    public func incident(id: Int64) -> Incident? {
        let s = current
        if let i = s.delta[id] { return i }
        return s.snapshot.incidents.first { $0.id == id }
    }
}
