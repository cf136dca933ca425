import Foundation
import Geo
import Testing
@testable import Registry

@Suite("ImportExportTests")
struct ImportExportTests {
    /// The demo inventory, generated once for the suite.
    static let inventory = DemoInventory.generate()

    /// `(number, field)` of every error, and the numbers of the accepted rows.
    static func summary(_ rows: [ImportRow]) -> (ok: [Int], errors: [(Int, String)]) {
        (rows.compactMap { $0.draft == nil ? nil : $0.number },
         rows.compactMap { r in r.error.map { (r.number, $0.field) } })
    }

    // MARK: - CSV

    /// A CSV file with good rows and bad rows mixed; `⏎` marks a line break inside a quoted field.
    static let mixedLines = [
        /* 1 */ "id,lat,lon,site_kind,address,ward,heading,fov,owner_name,owner_phone,schedule,retention_days",
        /* 2 */ "BC-00001,11.1,106.6,intersection,\"Số 12, Đường ĐT741, Khu phố 2\",Phường Mỹ Phước,45,90,Nguyễn Văn An,0912 345 678,24/7,30",
        /* 3 */ "BC-00002,95,106.6,street,Số 3 Đường 30/4,Phường Mỹ Phước,,,,,,",
        /* 4 */ "BC-00003,11.1,106.6,street,,Phường Mỹ Phước,,,,,,",
        /* 5 */ "BC-00004,abc,106.6,street,Số 5,Phường Mỹ Phước,,,,,,",
        /* 6 */ "BC-00005,11.11,106.61,alley,\"Hẻm 5,⏎Khu phố 3\",Phường Thới Hòa,,,,,18:00-06:00,15",
        /* 8 */ "BC-00006,11.12,106.62,building,Số 8,Phường Chánh Phú Hòa,90,60,\"Tiệm \"\"Phát Đạt\"\"\",,,",
        /* 9 */ "BC-00007,11.1,106.6,building,\"Số 7, Đường 30/4,Phường Chánh Phú Hòa,,,,,,",
        /* 10 */ "BC-00008,11.13,106.63,street,Số 10 Đường 7,Phường Mỹ Phước,180,,,,,",
        /* 11 */ "BC-00009,11.14,106.64,street,\"Số 11, Đường 7\",Phường Mỹ Phước,,,,,,",
        /* 12 */ "BC-00010,11.1,106.6,tower,Số 12,Phường Mỹ Phước,,,,,,",
        /* 13 */ "BC-00011,11.1,106.6,street,Số 13,Phu\u{031B}o\u{031B}\u{0300}ng Ho\u{0300}a Lo\u{031B}\u{0323}i,,,,,,",
        /* 14 */ "BC-00012,11.1",
        /* 15 */ "BC-00013,11.1,106.6,street,Số 15,Phường Mỹ Phước,,,,12345,,",
        /* 16 */ "BC-00014,10.5,106.6,street,Số 16,Phường Mỹ Phước,,,,,,",
        /* 17 */ "",
        /* 18 */ "BC-00015,11.1,106.6,street,Số 18,Phường Mỹ Phước,400,,,,,",
        /* 19 */ ",11.1,106.6,street,Số 19,Phường Mỹ Phước,,,,,,",
        /* 20 */ "BC-00016,11.1,106.6,street,Số 20,Phường Mỹ Phước,,,,,,thirty",
        /* 21 */ "BC-00017,11.1,106.6,street,Số 21,\"Phường Mỹ Phước,,,,,,",
    ]

    static func mixedCSV(eol: String, bom: Bool) -> Data {
        let text = mixedLines.joined(separator: eol).replacingOccurrences(of: "⏎", with: eol) + eol
        return Data((bom ? "\u{FEFF}" : "").utf8) + Data(text.utf8)
    }

    /// Read in batches (as a bulk import streams it into COPY), the mixed file gives the same
    /// rows in the same order, whatever the batch size; no batch is empty or too big.
    /// The CSV reader's UTF-8 check answers as `String(validating:)` on valid, truncated,
    /// overlong, surrogate and random byte strings.
    @Test func csvUTF8CheckAgreesWithTheStandardLibrary() {
        var samples: [[UInt8]] = [[], Array("Đường NA3".utf8), Array("ệ\u{FFFD}x".utf8), [0xC3], [0xC0, 0x80], [0xED, 0xA0, 0x80],
                                  [0xF4, 0x90, 0x80, 0x80], [0xE1, 0xBB], [0xFF], [0x41, 0xE2, 0x82, 0xAC]]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<5000 { samples.append((0..<Int.random(in: 0...6, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }) }
        for b in samples { #expect(CSVImporter.utf8Text(b) == String(validating: b, as: UTF8.self), "\(b)") }
    }

    @Test("decimals read without strtod are the very doubles strtod gives")
    func decimalFastPathAgreesWithStrtod() {
        var g = SystemRandomNumberGenerator()
        func digits(_ n: Int) -> String { String((0..<n).map { _ in Character(String(Int.random(in: 0...9, using: &g))) }) }
        var texts = ["0", "-0", "+0", "0.0", "-0.0", ".5", "5.", "-.5", "007.5", "0.000123", "123", "1e5", "-2.5E-3",
                     "9007199254740993", "999999999999999", "0.1", "0.30000000000000004", "11.1234567", "106.6543210",
                     "1.50000000000000000000000", "12345678901234567890.5", "0.0000000000000000000001", "1234567.1234567890123"]
        for _ in 0..<20_000 {
            let sign = ["", "-", "+"].randomElement(using: &g)!
            let whole = digits(Int.random(in: 0...9, using: &g))
            let fraction = Int.random(in: 0...3, using: &g) == 0 ? "" : "." + digits(Int.random(in: 0...24, using: &g))
            let exponent = Int.random(in: 0...9, using: &g) == 0 ? "e" + String(Int.random(in: -30...30, using: &g)) : ""
            texts.append(sign + whole + fraction + exponent)
        }
        for t in texts {
            let expected = Double(t)
            let got = ImportValue.decimal(t)
            let fine = got?.bitPattern == expected?.bitPattern
            #expect(fine, "\(t): \(String(describing: got)) vs \(String(describing: expected))")
            if !fine { return }
        }
    }

    @Test func cameraFieldOrdinalsAreTheirPositions() {
        #expect(CameraField.count == CameraField.allCases.count)
        for (k, f) in CameraField.allCases.enumerated() { #expect(f.ordinal == k, "\(f)") }
    }

    @Test func csvBatchesEqualTheWholeParse() throws {
        let data = Self.mixedCSV(eol: "\r\n", bom: true)
        let whole = try CSVImporter.parse(data, jurisdiction: .benCat)
        for size in [1, 2, 3, 7, 100] {
            var batches: [[ImportRow]] = []
            try CSVImporter.parse(data, jurisdiction: .benCat, batchSize: size) { batches.append($0) }
            #expect(batches.flatMap { $0 } == whole, "batch size \(size)")
            #expect(batches.allSatisfy { !$0.isEmpty && $0.count <= size })
        }
        // An error thrown by the receiver stops the parse.
        struct Stop: Error {}
        var calls = 0
        #expect(throws: Stop.self) {
            try CSVImporter.parse(data, jurisdiction: .benCat, batchSize: 2) { _ in calls += 1; if calls == 2 { throw Stop() } }
        }
        #expect(calls == 2)
    }

    /// A file read in pieces (an upload parsed while it arrives) gives exactly the rows of the
    /// whole file: pieces of every size, cut anywhere (inside quotes, between CR and LF, after a
    /// separator, inside the byte-order mark), for good, malformed and oddly ended files.
    @Test func csvReadInPiecesReadsAsTheWholeFile() throws {
        let files: [[UInt8]] = [
            Array(Self.mixedCSV(eol: "\r\n", bom: true)), Array(Self.mixedCSV(eol: "\n", bom: false)),
            Array(Self.mixedCSV(eol: "\r", bom: false)),
            Array("id,lat,lon,address\nA1,11.1,106.6,\"Số 1\nA2,11.1,106.6,Số 2\nA3,11.1,106.6,Biển 5\",x\nA4,11.1,106.6,Số 4\n\n".utf8),
            Array("id,lat,lon,address,owner_name\nA1,11.1,106.6,\"a,b\",\"\"\nA2,11.1,106.6,\"\"\"x\"\"\",\r\nA3,11.1,106.6,c,d".utf8),
            Array("id,lat,lon,address\nA1,11.1,106.6,\"a\"b\nA2,11.1,106.6,c\n   \n\t\nA3,11.1,106.6,\"never closed\nA4,11.1,106.6,d,".utf8),
            Array("\u{FEFF}id,lat,lon,address\r\n\r\nA1,11.1,106.6,\"line\r\nbreak\"\r\nA2,11.1,106.6,e\r".utf8),
        ]
        var rng = SystemRandomNumberGenerator()
        for (n, file) in files.enumerated() {
            let whole = try CSVImporter.parse(Data(file), jurisdiction: .benCat)
            for round in 0..<60 {
                // Round 0: one byte a piece, with empty pieces between; then random cuts.
                var pieces: [[UInt8]] = []
                var at = 0
                while at < file.count {
                    let size = round == 0 ? 1 : Int.random(in: 0...max(1, file.count / 3), using: &rng)
                    pieces.append(Array(file[at..<min(file.count, at + size)]))
                    if round == 0 { pieces.append([]) }
                    at += size
                }
                var next = 0
                var rows: [ImportRow] = []
                try CSVImporter.parse(more: {
                    defer { next += 1 }
                    return next < pieces.count ? pieces[next] : nil
                }, jurisdiction: .benCat, batchSize: 3) { rows += $0 }
                #expect(rows == whole, "file \(n), round \(round)")
            }
        }
        // An error thrown by the source (the upload was dropped) ends the parse.
        struct Dropped: Error {}
        var served = 0
        #expect(throws: Dropped.self) {
            try CSVImporter.parse(more: {
                served += 1
                if served > 3 { throw Dropped() }
                return Array("id,lat,lon,address\nA\(served),11.1,106.6,x\n".utf8.dropFirst(served == 1 ? 0 : 19))
            }, jurisdiction: .benCat) { _ in }
        }
    }

    @Test(arguments: [("\r\n", true), ("\n", false), ("\r\n", false), ("\n", true)])
    func csvGoodAndBadRowsMixed(eol: String, bom: Bool) throws {
        let rows = try CSVImporter.parse(Self.mixedCSV(eol: eol, bom: bom), jurisdiction: .benCat)
        let (ok, errors) = Self.summary(rows)
        #expect(ok == [2, 6, 8, 10, 11, 13])
        let expected: [(Int, String)] = [
            (3, "lat"), (4, "address"), (5, "lat"), (9, "address"), (12, "site_kind"), (14, "record"),
            (15, "owner_phone"), (16, "position"), (18, "heading"), (19, "id"), (20, "retention_days"), (21, "ward"),
        ]
        #expect(errors.map(\.0) == expected.map(\.0))
        #expect(errors.map(\.1) == expected.map(\.1))
        #expect(rows.map(\.number) == rows.map(\.number).sorted())
        // Each error's own number matches its row's.
        #expect(rows.allSatisfy { $0.error == nil || $0.error?.number == $0.number })

        func row(_ n: Int) throws -> ImportRow { try #require(rows.first { $0.number == n }) }
        func reason(_ n: Int) throws -> String { try #require(try row(n).error?.reason) }
        #expect(try reason(3).contains("between -90 and 90"))
        #expect(try reason(4) == "is required")
        #expect(try reason(5).contains("number") && (try reason(5)).contains("abc"))
        #expect(try reason(9).contains("quote"))
        #expect(try reason(12).contains("intersection, alley, street, building, other"))
        #expect(try reason(14).contains("2 fields"))
        #expect(try reason(16).hasPrefix("outside the jurisdiction ("))
        #expect(try reason(21).contains("unterminated"))

        // Good rows: values as written, Vietnamese text preserved exactly (NFC).
        let first = try #require(try row(2).draft)
        #expect(first.id == "BC-00001")
        #expect(first.lat == 11.1 && first.lon == 106.6)
        #expect(first.siteKind == .intersection)
        #expect(first.address == "Số 12, Đường ĐT741, Khu phố 2")
        #expect(Array(first.address.utf8) == Array("Số 12, Đường ĐT741, Khu phố 2".precomposedStringWithCanonicalMapping.utf8))
        #expect(first.ward == "Phường Mỹ Phước")
        #expect(first.heading == 45 && first.fov == 90)
        #expect(first.ownerName == "Nguyễn Văn An")
        #expect(first.ownerPhone == "0912 345 678")
        #expect(first.schedule == .always && first.retentionDays == 30)
        #expect(first.status == nil && first.range == nil && first.mountHeight == nil)

        let multiLine = try #require(try row(6).draft)
        #expect(multiLine.address == "Hẻm 5,\(eol)Khu phố 3")
        #expect(multiLine.schedule == .daily(start: 18 * 60, end: 6 * 60))
        #expect(multiLine.retentionDays == 15)
        #expect(try row(8).draft?.ownerName == "Tiệm \"Phát Đạt\"")
        #expect(try row(10).draft?.heading == 180)
        #expect(try row(11).draft?.address == "Số 11, Đường 7")
        // Decomposed (NFD) input comes out composed (NFC), byte for byte.
        let nfc = "Phường Hòa Lợi".precomposedStringWithCanonicalMapping
        #expect(Array(try #require(try row(13).draft?.ward).unicodeScalars) == Array(nfc.unicodeScalars))
    }

    /// The import's text clean-up skips Foundation only where Foundation would return its
    /// input: compare both on tricky text (every kind of space and line break at either end,
    /// decomposed Vietnamese, combining marks after a precomposed letter, Hangul, Angstrom sign).
    @Test func textCleaningAgreesWithFoundation() {
        let pieces = ["Số 7", "Đường NA3", "Nguyễn Văn Ánh", "Phường Mỹ Phước", "e\u{301}", "Ê\u{323}", "ư\u{309}", "\u{1EC7}\u{300}",
                      "\u{212B}", "\u{1100}\u{1161}", "\u{0958}", "ﬁ", "a", "", "x\u{0340}",
                      "\u{1F00}", "\u{1DFF}", "\u{02FF}", "\u{0300}", "\u{1E9B}\u{323}", "A\u{30A}", "\u{1EFF}"]
        let ends = ["", " ", "\t", "\n", "\r\n", "\u{0B}", "\u{85}", "\u{A0}", "\u{2028}", "\u{3000}", "\u{200B}", "\u{FEFF}"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            let body = (0..<Int.random(in: 0...3, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined(separator: " ")
            let s = ends.randomElement(using: &rng)! + body + ends.randomElement(using: &rng)!
            #expect(TextCleaning.trimmed(s) == s.trimmingCharacters(in: .whitespacesAndNewlines), "\(Array(s.unicodeScalars))")
            #expect(TextCleaning.trimmed(s, newlines: false) == s.trimmingCharacters(in: .whitespaces), "\(Array(s.unicodeScalars))")
            #expect(TextCleaning.nfc(s).unicodeScalars.elementsEqual(s.precomposedStringWithCanonicalMapping.unicodeScalars), "\(Array(s.unicodeScalars))")
            #expect(TextCleaning.isBlank(s) == s.trimmingCharacters(in: .whitespaces).isEmpty, "\(Array(s.unicodeScalars))")
        }
    }

    @Test func csvStrayQuoteThatClosesLaterDoesNotSwallowLines() throws {
        let csv = """
            id,lat,lon,address
            A1,11.1,106.6,"Số 1
            A2,11.1,106.6,Số 2
            A3,11.1,106.6,Biển 5",x
            A4,11.1,106.6,Số 4

            """
        let rows = try CSVImporter.parse(Data(csv.utf8))
        let (ok, errors) = Self.summary(rows)
        #expect(ok == [3, 5])
        #expect(errors.map(\.0) == [2, 4])
        #expect(errors.map(\.1) == ["record", "record"])
        #expect(rows[0].error?.reason.contains("ran on to line 4") == true)
        #expect(rows.compactMap(\.draft).map(\.id) == ["A2", "A4"])
    }

    @Test func csvQuotedFieldEdgeCases() throws {
        // Quoted empty field, separator and quotes in quotes, a trailing separator, no final line break.
        let csv = "id,lat,lon,address,owner_name\nA1,11.1,106.6,\"a,b\",\"\"\nA2,11.1,106.6,\"\"\"x\"\"\",\r\nA3,11.1,106.6,c,d"
        let rows = try CSVImporter.parse(Data(csv.utf8))
        #expect(rows.map(\.number) == [2, 3, 4])
        #expect(rows.map { $0.draft?.address } == ["a,b", "\"x\"", "c"])
        #expect(rows.map { $0.draft?.ownerName } == [nil, nil, "d"])
        // Text after a closing quote.
        let bad = try CSVImporter.parse(Data("id,lat,lon,address\nA1,11.1,106.6,\"a\"b\nA2,11.1,106.6,c\n".utf8))
        #expect(bad.map(\.number) == [2, 3])
        #expect(bad[0].error?.field == "address")
        #expect(bad[0].error?.reason.contains("after the closing quote") == true)
        #expect(bad[1].draft?.id == "A2")
    }

    @Test func csvMappingOverridesAndSeparator() throws {
        let csv = "Mã,Latitude,Longitude,Địa chỉ,Hướng\nBC-1,11.1,106.6,Số 1,NE\nBC-2,x,106.6,Số 2,\n"
        let mapping = CSVMapping.default.with(.id, column: "mã").with(.lat, column: "Latitude")
            .with(.lon, column: "LONGITUDE").with(.address, column: "Địa chỉ").with(.heading, column: "Hướng")
        let rows = try CSVImporter.parse(Data(csv.utf8), mapping: mapping)
        #expect(rows.count == 2)
        // The heading column must hold degrees: the error names the file's column.
        #expect(rows[0].error?.field == "Hướng")
        #expect(rows[1].error?.field == "Latitude")

        var semi = CSVMapping(separator: ";")
        semi[.lat] = "vĩ độ"
        let rows2 = try CSVImporter.parse(Data("id;vĩ độ;lon;address\nBC-1;11.1;106.6;Số 1, Đường 2\n".utf8), mapping: semi)
        #expect(rows2.first?.draft?.address == "Số 1, Đường 2")
        #expect(rows2.first?.draft?.lat == 11.1)
    }

    @Test func csvFileLevelErrors() {
        #expect(throws: ImportError.self) { try CSVImporter.parse(Data()) }
        #expect(throws: ImportError.self) { try CSVImporter.parse(Data("\u{FEFF}".utf8)) }
        #expect(throws: ImportError(line: 1, "required column 'address' (address) is missing from the header")) {
            try CSVImporter.parse(Data("id,lat,lon\nA,1,2\n".utf8))
        }
        #expect(throws: ImportError.self) { try CSVImporter.parse(Data("id,lat,lat,lon,address\n".utf8)) }
        #expect(throws: ImportError.self) { try CSVImporter.parse(Data("id,lat,lon,address\n".utf8), mapping: CSVMapping(separator: "\"")) }
        #expect(throws: ImportError.self) { try CSVImporter.parse(Data("id,lat,lon,\"address\n".utf8)) }
    }

    @Test func csvInvalidUTF8IsReportedOnItsField() throws {
        var data = Data("id,lat,lon,address,ward\nA1,11.1,106.6,Số 1,".utf8)
        data.append(contentsOf: [0xC3, 0x28])
        data.append(contentsOf: Array("\nA2,11.1,106.6,Số 2,Phường Mỹ Phước\n".utf8))
        let rows = try CSVImporter.parse(data)
        #expect(rows.map(\.number) == [2, 3])
        #expect(rows[0].error?.field == "ward")
        #expect(rows[1].draft != nil)
    }

    @Test func draftDefaults() throws {
        let rows = try CSVImporter.parse(Data("id,lat,lon,address,heading\nA1,11.1,106.6,Số 1,\nA2,11.1,106.6,Số 2,270\n".utf8))
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let a = try #require(rows[0].draft).camera(now: now)
        #expect(a.siteKind == .other && a.ward == "unknown" && a.heading == nil && a.fov == 360)
        #expect(a.range == 30 && a.retentionDays == 30 && a.schedule == .always && a.status == .pending)
        #expect(a.ownerKind == .household && a.mountHeight == nil && a.ownerName == nil && a.ownerPhone == nil)
        #expect(a.createdAt == now && a.updatedAt == now && a.version == 1)
        #expect(a.validate() == [])
        let b = try #require(rows[1].draft).camera(now: now)
        #expect(b.heading == 270 && b.fov == 90)
    }

    @Test func timestamps() throws {
        func t(_ s: String) -> Double? { ImportValue.timestamp(s)?.timeIntervalSince1970 }
        #expect(t("2022-06-30T12:00:00Z") == 1_656_590_400)
        #expect(t("2022-06-30 19:00:00+07") == 1_656_590_400)
        #expect(t("2022-06-30T19:00:00+07:00") == 1_656_590_400)
        #expect(t("2022-06-30T05:30:00-0630") == 1_656_590_400)
        #expect(t("2022-06-30T12:00:00.123456Z") == Double(1_656_590_400_123_456) / 1_000_000)
        #expect(t("1969-12-31T23:59:59Z") == -1)
        #expect(t("2022-06-30T12:00:00") == nil)
        #expect(t("2022-02-30T12:00:00Z") == nil)
        #expect(t("2022-06-30T24:00:00Z") == nil)
        #expect(t("2022-06-30T12:00:00.Z") == nil)
        #expect(t("2022-06-30T12:00:00Zjunk") == nil)
        let rows = try CSVImporter.parse(Data("id,lat,lon,address,created_at,updated_at\nA,11.1,106.6,x,2022-06-30T12:00:00Z,2022-06-29T12:00:00Z\n".utf8))
        #expect(rows[0].error?.field == "updated_at")
    }

    // MARK: - GeoJSON

    static let geoJSON = #"""
        {"type":"FeatureCollection","features":[
         {"type":"Feature","geometry":{"type":"Point","coordinates":[106.6,11.1]},"properties":{"id":"GJ-1","address":"Số 1, Đường 30/4","ward":"Phường Mỹ Phước","direction":"NE","range_m":50,"owner_phone":"0274 123 4567"}},
         {"type":"Feature","id":"GJ-2","geometry":{"type":"Point","coordinates":[106.61,11.11,12.5]},"properties":{"address":"Số 2","heading":"135.5","fov":"70","retention_days":14,"status":"active","mount_height_m":null}},
         {"type":"Feature","geometry":{"type":"LineString","coordinates":[[106.6,11.1],[106.61,11.11]]},"properties":{"id":"GJ-3","address":"x"}},
         {"type":"Feature","geometry":null,"properties":{"id":"GJ-4","address":"x"}},
         {"type":"Feature","geometry":{"type":"Point","coordinates":["106.6",11.1]},"properties":{"id":"GJ-5","address":"x"}},
         {"type":"Feature","geometry":{"type":"Point","coordinates":[106.6,11.1]},"properties":{"id":"GJ-6"}},
         {"type":"Feature","id":"GJ-1/fov","geometry":{"type":"Polygon","coordinates":[[[106.6,11.1],[106.61,11.1],[106.6,11.11],[106.6,11.1]]]},"properties":{"camera_id":"GJ-1","role":"fov_sector"}},
         {"type":"Feature","geometry":{"type":"Point","coordinates":[106.6,11.1]},"properties":{"id":"GJ-8","address":"x","retention_days":1.5}},
         {"type":"Feature","geometry":{"type":"Point","coordinates":[106.6,11.1]},"properties":{"id":"GJ-9","address":"x","fov":true}},
         {"type":"Feature","geometry":{"type":"Point","coordinates":[106.6,11.1]},"properties":{"id":"GJ-10","address":"x","direction":"sideways"}},
         "not a feature",
         {"type":"Feature","geometry":{"type":"Point","coordinates":[106.9,11.1]},"properties":{"id":"GJ-12","address":"x"}},
         {"type":"Feature","geometry":{"type":"Point","coordinates":[106.6,11.1]},"properties":{"id":"GJ-13","address":"x","owner_phone":912345678}}
        ]}
        """#

    @Test func geoJSONGoodAndBadFeatures() throws {
        let rows = try GeoJSONImporter.parse(Data(Self.geoJSON.utf8), jurisdiction: .benCat)
        let (ok, errors) = Self.summary(rows)
        #expect(ok == [1, 2])
        #expect(errors.map(\.0) == [3, 4, 5, 6, 8, 9, 10, 11, 12, 13])
        #expect(errors.map(\.1) == ["geometry", "geometry", "coordinates", "address", "retention_days", "fov",
                                    "direction", "feature", "position", "owner_phone"])
        #expect(rows.first { $0.number == 3 }?.error?.reason.contains("LineString") == true)

        let a = try #require(rows[0].draft)
        #expect(a.id == "GJ-1" && a.lat == 11.1 && a.lon == 106.6)
        #expect(a.heading == 45 && a.range == 50)
        #expect(a.address == "Số 1, Đường 30/4" && a.ward == "Phường Mỹ Phước")
        #expect(a.ownerPhone == "0274 123 4567")
        let b = try #require(rows[1].draft)
        #expect(b.id == "GJ-2" && b.lat == 11.11 && b.lon == 106.61)
        #expect(b.heading == 135.5 && b.fov == 70 && b.retentionDays == 14 && b.status == .active && b.mountHeight == nil)
    }

    @Test func geoJSONFileLevelErrors() {
        #expect(throws: ImportError.self) { try GeoJSONImporter.parse(Data("not json".utf8)) }
        #expect(throws: ImportError.self) { try GeoJSONImporter.parse(Data("[1,2]".utf8)) }
        #expect(throws: ImportError.self) { try GeoJSONImporter.parse(Data(#"{"type":"Feature","geometry":null}"#.utf8)) }
        #expect(throws: ImportError.self) { try GeoJSONImporter.parse(Data(#"{"type":"FeatureCollection"}"#.utf8)) }
        #expect((try? GeoJSONImporter.parse(Data(#"{"type":"FeatureCollection","features":[]}"#.utf8)))?.isEmpty == true)
    }

    // MARK: - OSM

    /// Elements for the OSM tests: (type, id, lat, lon, tags).
    static let osmElements: [(String, Int, Double, Double, [(String, String)])] = [
        ("node", 1001, 11.1, 106.6, [("man_made", "surveillance"), ("surveillance:type", "camera"),
                                     ("camera:direction", "90-270"), ("camera:angle", "15"), ("camera:mount", "wall")]),
        ("node", 1002, 11.101, 106.601, [("man_made", "surveillance"), ("camera:direction", "NE"), ("height", "3.5 m"),
                                         ("surveillance:zone", "shop"), ("camera:type", "fixed")]),
        ("node", 1003, 11.102, 106.602, [("man_made", "surveillance"), ("camera:direction", "0;180"), ("surveillance:zone", "traffic")]),
        ("node", 1004, 11.103, 106.603, [("amenity", "cafe"), ("name", "Cà phê Sáng")]),
        ("node", 1005, 11.104, 106.604, [("man_made", "surveillance"), ("surveillance:type", "guard")]),
        ("node", 1006, 11.105, 106.605, [("man_made", "surveillance"), ("camera:type", "dome"), ("camera:direction", "45"),
                                         ("camera:angle", "60")]),
        ("node", 1007, 11.106, 106.606, [("man_made", "surveillance"), ("camera:direction", "sideways")]),
        ("way", 2000, 0, 0, [("man_made", "surveillance"), ("camera:direction", "90")]),
        ("node", 1008, 11.107, 106.607, [("man_made", "surveillance"), ("camera:angle", "30"), ("addr:housenumber", "12"),
                                         ("addr:street", "Đường 30/4"), ("addr:suburb", "Phường Mỹ Phước"),
                                         ("operator", "Công an phường Mỹ Phước & \"Đội 2\""), ("operator:type", "government")]),
        ("node", 1009, 11.108, 106.608, [("man_made", "surveillance"), ("surveillance:type", "ALPR"),
                                         ("camera:direction", "270-90"), ("surveillance:zone", "town")]),
        ("node", 1010, 11.109, 106.609, [("man_made", "surveillance"), ("height", "tall")]),
        ("node", 1011, 10.5, 106.6, [("man_made", "surveillance")]),
        ("node", 1012, 11.11, 106.61, [("man_made", "surveillance"), ("camera:direction", "NNW; 350-10 ;S"),
                                       ("addr:quarter", "Khu phố 4")]),
    ]

    static func overpassJSON() -> Data {
        func str(_ s: String) -> String { ExportValue.json(s) }
        let elements = osmElements.map { (type, id, lat, lon, tags) -> String in
            let t = tags.map { "\(str($0.0)):\(str($0.1))" }.joined(separator: ",")
            if type == "way" { return #"{"type":"way","id":\#(id),"nodes":[1,2],"tags":{\#(t)}}"# }
            return #"{"type":"node","id":\#(id),"lat":\#(lat),"lon":\#(lon),"tags":{\#(t)}}"#
        }
        return Data(#"{"version":0.6,"generator":"Overpass API","elements":[\#(elements.joined(separator: ",\n"))]}"#.utf8)
    }

    static func osmXML() -> Data {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: "\"", with: "&quot;")
        }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<osm version=\"0.6\" generator=\"JOSM\">\n"
        xml += "  <bounds minlat=\"11.0\" minlon=\"106.5\" maxlat=\"11.2\" maxlon=\"106.7\"/>\n"
        for (type, id, lat, lon, tags) in osmElements {
            if type == "way" {
                xml += "  <way id=\"\(id)\">\n    <nd ref=\"1\"/>\n"
            } else {
                xml += "  <node id=\"\(id)\" lat=\"\(lat)\" lon=\"\(lon)\" version=\"1\">\n"
            }
            for (k, v) in tags { xml += "    <tag k=\"\(esc(k))\" v=\"\(esc(v))\"/>\n" }
            xml += "  </\(type)>\n"
        }
        xml += "  <relation id=\"3000\"><member type=\"node\" ref=\"1001\" role=\"\"/><tag k=\"man_made\" v=\"surveillance\"/></relation>\n"
        return Data((xml + "</osm>\n").utf8)
    }

    static func checkOSMRows(_ rows: [ImportRow]) throws {
        #expect(rows.map(\.number) == [1001, 1002, 1003, 1003, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1012, 1012])
        func draft(_ id: String) throws -> CameraDraft { try #require(rows.compactMap(\.draft).first { $0.id == id }) }

        // A range: heading in the middle going clockwise, fov = the range's width; the tilt is not the fov.
        let r = try draft("OSM-1001")
        #expect(r.heading == 180 && r.fov == 180)
        #expect(r.camera().fov != 15)
        #expect(r.notes?.contains("camera:angle=15 (tilt)") == true)
        #expect(r.notes?.contains("camera:mount=wall") == true)
        #expect(r.address == "OSM node 1001" && r.ward == nil && r.camera().ward == "unknown")
        #expect(r.status == nil && r.camera().status == .pending)

        // A compass point, a height, a zone.
        let c = try draft("OSM-1002")
        #expect(c.heading == 45 && c.fov == nil && c.camera().fov == 90)
        #expect(c.mountHeight == 3.5 && c.siteKind == .building)

        // Two directions: two drafts, numbered ids, the same row number.
        let d1 = try draft("OSM-1003-1"), d2 = try draft("OSM-1003-2")
        #expect(d1.heading == 0 && d2.heading == 180)
        #expect(d1.siteKind == .street && d1.lat == 11.102 && d2.lon == 106.602)
        #expect(rows.compactMap(\.draft).contains { $0.id == "OSM-1003" } == false)

        // Dome: all around, whatever the direction and the angle say.
        let dome = try draft("OSM-1006")
        #expect(dome.heading == nil && dome.fov == 360)
        #expect(dome.notes?.contains("camera:angle=60 (tilt)") == true)

        let bad = try #require(rows.first { $0.number == 1007 }?.error)
        #expect(bad.field == "camera:direction")

        // camera:angle alone never becomes the fov; address, ward and operator from tags.
        let tagged = try draft("OSM-1008")
        #expect(tagged.heading == nil && tagged.fov == nil && tagged.camera().fov == 360)
        #expect(tagged.address == "12 Đường 30/4" && tagged.ward == "Phường Mỹ Phước")
        #expect(tagged.ownerName == "Công an phường Mỹ Phước & \"Đội 2\"" && tagged.ownerKind == .public)

        // ALPR is a camera; a range across north.
        let alpr = try draft("OSM-1009")
        #expect(alpr.heading == 0 && alpr.fov == 180 && alpr.siteKind == .street)

        #expect(rows.first { $0.number == 1010 }?.error?.field == "height")
        #expect(rows.first { $0.number == 1011 }?.error?.field == "position")

        // Three directions, one of them a range through north; ward from addr:quarter.
        let three = try ["OSM-1012-1", "OSM-1012-2", "OSM-1012-3"].map(draft)
        #expect(three.map(\.heading) == [337.5, 0, 180])
        #expect(three.map(\.fov) == [nil, 20, nil])
        #expect(three[0].ward == "Khu phố 4")
        #expect(three.allSatisfy { $0.validate() == [] })
    }

    @Test func osmOverpassJSON() throws {
        let rows = try OSMImporter.parseOverpassJSON(Self.overpassJSON(), jurisdiction: .benCat)
        try Self.checkOSMRows(rows)
    }

    @Test func osmXMLGivesTheSameRowsAsJSON() throws {
        let xmlRows = try OSMImporter.parseXML(Self.osmXML(), jurisdiction: .benCat)
        try Self.checkOSMRows(xmlRows)
        #expect(xmlRows == (try OSMImporter.parseOverpassJSON(Self.overpassJSON(), jurisdiction: .benCat)))
    }

    @Test func osmFileLevelErrors() {
        #expect(throws: ImportError.self) { try OSMImporter.parseXML(Data("<osm><node id=\"1\"".utf8)) }
        #expect(throws: ImportError.self) { try OSMImporter.parseXML(Data("<osm><node id=\"1\" lat=\"11.1\" lon=\"106.6\">".utf8)) }
        #expect(throws: ImportError.self) { try OSMImporter.parseXML(Data("<osm><node id=\"1\"></way></osm>".utf8)) }
        #expect(throws: ImportError.self) { try OSMImporter.parseXML(Data("<osm><node id=\"1\"/></osm><osm/>".utf8)) }
        #expect(throws: ImportError.self) { try OSMImporter.parseXML(Data("".utf8)) }
        #expect(throws: ImportError.self) { try OSMImporter.parseXML(Data("<gpx><node id=\"1\"/></gpx>".utf8)) }
        #expect(throws: ImportError.self) { try OSMImporter.parseXML(Data("<osm><node lat=\"1\" lon=\"2\"/></osm>".utf8)) }
        #expect(throws: ImportError.self) { try OSMImporter.parseOverpassJSON(Data(#"{"nodes":[]}"#.utf8)) }
        #expect(throws: ImportError.self) { try OSMImporter.parseOverpassJSON(Data(#"{"elements":[{"type":"node"}]}"#.utf8)) }
        #expect((try? OSMImporter.parseXML(Data("<osm/>".utf8)))?.isEmpty == true)
        do {
            _ = try OSMImporter.parseXML(Data("<osm>\n<node id=\"1\">\n</way>\n</osm>".utf8))
            Issue.record("a mismatched tag was accepted")
        } catch let e as ImportError {
            #expect(e.line == 3)
            #expect(e.reason.contains("end tag"), "\(e)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func osmNodeWithoutPosition() throws {
        let rows = try OSMImporter.parseOverpassJSON(Data(#"{"elements":[{"type":"node","id":5,"tags":{"man_made":"surveillance"}}]}"#.utf8))
        #expect(rows.count == 1)
        #expect(rows[0].error == ImportRowError(number: 5, field: "lat", reason: "is missing (the node has no position)"))
    }

    @Test func directionValues() {
        func p(_ s: String) -> [OSMDirection.View]? { OSMDirection.parse(s) }
        #expect(p("45") == [.init(heading: 45, fov: nil)])
        #expect(p("NNE") == [.init(heading: 22.5, fov: nil)])
        #expect(p("nw") == [.init(heading: 315, fov: nil)])
        #expect(p("360") == [.init(heading: 0, fov: nil)])
        #expect(p("-90") == [.init(heading: 270, fov: nil)])
        #expect(p("90-270") == [.init(heading: 180, fov: 180)])
        #expect(p("270-90") == [.init(heading: 0, fov: 180)])
        #expect(p("350-10") == [.init(heading: 0, fov: 20)])
        #expect(p("N-E") == [.init(heading: 45, fov: 90)])
        #expect(p("0-360") == [.init(heading: nil, fov: 360)])
        #expect(p("0;180") == [.init(heading: 0, fov: nil), .init(heading: 180, fov: nil)])
        #expect(p("90-90") == nil)
        #expect(p("") == nil)
        #expect(p("up") == nil)
        #expect(p("45;up") == nil)
        #expect(p("1e400") == nil)
    }

    // MARK: - Export → import round trips

    /// Demo cameras plus a few awkward ones (quotes, separators, line breaks, missing optionals).
    static func roundTripCameras() -> [Camera] {
        var cams = inventory.cameras
        var odd = cams[0]
        odd.id = "ODD-1"
        odd.address = "Số 5/7, \"Nhà trọ Bình An\",\nHẻm 12\tKhu phố 3 \\ cổng sau"
        odd.ownerName = "=Công ty TNHH; \"Xanh\""
        odd.ownerPhone = nil
        odd.mountHeight = nil
        odd.heading = nil
        odd.fov = 360
        odd.schedule = .daily(start: 17 * 60 + 30, end: 6 * 60 + 30)
        odd.createdAt = Date(timeIntervalSince1970: 1_600_000_000.123456)
        odd.updatedAt = Date(timeIntervalSince1970: 1_650_000_000.5)
        odd.version = 42
        cams.append(odd)
        var tiny = cams[1]
        tiny.id = "ODD-2"
        tiny.ownerName = nil
        tiny.heading = 0.1 + 0.2
        tiny.range = 1e-05
        tiny.lat = 11.034100000000001
        cams.append(tiny)
        return cams
    }

    @Test func csvRoundTripIsLossless() throws {
        let cams = Self.roundTripCameras()
        for bom in [false, true] {
            let writer = CSVExporter(byteOrderMark: bom)
            var text = writer.header()
            for c in cams { text += writer.row(c) }
            text += writer.footer()
            let rows = try CSVImporter.parse(Data(text.utf8))
            #expect(rows.count == cams.count)
            #expect(rows.allSatisfy { $0.error == nil }, "\(rows.compactMap(\.error).prefix(3))")
            let back = rows.compactMap { $0.draft?.camera() }
            #expect(back == cams)
            #expect(rows.compactMap(\.draft) == cams.map(CameraDraft.init))
            // Bit-for-bit doubles and byte-for-byte text.
            for (a, b) in zip(back, cams) {
                #expect(a.lat.bitPattern == b.lat.bitPattern && a.lon.bitPattern == b.lon.bitPattern)
                #expect(Array(a.address.utf8) == Array(b.address.utf8) && Array(a.ward.utf8) == Array(b.ward.utf8))
                #expect(a.ownerName.map { Array($0.utf8) } == b.ownerName.map { Array($0.utf8) })
            }
        }
        #expect(CSVExporter().header() == CameraField.allCases.map(\.rawValue).joined(separator: ",") + "\r\n")
    }

    @Test func geoJSONRoundTripIsLossless() throws {
        let cams = Self.roundTripCameras()
        var writer = GeoJSONExporter()
        var text = writer.header()
        var sectors = 0
        for (k, c) in cams.enumerated() {
            var ring: [(lat: Double, lon: Double)]?
            if k % 3 == 0 {
                ring = try Sector(lat: c.lat, lon: c.lon, heading: c.heading, fov: c.fov, range: c.range)
                    .lonLatRing().map { (lat: $0.lat, lon: $0.lon) }
                sectors += 1
            }
            text += writer.feature(c, sector: ring)
        }
        text += writer.footer()
        let data = Data(text.utf8)

        // Valid JSON, RFC 7946 shapes.
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let features = try #require(root["features"] as? [[String: Any]])
        #expect(features.count == cams.count + sectors)
        let firstSector = try #require(features.first { ($0["properties"] as? [String: Any])?["role"] as? String == "fov_sector" })
        let geometry = try #require(firstSector["geometry"] as? [String: Any])
        #expect(geometry["type"] as? String == "Polygon")
        let ring = try #require((geometry["coordinates"] as? [[[Double]]])?.first)
        #expect(ring.first == ring.last && ring.count >= 4)
        let point = try #require((features[0]["geometry"] as? [String: Any])?["coordinates"] as? [Any])
        #expect(point.compactMap { ImportValue.jsonNumber($0)?.value } == [cams[0].lon, cams[0].lat])

        let rows = try GeoJSONImporter.parse(data)
        #expect(rows.count == cams.count)
        #expect(rows.allSatisfy { $0.error == nil }, "\(rows.compactMap(\.error).prefix(3))")
        let back = rows.compactMap { $0.draft?.camera() }
        #expect(back == cams)
        for (a, b) in zip(back, cams) {
            #expect(a.lat.bitPattern == b.lat.bitPattern && a.lon.bitPattern == b.lon.bitPattern)
            #expect(a.heading?.bitPattern == b.heading?.bitPattern && a.range.bitPattern == b.range.bitPattern)
            #expect(Array(a.address.utf8) == Array(b.address.utf8))
        }
    }

    @Test func sectorRingsAreClosedAndCounterClockwise() throws {
        // A clockwise, unclosed square comes out closed and counter-clockwise.
        let cw: [(lat: Double, lon: Double)] = [(11.1, 106.6), (11.1, 106.61), (11.09, 106.61), (11.09, 106.6)]
        let r = try #require(GeoJSONExporter.ring(cw))
        #expect(r.count == 5 && r.first! == r.last!)
        var twice = 0.0
        for k in 0..<(r.count - 1) { twice += r[k].lon * r[k + 1].lat - r[k + 1].lon * r[k].lat }
        #expect(twice > 0)
        #expect(GeoJSONExporter.ring([(11.1, 106.6), (11.1, 106.61)]) == nil)
        #expect(GeoJSONExporter.ring([(11.1, 106.6), (.nan, 106.61), (11.2, 106.7)]) == nil)
        var w = GeoJSONExporter()
        let chunk = w.feature(Self.inventory.cameras[0], sector: [(11.1, 106.6)])
        #expect(!chunk.contains("fov_sector"))
    }
}
