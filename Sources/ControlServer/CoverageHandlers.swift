import ControlProtocol
import Foundation
import Geo
import NIOConcurrencyHelpers
import Postgres
import Registry
import RegistryStore

// MARK: - Job registry
//
// Background jobs (coverage runs) live in a process-wide table keyed by the service's
// `ObjectIdentifier` and the run id (run ids come from each database's sequence, so two services
// of one process — as in the tests — may share ids). An entry keeps a weak reference to its
// service so that an entry of a service that is gone is never mistaken for a new one's. Entries
// of finished jobs stay until their service goes away (they are small); `JOB STATUS` falls back
// to PostgreSQL for runs this process does not hold (e.g. after a restart).
//
// A job is a detached `Task` that runs the engine on a thread of its own (the engine is
// synchronous GEOS work; a dedicated thread keeps it off the cooperative pool and the event
// loops, so the socket — including `JOB STATUS` — keeps answering). Cancelling the task (`JOB
// CANCEL`) sets the job's flag, which the engine checks between tiles and between suggestions.

/// The live state of one background job. All mutable state is behind `box`.
final class CoverageJob: Sendable {
    enum State: String, Sendable { case running, complete, cancelled, failed }
    struct Live: Sendable {
        var state: State = .running
        var phase = "queued"
        var fraction = 0.0
        var cancelRequested = false
        var error: String?
        var finishedAt: Date?
        var task: Task<Void, Never>?
    }
    let id: Int64
    let startedAt: Date
    weak let service: RegistryService?
    let box = NIOLockedValueBox(Live())

    init(id: Int64, startedAt: Date, service: RegistryService) {
        self.id = id
        self.startedAt = startedAt
        self.service = service
    }

    var live: Live { box.withLockedValue { $0 } }
    var isCancelRequested: Bool { box.withLockedValue { $0.cancelRequested } }

    func report(_ p: CoverageProgress) {
        box.withLockedValue { $0.phase = p.phase; $0.fraction = max($0.fraction, p.fraction) }
    }

    func finish(_ state: State, error: String? = nil) {
        box.withLockedValue {
            $0.state = state
            $0.error = error
            $0.finishedAt = Date()
            if state == .complete { $0.fraction = 1; $0.phase = "done" }
        }
    }
}

private struct JobKey: Hashable, Sendable {
    let service: ObjectIdentifier
    let id: Int64
}

private let coverageJobs = NIOLockedValueBox<[JobKey: CoverageJob]>([:])

extension ProtocolError.Code {
    /// `COVERAGE RESULT`/`MAP` of a run that is not complete (running, cancelled or failed).
    static let notComplete = ProtocolError.Code("not_complete")
    /// `COVERAGE RUN` without a ward layer.
    static let noLayers = ProtocolError.Code("no_layers")
}

extension RegistryService {
    func job(_ id: Int64) -> CoverageJob? {
        coverageJobs.withLockedValue { jobs in
            jobs = jobs.filter { $0.value.service != nil }
            return jobs[JobKey(service: ObjectIdentifier(self), id: id)]
        }
    }

    /// Handles `COVERAGE …`.
    func handleCoverage(_ command: CoverageCommand) async throws -> Reply {
        switch command {
        case .run(let r): return try await startCoverage(r)
        case .result(let id, let n): return try await coverageResult(id, stretches: n)
        case .map(let id, let ward): return try await coverageMap(id, ward: ward)
        case .layers:
            let counts = try await database().withConnection { try CoverageRepository.layerCounts(on: $0) }
            return ok { w in
                w.field("wards", counts.wards)
                w.field("streets", counts.streets)
            }
        }
    }

    /// Handles `JOB …`.
    func handleJob(_ command: JobCommand) async throws -> Reply {
        switch command {
        case .status(let id):
            // A live job's status is answered on the event loop (`handleNow`): this is a run
            // of another process, or of an earlier one, read from the database.
            return try await storedRunReply(id)
        case .cancel(let id):
            if let job = job(id) {
                let task = job.box.withLockedValue { live -> Task<Void, Never>? in
                    if live.state == .running { live.cancelRequested = true }
                    return live.task
                }
                task?.cancel()
                await task?.value
                return jobReply(job)
            }
            // Not this process's job: a `running` row would be a leftover; end it.
            let id64 = id
            let ended = try await database().withConnection { try CoverageRepository.end(run: id64, status: "cancelled", error: "cancelled", on: $0) }
            _ = ended
            return try await storedRunReply(id)
        }
    }

    func jobReply(_ job: CoverageJob) -> Reply {
        let live = job.live
        let end = live.finishedAt ?? Date()
        let elapsed = end.timeIntervalSince(job.startedAt)
        return ok { w in
            w.field("id", Int(job.id))
            w.field("kind", "coverage")
            w.field("status", live.state.rawValue)
            w.field("phase", live.phase)
            w.key("percent"); w.value(live.fraction * 100, decimals: 1)
            w.key("elapsed_s"); w.value(elapsed, decimals: 3)
            if live.state == .running, live.fraction > 0.02 {
                w.key("eta_s"); w.value(elapsed * (1 - live.fraction) / live.fraction, decimals: 1)
            } else {
                w.field("eta_s", live.state == .running ? nil : 0 as Double?)
            }
            w.field("error", live.error)
        }
    }

    private func storedRunReply(_ id: Int64) async throws -> Reply {
        guard let run = try await database().withConnection({ try CoverageRepository.run(id, on: $0) }) else {
            throw ProtocolError(.notFound, "no job with id \(id)", field: "id")
        }
        return ok { w in
            w.field("id", Int(run.id))
            w.field("kind", "coverage")
            w.field("status", run.status)
            w.field("phase", run.status == "complete" ? "done" : run.status)
            w.field("percent", run.status == "complete" ? 100 : 0)
            w.key("elapsed_s"); w.value((run.finishedAt ?? Date()).timeIntervalSince(run.startedAt), decimals: 3)
            w.field("eta_s", run.status == "running" ? nil : 0 as Double?)
            w.field("error", run.error)
        }
    }

    private func startCoverage(_ r: CoverageRunRequest) async throws -> Reply {
        let store = try database()
        let at = try r.at.map { try Self.time($0, field: "at") }
        let (wards, streets) = try await store.withConnection { c in
            (try CoverageRepository.wards(on: c), try CoverageRepository.streets(on: c))
        }
        guard !wards.isEmpty else {
            throw ProtocolError(.noLayers, "there is no ward layer: import one (camreg layer import wards FILE, or IMPORT BEGIN format=wards-geojson)")
        }
        if let name = r.ward, !wards.contains(where: { $0.name == name }) {
            throw ProtocolError(.notFound, "no ward named \(name); known: \(wards.map(\.name).joined(separator: ", "))", field: "ward")
        }
        let started = Date()
        let parameters = CoverageParameters(ward: r.ward, at: at, referenceDate: at ?? started, days: r.days, minRange: r.minRange,
                                            suggest: r.suggest, suggestRange: r.range, suggestFOV: r.fov, tileSize: r.tile, map: r.map,
                                            stretchLimit: 1000)
        var pw = JSONWriter()
        pw.object { o in
            o.field("ward", r.ward)
            o.field("at", r.at)
            o.field("suggest", r.suggest)
            o.field("min_range", r.minRange)
            o.field("days", r.days)
            o.field("range", r.range)
            o.field("fov", r.fov)
            o.field("tile", r.tile)
            o.field("map", r.map)
        }
        let paramsText = pw.string
        let id = try await store.withConnection { try CoverageRepository.createRun(parameters: paramsText, on: $0) }
        let job = CoverageJob(id: id, startedAt: started, service: self)
        coverageJobs.withLockedValue { $0[JobKey(service: ObjectIdentifier(self), id: id)] = job }
        let cameras = index.list(after: nil, limit: Int.max) { _ in true }
        let windowStart = parameters.referenceDate.addingTimeInterval(-Double(parameters.days) * 86_400)
        let task = Task.detached {
            await Self.runJob(job, store: store, cameras: cameras, wards: wards, streets: streets,
                              parameters: parameters, windowStart: windowStart)
        }
        job.box.withLockedValue { $0.task = task }
        return ok { w in
            w.field("id", Int(id))
            w.field("job", Int(id))
            w.field("status", "running")
        }
    }

    private static func runJob(_ job: CoverageJob, store: PostgresClient, cameras: [Camera], wards: [CoverageWard],
                               streets: [CoverageStreet], parameters: CoverageParameters, windowStart: Date) async {
        let id = job.id
        // The final writes run in a task of their own: this one may be cancelled (JOB CANCEL),
        // and the run's row must still be ended.
        func end(_ status: String, _ error: String?) async {
            _ = await Task.detached {
                try? await store.withConnection { try CoverageRepository.end(run: id, status: status, error: error, on: $0) }
            }.value
        }
        do {
            job.report(.init(phase: "loading", fraction: 0.005))
            let incidents = try await store.withConnection {
                try CoverageRepository.incidents(from: windowStart, to: parameters.referenceDate, on: $0)
            }
            let result = try await withTaskCancellationHandler {
                try await runOnNewThread(name: "camreg-coverage") {
                    try CoverageEngine.run(cameras: cameras, wards: wards, streets: streets, incidents: incidents,
                                           parameters: parameters, progress: { job.report($0) },
                                           isCancelled: { job.isCancelRequested })
                }
            } onCancel: {
                job.box.withLockedValue { $0.cancelRequested = true }
            }
            if job.isCancelRequested { throw CoverageCancelled() }
            job.report(.init(phase: "storing", fraction: 0.98))
            let summary = summaryJSON(result, elapsed: Date().timeIntervalSince(job.startedAt))
            let stretches = result.stretches.map(stretchJSON).joined(separator: "\n")
            let done = try await Task.detached {
                try await store.withConnection {
                    try CoverageRepository.complete(run: id, result: result, summary: summary, stretches: stretches, on: $0)
                }
            }.value
            job.finish(done ? .complete : .cancelled)
        } catch where error is CoverageCancelled || error is CancellationError || job.isCancelRequested {
            await end("cancelled", "cancelled")
            job.finish(.cancelled)
        } catch {
            let message = "\(error)"
            await end("failed", message)
            job.finish(.failed, error: message)
        }
    }

    static func figuresJSON(_ f: CoverageFigures, into w: inout JSONWriter) {
        w.object { o in
            o.field("ward", f.ward)
            o.field("cameras", f.cameras)
            o.key("street_m"); o.value(f.streetLength, decimals: 2)
            o.key("covered_m"); o.value(f.coveredLength, decimals: 2)
            o.key("covered_share"); o.value(f.coveredShare, decimals: 5)
            o.key("area_m2"); o.value(f.area, decimals: 1)
            o.key("covered_area_m2"); o.value(f.coveredArea, decimals: 1)
            o.key("covered_area_share"); o.value(f.coveredAreaShare, decimals: 5)
            o.field("intersections", f.intersections)
            o.field("intersections_unseen", f.unseenIntersections)
            o.field("intersections_single", f.singleIntersections)
            o.field("intersections_multi", f.multiIntersections)
            o.field("incidents", f.incidents)
            o.field("incidents_unseen", f.unseenIncidents)
            o.key("gap_score"); o.value(f.gapScore, decimals: 3)
        }
    }

    static func summaryJSON(_ r: CoverageResult, elapsed: Double) -> String {
        var w = JSONWriter()
        w.object { o in
            o.key("town"); figuresJSON(r.town, into: &o)
            o.field("cameras_counted", r.camerasCounted)
            o.field("tiles", r.tiles)
            o.field("stretch_count", r.stretchCount)
            o.key("compute_s"); o.value(elapsed, decimals: 3)
            o.key("suggestions")
            o.array { a in
                for s in r.suggestions {
                    a.object { x in
                        x.field("rank", s.rank)
                        x.field("site", s.site)
                        x.field("ward", s.ward)
                        x.key("lat"); x.value(s.lat, decimals: 7)
                        x.key("lon"); x.value(s.lon, decimals: 7)
                        x.field("heading", s.heading.map { ($0 * 10).rounded() / 10 })
                        x.field("fov", s.fov)
                        x.field("range_m", s.range)
                        x.key("gain_m"); x.value(s.gain, decimals: 2)
                        x.key("weighted_gain"); x.value(s.weightedGain, decimals: 2)
                        x.key("covered_after_m"); x.value(s.coveredAfter, decimals: 2)
                    }
                }
            }
        }
        return w.string
    }

    static func stretchJSON(_ s: CoverageStretch) -> String {
        var w = JSONWriter()
        w.object { o in
            o.field("ward", s.ward)
            o.field("street", s.street)
            o.key("length_m"); o.value(s.length, decimals: 2)
            o.field("weight", s.weight)
            o.key("score"); o.value(s.score, decimals: 2)
            o.key("lat"); o.value(s.lat, decimals: 7)
            o.key("lon"); o.value(s.lon, decimals: 7)
        }
        return w.string
    }

    private func completeRun(_ id: Int64) async throws -> CoverageRepository.Run {
        guard let run = try await database().withConnection({ try CoverageRepository.run(id, on: $0) }) else {
            throw ProtocolError(.notFound, "no coverage run with id \(id)", field: "id")
        }
        guard run.status == "complete" else {
            throw ProtocolError(.notComplete, "coverage run \(id) is \(run.status), not complete", field: "id")
        }
        return run
    }

    private func coverageResult(_ id: Int64, stretches n: Int) async throws -> Reply {
        let run = try await completeRun(id)
        let rows = try await database().withConnection { try CoverageRepository.wardRows(id, on: $0) }
        let stretchLines = (run.stretches ?? "").split(separator: "\n").prefix(n)
        return ok { w in
            w.field("id", Int(id))
            w.field("status", run.status)
            w.key("parameters"); w.raw(Array(run.parameters.utf8))
            w.field("started_at", ISO8601Text.format(run.startedAt))
            w.field("finished_at", run.finishedAt.map(ISO8601Text.format))
            w.key("wards")
            w.array { a in for r in rows { Self.figuresJSON(r.figures, into: &a) } }
            w.key("summary"); w.raw(Array((run.summary ?? "{}").utf8))
            w.key("stretches")
            w.array { a in for line in stretchLines { a.raw(Array(line.utf8)) } }
        }
    }

    private func coverageMap(_ id: Int64, ward: String?) async throws -> Reply {
        let run = try await completeRun(id)
        let rows = try await database().withConnection { try CoverageRepository.wardRows(id, ward: ward, map: true, on: $0) }
        if let ward, rows.isEmpty { throw ProtocolError(.notFound, "run \(id) has no ward \(ward)", field: "ward") }
        var parts = rows.compactMap(\.map).filter { !$0.isEmpty }
        if let s = run.suggestionsGeoJSON, !s.isEmpty { parts.append(s) }
        let features = "[" + parts.joined(separator: ",") + "]"
        return ok { w in
            w.field("id", Int(id))
            w.field("map_stored", rows.contains { $0.map != nil })
            w.key("features"); w.raw(Array(features.utf8))
        }
    }

    /// `IMPORT COMMIT` of a reference layer (`wards-geojson`, `streets-geojson`); `nil` for
    /// other formats. Replaces the layer in one transaction.
    func commitLayerImport(_ upload: ConnectionSession.Upload) async throws -> Reply? {
        guard CoverageCommands.layerFormats.contains(upload.format) else { return nil }
        let store = try database()
        let data = Data(upload.data)
        do {
            if upload.format == "wards-geojson" {
                let wards = try CoverageLayerImport.wards(data, nameProperty: upload.options["name_property"])
                let n = try await store.withConnection { try CoverageRepository.replaceWards(wards, source: "import", on: $0) }
                return ok { w in
                    w.field("committed", true)
                    w.field("layer", "wards")
                    w.field("rows", wards.count)
                    w.field("imported", n)
                    w.field("rejected_count", 0)
                    w.key("rejected"); w.array { _ in }
                    w.key("names"); w.array { a in for x in wards { a.value(x.name) } }
                }
            } else {
                let streets = try CoverageLayerImport.streets(data)
                let n = try await store.withConnection { try CoverageRepository.replaceStreets(streets, source: "import", on: $0) }
                return ok { w in
                    w.field("committed", true)
                    w.field("layer", "streets")
                    w.field("rows", streets.count)
                    w.field("imported", n)
                    w.field("rejected_count", 0)
                    w.key("rejected"); w.array { _ in }
                }
            }
        } catch let e as CoverageLayerError {
            throw ProtocolError(.badFile, "the layer cannot be imported: \(e)")
        }
    }
}
