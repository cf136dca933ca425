import Foundation
import Geo
import Registry

/// Do the three systems return the same id sets?
struct AgreementResult {
    var queriesCompared = 0
    var queriesIdentical = 0
    /// Per pair ("camregd/redis", "camregd/postgis"): ids in one answer but not the other.
    var boundaryDifferences: [String: Int] = [:]
    /// Per pair: the largest |ellipsoidal distance / radius − 1| among boundary differences.
    var worstBoundaryRatio: [String: Double] = [:]
    /// camregd/redis differences beyond `tolerance` that Redis's own haversine distance explains
    /// (on its 6 372 797.56 m sphere the north–south metre is up to 0.57 % longer at 11° N).
    var haversineExplained = 0
    var worstHaversineRatio = 0.0
    var unexplained = 0
    var examples: [String] = []
    /// Runs whose answers differ from the same system's 1-connection run (should be 0).
    var inconsistentRuns: [String] = []
}

enum Agreement {
    /// Relative tolerance around the radius inside which Redis (52-bit geohash, haversine on a
    /// 6 372 797.56 m sphere) may legitimately disagree with the ellipsoid.
    static let tolerance = 0.005

    static func check(report: Report, queries: [BenchQuery], cameras: [Camera],
                      camregd: QueryClient, redis: QueryClient, postgis: QueryClient) throws -> AgreementResult {
        var out = AgreementResult()
        func reference(_ s: String) -> RunResult? {
            report.runs.filter { $0.system == s }.min { ($0.connections, $0.depth) < ($1.connections, $1.depth) }
        }
        guard let rc = reference("camregd"), let rr = reference("redis"), let rp = reference("postgis") else { return out }
        for r in report.runs where r.digests != reference(r.system)!.digests {
            out.inconsistentRuns.append("\(r.system) c=\(r.connections) d=\(r.depth)")
        }
        // Ids are BC-<n> with n = position + 1 (DemoInventory numbering).
        func position(_ id: String) -> (Double, Double)? {
            guard let n = Int(id.dropFirst(3)), n >= 1, n <= cameras.count, cameras[n - 1].id == id else { return nil }
            return (cameras[n - 1].lat, cameras[n - 1].lon)
        }
        func fetch(_ c: QueryClient, _ i: Int) throws -> Set<String> {
            try c.send([i][...])
            return Set(try c.receive(collect: true).1)
        }
        for i in queries.indices {
            out.queriesCompared += 1
            if rc.digests[i] == rr.digests[i] && rc.digests[i] == rp.digests[i] { out.queriesIdentical += 1; continue }
            let q = queries[i]
            let a = try fetch(camregd, i)
            for (pair, other) in [("camregd/redis", redis), ("camregd/postgis", postgis)] {
                let b = try fetch(other, i)
                for id in a.symmetricDifference(b) {
                    guard let (lat, lon) = position(id) else {
                        out.unexplained += 1
                        out.examples.append("query \(i): unknown id \(id) (\(pair))")
                        continue
                    }
                    let d = Geodesic.wgs84.distance(lat1: lat, lon1: lon, lat2: q.lat, lon2: q.lon)
                    let off = abs(d / q.radius - 1)
                    // Redis decides with haversine on its sphere; on a geohash cell (≈ 0.6 m) of the point.
                    let h = haversine(lat, lon, q.lat, q.lon)
                    let inRedis = pair == "camregd/redis" ? !a.contains(id) : false
                    let redisConsistent = pair == "camregd/redis" && (inRedis ? h <= q.radius + 1 : h >= q.radius - 1)
                    if off > tolerance && redisConsistent {
                        out.haversineExplained += 1
                        out.worstHaversineRatio = max(out.worstHaversineRatio, off)
                    } else if off <= tolerance {
                        out.boundaryDifferences[pair, default: 0] += 1
                        out.worstBoundaryRatio[pair] = max(out.worstBoundaryRatio[pair] ?? 0, off)
                    } else {
                        out.unexplained += 1
                        if out.examples.count < 20 {
                            out.examples.append(String(format: "query %d (%.6f, %.6f, r=%.0f): %@ only in %@, distance %.3f m",
                                                       i, q.lat, q.lon, q.radius, id as NSString,
                                                       (a.contains(id) ? "camregd" : String(pair.dropFirst(8))) as NSString, d))
                        }
                    }
                }
            }
        }
        return out
    }
}

/// Redis's distance: haversine on a sphere of radius 6 372 797.560856 m (src/geohash_helper.c).
func haversine(_ lat1: Double, _ lon1: Double, _ lat2: Double, _ lon2: Double) -> Double {
    let r = Double.pi / 180
    let u = sin((lat2 - lat1) * r / 2), v = sin((lon2 - lon1) * r / 2)
    return 2 * 6_372_797.560856 * asin((u * u + cos(lat1 * r) * cos(lat2 * r) * v * v).squareRoot())
}
