import ControlServer
import Postgres
import RegistryStore
import Testing

/// The pure parts of the reliability work: backoff, the database health state machine, latency
/// percentiles. No network, no clock.
@Suite("Reliability: backoff, database health, metrics")
struct ReliabilityUnitTests {
    @Test func backoffGrowsDoublingWithinJitterBoundsAndCaps() {
        let b = Backoff(initial: 0.1, maximum: 2)
        // Equal jitter: attempt n waits in [d/2, d], d = min(2, 0.1 · 2ⁿ).
        #expect(b.delay(attempt: 0, unit: 0) == 0.05)
        #expect(b.delay(attempt: 0, unit: 1) == 0.1)
        #expect(b.delay(attempt: 3, unit: 0) == 0.4)
        #expect(b.delay(attempt: 3, unit: 1) == 0.8)
        #expect(b.delay(attempt: 10, unit: 0) == 1)
        #expect(b.delay(attempt: 10, unit: 1) == 2)
        #expect(b.delay(attempt: 1000, unit: 0.5) == 1.5)
        // Random draws stay within the bounds.
        for attempt in 0..<8 {
            let d = min(2, 0.1 * Double(1 << attempt))
            for _ in 0..<50 {
                let x = b.delay(attempt: attempt)
                #expect(x >= d / 2 && x <= d)
            }
        }
    }

    @Test func healthGoesDownProbesWithBackoffAndComesBackUp() {
        var h = DatabaseHealth(backoff: Backoff(initial: 0.1, maximum: 1))
        #expect(h.state == .up && h.admitsWrites)
        // Probes are only due when down; success/failure outside a probe change nothing.
        #expect(h.probeDue() == .none)
        #expect(h.probeSucceeded(now: 1) == .none)
        #expect(h.probeFailed("x", unit: 0) == .none)

        // First connection error: down, pool dropped, first probe soon.
        #expect(h.connectionFailed("connection refused", now: 10, unit: 1) == .markDown(probeAfter: 0.1))
        #expect(h.state == .down && !h.admitsWrites && h.lastError == "connection refused" && h.downSince == 10)
        // More errors while down do not schedule more probes.
        #expect(h.connectionFailed("again", now: 10.5, unit: 0) == .none)
        #expect(h.lastError == "again")

        // Failed probes: each waits longer, capped.
        var delays: [Double] = []
        for _ in 0..<6 {
            #expect(h.probeDue() == .probe)
            #expect(h.state == .reconnecting && !h.admitsWrites)
            #expect(h.probeDue() == .none)  // one probe at a time
            guard case .probeAfter(let d) = h.probeFailed("still down", unit: 1) else {
                Issue.record("a failed probe must plan the next")
                return
            }
            delays.append(d)
        }
        #expect(delays == [0.2, 0.4, 0.8, 1, 1, 1])
        #expect(h.failedProbes == 6)

        // Success: up again, with how long it was down.
        #expect(h.probeDue() == .probe)
        #expect(h.probeSucceeded(now: 14) == .markUp(downFor: 4))
        #expect(h.state == .up && h.admitsWrites && h.failedProbes == 0 && h.downSince == nil)

        // A new outage starts the backoff from the beginning.
        #expect(h.connectionFailed("gone", now: 20, unit: 0) == .markDown(probeAfter: 0.05))
    }

    @Test func latencyPercentilesByNearestRank() {
        let values = (1...100).map(Double.init)
        #expect(RequestMetrics.percentile(values, 0.5) == 50)
        #expect(RequestMetrics.percentile(values, 0.9) == 90)
        #expect(RequestMetrics.percentile(values, 0.99) == 99)
        #expect(RequestMetrics.percentile([], 0.5) == 0)
        #expect(RequestMetrics.percentile([7], 0.99) == 7)

        let m = RequestMetrics()
        for i in 1...10 { m.record(index: 0, "NEAR", seconds: Double(i) / 1000) }
        m.record(index: 2, "PING", seconds: 0.0005)
        let s = m.summaries()
        #expect(s["NEAR"] == .init(count: 10, p50: 5, p90: 9, p99: 10, max: 10))
        #expect(s["PING"]?.count == 1 && s["PING"]?.max == 0.5)
        // The ring keeps the last `window` samples; the count keeps counting.
        for _ in 0..<(RequestMetrics.window + 10) { m.record(index: 1, "STATS", seconds: 0.002) }
        #expect(m.summaries()["STATS"]?.count == RequestMetrics.window + 10)
        #expect(m.summaries()["STATS"]?.p99 == 2)
    }
}
