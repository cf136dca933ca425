import Foundation

/// Whether a camera's footage of an incident can still be obtained.
public enum FootageState: String, Sendable, CaseIterable, Codable {
    /// The camera was recording (by its schedule) and the footage is still within its retention.
    case available
    /// The camera was recording, but every recorded part is already past its retention.
    case expired
    /// The schedule was off for the whole incident time or window.
    case notRecording = "not_recording"
    /// Cannot be told: the camera is `pending`, or the time is missing, in the future or invalid.
    case unknown
}

/// The fixed UTC offset in which recording schedules are read (schedules are local wall-clock
/// times). Fixed offsets only — no daylight saving time; Vietnam has none.
public struct ScheduleTimeZone: Sendable, Hashable, CustomStringConvertible {
    /// Seconds east of UTC (e.g. 25200 for +07:00).
    public let utcOffsetSeconds: Int

    /// Asia/Ho_Chi_Minh (Indochina Time, UTC+07:00, no DST): the default.
    public static let hoChiMinh = ScheduleTimeZone(checked: 7 * 3600)
    /// UTC.
    public static let utc = ScheduleTimeZone(checked: 0)

    private init(checked: Int) { utcOffsetSeconds = checked }

    /// An offset of at most ±18 hours; `nil` otherwise.
    public init?(utcOffsetSeconds: Int) {
        guard abs(utcOffsetSeconds) <= 18 * 3600 else { return nil }
        self.utcOffsetSeconds = utcOffsetSeconds
    }

    /// Parses `Z`, `UTC`, `±HH:MM`, `±HHMM` or `±HH`, or the name `Asia/Ho_Chi_Minh`.
    public init?(_ text: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        switch t {
        case "Z", "z", "UTC", "+00:00", "-00:00": self = .utc; return
        case "Asia/Ho_Chi_Minh", "Asia/Saigon", "ICT": self = .hoChiMinh; return
        default: break
        }
        let u = Array(t.utf8)
        guard let o = IncidentTime.parseOffset(u[...]) else { return nil }
        self.init(utcOffsetSeconds: o)
    }

    /// `+07:00` style.
    public var description: String { IncidentTime.offsetText(utcOffsetSeconds) }
}

/// An incident time: one instant (`from == to`) or a closed window `[from, to]`.
public struct IncidentWindow: Sendable, Hashable {
    /// Start (inclusive).
    public let from: Date
    /// End (inclusive).
    public let to: Date

    /// A window; `nil` when `from` is after `to` or either is not a finite time.
    public init?(from: Date, to: Date) {
        guard from.timeIntervalSince1970.isFinite, to.timeIntervalSince1970.isFinite, from <= to else { return nil }
        self.from = from
        self.to = to
    }

    /// A single instant.
    public init(instant: Date) {
        from = instant
        to = instant
    }

    /// True for a single instant.
    public var isInstant: Bool { from == to }
}

/// The footage state of one camera for one incident, with the times it was derived from.
///
/// For a window, the *recorded part* is the set of moments in `[from, min(to, now)]` at which the
/// schedule was on (any such moment makes the camera "recording"). Choices:
/// - ``expiresAt`` is the **earliest** recorded moment + retention: the moment footage of the
///   incident starts being deleted, i.e. the deadline for securing all of it;
/// - ``lastExpiresAt`` is the latest recorded moment + retention: when the last of it is gone;
/// - ``state`` is `available` while *some* recorded footage remains (`lastExpiresAt > now`), so a
///   partly deleted window is still `available`, flagged by ``isPartiallyExpired``.
///
/// For an instant all of these coincide: `expiresAt = lastExpiresAt = incident + retention`.
public struct FootageStatus: Sendable, Hashable {
    /// The state.
    public var state: FootageState
    /// Earliest recorded moment of the incident (nil unless it was recorded).
    public var recordedFrom: Date?
    /// Latest recorded moment of the incident (the end of its last recording interval within the
    /// window; nil unless it was recorded).
    public var recordedUntil: Date?
    /// `recordedFrom` + retention: when deletion of the incident's footage starts (nil unless recorded).
    public var expiresAt: Date?
    /// `recordedUntil` + retention: when all of it is deleted (nil unless recorded).
    public var lastExpiresAt: Date?
    /// Why the state is `unknown` (nil otherwise).
    public var reason: String?

    /// True when part of the recorded footage is deleted and part remains (only for windows).
    public var isPartiallyExpired: Bool {
        guard state == .available, let e = expiresAt, let l = lastExpiresAt else { return false }
        return e < l && e <= evaluatedAt
    }

    /// The `now` this status was computed for.
    public var evaluatedAt: Date

    /// A status with no recorded footage.
    static func plain(_ state: FootageState, now: Date, reason: String? = nil) -> FootageStatus {
        FootageStatus(state: state, recordedFrom: nil, recordedUntil: nil, expiresAt: nil, lastExpiresAt: nil,
                      reason: reason, evaluatedAt: now)
    }
}

extension RecordingSchedule {
    /// Whether the schedule records at `instant`, reading its times in `timeZone`. Start times are
    /// inclusive and end times exclusive (18:00–06:00 records at 18:00:00 and 05:59:59.9, not at
    /// 06:00:00), to any precision of `instant`.
    public func records(at instant: Date, timeZone: ScheduleTimeZone = .hoChiMinh) -> Bool {
        let local = instant.timeIntervalSince1970 + Double(timeZone.utcOffsetSeconds)
        guard local.isFinite else { return false }
        let secondOfDay = local - (local / 86_400).rounded(.down) * 86_400
        return records(atMinute: min(1439, max(0, Int((secondOfDay / 60).rounded(.down)))))
    }

    /// The recorded part of the closed window `[from, to]`: its earliest moment and the latest
    /// (the supremum: the end of the last recording interval, capped at `to`), or `nil` when the
    /// schedule is off for the whole window. `nil` also when `from > to`.
    public func recordedSpan(from: Date, to: Date, timeZone: ScheduleTimeZone = .hoChiMinh) -> (first: Date, last: Date)? {
        let offset = Double(timeZone.utcOffsetSeconds)
        let a = from.timeIntervalSince1970 + offset, b = to.timeIntervalSince1970 + offset
        guard a.isFinite, b.isFinite, a <= b else { return nil }
        let day = 86_400.0
        switch self {
        case .always:
            return (from, to)
        case .daily(let s, let e):
            // The recording interval that starts on local day d: [d + s, d + e) in local seconds,
            // ending the next day when the schedule wraps past midnight.
            func interval(_ d: Double) -> (Double, Double) {
                let start = d * day + Double(s) * 60
                let end = (e > s ? d : d + 1) * day + Double(e) * 60
                return (start, end)
            }
            let firstDay = (a / day).rounded(.down) - 1, lastDay = (b / day).rounded(.down)
            var first: Double?
            var d = firstDay
            while d <= lastDay {
                let (is_, ie) = interval(d)
                if ie > a && is_ <= b { first = max(a, is_); break }
                d += 1
            }
            guard let first else { return nil }
            var last = first
            d = lastDay
            while d >= firstDay {
                let (is_, ie) = interval(d)
                if ie > a && is_ <= b { last = min(b, ie); break }
                d -= 1
            }
            return (Date(timeIntervalSince1970: first - offset), Date(timeIntervalSince1970: last - offset))
        }
    }
}

extension Camera {
    /// The footage state for an incident window (or instant), as of `now`, reading the schedule in
    /// `timeZone`. See ``FootageStatus`` for how windows are treated.
    ///
    /// - `unknown` when the window is `nil`, the camera is `pending` (never confirmed to record),
    ///   its retention is not positive, or the window starts after `now` (nothing recorded yet);
    ///   the part of a window after `now` is ignored.
    /// - `notRecording` when the schedule is off for all of `[from, min(to, now)]`.
    /// - `available` when recorded and the latest recorded moment + retention is after `now`
    ///   (strictly: footage expiring exactly at `now` is gone), else `expired`.
    ///
    /// The camera's current status is used as is: `active`, `offline` and `retired` cameras are
    /// judged by their schedule (footage taken before going offline or being retired may exist).
    public func footage(during window: IncidentWindow?, now: Date,
                        timeZone: ScheduleTimeZone = .hoChiMinh) -> FootageStatus {
        FootageStatus.of(status: status, retentionDays: retentionDays, schedule: schedule,
                         during: window, now: now, timeZone: timeZone)
    }

    /// The footage state for an incident at one instant: `available` when the schedule was on at
    /// `instant` and `instant + retention` is after `now` (then ``FootageStatus/expiresAt`` is that
    /// moment), `expired` when it was on but the footage is deleted, `notRecording` when it was off.
    public func footage(at instant: Date, now: Date, timeZone: ScheduleTimeZone = .hoChiMinh) -> FootageStatus {
        footage(during: IncidentWindow(instant: instant), now: now, timeZone: timeZone)
    }
}

extension FootageStatus {
    /// The footage state of a camera with this status, retention and schedule (see
    /// ``Camera/footage(during:now:timeZone:)``, which this defines).
    public static func of(status: CameraStatus, retentionDays: Int, schedule: RecordingSchedule,
                          during window: IncidentWindow?, now: Date,
                          timeZone: ScheduleTimeZone = .hoChiMinh) -> FootageStatus {
        guard let window else { return .plain(.unknown, now: now, reason: "no incident time") }
        if status == .pending { return .plain(.unknown, now: now, reason: "camera is pending") }
        guard retentionDays > 0 else { return .plain(.unknown, now: now, reason: "no retention period") }
        guard window.from <= now else { return .plain(.unknown, now: now, reason: "incident is in the future") }
        let end = min(window.to, now)
        guard let span = schedule.recordedSpan(from: window.from, to: end, timeZone: timeZone) else {
            return .plain(.notRecording, now: now)
        }
        let retention = Double(retentionDays) * 86_400
        let expires = span.first.addingTimeInterval(retention)
        let lastExpires = span.last.addingTimeInterval(retention)
        return FootageStatus(state: lastExpires > now ? .available : .expired,
                             recordedFrom: span.first, recordedUntil: span.last,
                             expiresAt: expires, lastExpiresAt: lastExpires, reason: nil, evaluatedAt: now)
    }
}

/// ISO-8601 / RFC 3339 date-times with a **mandatory** UTC offset, parsed and formatted in pure
/// Swift (no `DateFormatter`, no locale, thread-safe).
public enum IncidentTime {
    /// Parses `YYYY-MM-DDTHH:MM[:SS[.fraction]]` followed by `Z` or an offset `±HH:MM`, `±HHMM` or `±HH`,
    /// e.g. `2022-06-26T06:40+07:00` (= `2022-06-25T23:40Z`), `2022-06-25T23:40:05.25Z`.
    /// `T`/`Z` may be lower case; the fraction may use `.` or `,` and has 1–9 digits.
    /// Returns `nil` for anything else, including a time without an offset, out-of-range fields
    /// (month 13, 31 April, 29 February outside leap years, hour 24, second 60) or an offset
    /// beyond ±18:00.
    public static func parse(_ text: String) -> Date? {
        let u = Array(text.utf8)
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= u.count else { return nil }
            var v = 0
            for k in i..<(i + n) {
                let c = u[k]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += n
            return v
        }
        func expect(_ chars: UInt8...) -> Bool {
            guard i < u.count, chars.contains(u[i]) else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(0x2D), let month = digits(2), expect(0x2D), let day = digits(2),
              expect(0x54, 0x74), let hour = digits(2), expect(0x3A), let minute = digits(2) else { return nil }
        var second = 0
        var fraction = 0.0
        if i < u.count, u[i] == 0x3A {
            i += 1
            guard let s = digits(2) else { return nil }
            second = s
            if i < u.count, u[i] == 0x2E || u[i] == 0x2C {
                i += 1
                var scale = 0.1, n = 0
                while i < u.count, u[i] >= 48, u[i] <= 57 {
                    fraction += Double(u[i] - 48) * scale
                    scale /= 10
                    n += 1
                    i += 1
                }
                guard (1...9).contains(n) else { return nil }
            }
        }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year, month),
              (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second) else { return nil }
        guard i < u.count, let offset = parseOffset(u[i...]) else { return nil }
        let days = daysFromCivil(year, month, day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    /// `YYYY-MM-DDTHH:MM:SS±HH:MM` for `date` in the given offset (default +07:00); a fraction
    /// of a second is written with microsecond precision when non-zero.
    public static func format(_ date: Date, timeZone: ScheduleTimeZone = .hoChiMinh) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded()) + Int64(timeZone.utcOffsetSeconds) * 1_000_000
        // ISO8601Text writes UTC with a Z; reuse its calendar arithmetic and swap the suffix.
        var text = ISO8601Text.format(micros: micros)
        text.removeLast()  // "Z"
        if text.hasSuffix(".000000") { text.removeLast(7) }
        return text + offsetText(timeZone.utcOffsetSeconds)
    }

    /// `Z`, `±HH:MM`, `±HHMM` or `±HH` (the whole remaining text) → seconds east of UTC, at most ±18:00.
    static func parseOffset(_ s: ArraySlice<UInt8>) -> Int? {
        let c = Array(s)
        if c == [0x5A] || c == [0x7A] { return 0 }
        guard c.count == 6 || c.count == 5 || c.count == 3, c[0] == 0x2B || c[0] == 0x2D else { return nil }
        func two(_ k: Int) -> Int? {
            guard c[k] >= 48, c[k] <= 57, c[k + 1] >= 48, c[k + 1] <= 57 else { return nil }
            return Int(c[k] - 48) * 10 + Int(c[k + 1] - 48)
        }
        guard let h = two(1) else { return nil }
        var m = 0
        if c.count == 6 {
            guard c[3] == 0x3A, let mm = two(4) else { return nil }
            m = mm
        } else if c.count == 5 {
            guard let mm = two(3) else { return nil }
            m = mm
        }
        guard m <= 59, h * 60 + m <= 18 * 60 else { return nil }
        return (c[0] == 0x2D ? -1 : 1) * (h * 3600 + m * 60)
    }

    static func offsetText(_ seconds: Int) -> String {
        if seconds == 0 { return "Z" }
        let a = abs(seconds)
        let h = a / 3600, m = a / 60 % 60
        return (seconds < 0 ? "-" : "+") + (h < 10 ? "0" : "") + String(h) + ":" + (m < 10 ? "0" : "") + String(m)
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        switch m {
        case 2: return isLeap(y) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
