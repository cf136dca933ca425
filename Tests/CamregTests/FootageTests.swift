import Foundation
import Testing
@testable import Registry

@Suite("FootageTests")
struct FootageTests {
    static func camera(_ schedule: String, retention: Int = 30, status: CameraStatus = .active) -> Camera {
        Camera(id: "BC-00001", lat: 11.05, lon: 106.6, siteKind: .street, address: "1 Đường 30/4", ward: "Mỹ Phước",
               heading: 0, fov: 90, range: 50, mountHeight: nil, ownerKind: .household, ownerName: nil,
               ownerPhone: nil, schedule: RecordingSchedule(text: schedule)!, retentionDays: retention, status: status,
               createdAt: Date(timeIntervalSince1970: 0), updatedAt: Date(timeIntervalSince1970: 0))
    }

    static func t(_ text: String) throws -> Date {
        try #require(IncidentTime.parse(text), "cannot parse \(text)")
    }

    static let day = 86_400.0

    // MARK: Parsing

    /// The in-place timestamp text equals Foundation's formatter (to the second, plus the
    /// microseconds), over random instants from 1583 to 9999 and the edges; years outside
    /// 0–9999 take the general form.
    @Test func timestampTextAgreesWithFoundation() throws {
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime]
        iso.timeZone = TimeZone(identifier: "UTC")
        var rng = SystemRandomNumberGenerator()
        let low: Int64 = -12_219_292_800_000_000  // 1582-10-15, the first Gregorian day
        let high: Int64 = 253_402_300_799_999_999  // 9999-12-31T23:59:59.999999Z
        var samples: [Int64] = [0, -1, 1, 951_782_400_000_000, 1_656_200_400_123_456, low, high]
        for _ in 0..<20_000 { samples.append(Int64.random(in: low...high, using: &rng)) }
        for micros in samples {
            let text = ISO8601Text.format(micros: micros)
            let secs = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
            let whole = iso.string(from: Date(timeIntervalSince1970: TimeInterval(secs)))  // YYYY-MM-DDTHH:MM:SSZ
            let fraction = micros - secs * 1_000_000
            let expected = String(whole.dropLast()) + "." + String(format: "%06lld", fraction) + "Z"
            #expect(text == expected, "\(micros)")
            #expect(text.utf8.count == ISO8601Text.length)
        }
        // Past year 9999: not written in place, still formatted.
        let far: Int64 = 253_402_300_800_000_000  // 10000-01-01
        var buffer = [UInt8](repeating: 0, count: ISO8601Text.length)
        #expect(!buffer.withUnsafeMutableBufferPointer { ISO8601Text.write(micros: far, into: $0) })
        #expect(ISO8601Text.format(micros: far) == "10000-01-01T00:00:00.000000Z")
    }

    /// Epoch seconds from GNU `date -u -d '2022-06-25T23:40:00Z' +%s` = 1656200400.
    @Test func parsesOffsetsAndUTC() throws {
        let expected = Date(timeIntervalSince1970: 1_656_200_400)
        #expect(IncidentTime.parse("2022-06-26T06:40+07:00") == expected)
        #expect(IncidentTime.parse("2022-06-25T23:40Z") == expected)
        #expect(IncidentTime.parse("2022-06-25T23:40:00Z") == expected)
        #expect(IncidentTime.parse("2022-06-26T06:40:00+0700") == expected)
        #expect(IncidentTime.parse("2022-06-25T16:40-07:00") == expected)
        #expect(IncidentTime.parse("2022-06-25t23:40:00z") == expected)
        #expect(IncidentTime.parse("2022-06-26T06:40:00.000+07:00") == expected)
        #expect(IncidentTime.parse("2022-06-25T23:40:00.5Z") == Date(timeIntervalSince1970: 1_656_200_400.5))
        #expect(IncidentTime.parse("2022-06-25T23:40:00,25Z") == Date(timeIntervalSince1970: 1_656_200_400.25))
        #expect(abs(try Self.t("2022-06-25T23:40:07.123456789Z").timeIntervalSince1970 - 1_656_200_407.123456789) < 1e-6)
        #expect(IncidentTime.parse("2022-06-26T06:40+07") == expected)  // ISO 8601 allows ±hh
        // Epoch and leap days (GNU date: 2024-02-29T12:00Z = 1709208000; 2000-02-29T00:00Z = 951782400).
        #expect(IncidentTime.parse("1970-01-01T00:00Z") == Date(timeIntervalSince1970: 0))
        #expect(IncidentTime.parse("2024-02-29T12:00Z") == Date(timeIntervalSince1970: 1_709_208_000))
        #expect(IncidentTime.parse("2000-02-29T07:00+07:00") == Date(timeIntervalSince1970: 951_782_400))
        #expect(IncidentTime.parse("1969-12-31T23:59:59Z") == Date(timeIntervalSince1970: -1))
    }

    @Test func rejectsTimesWithoutOffsetOrOutOfRange() {
        for bad in ["2022-06-26T06:40", "2022-06-26T06:40:00", "2022-06-26", "2022-06-26 06:40Z", "2022-06-26T06:40+7",
                    "2022-06-26T06:40+7:00", "2022-06-26T06:40 +07:00", "2022-06-26T06:40Z ", "2022-06-26T06:40ZZ",
                    "2022-13-01T00:00Z", "2022-00-01T00:00Z", "2022-04-31T00:00Z", "2022-02-29T00:00Z", "1900-02-29T00:00Z",
                    "2022-06-26T24:00Z", "2022-06-26T23:60Z", "2022-06-26T23:59:60Z", "2022-06-26T06:40+19:00",
                    "2022-06-26T06:40+07:60", "2022-06-26T06:40:00.Z", "2022-06-26T06:40:00.1234567890Z",
                    "22-06-26T06:40Z", "2022-6-26T06:40Z", "2022-06-26T6:40Z", "", "Z", "2022-06-26T06:40:5Z",
                    "２０２２-06-26T06:40Z", "2022-06-26T06:40−07:00"] {
            #expect(IncidentTime.parse(bad) == nil, "\(bad) should be rejected")
        }
    }

    @Test func formatsInLocalTime() throws {
        #expect(IncidentTime.format(try Self.t("2022-06-25T23:40Z")) == "2022-06-26T06:40:00+07:00")
        #expect(IncidentTime.format(try Self.t("2022-06-25T23:40Z"), timeZone: .utc) == "2022-06-25T23:40:00Z")
        #expect(IncidentTime.format(try Self.t("2022-06-25T23:40:01.5Z")) == "2022-06-26T06:40:01.500000+07:00")
        #expect(ScheduleTimeZone("+07:00") == .hoChiMinh)
        #expect(ScheduleTimeZone("Asia/Ho_Chi_Minh") == .hoChiMinh)
        #expect(ScheduleTimeZone("-05:30")?.utcOffsetSeconds == -19_800)
        #expect(ScheduleTimeZone("+19:00") == nil)
        #expect(ScheduleTimeZone("Europe/Paris") == nil)
        #expect(ScheduleTimeZone.hoChiMinh.description == "+07:00")
    }

    // MARK: Schedule edges at one instant

    @Test func overnightScheduleEdges() throws {
        let cam = Self.camera("18:00-06:00")
        let now = try Self.t("2022-07-01T00:00+07:00")
        let cases: [(String, FootageState)] = [
            ("2022-06-26T17:59+07:00", .notRecording),
            ("2022-06-26T17:59:59.999+07:00", .notRecording),
            ("2022-06-26T18:00+07:00", .available),
            ("2022-06-26T23:59:59+07:00", .available),
            ("2022-06-27T00:00+07:00", .available),
            ("2022-06-27T05:59+07:00", .available),
            ("2022-06-27T05:59:59.9+07:00", .available),
            ("2022-06-27T06:00+07:00", .notRecording),
            ("2022-06-27T12:00+07:00", .notRecording),
            // The same instants written in UTC (local − 7 h).
            ("2022-06-26T10:59Z", .notRecording),
            ("2022-06-26T11:00Z", .available),
            ("2022-06-26T22:59Z", .available),
            ("2022-06-26T23:00Z", .notRecording),
        ]
        for (text, state) in cases {
            let s = cam.footage(at: try Self.t(text), now: now)
            #expect(s.state == state, "\(text)")
            if state == .available {
                #expect(s.expiresAt == (try Self.t(text)).addingTimeInterval(30 * Self.day))
                #expect(s.lastExpiresAt == s.expiresAt)
                #expect(!s.isPartiallyExpired)
            } else {
                #expect(s.expiresAt == nil)
            }
        }
    }

    @Test func daytimeScheduleEdges() throws {
        let cam = Self.camera("08:00-17:00")
        let now = try Self.t("2022-07-01T00:00+07:00")
        #expect(cam.footage(at: try Self.t("2022-06-26T07:59+07:00"), now: now).state == .notRecording)
        #expect(cam.footage(at: try Self.t("2022-06-26T08:00+07:00"), now: now).state == .available)
        #expect(cam.footage(at: try Self.t("2022-06-26T16:59+07:00"), now: now).state == .available)
        #expect(cam.footage(at: try Self.t("2022-06-26T17:00+07:00"), now: now).state == .notRecording)
        #expect(cam.footage(at: try Self.t("2022-06-26T01:00Z"), now: now).state == .available)   // 08:00 local
        #expect(cam.footage(at: try Self.t("2022-06-26T00:59Z"), now: now).state == .notRecording)
        #expect(Self.camera("24/7").footage(at: try Self.t("2022-06-26T03:17+07:00"), now: now).state == .available)
    }

    /// 2022-06-26T06:40+07:00 is 2022-06-25T23:40Z: off for 18:00–06:00 read in +07:00, but on if
    /// the schedule were (wrongly) read in UTC.
    @Test func timeZoneOfTheSchedule() throws {
        let cam = Self.camera("18:00-06:00")
        let now = try Self.t("2022-06-30T00:00Z")
        let local = try Self.t("2022-06-26T06:40+07:00"), utc = try Self.t("2022-06-25T23:40Z")
        #expect(local == utc)
        #expect(cam.footage(at: local, now: now).state == .notRecording)
        #expect(cam.footage(at: utc, now: now).state == .notRecording)
        #expect(cam.footage(at: utc, now: now, timeZone: .utc).state == .available)
        #expect(Self.camera("06:30-07:00").footage(at: local, now: now).state == .available)
        #expect(cam.schedule.records(at: local) == false)
        #expect(cam.schedule.records(at: local, timeZone: .utc))
    }

    // MARK: Retention

    @Test func retentionEdges() throws {
        let cam = Self.camera("24/7", retention: 30)
        let incident = try Self.t("2022-06-26T06:40+07:00")
        let expires = incident.addingTimeInterval(30 * Self.day)
        #expect(expires == (try Self.t("2022-07-26T06:40+07:00")))
        let before = cam.footage(at: incident, now: expires.addingTimeInterval(-1))
        #expect(before.state == .available)
        #expect(before.expiresAt == expires)
        #expect(cam.footage(at: incident, now: expires.addingTimeInterval(-0.001)).state == .available)
        let atExpiry = cam.footage(at: incident, now: expires)
        #expect(atExpiry.state == .expired)
        #expect(atExpiry.expiresAt == expires)
        #expect(cam.footage(at: incident, now: expires.addingTimeInterval(1)).state == .expired)
        // One-day retention.
        let short = Self.camera("24/7", retention: 1)
        #expect(short.footage(at: incident, now: try Self.t("2022-06-27T06:39:59+07:00")).state == .available)
        #expect(short.footage(at: incident, now: try Self.t("2022-06-27T06:40+07:00")).state == .expired)
        // Expired needs recording: an off schedule stays not_recording however old.
        #expect(Self.camera("18:00-06:00", retention: 1).footage(at: incident, now: try Self.t("2023-01-01T00:00Z")).state == .notRecording)
    }

    @Test func unknownCases() throws {
        let incident = try Self.t("2022-06-26T06:40+07:00")
        let now = try Self.t("2022-06-27T00:00+07:00")
        let pending = Self.camera("24/7", status: .pending).footage(at: incident, now: now)
        #expect(pending.state == .unknown)
        #expect(pending.reason != nil)
        #expect(Self.camera("24/7").footage(during: nil, now: now).state == .unknown)
        #expect(Self.camera("24/7", retention: 0).footage(at: incident, now: now).state == .unknown)
        #expect(Self.camera("24/7").footage(at: now.addingTimeInterval(60), now: now).state == .unknown)
        // Offline and retired cameras are judged by their schedule.
        #expect(Self.camera("24/7", status: .offline).footage(at: incident, now: now).state == .available)
        #expect(Self.camera("24/7", status: .retired).footage(at: incident, now: now).state == .available)
        #expect(IncidentWindow(from: now, to: incident) == nil)
    }

    // MARK: Windows

    @Test func windows() throws {
        let cam = Self.camera("18:00-06:00", retention: 30)
        let now = try Self.t("2022-07-01T00:00+07:00")
        func window(_ a: String, _ b: String) throws -> IncidentWindow {
            try #require(IncidentWindow(from: try Self.t(a), to: try Self.t(b)))
        }
        // Recording only during 05:30–06:00 of the window.
        var s = cam.footage(during: try window("2022-06-26T05:30+07:00", "2022-06-26T07:00+07:00"), now: now)
        #expect(s.state == .available)
        #expect(s.recordedFrom == (try Self.t("2022-06-26T05:30+07:00")))
        #expect(s.recordedUntil == (try Self.t("2022-06-26T06:00+07:00")))
        #expect(s.expiresAt == (try Self.t("2022-07-26T05:30+07:00")))
        #expect(s.lastExpiresAt == (try Self.t("2022-07-26T06:00+07:00")))
        // Starting in the off period: the first recorded moment is 18:00.
        s = cam.footage(during: try window("2022-06-26T12:00+07:00", "2022-06-28T12:00+07:00"), now: now)
        #expect(s.recordedFrom == (try Self.t("2022-06-26T18:00+07:00")))
        #expect(s.recordedUntil == (try Self.t("2022-06-28T06:00+07:00")))
        #expect(s.expiresAt == (try Self.t("2022-07-26T18:00+07:00")))
        // Entirely in the off period, edges included.
        s = cam.footage(during: try window("2022-06-26T06:00+07:00", "2022-06-26T17:59:59+07:00"), now: now)
        #expect(s.state == .notRecording)
        #expect(s.expiresAt == nil)
        // A window ending exactly at 18:00 catches the start of recording (closed window).
        s = cam.footage(during: try window("2022-06-26T06:00+07:00", "2022-06-26T18:00+07:00"), now: now)
        #expect(s.state == .available)
        #expect(s.recordedFrom == (try Self.t("2022-06-26T18:00+07:00")))
        // Around midnight, written in UTC.
        s = cam.footage(during: try window("2022-06-26T16:50Z", "2022-06-26T17:10Z"), now: now)  // 23:50–00:10 local
        #expect(s.state == .available)
        #expect(s.recordedFrom == (try Self.t("2022-06-26T23:50+07:00")))
        #expect(s.recordedUntil == (try Self.t("2022-06-27T00:10+07:00")))
        // A window reaching past now is cut at now.
        let n2 = try Self.t("2022-06-26T19:00+07:00")
        s = cam.footage(during: try window("2022-06-26T17:00+07:00", "2022-06-27T03:00+07:00"), now: n2)
        #expect(s.recordedUntil == n2)
        // Daytime schedule with a window spanning several days.
        s = Self.camera("08:00-17:00").footage(during: try window("2022-06-20T18:00+07:00", "2022-06-23T07:00+07:00"), now: now)
        #expect(s.recordedFrom == (try Self.t("2022-06-21T08:00+07:00")))
        #expect(s.recordedUntil == (try Self.t("2022-06-22T17:00+07:00")))
        // The same window as an instant.
        let i = try Self.t("2022-06-26T19:00+07:00")
        #expect(cam.footage(during: IncidentWindow(instant: i), now: now) == cam.footage(at: i, now: now))
    }

    @Test func partlyExpiredWindow() throws {
        let cam = Self.camera("24/7", retention: 1)
        let w = try #require(IncidentWindow(from: try Self.t("2022-06-26T00:00+07:00"), to: try Self.t("2022-06-27T00:00+07:00")))
        // 12 h into the second day: the first half of the window is deleted, the rest remains.
        let mid = cam.footage(during: w, now: try Self.t("2022-06-27T12:00+07:00"))
        #expect(mid.state == .available)
        #expect(mid.isPartiallyExpired)
        #expect(mid.expiresAt == (try Self.t("2022-06-27T00:00+07:00")))
        #expect(mid.lastExpiresAt == (try Self.t("2022-06-28T00:00+07:00")))
        let intact = cam.footage(during: w, now: try Self.t("2022-06-26T23:00+07:00"))
        #expect(intact.state == .available && !intact.isPartiallyExpired)
        #expect(cam.footage(during: w, now: try Self.t("2022-06-28T00:00+07:00")).state == .expired)
    }

    /// The schedule reading at minute granularity agrees with `records(atMinute:)` for every
    /// minute of a day, in both offsets.
    @Test func recordsAtMatchesMinuteTable() throws {
        let midnightLocal = try Self.t("2022-06-26T00:00+07:00")
        for text in ["18:00-06:00", "08:00-17:00", "23:59-00:01", "00:00-23:59", "24/7"] {
            let schedule = try #require(RecordingSchedule(text: text))
            for minute in 0..<1440 {
                let instant = midnightLocal.addingTimeInterval(Double(minute) * 60 + 30)
                #expect(schedule.records(at: instant) == schedule.records(atMinute: minute), "\(text) at \(minute)")
                let utcMinute = (minute - 420 + 1440) % 1440
                #expect(schedule.records(at: instant, timeZone: .utc) == schedule.records(atMinute: utcMinute))
            }
        }
    }
}
