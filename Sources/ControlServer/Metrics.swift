import Atomics
import ControlProtocol
import Foundation
import Metrics
import NIOConcurrencyHelpers
import Registry
import RegistryStore

/// Values kept per command at the command's number (``ControlProtocol/CommandSpec/index``): an
/// array element, so that a request hashes no name; each command's name is kept beside its value
/// for reading (`STATS`). The request counts and the latency rings are kept so.
struct PerCommand<Value: Sendable>: Sendable {
    /// `nil`: no request of that command yet.
    private var values: [Value?] = []
    private var names: [String] = []

    /// Calls `body` with the value of the command numbered `index`, named `name`, made by
    /// `initial` on its first use.
    @inline(__always)
    mutating func with<R>(index: Int, name: String, initial: @autoclosure () -> Value, _ body: (inout Value) -> R) -> R {
        if index >= values.count {
            values.append(contentsOf: repeatElement(nil, count: index + 1 - values.count))
            names.append(contentsOf: repeatElement("", count: index + 1 - names.count))
        }
        if values[index] == nil {
            values[index] = initial()
            names[index] = name
        }
        return body(&values[index]!)
    }

    /// Every command seen: its number, name and value.
    var entries: [(index: Int, name: String, value: Value)] {
        values.indices.compactMap { i in values[i].map { (i, names[i], $0) } }
    }
}

/// Request latencies per command: the last ``window`` samples of each command on each thread
/// stripe (``Striped``), kept in rings, summarised together as percentiles in `STATS`
/// (`latency_ms`). Cheap to record (the thread's own lock, one store).
public final class RequestMetrics: Sendable {
    /// Samples kept per command.
    public static let window = 2048

    struct Ring {
        var samples: [Double] = []
        var next = 0
        var count = 0
        var total = 0
        mutating func add(_ v: Double) {
            if samples.count < RequestMetrics.window { samples.append(v) } else { samples[next] = v }
            next = (next + 1) % RequestMetrics.window
            total += 1
        }
    }

    /// Per thread stripe: every request records into its own thread's rings, so that the
    /// event loops do not queue for one lock (``summaries()`` merges them). A command's ring is
    /// at its number (``ControlProtocol/CommandSpec/index``): an array element, no name hashed.
    private let rings = Striped { PerCommand<Ring>() }
    private let exporting = ManagedAtomic(false)

    public init() {}

    /// Also reports each request to swift-metrics (`camreg_requests_total` and
    /// `camreg_request_duration_seconds`, by `command`), for the Prometheus endpoint. Off unless
    /// called: without an endpoint nothing is spent on it.
    public func exportToSwiftMetrics() {
        exporting.store(true, ordering: .releasing)
    }

    /// Records one request of the command numbered `index` (a small number, one per command:
    /// ``ControlProtocol/CommandSpec/index``), named `command`, that took `seconds`.
    public func record(index: Int, _ command: String, seconds: Double) {
        rings.withLocalValue { $0.with(index: index, name: command, initial: Ring()) { $0.add(seconds * 1000) } }
        if exporting.load(ordering: .acquiring) {
            let dimensions = [("command", command)]
            Counter(label: "camreg_requests_total", dimensions: dimensions).increment()
            Metrics.Timer(label: "camreg_request_duration_seconds", dimensions: dimensions)
                .recordNanoseconds(Int64(seconds * 1e9))
        }
    }

    /// Percentile summary of one command: count, p50, p90, p99, max in milliseconds.
    public struct Summary: Sendable, Equatable {
        public var count: Int
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var max: Double

        public init(count: Int, p50: Double, p90: Double, p99: Double, max: Double) {
            self.count = count
            self.p50 = p50
            self.p90 = p90
            self.p99 = p99
            self.max = max
        }
    }

    /// The summary of every command seen, by name.
    public func summaries() -> [String: Summary] {
        // The stripes' recent samples of a command taken together (each stripe keeps its last
        // `window`), and their totals added up.
        var merged: [String: (samples: [Double], total: Int)] = [:]
        for stripe in rings.values {
            for e in stripe.entries {
                merged[e.name, default: ([], 0)].samples += e.value.samples
                merged[e.name, default: ([], 0)].total += e.value.total
            }
        }
        return merged.mapValues { r in
            let sorted = r.samples.sorted()
            return Summary(count: r.total, p50: Self.percentile(sorted, 0.50), p90: Self.percentile(sorted, 0.90),
                           p99: Self.percentile(sorted, 0.99), max: sorted.last ?? 0)
        }
    }

    /// The nearest-rank percentile of sorted values (0 for none).
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }
}

/// The reliability part of `STATS`: database state, change feed (replication lag), latencies.
/// Filled in by `camregd` (which owns the monitor and the feed); tests may leave it empty.
public final class ReliabilityStats: Sendable {
    /// Request latencies per command.
    public let metrics = RequestMetrics()
    private let sourcesBox = NIOLockedValueBox<(monitor: DatabaseMonitor?, feed: ChangeFeed?, readOnly: Bool)>((nil, nil, false))

    public init() {}

    /// Tells `STATS` where to read the database state and the feed's position.
    public func attach(monitor: DatabaseMonitor?, feed: ChangeFeed?, readOnly: Bool) {
        sourcesBox.withLockedValue { $0 = (monitor, feed, readOnly) }
    }

    /// What was attached.
    var sources: (monitor: DatabaseMonitor?, feed: ChangeFeed?, readOnly: Bool) { sourcesBox.withLockedValue { $0 } }

    func write(into w: inout JSONWriter) {
        let s = sources
        w.field("read_only", s.readOnly)
        w.key("database")
        w.object { o in
            if let h = s.monitor?.health {
                o.field("state", h.state.rawValue)
                o.field("failed_probes", h.failedProbes)
                o.field("last_error", h.lastError)
            } else {
                o.field("state", s.readOnly ? "read_only" : "none")
            }
        }
        w.key("feed")
        w.object { o in
            if let f = s.feed?.status {
                o.field("mode", f.mode)
                o.field("connected", f.connected)
                o.field("applied_seq", Int(f.appliedSeq))
                o.field("database_seq", Int(f.databaseSeq))
                o.field("lag", Int(f.lag))
                o.field("applied", f.applied)
                o.field("reconnects", f.reconnects)
                o.field("backend_pid", f.backendPID.map { Int($0) })
                o.field("last_catch_up", f.lastCatchUp.map(ISO8601Text.format))
                o.field("last_error", f.lastError)
            } else {
                o.field("mode", "off")
            }
        }
        w.key("latency_ms")
        w.object { o in
            for (name, m) in metrics.summaries().sorted(by: { $0.key < $1.key }) {
                o.key(name)
                o.object { l in
                    l.field("count", m.count)
                    for (k, v) in [("p50", m.p50), ("p90", m.p90), ("p99", m.p99), ("max", m.max)] {
                        l.key(k)
                        l.value(v, decimals: 3)
                    }
                }
            }
        }
    }
}
