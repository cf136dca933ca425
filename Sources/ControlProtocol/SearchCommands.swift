/// How results are ranked.
public enum SearchOrder: String, Sendable, Equatable {
    /// Nearest first (route order for `ALONG`).
    case distance
    /// Cameras that see the incident and whose footage expires soonest first, then by distance.
    case urgency
}

/// The members of a search hit an answer holds (`fields=id,distance_m,sees,footage`): data
/// minimisation for investigators and scripts. `id` is always sent. Without any of the owner
/// fields (`address`, `owner_name`, `owner_phone`) an answer discloses no owner data, so it is
/// not written to the audit log either. Default: every field.
public struct HitFields: OptionSet, Sendable, Equatable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Every field name, in the order the answer writes them (`id` first).
    public static let names: [String] = [
        "id", "lat", "lon", "distance_m", "bearing_deg", "along_m", "sees", "footage", "expires_at", "window",
        "site", "address", "ward", "status", "heading_deg", "fov_deg", "range_m", "retention_days", "schedule",
        "owner_kind", "owner_name", "owner_phone", "consent",
    ]

    /// The field of a name in ``names``.
    public static func named(_ name: String) -> HitFields? {
        names.firstIndex(of: name).map { HitFields(rawValue: 1 << UInt32($0)) }
    }

    // Bit i is `names[i]` (a test checks each); computed, so that a test of a bit in a hot loop
    // is a constant, not a lazily initialised global.
    @inlinable public static var id: HitFields { HitFields(rawValue: 1 << 0) }  // id
    @inlinable public static var lat: HitFields { HitFields(rawValue: 1 << 1) }  // lat
    @inlinable public static var lon: HitFields { HitFields(rawValue: 1 << 2) }  // lon
    @inlinable public static var distance: HitFields { HitFields(rawValue: 1 << 3) }  // distance_m
    @inlinable public static var bearing: HitFields { HitFields(rawValue: 1 << 4) }  // bearing_deg
    @inlinable public static var along: HitFields { HitFields(rawValue: 1 << 5) }  // along_m
    @inlinable public static var sees: HitFields { HitFields(rawValue: 1 << 6) }  // sees
    @inlinable public static var footage: HitFields { HitFields(rawValue: 1 << 7) }  // footage
    @inlinable public static var expiresAt: HitFields { HitFields(rawValue: 1 << 8) }  // expires_at
    @inlinable public static var window: HitFields { HitFields(rawValue: 1 << 9) }  // window
    @inlinable public static var site: HitFields { HitFields(rawValue: 1 << 10) }  // site
    @inlinable public static var address: HitFields { HitFields(rawValue: 1 << 11) }  // address
    @inlinable public static var ward: HitFields { HitFields(rawValue: 1 << 12) }  // ward
    @inlinable public static var status: HitFields { HitFields(rawValue: 1 << 13) }  // status
    @inlinable public static var heading: HitFields { HitFields(rawValue: 1 << 14) }  // heading_deg
    @inlinable public static var fov: HitFields { HitFields(rawValue: 1 << 15) }  // fov_deg
    @inlinable public static var range: HitFields { HitFields(rawValue: 1 << 16) }  // range_m
    @inlinable public static var retention: HitFields { HitFields(rawValue: 1 << 17) }  // retention_days
    @inlinable public static var schedule: HitFields { HitFields(rawValue: 1 << 18) }  // schedule
    @inlinable public static var ownerKind: HitFields { HitFields(rawValue: 1 << 19) }  // owner_kind
    @inlinable public static var ownerName: HitFields { HitFields(rawValue: 1 << 20) }  // owner_name
    @inlinable public static var ownerPhone: HitFields { HitFields(rawValue: 1 << 21) }  // owner_phone
    @inlinable public static var consent: HitFields { HitFields(rawValue: 1 << 22) }  // consent
    /// Every field.
    @inlinable public static var all: HitFields { HitFields(rawValue: (1 << 23) - 1) }
    /// The owner data: shown only where the privacy rule allows, and audited when shown.
    @inlinable public static var ownerData: HitFields { HitFields(rawValue: address.rawValue | ownerName.rawValue | ownerPhone.rawValue) }

    /// `id,distance_m,…`: known names, comma-separated; `id` is added.
    public static func parse(_ text: String) throws(ProtocolError) -> HitFields {
        var text = text
        let result = text.withUTF8 { b in Result { () throws(ProtocolError) in try parse(bytes: b) } }
        return try result.get()
    }

    /// ``parse(_:)`` of the value's UTF-8 bytes, read in place (a `NEAR` line's `fields=`,
    /// without making a `String` of it).
    public static func parse(bytes b: UnsafeBufferPointer<UInt8>) throws(ProtocolError) -> HitFields {
        var set: HitFields = .id
        let keys = nameKeys
        // The parts between commas, walked as bytes in place (through the string's UTF-8 view
        // and its indices this was 3k instructions a request; a `split` allocated its list).
        var start = 0
        while true {
            var end = start
            while end < b.count, b[end] != UInt8(ascii: ",") { end += 1 }
            let part = UnsafeBufferPointer(rebasing: b[start..<end])
            // Names are lower-case ASCII of at most 16 bytes: a part is matched by its key
            // (two integers), not by comparing it with each name's bytes.
            guard let k = key(part), let index = keys.firstIndex(where: { $0.0 == k.0 && $0.1 == k.1 }) else {
                let unknown = String(decoding: part, as: UTF8.self)
                throw ProtocolError(.invalidValue, "fields has no member \(Values.clip(unknown)); known: \(names.joined(separator: ","))", field: "fields")
            }
            set.insert(HitFields(rawValue: 1 << UInt32(index)))
            guard end < b.count else { return set }
            start = end + 1
        }
    }

    /// ``names`` as ``key(_:)`` gives them, in the same order.
    static let nameKeys: [(UInt64, UInt64)] = names.map { key($0.utf8)! }

    /// A name's bytes, ASCII capitals folded to lower case, packed big-endian into two integers
    /// and zero-padded: `nil` for more than 16 bytes or a NUL byte (no name is either).
    static func key<S: Collection>(_ bytes: S) -> (UInt64, UInt64)? where S.Element == UInt8 {
        guard bytes.count <= 16 else { return nil }
        var a: UInt64 = 0, b: UInt64 = 0
        var k = 0
        for byte in bytes {
            guard byte != 0 else { return nil }
            let c = UInt64(byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte)
            if k < 8 { a |= c << (56 - 8 * k) } else { b |= c << (56 - 8 * (k - 8)) }
            k += 1
        }
        return (a, b)
    }
}

/// Options shared by the investigator searches: the incident's time (`at=` or `from=`/`to=`,
/// ISO-8601 with an offset; parsed and checked by the server), `sees=only` and `order=`.
public struct SearchOptions: Sendable, Equatable {
    public var at: String?
    public var from: String?
    public var to: String?
    /// Keep only cameras whose field of view covers the incident.
    public var seesOnly: Bool
    public var order: SearchOrder
    /// Cameras of the ranked answer to skip (paging through an answer cut at the size limit).
    public var offset: Int = 0
    /// The members each hit holds (`fields=`); every one by default.
    public var fields: HitFields = .all
    public init(at: String? = nil, from: String? = nil, to: String? = nil, seesOnly: Bool = false, order: SearchOrder = .distance) {
        self.at = at
        self.from = from
        self.to = to
        self.seesOnly = seesOnly
        self.order = order
    }
}

/// `NEAREST`: the k closest cameras.
public struct NearestQuery: Sendable, Equatable {
    public var lat: Double
    public var lon: Double
    public var k: Int
    public var maxDistance: Double?
    public var search: SearchOptions
}

/// A route: points, or WKT text to be read by the server.
public enum RouteInput: Sendable, Equatable {
    case points([RoutePoint])
    case wkt(String)
}

/// One vertex of a route.
public struct RoutePoint: Sendable, Equatable {
    public var lat: Double
    public var lon: Double
}

/// `ALONG`: cameras within `width` metres of a route.
public struct AlongQuery: Sendable, Equatable {
    public var route: RouteInput
    public var width: Double
    /// One time per vertex (`times="t1;t2;…"`), for per-camera time windows.
    public var times: [String]?
    public var limit: Int
    public var search: SearchOptions
}

/// `WITHIN`: cameras inside a polygon (WKT or a GeoJSON geometry).
public struct WithinQuery: Sendable, Equatable {
    public var polygon: String
    public var limit: Int
    public var search: SearchOptions
}

enum SearchCommands {
    static func opt(_ name: String, _ placeholder: String, _ summary: String, required: Bool = false) -> OptionSpec {
        OptionSpec.opt(name, placeholder, summary, required: required)
    }

    static let searchOptions: [OptionSpec] = [
        opt("at", "<time>", "Incident time, ISO-8601 with offset (2022-06-26T06:40+07:00): adds footage state."),
        opt("from", "<time>", "Start of the incident window (with to=)."),
        opt("to", "<time>", "End of the incident window (with from=)."),
        opt("sees", "<only|all>", "only: keep cameras whose field of view covers the incident."),
        opt("order", "<distance|urgency>", "urgency: cameras that see it with the soonest-expiring footage first."),
        opt("offset", "<n>", "Skip the first n cameras of the ranked answer: the next_offset of an answer cut at the size limit."),
        opt("fields", "<f,f,…>", "Only these members of each camera (id is always sent), e.g. id,distance_m,sees,footage; without address, owner_name and owner_phone no owner data is disclosed."),
    ]

    static func search(_ options: [String: String]) throws(ProtocolError) -> SearchOptions {
        try search(at: options["at"], from: options["from"], to: options["to"], sees: options["sees"],
                   order: options["order"], offset: options["offset"], fields: options["fields"])
    }

    /// The search options from their values as written (nil: not given).
    static func search(at: String?, from: String?, to: String?, sees: String?, order: String?, offset: String?,
                       fields: String?) throws(ProtocolError) -> SearchOptions {
        var s = SearchOptions(at: at, from: from, to: to)
        if s.at != nil && (s.from != nil || s.to != nil) {
            throw ProtocolError(.invalidValue, "give at= or from=/to=, not both", field: "at")
        }
        if (s.from == nil) != (s.to == nil) {
            throw ProtocolError(.missingOption, "from= and to= go together", field: s.from == nil ? "from" : "to")
        }
        if let v = sees {
            switch v.lowercased() {
            case "only": s.seesOnly = true
            case "all": s.seesOnly = false
            default: throw ProtocolError(.invalidValue, "sees must be only or all", field: "sees")
            }
        }
        if let v = order {
            guard let o = SearchOrder(rawValue: v.lowercased()) else {
                throw ProtocolError(.invalidValue, "order must be distance or urgency", field: "order")
            }
            s.order = o
        }
        if let v = offset { s.offset = try Values.int(v, field: "offset", range: 0...1_000_000) }
        if let v = fields { s.fields = try HitFields.parse(v) }
        return s
    }

    static func limit(_ options: [String: String], _ limits: ProtocolLimits) throws(ProtocolError) -> Int {
        try options["limit"].map { v throws(ProtocolError) in try Values.int(v, field: "limit", range: 1...limits.maxLimit) } ?? limits.defaultLimit
    }

    /// `lat,lon;lat,lon;…` or WKT `LINESTRING(lon lat, …)`.
    static func route(_ text: String) throws(ProtocolError) -> RouteInput {
        let trimmed = text.drop { $0 == " " }
        if trimmed.uppercased().hasPrefix("LINESTRING") { return .wkt(String(trimmed)) }
        var points: [RoutePoint] = []
        for (i, pair) in text.split(separator: ";", omittingEmptySubsequences: false).enumerated() {
            let parts = pair.split(separator: ",", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw ProtocolError(.invalidValue, "route point \(i + 1) must be lat,lon (route=\"11.14,106.60;11.15,106.61\" or a WKT LINESTRING)", field: "route")
            }
            let lat = try Values.double(String(parts[0]), field: "route", range: -90...90)
            let lon = try Values.double(String(parts[1]), field: "route", range: -180...180)
            points.append(RoutePoint(lat: lat, lon: lon))
        }
        guard points.count >= 2 else {
            throw ProtocolError(.routeTooShort, "a route needs at least 2 points, got \(points.count)", field: "route")
        }
        return .points(points)
    }

    static let specs: [CommandSpec] = [
        CommandSpec(words: ["NEAREST"], access: .search, arguments: ["lat", "lon"], optionalArguments: 0,
                    options: [opt("k", "<n>", "How many cameras (1–10000).", required: true),
                              opt("max", "<m>", "Only cameras within this many metres.")] + searchOptions,
                    summary: "Exactly the k cameras closest to a point (ellipsoidal distance), however far they are.") { args, options, limits throws(ProtocolError) in
            let lat = try Values.double(args[0], field: "lat", range: -90...90)
            let lon = try Values.double(args[1], field: "lon", range: -180...180)
            let k = try Values.int(options["k"]!, field: "k", range: 1...limits.maxLimit)
            let max = try options["max"].map { v throws(ProtocolError) in try Values.radius(v, limits: limits, field: "max") }
            return .nearest(NearestQuery(lat: lat, lon: lon, k: k, maxDistance: max, search: try search(options)))
        },
        CommandSpec(words: ["ALONG"], access: .search, arguments: [], optionalArguments: 0,
                    options: [opt("route", "<lat,lon;lat,lon;…|LINESTRING(…)>", "The route (at least 2 points).", required: true),
                              opt("width", "<m>", "Corridor half-width in metres.", required: true),
                              opt("times", "<t1;t2;…>", "A time per vertex (ISO-8601 with offset): each camera gets its own window."),
                              opt("limit", "<n>", "At most this many cameras (default 100).")] + searchOptions,
                    summary: "Cameras within a corridor along an escape route, in route order, each with its own time window.") { _, options, limits throws(ProtocolError) in
            let route = try route(options["route"]!)
            let width = try Values.radius(options["width"]!, limits: limits, field: "width")
            var times: [String]? = nil
            if let t = options["times"] {
                times = t.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
                if case .points(let p) = route, p.count != times!.count {
                    throw ProtocolError(.invalidValue, "times needs one time per route point (\(p.count)), got \(times!.count)", field: "times")
                }
            }
            return .along(AlongQuery(route: route, width: width, times: times, limit: try limit(options, limits), search: try search(options)))
        },
        CommandSpec(words: ["WITHIN"], access: .search, arguments: [], optionalArguments: 0,
                    options: [opt("polygon", "<WKT|GeoJSON>", "The area: WKT POLYGON((lon lat, …)) or a GeoJSON Polygon geometry.", required: true),
                              opt("limit", "<n>", "At most this many cameras (default 100).")] + searchOptions,
                    summary: "Cameras inside an area.") { _, options, limits throws(ProtocolError) in
            .within(WithinQuery(polygon: options["polygon"]!, limit: try limit(options, limits), search: try search(options)))
        },
    ]
}
