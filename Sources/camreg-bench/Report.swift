import Foundation

/// Everything measured in one run, as a text table and as JSON.
struct Report {
    let cameras: Int
    let region: String
    let queries: Int
    let radii: [Double]
    let seed: UInt64
    /// camregd's import and `psql \copy`, seconds: each side's median round.
    var importSeconds = 0.0
    var copySeconds = 0.0
    /// Each import round's seconds (`psql \copy`, then camregd, back to back).
    var importRounds: [Double] = []
    var copyRounds: [Double] = []
    var gistIndexSeconds = 0.0
    var redisLoadSeconds = 0.0
    var camregdColdStart = 0.0
    var camregdCachedStart = 0.0
    var camregdRSSFullLoad = 0
    var camregdRSSAfterLoad = 0
    var csvBytes = 0
    var importUploads = 1
    var cacheBytes = 0
    var redisRDBLoad = 0.0
    var camregdRSS = 0
    var redisRSS = 0
    var redisUsedMemory = 0
    var runs: [RunResult] = []
    var check = AgreementResult()

    /// The table's server column: CPU µs a query, then the kernel's share of it and the
    /// preemptions a query in brackets ("–" when the server's processes were not measured).
    static func serverCell(_ r: RunResult) -> String {
        guard let cpu = r.serverCPU else { return "–" }
        var details: [String] = []
        if let k = r.serverSystemShare { details.append(String(format: "%.0f %% kernel", k * 100)) }
        if let p = r.serverPreemptions { details.append(String(format: "%.2f preempted", p)) }
        return String(format: "%.1f", cpu) + (details.isEmpty ? "" : " (" + details.joined(separator: ", ") + ")")
    }

    /// The runs of one system in one setting, by round.
    func rounds(_ s: String, _ c: Int, _ d: Int) -> [RunResult] {
        runs.filter { $0.system == s && $0.connections == c && $0.depth == d }.sorted { $0.round < $1.round }
    }

    /// The system's run in a setting: its median round by throughput (the lower middle one
    /// of an even number).
    func run(_ s: String, _ c: Int, _ d: Int) -> RunResult? {
        let all = rounds(s, c, d).sorted { $0.qps < $1.qps }
        return all.isEmpty ? nil : all[(all.count - 1) / 2]
    }

    /// camregd's throughput ÷ the system's, round by round (each pair measured back to back).
    func roundRatios(_ s: String, _ c: Int, _ d: Int) -> [Double] {
        let mine = rounds("camregd", c, d), theirs = rounds(s, c, d)
        return zip(mine, theirs).map { $0.qps / $1.qps }
    }

    /// The median of the per-round ratios (the lower middle one of an even number).
    func ratio(_ s: String, _ c: Int, _ d: Int) -> Double? {
        let r = roundRatios(s, c, d)
        return r.isEmpty ? nil : Self.median(r)
    }

    /// The lower middle value (the median of an odd count); 0 for none.
    static func median(_ values: [Double]) -> Double {
        let v = values.sorted()
        return v.isEmpty ? 0 : v[(v.count - 1) / 2]
    }

    /// `psql \copy`'s time ÷ camregd's import time, round by round (each pair back to back).
    var importRatios: [Double] { zip(copyRounds, importRounds).map { $0 / max(1e-9, $1) } }

    /// How many rounds each setting ran.
    var roundCount: Int { runs.map(\.round).max() ?? 1 }

    func table() -> String {
        var out = "camreg-bench: \(cameras) cameras, region \(region), \(queries) queries (radii \(radii.map { "\(Int($0)) m" }.joined(separator: ", "))), seed \(seed)\n"
        out += "machine: \(ProcessInfo.processInfo.activeProcessorCount) cores\n\n"
        out += "| system | conns | pipeline | queries/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/query | client CPU | camregd ÷ this |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        var settings: [(Int, Int)] = []
        for r in runs where !settings.contains(where: { $0 == (r.connections, r.depth) }) { settings.append((r.connections, r.depth)) }
        for (c, d) in settings {
            for s in ["camregd", "redis", "postgis"] {
                if let r = run(s, c, d) {
                    let ratio = self.ratio(s, c, d).map { String(format: "%.2f×", $0) } ?? "–"
                    out += String(format: "| %@ | %d | %d | %.0f | %.1f | %.1f | %.1f | %@ | %.1f %% | %@ |\n",
                                  s as NSString, c, d, r.qps, r.p50, r.p99, r.p999, Self.serverCell(r) as NSString,
                                  r.clientCPU * 100, (s == "camregd" ? "" : ratio) as NSString)
                }
            }
        }
        if roundCount > 1 {
            out += "\n\(roundCount) rounds per setting, the systems taking turns: each row is the system's median round; the ratio is the median of the rounds' ratios.\n"
            for (c, d) in settings {
                for s in ["redis", "postgis"] {
                    let r = roundRatios(s, c, d)
                    guard !r.isEmpty else { continue }
                    out += "camregd ÷ \(s), \(c) conns, pipeline \(d), by round: " + r.map { String(format: "%.2f×", $0) }.joined(separator: " ") + "\n"
                }
            }
        }
        out += "\n"
        out += String(format: "memory: camregd RSS %.1f MiB, Redis used_memory %.1f MiB (Redis RSS %.1f MiB); camregd RSS ÷ used_memory = %.2f\n",
                      mib(camregdRSS), mib(redisUsedMemory), mib(redisRSS), Double(camregdRSS) / Double(max(1, redisUsedMemory)))
        out += String(format: "memory right after start-up: camregd RSS %.1f MiB after the full load from PostgreSQL, %.1f MiB after the start from the index cache\n",
                      mib(camregdRSSFullLoad), mib(camregdRSSAfterLoad))
        out += String(format: "cold start (spawn → first PING answered) vs Redis %.3f s (restart with RDB → first PONG): camregd without cache (full load from PostgreSQL) %.3f s = %.2f×; camregd restart with the index cache (%.1f MiB) %.3f s = %.2f×\n",
                      redisRDBLoad, camregdColdStart, camregdColdStart / max(1e-9, redisRDBLoad),
                      mib(cacheBytes), camregdCachedStart, camregdCachedStart / max(1e-9, redisRDBLoad))
        out += String(format: "import of the same %.1f MiB CSV into the emptied cameras table, %d round%@ (\\copy, then camregd): camregd IMPORT BEGIN…COMMIT over the socket (%d upload%@) %.3f s vs psql \\copy %.3f s (medians); \\copy time ÷ import time = %.2f (median round; rounds %@); Redis GEOADD %.3f s; PostGIS GiST index %.3f s\n",
                      mib(csvBytes), importRounds.count, (importRounds.count == 1 ? "" : "s") as NSString, importUploads, (importUploads == 1 ? "" : "s, over camregd's upload cap") as NSString,
                      importSeconds, copySeconds, Self.median(importRatios),
                      importRatios.map { String(format: "%.2f", $0) }.joined(separator: ", ") as NSString, redisLoadSeconds, gistIndexSeconds)
        out += "agreement: \(check.queriesIdentical)/\(check.queriesCompared) queries identical in all three"
        for pair in check.boundaryDifferences.keys.sorted() {
            out += String(format: "; %@: %d boundary differences (worst |d/r − 1| = %.5f)", pair as NSString,
                          check.boundaryDifferences[pair]!, check.worstBoundaryRatio[pair] ?? 0)
        }
        if check.haversineExplained > 0 {
            out += String(format: "; camregd/redis: %d more beyond %.1f %% (worst %.5f) that Redis's own haversine distance explains",
                          check.haversineExplained, Agreement.tolerance * 100, check.worstHaversineRatio)
        }
        out += "; \(check.unexplained) unexplained"
        if !check.inconsistentRuns.isEmpty { out += "; runs whose answers changed: \(check.inconsistentRuns.joined(separator: ", "))" }
        out += "\n"
        for e in check.examples { out += "  \(e)\n" }
        return out
    }

    func json() throws -> Data {
        let runList: [[String: Any]] = runs.map { r in
            var d: [String: Any] = ["system": r.system, "connections": r.connections, "pipeline_depth": r.depth, "queries": r.queries,
                                    "seconds": r.seconds, "qps": r.qps, "p50_us": r.p50, "p99_us": r.p99, "p999_us": r.p999,
                                    "client_cpu_share": r.clientCPU]
            if let c = r.serverCPU { d["server_cpu_us_per_query"] = c }
            if let k = r.serverSystemShare { d["server_cpu_kernel_share"] = k }
            if let p = r.serverPreemptions { d["server_preemptions_per_query"] = p }
            if let v = r.serverSleeps { d["server_sleeps_per_query"] = v }
            d["round"] = r.round
            if r.system != "camregd", let c = rounds("camregd", r.connections, r.depth).first(where: { $0.round == r.round }) {
                d["camregd_qps_ratio"] = c.qps / r.qps
            }
            return d
        }
        var settings: [(Int, Int)] = []
        for r in runs where !settings.contains(where: { $0 == (r.connections, r.depth) }) { settings.append((r.connections, r.depth)) }
        let ratioList: [[String: Any]] = settings.flatMap { c, d in
            ["redis", "postgis"].compactMap { s -> [String: Any]? in
                guard let m = ratio(s, c, d) else { return nil }
                return ["versus": s, "connections": c, "pipeline_depth": d, "median_camregd_qps_ratio": m, "by_round": roundRatios(s, c, d)]
            }
        }
        let obj: [String: Any] = [
            "cameras": cameras, "region": region, "queries": queries, "radii_m": radii, "seed": seed,
            "cores": ProcessInfo.processInfo.activeProcessorCount,
            "runs": runList,
            "rounds": roundCount,
            "ratios": ratioList,
            "memory": ["camregd_rss_bytes": camregdRSS, "redis_used_memory_bytes": redisUsedMemory, "redis_rss_bytes": redisRSS,
                       "camregd_rss_over_redis_used_memory": Double(camregdRSS) / Double(max(1, redisUsedMemory))],
            "cold_start": ["camregd_seconds": camregdColdStart, "camregd_cached_seconds": camregdCachedStart,
                           "redis_rdb_restart_seconds": redisRDBLoad, "index_cache_bytes": cacheBytes,
                           "ratio": camregdColdStart / max(1e-9, redisRDBLoad), "cached_ratio": camregdCachedStart / max(1e-9, redisRDBLoad),
                           "camregd_rss_after_full_load_bytes": camregdRSSFullLoad, "camregd_rss_after_cached_start_bytes": camregdRSSAfterLoad],
            "import": ["camregd_import_seconds": importSeconds, "psql_copy_seconds": copySeconds, "csv_bytes": csvBytes, "camregd_uploads": importUploads,
                       "gist_index_seconds": gistIndexSeconds, "camregd_import_rounds": importRounds, "psql_copy_rounds": copyRounds,
                       "copy_over_import_by_round": importRatios,
                       "copy_over_import": Self.median(importRatios), "redis_geoadd_seconds": redisLoadSeconds],
            "agreement": ["queries_compared": check.queriesCompared, "queries_identical": check.queriesIdentical,
                          "boundary_differences": check.boundaryDifferences, "worst_boundary_ratio": check.worstBoundaryRatio,
                          "unexplained": check.unexplained, "haversine_explained": check.haversineExplained, "worst_haversine_ratio": check.worstHaversineRatio, "examples": check.examples, "inconsistent_runs": check.inconsistentRuns,
                          "tolerance": Agreement.tolerance],
        ]
        return try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
    }
}

func mib(_ b: Int) -> Double { Double(b) / 1_048_576 }
