import Foundation
import Registry

/// The bench's seeded stream: the demo's SplitMix64, plus Gaussian draws.
typealias BenchRNG = SeededRNG

extension SeededRNG {
    /// Standard normal (Box–Muller).
    mutating func gaussian() -> Double {
        let u = max(unit(), 1e-300), v = unit()
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * v)
    }
}

/// Where the cameras and query points lie.
struct Region: Sendable {
    let name: String
    let minLat: Double, maxLat: Double, minLon: Double, maxLon: Double

    static let benCat = Region(name: "bencat", minLat: BenCat.minLat, maxLat: BenCat.maxLat, minLon: BenCat.minLon, maxLon: BenCat.maxLon)

    /// 110 km (east–west) × 130 km (north–south) around the centre of Bến Cát.
    static let large: Region = {
        let lat0 = (BenCat.minLat + BenCat.maxLat) / 2, lon0 = (BenCat.minLon + BenCat.maxLon) / 2
        let dLat = 65_000 / 110_600.0
        let dLon = 55_000 / (111_320 * Foundation.cos(lat0 * Double.pi / 180))
        return Region(name: "large", minLat: lat0 - dLat, maxLat: lat0 + dLat, minLon: lon0 - dLon, maxLon: lon0 + dLon)
    }()

    func clamp(_ lat: Double, _ lon: Double) -> (Double, Double) {
        (min(max(lat, minLat), maxLat), min(max(lon, minLon), maxLon))
    }
}

/// One radius query, sent identically to every system.
struct BenchQuery: Sendable {
    let lat: Double
    let lon: Double
    let radius: Double
}

enum Workload {
    /// The cameras: the demo inventory (ids `BC-…` in id order); for the large region their
    /// positions are replaced by seeded points, 70 % in 60 town-sized clusters and 30 % uniform.
    static func cameras(count: Int, region: Region, seed: UInt64) -> [Camera] {
        var cams = DemoInventory.generate(count: count).cameras
        guard region.name != "bencat" else { return cams }
        var rng = BenchRNG(seed: seed ^ 0x4C41_5247_45)
        let mLat = 110_600.0, mLon = 111_320 * Foundation.cos((region.minLat + region.maxLat) / 2 * Double.pi / 180)
        let centres = (0..<60).map { _ in
            (rng.uniform(region.minLat, region.maxLat), rng.uniform(region.minLon, region.maxLon), rng.uniform(800, 4000))
        }
        for i in cams.indices {
            var lat: Double, lon: Double
            if rng.unit() < 0.7 {
                let c = centres[rng.int(centres.count)]
                lat = c.0 + rng.gaussian() * c.2 / mLat
                lon = c.1 + rng.gaussian() * c.2 / mLon
            } else {
                lat = rng.uniform(region.minLat, region.maxLat)
                lon = rng.uniform(region.minLon, region.maxLon)
            }
            (lat, lon) = region.clamp(lat, lon)
            cams[i].lat = (lat * 1e7).rounded() / 1e7
            cams[i].lon = (lon * 1e7).rounded() / 1e7
        }
        return cams
    }

    /// Half the points within 150 m of a random camera, half uniform in the region; radii
    /// 200 m and 500 m in equal shares.
    static func queries(count: Int, cameras: [Camera], region: Region, radii: [Double], seed: UInt64) -> [BenchQuery] {
        var rng = BenchRNG(seed: seed ^ 0x5155_4552_59)
        let mLat = 110_600.0, mLon = 111_320 * Foundation.cos((region.minLat + region.maxLat) / 2 * Double.pi / 180)
        return (0..<count).map { _ in
            var lat: Double, lon: Double
            if rng.unit() < 0.5, !cameras.isEmpty {
                let c = cameras[rng.int(cameras.count)]
                lat = c.lat + rng.uniform(-150, 150) / mLat
                lon = c.lon + rng.uniform(-150, 150) / mLon
            } else {
                lat = rng.uniform(region.minLat, region.maxLat)
                lon = rng.uniform(region.minLon, region.maxLon)
            }
            (lat, lon) = region.clamp(lat, lon)
            lat = (lat * 1e6).rounded() / 1e6
            lon = (lon * 1e6).rounded() / 1e6
            return BenchQuery(lat: lat, lon: lon, radius: radii[rng.int(radii.count)])
        }
    }
}
