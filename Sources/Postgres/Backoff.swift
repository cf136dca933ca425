/// Exponential backoff with jitter for reconnecting to PostgreSQL: attempt `n` (0-based) waits
/// a random time in `[d/2, d]` where `d = min(maximum, initial · 2ⁿ)` ("equal jitter"), so that
/// several daemons losing the same server do not all knock at once, yet none waits much less
/// than planned. Pure: the random draw is passed in, so it is tested without clocks.
public struct Backoff: Sendable, Equatable {
    /// The first delay (upper bound), in seconds.
    public var initial: Double
    /// The largest delay, in seconds.
    public var maximum: Double

    public init(initial: Double = 0.1, maximum: Double = 2) {
        self.initial = max(0.001, initial)
        self.maximum = max(self.initial, maximum)
    }

    /// The delay before attempt `attempt`, for a uniform draw `unit` in [0, 1).
    public func delay(attempt: Int, unit: Double) -> Double {
        let exponent = Double(min(max(attempt, 0), 40))
        let ceiling = min(maximum, initial * pow2(exponent))
        let u = min(max(unit, 0), 1)
        return ceiling / 2 + u * ceiling / 2
    }

    /// The delay before attempt `attempt`, drawn with the system generator.
    public func delay(attempt: Int) -> Double {
        delay(attempt: attempt, unit: Double.random(in: 0..<1))
    }

    private func pow2(_ e: Double) -> Double {
        var r = 1.0
        for _ in 0..<Int(e) { r *= 2 }
        return r
    }
}
