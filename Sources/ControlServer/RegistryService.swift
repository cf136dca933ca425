import ControlProtocol
import Foundation
import Logging
import NIOConcurrencyHelpers
import Registry

/// Counters shown by `STATS`.
struct ServerCounters: Sendable {
    var connectionsOpen = 0
    var connectionsTotal = 0
    var requests = 0
    var errors = 0
    var perCommand: [String: Int] = [:]
}

/// What a handler produced for one request line: the JSON line and whether to close afterwards.
public struct Reply: Sendable {
    /// The response, one JSON object, without the newline.
    public var json: [UInt8]
    /// Close the connection after sending it.
    public var close: Bool

    static func error(_ e: ProtocolError, close: Bool = false) -> Reply {
        Reply(json: Array(e.json.utf8), close: close)
    }
}

/// The command handlers: arguments → operation → response, for every entry of the
/// ``CommandTable``. Queries are served from the in-memory ``CameraIndex`` only; they never
/// touch PostgreSQL.
public final class RegistryService: Sendable {
    /// The camera index.
    public let index: CameraIndex
    /// Parsing limits.
    public let limits: ProtocolLimits
    private let startedAt = Date()
    private let counters = NIOLockedValueBox(ServerCounters())
    private let logger: Logger

    public init(index: CameraIndex, limits: ProtocolLimits = .init(), logger: Logger = Logger(label: "camreg.service")) {
        self.index = index
        self.limits = limits
        self.logger = logger
    }

    func connectionOpened() {
        counters.withLockedValue { $0.connectionsOpen += 1; $0.connectionsTotal += 1 }
    }

    func connectionClosed() {
        counters.withLockedValue { $0.connectionsOpen -= 1 }
    }

    /// The reply to a line cut off by the frame decoder for being too long (counted as an error).
    func lineTooLong() -> Reply {
        counters.withLockedValue { $0.requests += 1; $0.errors += 1 }
        return .error(ProtocolError(.lineTooLong, "the request is longer than \(limits.maxLineBytes) bytes; closing"), close: true)
    }

    /// Answers one request line (raw bytes, without the newline).
    public func respond(to line: [UInt8]) async -> Reply {
        let command: Command
        do {
            command = try RequestParser.parse(line, limits: limits)
        } catch {
            counters.withLockedValue { $0.requests += 1; $0.errors += 1 }
            return .error(error, close: error.code == .lineTooLong)
        }
        let name = Self.name(of: command)
        counters.withLockedValue { $0.requests += 1; $0.perCommand[name, default: 0] += 1 }
        do {
            return try handle(command)
        } catch let e as ProtocolError {
            counters.withLockedValue { $0.errors += 1 }
            return .error(e)
        } catch {
            counters.withLockedValue { $0.errors += 1 }
            logger.error("request failed", metadata: ["command": "\(name)", "error": "\(error)"])
            return .error(ProtocolError(.internal, "the server failed to answer: \(error)"))
        }
    }

    static func name(of command: Command) -> String {
        switch command {
        case .ping: return "PING"
        case .help: return "HELP"
        case .near: return "NEAR"
        case .cameraGet: return "CAMERA GET"
        case .stats: return "STATS"
        case .quit: return "QUIT"
        }
    }

    private func handle(_ command: Command) throws -> Reply {
        switch command {
        case .ping:
            return ok { $0.field("pong", true) }
        case .quit:
            var r = ok { $0.field("bye", true) }
            r.close = true
            return r
        case .help(let topic):
            return try help(topic)
        case .near(let q):
            return try near(q)
        case .cameraGet(let id):
            guard let camera = index.camera(id: id) else {
                throw ProtocolError(.notFound, "no camera with id \(id)", field: "id")
            }
            return ok { w in
                w.key("camera")
                CameraJSON.full(camera, into: &w)
            }
        case .stats:
            return stats()
        }
    }

    private func ok(_ body: (inout JSONWriter) -> Void) -> Reply {
        var w = JSONWriter()
        w.object { o in
            o.field("ok", true)
            body(&o)
        }
        return Reply(json: w.bytes, close: false)
    }

    private func help(_ topic: String?) throws -> Reply {
        let specs: [CommandSpec]
        if let topic {
            guard let spec = CommandTable.spec(named: topic) else {
                throw ProtocolError(.unknownCommand, "no command \(topic); HELP lists them all", field: "command")
            }
            specs = [spec]
        } else {
            specs = CommandTable.all
        }
        return ok { w in
            w.key("commands")
            w.array { a in
                for s in specs {
                    a.object { o in
                        o.field("command", s.name)
                        o.field("synopsis", s.synopsis)
                        o.field("summary", s.summary)
                        if topic != nil {
                            o.key("options")
                            o.array { oa in
                                for opt in s.options {
                                    oa.object { oo in
                                        oo.field("name", opt.name)
                                        oo.field("value", opt.placeholder)
                                        oo.field("required", opt.required)
                                        oo.field("summary", opt.summary)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private func near(_ q: NearQuery) throws -> Reply {
        let hits = try index.near(lat: q.lat, lon: q.lon, radius: q.radius, limit: q.limit)
        var w = JSONWriter(capacity: 128 + hits.count * 256)
        w.object { o in
            o.field("ok", true)
            o.field("count", hits.count)
            o.key("cameras")
            o.array { a in
                for h in hits { CameraJSON.hit(h, into: &a) }
            }
        }
        return Reply(json: w.bytes, close: false)
    }

    private func stats() -> Reply {
        let c = counters.withLockedValue { $0 }
        let snapshot = index.snapshot
        return ok { w in
            w.field("cameras", index.count)
            w.field("index_build_ms", (snapshot.buildSeconds * 1000 * 1000).rounded() / 1000)
            w.field("index_built_at", ISO8601Text.format(snapshot.builtAt))
            w.field("delta", index.deltaCount)
            w.field("uptime_s", (Date().timeIntervalSince(startedAt) * 1000).rounded() / 1000)
            w.field("connections", c.connectionsOpen)
            w.field("connections_total", c.connectionsTotal)
            w.field("requests", c.requests)
            w.field("errors", c.errors)
            w.key("commands")
            w.object { o in
                for (k, v) in c.perCommand.sorted(by: { $0.key < $1.key }) { o.field(k, v) }
            }
        }
    }
}

/// How cameras are written in responses.
enum CameraJSON {
    /// A `NEAR` hit: the fields an investigator needs first.
    static func hit(_ h: NearHit, into w: inout JSONWriter) {
        let c = h.camera
        w.object { o in
            o.field("id", c.id)
            o.field("lat", c.lat)
            o.field("lon", c.lon)
            o.key("distance_m"); o.value(h.distance, decimals: 3)
            o.key("bearing_deg"); o.value(h.bearing, decimals: 1)
            o.field("site", c.siteKind.rawValue)
            o.field("address", c.address)
            o.field("ward", c.ward)
            o.field("status", c.status.rawValue)
        }
    }

    /// Every field of a camera.
    static func full(_ c: Camera, into w: inout JSONWriter) {
        w.object { o in
            o.field("id", c.id)
            o.field("lat", c.lat)
            o.field("lon", c.lon)
            o.field("site", c.siteKind.rawValue)
            o.field("address", c.address)
            o.field("ward", c.ward)
            o.field("heading_deg", c.heading)
            o.field("fov_deg", c.fov)
            o.field("range_m", c.range)
            o.field("mount_height_m", c.mountHeight)
            o.field("owner_kind", c.ownerKind.rawValue)
            o.field("owner_name", c.ownerName)
            o.field("owner_phone", c.ownerPhone)
            o.field("schedule", c.schedule.description)
            o.field("retention_days", c.retentionDays)
            o.field("status", c.status.rawValue)
            o.field("created_at", ISO8601Text.format(c.createdAt))
            o.field("updated_at", ISO8601Text.format(c.updatedAt))
            o.field("version", c.version)
        }
    }
}
