import Foundation
import Postgres

/// One connection to one system. Requests are prepared before timing (`requests[i]` for query
/// `i`); `send` writes a batch of them without waiting, `receive` reads the next reply in order.
protocol QueryClient: AnyObject {
    /// The socket replies arrive on, for `poll` (the event-driven runner).
    var pollFD: Int32 { get }
    /// Sends every batch without waiting for its replies, so one thread can drive many clients
    /// (for PostGIS: libpq's pipeline mode also for a batch of one).
    var sendsAsync: Bool { get set }
    func send(_ indices: ArraySlice<Int>) throws
    /// The ids of the next reply: their digest, and the ids themselves when `collect` is set.
    func receive(collect: Bool) throws -> (IDSetDigest, [String])
}

// MARK: - camregd: line-based JSON

final class CamregClient: QueryClient {
    let stream: UnixStream
    let requests: [[UInt8]]
    var pollFD: Int32 { stream.fd }
    var sendsAsync = true

    init(socket: String, requests: [[UInt8]], token: String? = nil) throws {
        stream = try UnixStream(path: socket)
        self.requests = requests
        if let token {
            try stream.write(Array("AUTH \(token)\n".utf8))
            try stream.withLine { line in
                guard line.starts(with: Array(#"{"ok":true"#.utf8)) else { throw BenchError("camregd AUTH: \(String(decoding: line, as: UTF8.self))") }
            }
        }
    }

    /// Creates an API token over this (peer-admin) connection; returns its secret.
    func createToken(role: String, name: String) throws -> String {
        try stream.write(Array("TOKEN CREATE role=\(role) name=\(name)\n".utf8))
        return try stream.withLine { line in
            let text = String(decoding: line, as: UTF8.self)
            guard let r = text.range(of: #""secret":""#), let end = text[r.upperBound...].firstIndex(of: "\"") else {
                throw BenchError("camregd TOKEN CREATE: \(text.prefix(300))")
            }
            return String(text[r.upperBound..<end])
        }
    }

    /// `NEAR lat lon radius=r limit=10000`, with `fields=…` when given (nil: the full answer).
    static func request(_ q: BenchQuery, fields: String?) -> [UInt8] {
        Array("NEAR \(q.lat) \(q.lon) radius=\(q.radius) limit=10000\(fields.map { " fields=\($0)" } ?? "")\n".utf8)
    }

    func send(_ indices: ArraySlice<Int>) throws {
        if indices.count == 1 { return try stream.write(requests[indices.first!]) }
        try stream.write(indices.flatMap { requests[$0] })
    }

    /// `{"ok":true,"count":…,"cameras":[{"id":"BC-…",…},…]}`: the ids are found by scanning for `{"id":"`.
    func receive(collect: Bool) throws -> (IDSetDigest, [String]) {
        try stream.withLine { line in
            let okPrefix = Array(#"{"ok":true"#.utf8)
            guard line.count >= okPrefix.count, line.starts(with: okPrefix) else {
                throw BenchError("camregd: \(String(decoding: line.prefix(300), as: UTF8.self))")
            }
            let pat: [UInt8] = Array(#"{"id":""#.utf8)
            var digest = IDSetDigest()
            var ids: [String] = []
            // Jump from `{` to `{` with memchr (vectorised): an answer is about 8 KB, and a
            // byte-by-byte scan of it cost the client more CPU than the parse of Redis's reply.
            guard let base = line.baseAddress else { return (digest, ids) }
            let n = line.count
            var i = 0
            while i + pat.count < n, let hit = memchr(base + i, 0x7B /* { */, n - pat.count - i) {
                i = UnsafeRawPointer(hit).assumingMemoryBound(to: UInt8.self) - base
                if memcmp(base + i, pat, pat.count) == 0 {
                    let s = i + pat.count
                    let e = memchr(base + s, 0x22, n - s).map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) - base } ?? n
                    let id = UnsafeBufferPointer(rebasing: line[s..<e])
                    digest.add(id)
                    if collect { ids.append(String(decoding: id, as: UTF8.self)) }
                    i = e
                } else {
                    i += 1
                }
            }
            return (digest, ids)
        }
    }

    /// Sends one command line and returns its reply line.
    func line(_ command: String) throws -> String {
        try stream.write(Array((command + "\n").utf8))
        return try stream.withLine { String(decoding: $0, as: UTF8.self) }
    }

    /// Sends `PING` and waits for its reply.
    func ping() throws {
        try stream.write(Array("PING\n".utf8))
        try stream.withLine { line in
            guard line.starts(with: Array(#"{"ok":true"#.utf8)) else { throw BenchError("camregd PING: \(String(decoding: line, as: UTF8.self))") }
        }
    }
}

// MARK: - Redis: a minimal RESP2 client

indirect enum RESP {
    case simple(String), error(String), integer(Int), bulk([UInt8]?), array([RESP]?)

    var text: String? {
        switch self {
        case .simple(let s): return s
        case .bulk(let b?): return String(decoding: b, as: UTF8.self)
        default: return nil
        }
    }
}

final class RedisClient: QueryClient {
    let stream: UnixStream
    let requests: [[UInt8]]
    var pollFD: Int32 { stream.fd }
    var sendsAsync = true

    init(socket: String, requests: [[UInt8]] = []) throws {
        stream = try UnixStream(path: socket)
        self.requests = requests
    }

    /// A command as a RESP array of bulk strings.
    static func encode(_ args: [String]) -> [UInt8] {
        var out = Array("*\(args.count)\r\n".utf8)
        for a in args {
            let b = Array(a.utf8)
            out += Array("$\(b.count)\r\n".utf8)
            out += b
            out += [0x0D, 0x0A]
        }
        return out
    }

    static func request(_ q: BenchQuery, key: String) -> [UInt8] {
        encode(["GEOSEARCH", key, "FROMLONLAT", "\(q.lon)", "\(q.lat)", "BYRADIUS", "\(q.radius)", "m", "WITHDIST", "ASC"])
    }

    func send(_ indices: ArraySlice<Int>) throws {
        if indices.count == 1 { return try stream.write(requests[indices.first!]) }
        try stream.write(indices.flatMap { requests[$0] })
    }

    func command(_ args: [String]) throws -> RESP {
        try stream.write(Self.encode(args))
        return try read()
    }

    /// Reads one reply of any type.
    func read() throws -> RESP {
        let (type, rest) = try stream.withLine { line -> (UInt8, String) in
            guard !line.isEmpty else { throw BenchError("redis: empty reply line") }
            return (line[0], String(decoding: line.dropFirst().prefix(while: { $0 != 0x0D }), as: UTF8.self))
        }
        switch type {
        case UInt8(ascii: "+"): return .simple(rest)
        case UInt8(ascii: "-"): return .error(rest)
        case UInt8(ascii: ":"): return .integer(Int(rest) ?? 0)
        case UInt8(ascii: "$"):
            let n = Int(rest) ?? -1
            if n < 0 { return .bulk(nil) }
            return .bulk(try stream.withBytes(n + 2) { Array($0.prefix(n)) })
        case UInt8(ascii: "*"):
            let n = Int(rest) ?? -1
            if n < 0 { return .array(nil) }
            return .array(try (0..<n).map { _ in try read() })
        default: throw BenchError("redis: unexpected reply type \(type)")
        }
    }

    /// Reads a `GEOSEARCH … WITHDIST` reply (`*N` of `*2` [member, distance]) without building values.
    func receive(collect: Bool) throws -> (IDSetDigest, [String]) {
        func header() throws -> (UInt8, Int) {
            try stream.withLine { line in
                guard let t = line.first else { throw BenchError("redis: empty reply line") }
                if t == UInt8(ascii: "-") { throw BenchError("redis: \(String(decoding: line, as: UTF8.self))") }
                var v = 0, neg = false
                for b in line.dropFirst() {
                    if b == UInt8(ascii: "-") { neg = true } else if b >= 48 && b <= 57 { v = v * 10 + Int(b - 48) }
                }
                return (t, neg ? -v : v)
            }
        }
        let (t, n) = try header()
        guard t == UInt8(ascii: "*") else { throw BenchError("redis: expected an array") }
        var digest = IDSetDigest()
        var ids: [String] = []
        for _ in 0..<max(n, 0) {
            _ = try header()                                  // *2
            let (_, len) = try header()                       // $len member
            try stream.withBytes(len + 2) { b in
                let id = UnsafeBufferPointer(rebasing: b[0..<len])
                digest.add(id)
                if collect { ids.append(String(decoding: id, as: UTF8.self)) }
            }
            let (_, dlen) = try header()                      // $len distance
            try stream.withBytes(dlen + 2) { _ in }
        }
        return (digest, ids)
    }
}

// MARK: - PostGIS through libpq

/// One libpq connection. Without pipelining a query is one `PQexecParams`; with it, a batch is
/// sent in libpq's pipeline mode (all statements, then a sync point, in one flush) and its
/// results are read one by one, as the other clients read their replies.
final class PostGISClient: QueryClient {
    static let sql = "SELECT id FROM bench_cams WHERE ST_DWithin(g, ST_SetSRID(ST_MakePoint($1::float8, $2::float8), 4326)::geography, $3::float8)"
    let connection: PostgresConnection
    let requests: [[String?]]
    private var pending: [Int] = []
    private var next = 0
    /// The batch in flight was sent in pipeline mode.
    private var pipelined = false
    var pollFD: Int32 { connection.socketDescriptor }
    var sendsAsync = false

    init(configuration: PostgresConfiguration, requests: [[String?]]) throws {
        connection = try PostgresConnection(configuration: configuration)
        self.requests = requests
    }

    static func request(_ q: BenchQuery) -> [String?] { ["\(q.lon)", "\(q.lat)", "\(q.radius)"] }

    func send(_ indices: ArraySlice<Int>) throws {
        guard next == pending.count else { throw BenchError("PostGIS: send before the last batch was read") }
        pending.removeAll(keepingCapacity: true)
        next = 0
        pending.append(contentsOf: indices)
        pipelined = indices.count > 1 || sendsAsync
        if pipelined { try connection.sendPipeline(Self.sql, indices.map { requests[$0] }) }
    }

    func receive(collect: Bool) throws -> (IDSetDigest, [String]) {
        guard next < pending.count else { throw BenchError("PostGIS: receive without send") }
        let i = pending[next]
        next += 1
        let rows = pipelined ? try connection.nextPipelineResult().rows : try connection.query(Self.sql, requests[i]).rows
        var digest = IDSetDigest()
        var ids: [String] = []
        for r in rows {
            let id = r[0] ?? ""
            digest.add(id.utf8)
            if collect { ids.append(id) }
        }
        return (digest, ids)
    }
}
