import ControlProtocol
import Foundation
import NIOConcurrencyHelpers
import Registry
import Synchronization

/// Who is on a connection: a token's identity, the daemon's own OS user (peer credentials), or
/// nobody yet.
public struct Identity: Sendable, Equatable {
    /// As written to the audit log: `token:<id>`, `peer:uid=<uid>`, or `anonymous`.
    public var name: String
    /// A person-readable label (the token's name).
    public var label: String
    /// The role; nil before `AUTH`.
    public var role: Role?
    /// The token, for tokens.
    public var tokenID: Int64?
    /// The owner record an owner is bound to.
    public var ownerID: Int64?

    public init(name: String, label: String, role: Role?, tokenID: Int64? = nil, ownerID: Int64? = nil) {
        self.name = name
        self.label = label
        self.role = role
        self.tokenID = tokenID
        self.ownerID = ownerID
    }

    /// Not authenticated.
    public static let anonymous = Identity(name: "anonymous", label: "anonymous", role: nil)
}

/// The privacy rule, in one place: who may read owner data (owner name, phone, email, the exact
/// address, the owner record). Registrars and admins may; investigators may (their commands
/// carry a case, enforced by the command table); an owner only for their own cameras;
/// analysts and unauthenticated callers never.
public enum Privacy {
    /// Whether `identity` may read the owner data of a record owned by `ownerID`.
    public static func mayReadOwnerData(_ identity: Identity, ownerID: Int64?) -> Bool {
        switch identity.role {
        case .admin?, .registrar?, .investigator?: return true
        case .owner?: return ownerID != nil && ownerID == identity.ownerID
        case .analyst?, nil: return false
        }
    }
}

/// The request being answered: its identity, and what the answer disclosed (for the audit
/// log). Handlers reach it through ``RequestContext/current``; without one, nothing is
/// disclosed.
public final class RequestContext: Sendable {
    /// The request of a handler that waits (a task), and of the tasks it starts.
    @TaskLocal static var task: RequestContext?

    /// The request being answered: the one a handler answers synchronously on this thread
    /// (``withSynchronous(_:_:)``), else the task's.
    static var current: RequestContext? {
        if let p = pthread_getspecific(threadKey) { return Unmanaged<RequestContext>.fromOpaque(p).takeUnretainedValue() }
        return task
    }

    /// Runs `body`, a handler that answers without waiting, with `context` as ``current`` on
    /// this thread: a thread-specific pointer set and put back, where binding the task local cost
    /// a request some 850 instructions (its push, its pop, and a lookup for each read). A task the
    /// handler starts does not see it (`IMPORT BEGIN`'s import task is given what it needs, the
    /// actor, as an argument). The context outlives the call (it is held here).
    static func withSynchronous<R>(_ context: RequestContext, _ body: () -> R) -> R {
        let previous = pthread_getspecific(threadKey)
        _ = pthread_setspecific(threadKey, Unmanaged.passUnretained(context).toOpaque())
        defer { _ = pthread_setspecific(threadKey, previous) }
        return withExtendedLifetime(context) { body() }
    }

    private static let threadKey: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key, nil)
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return key
    }()

    let identity: Identity
    /// Two atomics in the object itself, not a locked box beside it: one allocation a request.
    private let disclosedCount = Atomic<Int>(0)
    /// The answer's record count; -1 until a handler notes one.
    private let results = Atomic<Int>(-1)

    init(identity: Identity) {
        self.identity = identity
    }

    /// Whether the answer may show the owner data of a record owned by `ownerID`; counts each
    /// disclosure.
    static func showsOwnerData(ownerID: Int64?) -> Bool {
        guard let ctx = current, ctx.mayShowOwnerData(ownerID: ownerID) else { return false }
        ctx.noteDisclosed(1)
        return true
    }

    /// Whether the answer may show the owner data of a record owned by `ownerID`, without
    /// counting it: an answer of many records asks this for each and counts those it keeps
    /// once (``noteDisclosed(_:)``), one task-local lookup and one lock per answer.
    func mayShowOwnerData(ownerID: Int64?) -> Bool {
        Privacy.mayReadOwnerData(identity, ownerID: ownerID)
    }

    /// Counts `n` records whose owner data the answer showed.
    func noteDisclosed(_ n: Int) {
        guard n > 0 else { return }
        disclosedCount.add(n, ordering: .relaxed)
    }

    /// Records how many records the answer holds (for the audit log).
    static func noteResults(_ n: Int) {
        current?.results.store(n, ordering: .relaxed)
    }

    var disclosed: Int { disclosedCount.load(ordering: .relaxed) }
    var resultCount: Int? {
        let n = results.load(ordering: .relaxed)
        return n < 0 ? nil : n
    }
}

/// A token bucket per identity: `rate` requests per second, bursts up to `burst`.
public struct RateLimit: Sendable, Equatable {
    /// Requests per second (0 disables the limit).
    public var rate: Double
    /// Largest burst.
    public var burst: Double
    public init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
    }
    /// 50 requests per second, bursts of 200.
    public static let standard = RateLimit(rate: 50, burst: 200)
}

/// Token buckets by identity name. Pure arithmetic under a lock; bounded by the number of
/// identities (tokens), each entry a few bytes.
final class RateLimiter: Sendable {
    private let limit: RateLimit
    private let buckets = NIOLockedValueBox([String: (tokens: Double, at: Double)]())

    init(_ limit: RateLimit) { self.limit = limit }

    /// Whether requests are limited at all (when not, the caller need not make a key).
    var isEnabled: Bool { limit.rate > 0 }

    /// Takes one request from `key`'s bucket; returns nil if allowed, else the seconds to wait.
    func take(_ key: String, now: Double = ProcessInfo.processInfo.systemUptime) -> Double? {
        guard limit.rate > 0 else { return nil }
        return buckets.withLockedValue { b in
            var entry = b[key] ?? (limit.burst, now)
            entry.tokens = min(limit.burst, entry.tokens + (now - entry.at) * limit.rate)
            entry.at = now
            defer { b[key] = entry }
            if entry.tokens >= 1 {
                entry.tokens -= 1
                return nil
            }
            return (1 - entry.tokens) / limit.rate
        }
    }
}

/// Access-control settings of a daemon.
public struct AccessSettings: Sendable {
    /// Map a Unix-socket peer running as the daemon's own OS user to `admin` (default on).
    public var peerAdmin: Bool = true
    /// Per-identity request rate (tokens and anonymous peers; the peer-mapped admin is exempt).
    public var rateLimit: RateLimit = .standard
    /// Where audit entries wait while the database is down (nil: fail closed).
    public var auditSpoolPath: String?
    /// Refuse to disclose owner data when there is no audit log at all (camregd sets it; a
    /// read-only daemon without `audit_database_url` then serves searches without owner data
    /// only). Off for database-less test servers.
    public var auditRequired: Bool = false
    public init() {}
}

extension Request {
    /// The request line with secrets removed, for the audit log (the token of `AUTH`, long
    /// uploads), capped at 2,000 characters.
    static func redacted(_ line: [UInt8], command: Command?) -> String {
        var text = String(decoding: line.prefix(4096), as: UTF8.self)
        if case .auth? = command { text = "AUTH ***" }
        if case .importData? = command { text = "IMPORT DATA (chunk)" }
        if case .incident(let c)? = command, case .importData = c { text = "INCIDENT IMPORT DATA (chunk)" }
        if text.count > 2000 { text = String(text.prefix(2000)) + "…" }
        return text
    }
}
