import Synchronization

/// Limits a server applies while parsing requests (configurable; defaults as documented).
public struct ProtocolLimits: Sendable, Equatable {
    /// Longest accepted request line, in bytes (without the newline).
    public var maxLineBytes = 64 * 1024
    /// Largest `radius=` in metres.
    public var maxRadius = 50_000.0
    /// `limit=` when none is given.
    public var defaultLimit = 100
    /// Largest `limit=`.
    public var maxLimit = 10_000
    /// Largest area a `WITHIN` polygon may cover, in square metres (25 km² by default).
    public var maxArea = 25_000_000.0
    /// Largest search answer in bytes (4 MiB by default): a longer one is cut at a camera and
    /// carries `next_offset` to ask for the rest.
    public var maxResponseBytes = 4 << 20
    /// Longest `ALONG` route, in metres (30 km by default).
    public var maxRouteLength = 30_000.0
    /// Largest `width=` of `ALONG`, in metres.
    public var maxRouteWidth = 1_000.0

    public init() {}
}

/// A `NEAR` query: cameras within `radius` metres of a point.
public struct NearQuery: Sendable, Equatable {
    /// Latitude of the point (WGS84 degrees).
    public var lat: Double
    /// Longitude of the point (WGS84 degrees).
    public var lon: Double
    /// Radius in metres (> 0, ≤ the server's maximum).
    public var radius: Double
    /// At most this many cameras, nearest first.
    public var limit: Int
    /// Incident time, `sees=` and `order=`.
    public var search: SearchOptions

    public init(lat: Double, lon: Double, radius: Double, limit: Int, search: SearchOptions = .init()) {
        self.lat = lat
        self.lon = lon
        self.radius = radius
        self.limit = limit
        self.search = search
    }
}

/// A parsed, validated request. The server switches over it exhaustively, so every command in
/// ``CommandTable`` has exactly one handler.
public enum Command: Sendable, Equatable {
    case ping
    case help(topic: String?)
    case near(NearQuery)
    /// `NEAREST <lat> <lon> k=<n> [max=<m>]`: exactly the k closest cameras.
    case nearest(NearestQuery)
    /// `ALONG route=… width=<m>`: cameras along an escape route, in route order.
    case along(AlongQuery)
    /// `WITHIN polygon=…`: cameras inside an area.
    case within(WithinQuery)
    case cameraGet(id: String)
    case stats
    case quit
    /// `OWNER ADD` with the owner's fields as options.
    case ownerAdd(fields: [String: String])
    /// `OWNER GET <id>`.
    case ownerGet(id: Int64)
    /// `OWNER UPDATE <id> version=<n>` with the fields to change.
    case ownerUpdate(id: Int64, version: Int, fields: [String: String])
    /// `CAMERA REGISTER` with the camera's fields as options.
    case cameraRegister(fields: [String: String])
    /// `CAMERA VERIFY <id> by=<name> [version=<n>]`.
    case cameraVerify(id: String, by: String, version: Int?)
    /// `CAMERA UPDATE <id> version=<n>` with the fields to change.
    case cameraUpdate(id: String, version: Int, fields: [String: String])
    /// `CAMERA STATUS <id> <status> [reason=…] [version=<n>] [by=…]`.
    case cameraStatus(id: String, status: String, reason: String?, version: Int?, by: String?)
    /// `CAMERA LIST` with filters and a cursor.
    case cameraList(CameraListQuery)
    /// `CAMERA EXPORT format=csv|geojson` with the filters of `CAMERA LIST`: one page of the file.
    case cameraExport(format: String, sectors: Bool, query: CameraListQuery)
    /// The incident commands (`INCIDENT …`, `INCIDENTS …`), see ``IncidentCommand``.
    case incident(IncidentCommand)
    /// `IMPORT BEGIN format=… [options]`: starts an upload on this connection.
    case importBegin(format: String, options: [String: String])
    /// `IMPORT DATA <base64>`: the next chunk of the file.
    case importData(base64: String)
    /// `IMPORT COMMIT`: parses, validates and loads the uploaded file; answers with the report.
    case importCommit
    /// `IMPORT ABORT`: drops the upload.
    case importAbort
    /// `AUTH <token>`: authenticates the connection.
    case auth(token: String)
    /// `WHOAMI`: the connection's identity.
    case whoami
    /// `TOKEN …` (admins).
    case token(TokenCommand)
    /// `AUDIT …` (admins).
    case audit(AuditCommand)
    /// The coverage commands (`COVERAGE …`), see ``CoverageCommand``.
    case coverage(CoverageCommand)
    /// The background-job commands (`JOB …`), see ``JobCommand``.
    case job(JobCommand)
}

/// Filters and paging of `CAMERA LIST`.
public struct CameraListQuery: Sendable, Equatable {
    public var ward: String?
    public var status: String?
    public var owner: Int64?
    public var site: String?
    /// Return cameras with ids after this one (the previous page's `next_cursor`).
    public var after: String?
    public var limit: Int
    public init(ward: String? = nil, status: String? = nil, owner: Int64? = nil, site: String? = nil, after: String? = nil, limit: Int = 100) {
        self.ward = ward
        self.status = status
        self.owner = owner
        self.site = site
        self.after = after
        self.limit = limit
    }
}

/// One option a command takes.
public struct OptionSpec: Sendable {
    /// Shorthand used by the command tables.
    static func opt(_ name: String, _ placeholder: String, _ summary: String, required: Bool = false) -> OptionSpec {
        OptionSpec(name: name, placeholder: placeholder, required: required, summary: summary)
    }

    /// The option name (lower case), as in `name=value`.
    public let name: String
    /// What the value looks like, for help (`<m>`).
    public let placeholder: String
    /// Whether the option must be given.
    public let required: Bool
    /// One line of help.
    public let summary: String
}

/// One row of the command table: words, arguments, options, help and the parser of the command.
/// `HELP` is generated from the same table that dispatches.
///
/// A class: every parsed ``Request`` holds its command's row, and a row is a dozen references
/// (words, roles, options, help); as a struct each copy of a request counted every one of them up
/// and down again.
public final class CommandSpec: Sendable {
    /// The command words, upper case (`["CAMERA", "GET"]`).
    public let words: [String]
    /// Who may run it, whether it needs `case=`, and when it is audited.
    public let access: Access
    /// Names of the positional arguments, for help (`["lat", "lon"]`).
    public let arguments: [String]
    /// How many of the trailing positional arguments are optional.
    public let optionalArguments: Int
    /// Options the command accepts.
    public let options: [OptionSpec]
    /// One line of help.
    public let summary: String
    /// Builds the typed command from the arguments and options (already checked for arity and names).
    let build: @Sendable (_ args: [String], _ options: [String: String], _ limits: ProtocolLimits) throws(ProtocolError) -> Command
    /// The command's name (`CAMERA GET`).
    public let name: String
    /// A small number of its own: rows are numbered from 0 as they are made, so that a
    /// per-command count or latency ring is an array element (hashing the name cost a request
    /// some 600 instructions, twice).
    public let index: Int
    private static let made = Atomic<Int>(0)

    init(words: [String], access: Access, arguments: [String], optionalArguments: Int, options: [OptionSpec], summary: String,
         build: @escaping @Sendable (_ args: [String], _ options: [String: String], _ limits: ProtocolLimits) throws(ProtocolError) -> Command) {
        self.words = words
        self.access = access
        self.arguments = arguments
        self.optionalArguments = optionalArguments
        self.options = options
        self.summary = summary
        self.build = build
        name = words.joined(separator: " ")
        index = Self.made.add(1, ordering: .relaxed).oldValue
    }

    /// The usage line (`NEAR <lat> <lon> radius=<m> [limit=<n>]`).
    public var synopsis: String {
        var parts = words
        for (i, a) in arguments.enumerated() {
            parts.append(i >= arguments.count - optionalArguments ? "[<\(a)>]" : "<\(a)>")
        }
        for o in options { parts.append(o.required ? "\(o.name)=\(o.placeholder)" : "[\(o.name)=\(o.placeholder)]") }
        return parts.joined(separator: " ")
    }
}

/// The command table: every command the control socket understands.
public enum CommandTable {
    /// All commands, in the order `HELP` lists them.
    public static let all: [CommandSpec] = [
        CommandSpec(words: ["PING"], access: .open, arguments: [], optionalArguments: 0, options: [],
                    summary: "Checks that the daemon answers.") { _, _, _ in .ping },
        CommandSpec(words: ["HELP"], access: .open, arguments: ["command"], optionalArguments: 1, options: [],
                    summary: "Lists the commands, or describes one.") { args, _, _ in
            .help(topic: args.isEmpty ? nil : args.joined(separator: " ").uppercased())
        },
        CommandSpec(words: ["NEAR"], access: .search, arguments: ["lat", "lon"], optionalArguments: 0,
                    options: [
                        OptionSpec(name: "radius", placeholder: "<m>", required: true,
                                   summary: "Search radius in metres (> 0, at most the server's maximum, 50000 by default)."),
                        OptionSpec(name: "limit", placeholder: "<n>", required: false,
                                   summary: "At most this many cameras (1–10000, default 100)."),
                    ] + SearchCommands.searchOptions,
                    summary: "Cameras within a radius of a point, nearest first (ellipsoidal distance).") { args, options, limits throws(ProtocolError) in
            let lat = try Values.double(args[0], field: "lat", range: -90...90)
            let lon = try Values.double(args[1], field: "lon", range: -180...180)
            let radius = try Values.radius(options["radius"]!, limits: limits)
            let limit = try options["limit"].map { v throws(ProtocolError) in
                try Values.int(v, field: "limit", range: 1...limits.maxLimit)
            } ?? limits.defaultLimit
            return .near(NearQuery(lat: lat, lon: lon, radius: radius, limit: limit, search: try SearchCommands.search(options)))
        },
    ] + AccessCommands.specs + SearchCommands.specs + [
        CommandSpec(words: ["CAMERA", "GET"], access: .cameraRead, arguments: ["id"], optionalArguments: 0, options: [],
                    summary: "One camera with all its fields.") { args, _, _ throws(ProtocolError) in
            .cameraGet(id: try Values.cameraID(args[0]))
        },
    ] + LifecycleCommands.specs + ImportCommands.specs + IncidentCommands.specs + CoverageCommands.specs + [
        CommandSpec(words: ["STATS"], access: .staff, arguments: [], optionalArguments: 0, options: [],
                    summary: "Camera count, index build time, uptime, connections and requests served.") { _, _, _ in .stats },
        CommandSpec(words: ["QUIT"], access: .open, arguments: [], optionalArguments: 0, options: [],
                    summary: "Closes the connection.") { _, _, _ in .quit },
    ]

    /// The commands by their first word (the parser's lookup).
    static let byFirstWord: [String: [CommandSpec]] = Dictionary(grouping: all) { $0.words[0] }

    /// The spec of a command by name (`"camera get"` or `"CAMERA GET"`).
    public static func spec(named name: String) -> CommandSpec? {
        let words = name.split(separator: " ").map { $0.uppercased() }
        return all.first { $0.words == words }
    }
}

/// Parses request lines into ``Command``s against the ``CommandTable``.
public enum RequestParser {
    /// Parses one line (raw bytes, without the newline).
    public static func parse(_ bytes: some Collection<UInt8>, limits: ProtocolLimits = .init()) throws(ProtocolError) -> Command {
        try parseRequest(bytes, limits: limits).command
    }

    /// Parses one line into a ``Request``: the command, its table row and the envelope
    /// options (`case=`, `purpose=`), which every command accepts.
    public static func parseRequest(_ bytes: some Collection<UInt8>, limits: ProtocolLimits = .init()) throws(ProtocolError) -> Request {
        if bytes.count > limits.maxLineBytes {
            throw ProtocolError(.lineTooLong, "the request is longer than \(limits.maxLineBytes) bytes")
        }
        if let upload = bytes.withContiguousStorageIfAvailable(importDataChunk), let upload { return upload }
        if let near = bytes.withContiguousStorageIfAvailable({ nearLine($0, limits: limits) }), let near { return near }
        return try parseGeneral(bytes, limits: limits)
    }

    /// ``parseRequest(_:limits:)`` without the fast paths (tests compare the two).
    static func parseGeneral(_ bytes: some Collection<UInt8>, limits: ProtocolLimits) throws(ProtocolError) -> Request {
        let tokens = try Tokenizer.tokenize(bytes)
        var caseID: String?, purpose: String?
        var seen: Set<String> = []
        for (name, value) in tokens.options where EnvelopeOptions.isEnvelope(name) {
            guard seen.insert(name).inserted else {
                throw ProtocolError(.duplicateOption, "option \(name) is given twice", field: name)
            }
            if name == "case" { caseID = try EnvelopeOptions.caseID(value) } else { purpose = try EnvelopeOptions.purpose(value) }
        }
        // A command that declares `case` itself (INCIDENT ADD …) gets it as its own option too.
        let (command, spec) = try parse(tokens: tokens, limits: limits)
        return Request(command: command, spec: spec, caseID: caseID, purpose: purpose)
    }

    /// The table's row for `IMPORT DATA`.
    static let importDataSpec = CommandTable.spec(named: "IMPORT DATA")!
    static let importDataPrefix = Array("IMPORT DATA data=".utf8)

    /// `IMPORT DATA data=<base64>` exactly so (upper-case words, one option, only base64
    /// characters after it), recognised without the tokenizer: these lines carry nearly all of a
    /// bulk upload's bytes (tokenizing 343 MB of them cost 0.75 s of the event loop at 1M
    /// cameras). The tokenizer gives the same command for them; any other spelling takes it.
    static func importDataChunk(_ b: UnsafeBufferPointer<UInt8>) -> Request? {
        let p = importDataPrefix
        guard b.count > p.count, b.starts(with: p) else { return nil }
        // Every character a base64 one or `=` (by table: a branch per byte cost 0.8 s of the
        // event loop over a 1M-camera upload).
        let allowed = Base64.values.withUnsafeBufferPointer { t -> Bool in
            var bad: UInt8 = 0
            for i in p.count..<b.count {
                let c = b[i]
                bad |= t[Int(c)] & (c == 0x3D ? 0 : 0x80)
            }
            return bad == 0
        }
        guard allowed else { return nil }
        let text = String(decoding: UnsafeBufferPointer(rebasing: b[p.count...]), as: UTF8.self)
        return Request(command: .importData(base64: text), spec: importDataSpec, caseID: nil, purpose: nil)
    }

    /// The table's row for `NEAR`.
    static let nearSpec = CommandTable.spec(named: "NEAR")!

    /// A plain `NEAR` line — `NEAR <lat> <lon>` then `name=value` options of `NEAR`'s own, each
    /// once, `radius=` among them; printable ASCII, no quotes, words split by spaces — parsed
    /// without the tokenizer, the option dictionary and the table lookup (a third of a `NEAR`'s
    /// parse time, most of it hashing). Values go through the same checks (`Values`,
    /// `SearchCommands.search`) as on the general path, so the command is the same (a test
    /// compares the two over generated lines). Any other line, and any line with an error in it,
    /// returns nil: the general path then parses it, or names the error.
    static func nearLine(_ b: UnsafeBufferPointer<UInt8>, limits: ProtocolLimits) -> Request? {
        let space: UInt8 = 0x20
        guard b.count > 5, b[0] == 0x4E, b[1] == 0x45, b[2] == 0x41, b[3] == 0x52, b[4] == space else { return nil }  // "NEAR "
        // The numbers are kept as byte ranges and read from the bytes (no `String` each); the
        // other options, rarer, as text.
        var words: (Range<Int>?, Range<Int>?) = (nil, nil)
        var radius: Range<Int>?, limit: Range<Int>?
        var at: String?, from: String?, to: String?
        var sees: String?, order: String?, offset: String?, fields: Range<Int>?
        func bytes(_ r: Range<Int>) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: b[r]) }
        func text(_ r: Range<Int>) -> String { String(decoding: bytes(r), as: UTF8.self) }
        var i = 5
        while i < b.count {
            if b[i] == space { i += 1; continue }
            let start = i
            var equals = -1
            while i < b.count, b[i] != space {
                let c = b[i]
                guard c > space, c < 0x7F, c != 0x22, c != 0x5C else { return nil }  // printable ASCII; no quote, no backslash
                if c == 0x3D, equals < 0 { equals = i }
                i += 1
            }
            guard equals >= 0 else {
                // A positional word: only the two right after NEAR.
                guard radius == nil, limit == nil, at == nil, from == nil, to == nil, sees == nil, order == nil, offset == nil, fields == nil
                else { return nil }
                if words.0 == nil { words.0 = start..<i } else if words.1 == nil { words.1 = start..<i } else { return nil }
                continue
            }
            let value = (equals + 1)..<i
            // Option names of NEAR, lower-case as written (others take the general path).
            func set(_ slot: inout String?) -> Bool {
                guard slot == nil else { return false }
                slot = text(value)
                return true
            }
            func set(_ slot: inout Range<Int>?) -> Bool {
                guard slot == nil else { return false }
                slot = value
                return true
            }
            let name = UnsafeBufferPointer(rebasing: b[start..<equals])
            // Compared as bytes (a generic `elementsEqual` cost ~230 instructions a name).
            func `is`(_ literal: StaticString) -> Bool {
                guard literal.utf8CodeUnitCount == name.count else { return false }
                let bytes = literal.utf8Start
                for k in 0..<name.count where name[k] != bytes[k] { return false }
                return true
            }
            let ok: Bool
            if `is`("radius") { ok = set(&radius) }
            else if `is`("limit") { ok = set(&limit) }
            else if `is`("fields") { ok = set(&fields) }
            else if `is`("at") { ok = set(&at) }
            else if `is`("from") { ok = set(&from) }
            else if `is`("to") { ok = set(&to) }
            else if `is`("sees") { ok = set(&sees) }
            else if `is`("order") { ok = set(&order) }
            else if `is`("offset") { ok = set(&offset) }
            else { ok = false }
            guard ok else { return nil }
        }
        guard let latWord = words.0, let lonWord = words.1, let radiusWord = radius else { return nil }
        do {
            // Plain decimals in range straight from the bytes; anything else through `Values`,
            // which reads every other form and names what is wrong.
            let lat: Double, lon: Double, r: Double
            if let v = Values.plainDecimal(bytes: bytes(latWord)), v >= -90, v <= 90 {
                lat = v
            } else {
                lat = try Values.double(text(latWord), field: "lat", range: -90...90)
            }
            if let v = Values.plainDecimal(bytes: bytes(lonWord)), v >= -180, v <= 180 {
                lon = v
            } else {
                lon = try Values.double(text(lonWord), field: "lon", range: -180...180)
            }
            if let v = Values.plainDecimal(bytes: bytes(radiusWord)), v > 0, v <= limits.maxRadius {
                r = v
            } else {
                r = try Values.radius(text(radiusWord), limits: limits)
            }
            var n = limits.defaultLimit
            if let w = limit {
                if let v = Values.plainInt(bytes: bytes(w)), v >= 1, v <= limits.maxLimit {
                    n = v
                } else {
                    n = try Values.int(text(w), field: "limit", range: 1...limits.maxLimit)
                }
            }
            var search = try SearchCommands.search(at: at, from: from, to: to, sees: sees, order: order, offset: offset, fields: nil)
            // `fields=` read from the line's bytes (no `String` of it).
            if let w = fields { search.fields = try HitFields.parse(bytes: bytes(w)) }
            return Request(command: .near(NearQuery(lat: lat, lon: lon, radius: r, limit: n, search: search)), spec: nearSpec,
                           caseID: nil, purpose: nil)
        } catch {
            return nil
        }
    }

    /// Parses one line of text.
    public static func parse(_ line: String, limits: ProtocolLimits = .init()) throws(ProtocolError) -> Command {
        try parse(Array(line.utf8), limits: limits)
    }

    static func parse(tokens: TokenizedLine, limits: ProtocolLimits) throws(ProtocolError) -> (Command, CommandSpec) {
        guard !tokens.words.isEmpty else {
            if tokens.options.isEmpty { throw ProtocolError(.emptyRequest, "the request is empty; try HELP") }
            throw ProtocolError(.unknownCommand, "a request starts with a command name; try HELP")
        }
        // Command words are matched without case and without upper-casing copies: the words after
        // them are usually numbers and ids.
        let first = Values.asciiUppercased(tokens.words[0])
        let words = tokens.words
        // Longest match of command words, among the commands that start with the first word.
        var found: CommandSpec?
        for spec in CommandTable.byFirstWord[first] ?? [] where spec.words.count <= words.count && spec.words.count > (found?.words.count ?? 0) {
            if (1..<spec.words.count).allSatisfy({ Values.asciiCaseInsensitiveEquals(words[$0], spec.words[$0]) }) { found = spec }
        }
        guard let spec = found else {
            let group = CommandTable.all.filter { $0.words.first == first && $0.words.count > 1 }
            if !group.isEmpty {
                let subs = group.map { $0.words.dropFirst().joined(separator: " ") }.joined(separator: ", ")
                if words.count == 1 {
                    throw ProtocolError(.wrongArity, "\(first) needs a subcommand: \(subs)")
                }
                throw ProtocolError(.unknownCommand, "unknown subcommand \(tokens.words[1]) of \(first); known: \(subs)")
            }
            throw ProtocolError(.unknownCommand, "unknown command \(Values.clip(tokens.words[0])); try HELP")
        }
        let args = Array(tokens.words.dropFirst(spec.words.count))
        let minArgs = spec.arguments.count - spec.optionalArguments
        if spec.words == ["HELP"] {
            // HELP takes a command name of one or more words.
            if args.count > 3 { throw ProtocolError(.wrongArity, "usage: \(spec.synopsis)") }
        } else if args.count < minArgs || args.count > spec.arguments.count {
            throw ProtocolError(.wrongArity,
                                "\(spec.name) takes \(minArgs == spec.arguments.count ? "\(minArgs)" : "\(minArgs)–\(spec.arguments.count)") argument\(spec.arguments.count == 1 ? "" : "s"), got \(args.count); usage: \(spec.synopsis)")
        }
        var options: [String: String] = [:]
        for (name, value) in tokens.options {
            let declared = spec.options.contains(where: { $0.name == name })
            if !declared, EnvelopeOptions.isEnvelope(name) { continue }  // case=, purpose=: see parseRequest
            guard declared else {
                let known = spec.options.map(\.name)
                throw ProtocolError(.unknownOption,
                                    "\(spec.name) has no option \(Values.clip(name))" + (known.isEmpty ? "" : "; options: \(known.joined(separator: ", "))"),
                                    field: String(name.prefix(64)))
            }
            guard options[name] == nil else {
                throw ProtocolError(.duplicateOption, "option \(name) is given twice", field: name)
            }
            options[name] = value
        }
        for o in spec.options where o.required && options[o.name] == nil {
            throw ProtocolError(.missingOption, "\(spec.name) needs \(o.name)=\(o.placeholder); usage: \(spec.synopsis)", field: o.name)
        }
        return (try spec.build(args, options, limits), spec)
    }
}

/// Strict value parsers shared by the command builders.
public enum Values {
    /// `s` upper-cased in ASCII; `s` itself (no copy) when it has no lower-case ASCII letter.
    /// Other characters are left alone, so a non-ASCII word matches no command.
    static func asciiUppercased(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 >= 0x61 && $0 <= 0x7A }) else { return s }
        return String(decoding: s.utf8.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
    }

    /// Whether `a` equals the upper-case ASCII word `upper` when `a`'s ASCII letters are upper-cased.
    static func asciiCaseInsensitiveEquals(_ a: String, _ upper: String) -> Bool {
        a.utf8.elementsEqual(upper.utf8) { x, y in (x >= 0x61 && x <= 0x7A ? x - 0x20 : x) == y }
    }

    /// A finite decimal number (`-12.5`, `1e3`); NaN and infinities are refused as `not_finite`,
    /// anything else that is not a plain decimal as `not_a_number`.
    public static func double(_ s: String, field: String, range: ClosedRange<Double>? = nil) throws(ProtocolError) -> Double {
        guard let v = plainDecimal(s) ?? (isDecimal(s) ? Double(s) : nil) else {
            let lower = s.lowercased()
            let bare = lower.hasPrefix("+") || lower.hasPrefix("-") ? String(lower.dropFirst()) : lower
            if ["nan", "inf", "infinity", "snan"].contains(bare) {
                throw ProtocolError(.notFinite, "\(field) must be a finite number, not \(clip(s))", field: field)
            }
            throw ProtocolError(.notANumber, "\(field) must be a number, not \(clip(s))", field: field)
        }
        guard v.isFinite else {
            throw ProtocolError(.notFinite, "\(field) is too large to be a finite number", field: field)
        }
        if let range, !range.contains(v) {
            throw ProtocolError(.outOfRange, "\(field) must be between \(fmt(range.lowerBound)) and \(fmt(range.upperBound)), not \(clip(s))", field: field)
        }
        return v
    }

    /// A whole number in `range`.
    public static func int(_ s: String, field: String, range: ClosedRange<Int>) throws(ProtocolError) -> Int {
        let digits = s.utf8.first == UInt8(ascii: "-") || s.utf8.first == UInt8(ascii: "+") ? s.utf8.dropFirst() : s.utf8[...]
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw ProtocolError(.notANumber, "\(field) must be a whole number, not \(clip(s))", field: field)
        }
        guard let v = Int(s), range.contains(v) else {
            throw ProtocolError(.outOfRange, "\(field) must be between \(range.lowerBound) and \(range.upperBound), not \(clip(s))", field: field)
        }
        return v
    }

    /// A search radius in metres: > 0 (`radius_not_positive`) and ≤ the maximum (`radius_too_large`).
    public static func radius(_ s: String, limits: ProtocolLimits, field: String = "radius") throws(ProtocolError) -> Double {
        let r = try double(s, field: field)
        guard r > 0 else { throw ProtocolError(.radiusNotPositive, "\(field) must be greater than 0 m, not \(clip(s))", field: field) }
        guard r <= limits.maxRadius else {
            throw ProtocolError(.radiusTooLarge, "\(field) must be at most \(fmt(limits.maxRadius)) m, not \(clip(s))", field: field)
        }
        return r
    }

    /// A camera id: 1–64 characters of letters, digits, `-` and `_` (e.g. `BC-00042`), upper-cased.
    public static func cameraID(_ s: String, field: String = "id") throws(ProtocolError) -> String {
        guard !s.isEmpty, s.utf8.count <= 64,
              s.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") })
        else {
            throw ProtocolError(.invalidValue, "\(field) must be 1–64 letters, digits, '-' or '_' (like BC-00042), not \(clip(s))", field: field)
        }
        return s.uppercased()
    }

    /// `s` read as a double when it is a plain decimal: an optional sign, at least one digit,
    /// optionally a point and more digits, at most 15 significant digits and 22 after the point,
    /// no exponent (what every coordinate and radius looks like). The digits make an integer
    /// below 2⁵³ and the power of ten is at most 10²², both exact doubles, so one IEEE division
    /// rounds the quotient correctly: the same double as `Double(s)` (strtod's own fast path,
    /// Clinger's), without its locale-free string walk and checks (a third of a `NEAR` line's
    /// parse). `nil` for anything else, which then takes the general path.
    static func plainDecimal(_ s: String) -> Double? {
        s.utf8.withContiguousStorageIfAvailable { plainDecimal(bytes: $0) } ?? nil
    }

    /// ``plainDecimal(_:)`` of UTF-8 bytes.
    static func plainDecimal(bytes b: UnsafeBufferPointer<UInt8>) -> Double? {
        do {
            let n = b.count
            var i = 0
            var negative = false
            if i < n, b[i] == 0x2B || b[i] == 0x2D {  // + -
                negative = b[i] == 0x2D
                i += 1
            }
            var m: UInt64 = 0
            var significant = 0, fractionDigits = 0
            /// Reads a run of digits into `m`; returns how many there were.
            func digits() -> Int {
                let start = i
                while i < n, b[i] >= 0x30, b[i] <= 0x39 {
                    m = m &* 10 &+ UInt64(b[i] &- 0x30)
                    if m != 0 { significant += 1 }
                    i += 1
                }
                return i - start
            }
            guard digits() > 0 else { return nil }
            if i < n, b[i] == 0x2E {  // .
                i += 1
                fractionDigits = digits()
                guard fractionDigits > 0 else { return nil }
            }
            guard i == n, significant <= 15, fractionDigits <= 22 else { return nil }
            let v = Double(m) / powersOfTen[fractionDigits]
            return negative ? -v : v
        }
    }

    /// `b` read as a whole number of 1 to 18 plain digits (no sign), or `nil` (then the general
    /// path, ``int(_:field:range:)``, reads it or says what is wrong).
    static func plainInt(bytes b: UnsafeBufferPointer<UInt8>) -> Int? {
        guard b.count > 0, b.count <= 18 else { return nil }
        var v = 0
        for c in b {
            guard c >= 0x30, c <= 0x39 else { return nil }
            v = v &* 10 &+ Int(c &- 0x30)
        }
        return v
    }

    /// 10⁰ … 10²², each exactly a double.
    private static let powersOfTen: [Double] = (0...22).map { k in (0..<k).reduce(1.0) { p, _ in p * 10 } }

    static func isDecimal(_ s: String) -> Bool {
        var it = s.utf8.makeIterator()
        var c = it.next()
        if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { c = it.next() }
        var digits = 0
        while let d = c, d >= 48, d <= 57 { digits += 1; c = it.next() }
        if c == UInt8(ascii: ".") {
            c = it.next()
            while let d = c, d >= 48, d <= 57 { digits += 1; c = it.next() }
        }
        guard digits > 0 else { return false }
        if c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            c = it.next()
            if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { c = it.next() }
            var exp = 0
            while let d = c, d >= 48, d <= 57 { exp += 1; c = it.next() }
            guard exp > 0 else { return false }
        }
        return c == nil
    }

    /// A value shortened for an error message.
    static func clip(_ s: String) -> String {
        s.count > 40 ? "'\(s.prefix(40))…'" : "'\(s)'"
    }

    static func fmt(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : d.description
    }
}
