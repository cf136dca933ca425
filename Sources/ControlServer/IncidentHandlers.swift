import ControlProtocol
import Foundation
import NIOConcurrencyHelpers
import Postgres
import Registry
import RegistryStore

// MARK: - Per-service incident state
//
// The incident index lives outside `RegistryService` (whose stored properties and start-up are
// not this file's): it is loaded lazily from PostgreSQL by the first incident command a service
// answers, and cached in a process-wide table keyed by the service's `ObjectIdentifier`. The
// entry also holds a weak reference to the service, so that an entry left by a service that is
// gone (whose address a new service may reuse) is never mistaken for the new one's; dead
// entries are pruned on every lookup. Loading runs once per service (concurrent first requests
// await the same task; a failed load is forgotten so that the next request retries). Every
// `INCIDENT ADD` and incident import adds what it committed to the index before replying, so the
// next query on any connection sees it. Incidents recorded by other daemons on the same
// database arrive through the change feed (FeedHandlers.swift, `applyIncidentsFromFeed`).
//
// Incident uploads (`INCIDENT IMPORT …`) are kept in a process-wide table by a random token
// returned by `BEGIN` (the connection's session object is not this file's), bounded in size,
// number and idle time.

private struct IncidentIndexSlot: Sendable {
    weak var service: RegistryService?
    let task: Task<IncidentIndex, Error>
}

private let incidentIndexes = NIOLockedValueBox<[ObjectIdentifier: IncidentIndexSlot]>([:])

/// One incident upload in progress.
private struct IncidentUpload: Sendable {
    let owner: ObjectIdentifier
    weak var service: RegistryService?
    let format: String
    let options: [String: String]
    var data: [UInt8] = []
    var touched: Date
}

/// Bounds of the incident upload table.
enum IncidentUploadLimits {
    /// Largest upload, bytes.
    static let maxUploadBytes = 64 << 20
    /// Largest total of all uploads held, bytes.
    static let maxTotalBytes = 256 << 20
    /// Most uploads held at once.
    static let maxUploads = 32
    /// Uploads idle longer than this are dropped, seconds.
    static let idleTimeout: TimeInterval = 3600
}

private let incidentUploads = NIOLockedValueBox<[String: IncidentUpload]>([:])

// The error codes `time_without_offset`, `bad_time_window`, `time_window_too_long` and
// `invalid_geometry` are built from `IncidentInputError.Code`'s raw values.

extension IncidentInputError {
    var protocolError: ProtocolError {
        let code: ProtocolError.Code = self.code == .missingValue ? .missingOption : ProtocolError.Code(self.code.rawValue)
        return ProtocolError(code, message, field: field)
    }
}

/// Runs `body`, reporting an ``IncidentInputError`` as the matching ``ProtocolError``.
private func checked<T>(_ body: () throws(IncidentInputError) -> T) throws(ProtocolError) -> T {
    do { return try body() } catch { throw error.protocolError }
}

extension RegistryService {
    /// Handles the incident commands.
    func handleIncident(_ command: IncidentCommand) async throws -> Reply {
        switch command {
        case .add(let r):
            return try await addIncident(r)
        case .get(let id):
            let got = try await database().withConnection { try IncidentRepository.get(id: id, on: $0) }
            guard let got else { throw ProtocolError(.notFound, "no incident with id \(id)", field: "id") }
            let (incident, links) = got
            return ok { w in
                w.key("incident")
                incidentJSON(incident, links: links, into: &w)
            }
        case .list(let q):
            let window = try checked { () throws(IncidentInputError) in try IncidentTimes.filter(from: q.from, to: q.to) }
            let index = try await incidentIndex()
            let page = try index.list(caseID: q.caseID, kind: q.kind, from: window.from, to: window.to,
                                      bbox: q.bbox.map { ($0.minLat, $0.minLon, $0.maxLat, $0.maxLon) },
                                      after: q.after, limit: q.limit + 1)
            let shown = page.prefix(q.limit)
            return ok { w in
                w.field("count", shown.count)
                w.key("incidents")
                w.array { a in for i in shown { incidentJSON(i, links: nil, into: &a) } }
                w.field("next_cursor", page.count > q.limit ? shown.last.map { Int($0.id) } : nil)
            }
        case .near(let lat, let lon, let radius, let from, let to, let limit):
            let window = try checked { () throws(IncidentInputError) in try IncidentTimes.filter(from: from, to: to) }
            let index = try await incidentIndex()
            let hits = try index.near(lat: lat, lon: lon, radius: radius, from: window.from, to: window.to, limit: limit)
            return ok { w in
                w.field("count", hits.count)
                w.key("incidents")
                w.array { a in
                    for h in hits {
                        incidentJSON(h.incident, links: nil, into: &a) { o in
                            o.key("distance_m"); o.value(h.distance, decimals: 3)
                        }
                    }
                }
            }
        case .forCamera(let id, let from, let to, let after, let limit):
            let window = try checked { () throws(IncidentInputError) in try IncidentTimes.filter(from: from, to: to) }
            let rows = try await database().withConnection { c in
                try IncidentRepository.forCamera(id, from: window.from, to: window.to, after: after, limit: limit + 1, on: c)
            }
            if rows.isEmpty, index.camera(id: id) == nil {
                throw ProtocolError(.notFound, "no camera with id \(id)", field: "id")
            }
            let shown = rows.prefix(limit)
            return ok { w in
                w.field("camera", id)
                w.field("count", shown.count)
                w.key("incidents")
                w.array { a in
                    for (incident, link) in shown {
                        incidentJSON(incident, links: nil, into: &a) { o in
                            o.key("link")
                            self.linkJSON(link, camera: nil, into: &o)
                        }
                    }
                }
                w.field("next_cursor", rows.count > limit ? shown.last.map { Int($0.0.id) } : nil)
            }
        case .importBegin(let format, let options):
            _ = try database()
            let token = Self.newUploadToken()
            let now = Date()
            // (Errors are returned, not thrown, from the lock closures: typed throws through
            // `withLockedValue` crashes the Swift 6.3 compiler.)
            let refusal = incidentUploads.withLockedValue { table -> ProtocolError? in
                table = table.filter { $0.value.service != nil && now.timeIntervalSince($0.value.touched) < IncidentUploadLimits.idleTimeout }
                guard table.count < IncidentUploadLimits.maxUploads else {
                    return ProtocolError(.unavailable, "too many incident uploads in progress (\(IncidentUploadLimits.maxUploads)); commit or abort one")
                }
                table[token] = IncidentUpload(owner: ObjectIdentifier(self), service: self, format: format, options: options, touched: now)
                return nil
            }
            if let refusal { throw refusal }
            return ok { w in
                w.field("upload", token)
                w.field("format", format)
            }
        case .importData(let token, let text):
            guard let bytes = Base64.decode(text) else {
                throw ProtocolError(.invalidValue, "the chunk is not valid base64", field: "data")
            }
            let outcome = incidentUploads.withLockedValue { table -> Result<Int, ProtocolError> in
                guard var u = table[token], u.owner == ObjectIdentifier(self), u.service === self else {
                    return .failure(ProtocolError(.noUpload, "no incident upload \(token); send INCIDENT IMPORT BEGIN first", field: "upload"))
                }
                let total = table.values.reduce(0) { $0 + $1.data.count }
                guard u.data.count + bytes.count <= IncidentUploadLimits.maxUploadBytes else {
                    table[token] = nil
                    return .failure(ProtocolError(.outOfRange, "the upload is larger than \(IncidentUploadLimits.maxUploadBytes >> 20) MiB; dropped", field: "data"))
                }
                guard total + bytes.count <= IncidentUploadLimits.maxTotalBytes else {
                    return .failure(ProtocolError(.unavailable, "the server holds too much upload data; try again later (the upload is kept)"))
                }
                u.data.append(contentsOf: bytes)
                u.touched = Date()
                table[token] = u
                return .success(u.data.count)
            }
            let size = try outcome.get()
            return ok { w in
                w.field("upload", token)
                w.field("bytes", size)
            }
        case .importAbort(let token):
            let had = incidentUploads.withLockedValue { table -> Bool in
                guard let u = table[token], u.owner == ObjectIdentifier(self) else { return false }
                table[token] = nil
                return true
            }
            return ok { $0.field("aborted", had) }
        case .importCommit(let token):
            let upload = incidentUploads.withLockedValue { table -> IncidentUpload? in
                guard let u = table[token], u.owner == ObjectIdentifier(self), u.service === self else { return nil }
                table[token] = nil
                return u
            }
            guard let upload else {
                throw ProtocolError(.noUpload, "no incident upload \(token); send INCIDENT IMPORT BEGIN first", field: "upload")
            }
            return try await commitIncidentImport(upload)
        }
    }

    // MARK: Index

    /// The incident index of this service, loaded from PostgreSQL on first use (see the top of
    /// this file).
    func incidentIndex() async throws -> IncidentIndex {
        let store = try database()
        let key = ObjectIdentifier(self)
        let task = incidentIndexes.withLockedValue { table -> Task<IncidentIndex, Error> in
            table = table.filter { $0.value.service != nil }
            if let slot = table[key], slot.service === self { return slot.task }
            let t = Task<IncidentIndex, Error> {
                try await store.withConnection { c in try IncidentIndex(incidents: IncidentRepository.all(on: c)) }
            }
            table[key] = IncidentIndexSlot(service: self, task: t)
            return t
        }
        do {
            return try await task.value
        } catch {
            incidentIndexes.withLockedValue { table in
                if let slot = table[key], slot.service === self, slot.task == task { table[key] = nil }
            }
            throw error
        }
    }

    static func newUploadToken() -> String {
        var g = SystemRandomNumberGenerator()
        return String(g.next(), radix: 16) + String(g.next(), radix: 16)
    }

    // MARK: Add

    private func addIncident(_ r: IncidentAddRequest) async throws -> Reply {
        let limits = IncidentLimits.current
        let (text, window, shape) = try checked { () throws(IncidentInputError) in
            let text = try Incident.text(caseID: r.caseID, kind: r.kind, description: r.description, limits: limits)
            let window = try IncidentTimes.window(at: r.at, from: r.from, to: r.to, limits: limits)
            let shape: IncidentShape
            if let p = r.point {
                shape = try IncidentShape.point(lat: p.lat, lon: p.lon)
            } else {
                shape = try IncidentShape.parse(wkt: r.wkt ?? "", field: "wkt")
            }
            return (text, window, shape)
        }
        let store = try database()
        let now = Date()
        let incident = Incident(caseID: text.caseID, kind: text.kind, window: window, shape: shape,
                                radius: r.radius ?? limits.defaultRadius, description: text.description, createdAt: now)
        let index = try await incidentIndex()
        let links = try incident.candidateCameras(in: self.index, now: now)
        let stored = try await store.withConnection { c in try IncidentRepository.insert([(incident, links)], on: c) }
        try index.add(stored)
        return ok { w in
            w.key("incident")
            incidentJSON(stored[0], links: links, into: &w)
        }
    }

    // MARK: Import

    private func commitIncidentImport(_ upload: IncidentUpload) async throws -> Reply {
        let store = try database()
        var options = IncidentImportOptions()
        options.separator = upload.options["separator"]?.unicodeScalars.first ?? ","
        options.defaultCase = upload.options["case"]
        options.defaultKind = upload.options["kind"]
        for f in IncidentImportOptions.fields {
            if let c = upload.options["col_\(f)"] { options.columns[f] = c }
        }
        let limits = IncidentLimits.current
        let radius = try upload.options["radius"].map { v throws(ProtocolError) in try Values.radius(v, limits: self.limits) } ?? limits.defaultRadius
        let data = Data(upload.data)
        let inputs: [Result<IncidentRowInput, IncidentRowError>]
        do {
            inputs = upload.format == "csv" ? try IncidentImporter.parseCSV(data, options: options)
                                            : try IncidentImporter.parseGeoJSON(data, options: options)
        } catch let e as ImportError {
            throw ProtocolError(.badFile, "the file cannot be read: \(e)")
        }
        let now = Date()
        let index = try await incidentIndex()
        var good: [(incident: Incident, links: [IncidentCameraLink])] = []
        var rejected: [IncidentRowError] = []
        for input in inputs {
            switch input.flatMap({ $0.incident(radius: radius, now: now, limits: limits) }) {
            case .failure(let e): rejected.append(e)
            case .success(let incident):
                good.append((incident, try incident.candidateCameras(in: self.index, now: now)))
            }
        }
        let allOrNothing = ["yes", "true"].contains(upload.options["all_or_nothing"]?.lowercased() ?? "")
        var stored: [Incident] = []
        if !(allOrNothing && !rejected.isEmpty) {
            let items = good
            stored = try await store.withConnection { c in try IncidentRepository.insert(items, on: c) }
            try index.add(stored)
        }
        let committed = !(allOrNothing && !rejected.isEmpty)
        let linkCount = committed ? good.reduce(0) { $0 + $1.links.count } : 0
        return ok { w in
            w.field("committed", committed)
            w.field("rows", inputs.count)
            w.field("imported", stored.count)
            w.field("links", linkCount)
            w.key("ids")
            w.array { a in for i in stored { a.value(Int(i.id)) } }
            w.field("rejected_count", rejected.count)
            w.key("rejected")
            w.array { a in
                for e in rejected.prefix(1000) {
                    a.object { o in
                        o.field("number", e.number)
                        o.field("field", e.field)
                        o.field("code", e.code)
                        o.field("reason", e.reason)
                    }
                }
            }
        }
    }

    // MARK: JSON

    private func incidentJSON(_ i: Incident, links: [IncidentCameraLink]?, into w: inout JSONWriter,
                              extra: ((inout JSONWriter) -> Void)? = nil) {
        w.object { o in
            o.field("id", Int(i.id))
            o.field("case", i.caseID)
            o.field("kind", i.kind)
            o.field("from", IncidentTime.format(i.window.from))
            o.field("to", IncidentTime.format(i.window.to))
            o.field("instant", i.window.isInstant)
            o.key("geometry")
            o.object { g in
                g.field("type", i.shape.kind.rawValue)
                g.field("wkt", i.shape.wkt)
                if i.shape.kind == .point {
                    g.field("lat", i.shape.parts[0][0].lat)
                    g.field("lon", i.shape.parts[0][0].lon)
                }
                g.key("bbox")
                g.array { a in
                    a.value(i.shape.minLat); a.value(i.shape.minLon); a.value(i.shape.maxLat); a.value(i.shape.maxLon)
                }
            }
            o.field("radius_m", i.radius)
            o.field("description", i.description)
            o.field("created_at", ISO8601Text.format(i.createdAt))
            extra?(&o)
            if let links {
                o.field("camera_count", links.count)
                o.key("cameras")
                o.array { a in for l in links { linkJSON(l, camera: index.camera(id: l.cameraID), into: &a) } }
            }
        }
    }

    private func linkJSON(_ l: IncidentCameraLink, camera: Camera?, into w: inout JSONWriter) {
        w.object { o in
            o.field("id", l.cameraID)
            o.key("distance_m"); o.value(l.distance, decimals: 3)
            o.field("sees", l.sees)
            o.field("footage", l.footage.rawValue)
            o.field("expires_at", l.expiresAt.map { IncidentTime.format($0) })
            if let c = camera {
                o.field("lat", c.lat)
                o.field("lon", c.lon)
                let pii = RequestContext.showsOwnerData(ownerID: c.ownerID)
                o.field("address", pii ? c.address : nil)
                o.field("status", c.status.rawValue)
                o.field("owner_phone", pii ? c.ownerPhone : nil)
            }
        }
    }
}
