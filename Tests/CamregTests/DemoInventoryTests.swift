import Foundation
import Testing
@testable import Registry

@Suite("DemoInventoryTests")
struct DemoInventoryTests {
    /// The standard inventory, generated once for the suite.
    static let inventory = DemoInventory.generate()

    /// FNV-1a over each camera's id and the bit patterns of its coordinates.
    static func digest(_ cameras: [Camera]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ byte: UInt8) { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        func mix64(_ v: UInt64) { for k in 0..<8 { mix(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) } }
        for c in cameras {
            for b in c.id.utf8 { mix(b) }
            mix64(c.lat.bitPattern)
            mix64(c.lon.bitPattern)
        }
        return h
    }

    static func inBox(_ lat: Double, _ lon: Double) -> Bool {
        lat > BenCat.minLat && lat < BenCat.maxLat && lon > BenCat.minLon && lon < BenCat.maxLon
    }

    @Test func exactly1202CamerasWithSequentialIds() {
        let cams = Self.inventory.cameras
        #expect(BenCat.cameraCount == 1202)
        #expect(cams.count == 1202)
        let expected = (1...1202).map { n -> String in
            let s = String(n)
            return "BC-" + String(repeating: "0", count: 5 - s.count) + s
        }
        #expect(cams.map(\.id) == expected)
        #expect(Set(cams.map(\.id)).count == 1202)
        #expect(cams.first?.id == "BC-00001")
        #expect(cams.last?.id == "BC-01202")
    }

    @Test func allCamerasInsideTheBoundingBox() {
        for c in Self.inventory.cameras {
            #expect(Self.inBox(c.lat, c.lon), "\(c.id) at \(c.lat), \(c.lon)")
        }
    }

    @Test func deterministic() {
        let a = DemoInventory.generate()
        let b = DemoInventory.generate()
        #expect(a == b)
        #expect(a.cameras == Self.inventory.cameras)
        #expect(a.streets == b.streets)
        #expect(Self.digest(a.cameras) == Self.digest(b.cameras))
        let explicit = DemoInventory.generate(seed: 20220626, count: 1202,
                                              referenceDate: Date(timeIntervalSince1970: 1_656_547_200))
        #expect(explicit == a)
        // Another seed gives another inventory.
        let other = DemoInventory.generate(seed: 7)
        #expect(other.cameras.count == 1202)
        #expect(Self.digest(other.cameras) != Self.digest(a.cameras))
    }

    /// Pins the default inventory across processes and platforms (the generator avoids hash
    /// order and libm). Update the constant only when the generator is changed on purpose.
    @Test func stableAcrossProcesses() {
        #expect(Self.digest(Self.inventory.cameras) == 0xBA4B_580C_DE04_A54E)
    }

    @Test func everyWardRepresented() {
        #expect(BenCat.wards.count == 8)
        let wards = Set(Self.inventory.cameras.map(\.ward))
        #expect(wards == Set(BenCat.wards.map(\.name)))
    }

    @Test func aboutTwoThirdsAtIntersections() {
        let cams = Self.inventory.cameras
        let share = Double(cams.filter { $0.siteKind == .intersection }.count) / Double(cams.count)
        #expect(share >= 0.63 && share <= 0.70, "intersection share \(share)")
        let alleys = Double(cams.filter { $0.siteKind == .alley }.count) / Double(cams.count)
        #expect(alleys >= 0.25 && alleys <= 0.37, "alley share \(alleys)")
        // Alley cameras have alley addresses (`Số 12/5, Hẻm 12, …`).
        for c in cams where c.siteKind == .alley {
            #expect(c.address.contains("Hẻm ") && c.address.contains("/"), "\(c.id): \(c.address)")
        }
    }

    @Test func allCamerasValidate() {
        for c in Self.inventory.cameras {
            #expect(c.validate().isEmpty, "\(c.id): \(c.validate())")
        }
    }

    @Test func fieldRanges() {
        let cams = Self.inventory.cameras
        let start = Date(timeIntervalSince1970: 1_546_300_800)   // 2019-01-01
        let reference = DemoInventory.defaultReferenceDate
        for c in cams {
            #expect((7...90).contains(c.retentionDays), "\(c.id) retention \(c.retentionDays)")
            #expect(c.version == 1)
            #expect(c.status != .retired)
            #expect(c.createdAt >= start && c.createdAt <= reference, "\(c.id)")
            #expect(c.updatedAt >= c.createdAt && c.updatedAt <= reference, "\(c.id)")
            if let h = c.heading {
                #expect(h >= 0 && h < 360)
                #expect(c.fov >= 60 && c.fov <= 120)
            } else {
                #expect(c.fov == 360)
            }
            let maxRange = (c.ownerKind == .public || c.ownerKind == .company) ? 120.0 : 80.0
            #expect(c.range >= 15 && c.range <= maxRange, "\(c.id) range \(c.range)")
            if let m = c.mountHeight { #expect(m >= 2.5 && m <= 6) }
            let phone = c.ownerPhone ?? ""
            #expect(phone.count == 10 && phone.allSatisfy(\.isASCII) && phone.allSatisfy(\.isNumber)
                    && (phone.hasPrefix("09") || phone.hasPrefix("03")), "\(c.id) phone \(phone)")
            #expect(!(c.ownerName ?? "").isEmpty)
            #expect(c.address.hasSuffix(c.ward), "\(c.id): \(c.address)")
        }
        // Ids follow registration order.
        for k in 1..<cams.count { #expect(cams[k - 1].createdAt <= cams[k].createdAt) }
    }

    @Test func realisticMixes() {
        let cams = Self.inventory.cameras
        let n = Double(cams.count)
        func share(_ f: (Camera) -> Bool) -> Double { Double(cams.filter(f).count) / n }
        #expect(abs(share { $0.ownerKind == .household } - 0.45) < 0.06)
        #expect(abs(share { $0.ownerKind == .business } - 0.25) < 0.05)
        #expect(abs(share { $0.ownerKind == .boardingHouse } - 0.15) < 0.04)
        #expect(abs(share { $0.ownerKind == .company } - 0.10) < 0.03)
        #expect(abs(share { $0.ownerKind == .public } - 0.05) < 0.025)
        #expect(abs(share { $0.status == .active } - 0.92) < 0.03)
        #expect(abs(share { $0.heading == nil } - 0.10) < 0.03)
        #expect(abs(share { $0.schedule != .always } - 0.20) < 0.05)
        for c in cams where c.ownerKind == .public {
            #expect(c.ownerName?.hasPrefix("Công an ") == true)
        }
        for c in cams where c.ownerKind == .company {
            #expect(c.ownerName?.hasPrefix("Công ty TNHH ") == true)
        }
        for c in cams where c.ownerKind == .boardingHouse {
            #expect(c.ownerName?.hasPrefix("Nhà trọ ") == true)
        }
    }

    @Test func streetsLayout() throws {
        let streets = Self.inventory.streets
        #expect(!streets.isEmpty)
        let ql13 = try #require(streets.first { $0.name == "Quốc lộ 13" })
        #expect(ql13.kind == .arterial)
        #expect(ql13.points.count >= 2)
        for p in ql13.points { #expect(p.lon >= 106.60 && p.lon <= 106.62) }
        let span = (ql13.points.map(\.lat).max() ?? 0) - (ql13.points.map(\.lat).min() ?? 0)
        #expect(span > 0.15, "Quốc lộ 13 runs north–south through the town")
        for kind in StreetKind.allCases { #expect(streets.contains { $0.kind == kind }, "\(kind)") }
        for s in streets {
            #expect(s.points.count >= 2, "\(s.name)")
            #expect(s.kind == .alley ? (s.name.hasPrefix("Hẻm ") && s.parent != nil) : s.parent == nil, "\(s.name)")
            for p in s.points { #expect(Self.inBox(p.lat, p.lon), "\(s.name) at \(p.lat), \(p.lon)") }
        }
        for w in BenCat.wards {
            #expect(streets.contains { $0.ward == w.name && $0.kind == .street }, "\(w.name)")
        }
        // The layout does not depend on the camera count.
        #expect(DemoInventory.generate(count: 10).streets == streets)
    }

    @Test func perWardCountsProportionalToPopulation() {
        let cams = Self.inventory.cameras
        let total = BenCat.wards.reduce(0) { $0 + $1.population }
        var sum = 0
        for w in BenCat.wards {
            let n = cams.filter { $0.ward == w.name }.count
            let quota = Double(1202 * w.population) / Double(total)
            #expect(abs(Double(n) - quota) < 1, "\(w.name): \(n) vs \(quota)")
            sum += n
        }
        #expect(sum == 1202)
    }

    @Test func otherCounts() {
        #expect(DemoInventory.generate(count: 0).cameras.isEmpty)
        let eight = DemoInventory.generate(count: 8).cameras
        #expect(eight.count == 8)
        #expect(Set(eight.map(\.ward)).count == 8)
        let big = DemoInventory.generate(count: 100_000).cameras
        #expect(big.count == 100_000)
        #expect(big.first?.id == "BC-000001")
        #expect(big.last?.id == "BC-100000")
        #expect(zip(big, big.dropFirst()).allSatisfy { $0.id < $1.id })
        #expect(big.allSatisfy { Self.inBox($0.lat, $0.lon) && $0.validate().isEmpty })
        let share = Double(big.filter { $0.siteKind == .intersection }.count) / 100_000
        #expect(share >= 0.63 && share <= 0.70)
    }
}
