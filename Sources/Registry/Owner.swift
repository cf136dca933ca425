import Foundation

// Camera owners: the person, shop or organisation the police contact about a camera, their
// consent to be contacted and to share footage, and the checks on phone numbers and e-mail
// addresses. Pure values; the `owners` table (`migrations/0002_owners_lifecycle.sql`) repeats
// every rule of `Owner.validate()` as a CHECK constraint or a column type.

/// An owner's consent to be contacted and to share footage with the police.
public struct Consent: Sendable, Equatable, Hashable {
    /// Whether the owner agreed.
    public var granted: Bool
    /// The last day (inclusive) the consent is valid, or `nil` for no end date. A calendar day,
    /// stored as 00:00:00 UTC of that day (the database column is a `date`); make one with
    /// ``Consent/day(year:month:day:)``.
    public var validUntil: Date?
    /// Free-text note (how and when consent was given, conditions), at most
    /// ``Consent/maxNoteLength`` characters.
    public var note: String?

    /// Longest accepted note, in characters.
    public static let maxNoteLength = 1000

    /// Creates a consent record.
    public init(granted: Bool, validUntil: Date? = nil, note: String? = nil) {
        self.granted = granted
        self.validUntil = validUntil
        self.note = note
    }

    /// No consent given.
    public static let none = Consent(granted: false)

    /// 00:00:00 UTC of the given calendar day (proleptic Gregorian), or `nil` for an impossible
    /// date such as 2023-02-29.
    public static func day(year: Int, month: Int, day: Int) -> Date? {
        guard (1...12).contains(month), day >= 1, day <= CivilDate.daysInMonth(year: year, month: month) else { return nil }
        return Date(timeIntervalSince1970: Double(CivilDate.daysFromCivil(year: year, month: month, day: day) * 86_400))
    }

    /// Whether the consent is in force at `date`: granted, and `date` falls on or before
    /// ``validUntil`` in Vietnam's local time (UTC+7, no daylight saving).
    public func isInForce(at date: Date) -> Bool {
        guard granted else { return false }
        guard let until = validUntil else { return true }
        let localDay = ((date.timeIntervalSince1970 + 7 * 3600) / 86_400).rounded(.down)
        return localDay * 86_400 <= until.timeIntervalSince1970
    }
}

/// The owner of one or more cameras: who the police call when they need footage.
public struct Owner: Sendable, Equatable {
    /// Database id (`owners.id`, a `bigserial`); `nil` before the owner is inserted.
    public var id: Int64?
    /// Kind of owner.
    public var kind: OwnerKind
    /// Name of the person, shop or organisation (Vietnamese text, NFC).
    public var name: String
    /// Phone number in E.164 form (`+84912345678`); see ``VietnamesePhone/normalize(_:)``.
    public var phone: String
    /// E-mail address, if any.
    public var email: String?
    /// Postal address (Vietnamese text).
    public var address: String
    /// Ward or commune name.
    public var ward: String
    /// Consent to be contacted and to share footage.
    public var consent: Consent
    /// When the owner was registered.
    public var createdAt: Date
    /// When the owner was last changed (never before ``createdAt``).
    public var updatedAt: Date
    /// Row version for optimistic concurrency (starts at 1, +1 per change).
    public var version: Int

    /// Longest accepted name, in characters.
    public static let maxNameLength = 200
    /// Longest accepted address, in characters.
    public static let maxAddressLength = 500
    /// Longest accepted ward name, in characters.
    public static let maxWardLength = 100

    /// Creates an owner. Values are stored as given; call ``normalized()`` first to tidy input
    /// typed by a person, and ``validate()`` before storing.
    public init(id: Int64? = nil, kind: OwnerKind, name: String, phone: String, email: String? = nil,
                address: String, ward: String, consent: Consent = .none, createdAt: Date, updatedAt: Date,
                version: Int = 1) {
        self.id = id
        self.kind = kind
        self.name = name
        self.phone = phone
        self.email = email
        self.address = address
        self.ward = ward
        self.consent = consent
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.version = version
    }

    /// A copy with text trimmed and NFC-normalised, the phone number in E.164 form when it can
    /// be read (left as typed otherwise, so that ``validate()`` reports it), an empty e-mail
    /// turned into `nil` and the e-mail's domain lower-cased, and an empty consent note turned into `nil`.
    public func normalized() -> Owner {
        var o = self
        o.name = ImportText.clean(name)
        o.address = ImportText.clean(address)
        o.ward = ImportText.clean(ward)
        o.phone = VietnamesePhone.normalize(phone) ?? phone
        if let e = email?.trimmingCharacters(in: .whitespacesAndNewlines) {
            if e.isEmpty {
                o.email = nil
            } else if let at = e.lastIndex(of: "@") {
                o.email = String(e[..<at]) + e[at...].lowercased()
            } else {
                o.email = e
            }
        }
        if let n = consent.note.map(ImportText.clean) { o.consent.note = n.isEmpty ? nil : n }
        return o
    }

    /// Every problem with this owner's fields, one ``FieldError`` per bad field (empty when
    /// valid). Field names are the column names: `id`, `name`, `phone`, `email`, `address`,
    /// `ward`, `consent_valid_until`, `consent_note`, `updated_at`, `version`.
    public func validate() -> [FieldError] {
        var errors: [FieldError] = []
        if let id, id < 1 { errors.append(FieldError("id", "must be a positive number (or absent before insert)")) }
        func text(_ field: String, _ value: String, max: Int) {
            if value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                errors.append(FieldError(field, "must not be empty"))
            } else if value.count > max {
                errors.append(FieldError(field, "must be at most \(max) characters"))
            } else if value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                errors.append(FieldError(field, "must not contain control characters"))
            }
        }
        text("name", name, max: Self.maxNameLength)
        if VietnamesePhone.normalize(phone) != phone {
            errors.append(FieldError("phone", VietnamesePhone.normalize(phone) == nil
                ? "must be a Vietnamese mobile (03x, 05x, 07x, 08x, 09x + 7 digits) or landline (02xx, 11 digits) number"
                : "must be in E.164 form (+84…); normalise it first"))
        }
        if let email, let reason = EmailAddress.problem(email) { errors.append(FieldError("email", reason)) }
        text("address", address, max: Self.maxAddressLength)
        text("ward", ward, max: Self.maxWardLength)
        if let until = consent.validUntil {
            let t = until.timeIntervalSince1970
            if !t.isFinite || t.truncatingRemainder(dividingBy: 86_400) != 0 {
                errors.append(FieldError("consent_valid_until", "must be a calendar day (00:00 UTC)"))
            }
        }
        if let note = consent.note {
            if note.count > Consent.maxNoteLength {
                errors.append(FieldError("consent_note", "must be at most \(Consent.maxNoteLength) characters"))
            }
        }
        if updatedAt < createdAt { errors.append(FieldError("updated_at", "must not be before created_at")) }
        if version < 1 { errors.append(FieldError("version", "must be at least 1")) }
        return errors
    }
}

/// Vietnamese phone numbers: reading what people type and writing E.164 and the usual display form.
///
/// Accepted: mobiles `03x`, `05x`, `07x`, `08x`, `09x` followed by 7 digits (10 digits with the
/// leading 0), and landlines `02…` of 11 digits with the leading 0 (`02xx` + 7 digits, e.g. Bình
/// Dương `0274 xxx xxxx`, or `024`/`028` + 8 digits for Hà Nội and Hồ Chí Minh City). The
/// country code may be written `+84`, `84`, `(+84)` or `0084`, optionally followed by the
/// trunk 0 (`+84 (0) 912 …`). Digits may be grouped with spaces, dots, hyphens and
/// parentheses. Anything else — letters, other country codes, other lengths — is refused.
public enum VietnamesePhone {
    /// The number in E.164 form (`+84912345678`), or `nil` when it is not a Vietnamese mobile
    /// or landline number.
    public static func normalize(_ s: String) -> String? {
        var digits: [UInt8] = []
        var plus = false
        for u in s.unicodeScalars {
            switch u {
            case "0"..."9":
                digits.append(UInt8(u.value - 48))
            case "+":
                // Only before the first digit, and only once.
                guard digits.isEmpty, !plus else { return nil }
                plus = true
            case " ", "\u{00A0}", "\t", ".", "-", "(", ")":
                continue
            default:
                return nil
            }
        }
        var national: ArraySlice<UInt8>
        if plus {
            guard digits.starts(with: [8, 4]) else { return nil }
            national = digits.dropFirst(2)
            if national.first == 0 { national = national.dropFirst() }
        } else if digits.starts(with: [0, 0, 8, 4]) {
            national = digits.dropFirst(4)
            if national.first == 0 { national = national.dropFirst() }
        } else if digits.first == 0 {
            national = digits.dropFirst()
        } else if digits.starts(with: [8, 4]), digits.count >= 11 {
            national = digits.dropFirst(2)
            if national.first == 0 { national = national.dropFirst() }
        } else {
            return nil
        }
        guard let first = national.first else { return nil }
        switch first {
        case 3, 5, 7, 8, 9: guard national.count == 9 else { return nil }
        case 2: guard national.count == 10 else { return nil }
        default: return nil
        }
        return String(decoding: [UInt8(ascii: "+"), UInt8(ascii: "8"), UInt8(ascii: "4")] + national.map { $0 + 48 }, as: UTF8.self)
    }

    /// Whether the number (in any accepted form) is a mobile number.
    public static func isMobile(_ s: String) -> Bool {
        guard let e = normalize(s) else { return false }
        return !e.hasPrefix("+842")
    }

    /// The number as Vietnamese people write it: mobiles `0912 345 678`, landlines with a
    /// 4-digit area code `0274 123 4567`, Hà Nội and Hồ Chí Minh City `024 1234 5678`.
    /// `nil` when the number is not accepted by ``normalize(_:)``.
    public static func display(_ s: String) -> String? {
        guard let e = normalize(s) else { return nil }
        let d = Array("0" + e.dropFirst(3))
        func group(_ sizes: [Int]) -> String {
            var out: [String] = []
            var i = 0
            for n in sizes { out.append(String(d[i..<i + n])); i += n }
            return out.joined(separator: " ")
        }
        if d[1] != "2" { return group([4, 3, 3]) }
        if d[2] == "4" || d[2] == "8" { return group([3, 4, 4]) }
        return group([4, 3, 4])
    }
}

/// A simple, sane e-mail address check (not the full RFC 5322 grammar): exactly one `@`, a
/// non-empty local part of at most 64 characters, a domain of at least two non-empty
/// dot-separated labels, no whitespace or control characters, at most 254 characters in all.
public enum EmailAddress {
    /// Longest accepted address (RFC 5321 path limit minus the angle brackets).
    public static let maxLength = 254

    /// Whether `s` passes the check.
    public static func isValid(_ s: String) -> Bool { problem(s) == nil }

    /// Why `s` is refused, or `nil` when it is accepted.
    public static func problem(_ s: String) -> String? {
        if s.isEmpty { return "must not be empty (leave it out instead)" }
        if s.utf8.count > maxLength { return "must be at most \(maxLength) bytes" }
        if s.unicodeScalars.contains(where: {
            $0.properties.isWhitespace || $0.properties.generalCategory == .control
        }) { return "must not contain spaces or control characters" }
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return "must contain exactly one '@'" }
        let local = parts[0], domain = parts[1]
        if local.isEmpty { return "must have a name before the '@'" }
        if local.utf8.count > 64 { return "the part before the '@' must be at most 64 bytes" }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ !$0.isEmpty }) else {
            return "must have a domain with a dot after the '@' (e.g. example.vn)"
        }
        return nil
    }
}

/// Proleptic Gregorian calendar arithmetic on day numbers (days since 1970-01-01), after
/// Howard Hinnant's algorithms: no `Calendar`, no time zone, exact.
enum CivilDate {
    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
