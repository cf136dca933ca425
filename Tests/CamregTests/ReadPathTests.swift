import Foundation
import Testing
@testable import ControlServer
@testable import Registry

/// The search path's sharing between threads: each thread reads through its own stripe (its own
/// hold of the table, its own view of the index state, its own counters), and still sees every
/// change that returned before its search began; a swapped-out snapshot is freed at once.
@Suite("Read path: thread stripes")
struct ReadPathTests {
    /// Runs `body(i)` for `i` in `0..<n`, each on a new thread, and waits for all.
    static func onThreads<T: Sendable>(_ n: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
        let results = ResultBox<T>(count: n)
        let group = DispatchGroup()
        for i in 0..<n {
            group.enter()
            let t = Thread {
                results.set(i, Result { try body(i) })
                group.leave()
            }
            t.start()
        }
        group.wait()
        return try results.values()
    }

    final class ResultBox<T: Sendable>: @unchecked Sendable {
        private let lock = NSLock()
        private var results: [Result<T, Error>?]
        init(count: Int) { results = Array(repeating: nil, count: count) }
        func set(_ i: Int, _ r: Result<T, Error>) { lock.lock(); results[i] = r; lock.unlock() }
        func values() throws -> [T] { lock.lock(); defer { lock.unlock() }; return try results.map { try $0!.get() } }
    }

    @Test("threads started together get different stripes, each always the same")
    func stripesPerThread() throws {
        let stripes = try Self.onThreads(8) { _ -> [Int] in
            (0..<100).map { _ in ThreadStripe.current }
        }
        for s in stripes {
            #expect(Set(s).count == 1, "a thread keeps its stripe")
            #expect((0..<ThreadStripe.count).contains(s[0]))
        }
        #expect(Set(stripes.map { $0[0] }).count == 8, "eight threads, eight stripes: \(stripes.map { $0[0] })")
    }

    @Test("striped counters add up over threads; updateAll reaches every stripe")
    func stripedCounters() throws {
        let counter = Striped { 0 }
        _ = try Self.onThreads(8) { _ in
            for _ in 0..<10_000 { counter.withLocalValue { $0 += 1 } }
        }
        #expect(counter.values.reduce(0, +) == 80_000)
        counter.updateAll { $0 = 7 }
        #expect(counter.values.allSatisfy { $0 == 7 })
        let seen = try Self.onThreads(4) { _ in counter.withLocalValue { $0 } }
        #expect(seen == [7, 7, 7, 7])
    }

    @Test("latencies recorded on several threads are summarised together")
    func latenciesFromSeveralThreads() throws {
        let m = RequestMetrics()
        _ = try Self.onThreads(4) { i in
            for k in 0..<1000 { m.record(index: 0, "NEAR", seconds: Double(i * 1000 + k + 1) / 1e6) }
        }
        m.record(index: 1, "STATS", seconds: 0.5)
        let near = try #require(m.summaries()["NEAR"])
        #expect(near.count == 4000)
        #expect(abs(near.max - 4.0) < 1e-9, "the slowest of all threads, in ms: \(near.max)")
        #expect(abs(near.p50 - 2.0) < 1e-9, "the median over all threads' samples: \(near.p50)")
        #expect(m.summaries()["STATS"]?.count == 1)
    }

    @Test("a search on another thread sees a change once it has returned")
    func changesAreSeenAcrossThreads() throws {
        let base = (0..<50).map { SpatialQueryTests.camera(SpatialQueryTests.id($0), 11.0 + Double($0) * 1e-3, 106.6) }
        let index = try CameraIndex(cameras: base)
        // Searches on a pool of threads, each keeping its stripe's view between rounds.
        let lat = 11.0201, lon = 106.6001
        func found() throws -> [Set<String>] {
            try Self.onThreads(6) { _ in Set(try index.near(lat: lat, lon: lon, radius: 30, limit: 100).map(\.ref.id)) }
        }
        let before = try found()
        #expect(before.allSatisfy { !$0.contains("NEW-1") })
        index.upsert(SpatialQueryTests.camera("NEW-1", lat, lon))
        #expect(try found().allSatisfy { $0.contains("NEW-1") }, "every thread sees the upsert")
        // A retirement is a change too.
        index.upsert({ var c = SpatialQueryTests.camera("NEW-1", lat, lon, status: .retired); c.version = 2; return c }())
        #expect(try found().allSatisfy { !$0.contains("NEW-1") })
        // The same thread, which already holds a view, sees a later change.
        let sameThread = try Self.onThreads(1) { _ -> (Bool, Bool) in
            let a = try index.near(lat: lat, lon: lon, radius: 30, limit: 100).contains { $0.ref.id == "NEW-2" }
            index.upsert(SpatialQueryTests.camera("NEW-2", lat, lon))
            let b = try index.near(lat: lat, lon: lon, radius: 30, limit: 100).contains { $0.ref.id == "NEW-2" }
            return (a, b)
        }
        #expect(sameThread[0] == (false, true))
    }

    @Test("a snapshot swapped out is freed, though threads held views of it")
    func swappedOutSnapshotIsFreed() throws {
        let base = (0..<200).map { SpatialQueryTests.camera(SpatialQueryTests.id($0), 11.0 + Double($0) * 1e-4, 106.6) }
        let index = try CameraIndex(cameras: base)
        weak let old = index.snapshot
        _ = try Self.onThreads(4) { _ in try index.near(lat: 11.005, lon: 106.6, radius: 500, limit: 10).count }
        #expect(old != nil)
        index.upsert(SpatialQueryTests.camera("NEW-1", 11.005, 106.6))
        #expect(try index.rebuildIfNeeded())
        #expect(old == nil, "the old snapshot (and its table) is gone")
        #expect(index.deltaCount == 0)
        let after = try Self.onThreads(4) { _ in try index.near(lat: 11.005, lon: 106.6, radius: 5, limit: 10).map(\.ref.id) }
        #expect(after.allSatisfy { $0.contains("NEW-1") })
    }

    @Test("refs made on two threads retain different holds of one table")
    func refsHoldPerThread() throws {
        let base = (0..<20).map { SpatialQueryTests.camera(SpatialQueryTests.id($0), 11.0 + Double($0) * 1e-5, 106.6) }
        let index = try CameraIndex(cameras: base)
        let holds = try Self.onThreads(2) { _ -> [ObjectIdentifier] in
            try index.near(lat: 11.0001, lon: 106.6, radius: 100, limit: 100).map { hit in
                guard case .slot(let hold, _) = hit.ref.storage else { Issue.record("a table camera"); return ObjectIdentifier(index) }
                #expect(hold.table === index.snapshot.table)
                return ObjectIdentifier(hold)
            }
        }
        #expect(holds[0].count == 20 && holds[1].count == 20)
        #expect(Set(holds[0]).count == 1 && Set(holds[1]).count == 1, "one hold per thread")
        #expect(holds[0][0] != holds[1][0], "two threads, two holds")
    }

    @Test("point hits keep the search's order, nearest first, each hit's own values")
    func pointHitsKeepTheSearchOrder() throws {
        // Scattered, with a tie in distance, and a delta camera beside the snapshot's.
        var base = (0..<40).map { SpatialQueryTests.camera(SpatialQueryTests.id($0), 11.0 + Double(($0 * 7) % 40) * 1e-4, 106.6 + Double($0 % 3) * 1e-4) }
        base.append(SpatialQueryTests.camera("TIE-B", 11.0, 106.6))
        base.append(SpatialQueryTests.camera("TIE-A", 11.0, 106.6))
        let index = try CameraIndex(cameras: base)
        index.upsert(SpatialQueryTests.camera("DELTA", 11.001, 106.6001))
        let service = RegistryService(index: index)
        let found = try index.near(lat: 11.0015, lon: 106.6001, radius: 500, limit: 100)
        #expect(found.count == 43)
        let expected = found.map { ($0.ref.id, $0.distance, $0.bearing, $0.sees) }
        let hits = service.pointHits(found, lat: 11.0015, lon: 106.6001, window: nil, now: Date())
        #expect(hits.map { $0.camera.id(in: nil) } == expected.map(\.0), "the search's order, not reversed")
        #expect(hits.map(\.distance) == expected.map(\.1))
        #expect(hits.map(\.bearing) == expected.map(\.2))
        #expect(hits.map(\.sees) == expected.map(\.3))
        #expect(zip(hits, hits.dropFirst()).allSatisfy { $0.distance <= $1.distance })
    }

    @Test("a search read in place answers as the search with a reference per hit")
    func nearInPlaceMatchesNear() throws {
        // A tie in distance, a retired camera, and delta cameras beside the snapshot's (one of
        // them replacing a snapshot camera, moved out of the radius).
        var base = (0..<60).map { SpatialQueryTests.camera(SpatialQueryTests.id($0), 11.0 + Double(($0 * 7) % 60) * 1e-4, 106.6 + Double($0 % 5) * 1e-4) }
        base.append(SpatialQueryTests.camera("TIE-B", 11.001, 106.6))
        base.append(SpatialQueryTests.camera("TIE-A", 11.001, 106.6))
        base.append(SpatialQueryTests.camera("GONE", 11.0012, 106.6, status: .retired))
        let index = try CameraIndex(cameras: base)
        index.upsert(SpatialQueryTests.camera("DELTA", 11.002, 106.6002))
        var moved = base[3]
        moved.lat = 12.5
        moved.version += 1
        index.upsert(moved)
        for (radius, limit) in [(500.0, 100), (80.0, 100), (500.0, 7)] {
            let near = try index.near(lat: 11.0015, lon: 106.6001, radius: radius, limit: limit)
            let inPlace = try index.nearInPlace(lat: 11.0015, lon: 106.6001, radius: radius, limit: limit)
            #expect(!near.isEmpty)
            #expect(inPlace.hits.map { $0.camera.id(in: inPlace.table) } == near.map(\.ref.id))
            #expect(inPlace.hits.map(\.distance) == near.map(\.distance))
            #expect(inPlace.hits.map(\.bearing) == near.map(\.bearing))
            #expect(inPlace.hits.map(\.sees) == near.map(\.sees))
            #expect(!inPlace.hits.contains { $0.camera.id(in: inPlace.table) == "GONE" || $0.camera.id(in: inPlace.table) == base[3].id })
            // Every member read through the view is the camera's own.
            for (h, n) in zip(inPlace.hits, near) {
                let c = n.camera
                h.camera.withView(in: inPlace.table) { v in
                    #expect(String(decoding: v.id, as: UTF8.self) == c.id)
                    #expect(v.lat == c.lat && v.lon == c.lon && v.status == c.status && v.retentionDays == c.retentionDays)
                    #expect(v.address.map { String(decoding: $0, as: UTF8.self) } == c.address)
                }
                #expect(h.camera.ref(in: inPlace.table).camera == c)
                let now = Date()
                let w = try #require(IncidentWindow(from: now.addingTimeInterval(-3600), to: now.addingTimeInterval(-1800)))
                #expect(h.camera.footage(in: inPlace.table, during: w, now: now) == c.footage(during: w, now: now))
            }
            // DELTA lies 56 m from the point; the seven nearest are table cameras.
            let deltaHit = inPlace.hits.first { $0.camera.id(in: inPlace.table) == "DELTA" }
            #expect((deltaHit != nil) == (limit == 100), "radius \(radius), limit \(limit)")
            if let deltaHit, case .slot = deltaHit.camera { Issue.record("a delta camera is held by reference") }
        }
    }

    @Test("a request answered at once is the current request on its thread only, nested calls put the outer one back, and a task sees its own")
    func synchronousRequestContext() async throws {
        let a = RequestContext(identity: Identity(name: "a", label: "a", role: .investigator))
        let b = RequestContext(identity: Identity(name: "b", label: "b", role: .analyst))
        #expect(RequestContext.current == nil)
        RequestContext.withSynchronous(a) {
            #expect(RequestContext.current === a)
            RequestContext.withSynchronous(b) { #expect(RequestContext.current === b) }
            #expect(RequestContext.current === a, "the outer request is current again")
            // Another thread meanwhile sees none.
            let other = try? Self.onThreads(1) { _ in RequestContext.current == nil }
            #expect(other == [true])
            RequestContext.noteResults(3)
        }
        #expect(a.resultCount == 3)
        #expect(RequestContext.current == nil, "put back after the call")
        // A waiting handler's task sees the task's request.
        await RequestContext.$task.withValue(b) {
            await Task.yield()
            #expect(RequestContext.current === b)
        }
    }

    @Test("the literal names in search answers are the enums' raw values")
    func jsonTextsAreRawValues() {
        for s in FootageState.allCases { #expect(s.jsonText.description == s.rawValue) }
        for s in SiteKind.allCases { #expect(s.jsonText.description == s.rawValue) }
        for s in CameraStatus.allCases { #expect(s.jsonText.description == s.rawValue) }
        for s in OwnerKind.allCases { #expect(s.jsonText.description == s.rawValue) }
    }
}
