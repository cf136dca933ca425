/// Commands that register owners and cameras and move cameras through their life cycle.
/// Field values are checked for syntax here (numbers, ids); their meaning (ranges, kinds,
/// phone numbers) is checked by the registry, which reports every bad field at once.
enum LifecycleCommands {
    static func opt(_ name: String, _ placeholder: String, _ summary: String, required: Bool = false) -> OptionSpec {
        OptionSpec.opt(name, placeholder, summary, required: required)
    }

    /// The fields of a camera, as options.
    static let cameraFields: [OptionSpec] = [
        opt("owner", "<owner-id>", "The registered owner (OWNER ADD gives the id)."),
        opt("lat", "<deg>", "Latitude, WGS84."),
        opt("lon", "<deg>", "Longitude, WGS84."),
        opt("site", "<kind>", "intersection, alley, street, building or other."),
        opt("address", "<text>", "Street address (quote it: address=\"Số 12, Đường NA3\")."),
        opt("ward", "<text>", "Ward or commune."),
        opt("heading", "<deg|none>", "Direction faced, degrees clockwise from north (none = unknown or 360°)."),
        opt("fov", "<deg>", "Horizontal field of view, 0 < fov ≤ 360 (default 90, or 360 without a heading)."),
        opt("range", "<m>", "Useful range in metres, 0 < range ≤ 1000 (default 30)."),
        opt("mount_height", "<m>", "Mount height in metres."),
        opt("owner_kind", "<kind>", "household, business, boarding_house, company or public (default: the owner's kind)."),
        opt("owner_name", "<text>", "Contact name, when there is no registered owner."),
        opt("owner_phone", "<phone>", "Contact phone, when there is no registered owner."),
        opt("schedule", "<24/7|HH:MM-HH:MM>", "When it records (default 24/7)."),
        opt("retention", "<days>", "Days footage is kept, 1–3650 (default 30)."),
    ]

    static let ownerFields: [OptionSpec] = [
        opt("kind", "<kind>", "household, business, boarding_house, company or public."),
        opt("name", "<text>", "Name of the person or organisation."),
        opt("phone", "<phone>", "Vietnamese phone number (0912 345 678, +84 912 345 678, 0274 …)."),
        opt("email", "<address>", "E-mail address (optional)."),
        opt("address", "<text>", "Postal address."),
        opt("ward", "<text>", "Ward or commune."),
        opt("consent", "<yes|no>", "Consent to share footage with the police."),
        opt("consent_until", "<YYYY-MM-DD>", "Last day the consent is valid (optional)."),
        opt("consent_note", "<text>", "Note on the consent (optional)."),
    ]

    static func version(_ options: [String: String], required: Bool) throws(ProtocolError) -> Int? {
        guard let v = options["version"] else {
            if required { throw ProtocolError(.missingOption, "version=<n> is required: the row version you read last", field: "version") }
            return nil
        }
        return try Values.int(v, field: "version", range: 1...Int(Int32.max))
    }

    static func ownerID(_ s: String, field: String = "id") throws(ProtocolError) -> Int64 {
        Int64(try Values.int(s, field: field, range: 1...Int(Int64.max)))
    }

    static func fieldsOnly(_ options: [String: String], except: Set<String>) -> [String: String] {
        options.filter { !except.contains($0.key) }
    }

    static func listOptions(maxLimit: Int) -> [OptionSpec] {
        [opt("ward", "<text>", "Only this ward."), opt("status", "<status>", "Only this status."),
         opt("owner", "<owner-id>", "Only this owner's cameras."), opt("site", "<kind>", "Only this kind of site."),
         opt("after", "<cursor>", "The next_cursor of the previous page."),
         opt("limit", "<n>", "Page size, 1–\(maxLimit).")]
    }

    static func listQuery(_ options: [String: String], maxLimit: Int) throws(ProtocolError) -> CameraListQuery {
        var q = CameraListQuery()
        q.ward = options["ward"]
        if let s = options["status"] {
            guard ["pending", "active", "offline", "retired"].contains(s.lowercased()) else {
                throw ProtocolError(.invalidValue, "status must be pending, active, offline or retired", field: "status")
            }
            q.status = s.lowercased()
        }
        if let o = options["owner"] { q.owner = try ownerID(o, field: "owner") }
        if let s = options["site"] {
            guard ["intersection", "alley", "street", "building", "other"].contains(s.lowercased()) else {
                throw ProtocolError(.invalidValue, "site must be intersection, alley, street, building or other", field: "site")
            }
            q.site = s.lowercased()
        }
        if let a = options["after"] { q.after = try Values.cameraID(a, field: "after") }
        if let l = options["limit"] { q.limit = try Values.int(l, field: "limit", range: 1...maxLimit) }
        return q
    }

    static let specs: [CommandSpec] = [
        CommandSpec(words: ["OWNER", "ADD"], access: .registrarWrite, arguments: [], optionalArguments: 0,
                    options: ownerFields.map { ["kind", "name", "phone", "address", "ward"].contains($0.name) ? opt($0.name, $0.placeholder, $0.summary, required: true) : $0 },
                    summary: "Adds a camera owner; answers with its id.") { _, options, _ in
            .ownerAdd(fields: options)
        },
        CommandSpec(words: ["OWNER", "GET"], access: .ownerRead, arguments: ["id"], optionalArguments: 0, options: [],
                    summary: "One owner, with the number of cameras held.") { args, _, _ throws(ProtocolError) in
            .ownerGet(id: try ownerID(args[0]))
        },
        CommandSpec(words: ["OWNER", "UPDATE"], access: .ownerWrite, arguments: ["id"], optionalArguments: 0,
                    options: [opt("version", "<n>", "The owner's version as read last.", required: true)] + ownerFields,
                    summary: "Changes an owner's fields (optimistic concurrency: a stale version is a conflict).") { args, options, _ throws(ProtocolError) in
            .ownerUpdate(id: try ownerID(args[0]), version: try version(options, required: true)!, fields: fieldsOnly(options, except: ["version"]))
        },
        CommandSpec(words: ["CAMERA", "REGISTER"], access: .ownerWrite, arguments: [], optionalArguments: 0,
                    options: [opt("id", "<id>", "Camera id (default: the next BC-<n>).")]
                        + cameraFields.map { ["lat", "lon", "site", "address", "ward"].contains($0.name) ? opt($0.name, $0.placeholder, $0.summary, required: true) : $0 }
                        + [opt("distinct", "<yes|no>", "Register even if it looks like a duplicate of the owner's camera."),
                           opt("by", "<name>", "Who registers it (recorded in the change log).")],
                    summary: "Registers a camera as pending.") { _, options, _ throws(ProtocolError) in
            if let id = options["id"] { _ = try Values.cameraID(id) }
            return .cameraRegister(fields: options)
        },
        CommandSpec(words: ["CAMERA", "VERIFY"], access: .registrarWrite, arguments: ["id"], optionalArguments: 0,
                    options: [opt("by", "<name>", "Who verified it.", required: true), opt("version", "<n>", "Expected version (optional).")],
                    summary: "Verifies a pending camera: pending → active, recording who and when.") { args, options, _ throws(ProtocolError) in
            let by = options["by"]!.split(separator: " ").joined(separator: " ")
            guard !by.isEmpty else { throw ProtocolError(.invalidValue, "by must name who verified the camera", field: "by") }
            return .cameraVerify(id: try Values.cameraID(args[0]), by: by, version: try version(options, required: false))
        },
        CommandSpec(words: ["CAMERA", "UPDATE"], access: .ownerWrite, arguments: ["id"], optionalArguments: 0,
                    options: [opt("version", "<n>", "The camera's version as read last.", required: true)] + cameraFields
                        + [opt("by", "<name>", "Who changes it.")],
                    summary: "Changes a camera's fields (a stale version is a conflict and changes nothing).") { args, options, _ throws(ProtocolError) in
            .cameraUpdate(id: try Values.cameraID(args[0]), version: try version(options, required: true)!, fields: fieldsOnly(options, except: ["version"]))
        },
        CommandSpec(words: ["CAMERA", "STATUS"], access: .ownerWrite, arguments: ["id", "status"], optionalArguments: 0,
                    options: [opt("reason", "<text>", "Why (required for retired)."), opt("version", "<n>", "Expected version (optional)."),
                              opt("by", "<name>", "Who changes it.")],
                    summary: "Sets the status: active ↔ offline, any → retired (retired cameras are kept but never searched).") { args, options, _ throws(ProtocolError) in
            let status = args[1].lowercased()
            guard ["active", "offline", "retired", "pending"].contains(status) else {
                throw ProtocolError(.invalidValue, "status must be active, offline or retired, not \(Values.clip(args[1]))", field: "status")
            }
            return .cameraStatus(id: try Values.cameraID(args[0]), status: status, reason: options["reason"],
                                 version: try version(options, required: false), by: options["by"])
        },
        CommandSpec(words: ["CAMERA", "EXPORT"], access: .export, arguments: [], optionalArguments: 0,
                    options: [opt("format", "<csv|geojson>", "File format (CSV re-imports as it is; GeoJSON for QGIS).", required: true),
                              opt("sectors", "<yes|no>", "GeoJSON: add each camera's field-of-view sector polygon.")] + listOptions(maxLimit: 5000),
                    summary: "One page of an export file (text; the first page has the header, the last the footer; follow next_cursor).") { _, options, _ throws(ProtocolError) in
            let format = options["format"]!.lowercased()
            guard ["csv", "geojson"].contains(format) else {
                throw ProtocolError(.invalidValue, "format must be csv or geojson", field: "format")
            }
            let sectors = ["yes", "true", "1"].contains(options["sectors"]?.lowercased() ?? "no")
            var q = try listQuery(options, maxLimit: 5000)
            if options["limit"] == nil { q.limit = 1000 }
            return .cameraExport(format: format, sectors: sectors, query: q)
        },
        CommandSpec(words: ["CAMERA", "LIST"], access: .listing, arguments: [], optionalArguments: 0,
                    options: listOptions(maxLimit: 1000),
                    summary: "Lists cameras by id with filters, a page at a time (next_cursor).") { _, options, _ throws(ProtocolError) in
            .cameraList(try listQuery(options, maxLimit: 1000))
        },
    ]
}
