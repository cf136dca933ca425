import Foundation
import Logging
import NIOConcurrencyHelpers
import Postgres

/// Whether the daemon can reach PostgreSQL: a pure state machine (in the style of postgres-nio's
/// connection state machines) that takes events and returns the actions to perform. It does no
/// I/O and reads no clock, so every transition is unit-tested without a network.
///
/// - `up`: writes go to the database. A connection error moves to `down`.
/// - `down`: writes fail at once with `unavailable` (nothing is tried, nothing half-done); a
///   probe is scheduled with ``Backoff`` (exponential, jittered).
/// - `reconnecting`: a probe is running; writes still fail at once. Success → `up` (and the
///   pool's stale connections are dropped); failure → `down` with the next, longer delay.
public struct DatabaseHealth: Sendable, Equatable {
    /// The three states, as shown in `STATS` (`database.state`).
    public enum State: String, Sendable, Equatable {
        case up, down, reconnecting
    }

    /// What the caller must do after an event.
    public enum Action: Sendable, Equatable {
        /// Nothing.
        case none
        /// Drop the pool's idle connections, log the outage, and probe after `delay` seconds.
        case markDown(probeAfter: Double)
        /// Start a probe now.
        case probe
        /// Probe again after `delay` seconds.
        case probeAfter(Double)
        /// The database is back: drop stale pooled connections, log the recovery.
        case markUp(downFor: Double)
    }

    /// The current state.
    public private(set) var state: State = .up
    /// Failed probes since the outage began.
    public private(set) var failedProbes = 0
    /// When the outage began (seconds on the caller's clock), while not `up`.
    public private(set) var downSince: Double?
    /// The last connection error's message.
    public private(set) var lastError: String?
    /// How probes are spaced.
    public let backoff: Backoff

    public init(backoff: Backoff = Backoff()) {
        self.backoff = backoff
    }

    /// Whether a write may be tried now.
    public var admitsWrites: Bool { state == .up }

    /// A request failed with a connection error at time `now`; `unit` is a uniform draw in [0, 1).
    public mutating func connectionFailed(_ message: String, now: Double, unit: Double) -> Action {
        lastError = message
        switch state {
        case .up:
            state = .down
            downSince = now
            failedProbes = 0
            return .markDown(probeAfter: backoff.delay(attempt: 0, unit: unit))
        case .down, .reconnecting:
            return .none  // a probe is already planned or running
        }
    }

    /// The planned probe is due.
    public mutating func probeDue() -> Action {
        guard state == .down else { return .none }
        state = .reconnecting
        return .probe
    }

    /// The probe reached the database.
    public mutating func probeSucceeded(now: Double) -> Action {
        guard state == .reconnecting else { return .none }
        let since = downSince ?? now
        state = .up
        downSince = nil
        failedProbes = 0
        return .markUp(downFor: max(0, now - since))
    }

    /// The probe failed; `unit` is a uniform draw in [0, 1).
    public mutating func probeFailed(_ message: String, unit: Double) -> Action {
        guard state == .reconnecting else { return .none }
        lastError = message
        failedProbes += 1
        state = .down
        return .probeAfter(backoff.delay(attempt: failedProbes, unit: unit))
    }
}

/// Runs ``DatabaseHealth`` for a ``PostgresClient``: refuses writes at once while the database
/// is down, probes it with backoff and jitter, logs each change of state, and reports it for
/// `STATS`. Installed with ``PostgresClient/observe(_:)``, so every use of the pool (writes,
/// owner reads, imports, incidents) fails fast with `unavailable` during an outage.
public final class DatabaseMonitor: Sendable {
    private let client: PostgresClient
    private let logger: Logger
    private let machine: NIOLockedValueBox<DatabaseHealth>
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant

    private let probeTimeout: Double

    /// A monitor for `client`; each probe gives up after `probeTimeout` seconds.
    public init(client: PostgresClient, backoff: Backoff = Backoff(), probeTimeout: Double = 5, logger: Logger) {
        self.client = client
        self.probeTimeout = probeTimeout
        self.logger = logger
        self.machine = NIOLockedValueBox(DatabaseHealth(backoff: backoff))
        self.origin = clock.now
    }

    /// Hooks the monitor into the client.
    public func start() {
        client.observe(PostgresClientObserver(
            admit: { [weak self] in
                guard let self else { return nil }
                let h = self.machine.withLockedValue { $0 }
                guard !h.admitsWrites else { return nil }
                return PostgresError(code: .connectionFailed,
                                     message: "the database is \(h.state.rawValue) (\(h.lastError ?? "unreachable")); retrying in the background")
            },
            connectionFailed: { [weak self] error in self?.connectionFailed(error) }))
    }

    private var now: Double {
        let d = clock.now - origin
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// The current state machine (for `STATS`).
    public var health: DatabaseHealth { machine.withLockedValue { $0 } }

    /// Probes the server now (e.g. the change feed lost its connection): a failure counts as a
    /// connection error, so `STATS` and the log show an outage even when no write has failed.
    public func check() {
        guard health.state == .up else { return }
        Task.detached { [weak self] in
            guard let self else { return }
            do {
                try await self.client.probe(timeout: self.probeTimeout)
            } catch let e as PostgresError {
                self.connectionFailed(e)
            } catch {
                self.connectionFailed(PostgresError(code: .connectionFailed, message: "\(error)"))
            }
        }
    }

    func connectionFailed(_ error: PostgresError) {
        let t = now
        let action = machine.withLockedValue { $0.connectionFailed(error.message, now: t, unit: .random(in: 0..<1)) }
        perform(action)
    }

    private func perform(_ action: DatabaseHealth.Action) {
        switch action {
        case .none, .probe:
            break
        case .markDown(let delay):
            client.discardIdleConnections()
            logger.error("database unavailable: writes answer `unavailable` until it is back; searches go on from memory",
                         metadata: ["error": "\(health.lastError ?? "")"])
            scheduleProbe(after: delay)
        case .probeAfter(let delay):
            logger.warning("database still unavailable", metadata: ["retry_in_s": "\(String(format: "%.2f", delay))",
                                                                     "attempts": "\(health.failedProbes)"])
            scheduleProbe(after: delay)
        case .markUp(let downFor):
            client.discardIdleConnections()
            logger.notice("database available again", metadata: ["down_s": "\(String(format: "%.1f", downFor))"])
        }
    }

    private func scheduleProbe(after delay: Double) {
        Task.detached { [weak self] in
            try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            guard let self else { return }
            guard self.machine.withLockedValue({ $0.probeDue() }) == .probe else { return }
            do {
                try await self.client.probe(timeout: self.probeTimeout)
                let t = self.now
                self.perform(self.machine.withLockedValue { $0.probeSucceeded(now: t) })
            } catch {
                let message = (error as? PostgresError)?.message ?? "\(error)"
                self.perform(self.machine.withLockedValue { $0.probeFailed(message, unit: .random(in: 0..<1)) })
            }
        }
    }
}
