import ArgumentParser
import ControlProtocol
import Foundation

/// Options every subcommand shares.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "camregd's control socket (default $CAMREG_SOCKET, else ./camreg-data/camregd.sock).")
    var socket: String = ProcessInfo.processInfo.environment["CAMREG_SOCKET"] ?? "./camreg-data/camregd.sock"

    @Flag(name: .long, help: "Print the daemon's JSON response as it is (for scripts).")
    var json = false

    @Option(name: .long, help: "Seconds to wait for an answer (default $CAMREG_TIMEOUT, else 30).")
    var timeout: Double = ProcessInfo.processInfo.environment["CAMREG_TIMEOUT"].flatMap { Double($0) }.flatMap { $0 > 0 ? $0 : nil } ?? 30

    @Option(name: .customLong("token"), help: "API token (default $CAMREG_TOKEN); sent with AUTH before the request. Without one, the daemon's own OS user is admin.")
    var tokenOption: String?

    @Option(name: .customLong("case-id"), help: "Case number the request is for (investigators must give one; default $CAMREG_CASE).")
    var caseOption: String?

    /// `--token`, else `$CAMREG_TOKEN`.
    var token: String? { tokenOption ?? ProcessInfo.processInfo.environment["CAMREG_TOKEN"] }
    /// `--case-id`, else `$CAMREG_CASE`.
    var envelopeCase: String? { caseOption ?? ProcessInfo.processInfo.environment["CAMREG_CASE"] }

    @Option(name: .long, help: "Why the request is made (recorded in the audit log).")
    var purpose: String?

    /// A connected client, authenticated when a token is given.
    func connect(timeout: Double? = nil) throws -> ControlClient {
        let client = try ControlClient(path: socket, timeout: timeout ?? self.timeout)
        client.envelopeCase = envelopeCase
        client.envelopePurpose = purpose
        if let token {
            guard !token.isEmpty, !token.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) else {
                client.close()
                throw CLIError("the token must be one word without spaces or line breaks (camreg_<id>_<secret>)")
            }
            let answer = try client.request("AUTH " + Tokenizer.quote(token), envelope: false)
            guard let o = (try? JSONSerialization.jsonObject(with: Data(answer.utf8))) as? [String: Any], o["ok"] as? Bool == true else {
                client.close()
                throw CLIError("the daemon refused the token: \(answer)")
            }
        }
        return client
    }
}

/// A blocking Unix-socket client: one request line out, one JSON line back.
final class ControlClient {
    let fd: Int32
    /// `case=` appended to every request that does not name a case itself.
    var envelopeCase: String?
    /// `purpose=` appended to every request.
    var envelopePurpose: String?

    init(path: String, timeout: Double) throws {
        guard path.utf8.count <= 107 else { throw ValidationError("socket path longer than 107 bytes: \(path)") }
        fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLIError("cannot create a socket: \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw CLIError("cannot connect to camregd at \(path): \(reason) (is camregd running? use --socket)")
        }
    }

    /// Sends one line (with the envelope options) and returns the response line.
    func request(_ line: String, envelope withEnvelope: Bool = true) throws -> String {
        var full = line
        if withEnvelope {
            if let c = envelopeCase, !line.contains(" case=") { full += " case=" + Tokenizer.quote(c) }
            if let p = envelopePurpose { full += " purpose=" + Tokenizer.quote(p) }
        }
        var out = Array((full + "\n").utf8)
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeMutableBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n < 0 && errno == EINTR { continue }  // a signal (Ctrl-C) arrived: its handler only notes it
            guard n > 0 else { throw CLIError("cannot send the request: \(String(cString: strerror(errno)))") }
            sent += n
        }
        out.removeAll()
        var response: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            // A socket with a receive timeout is not restarted after a signal handler ran (SA_RESTART
            // or not): `coverage run`'s Ctrl-C handler then cancels the job after this answer.
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw CLIError(errno == EAGAIN ? "no answer from camregd in time" : "read failed: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            if let nl = buf[0..<n].firstIndex(of: 0x0A) {
                response += buf[0..<nl]
                return String(decoding: response, as: UTF8.self)
            }
            response += buf[0..<n]
        }
        if response.isEmpty { throw CLIError("camregd closed the connection without answering") }
        return String(decoding: response, as: UTF8.self)
    }

    func close() { Glibc.close(fd) }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Sends `line`, prints the answer as JSON or through `render`, exits non-zero on an error answer.
func exchange(_ options: ClientOptions, _ line: String, render: ([String: Any]) -> Void) throws {
    let client = try options.connect()
    defer { client.close() }
    let text = try client.request(line)
    guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
        throw CLIError("camregd sent something that is not a JSON object: \(text.prefix(200))")
    }
    let ok = object["ok"] as? Bool ?? false
    if options.json {
        print(text)
    } else if ok {
        render(object)
    }
    if !ok {
        let err = object["error"] as? [String: Any] ?? [:]
        let code = err["code"] as? String ?? "error"
        let message = err["message"] as? String ?? text
        if !options.json {
            FileHandle.standardError.write(Data("error [\(code)]: \(message)\n".utf8))
        }
        throw ExitCode(2)
    }
}

/// Prints rows as an aligned table (widths by characters, so Vietnamese text lines up).
func printTable(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) {
    var widths = header.map { $0.count }
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in
            let pad = String(repeating: " ", count: widths[i] - c.count)
            return rightAligned.contains(i) ? pad + c : c + pad
        }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
    }
    print(line(header))
    print(line(widths.map { String(repeating: "─", count: $0) }))
    rows.forEach { print(line($0)) }
}

func text(_ v: Any?) -> String {
    switch v {
    case nil, is NSNull: return "—"
    case let s as String: return s
    case let n as NSNumber:
        // JSON booleans arrive as NSNumbers of type 'c' (char).
        if String(cString: n.objCType) == "c" { return n.boolValue ? "yes" : "no" }
        return n.stringValue
    default: return "\(v!)"
    }
}

func number(_ v: Any?, decimals: Int) -> String {
    guard let d = (v as? NSNumber)?.doubleValue else { return "—" }
    return String(format: "%.\(decimals)f", d)
}

@main
struct Camreg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "camreg",
        abstract: "Client for camregd, the security-camera registry.",
        subcommands: [Ping.self, Near.self, Nearest.self, Along.self, Within.self, IncidentCommandGroup.self, CameraCommand.self, OwnerCommand.self, Import.self, Export.self, CoverageCLI.self, LayerCLI.self,
                      Stats.self, Help.self, Raw.self, WhoAmI.self, TokenCommandGroup.self, AuditCommandGroup.self])
}

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Checks that camregd answers.")
    @OptionGroup var options: ClientOptions
    func run() throws {
        try exchange(options, "PING") { _ in print("pong") }
    }
}

/// The incident time and ranking options of the investigator searches.
struct SearchFlags: ParsableArguments {
    @Option(help: "Incident time, ISO-8601 with offset (2022-06-26T06:40+07:00).") var at: String?
    @Option(help: "Start of the incident window.") var from: String?
    @Option(help: "End of the incident window.") var to: String?
    @Flag(help: "Only cameras whose field of view covers the incident.") var seesOnly = false
    @Option(help: "distance or urgency (seeing cameras with the soonest-expiring footage first).") var order: String?
    @Option(help: "Only these members of each camera, comma-separated (e.g. distance_m,sees,footage); without owner fields nothing is disclosed or audited.") var fields: String?

    var options: String {
        var s = ""
        if let at { s += " at=\(Tokenizer.quote(at))" }
        if let from { s += " from=\(Tokenizer.quote(from))" }
        if let to { s += " to=\(Tokenizer.quote(to))" }
        if seesOnly { s += " sees=only" }
        if let order { s += " order=\(Tokenizer.quote(order))" }
        if let fields { s += " fields=\(Tokenizer.quote(fields))" }
        return s
    }
}

/// Prints the cameras of a search answer as a table.
func printHits(_ o: [String: Any], what: String) {
    let cams = o["cameras"] as? [[String: Any]] ?? []
    let timed = o["from"] != nil
    // (header, member, cell): a column is shown when the answer holds its member (see fields=).
    var columns: [(String, String, ([String: Any]) -> String)] = [
        ("ID", "id", { text($0["id"]) }), ("DIST m", "distance_m", { number($0["distance_m"], decimals: 1) }),
        ("BRG°", "bearing_deg", { number($0["bearing_deg"], decimals: 0) }),
        ("SEES", "sees", { ($0["sees"] as? Bool) == true ? "yes" : "no" }),
    ]
    if timed {
        columns += [("FOOTAGE", "footage", { text($0["footage"]) }), ("EXPIRES (UTC)", "expires_at", { text($0["expires_at"]).prefix(16).description })]
    }
    columns += [("SITE", "site", { text($0["site"]) }), ("STATUS", "status", { text($0["status"]) }),
                ("OWNER", "owner_name", { text($0["owner_name"]) }), ("PHONE", "owner_phone", { text($0["owner_phone"]) }),
                ("ADDRESS", "address", { text($0["address"]) })]
    if !cams.isEmpty { columns = columns.filter { col in cams.contains { $0[col.1] != nil } } }
    let rows = cams.enumerated().map { i, c in [String(i + 1)] + columns.map { $0.2(c) } }
    let headers = ["#"] + columns.map(\.0)
    printTable(headers, rows, rightAligned: Set([0] + ["DIST m", "BRG°"].compactMap { h in headers.firstIndex(of: h) }))
    print("\(cams.count) camera\(cams.count == 1 ? "" : "s") \(what)")
}

struct Near: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cameras within a radius of a point, nearest first (or by urgency).")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Latitude (WGS84 degrees).") var lat: String
    @Argument(help: "Longitude (WGS84 degrees).") var lon: String
    @Option(name: .long, help: "Radius in metres.") var radius: String
    @Option(name: .long, help: "At most this many cameras.") var limit: String?
    @OptionGroup var search: SearchFlags

    func run() throws {
        var line = "NEAR \(Tokenizer.quote(lat)) \(Tokenizer.quote(lon)) radius=\(Tokenizer.quote(radius))"
        if let limit { line += " limit=\(Tokenizer.quote(limit))" }
        try exchange(options, line + search.options) { o in printHits(o, what: "within \(radius) m of \(lat), \(lon)") }
    }
}

struct Nearest: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Exactly the k cameras closest to a point.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Latitude.") var lat: String
    @Argument(help: "Longitude.") var lon: String
    @Option(help: "How many.") var k: String = "10"
    @Option(help: "Only within this many metres.") var max: String?
    @OptionGroup var search: SearchFlags
    func run() throws {
        var line = "NEAREST \(Tokenizer.quote(lat)) \(Tokenizer.quote(lon)) k=\(Tokenizer.quote(k))"
        if let max { line += " max=\(Tokenizer.quote(max))" }
        try exchange(options, line + search.options) { o in printHits(o, what: "nearest to \(lat), \(lon)") }
    }
}

struct Along: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cameras along an escape route, in route order.")
    @OptionGroup var options: ClientOptions
    @Option(help: "The route: lat,lon;lat,lon;… or WKT LINESTRING(lon lat, …).") var route: String
    @Option(help: "Corridor half-width in metres.") var width: String
    @Option(help: "One time per route point, separated by ';'.") var times: String?
    @Option(help: "At most this many cameras.") var limit: String?
    @OptionGroup var search: SearchFlags
    func run() throws {
        var line = "ALONG route=\(Tokenizer.quote(route)) width=\(Tokenizer.quote(width))"
        if let times { line += " times=\(Tokenizer.quote(times))" }
        if let limit { line += " limit=\(Tokenizer.quote(limit))" }
        try exchange(options, line + search.options) { o in printHits(o, what: "within \(width) m of the route") }
    }
}

struct Within: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cameras inside an area (WKT or GeoJSON polygon).")
    @OptionGroup var options: ClientOptions
    @Option(help: "WKT POLYGON((lon lat, …)) or a GeoJSON geometry.") var polygon: String
    @Option(help: "At most this many cameras.") var limit: String?
    @OptionGroup var search: SearchFlags
    func run() throws {
        var line = "WITHIN polygon=\(Tokenizer.quote(polygon))"
        if let limit { line += " limit=\(Tokenizer.quote(limit))" }
        try exchange(options, line + search.options) { o in printHits(o, what: "inside the area") }
    }
}

struct CameraCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "camera", abstract: "Camera records and their life cycle.",
                                                    subcommands: [Get.self, Register.self, Verify.self, Update.self, Status.self, List.self])
    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Shows one camera.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Camera id, e.g. BC-00042.") var id: String
        func run() throws {
            try exchange(options, "CAMERA GET \(Tokenizer.quote(id))", render: printCamera)
        }
    }

    struct Register: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registers a camera for an owner (status pending).")
        @OptionGroup var options: ClientOptions
        @OptionGroup var fields: CameraFieldOptions
        @Option(help: "Camera id (default: the next BC-<n>).") var id: String?
        @Flag(help: "Register even if it looks like a duplicate of one of the owner's cameras.") var distinct = false
        @Option(help: "Who registers it.") var by: String?
        func run() throws {
            var line = "CAMERA REGISTER" + fields.options
            if let id { line += " id=\(Tokenizer.quote(id))" }
            if distinct { line += " distinct=yes" }
            if let by { line += " by=\(Tokenizer.quote(by))" }
            try exchange(options, line, render: printCamera)
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Verifies a pending camera (pending → active).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Camera id.") var id: String
        @Option(help: "Who verified it.") var by: String
        @Option(help: "Expected version.") var version: Int?
        func run() throws {
            var line = "CAMERA VERIFY \(Tokenizer.quote(id)) by=\(Tokenizer.quote(by))"
            if let version { line += " version=\(version)" }
            try exchange(options, line, render: printCamera)
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Changes a camera's fields (needs the version you read last).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Camera id.") var id: String
        @Option(help: "The camera's version as read last.") var version: Int
        @OptionGroup var fields: CameraFieldOptions
        @Option(help: "Who changes it.") var by: String?
        func run() throws {
            try exchange(options, "CAMERA UPDATE \(Tokenizer.quote(id)) version=\(version)" + fields.options
                + (by.map { " by=\(Tokenizer.quote($0))" } ?? ""), render: printCamera)
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sets the status: active ↔ offline, any → retired (with --reason).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Camera id.") var id: String
        @Argument(help: "active, offline or retired.") var status: String
        @Option(help: "Why (required for retired).") var reason: String?
        @Option(help: "Expected version.") var version: Int?
        @Option(help: "Who changes it.") var by: String?
        func run() throws {
            var line = "CAMERA STATUS \(Tokenizer.quote(id)) \(Tokenizer.quote(status))"
            if let by { line += " by=\(Tokenizer.quote(by))" }
            if let reason { line += " reason=\(Tokenizer.quote(reason))" }
            if let version { line += " version=\(version)" }
            try exchange(options, line, render: printCamera)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists cameras with filters (all pages, or one with --limit).")
        @OptionGroup var options: ClientOptions
        @OptionGroup var filters: ListFilters
        @Option(help: "Only this many (one page).") var limit: Int?
        func run() throws {
            var cursor: String? = nil
            var rows: [[String]] = []
            repeat {
                var line = "CAMERA LIST" + filters.options + " limit=\(min(limit ?? 1000, 1000))"
                if let cursor { line += " after=\(cursor)" }
                var next: String? = nil
                try exchange(options, line) { o in
                    for c in o["cameras"] as? [[String: Any]] ?? [] {
                        rows.append([text(c["id"]), text(c["status"]), text(c["site"]), text(c["ward"]), text(c["owner_name"]), text(c["address"])])
                    }
                    next = o["next_cursor"] as? String
                }
                cursor = (limit == nil && !options.json) ? next : nil
            } while cursor != nil
            if !options.json {
                printTable(["ID", "STATUS", "SITE", "WARD", "OWNER", "ADDRESS"], rows)
                print("\(rows.count) camera\(rows.count == 1 ? "" : "s")")
            }
        }
    }
}

/// Filters of `camera list` and `export`.
struct ListFilters: ParsableArguments {
    @Option(help: "Only this ward.") var ward: String?
    @Option(help: "Only this status.") var status: String?
    @Option(help: "Only this owner's cameras (owner id).") var owner: Int?
    @Option(help: "Only this kind of site.") var site: String?

    var options: String {
        var s = ""
        if let ward { s += " ward=\(Tokenizer.quote(ward))" }
        if let status { s += " status=\(Tokenizer.quote(status))" }
        if let owner { s += " owner=\(owner)" }
        if let site { s += " site=\(Tokenizer.quote(site))" }
        return s
    }
}

/// The fields of a camera as flags; only those given are sent.
struct CameraFieldOptions: ParsableArguments {
    @Option(help: "Owner id (camreg owner add prints it).") var owner: Int?
    @Option(help: "Latitude.") var lat: String?
    @Option(help: "Longitude.") var lon: String?
    @Option(help: "intersection, alley, street, building or other.") var site: String?
    @Option(help: "Street address.") var address: String?
    @Option(help: "Ward or commune.") var ward: String?
    @Option(help: "Direction faced in degrees, or none.") var heading: String?
    @Option(help: "Field of view in degrees.") var fov: String?
    @Option(help: "Range in metres.") var range: String?
    @Option(help: "Mount height in metres.") var mountHeight: String?
    @Option(help: "Owner kind.") var ownerKind: String?
    @Option(help: "Contact name.") var ownerName: String?
    @Option(help: "Contact phone.") var ownerPhone: String?
    @Option(help: "24/7 or HH:MM-HH:MM.") var schedule: String?
    @Option(help: "Retention in days.") var retention: String?

    var options: String {
        let pairs: [(String, String?)] = [
            ("owner", owner.map(String.init)), ("lat", lat), ("lon", lon), ("site", site), ("address", address), ("ward", ward),
            ("heading", heading), ("fov", fov), ("range", range), ("mount_height", mountHeight), ("owner_kind", ownerKind),
            ("owner_name", ownerName), ("owner_phone", ownerPhone), ("schedule", schedule), ("retention", retention),
        ]
        return pairs.compactMap { k, v in v.map { " \(k)=\(Tokenizer.quote($0))" } }.joined()
    }
}

/// Prints the camera of a `{"camera":{…}}` answer, one field a line.
func printCamera(_ o: [String: Any]) {
    let c = o["camera"] as? [String: Any] ?? [:]
    let keys = ["id", "status", "site", "address", "ward", "lat", "lon", "heading_deg", "fov_deg", "range_m",
                "mount_height_m", "owner_id", "owner_kind", "owner_name", "owner_phone", "schedule", "retention_days",
                "verified_by", "verified_at", "status_reason", "created_at", "updated_at", "version"]
    let width = keys.map(\.count).max()!
    for k in keys {
        print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + text(c[k]))
    }
}

struct OwnerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "owner", abstract: "Camera owners.",
                                                    subcommands: [Add.self, Get.self, Update.self])

    struct Fields: ParsableArguments {
        @Option(help: "household, business, boarding_house, company or public.") var kind: String?
        @Option(help: "Name.") var name: String?
        @Option(help: "Vietnamese phone number.") var phone: String?
        @Option(help: "E-mail.") var email: String?
        @Option(help: "Postal address.") var address: String?
        @Option(help: "Ward or commune.") var ward: String?
        @Option(help: "Consent to share footage: yes or no.") var consent: String?
        @Option(help: "Consent valid until (YYYY-MM-DD).") var consentUntil: String?
        @Option(help: "Consent note.") var consentNote: String?
        var options: String {
            let pairs: [(String, String?)] = [("kind", kind), ("name", name), ("phone", phone), ("email", email), ("address", address),
                                              ("ward", ward), ("consent", consent), ("consent_until", consentUntil), ("consent_note", consentNote)]
            return pairs.compactMap { k, v in v.map { " \(k)=\(Tokenizer.quote($0))" } }.joined()
        }
    }

    static func printOwner(_ o: [String: Any]) {
        let w = o["owner"] as? [String: Any] ?? [:]
        let consent = w["consent"] as? [String: Any] ?? [:]
        for (k, v) in [("id", w["id"]), ("kind", w["kind"]), ("name", w["name"]), ("phone", w["phone_display"] ?? w["phone"]),
                       ("email", w["email"]), ("address", w["address"]), ("ward", w["ward"]), ("consent", consent["granted"]),
                       ("consent_until", consent["valid_until"]), ("consent_in_force", consent["in_force"]), ("cameras", w["cameras"]),
                       ("version", w["version"])] {
            print(k.padding(toLength: 17, withPad: " ", startingAt: 0) + text(v))
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Adds an owner; prints the id.")
        @OptionGroup var options: ClientOptions
        @OptionGroup var fields: Fields
        func run() throws { try exchange(options, "OWNER ADD" + fields.options, render: OwnerCommand.printOwner) }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Shows an owner.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Owner id.") var id: Int
        func run() throws { try exchange(options, "OWNER GET \(id)", render: OwnerCommand.printOwner) }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Changes an owner (needs the version read last).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Owner id.") var id: Int
        @Option(help: "The owner's version as read last.") var version: Int
        @OptionGroup var fields: Fields
        func run() throws { try exchange(options, "OWNER UPDATE \(id) version=\(version)" + fields.options, render: OwnerCommand.printOwner) }
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Imports cameras from CSV, GeoJSON or OpenStreetMap (Overpass JSON, OSM XML).",
        discussion: "Good rows are imported and each bad one is reported with its line or feature number; with --all-or-nothing nothing is imported if any row is bad.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The file.") var file: String
    @Option(help: "csv, geojson, osm-json or osm-xml (default: from the file name).") var format: String?
    @Flag(help: "Import nothing if any row is bad.") var allOrNothing = false
    @Option(help: "CSV separator.") var separator: String?
    @Option(name: .customLong("column"), parsing: .upToNextOption,
            help: "CSV column for a field, as field=Header (e.g. --column lat=Latitude lon=Longitude id=ID).") var columns: [String] = []
    @Option(help: "Who imports.") var by: String?

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
        let lower = file.lowercased()
        let fmt = format ?? (lower.hasSuffix(".csv") ? "csv" : lower.hasSuffix(".geojson") ? "geojson"
            : lower.hasSuffix(".osm") || lower.hasSuffix(".xml") ? "osm-xml" : lower.hasSuffix(".json") ? "osm-json" : "csv")
        var begin = "IMPORT BEGIN format=\(fmt)"
        if allOrNothing { begin += " all_or_nothing=yes" }
        if let separator { begin += " separator=\(Tokenizer.quote(separator))" }
        if let by { begin += " by=\(Tokenizer.quote(by))" }
        for c in columns {
            let parts = c.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--column takes field=Header, not \(c)") }
            begin += " col_\(parts[0])=\(Tokenizer.quote(parts[1]))"
        }
        let client = try options.connect(timeout: max(options.timeout, 600))
        defer { client.close() }
        func send(_ line: String) throws -> [String: Any] {
            let t = try client.request(line)
            guard let o = (try? JSONSerialization.jsonObject(with: Data(t.utf8))) as? [String: Any] else { throw CLIError("bad answer: \(t.prefix(200))") }
            if o["ok"] as? Bool != true {
                let e = o["error"] as? [String: Any] ?? [:]
                if options.json { print(t) } else { FileHandle.standardError.write(Data("error [\(text(e["code"]))]: \(text(e["message"]))\n".utf8)) }
                throw ExitCode(2)
            }
            return o
        }
        _ = try send(begin)
        let start = Date()
        let bytes = [UInt8](data)
        let chunk = 45_000
        var sent = 0, lines = 0
        var lastDraw = Date.distantPast
        let interactive = !options.json && isatty(2) == 1
        while sent < bytes.count {
            let part = bytes[sent..<min(sent + chunk, bytes.count)]
            _ = try send("IMPORT DATA data=" + String(decoding: Base64.encoded(part), as: UTF8.self))
            sent += part.count
            lines += part.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
            let elapsed = Date().timeIntervalSince(start)
            if interactive && elapsed > 1 && Date().timeIntervalSince(lastDraw) > 0.1 {
                lastDraw = Date()
                let share = Double(sent) / Double(bytes.count)
                let bar = String(repeating: "█", count: Int(share * 30)) + String(repeating: "░", count: 30 - Int(share * 30))
                FileHandle.standardError.write(Data(String(format: "\r%@ %3.0f%%  %d rows/s ", bar, share * 100, Int(Double(lines) / elapsed)).utf8))
            }
        }
        if interactive && Date().timeIntervalSince(start) > 1 { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        let clientCommit = try client.request("IMPORT COMMIT")
        guard let o = (try? JSONSerialization.jsonObject(with: Data(clientCommit.utf8))) as? [String: Any] else { throw CLIError("bad answer") }
        if options.json { print(clientCommit) }
        guard o["ok"] as? Bool == true else {
            let e = o["error"] as? [String: Any] ?? [:]
            if !options.json { FileHandle.standardError.write(Data("error [\(text(e["code"]))]: \(text(e["message"]))\n".utf8)) }
            throw ExitCode(2)
        }
        if !options.json {
            let elapsed = Date().timeIntervalSince(start)
            let imported = (o["imported"] as? NSNumber)?.intValue ?? 0
            let rows = (o["rows"] as? NSNumber)?.intValue ?? 0
            let rejected = o["rejected"] as? [[String: Any]] ?? []
            if !rejected.isEmpty {
                printTable(["ROW", "FIELD", "REASON"], rejected.map { [text($0["number"]), text($0["field"]), text($0["reason"])] }, rightAligned: [0])
            }
            print(String(format: "%@: %d rows read, %d imported, %d refused in %.1f s (%d rows/s)%@", file, rows, imported,
                         (o["rejected_count"] as? NSNumber)?.intValue ?? rejected.count, elapsed, Int(Double(rows) / max(elapsed, 0.001)),
                         (o["committed"] as? Bool == true) ? "" : " — nothing imported (--all-or-nothing)"))
        }
        if (o["rejected_count"] as? NSNumber)?.intValue ?? 0 > 0 { throw ExitCode(3) }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Exports cameras as CSV (re-importable) or GeoJSON (QGIS), streamed page by page.")
    @OptionGroup var options: ClientOptions
    @Option(help: "csv or geojson.") var format: String = "csv"
    @Flag(help: "GeoJSON: add field-of-view sector polygons.") var sectors = false
    @Option(name: .shortAndLong, help: "Output file (default: standard output).") var output: String?
    @OptionGroup var filters: ListFilters
    func run() throws {
        let out: FileHandle
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: nil), let h = FileHandle(forWritingAtPath: output) else {
                throw CLIError("cannot write \(output)")
            }
            out = h
        } else {
            out = FileHandle.standardOutput
        }
        let client = try options.connect()
        defer { client.close() }
        var cursor: String? = nil
        var total = 0
        repeat {
            var line = "CAMERA EXPORT format=\(Tokenizer.quote(format))" + filters.options + (sectors ? " sectors=yes" : "")
            if let cursor { line += " after=\(cursor)" }
            let t = try client.request(line)
            guard let o = (try? JSONSerialization.jsonObject(with: Data(t.utf8))) as? [String: Any] else { throw CLIError("bad answer") }
            guard o["ok"] as? Bool == true else {
                let e = o["error"] as? [String: Any] ?? [:]
                FileHandle.standardError.write(Data("error [\(text(e["code"]))]: \(text(e["message"]))\n".utf8))
                throw ExitCode(2)
            }
            out.write(Data((o["text"] as? String ?? "").utf8))
            total += (o["count"] as? NSNumber)?.intValue ?? 0
            cursor = o["next_cursor"] as? String
        } while cursor != nil
        if output != nil {
            try? out.close()
            FileHandle.standardError.write(Data("\(total) cameras written to \(output!)\n".utf8))
        }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Daemon statistics.")
    @OptionGroup var options: ClientOptions
    func run() throws {
        try exchange(options, "STATS") { o in
            for k in ["cameras", "delta", "index_build_ms", "index_built_at", "uptime_s", "connections", "connections_total", "requests", "errors"] {
                print(k.padding(toLength: 18, withPad: " ", startingAt: 0) + text(o[k]))
            }
            if let per = o["commands"] as? [String: Any], !per.isEmpty {
                print("per command:")
                for (k, v) in per.sorted(by: { $0.key < $1.key }) { print("  " + k.padding(toLength: 16, withPad: " ", startingAt: 0) + text(v)) }
            }
        }
    }
}

struct Help: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "commands", abstract: "Lists the daemon's commands (HELP).")
    @OptionGroup var options: ClientOptions
    @Argument(help: "A command to describe.") var command: [String] = []
    func run() throws {
        try exchange(options, (["HELP"] + command.map(Tokenizer.quote)).joined(separator: " ")) { o in
            for c in o["commands"] as? [[String: Any]] ?? [] {
                print(text(c["synopsis"]))
                print("    " + text(c["summary"]))
                for opt in c["options"] as? [[String: Any]] ?? [] {
                    print("    \(text(opt["name"]))=\(text(opt["value"]))  \(text(opt["summary"]))")
                }
            }
        }
    }
}

struct Raw: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sends one request line as it is and prints the JSON answer.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The request line, e.g. \"NEAR 11.147 106.6076 radius=300\".") var line: String
    func run() throws {
        var o = options
        o.json = true
        try exchange(o, line) { _ in }
    }
}


/// Prints one incident and its linked cameras.
func printIncident(_ o: [String: Any]) {
    let i = o["incident"] as? [String: Any] ?? [:]
    let g = i["geometry"] as? [String: Any] ?? [:]
    for (k, v) in [("id", i["id"]), ("case", i["case"]), ("kind", i["kind"]), ("from", i["from"]), ("to", i["to"]),
                   ("geometry", g["wkt"]), ("radius_m", i["radius_m"]), ("description", i["description"]), ("cameras", i["camera_count"])] {
        print(k.padding(toLength: 12, withPad: " ", startingAt: 0) + text(v))
    }
    let cams = i["cameras"] as? [[String: Any]] ?? []
    if !cams.isEmpty {
        printTable(["ID", "DIST m", "SEES", "FOOTAGE", "EXPIRES", "PHONE", "ADDRESS"], cams.map {
            [text($0["id"]), number($0["distance_m"], decimals: 1), ($0["sees"] as? Bool) == true ? "yes" : "no", text($0["footage"]),
             text($0["expires_at"]), text($0["owner_phone"]), text($0["address"])]
        }, rightAligned: [1])
    }
}

struct IncidentCommandGroup: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "incident", abstract: "Incidents and their candidate cameras.",
                                                    subcommands: [Add.self, Get.self, List.self, ImportFile.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Records an incident and links the cameras that may have seen it.")
        @OptionGroup var options: ClientOptions
        @Option(name: .customLong("case"), help: "Case id.") var caseID: String
        @Option(help: "Kind (robbery, theft, …).") var kind: String
        @Option(help: "Time, ISO-8601 with offset.") var at: String?
        @Option(help: "Window start.") var from: String?
        @Option(help: "Window end.") var to: String?
        @Option(help: "A point: lat,lon.") var point: String?
        @Option(help: "WKT geometry (lon lat order): POINT, LINESTRING or POLYGON.") var wkt: String?
        @Option(help: "Link cameras within this many metres.") var radius: String?
        @Option(help: "Description.") var description: String?
        func run() throws {
            var line = "INCIDENT ADD case=\(Tokenizer.quote(caseID)) kind=\(Tokenizer.quote(kind))"
            for (k, v) in [("at", at), ("from", from), ("to", to), ("point", point), ("wkt", wkt), ("radius", radius), ("description", description)] {
                if let v { line += " \(k)=\(Tokenizer.quote(v))" }
            }
            try exchange(options, line, render: printIncident)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Shows an incident with its candidate cameras.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Incident id.") var id: Int
        func run() throws { try exchange(options, "INCIDENT GET \(id)", render: printIncident) }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists incidents by case, kind and time.")
        @OptionGroup var options: ClientOptions
        @Option(name: .customLong("case"), help: "Case id.") var caseID: String?
        @Option(help: "Kind.") var kind: String?
        @Option(help: "From (ISO-8601 with offset).") var from: String?
        @Option(help: "To.") var to: String?
        @Option(help: "Page size.") var limit: Int?
        @Option(help: "Next page: the last id shown.") var after: Int?
        func run() throws {
            var line = "INCIDENT LIST"
            for (k, v) in [("case", caseID), ("kind", kind), ("from", from), ("to", to), ("limit", limit.map(String.init)), ("after", after.map(String.init))] {
                if let v { line += " \(k)=\(Tokenizer.quote(v))" }
            }
            try exchange(options, line) { o in
                let list = o["incidents"] as? [[String: Any]] ?? []
                printTable(["ID", "CASE", "KIND", "FROM", "TO", "DESCRIPTION"], list.map {
                    [text($0["id"]), text($0["case"]), text($0["kind"]), text($0["from"]), text($0["to"]), text($0["description"])]
                }, rightAligned: [0])
                print("\(list.count) incident\(list.count == 1 ? "" : "s")" + (o["next_cursor"] is NSNull || o["next_cursor"] == nil ? "" : " (more: --after \(text(o["next_cursor"])))"))
            }
        }
    }

    struct ImportFile: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "import", abstract: "Imports incidents from CSV or GeoJSON.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The file.") var file: String
        @Option(help: "csv or geojson (default: from the file name).") var format: String?
        @Option(name: .customLong("case"), help: "Case id for every row without one.") var caseID: String?
        @Option(help: "Kind for every row without one.") var kind: String?
        @Option(help: "Link cameras within this many metres.") var radius: String?
        @Flag(help: "Import nothing if any row is bad.") var allOrNothing = false
        func run() throws {
            guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
            let fmt = format ?? (file.lowercased().hasSuffix("json") ? "geojson" : "csv")
            var begin = "INCIDENT IMPORT BEGIN format=\(fmt)"
            for (k, v) in [("case", caseID), ("kind", kind), ("radius", radius)] { if let v { begin += " \(k)=\(Tokenizer.quote(v))" } }
            if allOrNothing { begin += " all_or_nothing=yes" }
            let client = try options.connect(timeout: max(options.timeout, 600))
            defer { client.close() }
            func send(_ line: String) throws -> [String: Any] {
                let t = try client.request(line)
                guard let o = (try? JSONSerialization.jsonObject(with: Data(t.utf8))) as? [String: Any] else { throw CLIError("bad answer: \(t.prefix(200))") }
                guard o["ok"] as? Bool == true else {
                    let e = o["error"] as? [String: Any] ?? [:]
                    if options.json { print(t) } else { FileHandle.standardError.write(Data("error [\(text(e["code"]))]: \(text(e["message"]))\n".utf8)) }
                    throw ExitCode(2)
                }
                if options.json && line.hasPrefix("INCIDENT IMPORT COMMIT") { print(t) }
                return o
            }
            let token = text(try send(begin)["upload"])
            let bytes = [UInt8](data)
            var sent = 0
            while sent < bytes.count {
                let part = bytes[sent..<min(sent + 45_000, bytes.count)]
                _ = try send("INCIDENT IMPORT DATA upload=\(token) data=" + String(decoding: Base64.encoded(part), as: UTF8.self))
                sent += part.count
            }
            let o = try send("INCIDENT IMPORT COMMIT upload=\(token)")
            if !options.json {
                let rejected = o["rejected"] as? [[String: Any]] ?? []
                if !rejected.isEmpty {
                    printTable(["ROW", "FIELD", "REASON"], rejected.map { [text($0["number"]), text($0["field"]), text($0["reason"])] }, rightAligned: [0])
                }
                print("\(file): \(text(o["rows"])) rows, \(text(o["imported"])) incidents imported with \(text(o["links"])) camera links, \(text(o["rejected_count"])) refused")
            }
        }
    }
}

// MARK: - Access control: whoami, tokens, audit

struct WhoAmI: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: "The identity and role the daemon sees.")
    @OptionGroup var options: ClientOptions
    func run() throws {
        try exchange(options, "WHOAMI") { o in
            for k in ["identity", "name", "role", "owner", "via", "peer"] {
                print(k.padding(toLength: 10, withPad: " ", startingAt: 0) + text(o[k]))
            }
        }
    }
}

struct TokenCommandGroup: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "token", abstract: "API tokens (admins).",
                                                    subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Creates a token and prints its secret (shown once).")
        @OptionGroup var options: ClientOptions
        @Option(help: "admin, registrar, investigator, analyst or owner.") var role: String
        @Option(help: "Whose token it is.") var name: String
        @Option(help: "The owner record (role owner only).") var owner: Int?
        func run() throws {
            var line = "TOKEN CREATE role=\(Tokenizer.quote(role)) name=\(Tokenizer.quote(name))"
            if let owner { line += " owner=\(owner)" }
            try exchange(options, line) { o in
                let t = o["token"] as? [String: Any] ?? [:]
                print("token \(text(t["id"])) for \(text(t["name"])) (\(text(t["role"])))")
                print("secret: \(text(o["secret"]))")
                print("Store the secret now: it is not shown again. Use it with --token or CAMREG_TOKEN.")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lists tokens (never their secrets).")
        @OptionGroup var options: ClientOptions
        @Flag(help: "Include revoked tokens.") var all = false
        func run() throws {
            try exchange(options, "TOKEN LIST" + (all ? " all=yes" : "")) { o in
                let rows = (o["tokens"] as? [[String: Any]] ?? []).map {
                    [text($0["id"]), text($0["role"]), text($0["name"]), text($0["owner"]), text($0["created_at"]), text($0["revoked_at"])]
                }
                printTable(["ID", "ROLE", "NAME", "OWNER", "CREATED", "REVOKED"], rows, rightAligned: [0])
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revokes a token.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The token id.") var id: Int
        func run() throws {
            try exchange(options, "TOKEN REVOKE \(id)") { o in
                let t = o["token"] as? [String: Any] ?? [:]
                print("token \(text(t["id"])) (\(text(t["name"]))) revoked at \(text(t["revoked_at"]))")
            }
        }
    }
}

struct AuditCommandGroup: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "The tamper-evident audit log (admins).",
                                                    subcommands: [Verify.self, Search.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Checks the hash chain; names the first broken entry (exit 3 if broken).")
        @OptionGroup var options: ClientOptions
        func run() throws {
            var intact = true
            try exchange(options, "AUDIT VERIFY") { o in
                intact = o["intact"] as? Bool ?? false
                if intact {
                    print("audit log intact: \(text(o["checked"])) entries; head hash \(text(o["head_hash"]))")
                } else {
                    let b = o["first_broken"] as? [String: Any] ?? [:]
                    print("audit log BROKEN at entry \(text(b["seq"])): \(text(b["reason"])) (\(text(o["checked"])) entries read)")
                }
            }
            if !intact { throw ExitCode(3) }
        }
    }

    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Entries by identity, case, time and outcome.")
        @OptionGroup var options: ClientOptions
        @Option(help: "Identity (token:<id>, peer:uid=<n>, anonymous).") var identity: String?
        @Option(name: .customLong("for-case"), help: "Case id.") var forCase: String?
        @Option(help: "From (ISO-8601 with offset).") var from: String?
        @Option(help: "To (ISO-8601 with offset).") var to: String?
        @Option(help: "Outcome: ok or an error code.") var outcome: String?
        @Option(help: "Entries after this sequence number.") var after: Int?
        @Option(help: "At most this many.") var limit: Int = 100
        func run() throws {
            var parts = ["AUDIT SEARCH", "limit=\(limit)"]
            if let identity { parts.append("identity=" + Tokenizer.quote(identity)) }
            if let forCase { parts.append("case_id=" + Tokenizer.quote(forCase)) }
            if let from { parts.append("from=" + Tokenizer.quote(from)) }
            if let to { parts.append("to=" + Tokenizer.quote(to)) }
            if let outcome { parts.append("outcome=" + Tokenizer.quote(outcome)) }
            if let after { parts.append("after=\(after)") }
            try exchange(options, parts.joined(separator: " ")) { o in
                let rows = (o["entries"] as? [[String: Any]] ?? []).map {
                    [text($0["seq"]), text($0["at"]), text($0["identity"]), text($0["role"]), text($0["case"]),
                     text($0["outcome"]), text($0["result_count"]), String(text($0["command"]).prefix(60))]
                }
                printTable(["SEQ", "AT", "IDENTITY", "ROLE", "CASE", "OUTCOME", "N", "COMMAND"], rows, rightAligned: [0, 6])
                if let next = o["next_cursor"], !(next is NSNull) { print("more: --after \(text(next))") }
            }
        }
    }
}
