import ControlProtocol
import Foundation
import Geo
import Registry

/// One camera in an investigator's answer: where it is relative to the incident, whether it
/// sees it, and whether its footage still exists.
struct SearchHit {
    /// The camera, read in place from the index (no `Camera` value is built for an answer): a
    /// slot of the answer's table (``render(_:table:search:window:limit:inOrder:)``) or a reference.
    var camera: HitCamera
    var distance: Double
    var bearing: Double
    var sees: Bool
    var footage: FootageStatus?
    /// The camera's own time window (ALONG with per-vertex times), when it differs from the query's.
    var window: IncidentWindow?
    /// Metres along the route (ALONG).
    var alongMetres: Double?
}

extension RegistryService {
    /// The incident window of a search (nil when no time was given), checked: offsets are
    /// mandatory, `from ≤ to`, and the window is at most ``maxTimeWindow``.
    func incidentWindow(_ s: SearchOptions) throws -> IncidentWindow? {
        if let at = s.at { return IncidentWindow(instant: try Self.time(at, field: "at")) }
        guard let f = s.from, let t = s.to else { return nil }
        return try window(from: Self.time(f, field: "from"), to: Self.time(t, field: "to"))
    }

    func window(from: Date, to: Date) throws -> IncidentWindow {
        guard let w = IncidentWindow(from: from, to: to) else {
            throw ProtocolError(.badTimeWindow, "from must not be after to", field: "from")
        }
        guard to.timeIntervalSince(from) <= maxTimeWindow else {
            throw ProtocolError(.timeWindowTooLong, "the time window is longer than the maximum of \(Int(maxTimeWindow / 3600)) hours", field: "to")
        }
        return w
    }

    /// An ISO-8601 time with a mandatory offset.
    static func time(_ text: String, field: String) throws -> Date {
        if let d = IncidentTime.parse(text) { return d }
        if IncidentTime.parse(text + "Z") != nil {
            throw ProtocolError(.timeWithoutOffset, "\(field) has no UTC offset; write e.g. \(text)+07:00 or \(text)Z", field: field)
        }
        throw ProtocolError(.badTime, "\(field) must be an ISO-8601 time with an offset, like 2022-06-26T06:40+07:00", field: field)
    }

    /// Footage for a camera and window (nil when no time was asked for).
    func footage(_ c: CameraRef, _ w: IncidentWindow?, now: Date) -> FootageStatus? {
        w.map { c.footage(during: $0, now: now) }
    }

    func handleNear(_ q: NearQuery) throws -> Reply {
        let w = try incidentWindow(q.search)
        let now = Date()
        // With sees=only, look past the limit: the nearest cameras may not see the point.
        // Read in place: the hits are slots of the searched table, held once for the answer.
        let found = try index.nearInPlace(lat: q.lat, lon: q.lon, radius: q.radius, limit: q.search.seesOnly ? limits.maxLimit * 10 : q.limit,
                                          readsText: Self.lastText(q.search.fields) != .id)
        let table = found.table
        let hits = [SearchHit](unsafeUninitializedCapacity: found.hits.count) { buffer, count in
            for (i, h) in found.hits.enumerated() {
                let footage = w.map { h.camera.footage(in: table, during: $0, now: now) }
                (buffer.baseAddress! + i).initialize(to: SearchHit(camera: h.camera, distance: h.distance, bearing: h.bearing, sees: h.sees, footage: footage))
            }
            count = found.hits.count
        }
        return render(hits, table: table, search: q.search, window: w, limit: q.limit, inOrder: true)
    }

    /// Search hits for a point incident: `sees` by the exact sector test, footage for the window;
    /// in the search's order (nearest first, ties by id), which ``render(_:table:search:window:limit:inOrder:)``
    /// then keeps.
    func pointHits(_ input: consuming [NearHit], lat: Double, lon: Double, window w: IncidentWindow?, now: Date) -> [SearchHit] {
        var found = input
        let n = found.count
        // Each hit moved out of `found` (popLast), not copied: a copy would count a reference to
        // the camera's table up and, when `found` is freed, down again, for every hit. Popped
        // from the back, so each is put in its place counting down from the end.
        return [SearchHit](unsafeUninitializedCapacity: n) { buffer, count in
            var i = n
            while let h = found.popLast() {
                i -= 1
                // `sees`: the sector test on the hit's camera → point geodesic, made by the search.
                let footage = footage(h.ref, w, now: now)
                (buffer.baseAddress! + i).initialize(to: SearchHit(camera: .ref(h.ref), distance: h.distance, bearing: h.bearing, sees: h.sees, footage: footage))
            }
            count = n
        }
    }

    func handleNearest(_ q: NearestQuery) throws -> Reply {
        let w = try incidentWindow(q.search)
        let now = Date()
        let found = try index.nearest(lat: q.lat, lon: q.lon, k: q.k, maxDistance: q.maxDistance)
        return render(pointHits(found, lat: q.lat, lon: q.lon, window: w, now: now), search: q.search, window: w, limit: q.k, inOrder: true)
    }

    func handleAlong(_ q: AlongQuery) throws -> Reply {
        let w = try incidentWindow(q.search)
        let now = Date()
        let points: [(lat: Double, lon: Double)]
        let line: Geometry
        switch q.route {
        case .points(let p):
            points = p.map { ($0.lat, $0.lon) }
            line = try Geometry.wkt("LINESTRING(" + p.map { "\($0.lon) \($0.lat)" }.joined(separator: ", ") + ")")
        case .wkt(let text):
            do { line = try Geometry.wkt(text) } catch let e as GeoError {
                throw ProtocolError(.invalidGeometry, "route: \(e.message)", field: "route")
            }
            guard line.typeName == "LineString" else {
                throw ProtocolError(.invalidGeometry, "route must be a LINESTRING, not \(line.typeName)", field: "route")
            }
            points = try Self.coordinates(of: line).map { ($0.1, $0.0) }
            guard points.count >= 2 else { throw ProtocolError(.routeTooShort, "a route needs at least 2 points", field: "route") }
            if let t = q.times, t.count != points.count {
                throw ProtocolError(.invalidValue, "times needs one time per route point (\(points.count)), got \(t.count)", field: "times")
            }
        }
        for p in points where !(-90...90).contains(p.lat) || !(-180...180).contains(p.lon) {
            throw ProtocolError(.outOfRange, "route point (\(p.lat), \(p.lon)) is outside lat −90…90 / lon −180…180", field: "route")
        }
        // Vertex times → cumulative distance and time, for each camera's own window.
        var vertexTimes: [Date]? = nil
        if let t = q.times {
            vertexTimes = try t.enumerated().map { try Self.time($0.element, field: "times[\($0.offset + 1)]") }
            for (a, b) in zip(vertexTimes!, vertexTimes!.dropFirst()) where b < a {
                throw ProtocolError(.badTimeWindow, "route times must not go back in time", field: "times")
            }
            _ = try window(from: vertexTimes!.first!, to: vertexTimes!.last!)
        }
        var cumulative: [Double] = [0]
        for (a, b) in zip(points, points.dropFirst()) {
            cumulative.append(cumulative.last! + Geodesic.wgs84.distance(lat1: a.lat, lon1: a.lon, lat2: b.lat, lon2: b.lon))
        }
        // Purpose binding: an escape route, not a sweep of the town.
        guard cumulative.last! <= limits.maxRouteLength else {
            throw ProtocolError(.requestTooBroad, "the route is \(Int(cumulative.last!)) m long; the maximum is \(Int(limits.maxRouteLength)) m", field: "route")
        }
        guard q.width <= limits.maxRouteWidth else {
            throw ProtocolError(.requestTooBroad, "width is \(q.width) m; the maximum is \(Int(limits.maxRouteWidth)) m", field: "width")
        }
        let found = try index.along(route: points, width: q.width)
        var hits: [SearchHit] = []
        for h in found {
            var own = w
            if let vt = vertexTimes {
                let i = h.segmentIndex
                let segment = cumulative[i + 1] - cumulative[i]
                let frac = segment > 0 ? min(1, max(0, (h.alongMetres - cumulative[i]) / segment)) : 0
                let t = vt[i].addingTimeInterval(vt[i + 1].timeIntervalSince(vt[i]) * frac)
                // The suspect passes the closest point at t; allow a minute either side.
                own = IncidentWindow(from: t.addingTimeInterval(-60), to: t.addingTimeInterval(60))
            }
            let g = Geodesic.wgs84.inverse(lat1: h.camera.lat, lon1: h.camera.lon, lat2: h.closestLat, lon2: h.closestLon)
            let sees = (try? h.camera.sector().intersects(line)) ?? false
            let ref = CameraRef(h.camera)
            hits.append(SearchHit(camera: .ref(ref), distance: h.distance, bearing: (g.azimuth1 + 360).truncatingRemainder(dividingBy: 360),
                                  sees: sees, footage: footage(ref, own, now: now), window: vertexTimes == nil ? nil : own,
                                  alongMetres: h.alongMetres))
        }
        return render(hits, search: q.search, window: w, limit: q.limit, inOrder: true)
    }

    func handleWithin(_ q: WithinQuery) throws -> Reply {
        let w = try incidentWindow(q.search)
        let now = Date()
        let polygon: Geometry
        do {
            let text = q.polygon.trimmingCharacters(in: .whitespaces)
            polygon = text.hasPrefix("{") ? try Geometry.geoJSON(text) : try Geometry.wkt(text)
        } catch let e as GeoError {
            throw ProtocolError(.invalidGeometry, "polygon: \(e.message)", field: "polygon")
        }
        do {
            try CameraIndex.validateSearchPolygon(polygon)
        } catch let e as GeoError {
            throw ProtocolError(.invalidGeometry, "polygon: \(e.message)", field: "polygon")
        }
        let centre = try polygon.centroid()
        // Area in m², equal-area at the centroid's latitude (close enough for a bound).
        let area = try polygon.area() * 111_320 * 110_574 * cos(centre.y * .pi / 180)
        guard area <= limits.maxArea else {
            throw ProtocolError(.requestTooBroad, "the polygon covers \(String(format: "%.2f", area / 1e6)) km²; the maximum is \(String(format: "%.2f", limits.maxArea / 1e6)) km²", field: "polygon")
        }
        let cams = try index.within(polygon: polygon)
        var hits: [SearchHit] = []
        for c in cams {
            let g = Geodesic.wgs84.inverse(lat1: c.lat, lon1: c.lon, lat2: centre.y, lon2: centre.x)
            let sees = (try? c.sector().intersects(polygon)) ?? false
            // Inside the area: distance 0; the bearing points to the area's centroid.
            let ref = CameraRef(c)
            hits.append(SearchHit(camera: .ref(ref), distance: 0, bearing: (g.azimuth1 + 360).truncatingRemainder(dividingBy: 360),
                                  sees: sees, footage: footage(ref, w, now: now)))
        }
        return render(hits, search: q.search, window: w, limit: q.limit, inOrder: true)
    }

    static func coordinates(of g: Geometry) throws -> [(Double, Double)] {
        // Read "LINESTRING (x y, x y)" back from WKT: simple and exact with trimmed output.
        let text = try g.wkt()
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return [] }
        return text[text.index(after: open)..<close].split(separator: ",").compactMap { pair in
            let xy = pair.split(separator: " ").compactMap { Double($0) }
            return xy.count >= 2 ? (xy[0], xy[1]) : nil
        }
    }

    /// The common answer: filter (sees=only), rank (order=), cut to `limit`, render. `inOrder`:
    /// the hits come in the answer's order already (NEAR and NEAREST nearest first, ties by id,
    /// as the index returns them; ALONG by route position; WITHIN by id), so only `order=urgency`
    /// sorts them.
    func render(_ input: consuming [SearchHit], table: AnswerTable? = nil, search: SearchOptions, window: IncidentWindow?, limit: Int, inOrder: Bool = false) -> Reply {
        // Taken over, not copied: sorting a shared array would copy every hit (and retain its camera).
        var hits = input
        if search.seesOnly { hits.removeAll { !$0.sees } }
        if search.order == .urgency {
            func key(_ h: SearchHit) -> (Int, Double) {
                let urgent = h.sees && h.footage?.state == .available
                return (urgent ? 0 : 1, urgent ? h.footage?.expiresAt?.timeIntervalSince1970 ?? .infinity : 0)
            }
            hits.sort { a, b in
                let ka = key(a), kb = key(b)
                if ka != kb { return ka < kb }
                if a.distance != b.distance { return a.distance < b.distance }
                return a.camera.id(in: table).utf8.lexicographicallyPrecedes(b.camera.id(in: table).utf8)
            }
        } else if !inOrder {
            hits.sort { $0.distance != $1.distance ? $0.distance < $1.distance : $0.camera.id(in: table).utf8.lexicographicallyPrecedes($1.camera.id(in: table).utf8) }
        }
        if hits.count > limit { hits.removeSubrange(limit...) }
        // Paging through an answer that was cut at the size limit.
        let total = hits.count
        if search.offset > 0 { hits.removeSubrange(..<min(search.offset, hits.count)) }
        let now = Date()
        let maxBytes = limits.maxResponseBytes
        let f = search.fields
        // The consent cache only when `consent` is asked for: reading it takes a lock and a
        // reference to the dictionary that every event loop shares (their cache lines moved
        // between the cores on every answer).
        let consents = f.contains(.consent) ? self.consents : [:]
        // The request's context once per answer (a task-local lookup), its disclosures counted
        // once at the end: only those of the hits the answer kept.
        let context = f.isDisjoint(with: .ownerData) ? nil : RequestContext.current
        var disclosed = 0
        var written = 0
        let k = AnswerKeys.shared
        // The last text member the hits' fields read: a camera's text is walked no further.
        let lastText = Self.lastText(f)
        let reply = ok(capacity: 64 + hits.count * (search.fields == .all ? 480 : 160)) { w in
            if let window {
                w.put(k.from, time: window.from)
                w.put(k.to, time: window.to)
            }
            w.key("cameras")
            // Each hit read in place through the buffer, not copied out of the array (a copy
            // counts its camera's reference up and down once more).
            hits.withUnsafeBufferPointer { hits in w.array { a in
                for i in hits.indices {
                    let h = UnsafePointer(hits.baseAddress! + i)
                    let mark = a.count
                    var pii = false
                    // One view per hit: the camera's text is found in one walk, not one per member.
                    h.pointee.camera.withView(in: table, through: lastText) { c in a.object { o in
                        o.put(k.id, utf8: c.id)
                        if f.contains(.lat) { o.put(k.lat, c.lat) }
                        if f.contains(.lon) { o.put(k.lon, c.lon) }
                        if f.contains(.distance) { o.put(k.distance, h.pointee.distance, decimals: 3) }
                        if f.contains(.bearing) { o.put(k.bearing, h.pointee.bearing, decimals: 1) }
                        if f.contains(.along), let along = h.pointee.alongMetres { o.put(k.along, along, decimals: 1) }
                        if f.contains(.sees) { o.put(k.sees, h.pointee.sees) }
                        if f.contains(.footage) { o.put(k.footage, static: (h.pointee.footage?.state ?? .unknown).jsonText) }
                        if f.contains(.expiresAt) { o.put(k.expiresAt, time: h.pointee.footage?.expiresAt) }
                        if f.contains(.window), let win = h.pointee.window {
                            o.put(k.windowFrom, time: win.from)
                            o.put(k.windowTo, time: win.to)
                        }
                        // Owner data: only when asked for and allowed (each disclosure is counted for the audit log).
                        pii = context?.mayShowOwnerData(ownerID: c.ownerID) ?? false
                        if f.contains(.site) { o.put(k.site, static: c.siteKind.jsonText) }
                        if f.contains(.address) { o.put(k.address, utf8: pii ? c.address : nil) }
                        if f.contains(.ward) { o.put(k.ward, utf8: c.ward) }
                        if f.contains(.status) { o.put(k.status, static: c.status.jsonText) }
                        if f.contains(.heading) { o.put(k.heading, c.heading) }
                        if f.contains(.fov) { o.put(k.fov, c.fov) }
                        if f.contains(.range) { o.put(k.range, c.range) }
                        if f.contains(.retention) { o.put(k.retention, c.retentionDays) }
                        if f.contains(.schedule) { let s = c.schedule; o.put(k.schedule, ascii: s.textLength) { s.writeText(into: $0) } }
                        if f.contains(.ownerKind) { o.put(k.ownerKind, static: c.ownerKind.jsonText) }
                        if f.contains(.ownerName) { o.put(k.ownerName, utf8: pii ? c.ownerName : nil) }
                        if f.contains(.ownerPhone) { o.put(k.ownerPhone, utf8: pii ? c.ownerPhone : nil) }
                        if f.contains(.consent) { o.put(k.consent, static: Self.consentState(c.ownerID.flatMap { consents[$0] }, now: now)) }
                    } }
                    // The size limit: take the camera back and stop (at least one is always sent).
                    if a.count > maxBytes, written > 0 {
                        a.truncate(to: mark)
                        break
                    }
                    written += 1
                    if pii { disclosed += 1 }
                }
            } }
            w.field("count", written)
            let next = search.offset + written
            if next < total {
                w.field("truncated", true)
                w.field("next_offset", next)
            }
        }
        context?.noteDisclosed(disclosed)
        RequestContext.noteResults(written)
        return reply
    }

    /// The last text member an answer with `fields` reads of each hit: its text is walked no
    /// further (`.id`: the text is not read, a short id being in the camera's record).
    static func lastText(_ f: HitFields) -> CameraText {
        f.contains(.ownerPhone) ? .ownerPhone : f.contains(.ownerName) ? .ownerName
            : f.contains(.ward) ? .ward : f.contains(.address) ? .address : .id
    }

    /// `granted`, `lapsed` (granted but past its date), `withdrawn` (not granted) or `unknown`
    /// (no registered owner), as a literal that a search answer writes straight in.
    static func consentState(_ consent: Consent?, now: Date) -> StaticString {
        guard let consent else { return "unknown" }
        if consent.isInForce(at: now) { return "granted" }
        return consent.granted ? "lapsed" : "withdrawn"
    }
}

/// The member names of a search answer and its hits, made ready once (``JSONWriter/Key``): an
/// answer writes twenty-odd per hit. One shared value, copied once per answer (no reference
/// to count): a global `static let` per name cost a `swift_once` call at every use (4 % of the
/// render).
struct AnswerKeys: Sendable {
    static let shared = AnswerKeys()
    let from = JSONWriter.Key("from")
    let to = JSONWriter.Key("to")
    let id = JSONWriter.Key("id")
    let lat = JSONWriter.Key("lat")
    let lon = JSONWriter.Key("lon")
    let distance = JSONWriter.Key("distance_m")
    let bearing = JSONWriter.Key("bearing_deg")
    let along = JSONWriter.Key("along_m")
    let sees = JSONWriter.Key("sees")
    let footage = JSONWriter.Key("footage")
    let expiresAt = JSONWriter.Key("expires_at")
    let windowFrom = JSONWriter.Key("window_from")
    let windowTo = JSONWriter.Key("window_to")
    let site = JSONWriter.Key("site")
    let address = JSONWriter.Key("address")
    let ward = JSONWriter.Key("ward")
    let status = JSONWriter.Key("status")
    let heading = JSONWriter.Key("heading_deg")
    let fov = JSONWriter.Key("fov_deg")
    let range = JSONWriter.Key("range_m")
    let retention = JSONWriter.Key("retention_days")
    let schedule = JSONWriter.Key("schedule")
    let ownerKind = JSONWriter.Key("owner_kind")
    let ownerName = JSONWriter.Key("owner_name")
    let ownerPhone = JSONWriter.Key("owner_phone")
    let consent = JSONWriter.Key("consent")
}

extension JSONWriter {
    /// `key: "YYYY-MM-DDTHH:MM:SS.ffffffZ"` written in place (``ISO8601Text/write(micros:into:)``:
    /// a search answer writes up to three per hit, and formatting each as a `String` cost
    /// allocations), or `key: null` for `nil`.
    mutating func put(_ key: Key, time: Date?) {
        guard let time else { return put(key, nil as Double?) }
        let micros = ISO8601Text.micros(time)
        if !put(key, ascii: ISO8601Text.length, { ISO8601Text.write(micros: micros, into: $0) }) {
            put(key, ISO8601Text.format(micros: micros))
        }
    }
}

// The names of the enums a search answer writes for every hit, as literals: written straight
// into the answer (``JSONWriter/put(_:static:)``), where `rawValue` made a `String` each time.
// A test checks each against `rawValue`.

extension FootageState {
    /// `rawValue`, as a literal.
    var jsonText: StaticString {
        switch self {
        case .available: "available"
        case .expired: "expired"
        case .notRecording: "not_recording"
        case .unknown: "unknown"
        }
    }
}

extension SiteKind {
    /// `rawValue`, as a literal.
    var jsonText: StaticString {
        switch self {
        case .intersection: "intersection"
        case .alley: "alley"
        case .street: "street"
        case .building: "building"
        case .other: "other"
        }
    }
}

extension CameraStatus {
    /// `rawValue`, as a literal.
    var jsonText: StaticString {
        switch self {
        case .pending: "pending"
        case .active: "active"
        case .offline: "offline"
        case .retired: "retired"
        }
    }
}

extension OwnerKind {
    /// `rawValue`, as a literal.
    var jsonText: StaticString {
        switch self {
        case .household: "household"
        case .business: "business"
        case .boardingHouse: "boarding_house"
        case .company: "company"
        case .public: "public"
        }
    }
}

