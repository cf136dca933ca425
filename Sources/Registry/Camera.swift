import Foundation

/// Where a camera is mounted, as the registry classifies it.
public enum SiteKind: String, CaseIterable, Sendable, Codable {
    case intersection, alley, street, building, other
}

/// Who owns a camera.
public enum OwnerKind: String, CaseIterable, Sendable, Codable {
    case household, business
    case boardingHouse = "boarding_house"
    case company
    case `public`
}

/// A camera's life-cycle state. Retired cameras are kept for history but never searched.
public enum CameraStatus: String, CaseIterable, Sendable, Codable {
    case pending, active, offline, retired
}

/// When a camera records: always, or every day between two local times (which may wrap past
/// midnight, e.g. 18:00–06:00). Text form: `24/7` or `HH:MM-HH:MM`.
public enum RecordingSchedule: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Records all the time.
    case always
    /// Records daily from `start` to `end`, in minutes after local midnight (0–1439); `end`
    /// before `start` means the window wraps past midnight.
    case daily(start: Int, end: Int)

    /// Parses `24/7` or `HH:MM-HH:MM`.
    public init?(text: String) {
        let t = TextCleaning.trimmed(text, newlines: false)
        if t == "24/7" { self = .always; return }
        let parts = t.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Self.minutes(parts[0]), let b = Self.minutes(parts[1]), a != b else { return nil }
        self = .daily(start: a, end: b)
    }

    private static func minutes(_ s: Substring) -> Int? {
        let hm = s.split(separator: ":", omittingEmptySubsequences: false)
        guard hm.count == 2, hm[0].count == 2, hm[1].count == 2,
              let h = Int(hm[0]), let m = Int(hm[1]), (0...23).contains(h), (0...59).contains(m) else { return nil }
        return h * 60 + m
    }

    /// The text form (`24/7` or `HH:MM-HH:MM`).
    public var description: String {
        String(unsafeUninitializedCapacity: textLength) { b in
            _ = writeText(into: b)
            return textLength
        }
    }

    /// Bytes of the text form: 4 or 11.
    public var textLength: Int { self == .always ? 4 : 11 }

    /// Writes the text form into `b` (``textLength`` bytes; false, writing nothing, when `b` is
    /// shorter). By hand: `String(format:)` is slow, and a search answer writes one per hit.
    public func writeText(into b: UnsafeMutableBufferPointer<UInt8>) -> Bool {
        guard b.count >= textLength else { return false }
        switch self {
        case .always:
            b[0] = UInt8(ascii: "2"); b[1] = UInt8(ascii: "4"); b[2] = UInt8(ascii: "/"); b[3] = UInt8(ascii: "7")
        case .daily(let s, let e):
            func two(_ v: Int, at i: Int) {
                b[i] = UInt8(0x30 + v / 10)
                b[i + 1] = UInt8(0x30 + v % 10)
            }
            two(s / 60, at: 0); b[2] = 0x3A; two(s % 60, at: 3); b[5] = 0x2D
            two(e / 60, at: 6); b[8] = 0x3A; two(e % 60, at: 9)
        }
        return true
    }

    /// Whether the schedule records at `minute` after local midnight.
    public func records(atMinute minute: Int) -> Bool {
        switch self {
        case .always: return true
        case .daily(let s, let e): return s < e ? (minute >= s && minute < e) : (minute >= s || minute < e)
        }
    }
}

/// A registered security camera: the value stored in PostgreSQL and held in the index.
public struct Camera: Sendable, Equatable {
    /// Human-readable id, e.g. `BC-00042`.
    public var id: String
    /// Latitude (WGS84 degrees, −90…90).
    public var lat: Double
    /// Longitude (WGS84 degrees, −180…180).
    public var lon: Double
    /// Kind of site.
    public var siteKind: SiteKind
    /// Street address (Vietnamese text).
    public var address: String
    /// Ward or commune name.
    public var ward: String
    /// Direction the camera faces, degrees clockwise from north (0 ≤ h < 360); `nil` = unknown or a 360° camera.
    public var heading: Double?
    /// Horizontal field of view in degrees (0 < fov ≤ 360).
    public var fov: Double
    /// Useful range in metres (0 < range ≤ 1000).
    public var range: Double
    /// Mount height in metres (0…100), if known.
    public var mountHeight: Double?
    /// Kind of owner.
    public var ownerKind: OwnerKind
    /// Owner's name, if recorded.
    public var ownerName: String?
    /// Owner's phone number, if recorded.
    public var ownerPhone: String?
    /// When it records.
    public var schedule: RecordingSchedule
    /// How many days footage is kept (1…3650).
    public var retentionDays: Int
    /// Life-cycle state.
    public var status: CameraStatus
    /// When the camera was registered.
    public var createdAt: Date
    /// When the camera was last changed.
    public var updatedAt: Date
    /// Row version for optimistic concurrency (starts at 1, +1 per change).
    public var version: Int
    /// The registered owner (`owners.id`), when the camera belongs to one.
    public var ownerID: Int64? = nil
    /// Who verified the camera (pending → active), and when.
    public var verifiedBy: String? = nil
    public var verifiedAt: Date? = nil
    /// The reason given with the last status change (e.g. why it was retired).
    public var statusReason: String? = nil

    public init(id: String, lat: Double, lon: Double, siteKind: SiteKind, address: String, ward: String,
                heading: Double?, fov: Double, range: Double, mountHeight: Double?, ownerKind: OwnerKind,
                ownerName: String?, ownerPhone: String?, schedule: RecordingSchedule, retentionDays: Int,
                status: CameraStatus, createdAt: Date, updatedAt: Date, version: Int = 1) {
        self.id = id
        self.lat = lat
        self.lon = lon
        self.siteKind = siteKind
        self.address = address
        self.ward = ward
        self.heading = heading
        self.fov = fov
        self.range = range
        self.mountHeight = mountHeight
        self.ownerKind = ownerKind
        self.ownerName = ownerName
        self.ownerPhone = ownerPhone
        self.schedule = schedule
        self.retentionDays = retentionDays
        self.status = status
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.version = version
    }
}

/// One invalid field of a value: the field's name and the reason.
public struct FieldError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The field name as used on the wire (`lat`, `retention_days`, …).
    public var field: String
    /// Why the value is refused.
    public var reason: String
    public init(_ field: String, _ reason: String) {
        self.field = field
        self.reason = reason
    }
    public var description: String { "\(field): \(reason)" }
}

extension Camera {
    /// Every problem with this camera's fields (empty when valid). The same rules are CHECK
    /// constraints in `migrations/0001_cameras.sql`.
    public func validate() -> [FieldError] {
        var errors: [FieldError] = []
        if id.isEmpty || id.utf8.count > 64
            || !id.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F }) {
            errors.append(FieldError("id", "must be 1–64 upper-case letters, digits, '-' or '_'"))
        }
        if !lat.isFinite || !(-90...90).contains(lat) { errors.append(FieldError("lat", "must be between -90 and 90")) }
        if !lon.isFinite || !(-180...180).contains(lon) { errors.append(FieldError("lon", "must be between -180 and 180")) }
        if TextCleaning.isBlank(address) { errors.append(FieldError("address", "must not be empty")) }
        if TextCleaning.isBlank(ward) { errors.append(FieldError("ward", "must not be empty")) }
        if let h = heading, !h.isFinite || !(0..<360).contains(h) {
            errors.append(FieldError("heading", "must be at least 0 and below 360 degrees"))
        }
        if !fov.isFinite || !(fov > 0 && fov <= 360) { errors.append(FieldError("fov", "must be greater than 0 and at most 360 degrees")) }
        if !range.isFinite || !(range > 0 && range <= 1000) { errors.append(FieldError("range", "must be greater than 0 and at most 1000 m")) }
        if let m = mountHeight, !m.isFinite || !(0...100).contains(m) {
            errors.append(FieldError("mount_height", "must be between 0 and 100 m"))
        }
        if !(1...3650).contains(retentionDays) { errors.append(FieldError("retention_days", "must be between 1 and 3650")) }
        if version < 1 { errors.append(FieldError("version", "must be at least 1")) }
        return errors
    }
}
