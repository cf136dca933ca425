import Foundation

/// Reads camera and owner fields given as text (control-socket options, CLI flags) into values,
/// collecting one ``FieldError`` per bad field instead of stopping at the first.
public enum FieldInput {
    /// The request option that sets a field named by ``Camera/validate()`` (`retention_days` is
    /// set by `retention=`); other names are the same.
    public static func optionName(_ field: String) -> String {
        field == "retention_days" ? "retention" : field
    }

    /// Applies the camera fields present in `fields` to `camera`. Unknown keys are ignored (the
    /// command table already refused them). Returns every field that could not be read.
    public static func apply(_ fields: [String: String], to camera: inout Camera) -> [FieldError] {
        var errors: [FieldError] = []
        func number(_ key: String) -> Double?? {
            guard let raw = fields[key] else { return .none }
            let t = raw.trimmingCharacters(in: .whitespaces)
            guard let v = Double(t), v.isFinite, !t.lowercased().contains("n"), !t.lowercased().contains("x") else {
                errors.append(FieldError(key, "must be a finite number, not '\(raw.prefix(40))'"))
                return .none
            }
            return .some(v)
        }
        if let v = number("lat") { camera.lat = v! }
        if let v = number("lon") { camera.lon = v! }
        if let s = fields["site"] {
            if let k = SiteKind(rawValue: s.lowercased()) { camera.siteKind = k } else {
                errors.append(FieldError("site", "must be one of \(SiteKind.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
        }
        if let s = fields["address"] { camera.address = ImportText.clean(s) }
        if let s = fields["ward"] { camera.ward = ImportText.clean(s) }
        if let s = fields["heading"] {
            if ["none", "", "unknown", "null"].contains(s.lowercased()) { camera.heading = nil } else if let v = number("heading") { camera.heading = v }
        }
        if let v = number("fov") { camera.fov = v! }
        if let v = number("range") { camera.range = v! }
        if let s = fields["mount_height"] {
            if ["none", "", "unknown", "null"].contains(s.lowercased()) { camera.mountHeight = nil } else if let v = number("mount_height") { camera.mountHeight = v }
        }
        if let s = fields["owner_kind"] {
            if let k = OwnerKind(rawValue: s.lowercased()) { camera.ownerKind = k } else {
                errors.append(FieldError("owner_kind", "must be one of \(OwnerKind.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
        }
        if let s = fields["owner_name"] { camera.ownerName = s.isEmpty ? nil : ImportText.clean(s) }
        if let s = fields["owner_phone"] {
            if s.isEmpty { camera.ownerPhone = nil } else if let p = VietnamesePhone.normalize(s) { camera.ownerPhone = p } else {
                errors.append(FieldError("owner_phone", "is not a Vietnamese phone number"))
            }
        }
        if let s = fields["schedule"] {
            if let sch = RecordingSchedule(text: s) { camera.schedule = sch } else {
                errors.append(FieldError("schedule", "must be 24/7 or HH:MM-HH:MM (e.g. 18:00-06:00)"))
            }
        }
        if let s = fields["retention"] {
            if let d = Int(s.trimmingCharacters(in: .whitespaces)) { camera.retentionDays = d } else {
                errors.append(FieldError("retention", "must be a whole number of days"))
            }
        }
        if let s = fields["owner"] {
            if let id = Int64(s), id > 0 { camera.ownerID = id } else {
                errors.append(FieldError("owner", "must be an owner id (a positive whole number)"))
            }
        }
        return errors
    }

    /// A draft camera for registration from `fields`: required fields are `lat`, `lon`, `site`,
    /// `address` and `ward`; defaults are fov 90 (360 without a heading), range 30 m,
    /// retention 30 days, schedule 24/7, owner kind household.
    public static func draftCamera(_ fields: [String: String], now: Date) -> (Camera, [FieldError]) {
        var camera = Camera(id: fields["id"]?.uppercased() ?? "", lat: 0, lon: 0, siteKind: .other, address: "", ward: "",
                            heading: nil, fov: 360, range: 30, mountHeight: nil, ownerKind: .household, ownerName: nil,
                            ownerPhone: nil, schedule: .always, retentionDays: 30, status: .pending,
                            createdAt: now, updatedAt: now)
        var errors = ["lat", "lon", "site", "address", "ward"].filter { fields[$0] == nil }.map { FieldError($0, "is required") }
        errors += apply(fields, to: &camera)
        if fields["fov"] == nil && camera.heading != nil { camera.fov = 90 }
        // Range checks of Camera.validate() for the fields that were read.
        let read = Set(errors.map(\.field))
        errors += camera.validate().filter { !read.contains($0.field) && !($0.field == "id" && camera.id.isEmpty)
            && !(fields[$0.field] == nil && ["lat", "lon", "address", "ward"].contains($0.field)) }
        return (camera, errors)
    }

    /// Applies the owner fields present in `fields` to `owner`.
    public static func apply(_ fields: [String: String], to owner: inout Owner) -> [FieldError] {
        var errors: [FieldError] = []
        if let s = fields["kind"] {
            if let k = OwnerKind(rawValue: s.lowercased()) { owner.kind = k } else {
                errors.append(FieldError("kind", "must be one of \(OwnerKind.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
        }
        if let s = fields["name"] { owner.name = s }
        if let s = fields["phone"] { owner.phone = s }
        if let s = fields["email"] { owner.email = s.isEmpty ? nil : s }
        if let s = fields["address"] { owner.address = s }
        if let s = fields["ward"] { owner.ward = s }
        if let s = fields["consent"] {
            switch s.lowercased() {
            case "yes", "true", "1", "có": owner.consent.granted = true
            case "no", "false", "0", "không": owner.consent.granted = false
            default: errors.append(FieldError("consent", "must be yes or no"))
            }
        }
        if let s = fields["consent_until"] {
            if s.isEmpty || s.lowercased() == "none" { owner.consent.validUntil = nil } else {
                let p = s.split(separator: "-", omittingEmptySubsequences: false)
                if p.count == 3, p[0].count == 4, let y = Int(p[0]), let m = Int(p[1]), let d = Int(p[2]),
                   let day = Consent.day(year: y, month: m, day: d) {
                    owner.consent.validUntil = day
                } else {
                    errors.append(FieldError("consent_until", "must be a date YYYY-MM-DD"))
                }
            }
        }
        if let s = fields["consent_note"] { owner.consent.note = s.isEmpty ? nil : s }
        return errors
    }

    /// A new owner from `fields` (`kind`, `name`, `phone`, `address`, `ward` required).
    public static func draftOwner(_ fields: [String: String], now: Date) -> (Owner, [FieldError]) {
        var owner = Owner(kind: .household, name: "", phone: "", address: "", ward: "", createdAt: now, updatedAt: now)
        var errors = ["kind", "name", "phone", "address", "ward"].filter { fields[$0] == nil }.map { FieldError($0, "is required") }
        errors += apply(fields, to: &owner)
        let read = Set(errors.map(\.field))
        errors += owner.normalized().validate().filter { !read.contains($0.field) && $0.field != "id" }
        return (owner, errors)
    }
}
