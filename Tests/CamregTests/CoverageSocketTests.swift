import ControlProtocol
import ControlServer
import Foundation
import Postgres
import Registry
import RegistryStore
import Testing

/// A migrated database with the demo cameras and the demo's coverage layers, made once (the
/// first caller's task is shared, so concurrent tests wait for the same set-up).
actor CoverageDemoDatabase {
    static let shared = CoverageDemoDatabase()
    private var task: Task<(PostgresConfiguration, [Camera]), Error>?

    func get() async throws -> (config: PostgresConfiguration, cameras: [Camera]) {
        if task == nil {
            task = Task {
                let config = try await TestPostgres.shared.migratedDatabase("cov")
                let c = try PostgresConnection(configuration: config)
                let inventory = DemoInventory.generate()
                _ = try CameraRepository.loadIfEmpty(inventory.cameras, on: c)
                let stored = try CoverageRepository.loadDemoLayersIfEmpty(wards: try CoverageDemoLayers.wards(),
                                                                           streets: CoverageDemoLayers.streets(inventory), on: c)
                guard stored.wards, stored.streets else { throw TestFailure("demo layers not stored") }
                return (config, try CameraRepository.all(on: c))
            }
        }
        let (config, cameras) = try await task!.value
        return (config, cameras)
    }
}

@Suite("Coverage over the socket")
struct CoverageSocketTests {
    static func number(_ v: Any?) -> Double { (v as? NSNumber)?.doubleValue ?? .nan }

    /// Polls `JOB STATUS` until the job is no longer running; returns every status seen.
    static func wait(_ client: TestClient, _ id: Int, timeout: Double = 300) async throws -> [[String: Any]] {
        var seen: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let s = try await client.request("JOB STATUS \(id)")
            seen.append(s)
            if s["status"] as? String != "running" { return seen }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("job \(id) still running after \(timeout) s")
    }

    @Test func runReportsProgressStoresResultsAndSurvivesARestart() async throws {
        let (config, cameras) = try await CoverageDemoDatabase.shared.get()
        let store = PostgresClient(configuration: config, maximumConnections: 4)
        defer { Task { await store.shutdown() } }
        let id: Int = try await withTestServer(index: try CameraIndex(cameras: cameras), store: store) { path, _ in
            let client = try await TestClient(path: path)
            let started = try await client.request("COVERAGE RUN suggest=5")
            let id = try #require((started["id"] as? NSNumber)?.intValue)
            #expect(started["status"] as? String == "running")
            let statuses = try await Self.wait(client, id)
            let last = try #require(statuses.last)
            #expect(last["status"] as? String == "complete")
            #expect(Self.number(last["percent"]) == 100)
            for s in statuses {
                #expect(s["kind"] as? String == "coverage")
                #expect((0...100).contains(Self.number(s["percent"])))
                #expect(Self.number(s["elapsed_s"]) >= 0)
                #expect(s["phase"] is String)
            }

            let result = try await client.request("COVERAGE RESULT \(id) stretches=5")
            let wards = try #require(result["wards"] as? [[String: Any]])
            #expect(wards.count == 8)
            let summary = try #require(result["summary"] as? [String: Any])
            let town = try #require(summary["town"] as? [String: Any])
            for key in ["street_m", "covered_m", "area_m2", "covered_area_m2", "gap_score"] {
                let sum = wards.reduce(0) { $0 + Self.number($1[key]) }
                #expect(abs(sum - Self.number(town[key])) <= max(0.05, 1e-6 * sum), "\(key): wards \(sum), town \(Self.number(town[key]))")
            }
            for key in ["cameras", "intersections", "intersections_unseen", "intersections_single", "intersections_multi"] {
                #expect(wards.reduce(0) { $0 + Self.number($1[key]) } == Self.number(town[key]), "\(key)")
            }
            for w in wards + [town] {
                #expect((0...1).contains(Self.number(w["covered_share"])) && (0...1).contains(Self.number(w["covered_area_share"])))
            }
            #expect((result["stretches"] as? [Any])?.count == 5)
            let suggestions = try #require(summary["suggestions"] as? [[String: Any]])
            #expect(suggestions.count == 5)
            var covered = Self.number(town["covered_m"])
            for s in suggestions {
                #expect(Self.number(s["covered_after_m"]) > covered)
                covered = Self.number(s["covered_after_m"])
            }
            // The same figures as the engine computes directly.
            let direct = try await CoverageDemoFixture.shared.get().result
            #expect(abs(Self.number(town["covered_m"]) - direct.town.coveredLength) < 0.01)
            #expect(Self.number(town["intersections_unseen"]) == Double(direct.town.unseenIntersections))

            let map = try await client.request("COVERAGE MAP \(id)")
            let features = try #require(map["features"] as? [[String: Any]])
            let layers = Set(features.compactMap { ($0["properties"] as? [String: Any])?["layer"] as? String })
            #expect(layers == ["ward", "covered", "gap", "intersection", "sector", "suggestion", "suggestion_sector"])
            let one = try await client.request("COVERAGE MAP \(id) ward=\"Phường Mỹ Phước\"")
            #expect(((one["features"] as? [Any])?.count ?? 0) < features.count)
            #expect(errorCode(try await client.request("COVERAGE MAP \(id) ward=Nowhere")) == "not_found")
            #expect(errorCode(try await client.request("COVERAGE RUN ward=Nowhere")) == "not_found")
            #expect(errorCode(try await client.request("COVERAGE RUN at=2022-06-26T06:40")) == "time_without_offset")
            #expect(errorCode(try await client.request("COVERAGE RUN suggest=51")) == "out_of_range")
            #expect(errorCode(try await client.request("JOB STATUS 999999")) == "not_found")
            // One ward only.
            let w = try await client.request("COVERAGE RUN ward=\"Xã An Tây\" map=no")
            let wid = try #require((w["id"] as? NSNumber)?.intValue)
            #expect(try await Self.wait(client, wid).last?["status"] as? String == "complete")
            let wr = try await client.request("COVERAGE RESULT \(wid)")
            #expect((wr["wards"] as? [[String: Any]])?.map { $0["ward"] as? String } == ["Xã An Tây"])
            await client.close()
            return id
        }
        // A new service on the same database (a restarted daemon) still has the run.
        try await withTestServer(index: try CameraIndex(cameras: cameras), store: store) { path, _ in
            let client = try await TestClient(path: path)
            let s = try await client.request("JOB STATUS \(id)")
            #expect(s["status"] as? String == "complete")
            #expect((try await client.request("COVERAGE RESULT \(id)")["wards"] as? [Any])?.count == 8)
            await client.close()
        }
    }

    /// A cancelled run ends `cancelled` everywhere (reply, status, database) with no results.
    /// A run takes about 10 s alone, but under the parallel suite on two cores this test's task
    /// has been starved for longer than that between learning the run's id and sending the cancel
    /// (CI, 2026-11-30): the run then completes first, which is the right answer to a late
    /// cancel. So a late cancel is checked for consistency (complete everywhere) and the test
    /// tries again; it fails unless one of four runs is really cancelled mid-run.
    @Test func cancelMidRunLeavesNoCompleteResult() async throws {
        let (config, cameras) = try await CoverageDemoDatabase.shared.get()
        let store = PostgresClient(configuration: config, maximumConnections: 4)
        defer { Task { await store.shutdown() } }
        try await withTestServer(index: try CameraIndex(cameras: cameras), store: store) { path, _ in
            let client = try await TestClient(path: path)
            let c = try PostgresConnection(configuration: config)
            var cancelledOnce = false
            for attempt in 1...4 where !cancelledOnce {
                // 100 m tiles: thousands of tiles.
                let started = try await client.request("COVERAGE RUN tile=100 suggest=10")
                let id = try #require((started["id"] as? NSNumber)?.intValue)
                // Status and cancel in one write: nothing on this side can delay the second.
                try await client.send("JOB STATUS \(id)\nJOB CANCEL \(id)")
                let running = try decodeJSON(try #require(try await client.readLine()))
                let cancelled = try decodeJSON(try #require(try await client.readLine()))
                let status = try #require(cancelled["status"] as? String)
                #expect(["cancelled", "complete"].contains(status))
                #expect(try await client.request("JOB STATUS \(id)")["status"] as? String == status)
                #expect(try c.query("SELECT status FROM coverage_runs WHERE id = $1", [String(id)]).scalar() == status)
                let wardRows = try c.query("SELECT count(*) FROM coverage_ward_results WHERE run_id = $1", [String(id)]).scalar()
                if status == "cancelled" {
                    #expect(running["status"] as? String == "running")
                    #expect(errorCode(try await client.request("COVERAGE RESULT \(id)")) == "not_complete")
                    #expect(wardRows == "0")
                    cancelledOnce = true
                } else {
                    // Too late: the run had finished; it is complete everywhere.
                    #expect(try await client.request("COVERAGE RESULT \(id)")["ok"] as? Bool == true)
                    #expect(wardRows == "8")
                    print("cancelMidRun: attempt \(attempt) reached the run after it completed; trying again")
                }
            }
            #expect(cancelledOnce, "no run was cancelled mid-run in four attempts")
            await client.close()
        }
    }

    @Test func runsLeftRunningByAStoppedDaemonAreMarkedFailed() async throws {
        let config = try await TestPostgres.shared.migratedDatabase("covfail")
        let c = try PostgresConnection(configuration: config)
        let id = try CoverageRepository.createRun(parameters: "{}", on: c)
        #expect(try CoverageRepository.run(id, on: c)?.status == "running")
        #expect(try CoverageRepository.failInterruptedRuns(on: c) == 1)
        let run = try #require(try CoverageRepository.run(id, on: c))
        #expect(run.status == "failed" && run.summary == nil && run.finishedAt != nil)
        // A failed run cannot be completed afterwards.
        let fake = CoverageResult(wards: [], town: CoverageFigures(ward: "x"), stretches: [], stretchCount: 0, suggestions: [],
                                  camerasCounted: 0, tiles: 0, mapFeatures: [:], suggestionFeatures: "")
        #expect(try CoverageRepository.complete(run: id, result: fake, summary: "{}", stretches: "", on: c) == false)
        #expect(try CoverageRepository.run(id, on: c)?.status == "failed")
    }

    @Test func layersAreImportedThroughTheUploadPath() async throws {
        let config = try await TestPostgres.shared.migratedDatabase("covlayer")
        let store = PostgresClient(configuration: config, maximumConnections: 2)
        defer { Task { await store.shutdown() } }
        // No cameras: every street is a gap and every incident unseen.
        try await withTestServer(index: try CameraIndex(cameras: []), store: store) { path, _ in
            let client = try await TestClient(path: path)
            #expect(errorCode(try await client.request("COVERAGE RUN")) == "no_layers")
            func upload(_ format: String, _ data: Data) async throws -> [String: Any] {
                _ = try await client.request("IMPORT BEGIN format=\(format)")
                _ = try await client.request("IMPORT DATA data=\(data.base64EncodedString())")
                return try await client.request("IMPORT COMMIT")
            }
            let real = try Data(contentsOf: sharedData.appendingPathComponent("bencat-wards.geojson"))
            let wards = try await upload("wards-geojson", real)
            #expect(wards["imported"] as? Int == 8)
            #expect((wards["names"] as? [String])?.first == "Phường Mỹ Phước")
            let streets = try await upload("streets-geojson", Data("""
                {"type":"FeatureCollection","features":[
                 {"type":"Feature","properties":{"name":"Đường 1","highway":"residential"},
                  "geometry":{"type":"LineString","coordinates":[[106.600,11.140],[106.610,11.140]]}},
                 {"type":"Feature","properties":{"name":"Hẻm 2","highway":"service"},
                  "geometry":{"type":"MultiLineString","coordinates":[[[106.605,11.135],[106.605,11.145]],[[106.601,11.141],[106.601,11.142]]]}}]}
                """.utf8))
            #expect(streets["imported"] as? Int == 3)
            let layers = try await client.request("COVERAGE LAYERS")
            #expect(layers["wards"] as? Int == 8 && layers["streets"] as? Int == 3)
            #expect(errorCode(try await upload("wards-geojson", Data("{\"type\":\"Feature\"}".utf8))) == "bad_file")
            #expect(errorCode(try await upload("streets-geojson", Data("""
                {"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[106.6,11.1]}}]}
                """.utf8))) == "bad_file")
            // A refused file changes nothing.
            #expect(try await client.request("COVERAGE LAYERS")["streets"] as? Int == 3)
            let c = try PostgresConnection(configuration: config)
            #expect(try CoverageRepository.streets(on: c).map(\.kind) == ["street", "alley", "alley"])

            // Incidents from the incidents table weigh the gaps: one on Đường 1 six days before
            // `at`, one a year earlier (outside the 90 days).
            #expect(try await client.request("INCIDENT ADD case=C-1 kind=robbery at=2022-06-20T10:00+07:00 point=11.14,106.6075")["ok"] as? Bool == true)
            #expect(try await client.request("INCIDENT ADD case=C-2 kind=robbery at=2021-06-20T10:00+07:00 point=11.14,106.6025")["ok"] as? Bool == true)

            // The real wards with the imported streets: the crossing of the two lines is an intersection.
            let run = try await client.request("COVERAGE RUN at=2022-06-26T12:00+07:00")
            let id = try #require((run["id"] as? NSNumber)?.intValue)
            #expect(try await Self.wait(client, id).last?["status"] as? String == "complete")
            let result = try await client.request("COVERAGE RESULT \(id) stretches=10")
            let town = try #require((result["summary"] as? [String: Any])?["town"] as? [String: Any])
            #expect(Self.number(town["intersections"]) == 1 && Self.number(town["intersections_unseen"]) == 1)
            let streetKm = Self.number(town["street_m"]) / 1000
            #expect(streetKm > 1 && streetKm < 2.4)
            #expect(Self.number(town["covered_m"]) == 0)
            #expect(Self.number(town["incidents"]) == 1 && Self.number(town["incidents_unseen"]) == 1)
            // Σ length × (1 + unseen incidents within 50 m): Đường 1 (≈1.09 km) counts twice.
            let gap = Self.number(town["gap_score"])
            #expect(gap > streetKm + 0.5 && gap < streetKm + 1.2, "gap score \(gap), streets \(streetKm) km")
            let top = try #require((result["stretches"] as? [[String: Any]])?.first)
            #expect(top["street"] as? String == "Đường 1" && Self.number(top["weight"]) == 2)
            await client.close()
        }
    }
}
