import Foundation

/// ISO-8601 formatting without Foundation's formatters (fast, thread-safe, exact to the microsecond).
public enum ISO8601Text {
    /// Bytes of `YYYY-MM-DDTHH:MM:SS.ffffffZ` (a year of four digits).
    public static let length = 27

    /// The calendar fields of `micros` since the Unix epoch (proleptic Gregorian, UTC).
    private static func civil(micros: Int64) -> (year: Int64, month: Int64, day: Int64, seconds: Int64, fraction: Int64) {
        var secs = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let frac = micros - secs * 1_000_000
        let days = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
        secs -= days * 86_400
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        var y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        if m <= 2 { y += 1 }
        return (y, m, d, secs, frac)
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS.ffffffZ` for `micros` into the first ``length`` bytes of `b`
    /// (which must hold them); false, writing nothing, for a year outside 0–9999. No allocation:
    /// search answers write their timestamps straight into the response with it.
    public static func write(micros: Int64, into b: UnsafeMutableBufferPointer<UInt8>) -> Bool {
        precondition(b.count >= length)
        let c = civil(micros: micros)
        guard (0...9999).contains(c.year) else { return false }
        @inline(__always) func digits(_ value: Int64, _ width: Int, at start: Int) {
            var v = value
            var i = start + width - 1
            while i >= start {
                b[i] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30
                v /= 10
                i -= 1
            }
        }
        digits(c.year, 4, at: 0); b[4] = 0x2D
        digits(c.month, 2, at: 5); b[7] = 0x2D
        digits(c.day, 2, at: 8); b[10] = 0x54
        digits(c.seconds / 3600, 2, at: 11); b[13] = 0x3A
        digits(c.seconds / 60 % 60, 2, at: 14); b[16] = 0x3A
        digits(c.seconds % 60, 2, at: 17); b[19] = 0x2E
        digits(c.fraction, 6, at: 20); b[26] = 0x5A
        return true
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ` for microseconds since the Unix epoch: one allocation for
    /// years 0–9999 (the text written in place), the general form otherwise.
    public static func format(micros: Int64) -> String {
        var written = false
        let text = String(unsafeUninitializedCapacity: length) { b in
            written = write(micros: micros, into: b)
            return written ? length : 0
        }
        if written { return text }
        let c = civil(micros: micros)
        func p(_ v: Int64, _ w: Int) -> String {
            let s = String(v)
            return s.count >= w ? s : String(repeating: "0", count: w - s.count) + s
        }
        return "\(p(c.year, 4))-\(p(c.month, 2))-\(p(c.day, 2))T\(p(c.seconds / 3600, 2)):\(p(c.seconds / 60 % 60, 2)):\(p(c.seconds % 60, 2)).\(p(c.fraction, 6))Z"
    }

    /// Microseconds since the Unix epoch of `date`, rounded.
    public static func micros(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// The same for a `Date`.
    public static func format(_ date: Date) -> String {
        format(micros: micros(date))
    }
}
