import ArgumentParser
import ControlProtocol
import Foundation

/// Options every subcommand shares.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "camregd's control socket (default $CAMREG_SOCKET, else ./camreg-data/camregd.sock).")
    var socket: String = ProcessInfo.processInfo.environment["CAMREG_SOCKET"] ?? "./camreg-data/camregd.sock"

    @Flag(name: .long, help: "Print the daemon's JSON response as it is (for scripts).")
    var json = false

    @Option(name: .long, help: "Seconds to wait for an answer.")
    var timeout: Double = 30
}

/// A blocking Unix-socket client: one request line out, one JSON line back.
struct ControlClient {
    let fd: Int32

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

    /// Sends one line and returns the response line.
    func request(_ line: String) throws -> String {
        var out = Array((line + "\n").utf8)
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeMutableBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
            guard n > 0 else { throw CLIError("cannot send the request: \(String(cString: strerror(errno)))") }
            sent += n
        }
        out.removeAll()
        var response: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
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
    let client = try ControlClient(path: options.socket, timeout: options.timeout)
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
        subcommands: [Ping.self, Near.self, CameraCommand.self, Stats.self, Help.self, Raw.self])
}

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Checks that camregd answers.")
    @OptionGroup var options: ClientOptions
    func run() throws {
        try exchange(options, "PING") { _ in print("pong") }
    }
}

struct Near: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cameras within a radius of a point, nearest first.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Latitude (WGS84 degrees).") var lat: String
    @Argument(help: "Longitude (WGS84 degrees).") var lon: String
    @Option(name: .long, help: "Radius in metres.") var radius: String
    @Option(name: .long, help: "At most this many cameras.") var limit: String?

    func run() throws {
        var line = "NEAR \(Tokenizer.quote(lat)) \(Tokenizer.quote(lon)) radius=\(Tokenizer.quote(radius))"
        if let limit { line += " limit=\(Tokenizer.quote(limit))" }
        try exchange(options, line) { o in
            let cams = o["cameras"] as? [[String: Any]] ?? []
            let rows = cams.enumerated().map { i, c in
                [String(i + 1), text(c["id"]), number(c["distance_m"], decimals: 1), number(c["bearing_deg"], decimals: 0),
                 text(c["site"]), text(c["status"]), text(c["ward"]), text(c["address"])]
            }
            printTable(["#", "ID", "DIST m", "BRG°", "SITE", "STATUS", "WARD", "ADDRESS"], rows, rightAligned: [0, 2, 3])
            print("\(cams.count) camera\(cams.count == 1 ? "" : "s") within \(radius) m of \(lat), \(lon)")
        }
    }
}

struct CameraCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "camera", abstract: "Camera records.",
                                                    subcommands: [Get.self])
    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Shows one camera.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Camera id, e.g. BC-00042.") var id: String
        func run() throws {
            try exchange(options, "CAMERA GET \(Tokenizer.quote(id))") { o in
                let c = o["camera"] as? [String: Any] ?? [:]
                let keys = ["id", "status", "site", "address", "ward", "lat", "lon", "heading_deg", "fov_deg", "range_m",
                            "mount_height_m", "owner_kind", "owner_name", "owner_phone", "schedule", "retention_days",
                            "created_at", "updated_at", "version"]
                let width = keys.map(\.count).max()!
                for k in keys {
                    print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + text(c[k]))
                }
            }
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
