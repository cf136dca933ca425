import Foundation
import Logging
import Postgres

/// Why an audit entry could not be made durable.
public struct AuditUnavailable: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Appends audit entries with group commit: concurrent requests' entries go to PostgreSQL in
/// one transaction, and each `record` returns only once its entry is durable.
///
/// When PostgreSQL cannot be reached, entries are appended (and fsync'd) to a spool file in the
/// data folder, and `record` returns; the spool is written to the chain, in order, as soon as
/// the database answers again (also at the next start). Without a spool file, `record` throws
/// and the caller refuses the request (fail closed).
public actor AuditLog {
    private let store: PostgresClient
    private let spoolPath: String?
    private let logger: Logger
    private var pending: [(AuditEntry, CheckedContinuation<Void, Error>)] = []
    /// Entries durable in the spool file but not yet in the database, in order.
    private var spooled: [AuditEntry] = []
    private var draining = false
    /// No database attempt before this time after a failure (the spool takes the entries).
    private var retryAt = Date.distantPast
    private var retryDelay: TimeInterval = 0.25
    private var retryScheduled = false

    /// An audit log writing to `store`, spooling to `spoolPath` while the database is down.
    public init(store: PostgresClient, spoolPath: String?, logger: Logger = Logger(label: "camreg.audit")) {
        self.store = store
        self.spoolPath = spoolPath
        self.logger = logger
    }

    /// Entries waiting in the spool (for `STATS`).
    public var spooledCount: Int { spooled.count }

    /// Loads a spool left by an earlier run and writes it to the database (call at start).
    public func recoverSpool() async {
        guard let spoolPath, let data = FileManager.default.contents(atPath: spoolPath), !data.isEmpty else { return }
        let decoder = JSONDecoder()
        var entries: [AuditEntry] = []
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            if let e = try? decoder.decode(AuditEntry.self, from: Data(line)) { entries.append(e) } else {
                logger.error("audit spool: an unreadable line was skipped (torn write at a crash?)")
            }
        }
        spooled = entries + spooled
        logger.notice("audit spool: \(entries.count) entries from an earlier run to be written")
        retryAt = .distantPast
        startDraining()
    }

    /// Appends an entry; returns once it is durable (in PostgreSQL or in the spool file).
    public func record(_ entry: AuditEntry) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            pending.append((entry, c))
            startDraining()
        }
    }

    private func startDraining() {
        guard !draining else { return }
        draining = true
        Task { await self.drain() }
    }

    /// Writes pending entries: to the database (with anything spooled before them, in order),
    /// or — while the database is down, until `retryAt` — straight to the spool file. Never
    /// sleeps: a request's entry is durable as fast as the spool's fsync allows.
    private func drain() async {
        while !pending.isEmpty {
            let batch = pending
            pending = []
            if Date() >= retryAt {
                let entries = spooled + batch.map(\.0)
                do {
                    _ = try await store.withConnection { try AuditRepository.append(entries, on: $0) }
                    if !spooled.isEmpty { logger.notice("audit spool: \(spooled.count) entries written to the database") }
                    spooled = []
                    clearSpool()
                    retryDelay = 0.25
                    batch.forEach { $0.1.resume() }
                    continue
                } catch {
                    logger.warning("audit log: the database cannot take entries; spooling", metadata: ["error": "\(error)"])
                    retryAt = Date().addingTimeInterval(retryDelay * Double.random(in: 0.5...1.5))
                    retryDelay = min(retryDelay * 2, 2)
                }
            }
            // The database is down: make the batch durable in the spool file.
            if spoolPath != nil, appendToSpool(batch.map(\.0)) {
                spooled += batch.map(\.0)
                batch.forEach { $0.1.resume() }
            } else {
                let e = AuditUnavailable(description: "the audit log cannot be written (database down, no spool)")
                batch.forEach { $0.1.resume(throwing: e) }
            }
        }
        draining = false
        scheduleSpoolRetry()
    }

    /// While entries wait in the spool, try the database again at `retryAt`.
    private func scheduleSpoolRetry() {
        guard !spooled.isEmpty, !retryScheduled else { return }
        retryScheduled = true
        let wait = max(0.05, retryAt.timeIntervalSinceNow)
        Task {
            try? await Task.sleep(nanoseconds: UInt64(wait * 1e9))
            await self.retrySpool()
        }
    }

    private func retrySpool() async {
        retryScheduled = false
        guard !spooled.isEmpty, !draining else { return }
        draining = true
        if Date() >= retryAt {
            do {
                let entries = spooled
                _ = try await store.withConnection { try AuditRepository.append(entries, on: $0) }
                logger.notice("audit spool: \(entries.count) entries written to the database")
                spooled.removeFirst(entries.count)
                if spooled.isEmpty { clearSpool() } else { rewriteSpool() }
                retryDelay = 0.25
            } catch {
                retryAt = Date().addingTimeInterval(retryDelay * Double.random(in: 0.5...1.5))
                retryDelay = min(retryDelay * 2, 2)
            }
        }
        draining = false
        if !pending.isEmpty { startDraining() } else { scheduleSpoolRetry() }
    }

    /// The spool file holds exactly `spooled` (after a partial flush).
    private func rewriteSpool() {
        clearSpool()
        _ = appendToSpool(spooled)
    }

    private func appendToSpool(_ entries: [AuditEntry]) -> Bool {
        guard let spoolPath else { return false }
        let encoder = JSONEncoder()
        var bytes = Data()
        for e in entries {
            guard let line = try? encoder.encode(e) else { return false }
            bytes.append(line)
            bytes.append(UInt8(ascii: "\n"))
        }
        let fd = open(spoolPath, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n <= 0 { return false }
                off += n
            }
            return true
        }
        return ok && fsync(fd) == 0
    }

    private func clearSpool() {
        guard let spoolPath else { return }
        if FileManager.default.fileExists(atPath: spoolPath) { unlink(spoolPath) }
    }
}
