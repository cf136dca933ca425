import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Async access to PostgreSQL for code running on event loops or in tasks: a small pool of
/// ``PostgresConnection``s whose blocking calls all run on a `NIOThreadPool`.
///
/// Connections are opened lazily up to `maximumConnections`; a connection that reports a
/// connection error is dropped and replaced on next use.
public final class PostgresClient: Sendable {
    /// How to connect.
    public let configuration: PostgresConfiguration
    private let threadPool: NIOThreadPool
    private let ownsThreadPool: Bool
    private let maximumConnections: Int
    private let state = NIOLockedValueBox(State())
    private let observer = NIOLockedValueBox<PostgresClientObserver?>(nil)
    private let responseTimeout = NIOLockedValueBox<Double?>(nil)

    private struct State {
        var idle: [PostgresConnection] = []
        var open = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        var shutDown = false
    }

    /// Creates a client; with no thread pool given, it starts and owns one of `maximumConnections` threads.
    public init(configuration: PostgresConfiguration, maximumConnections: Int = 4, threadPool: NIOThreadPool? = nil) {
        self.configuration = configuration
        self.maximumConnections = max(1, maximumConnections)
        if let threadPool {
            self.threadPool = threadPool
            self.ownsThreadPool = false
        } else {
            let pool = NIOThreadPool(numberOfThreads: max(1, maximumConnections))
            pool.start()
            self.threadPool = pool
            self.ownsThreadPool = true
        }
    }

    /// Runs `body` with a connection of the pool, on the thread pool, or with `ownThread` on a
    /// thread of its own: for a call that may wait on something other than PostgreSQL for long
    /// (a streaming import waits for its client's upload), so that it never holds one of the
    /// pool's few threads. Connection errors make the connection be discarded.
    public func withConnection<T: Sendable>(ownThread: Bool = false,
                                            _ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let observer = self.observer.withLockedValue { $0 }
        if let refusal = observer?.admit() { throw refusal }
        let connection: PostgresConnection
        do {
            connection = try await checkout()
        } catch let error as PostgresError {
            if error.isConnectionError { observer?.connectionFailed(error) }
            throw error
        }
        do {
            let value: T
            if let limit = responseTimeout.withLockedValue({ $0 }) {
                value = try await runWatched(connection, limit: limit, ownThread: ownThread, body)
            } else {
                value = try await run(connection, ownThread: ownThread, body)
            }
            checkin(connection, healthy: true)
            return value
        } catch let abandoned as AbandonedCall {
            // The call goes on on its thread; its connection is dropped when it ends.
            observer?.connectionFailed(abandoned.error)
            throw abandoned.error
        } catch let error as PostgresError {
            checkin(connection, healthy: !error.isConnectionError && connection.isHealthy)
            if error.isConnectionError { observer?.connectionFailed(error) }
            throw error
        } catch {
            checkin(connection, healthy: connection.isHealthy)
            throw error
        }
    }

    /// Installs the observer (a health monitor): it may refuse work at once while the database
    /// is known to be down, and hears of every connection error.
    public func observe(_ observer: PostgresClientObserver) {
        self.observer.withLockedValue { $0 = observer }
    }

    /// Closes the idle connections (after an outage they are all broken; new ones are opened
    /// on demand).
    public func discardIdleConnections() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLockedValue { s in
            s.open -= s.idle.count
            s.idle = []
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume() }
    }

    /// Opens a fresh connection outside the pool and runs `SELECT 1` on it, on a thread of its
    /// own (so that pool threads stuck on a frozen server cannot hold it up): whether the server
    /// answers now. Gives up after `timeout` seconds. Not subject to the observer's refusal.
    public func probe(timeout: Double = 10) async throws {
        let configuration = self.configuration
        let outcome: Result<Void, Error>? = await Self.onOwnThread(timeout: timeout) {
            let c = try PostgresConnection(configuration: configuration)
            try c.query("SELECT 1")
        }
        switch outcome {
        case .success: return
        case .failure(let error): throw error
        case nil: throw PostgresError(code: .connectionFailed, message: "PostgreSQL did not answer a new connection within \(timeout) s")
        }
    }

    /// Bounds how long a call may go without an answer while the server is unresponsive. When
    /// a call has run `seconds / 2` the client checks, on a thread of its own, that the server
    /// still accepts a connection and answers within the other half; if it does, the call goes
    /// on (a big import may take long); if not, the call fails at once with
    /// ``PostgresError/Code/connectionBroken`` (its outcome unknown: the server might still
    /// commit it when it wakes) and its connection is dropped when the blocked call returns.
    /// `nil` (the default) waits for as long as libpq does.
    public func setResponseTimeout(_ seconds: Double?) {
        responseTimeout.withLockedValue { $0 = seconds.map { max(0.2, $0) } }
    }

    /// `body(connection)` on the thread pool, or on a thread of its own.
    private func run<T: Sendable>(_ connection: PostgresConnection, ownThread: Bool,
                                  _ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        guard ownThread else { return try await threadPool.runIfActive { try body(connection) } }
        return try await runOnNewThread(name: "camreg-db-long") { try body(connection) }
    }

    private func runWatched<T: Sendable>(_ connection: PostgresConnection, limit: Double, ownThread: Bool,
                                         _ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let job = Task { try await self.run(connection, ownThread: ownThread, body) }
        while true {
            let done: Bool = await Self.first(timeout: limit / 2) { _ = await job.result; return true } ?? false
            if done { return try await job.value }
            if (try? await probe(timeout: limit / 2)) != nil { continue }  // alive, just slow
            Task { [self] in
                _ = await job.result
                self.checkin(connection, healthy: false)
            }
            throw AbandonedCall(error: PostgresError(
                code: .connectionBroken,
                message: "PostgreSQL did not answer within \(limit) s and does not accept connections; the outcome of this request is unknown"))
        }
    }

    /// The result of `body` if it finishes within `timeout` seconds, else `nil` (`body` goes on).
    static func first<R: Sendable>(timeout: Double, _ body: @escaping @Sendable () async -> R) async -> R? {
        await withCheckedContinuation { (c: CheckedContinuation<R?, Never>) in
            let once = NIOLockedValueBox(false)
            let resume: @Sendable (R?) -> Void = { value in
                if once.withLockedValue({ done in defer { done = true }; return !done }) { c.resume(returning: value) }
            }
            let sleeper = Task {
                try? await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                resume(nil)
            }
            Task {
                resume(await body())
                sleeper.cancel()  // no timer left behind for every quick call
            }
        }
    }

    /// Runs blocking `body` on a new thread; its result, or `nil` if it takes over `timeout` s.
    static func onOwnThread(timeout: Double, _ body: @escaping @Sendable () throws -> Void) async -> Result<Void, Error>? {
        await first(timeout: timeout) {
            do { return .success(try await runOnNewThread(name: "camreg-db-probe", body)) } catch { return .failure(error) }
        }
    }

    /// Runs `body` in a transaction on one connection.
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await withConnection { try $0.transaction(body) }
    }

    private func checkout() async throws -> PostgresConnection {
        while true {
            enum Step { case use(PostgresConnection), open, wait }
            let step: Step = state.withLockedValue { s in
                if let c = s.idle.popLast() { return .use(c) }
                if s.open < maximumConnections { s.open += 1; return .open }
                return .wait
            }
            switch step {
            case .use(let c):
                return c
            case .open:
                do {
                    let configuration = self.configuration
                    return try await threadPool.runIfActive { try PostgresConnection(configuration: configuration) }
                } catch {
                    release()
                    throw error
                }
            case .wait:
                await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
                    let resumeNow: Bool = state.withLockedValue { s in
                        if !s.idle.isEmpty || s.open < maximumConnections { return true }
                        s.waiters.append(cont)
                        return false
                    }
                    if resumeNow { cont.resume() }
                }
            }
        }
    }

    private func checkin(_ connection: PostgresConnection, healthy: Bool) {
        let waiter: CheckedContinuation<Void, Never>? = state.withLockedValue { s in
            if healthy && !s.shutDown { s.idle.append(connection) } else { s.open -= 1 }
            return s.waiters.isEmpty ? nil : s.waiters.removeFirst()
        }
        waiter?.resume()
    }

    private func release() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLockedValue { s in
            s.open -= 1
            return s.waiters.isEmpty ? nil : s.waiters.removeFirst()
        }
        waiter?.resume()
    }

    /// Closes idle connections and, if it owns it, stops the thread pool.
    public func shutdown() async {
        let idle: [PostgresConnection] = state.withLockedValue { s in
            s.shutDown = true
            defer { s.idle = [] }
            return s.idle
        }
        _ = idle
        if ownsThreadPool { try? await threadPool.shutdownGracefully() }
    }
}

/// What a ``PostgresClient`` asks before each use and reports after a connection error; set with
/// ``PostgresClient/observe(_:)``.
public struct PostgresClientObserver: Sendable {
    /// Called before each `withConnection`: an error to throw at once instead of trying (the
    /// database is known to be down), or `nil` to go ahead.
    public var admit: @Sendable () -> PostgresError?
    /// Called with every connection error (failed connect, broken connection).
    public var connectionFailed: @Sendable (PostgresError) -> Void

    public init(admit: @escaping @Sendable () -> PostgresError?, connectionFailed: @escaping @Sendable (PostgresError) -> Void) {
        self.admit = admit
        self.connectionFailed = connectionFailed
    }
}

/// A call given up by ``PostgresClient/setResponseTimeout(_:)``'s watchdog.
struct AbandonedCall: Error {
    let error: PostgresError
}
