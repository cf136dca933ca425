import Foundation

// Shared pieces of the camera importers (CSV in ImportCSV.swift, GeoJSON in
// ImportGeoJSON.swift, OpenStreetMap in ImportOSM.swift): the draft a file row becomes, the
// per-row result and error, and the strict readers of numbers, enums and timestamps.
//
// The importers are pure: bytes in, `[ImportRow]` out. They never stop at a bad row; each row
// carries either a draft or the first problem found in it (its number and the field named as
// the file names it). Only a file that cannot be read at all (not UTF-8 text, not JSON, no
// header, a required column missing) throws an `ImportError`.

/// A camera field as the import and export formats name it (the CSV default column names and
/// the GeoJSON property names).
public enum CameraField: String, CaseIterable, Sendable, Hashable {
    /// ``Camera/id``.
    case id
    /// ``Camera/lat``.
    case lat
    /// ``Camera/lon``.
    case lon
    /// ``Camera/siteKind``.
    case siteKind = "site_kind"
    /// ``Camera/address``.
    case address
    /// ``Camera/ward``.
    case ward
    /// ``Camera/heading``.
    case heading
    /// ``Camera/fov``.
    case fov
    /// ``Camera/range`` (metres).
    case range = "range_m"
    /// ``Camera/mountHeight`` (metres).
    case mountHeight = "mount_height_m"
    /// ``Camera/ownerKind``.
    case ownerKind = "owner_kind"
    /// ``Camera/ownerName``.
    case ownerName = "owner_name"
    /// ``Camera/ownerPhone``.
    case ownerPhone = "owner_phone"
    /// ``Camera/schedule``.
    case schedule
    /// ``Camera/retentionDays``.
    case retentionDays = "retention_days"
    /// ``Camera/status``.
    case status
    /// ``Camera/createdAt``.
    case createdAt = "created_at"
    /// ``Camera/updatedAt``.
    case updatedAt = "updated_at"
    /// ``Camera/version``.
    case version

    /// The case's position in ``allCases``: a switch on the case, no hashing of the raw value
    /// (a bulk import looks fields up by it nineteen times per row).
    @inlinable public var ordinal: Int {
        switch self {
        case .id: 0
        case .lat: 1
        case .lon: 2
        case .siteKind: 3
        case .address: 4
        case .ward: 5
        case .heading: 6
        case .fov: 7
        case .range: 8
        case .mountHeight: 9
        case .ownerKind: 10
        case .ownerName: 11
        case .ownerPhone: 12
        case .schedule: 13
        case .retentionDays: 14
        case .status: 15
        case .createdAt: 16
        case .updatedAt: 17
        case .version: 18
        }
    }

    /// How many fields there are (``allCases``'s count, without building the array).
    public static let count = 19

    /// The field for a ``FieldError/field`` name of ``Camera/validate()`` (`range`,
    /// `mount_height`, … as well as this enum's own names), or `nil` for an unknown name.
    public init?(validationName: String) {
        switch validationName {
        case "range": self = .range
        case "mount_height": self = .mountHeight
        default: self.init(rawValue: validationName)
        }
    }
}

/// A camera read from a file, before the registry assigns defaults: what the file said, with
/// `nil` for what it left out. ``camera(now:)`` fills the gaps with the documented defaults.
public struct CameraDraft: Sendable, Equatable {
    /// Camera id (required in every format; OSM drafts get `OSM-<node id>` or `OSM-<node id>-<n>`).
    public var id: String
    /// Latitude, WGS84 degrees (required).
    public var lat: Double
    /// Longitude, WGS84 degrees (required).
    public var lon: Double
    /// Kind of site; default ``SiteKind/other``.
    public var siteKind: SiteKind?
    /// Street address (required in CSV and GeoJSON; OSM builds one from `addr:*` tags or
    /// `OSM node <id>`).
    public var address: String
    /// Ward or commune; default ``CameraDraft/unknownWard``.
    public var ward: String?
    /// Direction in degrees clockwise from north; `nil` = unknown or a 360° camera.
    public var heading: Double?
    /// Field of view in degrees; default 360 when ``heading`` is `nil`, else 90.
    public var fov: Double?
    /// Range in metres; default 30.
    public var range: Double?
    /// Mount height in metres; stays `nil` when unknown.
    public var mountHeight: Double?
    /// Kind of owner; default ``OwnerKind/household``.
    public var ownerKind: OwnerKind?
    /// Owner's name, if given.
    public var ownerName: String?
    /// Owner's phone as written in the file (checked to be a Vietnamese number, not rewritten).
    public var ownerPhone: String?
    /// Recording schedule; default ``RecordingSchedule/always`` (24/7).
    public var schedule: RecordingSchedule?
    /// Days footage is kept; default 30.
    public var retentionDays: Int?
    /// Life-cycle state; default ``CameraStatus/pending`` (imported cameras await verification).
    public var status: CameraStatus?
    /// Registration time; default ``updatedAt`` if given, else the import time.
    public var createdAt: Date?
    /// Last change; default ``createdAt`` if given, else the import time.
    public var updatedAt: Date?
    /// Row version; default 1.
    public var version: Int?
    /// Information from the file that has no camera field (OSM: `camera:type`, `camera:mount`,
    /// `camera:angle` (the tilt), `surveillance`), as `key=value` pairs separated by `; `.
    public var notes: String?

    /// Ward of a draft that names none.
    public static let unknownWard = "unknown"
    /// Default field of view for a camera with a known heading, degrees.
    public static let defaultFOV = 90.0
    /// Default range, metres.
    public static let defaultRange = 30.0
    /// Default retention, days.
    public static let defaultRetentionDays = 30

    /// A draft with the required fields; everything else unset.
    public init(id: String, lat: Double, lon: Double, address: String) {
        self.id = id
        self.lat = lat
        self.lon = lon
        self.address = address
    }

    /// The draft of an existing camera (every field set): what an export of it reads back as.
    public init(_ c: Camera) {
        self.init(id: c.id, lat: c.lat, lon: c.lon, address: c.address)
        siteKind = c.siteKind
        ward = c.ward
        heading = c.heading
        fov = c.fov
        range = c.range
        mountHeight = c.mountHeight
        ownerKind = c.ownerKind
        ownerName = c.ownerName
        ownerPhone = c.ownerPhone
        schedule = c.schedule
        retentionDays = c.retentionDays
        status = c.status
        createdAt = c.createdAt
        updatedAt = c.updatedAt
        version = c.version
    }

    /// The camera with every unset field defaulted (see each property); `now` is the time of
    /// the import, used for unset timestamps.
    public func camera(now: Date = Date()) -> Camera {
        let created = createdAt ?? updatedAt ?? now
        return Camera(id: id, lat: lat, lon: lon, siteKind: siteKind ?? .other, address: address,
                      ward: ward ?? Self.unknownWard, heading: heading,
                      fov: fov ?? (heading == nil ? 360 : Self.defaultFOV), range: range ?? Self.defaultRange,
                      mountHeight: mountHeight, ownerKind: ownerKind ?? .household, ownerName: ownerName,
                      ownerPhone: ownerPhone, schedule: schedule ?? .always,
                      retentionDays: retentionDays ?? Self.defaultRetentionDays, status: status ?? .pending,
                      createdAt: created, updatedAt: updatedAt ?? created, version: version ?? 1)
    }

    /// The problems of the defaulted camera (``Camera/validate()``), plus `updated_at` before
    /// `created_at` (a database constraint), plus `position` when a jurisdiction is given and
    /// the position is outside it.
    public func validate(jurisdiction: Jurisdiction? = nil) -> [FieldError] {
        let c = camera(now: Date(timeIntervalSince1970: 0))
        var errors = c.validate()
        if c.updatedAt < c.createdAt { errors.append(FieldError("updated_at", "must not be before created_at")) }
        if let jurisdiction, errors.allSatisfy({ $0.field != "lat" && $0.field != "lon" }),
           let e = jurisdiction.check(lat: lat, lon: lon) {
            errors.append(e)
        }
        return errors
    }
}

/// Why one row (record, feature or node) of an import file was refused.
public struct ImportRowError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The row's number (see ``ImportRow/number``).
    public var number: Int
    /// The field as the file names it (a CSV column, a GeoJSON property or member, an OSM tag
    /// or attribute), or `record` for a CSV record that cannot be split into fields, or
    /// `position` for a position outside the jurisdiction.
    public var field: String
    /// Why it was refused.
    public var reason: String

    /// Creates an error.
    public init(number: Int, field: String, reason: String) {
        self.number = number
        self.field = field
        self.reason = reason
    }

    /// `#<number> <field>: <reason>`.
    public var description: String { "#\(number) \(field): \(reason)" }
}

/// One row of an import file: a draft, or the reason it was refused.
public struct ImportRow: Sendable, Equatable {
    /// Where the row is: for CSV the physical line on which the record starts (the header is
    /// line 1); for GeoJSON the 1-based index of the feature in `features`; for OSM the node's
    /// id (a node with several directions gives several rows with the same number).
    public let number: Int
    /// The draft, or why the row was refused.
    public let result: Result<CameraDraft, ImportRowError>

    /// Creates a row.
    public init(number: Int, result: Result<CameraDraft, ImportRowError>) {
        self.number = number
        self.result = result
    }

    /// The draft, if the row was accepted.
    public var draft: CameraDraft? {
        if case .success(let d) = result { return d }
        return nil
    }

    /// The error, if the row was refused.
    public var error: ImportRowError? {
        if case .failure(let e) = result { return e }
        return nil
    }
}

/// A file that cannot be imported at all (as opposed to a bad row, see ``ImportRowError``).
public struct ImportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The line the problem is on, when known.
    public var line: Int?
    /// What is wrong.
    public var reason: String

    /// Creates an error.
    public init(line: Int? = nil, _ reason: String) {
        self.line = line
        self.reason = reason
    }

    /// `line <n>: <reason>` or the reason alone.
    public var description: String { line.map { "line \($0): \(reason)" } ?? reason }
}

// MARK: - Values

/// Text clean-up applied to every imported text field.
enum ImportText {
    /// Trimmed of surrounding whitespace and newlines and normalised to NFC (Vietnamese letters
    /// with diacritics as single precomposed characters, as typed on most keyboards).
    static func clean(_ s: String) -> String {
        TextCleaning.nfc(TextCleaning.trimmed(s))
    }
}

/// A raw value from a file, before it is read as a field.
enum RawValue {
    /// Text (every CSV value; JSON strings; OSM tag values).
    case text(String)
    /// A JSON number, exactly as the file wrote it.
    case number(Double, text: String)
    /// A JSON `true`/`false`.
    case bool(Bool)
    /// A JSON array or object.
    case structured
}

/// Strict readers of the values in import files.
enum ImportValue {
    /// A decimal number: optional sign, digits with an optional fraction (or a fraction alone),
    /// optional exponent. No hexadecimal, `inf`, `nan`, spaces inside or thousands separators.
    static func decimal(_ s: String) -> Double? {
        var sawDigit = false, sawDot = false, sawExp = false, expDigit = true
        var prev: UInt8 = 0
        // Alongside the check, the value of a plain decimal (no exponent): its digits as an
        // integer and how many of them follow the point.
        var mantissa: UInt64 = 0, digits = 0, fractionDigits = 0, negative = false
        var i = 0
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if sawExp { expDigit = true } else {
                    sawDigit = true
                    if mantissa != 0 || c != UInt8(ascii: "0") { digits += 1 }
                    if digits <= 19 { mantissa = mantissa &* 10 &+ UInt64(c &- UInt8(ascii: "0")) }
                    if sawDot { fractionDigits += 1 }
                }
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                guard i == 0 || prev == UInt8(ascii: "e") || prev == UInt8(ascii: "E") else { return nil }
                if i == 0 { negative = c == UInt8(ascii: "-") }
            case UInt8(ascii: "."):
                guard !sawDot, !sawExp else { return nil }
                sawDot = true
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                guard sawDigit, !sawExp else { return nil }
                sawExp = true
                expDigit = false
            default:
                return nil
            }
            prev = c
            i += 1
        }
        guard sawDigit, expDigit else { return nil }
        // Clinger's fast path: an integer below 2⁵³ and a power of ten up to 10²² are both exact
        // doubles, so one division rounds correctly — the same double `strtod` gives, without it.
        if !sawExp, digits <= 15, fractionDigits < Self.powersOfTen.count {
            let v = Double(mantissa) / Self.powersOfTen[fractionDigits]
            return negative ? -v : v
        }
        return Double(s)
    }

    /// 10⁰ … 10²², each exact in a double.
    private static let powersOfTen: [Double] = (0...22).map { (e: Int) -> Double in
        var p = 1.0
        for _ in 0..<e { p *= 10 }
        return p
    }

    /// A whole number: optional sign and decimal digits only.
    static func integer(_ s: String) -> Int? {
        guard !s.isEmpty, s.utf8.dropFirst(s.hasPrefix("-") || s.hasPrefix("+") ? 1 : 0)
            .allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        return Int(s)
    }

    /// An RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS`, an optional fraction (up to 9 digits,
    /// rounded to the microsecond, PostgreSQL's precision), and `Z` or an offset `±HH:MM`,
    /// `±HHMM` or `±HH`. A space may stand for the `T` (PostgreSQL's text form).
    static func timestamp(_ s: String) -> Date? {
        // Read in place (a copy of the bytes was an allocation a row, a `Character` compare
        // per separator a grapheme check).
        var s = s
        return s.withUTF8 { timestamp(utf8: $0) }
    }

    private static func timestamp(utf8 b: UnsafeBufferPointer<UInt8>) -> Date? {
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var v = 0
            for k in i..<i + n {
                guard (48...57).contains(b[k]) else { return nil }
                v = v * 10 + Int(b[k] - 48)
            }
            i += n
            return v
        }
        func expect(_ c: Unicode.Scalar) -> Bool {
            guard i < b.count, b[i] == UInt8(ascii: c) else { return false }
            i += 1
            return true
        }
        guard let y = digits(4), expect("-"), let mo = digits(2), expect("-"), let d = digits(2) else { return nil }
        guard i < b.count, b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return nil }
        i += 1
        guard let h = digits(2), expect(":"), let mi = digits(2), expect(":"), let sec = digits(2) else { return nil }
        guard (1...12).contains(mo), d >= 1, d <= CivilDate.daysInMonth(year: y, month: mo),
              h <= 23, mi <= 59, sec <= 59 else { return nil }
        var micros: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var frac: Int64 = 0, n = 0
            while i < b.count, (48...57).contains(b[i]) {
                guard n < 9 else { return nil }
                frac = frac * 10 + Int64(b[i] - 48)
                n += 1
                i += 1
            }
            guard n > 0 else { return nil }
            for _ in n..<9 { frac *= 10 }
            micros = (frac + 500) / 1000
        }
        var offset = 0
        guard i < b.count else { return nil }
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = digits(2), oh <= 23 else { return nil }
            var om = 0
            if i < b.count {
                _ = expect(":")
                guard let m = digits(2), m <= 59 else { return nil }
                om = m
            }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let seconds = Int64(CivilDate.daysFromCivil(year: y, month: mo, day: d)) * 86_400
            + Int64(h * 3600 + mi * 60 + sec - offset)
        return Date(timeIntervalSince1970: Double(seconds * 1_000_000 + micros) / 1_000_000)
    }

    /// A number from `JSONSerialization`, exactly as written in the JSON text. Foundation on
    /// Linux returns most decimals as `NSDecimalNumber`, whose `doubleValue` is not always the
    /// nearest double, so those are read back from their decimal text. `nil` for a boolean or a
    /// non-number.
    static func jsonNumber(_ v: Any) -> (value: Double, text: String)? {
        guard let n = v as? NSNumber else { return nil }
        if String(cString: n.objCType) == "c" { return nil }  // a JSON true/false
        if let d = v as? NSDecimalNumber {
            let text = d.description
            return (Double(text) ?? d.doubleValue, text)
        }
        return (n.doubleValue, n.description)
    }

    /// A JSON value as a ``RawValue``, or `nil` for JSON `null`.
    static func json(_ v: Any?) -> RawValue? {
        guard let v, !(v is NSNull) else { return nil }
        if let s = v as? String { return .text(s) }
        if let n = v as? NSNumber {
            if String(cString: n.objCType) == "c" { return .bool(n.boolValue) }
            if let r = jsonNumber(v) { return .number(r.value, text: r.text) }
        }
        return .structured
    }
}

/// Reads the fields of one row from raw values, the same way for every format.
struct DraftReader {
    /// The row's number.
    let number: Int
    /// How the format names a field in messages.
    let name: (CameraField) -> String

    func fail(_ field: CameraField, _ reason: String) -> ImportRowError {
        ImportRowError(number: number, field: name(field), reason: reason)
    }

    /// Text (cleaned), or `nil` when missing or blank.
    func text(_ field: CameraField, _ raw: RawValue?) throws(ImportRowError) -> String? {
        switch raw {
        case nil: return nil
        case .text(let s):
            let t = ImportText.clean(s)
            return t.isEmpty ? nil : t
        case .number, .bool, .structured:
            throw fail(field, "must be text")
        }
    }

    func requiredText(_ field: CameraField, _ raw: RawValue?) throws(ImportRowError) -> String {
        guard let t = try text(field, raw) else { throw fail(field, "is required") }
        return t
    }

    /// A number, from a JSON number or from text, or `nil` when missing or blank.
    func number(_ field: CameraField, _ raw: RawValue?) throws(ImportRowError) -> Double? {
        switch raw {
        case nil: return nil
        case .number(let d, _): return d
        case .text(let s):
            let t = TextCleaning.trimmed(s, newlines: false)
            if t.isEmpty { return nil }
            guard let d = ImportValue.decimal(t) else { throw fail(field, "must be a number, not '\(Self.clip(t))'") }
            return d
        case .bool, .structured:
            throw fail(field, "must be a number")
        }
    }

    func requiredNumber(_ field: CameraField, _ raw: RawValue?) throws(ImportRowError) -> Double {
        guard let d = try number(field, raw) else { throw fail(field, "is required") }
        return d
    }

    /// A whole number, from a JSON number or from text, or `nil` when missing or blank.
    func integer(_ field: CameraField, _ raw: RawValue?) throws(ImportRowError) -> Int? {
        switch raw {
        case nil: return nil
        case .number(let d, let text):
            guard let i = ImportValue.integer(text) ?? (d.rounded() == d && abs(d) < 1e15 ? Int(d) : nil) else {
                throw fail(field, "must be a whole number, not \(text)")
            }
            return i
        case .text(let s):
            let t = TextCleaning.trimmed(s, newlines: false)
            if t.isEmpty { return nil }
            guard let i = ImportValue.integer(t) else { throw fail(field, "must be a whole number, not '\(Self.clip(t))'") }
            return i
        case .bool, .structured:
            throw fail(field, "must be a whole number")
        }
    }

    /// One of an enum's raw values (case-insensitive), or `nil` when missing or blank.
    func choice<E: RawRepresentable & CaseIterable>(_ field: CameraField, _ raw: RawValue?, _: E.Type) throws(ImportRowError) -> E?
        where E.RawValue == String
    {
        guard let t = try text(field, raw) else { return nil }
        guard let e = E(rawValue: t.lowercased()) else {
            throw fail(field, "must be one of \(E.allCases.map(\.rawValue).joined(separator: ", ")), not '\(Self.clip(t))'")
        }
        return e
    }

    func schedule(_ raw: RawValue?) throws(ImportRowError) -> RecordingSchedule? {
        guard let t = try text(.schedule, raw) else { return nil }
        guard let s = RecordingSchedule(text: t) else {
            throw fail(.schedule, "must be 24/7 or HH:MM-HH:MM with two different times, not '\(Self.clip(t))'")
        }
        return s
    }

    func timestamp(_ field: CameraField, _ raw: RawValue?) throws(ImportRowError) -> Date? {
        guard let t = try text(field, raw) else { return nil }
        guard let d = ImportValue.timestamp(t) else {
            throw fail(field, "must be an RFC 3339 timestamp such as 2022-06-30T12:00:00Z, not '\(Self.clip(t))'")
        }
        return d
    }

    func phone(_ raw: RawValue?) throws(ImportRowError) -> String? {
        guard let t = try text(.ownerPhone, raw) else { return nil }
        guard VietnamesePhone.normalize(t) != nil else {
            throw fail(.ownerPhone, "must be a Vietnamese mobile or landline number, not '\(Self.clip(t))'")
        }
        return t
    }

    /// Reads every field with `value` (which returns a field's raw value, `nil` when absent)
    /// and checks the result; the first problem found is thrown.
    func draft(_ value: (CameraField) -> RawValue?, jurisdiction: Jurisdiction?) throws(ImportRowError) -> CameraDraft {
        var d = CameraDraft(id: try requiredText(.id, value(.id)),
                            lat: try requiredNumber(.lat, value(.lat)),
                            lon: try requiredNumber(.lon, value(.lon)),
                            address: "")
        d.siteKind = try choice(.siteKind, value(.siteKind), SiteKind.self)
        d.address = try requiredText(.address, value(.address))
        d.ward = try text(.ward, value(.ward))
        d.heading = try number(.heading, value(.heading))
        d.fov = try number(.fov, value(.fov))
        d.range = try number(.range, value(.range))
        d.mountHeight = try number(.mountHeight, value(.mountHeight))
        d.ownerKind = try choice(.ownerKind, value(.ownerKind), OwnerKind.self)
        d.ownerName = try text(.ownerName, value(.ownerName))
        d.ownerPhone = try phone(value(.ownerPhone))
        d.schedule = try schedule(value(.schedule))
        d.retentionDays = try integer(.retentionDays, value(.retentionDays))
        d.status = try choice(.status, value(.status), CameraStatus.self)
        d.createdAt = try timestamp(.createdAt, value(.createdAt))
        d.updatedAt = try timestamp(.updatedAt, value(.updatedAt))
        d.version = try integer(.version, value(.version))
        try check(d, jurisdiction: jurisdiction)
        return d
    }

    /// Throws the first problem of ``CameraDraft/validate(jurisdiction:)``, naming the field as
    /// the format names it.
    func check(_ d: CameraDraft, jurisdiction: Jurisdiction?) throws(ImportRowError) {
        if let e = d.validate(jurisdiction: jurisdiction).first {
            let field = CameraField(validationName: e.field).map(name) ?? e.field
            throw ImportRowError(number: number, field: field, reason: e.reason)
        }
    }

    /// A value shortened for a message.
    static func clip(_ s: String) -> String {
        s.count <= 40 ? s : String(s.prefix(40)) + "…"
    }
}
