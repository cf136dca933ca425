import ControlProtocol
import Foundation
import Logging
import NIOConcurrencyHelpers
import TOMLKit

/// Every setting of `camregd`, resolved from four sources in this order of precedence:
/// **command-line flag > environment variable > configuration file > built-in default**.
///
/// Each setting has one name, written `snake_case` in the TOML file (`max_radius = 20000`),
/// `--kebab-case` as a flag (`--max-radius 20000`) and `CAMREG_UPPER_CASE` in the environment
/// (`CAMREG_MAX_RADIUS=20000`). The table ``DaemonSettings/keys`` lists them; docs/operations.md
/// documents them. Resolution is pure (sources in, settings out), so it is unit-tested.
public struct DaemonSettings: Sendable, Equatable {
    /// Data folder (embedded cluster, default socket, lock file).
    public var dataDir = "./camreg-data"
    /// PostgreSQL URL; `nil` runs the embedded cluster.
    public var databaseURL: String?
    /// Control socket path; `nil` means `<data_dir>/camregd.sock`.
    public var socket: String?
    /// Migrations folder; `nil` means the default search.
    public var migrations: String?
    /// Log level name (reloadable).
    public var logLevel: Logger.Level = .info
    /// Largest NEAR radius in metres (reloadable).
    public var maxRadius = 50_000.0
    /// `limit=` when none is given (reloadable).
    public var defaultLimit = 100
    /// Largest `limit=` (reloadable).
    public var maxLimit = 10_000
    /// Largest search answer in bytes; longer ones are cut with `next_offset` (reloadable).
    public var maxResponseBytes = 4 << 20
    /// Longest request line in bytes (restart to change).
    public var maxLineBytes = 64 * 1024
    /// Database connections in the pool.
    public var dbConnections = 4
    /// Jurisdiction polygon (WGS84 WKT), or `nil` for Bến Cát's box.
    public var jurisdictionWKT: String?
    /// Serve searches only (a replica).
    public var readOnly = false
    /// Load the demo inventory into an empty database.
    public var demo = false
    /// Start from `<data_dir>/index-cache.bin` when it is current, and (unless read-only) write
    /// it after each start-up load. The cache is only an accelerator: PostgreSQL stays the truth.
    public var indexCache = true
    /// Seconds a write may wait for PostgreSQL before `unavailable`.
    public var writeTimeout = 5.0
    /// Seconds SIGTERM waits for connections to finish before closing them.
    public var drainTimeout = 10.0
    /// Event-loop threads serving the control socket; 0 = one per core.
    public var eventLoopThreads = 0
    /// `host:port` of the Prometheus text endpoint; `nil` (the default) keeps it off.
    public var metricsListen: String?
    /// Group owning the control socket; `nil` keeps the daemon's group.
    public var socketGroup: String?
    /// Map Unix-socket clients running as the daemon's own OS user to admin.
    public var peerAdmin = true
    /// TCP listener port; `nil` (the default) keeps TCP off.
    public var tcpPort: Int?
    /// TCP listener address.
    public var tcpHost = "127.0.0.1"
    /// Most connections at once.
    public var maxConnections = 1024
    /// Seconds without a request before a connection is closed (0: never).
    public var idleTimeout = 300.0
    /// Requests per second per token (0: no limit); bursts of 4×.
    public var rateLimit = 50.0
    /// Largest WITHIN area, km² (reloadable).
    public var maxAreaKm2 = 25.0
    /// Longest ALONG route, metres (reloadable).
    public var maxRouteM = 30_000.0
    /// On a read-only daemon: the primary, where the audit log is written.
    public var auditDatabaseURL: String?

    public init() {}

    /// The protocol limits these settings give.
    public var limits: ProtocolLimits {
        var l = ProtocolLimits()
        l.maxRadius = maxRadius
        l.defaultLimit = defaultLimit
        l.maxLimit = maxLimit
        l.maxLineBytes = maxLineBytes
        l.maxArea = maxAreaKm2 * 1_000_000
        l.maxResponseBytes = maxResponseBytes
        l.maxRouteLength = maxRouteM
        return l
    }

    /// Access-control settings: peer mapping, rate limit, the audit spool in the data folder;
    /// a read-only daemon without `audit_database_url` refuses to disclose owner data.
    public func access(dataDir: String) -> AccessSettings {
        var a = AccessSettings()
        a.peerAdmin = peerAdmin
        a.rateLimit = RateLimit(rate: rateLimit, burst: max(1, rateLimit * 4))
        a.auditSpoolPath = dataDir + "/audit-spool.jsonl"
        a.auditRequired = true
        return a
    }

    /// The control socket's transports and limits.
    public var serverOptions: ControlServerOptions {
        var o = ControlServerOptions()
        o.maxConnections = maxConnections
        o.idleTimeout = .milliseconds(Int64(idleTimeout * 1000))
        o.socketGroup = socketGroup
        o.tcpHost = tcpHost
        o.tcpPort = tcpPort
        return o
    }

    /// One setting: its file key (the flag and the variable are derived from it), whether a
    /// SIGHUP reload applies it, and a one-line summary.
    public struct Key: Sendable {
        public let name: String
        public let reloadable: Bool
        public let summary: String
        /// `--name-with-dashes`.
        public var flag: String { "--" + name.replacingOccurrences(of: "_", with: "-") }
        /// `CAMREG_NAME`.
        public var environment: String { "CAMREG_" + name.uppercased() }
    }

    /// Every setting, in documentation order.
    public static let keys: [Key] = [
        Key(name: "data_dir", reloadable: false, summary: "data folder: embedded cluster, default socket, lock file"),
        Key(name: "database_url", reloadable: false, summary: "PostgreSQL URL; empty runs the embedded cluster"),
        Key(name: "socket", reloadable: false, summary: "control socket path (default <data_dir>/camregd.sock)"),
        Key(name: "migrations", reloadable: false, summary: "folder of the numbered SQL migrations"),
        Key(name: "log_level", reloadable: true, summary: "trace, debug, info, notice, warning, error, critical"),
        Key(name: "max_radius", reloadable: true, summary: "largest NEAR radius in metres"),
        Key(name: "default_limit", reloadable: true, summary: "limit= when none is given"),
        Key(name: "max_limit", reloadable: true, summary: "largest limit="),
        Key(name: "max_line_bytes", reloadable: false, summary: "longest request line in bytes"),
        Key(name: "db_connections", reloadable: false, summary: "database connections in the pool (1–64)"),
        Key(name: "jurisdiction_wkt", reloadable: false, summary: "jurisdiction polygon, WGS84 WKT (lon lat)"),
        Key(name: "read_only", reloadable: false, summary: "serve searches only (on a replica)"),
        Key(name: "demo", reloadable: false, summary: "load the demo inventory into an empty database"),
        Key(name: "index_cache", reloadable: false, summary: "start from <data_dir>/index-cache.bin when it is current (true/false)"),
        Key(name: "write_timeout", reloadable: false, summary: "seconds a write may wait for PostgreSQL (1–300)"),
        Key(name: "drain_timeout", reloadable: false, summary: "seconds SIGTERM waits for connections to finish"),
        Key(name: "event_loop_threads", reloadable: false, summary: "threads answering the control socket (0 = one per core)"),
        Key(name: "metrics_listen", reloadable: false, summary: "host:port of the Prometheus endpoint; off when unset"),
        Key(name: "socket_group", reloadable: false, summary: "group owning the control socket (mode 0660)"),
        Key(name: "peer_admin", reloadable: false, summary: "the daemon's own OS user is admin on the Unix socket (true/false)"),
        Key(name: "tcp_port", reloadable: false, summary: "TCP listener port; off when unset (every command but PING/AUTH/HELP/WHOAMI/QUIT needs AUTH)"),
        Key(name: "tcp_host", reloadable: false, summary: "TCP listener address (127.0.0.1)"),
        Key(name: "max_connections", reloadable: false, summary: "most connections at once"),
        Key(name: "idle_timeout", reloadable: false, summary: "seconds without a request before a connection is closed (0: never)"),
        Key(name: "rate_limit", reloadable: false, summary: "requests per second per token, bursts of 4x (0: off)"),
        Key(name: "max_area_km2", reloadable: true, summary: "largest WITHIN area in km²"),
        Key(name: "max_response_bytes", reloadable: true, summary: "largest search answer in bytes; longer ones are paged with next_offset"),
        Key(name: "max_route_m", reloadable: true, summary: "longest ALONG route in metres"),
        Key(name: "audit_database_url", reloadable: false, summary: "read-only daemons: the primary's URL for the audit log"),
    ]

    /// Where a setting's value came from.
    public enum Source: String, Sendable, Equatable {
        case `default`, file, environment, flag
    }

    /// Reads a TOML configuration file's text into raw values by key. Unknown keys and
    /// tables are errors (a typo must not be silently ignored).
    public static func parseFile(_ text: String, path: String = "configuration file") throws(ConfigurationError) -> [String: String] {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigurationError("\(path): \(e.description) at line \(e.source.begin.line)")
        } catch {
            throw ConfigurationError("\(path): \(error)")
        }
        var out: [String: String] = [:]
        for key in table.keys {
            guard keys.contains(where: { $0.name == key }) else {
                throw ConfigurationError("\(path): unknown setting \(key) (known: \(keys.map(\.name).joined(separator: ", ")))")
            }
            guard let value = table[key] else { continue }
            if let s = value.string { out[key] = s }
            else if let b = value.bool { out[key] = b ? "true" : "false" }
            else if let i = value.int { out[key] = String(i) }
            else if let d = value.double { out[key] = String(d) }
            else { throw ConfigurationError("\(path): \(key) must be a string, number or boolean") }
        }
        return out
    }

    /// The raw values set in `environment` (`CAMREG_*`).
    public static func fromEnvironment(_ environment: [String: String]) -> [String: String] {
        var out: [String: String] = [:]
        for k in keys { if let v = environment[k.environment] { out[k.name] = v } }
        return out
    }

    /// Resolves settings from raw values: flags over environment over file over defaults.
    /// Returns the settings and the source of each key that was set. Errors name the key and
    /// where its bad value came from.
    public static func resolve(flags: [String: String], environment: [String: String], file: [String: String])
        throws(ConfigurationError) -> (settings: DaemonSettings, sources: [String: Source]) {
        var merged: [String: (String, Source)] = [:]
        for (k, v) in file { merged[k] = (v, .file) }
        for (k, v) in environment { merged[k] = (v, .environment) }
        for (k, v) in flags { merged[k] = (v, .flag) }
        var s = DaemonSettings()
        func where_(_ k: String) -> String {
            let key = keys.first { $0.name == k }!
            switch merged[k]!.1 {
            case .flag: return key.flag
            case .environment: return key.environment
            case .file: return "\(k) in the configuration file"
            case .default: return k
            }
        }
        func text(_ k: String) -> String? {
            guard let v = merged[k]?.0 else { return nil }
            return v.isEmpty ? nil : v
        }
        func number(_ k: String, _ range: ClosedRange<Double>) throws(ConfigurationError) -> Double? {
            guard let v = text(k) else { return nil }
            guard let d = Double(v), d.isFinite, range.contains(d) else {
                throw ConfigurationError("\(where_(k)) must be a number from \(range.lowerBound.formatted()) to \(range.upperBound.formatted()), not \(v)")
            }
            return d
        }
        func integer(_ k: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
            guard let v = text(k) else { return nil }
            guard let i = Int(v), range.contains(i) else {
                throw ConfigurationError("\(where_(k)) must be a whole number from \(range.lowerBound) to \(range.upperBound), not \(v)")
            }
            return i
        }
        func flag(_ k: String) throws(ConfigurationError) -> Bool? {
            guard let v = text(k)?.lowercased() else { return nil }
            switch v {
            case "true", "yes", "1", "on": return true
            case "false", "no", "0", "off": return false
            default: throw ConfigurationError("\(where_(k)) must be true or false, not \(v)")
            }
        }
        if let v = text("data_dir") { s.dataDir = v }
        s.databaseURL = text("database_url")
        s.socket = text("socket")
        s.migrations = text("migrations")
        if let v = text("log_level") {
            guard let level = Logger.Level(rawValue: v.lowercased()) else {
                throw ConfigurationError("\(where_("log_level")) must be one of trace, debug, info, notice, warning, error, critical, not \(v)")
            }
            s.logLevel = level
        }
        if let v = try number("max_radius", 1...20_000_000) { s.maxRadius = v }
        if let v = try integer("max_limit", 1...1_000_000) { s.maxLimit = v }
        if let v = try integer("default_limit", 1...s.maxLimit) { s.defaultLimit = v }
        if let v = try integer("max_line_bytes", 1024...(64 << 20)) { s.maxLineBytes = v }
        if let v = try integer("db_connections", 1...64) { s.dbConnections = v }
        s.jurisdictionWKT = text("jurisdiction_wkt")
        if let v = try flag("read_only") { s.readOnly = v }
        if let v = try flag("demo") { s.demo = v }
        if let v = try flag("index_cache") { s.indexCache = v }
        if let v = try number("write_timeout", 1...300) { s.writeTimeout = v }
        if let v = try number("drain_timeout", 0...3600) { s.drainTimeout = v }
        if let v = try integer("event_loop_threads", 0...256) { s.eventLoopThreads = v }
        s.socketGroup = text("socket_group")
        if let v = try flag("peer_admin") { s.peerAdmin = v }
        if let v = try integer("tcp_port", 0...65535) { s.tcpPort = v }
        if let v = text("tcp_host") { s.tcpHost = v }
        if let v = try integer("max_connections", 1...1_000_000) { s.maxConnections = v }
        if let v = try number("idle_timeout", 0...86_400) { s.idleTimeout = v }
        if let v = try number("rate_limit", 0...1_000_000) { s.rateLimit = v }
        if let v = try number("max_area_km2", 0.001...1_000_000) { s.maxAreaKm2 = v }
        if let v = try integer("max_response_bytes", 4096...(1 << 30)) { s.maxResponseBytes = v }
        if let v = try number("max_route_m", 1...10_000_000) { s.maxRouteM = v }
        s.auditDatabaseURL = text("audit_database_url")
        if let v = text("metrics_listen") {
            guard Self.hostPort(v) != nil else {
                throw ConfigurationError("\(where_("metrics_listen")) must be host:port, e.g. 127.0.0.1:9464, not \(v)")
            }
            s.metricsListen = v
        }
        if s.readOnly && s.databaseURL == nil {
            throw ConfigurationError("read_only needs database_url (a replica or the primary)")
        }
        var sources: [String: Source] = [:]
        for (k, v) in merged { sources[k] = v.1 }
        return (s, sources)
    }

    /// Splits `host:port` (port 1–65535).
    public static func hostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        let host = String(text[..<colon]), portText = text[text.index(after: colon)...]
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else { return nil }
        return (host, port)
    }

    /// The settings as `key = value` lines (TOML), for `camregd --check-config`; the database
    /// URL's password, if any, is masked.
    public func describe(sources: [String: Source]) -> String {
        values.map { k, v in
            let origin = sources[k]?.rawValue ?? "default"
            return v.map { "\(k) = \($0)  # \(origin)" } ?? "# \(k) unset  # \(origin)"
        }.joined(separator: "\n")
    }

    /// The names of the settings that differ between `self` and `other` and that a reload
    /// cannot apply (they need a restart).
    public func restartNeeded(comparedWith other: DaemonSettings) -> [String] {
        let mine = Dictionary(uniqueKeysWithValues: values), theirs = Dictionary(uniqueKeysWithValues: other.values)
        return Self.keys.filter { !$0.reloadable && mine[$0.name] != theirs[$0.name] }.map(\.name)
    }

    /// Every setting as its TOML value text (`nil` when unset), in ``keys`` order.
    var values: [(String, String?)] {
        func q(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        return [
            ("data_dir", q(dataDir)), ("database_url", databaseURL.map { q(Self.maskPassword($0)) }), ("socket", socket.map(q)),
            ("migrations", migrations.map(q)), ("log_level", q(logLevel.rawValue)), ("max_radius", String(maxRadius)),
            ("default_limit", String(defaultLimit)), ("max_limit", String(maxLimit)), ("max_line_bytes", String(maxLineBytes)),
            ("db_connections", String(dbConnections)), ("jurisdiction_wkt", jurisdictionWKT.map(q)), ("read_only", String(readOnly)),
            ("demo", String(demo)), ("index_cache", String(indexCache)), ("write_timeout", String(writeTimeout)), ("drain_timeout", String(drainTimeout)),
            ("event_loop_threads", String(eventLoopThreads)),
            ("metrics_listen", metricsListen.map(q)), ("socket_group", socketGroup.map(q)), ("peer_admin", String(peerAdmin)),
            ("tcp_port", tcpPort.map { String($0) }), ("tcp_host", q(tcpHost)), ("max_connections", String(maxConnections)),
            ("idle_timeout", String(idleTimeout)), ("rate_limit", String(rateLimit)), ("max_area_km2", String(maxAreaKm2)), ("max_response_bytes", String(maxResponseBytes)),
            ("max_route_m", String(maxRouteM)), ("audit_database_url", auditDatabaseURL.map { q(Self.maskPassword($0)) }),
        ]
    }

    /// ``maskPassword(_:)`` for the tests.
    public static func maskPasswordForTests(_ url: String) -> String { maskPassword(url) }

    static func maskPassword(_ url: String) -> String {
        guard let at = url.firstIndex(of: "@"), let scheme = url.range(of: "://"), scheme.upperBound < at else { return url }
        let userInfo = url[scheme.upperBound..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}

/// A configuration that cannot be used, with what is wrong and where it was set.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The log level every logger of the process follows, changed by a configuration reload.
public enum ReloadableLogLevel {
    private static let level = NIOLockedValueBox(Logger.Level.info)
    /// The current level.
    public static var current: Logger.Level {
        get { level.withLockedValue { $0 } }
        set { level.withLockedValue { $0 = newValue } }
    }
}

/// A `StreamLogHandler` (standard error) whose level is ``ReloadableLogLevel/current``, read at
/// each use, so that SIGHUP changes the level of loggers already handed out.
public struct ReloadableLogHandler: LogHandler {
    private var inner: StreamLogHandler

    public init(label: String) {
        inner = StreamLogHandler.standardError(label: label)
        inner.logLevel = .trace  // filtering is done here, by the shared level
    }

    public var logLevel: Logger.Level {
        get { ReloadableLogLevel.current }
        set { }  // the shared level rules; set it with ReloadableLogLevel.current
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        inner.log(event: event)
    }
}

/// Calls `reload` on each SIGHUP (on a dispatch queue, never in the signal handler). The
/// connections are untouched: the daemon applies what can change while running.
/// `@unchecked Sendable`: the dispatch source is set once in `init` and only cancelled after.
public final class HangupReloader: @unchecked Sendable {
    private let source: DispatchSourceSignal

    public init(_ reload: @escaping @Sendable () -> Void) {
        signal(SIGHUP, SIG_IGN)  // handled by the dispatch source below, not by the default action (exit)
        source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "camreg.sighup"))
        source.setEventHandler(handler: reload)
        source.resume()
    }

    /// Stops listening for SIGHUP.
    public func cancel() {
        source.cancel()
    }
}
