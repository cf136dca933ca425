import ControlProtocol
import Foundation
import Logging
import NIOPosix
import NIOConcurrencyHelpers
import Postgres
import Registry
import RegistryStore

/// Counters shown by `STATS`.
struct ServerCounters: Sendable {
    var connectionsOpen = 0
    var connectionsTotal = 0
    var requests = 0
    var errors = 0
    /// Requests by command, at the command's number (``ControlProtocol/CommandSpec/index``).
    var perCommand = PerCommand<Int>()
    var rateLimited = 0
    var refusedConnections = 0
    var idleClosed = 0
    /// `IMPORT DATA` chunks that waited for a streaming import's reader (its queue was full).
    var importWaits = 0

    /// The stripes' counters added up (an open-connection count may be opened on one stripe
    /// and closed on another: only the sum means anything).
    static func sum(_ stripes: [ServerCounters]) -> ServerCounters {
        var t = ServerCounters()
        for c in stripes {
            t.connectionsOpen += c.connectionsOpen
            t.connectionsTotal += c.connectionsTotal
            t.requests += c.requests
            t.errors += c.errors
            t.rateLimited += c.rateLimited
            t.refusedConnections += c.refusedConnections
            t.idleClosed += c.idleClosed
            t.importWaits += c.importWaits
            for e in c.perCommand.entries {
                t.perCommand.with(index: e.index, name: e.name, initial: 0) { $0 += e.value }
            }
        }
        return t
    }
}

/// What a handler produced for one request line: the JSON line and whether to close afterwards.
public struct Reply: Sendable {
    private enum Body: Sendable {
        case array([UInt8])
        /// A writer's block, taken over without a copy (``ControlProtocol/JSONBytes``).
        case written(JSONBytes)
    }
    private let body: Body
    /// Close the connection after sending it.
    public var close: Bool

    /// A reply of `json` (one JSON object, without the newline).
    public init(json: [UInt8], close: Bool) {
        body = .array(json)
        self.close = close
    }

    /// A reply of what a writer wrote (no copy).
    init(written: JSONBytes, close: Bool) {
        body = .written(written)
        self.close = close
    }

    /// The response, one JSON object, without the newline (a copy when it was written by a writer).
    public var json: [UInt8] {
        switch body {
        case .array(let a): return a
        case .written(let w): return w.array
        }
    }

    /// The response's length in bytes.
    public var count: Int {
        switch body {
        case .array(let a): return a.count
        case .written(let w): return w.count
        }
    }

    /// Reads the response's bytes in place.
    public func withUnsafeBytes<R>(_ read: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch body {
        case .array(let a): return try a.withUnsafeBytes(read)
        case .written(let w): return try w.withUnsafeBytes(read)
        }
    }

    static func error(_ e: ProtocolError, close: Bool = false) -> Reply {
        Reply(json: Array(e.json.utf8), close: close)
    }
}

/// State of one connection: an upload in progress. Owned by the connection's task, which
/// handles its requests one at a time.
public final class ConnectionSession: @unchecked Sendable {
    struct Upload {
        var format: String
        var options: [String: String]
        /// The file so far (empty when it is streamed).
        var data: [UInt8] = []
        /// Bytes received so far.
        var bytes = 0
        /// A CSV camera import loaded while it is uploaded (see ``StreamingImport``).
        var streaming: StreamingImport?
    }
    var upload: Upload?

    /// Drops the upload in progress; a streaming import behind it rolls back.
    func dropUpload() {
        upload?.streaming?.abandon()
        upload = nil
    }
    /// Largest upload held in memory until `IMPORT COMMIT`, in bytes.
    static let maxUploadBytes = 256 << 20
    /// Largest streamed upload (a CSV camera import read while it arrives, see
    /// ``StreamingImport``), in bytes: its chunks are not kept, so the bound is the rows the
    /// import holds until it commits (about 4 million cameras), not the file.
    static let maxStreamedUploadBytes = 1 << 30
    /// The largest upload accepted for `upload`, in bytes.
    static func cap(of upload: Upload) -> Int {
        upload.streaming == nil ? maxUploadBytes : maxStreamedUploadBytes
    }
    /// Who is on the connection (changed by `AUTH`).
    public var identity: Identity
    /// Where the connection comes from, for the audit log (`unix:pid=…,uid=…`, `tcp:…`).
    public let peer: String
    /// The identity was given by peer credentials (the daemon's own OS user), not a token.
    public let peerMapped: Bool

    /// A session for a connection from `peer` starting as `identity`.
    public init(identity: Identity = .anonymous, peer: String = "local", peerMapped: Bool = false) {
        self.identity = identity
        self.peer = peer
        self.peerMapped = peerMapped
    }

    /// The connection has closed: an upload in progress is dropped (a streaming import behind
    /// it rolls back).
    public func closed() {
        dropUpload()
    }
}

/// A CSV camera import that runs while its file is uploaded: `IMPORT BEGIN` opens the
/// transaction and the COPY, each `IMPORT DATA` chunk goes to the parser as it arrives, and
/// `IMPORT COMMIT` ends the file and waits for the import's answer. Nothing is committed before
/// `IMPORT COMMIT`; `IMPORT ABORT`, a new `IMPORT BEGIN`, an upload over the size limit or a
/// closed connection roll it back.
final class StreamingImport: Sendable {
    /// Chunks waiting for the import's reader, at most: 128 chunks of at most 48 KiB, 6 MiB.
    static let queuedChunks = 128
    /// The upload's chunks, from the event loop to the import's reader thread.
    let chunks = ChunkQueue(capacity: queuedChunks)
    /// The import, started by `IMPORT BEGIN`; its reply is `IMPORT COMMIT`'s.
    let job: Task<Reply, Error>

    /// The reason the reader is given when the upload is dropped.
    struct Abandoned: Error {}

    init(_ run: @escaping @Sendable (ChunkQueue) async throws -> Reply) {
        let chunks = self.chunks
        job = Task {
            do { return try await run(chunks) } catch {
                chunks.cancel()  // later chunks are dropped, not queued
                throw error
            }
        }
    }

    /// Whether ``append(_:)`` can take a chunk now: fewer than ``queuedChunks`` wait for the
    /// import (or it has failed, and takes nothing more).
    var hasRoom: Bool { chunks.hasRoom }

    /// Waits (blocking: on a thread-pool thread, never an event loop) until ``hasRoom``.
    func waitForRoom() { chunks.waitForRoom() }

    /// Appends a chunk; call it when ``hasRoom`` (it then never waits). Dropped if the import
    /// has already failed: its error is `IMPORT COMMIT`'s answer.
    func append(_ bytes: [UInt8]) {
        try? chunks.put(bytes)
    }

    /// The file is complete: the import's answer.
    func commit() async throws -> Reply {
        chunks.finish(nil)
        return try await job.value
    }

    /// Drops the upload: the import's reader fails, and the transaction rolls back.
    func abandon() {
        chunks.finish(Abandoned())
    }
}

/// The index snapshot an import prepared while it committed (set on the import's helper
/// thread, read after the import's database call has returned).
final class PreparedBox: @unchecked Sendable {
    var result: Result<CameraIndex.PreparedBatch, Error>?
}

/// What an import's reader counted, for its answer and log line. Written by the import's one
/// database call, read after it has returned.
final class ImportTally: @unchecked Sendable {
    /// Rows read (records, features or nodes), refused ones included.
    var rows = 0
    /// Time spent reading and validating the file (not waiting on the database); for a
    /// streaming import this includes waiting for the upload.
    var parse = Duration.zero
    /// Bytes of a streamed upload read.
    var bytes = 0
}

/// The command handlers: arguments → operation → response, for every entry of the
/// ``CommandTable``. Queries are served from the in-memory ``CameraIndex`` only; they never
/// touch PostgreSQL.
public final class RegistryService: Sendable {
    /// The camera index.
    public let index: CameraIndex
    /// Parsing limits (replaced by a configuration reload, see ``updateLimits(_:)``).
    public var limits: ProtocolLimits { limitsBox.withLocalValue { $0 } }
    /// A copy per thread stripe: every request reads the limits, a reload rarely writes them.
    private let limitsBox: Striped<ProtocolLimits>

    /// Replaces the limits (SIGHUP); the next request uses them. The longest line stays as the
    /// socket was opened with.
    public func updateLimits(_ new: ProtocolLimits) {
        limitsBox.updateAll { $0 = new }
    }
    /// Where writes go (PostgreSQL); `nil` serves queries only (writes answer `unavailable`).
    public let store: PostgresClient?
    /// Where cameras may be registered.
    public let jurisdiction: Jurisdiction
    /// Delta size at which a write starts a background rebuild of the index snapshot.
    public let rebuildThreshold: Int
    /// Longest incident time window accepted by searches, in seconds (7 days by default).
    public let maxTimeWindow: TimeInterval
    private let consentBox = NIOLockedValueBox([Int64: Consent]())
    /// Owners' consent by owner id, kept in memory for searches (loaded at start, updated by writes).
    var consents: [Int64: Consent] { consentBox.withLockedValue { $0 } }

    /// Replaces the consent cache (at start-up, from `owners`).
    public func loadConsents(_ all: [Int64: Consent]) {
        consentBox.withLockedValue { $0 = all }
    }

    /// Merges changed consents (from the change feed: owners written by other daemons).
    public func applyConsents(_ changed: [Int64: Consent]) {
        consentBox.withLockedValue { $0.merge(changed) { _, new in new } }
    }

    /// Database state, change feed and latencies for `STATS` (see Metrics.swift).
    public let reliability = ReliabilityStats()

    func remember(_ owner: Owner) {
        guard let id = owner.id else { return }
        consentBox.withLockedValue { $0[id] = owner.consent }
    }
    private let startedAt = Date()
    private let indexSourceBox = NIOLockedValueBox("memory")

    /// Where the index was loaded from at start-up (`cache` or `database`), shown in `STATS` as
    /// `index_loaded_from`.
    public func noteIndexSource(_ source: String) {
        indexSourceBox.withLockedValue { $0 = source }
    }
    /// Per thread stripe (every request bumps them; `STATS` adds the stripes up).
    private let counters = Striped { ServerCounters() }
    let logger: Logger
    /// Access-control settings (peer mapping, rate limit, audit spool).
    public let access: AccessSettings
    let rateLimiter: RateLimiter
    /// The audit log; nil for a daemon without a database (tests, benchmarks) and for a
    /// read-only daemon without `audit_database_url`.
    public let auditLog: AuditLog?
    /// Where tokens are read (`AUTH`): the database, or the replica of a read-only daemon.
    let readStore: PostgresClient?
    /// Tokens revoked by this daemon since start: refused at once on open connections. A copy
    /// per thread stripe (every request with a token looks here); a revocation writes them all.
    let revokedTokens = Striped { Set<Int64>() }
    /// A streaming import is running (at most one: see `streamingImport(_:)`).
    let streamingSlot = NIOLockedValueBox(false)

    public init(index: CameraIndex, limits: ProtocolLimits = .init(), store: PostgresClient? = nil,
                jurisdiction: Jurisdiction = .benCat, rebuildThreshold: Int = 512,
                maxTimeWindow: TimeInterval = 7 * 86_400, access: AccessSettings = .init(),
                readStore: PostgresClient? = nil, auditStore: PostgresClient? = nil,
                logger: Logger = Logger(label: "camreg.service")) {
        self.access = access
        self.rateLimiter = RateLimiter(access.rateLimit)
        self.readStore = readStore ?? store
        self.auditLog = (auditStore ?? store).map { AuditLog(store: $0, spoolPath: access.auditSpoolPath) }
        self.maxTimeWindow = maxTimeWindow
        self.index = index
        self.limitsBox = Striped { limits }
        self.store = store
        self.jurisdiction = jurisdiction
        self.rebuildThreshold = rebuildThreshold
        self.logger = logger
    }

    func connectionRefused() {
        counters.withLocalValue { $0.refusedConnections += 1 }
    }

    func idleClosed() {
        counters.withLocalValue { $0.idleClosed += 1 }
    }

    func connectionOpened() {
        counters.withLocalValue { $0.connectionsOpen += 1; $0.connectionsTotal += 1 }
    }

    func connectionClosed() {
        counters.withLocalValue { $0.connectionsOpen -= 1 }
    }

    /// The reply to a line cut off by the frame decoder for being too long (counted as an error).
    func lineTooLong() -> Reply {
        counters.withLocalValue { $0.requests += 1; $0.errors += 1 }
        return .error(ProtocolError(.lineTooLong, "the request is longer than \(limits.maxLineBytes) bytes; closing"), close: true)
    }

    /// How a request line is answered: at once, on the caller's thread, or by async work (a
    /// database call, or the audit entry that must be committed before owner data leaves).
    public enum Answer: Sendable {
        /// The reply, computed on the caller's thread.
        case now(Reply)
        /// Work that produces the reply; run it off the event loop.
        case later(@Sendable () async -> Reply)
    }

    /// Answers one request line (raw bytes, without the newline): rate limit, parse, access
    /// check (role, case), the handler, then the audit log — in that order. Everything up to the
    /// handler runs on the caller's thread; queries of the in-memory index (and other commands
    /// that need neither the database nor an audit entry) are answered there too, so the control
    /// server answers them on the connection's event loop without a hop to a task. Everything
    /// else comes back as ``Answer/later(_:)``, to be run off the event loop.
    public func answer(_ line: [UInt8], session: ConnectionSession) -> Answer {
        if !session.peerMapped, rateLimiter.isEnabled,
           let wait = rateLimiter.take(session.identity.tokenID.map { "token:\($0)" } ?? "peer:\(session.peer)") {
            counters.withLocalValue { $0.requests += 1; $0.errors += 1; $0.rateLimited += 1 }
            return .now(.error(ProtocolError(.rateLimited, "too many requests for \(session.identity.name); retry in \(Int((wait * 1000).rounded(.up))) ms")))
        }
        let request: Request
        do {
            request = try RequestParser.parseRequest(line, limits: limits)
        } catch {
            counters.withLocalValue { $0.requests += 1; $0.errors += 1 }
            return .now(.error(error, close: error.code == .lineTooLong))
        }
        // The closures below capture the command, not the whole request; the request goes to
        // `finish` as an argument (a copy retains every string and array in it and releases them
        // again: ~500 instructions a request, and a step used to hold one).
        let command = request.command
        let name = Self.name(of: command)
        let commandIndex = request.spec.index
        counters.withLocalValue { $0.requests += 1; $0.perCommand.with(index: commandIndex, name: name, initial: 0) { $0 += 1 } }
        let started = ContinuousClock.now
        if let token = session.identity.tokenID, revokedTokens.withLocalValue({ $0.contains(token) }) {
            session.identity = .anonymous
        }
        let identity = session.identity
        let access = request.spec.access
        let ctx = RequestContext(identity: identity)
        let step = Step(line: line, name: name, index: commandIndex, ctx: ctx, started: started)
        if !access.allows(identity.role) {
            let e = identity.role == nil
                ? ProtocolError(.unauthenticated, "\(request.spec.name) needs an authenticated connection: send AUTH <token> first")
                : ProtocolError(.forbidden, "role \(identity.role!.rawValue) may not run \(request.spec.name); allowed: \(access.roles!.sorted().map(\.rawValue).joined(separator: ", "))")
            return finish(step, request, reply: .error(e), outcome: e.code.rawValue, refused: true, session: session)
        }
        if let role = identity.role, access.requiresCase(role), request.caseID == nil {
            let e = ProtocolError(.caseRequired, "an \(role.rawValue) must give the case this request is for: case=<id> (and purpose=\"…\")", field: "case")
            return finish(step, request, reply: .error(e), outcome: e.code.rawValue, refused: true, session: session)
        }
        if let (reply, outcome) = RequestContext.withSynchronous(ctx, { runNow(command, name: name, session: session) }) {
            return finish(step, request, reply: reply, outcome: outcome, refused: Self.isRefusal(outcome), session: session)
        }
        return .later {
            let (reply, outcome) = await RequestContext.$task.withValue(ctx) {
                await self.run(command, name: name, session: session)
            }
            switch self.finish(step, request, reply: reply, outcome: outcome, refused: Self.isRefusal(outcome), session: session) {
            case .now(let r): return r
            case .later(let audit): return await audit()
            }
        }
    }

    /// What ``answer(_:session:)`` carries from the parse to the audit entry (with the request,
    /// passed beside it: a step holding its own copy cost a copy of the request each time).
    private struct Step: Sendable {
        let line: [UInt8]
        let name: String
        /// The command's number (``ControlProtocol/CommandSpec/index``).
        let index: Int
        let ctx: RequestContext
        let started: ContinuousClock.Instant
    }

    /// After the handler: counts the outcome, and writes the audit entry when the request is
    /// audited (its reply then waits for the commit); records the latency.
    private func finish(_ step: Step, _ request: Request, reply: Reply, outcome: String, refused: Bool, session: ConnectionSession) -> Answer {
        if outcome != "ok" { counters.withLocalValue { $0.errors += 1 } }
        let access = request.spec.access
        let audited = refused || access.audit == .always || (access.audit == .ownerData && step.ctx.disclosed > 0)
        guard audited else {
            recordLatency(step)
            return .now(reply)
        }
        if auditLog == nil, self.access.auditRequired, outcome == "ok", access.audit == .ownerData {
            recordLatency(step)
            return .now(.error(ProtocolError(.auditUnavailable, "this daemon has no audit log (a read-only daemon needs audit_database_url), so owner data is not sent")))
        }
        guard let auditLog else {
            recordLatency(step)
            return .now(reply)
        }
        let identity = step.ctx.identity
        let entry = AuditEntry(at: Date(), identity: identity.name, role: identity.role?.rawValue ?? "none", peer: session.peer,
                               command: Request.redacted(step.line, command: request.command), caseID: request.caseID,
                               purpose: request.purpose, resultCount: step.ctx.resultCount, outcome: outcome)
        return .later {
            defer { self.recordLatency(step) }
            do {
                try await auditLog.record(entry)
            } catch {
                self.logger.error("audit log unavailable", metadata: ["command": "\(step.name)", "error": "\(error)"])
                if outcome == "ok", access.audit == .ownerData {
                    // Owner data leaves only with its audit entry.
                    return .error(ProtocolError(.auditUnavailable, "the audit log cannot be written, so owner data is not sent; retry later"))
                }
            }
            return reply
        }
    }

    private func recordLatency(_ step: Step) {
        reliability.metrics.record(index: step.index, step.name, seconds: Double((ContinuousClock.now - step.started) / .microseconds(1)) / 1e6)
    }

    /// Whether an outcome is a refusal by policy (a string comparison for `ok`, no hashing).
    static func isRefusal(_ outcome: String) -> Bool {
        outcome != "ok" && refusalCodes.contains(outcome)
    }

    /// Error codes that mean "refused by policy"; such requests are always audited.
    static let refusalCodes: Set<String> = [
        "unauthenticated", "forbidden", "case_required", "bad_token", "request_too_broad", "radius_too_large",
        "time_window_too_long",
    ]

    /// Runs the handler of a command that needs neither the database nor a wait, on the
    /// caller's thread; nil for the others (see ``handleNow(_:session:)``).
    private func runNow(_ command: Command, name: String, session: ConnectionSession) -> (Reply, String)? {
        do {
            guard let reply = try handleNow(command, session: session) else { return nil }
            return (reply, "ok")
        } catch {
            return outcome(of: error, name: name)
        }
    }

    /// Runs the handler; returns the reply and its outcome (`ok` or the error code).
    private func run(_ command: Command, name: String, session: ConnectionSession) async -> (Reply, String) {
        do {
            return (try await handle(command, session: session), "ok")
        } catch {
            return outcome(of: error, name: name)
        }
    }

    /// The error reply of a failed handler and its outcome code.
    private func outcome(of error: Error, name: String) -> (Reply, String) {
        if let e = error as? ProtocolError { return (.error(e), e.code.rawValue) }
        if let e = error as? RegistryError {
            let p = Self.protocolError(e)
            return (.error(p), p.code.rawValue)
        }
        if let e = error as? PostgresError, e.isConnectionError {
            logger.warning("database unavailable for a write", metadata: ["error": "\(e)"])
            return (.error(ProtocolError(.unavailable, "the database is unavailable; nothing was changed: \(e.message)")), "unavailable")
        }
        if let e = error as? PostgresError, e.sqlState?.hasPrefix("23") == true {
            return (.error(ProtocolError(.validationFailed, "the database refused the change: \(e.message)")), "validation_failed")
        }
        logger.error("request failed", metadata: ["command": "\(name)", "error": "\(error)"])
        return (.error(ProtocolError(.internal, "the server failed to answer: \(error)")), "internal")
    }

    static func name(of command: Command) -> String {
        switch command {
        case .ping: return "PING"
        case .help: return "HELP"
        case .near: return "NEAR"
        case .nearest: return "NEAREST"
        case .along: return "ALONG"
        case .within: return "WITHIN"
        case .cameraGet: return "CAMERA GET"
        case .stats: return "STATS"
        case .quit: return "QUIT"
        case .ownerAdd: return "OWNER ADD"
        case .ownerGet: return "OWNER GET"
        case .ownerUpdate: return "OWNER UPDATE"
        case .cameraRegister: return "CAMERA REGISTER"
        case .cameraVerify: return "CAMERA VERIFY"
        case .cameraUpdate: return "CAMERA UPDATE"
        case .cameraStatus: return "CAMERA STATUS"
        case .cameraList: return "CAMERA LIST"
        case .cameraExport: return "CAMERA EXPORT"
        case .incident(let c): return "INCIDENT " + String(describing: c).prefix { $0 != "(" }.uppercased()
        case .importBegin: return "IMPORT BEGIN"
        case .importData: return "IMPORT DATA"
        case .importCommit: return "IMPORT COMMIT"
        case .importAbort: return "IMPORT ABORT"
        case .auth: return "AUTH"
        case .whoami: return "WHOAMI"
        case .token(let t):
            switch t {
            case .create: return "TOKEN CREATE"
            case .list: return "TOKEN LIST"
            case .revoke: return "TOKEN REVOKE"
            }
        case .audit(let a):
            switch a {
            case .verify: return "AUDIT VERIFY"
            case .search: return "AUDIT SEARCH"
            }
        case .coverage(let c): return "COVERAGE " + String(describing: c).prefix { $0 != "(" }.uppercased()
        case .job(let c): return "JOB " + String(describing: c).prefix { $0 != "(" }.uppercased()
        }
    }

    static func protocolError(_ e: RegistryError) -> ProtocolError {
        let code: ProtocolError.Code
        switch e.code {
        case .notFound: code = .notFound
        case .conflict: code = .conflict
        case .illegalTransition: code = .illegalTransition
        case .validation: code = .validationFailed
        case .duplicate: code = .likelyDuplicate
        case .alreadyExists: code = .alreadyExists
        case .unavailable: code = .unavailable
        default: code = .init(e.code.rawValue)
        }
        return ProtocolError(code, e.description, fields: e.fields.map { .init(field: FieldInput.optionName($0.field), reason: $0.reason) })
    }

    /// Runs a write on the database, then puts the committed camera into the index before the
    /// reply is sent, so that the next query on any connection sees it.
    private func write(_ body: @escaping @Sendable (PostgresConnection) throws -> Camera) async throws -> Reply {
        guard let store else { throw ProtocolError(.unavailable, "this daemon has no database for writes") }
        let camera = try await store.withConnection(body)
        index.upsert(camera)
        scheduleRebuildIfNeeded()
        return ok { w in
            w.key("camera")
            CameraJSON.full(camera, into: &w)
        }
    }

    private func scheduleRebuildIfNeeded() {
        guard index.deltaCount >= rebuildThreshold else { return }
        let index = self.index, threshold = self.rebuildThreshold, logger = self.logger
        Task.detached(priority: .utility) {
            do {
                if try index.rebuildIfNeeded(threshold: threshold) {
                    logger.debug("index snapshot rebuilt", metadata: ["cameras": "\(index.count)"])
                }
            } catch {
                logger.error("index rebuild failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private func ownerReply(_ owner: Owner, cameras: Int?) -> Reply {
        // The command table admits only roles the privacy rule allows; checked again here.
        let pii = RequestContext.showsOwnerData(ownerID: owner.id)
        RequestContext.noteResults(1)
        return ok { w in
            w.key("owner")
            w.object { o in
                o.field("id", owner.id.map { Int($0) })
                o.field("kind", owner.kind.rawValue)
                o.field("name", pii ? owner.name : nil)
                o.field("phone", pii ? owner.phone : nil)
                o.field("phone_display", pii ? VietnamesePhone.display(owner.phone) : nil)
                o.field("email", pii ? owner.email : nil)
                o.field("address", pii ? owner.address : nil)
                o.field("ward", owner.ward)
                o.key("consent")
                o.object { c in
                    c.field("granted", owner.consent.granted)
                    c.field("valid_until", owner.consent.validUntil.map { String(ISO8601Text.format($0).prefix(10)) })
                    c.field("note", owner.consent.note)
                    c.field("in_force", owner.consent.isInForce(at: Date()))
                }
                if let cameras { o.field("cameras", cameras) }
                o.field("created_at", ISO8601Text.format(owner.createdAt))
                o.field("updated_at", ISO8601Text.format(owner.updatedAt))
                o.field("version", owner.version)
            }
        }
    }

    private func listPage(_ q: CameraListQuery) -> (ArraySlice<Camera>, Bool) {
        let page = index.list(after: q.after, limit: q.limit + 1) { c in
            (q.ward == nil || c.ward == q.ward) && (q.status == nil || c.status.rawValue == q.status)
                && (q.owner == nil || c.ownerID == q.owner) && (q.site == nil || c.siteKind.rawValue == q.site)
        }
        return (page.prefix(q.limit), page.count > q.limit)
    }

    /// Whether a streaming import holds the daemon's one slot (see `streamingImport`): from its
    /// `IMPORT BEGIN` until its transaction has ended and its connection is back.
    public var streamingImportActive: Bool { streamingSlot.withLockedValue { $0 } }

    /// A streaming import for a CSV camera upload (see ``StreamingImport``), when the daemon
    /// writes and no other streaming import holds its slot; nil otherwise (the upload is then
    /// buffered and loaded by `IMPORT COMMIT`). One at a time, as it holds a database
    /// connection for as long as its client takes to upload.
    private func streamingImport(_ upload: ConnectionSession.Upload) -> StreamingImport? {
        guard upload.format == "csv", store != nil,
              streamingSlot.withLockedValue({ busy in defer { busy = true }; return !busy }) else { return nil }
        // Who imports, as `IMPORT BEGIN` named it (the task below has no request context).
        let actor = Self.actor(claimed: upload.options["by"], default: "import")
        return StreamingImport { chunks in
            defer { self.streamingSlot.withLockedValue { $0 = false } }
            return try await self.commitImport(upload, chunks: chunks, actor: actor)
        }
    }

    /// Loads an upload: from `chunks` as they arrive (a streaming import), or from the bytes
    /// the upload holds.
    private func commitImport(_ upload: ConnectionSession.Upload, chunks: ChunkQueue? = nil, actor: String? = nil) async throws -> Reply {
        if let layer = try await commitLayerImport(upload) { return layer }
        let store = try database()
        let clock = ContinuousClock()
        let started = clock.now
        let data = Data(upload.data)
        let format = upload.format, options = upload.options, jurisdiction = self.jurisdiction
        let allOrNothing = ["yes", "true"].contains(upload.options["all_or_nothing"]?.lowercased() ?? "")
        let actor = actor ?? Self.actor(claimed: upload.options["by"], default: "import")
        // The file is read while the rows go into the database: each batch is parsed and
        // validated, then sent into the open COPY, so PostgreSQL stores one batch while the
        // next is read (a CSV file in batches as it is read; the other formats in one).
        let tally = ImportTally()
        let source: CameraImport.RowSource = { emit in
            let now = Date()
            let reading = ContinuousClock.now
            var elsewhere = Duration.zero
            func validated(_ rows: [ImportRow]) throws {
                tally.rows += rows.count
                var good: [(number: Int, camera: Camera)] = []
                good.reserveCapacity(rows.count)
                var rejected: [ImportRowError] = []
                for row in rows {
                    switch row.result {
                    case .failure(let e): rejected.append(e)
                    case .success(let draft):
                        let problems = draft.validate(jurisdiction: jurisdiction)
                        if problems.isEmpty {
                            good.append((row.number, draft.camera(now: now)))
                        } else {
                            rejected += problems.map { ImportRowError(number: row.number, field: $0.field, reason: $0.reason) }
                        }
                    }
                }
                let sent = ContinuousClock.now
                try emit(good, rejected)
                elsewhere += ContinuousClock.now - sent
            }
            do {
                switch format {
                case "csv":
                    var mapping = CSVMapping(separator: options["separator"]?.unicodeScalars.first ?? ",")
                    for field in CameraField.allCases {
                        if let column = options["col_\(field.rawValue)"] { mapping = mapping.with(field, column: column) }
                    }
                    if let chunks {
                        try CSVImporter.parse(more: {
                            let chunk = try chunks.take()
                            tally.bytes += chunk?.count ?? 0
                            return chunk
                        }, mapping: mapping, jurisdiction: jurisdiction, emit: validated)
                    } else {
                        try CSVImporter.parse(data, mapping: mapping, jurisdiction: jurisdiction, emit: validated)
                    }
                case "geojson": try validated(GeoJSONImporter.parse(data, jurisdiction: jurisdiction))
                case "osm-json": try validated(OSMImporter.parseOverpassJSON(data, jurisdiction: jurisdiction))
                default: try validated(OSMImporter.parseXML(data, jurisdiction: jurisdiction))
                }
            } catch let e as ImportError {
                throw ProtocolError(.badFile, "the file cannot be read: \(e)")
            }
            tally.parse = ContinuousClock.now - reading - elsewhere
        }
        // A big import becomes a new snapshot before the answer (see upsert(contentsOf:)), built
        // while PostgreSQL finishes the COPY, writes the change log and commits, swapped in after
        // the commit if the direct path wrote it.
        let index = self.index
        // The import's cameras reach this index below, not through the change feed.
        let feed = reliability.sources.feed
        let prepared = PreparedBox()
        let report: ImportReport
        do {
            // A streaming import waits for its client between chunks: on a thread of its own.
            report = try await store.withConnection(ownThread: chunks != nil) { c in
                try CameraImport.importRows(from: source, allOrNothing: allOrNothing, actor: actor, whileCommitting: { cameras in
                    prepared.result = Result { try index.prepare(contentsOf: cameras) }
                }, ownChanges: { feed?.skipOwn($0) }, on: c)
            }
        } catch {
            if case .success(let batch)? = prepared.result { index.discard(batch) }
            throw error
        }
        let stored = clock.now
        let imported = report.imported
        // The batch was prepared before the COPY had ended: it holds the import's cameras only
        // if the direct path committed them (an id already taken sends a subset through staging).
        if case .success(let batch)? = prepared.result, report.committed && report.direct {
            index.publish(batch)
        } else {
            if case .success(let batch)? = prepared.result { index.discard(batch) }
            if report.committed { try await NIOThreadPool.singleton.runIfActive { try index.upsert(contentsOf: imported) } }
        }
        scheduleRebuildIfNeeded()
        // Where a big import's time goes (operators and the benchmark read this line).
        func seconds(_ d: Duration) -> Logger.MetadataValue {
            .string(String(format: "%.3f", Double(d / .microseconds(1)) / 1e6))
        }
        let done = clock.now
        let rows = tally.rows
        var metadata: Logger.Metadata = [
            "rows": "\(rows)", "imported": "\(imported.count)", "bytes": "\(chunks == nil ? upload.data.count : tally.bytes)",
            "streamed": "\(chunks != nil)",
            "parse_s": seconds(tally.parse), "database_s": seconds(stored - started),
            "index_s": seconds(done - stored), "total_s": seconds(done - started),
        ]
        for step in report.steps { metadata["db_\(step.name)_s"] = .string(String(format: "%.3f", step.seconds)) }
        logger.info("import committed", metadata: metadata)
        return ok { w in
            w.field("committed", report.committed)
            w.field("rows", rows)
            w.field("imported", report.imported.count)
            w.field("rejected_count", report.rejected.count)
            w.key("rejected")
            w.array { a in
                for e in report.rejected.prefix(1000) {
                    a.object { o in
                        o.field("number", e.number)
                        o.field("field", e.field)
                        o.field("reason", e.reason)
                    }
                }
            }
        }
    }

    func database() throws -> PostgresClient {
        guard let store else { throw ProtocolError(.unavailable, "this daemon has no database for writes") }
        return store
    }

    /// The handlers that answer from memory (the index, the session, the counters) without
    /// waiting; nil for a command that needs the database or other async work. The listing
    /// commands stay async: they sort the registry, which must not block an event loop.
    func handleNow(_ command: Command, session: ConnectionSession) throws -> Reply? {
        switch command {
        case .ping:
            return ok { $0.field("pong", true) }
        case .quit:
            var r = ok { $0.field("bye", true) }
            r.close = true
            return r
        case .help(let topic):
            return try help(topic, role: session.identity.role)
        case .near(let q):
            return try handleNear(q)
        case .nearest(let q):
            return try handleNearest(q)
        case .along(let q):
            return try handleAlong(q)
        case .within(let q):
            return try handleWithin(q)
        case .cameraGet(let id):
            guard let camera = index.camera(id: id) else {
                throw ProtocolError(.notFound, "no camera with id \(id)", field: "id")
            }
            try requireOwnRecord(camera.ownerID, what: "camera \(id)")
            RequestContext.noteResults(1)
            return ok { w in
                w.key("camera")
                CameraJSON.full(camera, into: &w)
            }
        case .stats:
            return stats()
        case .whoami:
            return whoami(session)
        case .importBegin(let format, let options):
            session.dropUpload()
            var upload = ConnectionSession.Upload(format: format, options: options)
            upload.streaming = streamingImport(upload)
            session.upload = upload
            return ok { $0.field("format", format) }
        case .importData(let text):
            // A streaming import whose reader is behind: the async handler waits for room.
            if let streaming = session.upload?.streaming, !streaming.hasRoom { return nil }
            return try importData(text, session: session)
        case .job(.status(let id)):
            // A live job's state is in memory: answered on the event loop, so that a running
            // analysis never delays it. A finished run of another process is read from the
            // database (the async handler).
            return job(id).map(jobReply)
        case .importAbort:
            let had = session.upload != nil
            session.dropUpload()
            return ok { $0.field("aborted", had) }
        default:
            return nil
        }
    }

    /// `IMPORT DATA`: appends the chunk to the connection's upload (for a streaming import, to
    /// its queue, which must have room).
    private func importData(_ text: String, session: ConnectionSession) throws -> Reply {
        guard session.upload != nil else { throw ProtocolError(.noUpload, "no upload in progress; send IMPORT BEGIN first") }
        guard let bytes = Base64.decode(text) else {
            throw ProtocolError(.invalidValue, "the chunk is not valid base64", field: "data")
        }
        let cap = ConnectionSession.cap(of: session.upload!)
        guard session.upload!.bytes + bytes.count <= cap else {
            session.dropUpload()
            throw ProtocolError(.outOfRange, "the upload is larger than \(cap >> 20) MiB; dropped")
        }
        session.upload!.bytes += bytes.count
        if let streaming = session.upload!.streaming {
            streaming.append(bytes)
        } else {
            session.upload!.data.append(contentsOf: bytes)
        }
        return ok { $0.field("bytes", session.upload!.bytes) }
    }

    private func handle(_ command: Command, session: ConnectionSession) async throws -> Reply {
        if let reply = try handleNow(command, session: session) { return reply }
        switch command {
        case .importData(let text):
            // The streaming import's queue is full: wait off the event loop until its reader
            // has taken a chunk (the connection's next lines wait meanwhile, which slows the
            // client down), then append.
            if let streaming = session.upload?.streaming {
                counters.withLocalValue { $0.importWaits += 1 }
                try await NIOThreadPool.singleton.runIfActive { streaming.waitForRoom() }
            }
            return try importData(text, session: session)
        case .ping, .quit, .help, .near, .nearest, .along, .within, .cameraGet, .stats, .whoami,
             .importBegin, .importAbort:
            throw ProtocolError(.internal, "\(Self.name(of: command)) has no async handler")
        case .ownerAdd(let fields):
            let (draft, errors) = FieldInput.draftOwner(fields, now: Date())
            guard errors.isEmpty else { throw RegistryError(.validation, "the owner is not valid", fields: errors) }
            let owner = try await database().withConnection { try OwnerRepository.add(draft, on: $0) }
            remember(owner)
            return ownerReply(owner, cameras: 0)
        case .ownerGet(let id):
            try requireOwnRecord(id, what: "owner \(id)")
            let (owner, count) = try await database().withConnection { c -> (Owner?, Int) in
                guard let o = try OwnerRepository.get(id: id, on: c) else { return (nil, 0) }
                return (o, try OwnerRepository.cameraCount(ownerID: id, on: c))
            }
            guard let owner else { throw ProtocolError(.notFound, "no owner with id \(id)", field: "id") }
            return ownerReply(owner, cameras: count)
        case .ownerUpdate(let id, let version, let fields):
            try requireOwnRecord(id, what: "owner \(id)")
            let owner = try await database().withConnection { c in
                try OwnerRepository.update(id: id, expectedVersion: version, on: c) { o in
                    var errors = FieldInput.apply(fields, to: &o)
                    // Report every bad field at once: the unreadable ones and the out-of-range ones.
                    let read = Set(errors.map(\.field))
                    errors += o.normalized().validate().filter { !read.contains($0.field) }
                    if !errors.isEmpty { throw RegistryError(.validation, "the update is not valid", fields: errors) }
                }
            }
            remember(owner)
            return ownerReply(owner, cameras: nil)
        case .cameraRegister(let given):
            var scoped = given
            if let own = ownerScope() {
                // An owner registers their own camera; it waits for a registrar's verification.
                if let o = scoped["owner"], Int64(o) != own {
                    throw ProtocolError(.forbidden, "an owner registers cameras for themself only (owner=\(own))", field: "owner")
                }
                if let st = scoped["status"], st != "pending" {
                    throw ProtocolError(.forbidden, "an owner's new camera is pending until a registrar verifies it", field: "status")
                }
                scoped["owner"] = String(own)
            }
            let fields = scoped
            var (draft, errors) = FieldInput.draftCamera(fields, now: Date())
            if errors.isEmpty, let outside = jurisdiction.check(draft) { errors.append(outside) }
            guard errors.isEmpty else { throw RegistryError(.validation, "the camera is not valid", fields: errors) }
            let distinct = ["yes", "true", "1"].contains(fields["distinct"]?.lowercased() ?? "")
            let actor = Self.actor(claimed: fields["by"], default: "registrar")
            let checked = draft
            return try await write { c in
                var draft = checked
                if let ownerID = draft.ownerID {
                    guard let owner = try OwnerRepository.get(id: ownerID, on: c) else {
                        throw RegistryError(.validation, "no such owner", fields: [FieldError("owner", "no owner with id \(ownerID)")])
                    }
                    if fields["owner_kind"] == nil { draft.ownerKind = owner.kind }
                    if fields["owner_name"] == nil { draft.ownerName = owner.name }
                    if fields["owner_phone"] == nil { draft.ownerPhone = owner.phone }
                }
                return try CameraWrites.register(draft, actor: actor, distinct: distinct, on: c)
            }
        case .cameraVerify(let id, let by, let version):
            let actor = Self.actor(claimed: by, default: by)
            return try await write { try CameraWrites.verify(id: id, expectedVersion: version, actor: actor, on: $0) }
        case .cameraUpdate(let id, let version, let fields):
            if ownerScope() != nil {
                try requireOwnRecord(index.camera(id: id)?.ownerID, what: "camera \(id)")
                for f in ["owner", "status"] where fields[f] != nil {
                    throw ProtocolError(.forbidden, "an owner may not change \(f) with CAMERA UPDATE", field: f)
                }
            }
            let jurisdiction = self.jurisdiction
            return try await write { c in
                var owner: Owner? = nil
                if let o = fields["owner"], let ownerID = Int64(o) {
                    owner = try OwnerRepository.get(id: ownerID, on: c)
                    if owner == nil {
                        throw RegistryError(.validation, "no such owner", fields: [FieldError("owner", "no owner with id \(ownerID)")])
                    }
                }
                return try CameraWrites.update(id: id, expectedVersion: version, actor: Self.actor(claimed: fields["by"], default: "registrar"), on: c) { cam in
                    if let owner {
                        // A new owner brings its contact details unless they are given too.
                        if fields["owner_kind"] == nil { cam.ownerKind = owner.kind }
                        if fields["owner_name"] == nil { cam.ownerName = owner.name }
                        if fields["owner_phone"] == nil { cam.ownerPhone = owner.phone }
                    }
                    var errors = FieldInput.apply(fields, to: &cam)
                    let read = Set(errors.map(\.field))
                    errors += cam.validate().filter { !read.contains($0.field) && !read.contains(FieldInput.optionName($0.field)) }
                    if errors.isEmpty, fields["lat"] != nil || fields["lon"] != nil, let outside = jurisdiction.check(cam) {
                        errors.append(outside)
                    }
                    if !errors.isEmpty { throw RegistryError(.validation, "the update is not valid", fields: errors) }
                }
            }
        case .cameraStatus(let id, let status, let reason, let version, let by):
            if ownerScope() != nil {
                try requireOwnRecord(index.camera(id: id)?.ownerID, what: "camera \(id)")
                guard status == "offline" || status == "retired" else {
                    throw ProtocolError(.forbidden, "an owner may set their camera offline or retired; activating it is a registrar's", field: "status")
                }
            }
            guard let target = CameraStatus(rawValue: status) else {
                throw ProtocolError(.invalidValue, "unknown status \(status)", field: "status")
            }
            return try await write {
                try CameraWrites.setStatus(id: id, to: target, reason: reason, expectedVersion: version, actor: Self.actor(claimed: by, default: "registrar"), on: $0)
            }
        case .incident(let c):
            return try await handleIncident(c)
        case .auth(let token):
            return try await authenticate(token, session: session)
        case .token(let t):
            return try await handleToken(t)
        case .audit(let a):
            return try await handleAudit(a)
        case .coverage(let c): return try await handleCoverage(c)
        case .job(let c): return try await handleJob(c)
        case .importCommit:
            guard let upload = session.upload else { throw ProtocolError(.noUpload, "no upload in progress; send IMPORT BEGIN first") }
            if let streaming = upload.streaming {
                session.upload = nil
                return try await streaming.commit()
            }
            session.upload = nil
            return try await commitImport(upload)
        case .cameraExport(let format, let sectors, let q):
            let (page, more) = listPage(q)
            RequestContext.noteResults(page.count)
            // Owner data only where the privacy rule allows it.
            let shown = page.map { c -> Camera in
                if RequestContext.showsOwnerData(ownerID: c.ownerID) { return c }
                var r = c
                r.address = ""
                r.ownerName = nil
                r.ownerPhone = nil
                r.ownerID = nil
                return r
            }
            var text = ""
            if format == "csv" {
                let csv = CSVExporter()
                if q.after == nil { text += csv.header() }
                for c in shown { text += csv.row(c) }
            } else {
                var geo = GeoJSONExporter()
                if q.after == nil { text += geo.header() } else if !shown.isEmpty { text += ",\n" }
                for c in shown {
                    let ring = sectors ? (try? c.sector().lonLatRing().map { (lat: $0.lat, lon: $0.lon) }) : nil
                    text += geo.feature(c, sector: ring)
                }
                if !more { text += geo.footer() }
            }
            return ok { w in
                w.field("count", shown.count)
                w.field("text", text)
                w.field("next_cursor", more ? shown.last?.id : nil)
            }
        case .cameraList(var q):
            if let own = ownerScope() { q.owner = own }
            let (shown, more) = listPage(q)
            RequestContext.noteResults(shown.count)
            return ok { w in
                w.field("count", shown.count)
                w.key("cameras")
                w.array { a in for c in shown { CameraJSON.full(c, into: &a) } }
                w.field("next_cursor", more ? shown.last?.id : nil)
            }
        }
    }

    func ok(capacity: Int = 256, _ body: (inout JSONWriter) -> Void) -> Reply {
        var w = JSONWriter(capacity: capacity)
        w.object { o in
            o.field("ok", true)
            body(&o)
        }
        return Reply(written: w.finish(), close: false)
    }

    /// The commands the caller may run (all of them, from the same table that dispatches).
    private func help(_ topic: String?, role: Role?) throws -> Reply {
        let specs: [CommandSpec]
        if let topic {
            guard let spec = CommandTable.spec(named: topic), spec.access.allows(role) else {
                throw ProtocolError(.unknownCommand, "no command \(topic) you may run; HELP lists them", field: "command")
            }
            specs = [spec]
        } else {
            specs = CommandTable.all.filter { $0.access.allows(role) }
        }
        return ok { w in
            w.key("commands")
            w.array { a in
                for s in specs {
                    a.object { o in
                        o.field("command", s.name)
                        o.field("synopsis", s.synopsis)
                        o.field("summary", s.summary)
                        o.key("roles")
                        o.array { ra in
                            if let roles = s.access.roles { for r in roles.sorted() { ra.value(r.rawValue) } } else { ra.value("anyone") }
                        }
                        if !s.access.caseRequired.isEmpty {
                            o.key("case_required_for")
                            o.array { ra in for r in s.access.caseRequired.sorted() { ra.value(r.rawValue) } }
                        }
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

    private func stats() -> Reply {
        let c = ServerCounters.sum(counters.values)
        let snapshot = index.snapshot
        return ok { w in
            w.field("cameras", index.count)
            w.field("index_build_ms", (snapshot.buildSeconds * 1000 * 1000).rounded() / 1000)
            w.field("index_built_at", ISO8601Text.format(snapshot.builtAt))
            w.field("index_loaded_from", indexSourceBox.withLockedValue { $0 })
            w.field("delta", index.deltaCount)
            w.field("uptime_s", (Date().timeIntervalSince(startedAt) * 1000).rounded() / 1000)
            w.field("connections", c.connectionsOpen)
            w.field("connections_total", c.connectionsTotal)
            w.field("requests", c.requests)
            w.field("errors", c.errors)
            w.field("rate_limited", c.rateLimited)
            w.field("connections_refused", c.refusedConnections)
            w.field("idle_closed", c.idleClosed)
            w.field("import_waits", c.importWaits)
            w.key("commands")
            w.object { o in
                let byName = Dictionary(c.perCommand.entries.map { ($0.name, $0.value) }, uniquingKeysWith: +)
                for (k, v) in byName.sorted(by: { $0.key < $1.key }) { o.field(k, v) }
            }
            reliability.write(into: &w)
        }
    }
}

/// How cameras are written in responses.
enum CameraJSON {
    /// Every field of a camera.
    /// Every field of a camera; the owner data (address, owner name, phone and id) only when
    /// the ``Privacy`` rule allows it for the request being answered, else null.
    static func full(_ c: Camera, into w: inout JSONWriter) {
        let pii = RequestContext.showsOwnerData(ownerID: c.ownerID)
        w.object { o in
            o.field("id", c.id)
            o.field("lat", c.lat)
            o.field("lon", c.lon)
            o.field("site", c.siteKind.rawValue)
            o.field("address", pii ? c.address : nil)
            o.field("ward", c.ward)
            o.field("heading_deg", c.heading)
            o.field("fov_deg", c.fov)
            o.field("range_m", c.range)
            o.field("mount_height_m", c.mountHeight)
            o.field("owner_kind", c.ownerKind.rawValue)
            o.field("owner_name", pii ? c.ownerName : nil)
            o.field("owner_phone", pii ? c.ownerPhone : nil)
            o.field("schedule", c.schedule.description)
            o.field("retention_days", c.retentionDays)
            o.field("status", c.status.rawValue)
            o.field("owner_id", pii ? c.ownerID.map { Int($0) } : nil)
            o.field("verified_by", c.verifiedBy)
            o.field("verified_at", c.verifiedAt.map(ISO8601Text.format))
            o.field("status_reason", c.statusReason)
            o.field("created_at", ISO8601Text.format(c.createdAt))
            o.field("updated_at", ISO8601Text.format(c.updatedAt))
            o.field("version", c.version)
        }
    }
}
