import Foundation
import Logging
import NIOConcurrencyHelpers
import Postgres
import Registry

/// Keeps a daemon's in-memory index and consent cache current with changes committed by other
/// daemons on the same database (or replicated to the replica it reads from).
///
/// Every change to a camera has a row in `camera_changes` and every owner change a
/// `owners.change_seq`, numbered from one sequence in commit order (migration 0005). The feed
/// remembers the last number it applied and asks for everything after it:
///
/// - on a primary it `LISTEN`s on `camreg_changes` (the triggers `NOTIFY` at commit) and catches
///   up on each notification, and at least every `pollInterval` seconds as a safety net;
/// - on a hot standby (where `LISTEN` is not allowed) it polls every `pollInterval` seconds;
/// - after losing its connection it reconnects with ``Backoff`` and catches up from the last
///   applied number, so no change is missed; applying one twice is harmless (the index keeps the
///   higher version of a camera).
///
/// It runs on a thread of its own (libpq blocks; never on an event loop) with its own connection.
public final class ChangeFeed: Sendable {
    /// What the feed is doing, for `STATS`.
    public struct Status: Sendable {
        /// `listen` on a primary, `poll` on a standby; `starting` before the first connection.
        public var mode = "starting"
        /// Whether the feed's connection is up.
        public var connected = false
        /// The last change number applied to the index.
        public var appliedSeq: Int64 = 0
        /// The highest change number in the database at the last catch-up.
        public var databaseSeq: Int64 = 0
        /// Cameras and owners applied since start.
        public var applied = 0
        /// Connections lost since start.
        public var reconnects = 0
        /// The feed connection's server process id (to find it in `pg_stat_activity`).
        public var backendPID: Int32?
        /// The last error, if the connection was lost.
        public var lastError: String?
        /// When the last catch-up finished.
        public var lastCatchUp: Date?
        /// Changes known to the database but not yet applied.
        public var lag: Int64 { max(0, databaseSeq - appliedSeq) }
    }

    private let configuration: PostgresConfiguration
    private let index: CameraIndex
    private let applyConsents: @Sendable ([Int64: Consent]) -> Void
    private let incidentsHandler = NIOLockedValueBox<(@Sendable ([Incident]) -> Void)?>(nil)
    private let backoff: Backoff
    private let pollInterval: Double
    private let rebuildThreshold: Int
    private let logger: Logger
    private let state: NIOLockedValueBox<Status>
    private let lost = NIOLockedValueBox<(@Sendable (String) -> Void)?>(nil)

    /// Calls `handler` (on the feed's thread) with the incidents recorded by other daemons
    /// (and its own: adding one twice is harmless). Without a handler incidents are skipped.
    public func onIncidents(_ handler: @escaping @Sendable ([Incident]) -> Void) {
        incidentsHandler.withLockedValue { $0 = handler }
    }

    /// Calls `handler` (on the feed's thread) each time the feed loses its connection, e.g. so
    /// that the database monitor checks the server without waiting for a write to fail.
    public func onConnectionLost(_ handler: @escaping @Sendable (String) -> Void) {
        lost.withLockedValue { $0 = handler }
    }
    private let stopped = NIOLockedValueBox(false)
    private let finished = NIOLockedValueBox(false)
    /// Change numbers of this daemon's own writes that it applies to its index itself (see
    /// ``skipOwn(_:)``), dropped once the feed has passed them.
    private let own = NIOLockedValueBox<[ClosedRange<Int64>]>([])

    /// Tells the feed that the camera changes numbered `seqs` are this daemon's own and reach
    /// its index without the feed (a big import publishes its own snapshot), so that catching
    /// up does not read their cameras back: a million-camera import would otherwise be read
    /// back whole, a few seconds of both servers' time. Call it before the transaction that
    /// wrote them commits (the feed may catch up as soon as it has); a range that never commits
    /// is harmless (its numbers are never used again).
    public func skipOwn(_ seqs: ClosedRange<Int64>) {
        own.withLockedValue { $0.append(seqs) }
    }

    /// Rows asked for per round trip while catching up.
    static let batch = 5000

    /// A feed applying changes after `appliedSeq` (read with ``currentSequence(on:)`` before the
    /// index and the consents were loaded) to `index` and, through `applyConsents`, to the
    /// consent cache.
    public init(configuration: PostgresConfiguration, index: CameraIndex, appliedSeq: Int64,
                applyConsents: @escaping @Sendable ([Int64: Consent]) -> Void,
                backoff: Backoff = Backoff(), pollInterval: Double = 1, rebuildThreshold: Int = 512,
                logger: Logger = Logger(label: "camreg.feed")) {
        self.configuration = configuration.with("application_name", "camregd-feed")
        self.index = index
        self.applyConsents = applyConsents
        self.backoff = backoff
        self.pollInterval = pollInterval
        self.rebuildThreshold = rebuildThreshold
        self.logger = logger
        var s = Status()
        s.appliedSeq = appliedSeq
        s.databaseSeq = appliedSeq
        self.state = NIOLockedValueBox(s)
    }

    /// The highest change number committed (cameras and owners): read it before loading the
    /// index, and start the feed from it.
    public static func currentSequence(on c: PostgresConnection) throws -> Int64 {
        Int64(try c.query("""
            SELECT greatest((SELECT coalesce(max(seq), 0) FROM camera_changes),
                            (SELECT coalesce(max(change_seq), 0) FROM owners),
                            (SELECT coalesce(max(change_seq), 0) FROM incidents))
            """).scalar() ?? "0") ?? 0
    }

    /// The current status.
    public var status: Status { state.withLockedValue { $0 } }

    /// Starts the feed's thread.
    public func start() {
        let thread = Thread { [self] in
            self.run()
            self.finished.withLockedValue { $0 = true }
        }
        thread.name = "camreg-change-feed"
        thread.start()
    }

    /// Asks the thread to stop and waits (up to `timeout` seconds) until it has.
    public func stop(timeout: Double = 3) async {
        stopped.withLockedValue { $0 = true }
        let deadline = Date().addingTimeInterval(timeout)
        while !finished.withLockedValue({ $0 }) && Date() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private var isStopped: Bool { stopped.withLockedValue { $0 } }

    private func run() {
        var attempt = 0
        while !isStopped {
            do {
                let c = try PostgresConnection(configuration: configuration)
                let standby = try c.query("SELECT pg_is_in_recovery()").scalar() == "t"
                if !standby { try c.query("LISTEN camreg_changes") }
                let pid = c.backendPID
                let wasReconnect = state.withLockedValue { s -> Bool in
                    s.mode = standby ? "poll" : "listen"
                    s.connected = true
                    s.backendPID = pid
                    return s.reconnects > 0
                }
                let from = status.appliedSeq
                try catchUp(on: c)
                attempt = 0
                if wasReconnect {
                    logger.notice("change feed reconnected and caught up",
                                  metadata: ["from_seq": "\(from)", "to_seq": "\(status.appliedSeq)"])
                } else {
                    logger.info("change feed started", metadata: ["mode": "\(standby ? "poll" : "listen")", "seq": "\(status.appliedSeq)"])
                }
                var last = Date()
                while !isStopped {
                    let notified: Bool
                    if standby {
                        Thread.sleep(forTimeInterval: min(0.25, pollInterval))
                        notified = false
                    } else {
                        notified = !(try c.waitForNotifications(timeout: min(0.25, pollInterval))).isEmpty
                    }
                    if notified || Date().timeIntervalSince(last) >= (standby ? min(0.25, pollInterval) : pollInterval) {
                        try catchUp(on: c)
                        last = Date()
                    }
                }
            } catch {
                let message = (error as? PostgresError)?.message ?? "\(error)"
                state.withLockedValue { s in
                    if s.connected { s.reconnects += 1 }
                    s.connected = false
                    s.backendPID = nil
                    s.lastError = message
                }
                let delay = backoff.delay(attempt: attempt)
                if attempt == 0 {
                    logger.warning("change feed lost its connection; reconnecting",
                                   metadata: ["error": "\(message)", "applied_seq": "\(status.appliedSeq)"])
                    lost.withLockedValue { $0 }?(message)
                }
                attempt += 1
                let until = Date().addingTimeInterval(delay)
                while !isStopped && Date() < until { Thread.sleep(forTimeInterval: min(0.05, delay)) }
            }
        }
    }

    /// Applies every change after the last applied number, in batches, each read in one
    /// repeatable-read snapshot (the change numbers and the rows they point to agree).
    func catchUp(on c: PostgresConnection) throws {
        while true {
            let after = status.appliedSeq
            try c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            let top: Int64
            let full: Bool
            var cameras: [Camera] = []
            var consents: [Int64: Consent] = [:]
            var incidents: [Incident] = []
            do {
                let database = try Self.currentSequence(on: c)
                // A batch ends after about `batch` camera changes: a row names one camera, or an
                // import block up to 4,096 (migration 0008).
                let changes = try c.query("SELECT seq, coalesce(cardinality(camera_ids), 1) FROM camera_changes WHERE seq > $1 ORDER BY seq LIMIT \(Self.batch)",
                                          [String(after)]).rows
                let skipped = own.withLockedValue { $0 }
                var last = after
                var named = 0
                for r in changes {
                    last = Int64(r[0] ?? "") ?? last
                    if skipped.contains(where: { $0.contains(last) }) { continue }
                    named += Int(r[1] ?? "") ?? 1
                    if named >= Self.batch { break }
                }
                full = named >= Self.batch || changes.count == Self.batch
                top = full ? last : max(after, database)
                if named > 0 {
                    // This daemon's own changes in the batch are left out (numbers, not text).
                    let notOwn = skipped.filter { $0.upperBound > after && $0.lowerBound <= last }
                        .map { " AND seq NOT BETWEEN \($0.lowerBound) AND \($0.upperBound)" }.joined()
                    cameras = try c.query("""
                        SELECT \(CameraRepository.selectList) FROM cameras WHERE id IN (\(Self.changedIDs(after: "$1")) AND seq <= $2\(notOwn))
                        """, [String(after), String(last)]).rows.map(CameraRepository.decode)
                }
                for r in try c.query("SELECT \(OwnerRepository.selectList) FROM owners WHERE change_seq > $1 AND change_seq <= $2",
                                     [String(after), String(top)]).rows {
                    let o = OwnerRepository.decode(r)
                    if let id = o.id { consents[id] = o.consent }
                }
                if incidentsHandler.withLockedValue({ $0 }) != nil {
                    incidents = try c.query("SELECT \(IncidentRepository.selectList) FROM incidents i WHERE change_seq > $1 AND change_seq <= $2 ORDER BY id",
                                            [String(after), String(top)]).rows.map { try IncidentRepository.decode($0) }
                }
                try c.query("COMMIT")
                state.withLockedValue { $0.databaseSeq = max($0.databaseSeq, database) }
            } catch {
                if c.isHealthy { _ = try? c.query("ROLLBACK") }
                throw error
            }
            for camera in cameras { index.upsert(camera) }
            if !consents.isEmpty { applyConsents(consents) }
            if !incidents.isEmpty { incidentsHandler.withLockedValue { $0 }?(incidents) }
            state.withLockedValue { s in
                s.appliedSeq = max(s.appliedSeq, top)
                s.applied += cameras.count + consents.count + incidents.count
                s.lastCatchUp = Date()
            }
            own.withLockedValue { $0.removeAll { $0.upperBound <= top } }
            if !cameras.isEmpty, index.deltaCount >= rebuildThreshold {
                do { try index.rebuildIfNeeded(threshold: rebuildThreshold) } catch {
                    logger.error("index rebuild failed", metadata: ["error": "\(error)"])
                }
            }
            if !full { return }
        }
    }

    /// The ids of the cameras changed after change `after` (a parameter such as `$1`, or a
    /// number), as a subquery to which conditions can be added with `AND`: each row names its
    /// `camera_id`, or an import block its `camera_ids` (migration 0008).
    static func changedIDs(after: String) -> String {
        "SELECT unnest(coalesce(camera_ids, ARRAY[camera_id])) FROM camera_changes WHERE seq > \(after)"
    }
}
