import CLibPQ
import Foundation

/// The rows of one query result, copied out of libpq (text format), so that the `PGresult`
/// is freed before the value is handed on.
public struct PostgresRows: Sendable {
    /// Column names in order.
    public let columns: [String]
    /// Rows of text values; `nil` is SQL NULL.
    public let rows: [[String?]]
    /// The number of rows the command affected (`PQcmdTuples`), for INSERT/UPDATE/DELETE/COPY.
    public let affected: Int

    public init(columns: [String], rows: [[String?]], affected: Int) {
        self.columns = columns
        self.rows = rows
        self.affected = affected
    }

    /// The index of a column by name.
    public func column(_ name: String) throws -> Int {
        guard let i = columns.firstIndex(of: name) else {
            throw PostgresError(code: .unexpectedResult, message: "no column \(name) in result")
        }
        return i
    }

    /// The single value of a one-row, one-column result.
    public func scalar() -> String? {
        rows.first?.first ?? nil
    }
}

/// Connection parameters for `PQconnectdbParams`: keyword/value pairs, never a string-built
/// conninfo. A `postgresql://` URL is passed as the `dbname` keyword with `expand_dbname`.
public struct PostgresConfiguration: Sendable {
    /// Keyword/value pairs in order (later keywords override earlier ones, as in libpq).
    public var parameters: [(String, String)]

    public init(parameters: [(String, String)]) {
        self.parameters = parameters
    }

    /// A configuration from a `postgresql://` or `postgres://` URL (or any conninfo libpq accepts).
    public static func url(_ url: String, applicationName: String = "camreg") -> PostgresConfiguration {
        PostgresConfiguration(parameters: [("application_name", applicationName), ("dbname", url)])
    }

    /// A configuration for a Unix-socket server in `socketDirectory`.
    public static func unixSocket(directory: String, port: Int = 5432, user: String, database: String,
                                  applicationName: String = "camreg") -> PostgresConfiguration {
        PostgresConfiguration(parameters: [
            ("host", directory), ("port", String(port)), ("user", user), ("dbname", database),
            ("application_name", applicationName),
        ])
    }

    /// A copy with one keyword replaced or added (e.g. another `dbname`).
    public func with(_ key: String, _ value: String) -> PostgresConfiguration {
        var copy = self
        if key == "dbname", let i = copy.parameters.firstIndex(where: { $0.0 == "dbname" }),
           copy.parameters[i].1.contains("://") || copy.parameters[i].1.contains("=") {
            // Keep the URL (expanded first) and override its database afterwards.
            copy.parameters.append((key, value))
            return copy
        }
        copy.parameters.removeAll { $0.0 == key }
        copy.parameters.append((key, value))
        return copy
    }
}

/// One libpq connection: the single owner of its `PGconn`, freed in exactly one place (`deinit`).
///
/// A `PGconn` serves one query at a time and every call blocks, so all methods serialise on an
/// internal lock and must never be called on an event loop: use ``PostgresClient`` from async
/// code, which runs them on a thread pool. `@unchecked Sendable` because of that lock.
public final class PostgresConnection: @unchecked Sendable {
    private let conn: OpaquePointer
    private let lock = NSLock()

    /// Connects, or throws ``PostgresError/Code/connectionFailed`` with libpq's message.
    /// The `PGconn` is finished even when the connection fails.
    public init(configuration: PostgresConfiguration) throws {
        let keys = configuration.parameters.map { strdup($0.0) } + [nil]
        let values = configuration.parameters.map { strdup($0.1) } + [nil]
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        let raw: OpaquePointer? = keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                k.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: k.count) { kp in
                    v.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: v.count) { vp in
                        PQconnectdbParams(kp, vp, 1)
                    }
                }
            }
        }
        guard let raw else {
            throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(raw) == CONNECTION_OK else {
            let message = Self.trim(PQerrorMessage(raw))
            PQfinish(raw)
            throw PostgresError(code: .connectionFailed, message: message)
        }
        conn = raw
        // Server notices (e.g. "relation already exists, skipping") are not errors; keep them
        // off stderr.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
    }

    deinit {
        PQfinish(conn)
    }

    /// Runs `body` with the `PGconn`, holding the connection's lock (for extensions in this
    /// module, such as notifications; the pointer must not escape `body`).
    func withRawConnection<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        return try body(conn)
    }

    /// Whether the connection is still usable (`PQstatus == CONNECTION_OK`).
    public var isHealthy: Bool {
        lock.lock(); defer { lock.unlock() }
        return PQstatus(conn) == CONNECTION_OK
    }

    /// The connection's socket (`PQsocket`), e.g. to wait for a result with `poll` before
    /// reading it; -1 when there is none. Read it, never close it: libpq owns it.
    public var socketDescriptor: Int32 {
        lock.lock(); defer { lock.unlock() }
        return PQsocket(conn)
    }

    /// The server's process id for this connection.
    public var backendPID: Int32 {
        lock.lock(); defer { lock.unlock() }
        return PQbackendPID(conn)
    }

    /// Runs one parameterised statement (`PQexecParams`, text format). `nil` parameters are NULL.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws -> PostgresRows {
        lock.lock(); defer { lock.unlock() }
        let result = Self.withCParameters(parameters) { n, p in PQexecParams(conn, sql, n, nil, p, nil, nil, 0) }
        return try consume(result)
    }

    /// Runs `body` with `parameters` as libpq takes them: their count and an array of C strings
    /// (NULL for `nil`; no array at all for none), valid only during `body`.
    private static func withCParameters<T>(_ parameters: [String?],
                                           _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> T) -> T {
        let cParams = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { cParams.forEach { free($0) } }
        return cParams.withUnsafeBufferPointer { buf in
            guard let base = buf.baseAddress else { return body(0, nil) }
            return base.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) { body(Int32(buf.count), $0) }
        }
    }

    // MARK: Pipeline mode

    /// Statements sent by ``sendPipeline(_:_:)`` whose results have not been read yet.
    private var pipelineOutstanding = 0

    /// Sends one execution of `sql` per parameter set without waiting for any result (libpq's
    /// pipeline mode, PostgreSQL 14+), then a sync point, and flushes. Read the results in order
    /// with ``nextPipelineResult()``, one call per parameter set; until the last is read the
    /// connection serves nothing else (``query(_:_:)`` is refused by libpq in pipeline mode).
    /// If one statement fails, the ones after it up to the sync point are not run and their
    /// results are errors as well. After a thrown error from this call, discard the connection.
    public func sendPipeline(_ sql: String, _ parameterSets: [[String?]]) throws {
        lock.lock(); defer { lock.unlock() }
        guard !parameterSets.isEmpty else { return }
        if PQpipelineStatus(conn) == PQ_PIPELINE_OFF {
            guard PQenterPipelineMode(conn) == 1 else {
                throw PostgresError(code: .client, message: "cannot enter pipeline mode: " + Self.trim(PQerrorMessage(conn)))
            }
        }
        for parameters in parameterSets {
            let sent = Self.withCParameters(parameters) { n, p in PQsendQueryParams(conn, sql, n, nil, p, nil, nil, 0) }
            guard sent == 1 else { throw sendFailure("pipelined statement") }
            pipelineOutstanding += 1
        }
        // Also flushes the statements to the server (blocking mode: all of them).
        guard PQpipelineSync(conn) == 1 else { throw sendFailure("pipeline sync") }
    }

    /// The result of the next statement sent by ``sendPipeline(_:_:)``: its rows, or its error
    /// (``PostgresError/Code/server``, also for a statement skipped because an earlier one of the
    /// same pipeline failed). After the last one, reads the sync point and leaves pipeline mode.
    public func nextPipelineResult() throws -> PostgresRows {
        lock.lock(); defer { lock.unlock() }
        guard pipelineOutstanding > 0 else {
            throw PostgresError(code: .client, message: "no pipelined statement is waiting for its result")
        }
        pipelineOutstanding -= 1
        let result = PQgetResult(conn)
        // Each statement's results end with a null result (not read past when there was none).
        if result != nil { while let extra = PQgetResult(conn) { PQclear(extra) } }
        if pipelineOutstanding == 0, result != nil {
            let sync = PQgetResult(conn)
            let synced = sync.map { PQresultStatus($0) == PGRES_PIPELINE_SYNC } ?? false
            if let sync { PQclear(sync) }
            if !synced || PQexitPipelineMode(conn) != 1 {
                if let result { PQclear(result) }
                throw PostgresError(code: PQstatus(conn) == CONNECTION_OK ? .unexpectedResult : .connectionBroken,
                                    message: "the pipeline did not end at its sync point: " + Self.trim(PQerrorMessage(conn)))
            }
        }
        if let result, PQresultStatus(result) == PGRES_PIPELINE_ABORTED {
            PQclear(result)
            throw PostgresError(code: .server, message: "not run: an earlier statement of the same pipeline failed")
        }
        return try consume(result)
    }

    /// The error for a statement or sync that libpq refused to send.
    private func sendFailure(_ what: String) -> PostgresError {
        PostgresError(code: PQstatus(conn) == CONNECTION_OK ? .client : .connectionBroken,
                      message: "libpq could not send the \(what): " + Self.trim(PQerrorMessage(conn)))
    }

    /// Runs a script of one or more statements without parameters (`PQexec`), e.g. a migration.
    public func execute(script: String) throws {
        lock.lock(); defer { lock.unlock() }
        _ = try consume(PQexec(conn, script))
    }

    /// Runs `body` inside `BEGIN … COMMIT`; rolls back and rethrows if `body` throws.
    /// The commit is checked: if it fails, the error is thrown.
    public func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try query("BEGIN")
        do {
            let value = try body(self)
            try query("COMMIT")
            return value
        } catch {
            if isHealthy { _ = try? query("ROLLBACK") }
            throw error
        }
    }

    /// Streams rows into `COPY … FROM STDIN` (text format). `produce` is called repeatedly with
    /// a `send` function for chunks of COPY text; the COPY is ended after it returns, and the
    /// server's verdict is returned (or thrown). Throwing from `produce` aborts the COPY.
    @discardableResult
    public func copyIn(_ sql: String, _ produce: (_ send: ([UInt8]) throws -> Void) throws -> Void) throws -> Int {
        lock.lock(); defer { lock.unlock() }
        let start = PQexec(conn, sql)
        let status = PQresultStatus(start)
        guard status == PGRES_COPY_IN else {
            _ = try consume(start)
            throw PostgresError(code: .unexpectedResult, message: "\(sql) did not start COPY IN")
        }
        PQclear(start)
        do {
            try produce { chunk in
                let rc = chunk.withUnsafeBufferPointer { buf in
                    buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buf.count) {
                        PQputCopyData(conn, $0, Int32(buf.count))
                    }
                }
                if rc != 1 {
                    throw PostgresError(code: .client, message: Self.trim(PQerrorMessage(conn)))
                }
            }
        } catch {
            _ = PQputCopyEnd(conn, "aborted by client")
            drainResults()
            throw error
        }
        guard PQputCopyEnd(conn, nil) == 1 else {
            let message = Self.trim(PQerrorMessage(conn))
            drainResults()
            throw PostgresError(code: .client, message: message)
        }
        let rows = try consume(PQgetResult(conn))
        drainResults()
        return rows.affected
    }

    /// Streams the rows of `COPY … TO STDOUT` (text or binary, as `sql` asks) to `receive`, one
    /// CopyData message at a time, without building a result set. The bytes passed to `receive`
    /// are valid only during the call (libpq's buffer, freed right after). Returns the number of
    /// rows the server reports. If `receive` throws, the COPY is cancelled (`PQcancel`), the rest
    /// of its data is discarded, the connection is left idle and the error is rethrown.
    @discardableResult
    public func copyOut(_ sql: String, _ receive: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        lock.lock(); defer { lock.unlock() }
        let start = PQexec(conn, sql)
        guard PQresultStatus(start) == PGRES_COPY_OUT else {
            _ = try consume(start)
            throw PostgresError(code: .unexpectedResult, message: "\(sql) did not start COPY OUT")
        }
        PQclear(start)
        var failure: Error?
        while true {
            var buffer: UnsafeMutablePointer<CChar>?
            let n = PQgetCopyData(conn, &buffer, 0)
            if n > 0, let buffer {
                defer { PQfreemem(buffer) }
                if failure == nil {
                    do {
                        try receive(UnsafeRawBufferPointer(start: buffer, count: Int(n)))
                    } catch {
                        failure = error
                        cancelRunningQuery()
                    }
                }
                continue
            }
            if let buffer { PQfreemem(buffer) }
            if n == -1 { break }  // the COPY is over; its result follows
            // -2 (or 0, which cannot happen in blocking mode): an error.
            let message = Self.trim(PQerrorMessage(conn))
            drainResults()
            throw failure ?? PostgresError(code: PQstatus(conn) == CONNECTION_OK ? .client : .connectionBroken,
                                           message: message.isEmpty ? "COPY OUT failed" : message)
        }
        do {
            let rows = try consume(PQgetResult(conn))
            drainResults()
            if let failure { throw failure }
            return rows.affected
        } catch {
            drainResults()
            throw failure ?? error
        }
    }

    /// Asks the server to cancel the statement in progress (best effort: the statement may
    /// finish anyway; the caller reads its end either way).
    private func cancelRunningQuery() {
        guard let cancel = PQgetCancel(conn) else { return }
        defer { PQfreeCancel(cancel) }
        var errbuf = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancel, &errbuf, Int32(errbuf.count))
    }

    /// Reads and discards the results left after a COPY.
    private func drainResults() {
        while let r = PQgetResult(conn) { PQclear(r) }
    }

    /// Turns a `PGresult` into rows or a typed error, and frees it (the only place it is freed).
    private func consume(_ result: OpaquePointer?) throws -> PostgresRows {
        guard let result else {
            let message = Self.trim(PQerrorMessage(conn))
            throw PostgresError(code: PQstatus(conn) == CONNECTION_OK ? .client : .connectionBroken,
                                message: message.isEmpty ? "no result" : message)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_COPY_IN, PGRES_COPY_OUT:
            let nfields = Int(PQnfields(result))
            let ntuples = Int(PQntuples(result))
            var columns: [String] = []
            columns.reserveCapacity(nfields)
            for c in 0..<nfields { columns.append(String(cString: PQfname(result, Int32(c)))) }
            var rows: [[String?]] = []
            rows.reserveCapacity(ntuples)
            for r in 0..<ntuples {
                var row: [String?] = []
                row.reserveCapacity(nfields)
                for c in 0..<nfields {
                    if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                        row.append(nil)
                    } else {
                        row.append(String(cString: PQgetvalue(result, Int32(r), Int32(c))))
                    }
                }
                rows.append(row)
            }
            let affected = Int(String(cString: PQcmdTuples(result))) ?? ntuples
            return PostgresRows(columns: columns, rows: rows, affected: affected)
        default:
            func field(_ code: Int32) -> String? {
                guard let p = PQresultErrorField(result, code) else { return nil }
                return String(cString: p)
            }
            let sqlState = field(Int32(UInt8(ascii: "C")))
            let primary = field(Int32(UInt8(ascii: "M"))) ?? Self.trim(PQresultErrorMessage(result))
            let detail = field(Int32(UInt8(ascii: "D")))
            let broken = PQstatus(conn) != CONNECTION_OK
            throw PostgresError(code: broken ? .connectionBroken : .server, sqlState: sqlState,
                                message: primary, detail: detail)
        }
    }

    private static func trim(_ p: UnsafePointer<CChar>?) -> String {
        guard let p else { return "" }
        return String(cString: p).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension PostgresConnection {
    /// Escapes one value for the COPY text format (backslash, tab, newline, carriage return);
    /// `nil` becomes `\N`.
    public static func copyEscape(_ value: String?) -> String {
        guard let value else { return "\\N" }
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for ch in value.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// One COPY text-format line from values.
    public static func copyLine(_ values: [String?]) -> String {
        values.map(copyEscape).joined(separator: "\t") + "\n"
    }
}
