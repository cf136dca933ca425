import Foundation
import Geo
import Testing
@testable import Registry

/// A camera for the tests in this file.
fileprivate func sampleCamera(_ id: String = "BC-00001", lat: Double = 11.1, lon: Double = 106.6,
                              heading: Double? = 90) -> Camera {
    Camera(id: id, lat: lat, lon: lon, siteKind: .street, address: "Số 1, Đường 30/4, Khu phố 2",
           ward: "Phường Mỹ Phước", heading: heading, fov: 90, range: 30, mountHeight: 3, ownerKind: .household,
           ownerName: "Nguyễn Văn An", ownerPhone: "0912345678", schedule: .always, retentionDays: 30,
           status: .active, createdAt: Date(timeIntervalSince1970: 1_600_000_000),
           updatedAt: Date(timeIntervalSince1970: 1_600_000_000))
}

/// A valid owner for the tests in this file.
fileprivate func sampleOwner() -> Owner {
    Owner(id: 7, kind: .business, name: "Tiệm tạp hóa Cô Ba", phone: "+84912345678", email: "coba@example.vn",
          address: "Số 12, Đường 30/4, Khu phố 2", ward: "Phường Mỹ Phước",
          consent: Consent(granted: true, validUntil: Consent.day(year: 2025, month: 12, day: 31), note: "Đồng ý qua điện thoại"),
          createdAt: Date(timeIntervalSince1970: 1_600_000_000), updatedAt: Date(timeIntervalSince1970: 1_600_000_100))
}

@Suite("OwnerValidationTests")
struct OwnerValidationTests {
    // MARK: Phones

    static let validPhones: [(String, String)] = [
        ("0912 345 678", "+84912345678"),
        ("0912.345.678", "+84912345678"),
        ("0912-345-678", "+84912345678"),
        ("+84 912 345 678", "+84912345678"),
        ("84912345678", "+84912345678"),
        ("(+84) 912345678", "+84912345678"),
        ("+84 (0) 912 345 678", "+84912345678"),
        ("0084 912 345 678", "+84912345678"),
        ("  0912345678 ", "+84912345678"),
        ("+84912345678", "+84912345678"),
        ("0389 123 456", "+84389123456"),
        ("0559 123 456", "+84559123456"),
        ("0701 234 567", "+84701234567"),
        ("0812 345 678", "+84812345678"),
        ("0274 123 4567", "+842741234567"),   // Bình Dương landline
        ("(0274) 3822 111", "+842743822111"),
        ("024 1234 5678", "+842412345678"),   // Hà Nội landline
        ("028.3822.1234", "+842838221234"),   // Hồ Chí Minh City landline
        ("+84 274 123 4567", "+842741234567"),
    ]

    static let invalidPhones = [
        "", "   ", "091234567", "09123456789", "0912 34a 678", "0912O45678", "+1 415 555 0100", "+85 912345678",
        "+8491234567", "0112345678", "0412345678", "0612345678", "0012345678", "0274 123 456", "027412345678",
        "912345678", "0912++345678", "09 12/345/678", "+84912345678+", "0912345678 ext 2", "+", "84",
        "+84 0274 123 45678", "８４９１２３４５６７８",
    ]

    @Test(arguments: validPhones)
    func phoneNormalisesToE164(_ input: String, _ expected: String) {
        #expect(VietnamesePhone.normalize(input) == expected)
        // Idempotent.
        #expect(VietnamesePhone.normalize(expected) == expected)
    }

    @Test(arguments: invalidPhones)
    func phoneIsRefused(_ input: String) {
        #expect(VietnamesePhone.normalize(input) == nil)
        #expect(VietnamesePhone.display(input) == nil)
    }

    @Test func phoneDisplayForm() {
        #expect(VietnamesePhone.display("+84912345678") == "0912 345 678")
        #expect(VietnamesePhone.display("84 389 123 456") == "0389 123 456")
        #expect(VietnamesePhone.display("+842741234567") == "0274 123 4567")
        #expect(VietnamesePhone.display("02412345678") == "024 1234 5678")
        #expect(VietnamesePhone.display("+842838221234") == "028 3822 1234")
        #expect(VietnamesePhone.isMobile("0912 345 678"))
        #expect(!VietnamesePhone.isMobile("0274 123 4567"))
    }

    @Test func e164MatchesTheDatabaseConstraint() throws {
        // owners.phone CHECK (phone ~ '^\+84[0-9]{9,10}$')
        let re = try NSRegularExpression(pattern: #"^\+84[0-9]{9,10}$"#)
        for (input, _) in Self.validPhones {
            let e = try #require(VietnamesePhone.normalize(input))
            #expect(re.firstMatch(in: e, range: NSRange(e.startIndex..., in: e)) != nil, "\(e)")
        }
    }

    // MARK: E-mail

    @Test(arguments: ["an.nguyen@example.vn", "x@a.b", "cong.an+benCat@binhduong.gov.vn", "nguyễn@ví-dụ.vn"])
    func emailAccepted(_ s: String) {
        #expect(EmailAddress.isValid(s))
    }

    @Test(arguments: ["", "no-at-sign", "a@@b.vn", "a@b@c.vn", "@b.vn", "a@vn", "a@.vn", "a@b.", "a@b..vn",
                      "a b@c.vn", "a@b.vn ", "a\t@b.vn", String(repeating: "a", count: 65) + "@b.vn",
                      String(repeating: "a", count: 60) + "@" + String(repeating: "b", count: 191) + ".vn"])
    func emailRefused(_ s: String) {
        #expect(!EmailAddress.isValid(s))
    }

    // MARK: Owners

    @Test func validOwnerHasNoErrors() {
        #expect(sampleOwner().validate() == [])
        var o = sampleOwner()
        o.id = nil
        o.email = nil
        o.consent = .none
        #expect(o.validate() == [])
    }

    @Test func oneErrorPerBadField() throws {
        var o = sampleOwner()
        o.id = 0
        o.name = String(repeating: "x", count: 201) + "\u{7}"   // too long AND a control character: one error
        o.phone = "abc"
        o.email = "not an email"
        o.address = "   "
        o.ward = ""
        o.consent = Consent(granted: true, validUntil: Date(timeIntervalSince1970: 1_700_000_123),
                            note: String(repeating: "n", count: 1001))
        o.updatedAt = o.createdAt.addingTimeInterval(-1)
        o.version = 0
        let errors = o.validate()
        #expect(errors.map(\.field) == ["id", "name", "phone", "email", "address", "ward", "consent_valid_until",
                                        "consent_note", "updated_at", "version"])
        #expect(Set(errors.map(\.field)).count == errors.count)
        #expect(errors.allSatisfy { !$0.reason.isEmpty })
        #expect(errors.first { $0.field == "name" }?.reason.contains("200") == true)
    }

    @Test func phoneMustBeStoredInE164() throws {
        var o = sampleOwner()
        o.phone = "0912 345 678"
        let e = try #require(o.validate().first)
        #expect(e.field == "phone")
        #expect(e.reason.contains("E.164"))
        #expect(o.normalized().phone == "+84912345678")
        #expect(o.normalized().validate() == [])
    }

    @Test func normalizedTidiesText() {
        var o = sampleOwner()
        o.name = "  Nguye\u{302}\u{303}n Văn An \n"   // "Nguyễn" with combining marks (NFD)
        o.email = "  An@Example.VN "
        o.consent.note = "   "
        let n = o.normalized()
        #expect(Array(n.name.unicodeScalars) == Array("Nguyễn Văn An".precomposedStringWithCanonicalMapping.unicodeScalars))
        #expect(n.email == "An@example.vn")
        #expect(n.consent.note == nil)
        var empty = sampleOwner()
        empty.email = " "
        #expect(empty.normalized().email == nil)
    }

    @Test func consentDays() throws {
        #expect(Consent.day(year: 2023, month: 2, day: 29) == nil)
        #expect(Consent.day(year: 2024, month: 13, day: 1) == nil)
        let d = try #require(Consent.day(year: 2024, month: 2, day: 29))
        #expect(d.timeIntervalSince1970 == 1_709_164_800)
        let until = try #require(Consent.day(year: 2024, month: 6, day: 30))
        let c = Consent(granted: true, validUntil: until)
        // Vietnam is UTC+7: 30 June 23:59:59 local is 16:59:59 UTC.
        #expect(c.isInForce(at: Date(timeIntervalSince1970: until.timeIntervalSince1970 + 16 * 3600 + 59 * 60 + 59)))
        #expect(!c.isInForce(at: Date(timeIntervalSince1970: until.timeIntervalSince1970 + 17 * 3600)))
        #expect(!Consent(granted: false).isInForce(at: Date()))
        #expect(Consent(granted: true).isInForce(at: Date()))
    }

    // MARK: Jurisdiction

    @Suite("Jurisdiction")
    struct JurisdictionTests {
        @Test func benCatBoxIsTheDefault() {
            let j = Jurisdiction()
            #expect(j == .benCat)
            #expect(j.contains(lat: 11.1, lon: 106.6))
            #expect(!j.contains(lat: 11.0, lon: 106.6))
            #expect(!j.contains(lat: 11.1, lon: 106.71))
            // Boundaries and corners count as inside.
            #expect(j.contains(lat: BenCat.minLat, lon: 106.6))
            #expect(j.contains(lat: BenCat.maxLat, lon: BenCat.maxLon))
            #expect(j.contains(lat: 11.1, lon: BenCat.minLon))
            #expect(!j.contains(lat: BenCat.maxLat.nextUp, lon: 106.6))
            #expect(!j.contains(lat: .nan, lon: 106.6))
            // Every demo camera is inside.
            #expect(DemoInventory.generate(count: 200).cameras.allSatisfy { j.check($0) == nil })
        }

        @Test func checkNamesPositionAndJurisdiction() throws {
            let e = try #require(Jurisdiction.benCat.check(sampleCamera(lat: 10.98)))
            #expect(e.field == "position")
            #expect(e.reason.hasPrefix("outside the jurisdiction ("))
            #expect(e.reason.contains("Bến Cát"))
            #expect(e.reason.contains("11.0341"))
            #expect(Jurisdiction.benCat.check(sampleCamera()) == nil)
        }

        @Test func boxBoundsAreChecked() {
            #expect(throws: FieldError.self) { try Jurisdiction(name: "x", minLat: 11.2, maxLat: 11.1, minLon: 106, maxLon: 107) }
            #expect(throws: FieldError.self) { try Jurisdiction(name: "x", minLat: .nan, maxLat: 11.1, minLon: 106, maxLon: 107) }
            #expect(throws: FieldError.self) { try Jurisdiction(name: "x", minLat: 10, maxLat: 11, minLon: 106, maxLon: 181) }
        }

        /// An L-shaped ward: the square 106.55…106.65 × 11.05…11.15 without its north-east quarter.
        static let lShape = "POLYGON((106.55 11.05, 106.65 11.05, 106.65 11.10, 106.60 11.10, 106.60 11.15, 106.55 11.15, 106.55 11.05))"

        @Test func polygonInsideOutsideBoundary() throws {
            let j = try Jurisdiction(name: "Phường Mỹ Phước", wkt: Self.lShape)
            #expect(j.contains(lat: 11.07, lon: 106.58))   // inside
            #expect(j.contains(lat: 11.12, lon: 106.57))   // inside, west arm
            #expect(!j.contains(lat: 11.12, lon: 106.63))  // in the notch: inside the bounding box, outside the polygon
            #expect(!j.contains(lat: 11.2, lon: 106.6))    // outside
            #expect(j.contains(lat: 11.05, lon: 106.6))    // on an edge
            #expect(j.contains(lat: 11.10, lon: 106.62))   // on the notch's edge
            #expect(j.contains(lat: 11.05, lon: 106.55))   // a vertex
            #expect(j.contains(lat: 11.10, lon: 106.60))   // the reflex vertex
            #expect(!j.contains(lat: .infinity, lon: 106.6))
            let e = try #require(j.check(sampleCamera(lat: 11.12, lon: 106.63)))
            #expect(e.field == "position")
            #expect(e.reason.hasPrefix("outside the jurisdiction (Phường Mỹ Phước"))
            #expect(j.check(sampleCamera(lat: 11.07, lon: 106.58)) == nil)
        }

        @Test func multiPolygon() throws {
            let j = try Jurisdiction(name: "two", wkt: "MULTIPOLYGON(((0 0, 1 0, 1 1, 0 1, 0 0)), ((2 2, 3 2, 3 3, 2 3, 2 2)))")
            #expect(j.contains(lat: 0.5, lon: 0.5))
            #expect(j.contains(lat: 2.5, lon: 2.5))
            #expect(!j.contains(lat: 1.5, lon: 1.5))
        }

        @Test func badPolygonsAreRefused() {
            func reason(_ wkt: String) -> String? {
                do {
                    _ = try Jurisdiction(name: "x", wkt: wkt)
                    return nil
                } catch let e as FieldError {
                    #expect(e.field == "jurisdiction")
                    return e.reason
                } catch {
                    Issue.record("unexpected error \(error)")
                    return nil
                }
            }
            #expect(reason("POLYGON((0 0, 1 1") != nil)
            #expect(reason("not wkt at all") != nil)
            #expect(reason("POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))")?.contains("Self-intersection") == true)
            #expect(reason("POINT(106.6 11.1)")?.contains("Point") == true)
            #expect(reason("POLYGON EMPTY") != nil)
            #expect(reason("POLYGON((200 0, 201 0, 201 1, 200 0))") != nil)
        }

        @Test func polygonIsSafeToShareBetweenTasks() async throws {
            let j = try Jurisdiction(name: "L", wkt: Self.lShape)
            let counts = await withTaskGroup(of: Int.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var n = 0
                        for k in 0..<2000 {
                            let lat = 11.0 + Double(k % 100) * 0.002, lon = 106.5 + Double(k / 100) * 0.01
                            if j.contains(lat: lat, lon: lon) { n += 1 }
                        }
                        return n
                    }
                }
                return await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(Set(counts).count == 1)
            #expect(counts[0] > 0)
        }
    }

    // MARK: Duplicates

    @Suite("DuplicateRule")
    struct DuplicateRuleTests {
        static func moved(_ c: Camera, metres: Double, heading: Double?) -> Camera {
            var m = c
            let p = Geodesic.wgs84.direct(lat: c.lat, lon: c.lon, azimuth: 37, distance: metres)
            m.id = "BC-00002"
            m.lat = p.lat
            m.lon = p.lon
            m.heading = heading
            return m
        }

        @Test func distanceThreshold() {
            let a = sampleCamera(heading: 355)
            #expect(DuplicateRule.isLikelyDuplicate(a, Self.moved(a, metres: 2.9, heading: 3), sameOwner: true))
            #expect(!DuplicateRule.isLikelyDuplicate(a, Self.moved(a, metres: 3.1, heading: 3), sameOwner: true))
            #expect(DuplicateRule.isLikelyDuplicate(a, a, sameOwner: true))
        }

        @Test func ownerMustMatch() {
            let a = sampleCamera()
            #expect(!DuplicateRule.isLikelyDuplicate(a, Self.moved(a, metres: 1, heading: 90), sameOwner: false))
        }

        @Test func headingsWrapAround() {
            let a = sampleCamera(heading: 355)
            #expect(DuplicateRule.headingDifference(355, 3) == 8)
            #expect(DuplicateRule.headingDifference(3, 355) == 8)
            #expect(DuplicateRule.headingDifference(0, 180) == 180)
            #expect(DuplicateRule.isLikelyDuplicate(a, Self.moved(a, metres: 1, heading: 5), sameOwner: true))   // 10°: inclusive
            #expect(!DuplicateRule.isLikelyDuplicate(a, Self.moved(a, metres: 1, heading: 6), sameOwner: true))  // 11°
            #expect(!DuplicateRule.isLikelyDuplicate(a, Self.moved(a, metres: 1, heading: 175), sameOwner: true))
        }

        @Test func unknownHeadings() {
            let a = sampleCamera(heading: nil)
            #expect(DuplicateRule.isLikelyDuplicate(a, Self.moved(a, metres: 2, heading: nil), sameOwner: true))
            #expect(!DuplicateRule.isLikelyDuplicate(a, Self.moved(a, metres: 2, heading: 0), sameOwner: true))
            let b = sampleCamera(heading: 0)
            #expect(!DuplicateRule.isLikelyDuplicate(b, Self.moved(b, metres: 2, heading: nil), sameOwner: true))
        }
    }
}
