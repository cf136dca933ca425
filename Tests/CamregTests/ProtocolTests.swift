@testable import ControlProtocol
import Foundation
import Testing

@Suite("Request parsing and response encoding (pure)")
struct ProtocolTests {
    func code(_ line: String, limits: ProtocolLimits = .init()) -> String? {
        do {
            _ = try RequestParser.parse(line, limits: limits)
            return nil
        } catch {
            return error.code.rawValue
        }
    }

    /// `IMPORT DATA` chunks skip the tokenizer only when it would give the same command.
    /// A writer's block is taken from and given back to its thread's spare (``SpareBlock``), and
    /// ``JSONWriter/finish()`` hands it over without a copy: texts of growing and shrinking sizes
    /// (a spare too small, a block grown past it, one over the 64 KiB kept), on four threads at
    /// once, each finished text kept alive while later writers run, must come out exactly.
    @Test func finishedWritersKeepTheirBytesWhileBlocksAreReused() async {
        func text(_ n: Int, _ seed: Int) -> String { String(repeating: Character(UnicodeScalar(UInt8(97 + seed % 26))), count: n) }
        let sizes = [10, 300, 5_000, 40, 70_000, 2_000, 100_000, 1, 9_000, 600]
        let failures = await withTaskGroup(of: Int.self) { group in
            for t in 0..<4 {
                group.addTask {
                    var bad = 0
                    var kept: [(JSONBytes, String)] = []
                    for round in 0..<20 {
                        for (i, n) in sizes.enumerated() {
                            var w = JSONWriter(capacity: (i * 37 + round) % 3 == 0 ? 16 : n)
                            let expected = "{\"s\":\"\(text(n, t + i))\"}"
                            w.object { $0.put("s", text(n, t + i)) }
                            let bytes = w.finish()
                            if bytes.count != expected.utf8.count || bytes.array != Array(expected.utf8) { bad += 1 }
                            kept.append((bytes, expected))
                            if kept.count > 3 { kept.removeFirst() }
                        }
                    }
                    for (bytes, expected) in kept where bytes.withUnsafeBytes({ Array($0) }) != Array(expected.utf8) { bad += 1 }
                    return bad
                }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
    }

    @Test func importDataChunksParseAsTheTokenizerWould() throws {
        let b64 = Data((0..<3000).map { UInt8(truncatingIfNeeded: $0 * 7) }).base64EncodedString()
        for line in ["IMPORT DATA data=" + b64, "IMPORT DATA data=QUJD", "IMPORT DATA data=QQ==", "import data data=QUJD",
                     "IMPORT DATA data=QUJD case=BC-1", "IMPORT DATA data=\"QUJD\"", "IMPORT DATA data=QU JD", "IMPORT DATA data=",
                     "IMPORT DATA  data=QUJD", "IMPORT DATA data=QUJD\u{1}"] {
            let bytes = Array(line.utf8)
            let generic = Result { () throws(ProtocolError) -> Command in try RequestParser.parse(tokens: try Tokenizer.tokenize(bytes), limits: .init()).0 }
            let full = Result { () throws(ProtocolError) -> Command in try RequestParser.parseRequest(bytes).command }
            #expect(String(describing: full) == String(describing: generic), "\(line)")
            let fast = bytes.withUnsafeBufferPointer(RequestParser.importDataChunk)
            if let fast { #expect(fast.command == (try? generic.get()) && fast.spec.words == ["IMPORT", "DATA"], "\(line)") }
            #expect((fast != nil) == (line == "IMPORT DATA data=" + b64 || line == "IMPORT DATA data=QUJD" || line == "IMPORT DATA data=QQ=="), "\(line)")
        }
    }

    @Test func commandWordsAndFieldNamesIgnoreASCIICaseOnly() throws {
        #expect(try RequestParser.parse("Camera GeT BC-00042") == .cameraGet(id: "BC-00042"))
        guard case .near(let q) = try RequestParser.parse("near 11.1 106.6 radius=200 fields=Distance_M,SEES") else {
            Issue.record("not a NEAR")
            return
        }
        #expect(q.search.fields == [.id, .distance, .sees])
        #expect(throws: ProtocolError.self) { try RequestParser.parse("NEAR 11.1 106.6 radius=200 fields=distance_m,nope") }
        do {
            _ = try RequestParser.parse("NEAR 11.1 106.6 radius=200 fields=distance_m,nope")
        } catch {
            #expect(error.code == .invalidValue && error.field == "fields")
        }
        // Unicode case mapping is not ASCII: "ſ" (long s) upper-cases to "S", but is no command letter.
        #expect(throws: ProtocolError.self) { try RequestParser.parse("ſTATS") }
    }

    /// `fields=` names are matched by 16-byte keys: every name and its capitalised form is found,
    /// and a prefix, an extension, a name with a NUL byte or of more than 16 bytes is refused.
    @Test func fieldNamesAreMatchedExactly() throws {
        for (i, name) in HitFields.names.enumerated() {
            #expect(try HitFields.parse(name) == [.id, HitFields(rawValue: 1 << UInt32(i))], "\(name)")
            #expect(try HitFields.parse(name.uppercased()) == [.id, HitFields(rawValue: 1 << UInt32(i))], "\(name)")
            for bad in [String(name.dropLast()), name + "s", name + "\u{0}", "\u{0}" + name, name + "_abcdefghijklmnop"] {
                #expect(throws: ProtocolError.self, "\(bad)") { try HitFields.parse(bad) }
            }
        }
        #expect(try HitFields.parse("distance_m,sees,footage,retention_days") == [.id, .distance, .sees, .footage, .retention])
        for bad in ["", "sees,", ",sees", "sees,,footage", "distance_m,ſees", "retention_days_x"] {
            #expect(throws: ProtocolError.self, "\(bad)") { try HitFields.parse(bad) }
        }
    }

    @Test func hitFieldBitsFollowTheirNames() {
        let fields: [(HitFields, String)] = [(.id, "id"), (.lat, "lat"), (.lon, "lon"), (.distance, "distance_m"), (.bearing, "bearing_deg"), (.along, "along_m"), (.sees, "sees"), (.footage, "footage"), (.expiresAt, "expires_at"), (.window, "window"), (.site, "site"), (.address, "address"), (.ward, "ward"), (.status, "status"), (.heading, "heading_deg"), (.fov, "fov_deg"), (.range, "range_m"), (.retention, "retention_days"), (.schedule, "schedule"), (.ownerKind, "owner_kind"), (.ownerName, "owner_name"), (.ownerPhone, "owner_phone"), (.consent, "consent")]
        #expect(fields.count == HitFields.names.count)
        for (f, name) in fields { #expect(HitFields.named(name) == f, "\(name)") }
        #expect(HitFields.all == fields.reduce(HitFields()) { $0.union($1.0) })
        #expect(HitFields.ownerData == [.address, .ownerName, .ownerPhone])
    }

    @Test func parsesEveryCommand() throws {
        #expect(try RequestParser.parse("PING") == .ping)
        #expect(try RequestParser.parse("ping") == .ping)
        #expect(try RequestParser.parse("HELP") == .help(topic: nil))
        #expect(try RequestParser.parse("help camera get") == .help(topic: "CAMERA GET"))
        #expect(try RequestParser.parse("NEAR 11.147 106.6076 radius=300")
            == .near(NearQuery(lat: 11.147, lon: 106.6076, radius: 300, limit: 100)))
        #expect(try RequestParser.parse("  near  -11.5\t106 limit=7 radius=1e3  ")
            == .near(NearQuery(lat: -11.5, lon: 106, radius: 1000, limit: 7)))
        #expect(try RequestParser.parse("CAMERA GET bc-00042") == .cameraGet(id: "BC-00042"))
        #expect(try RequestParser.parse("camera get \"BC-00042\"") == .cameraGet(id: "BC-00042"))
        #expect(try RequestParser.parse("STATS") == .stats)
        #expect(try RequestParser.parse("QUIT\r") == .quit)
    }

    @Test func everyErrorCodeIsDistinct() {
        var long = ProtocolLimits()
        long.maxLineBytes = 10
        let cases: [(String, String, ProtocolLimits)] = [
            ("NEAR 1 2 radius=300", "line_too_long", long),
            ("", "empty_request", .init()),
            ("   ", "empty_request", .init()),
            ("FROB 1 2", "unknown_command", .init()),
            ("CAMERA FROB 1", "unknown_command", .init()),
            ("CAMERA", "wrong_arity", .init()),
            ("NEAR 11.1", "wrong_arity", .init()),
            ("NEAR 11.1 106 107 radius=3", "wrong_arity", .init()),
            ("PING extra", "wrong_arity", .init()),
            ("CAMERA GET", "wrong_arity", .init()),
            ("NEAR 11 106 radius=300 color=red", "unknown_option", .init()),
            ("NEAR 11 106 radius=300 radius=400", "duplicate_option", .init()),
            ("NEAR 11 106", "missing_option", .init()),
            ("NEAR abc 106 radius=300", "not_a_number", .init()),
            ("NEAR 11 106 radius=3OO", "not_a_number", .init()),
            ("NEAR 11 106 radius=0x10", "not_a_number", .init()),
            ("NEAR 11 106 radius=300 limit=1.5", "not_a_number", .init()),
            ("NEAR NaN 106 radius=300", "not_finite", .init()),
            ("NEAR 11 -inf radius=300", "not_finite", .init()),
            ("NEAR 11 106 radius=Infinity", "not_finite", .init()),
            ("NEAR 11 106 radius=1e400", "not_finite", .init()),
            ("NEAR 90.0001 106 radius=300", "out_of_range", .init()),
            ("NEAR 11 180.5 radius=300", "out_of_range", .init()),
            ("NEAR 11 106 radius=300 limit=0", "out_of_range", .init()),
            ("NEAR 11 106 radius=300 limit=10001", "out_of_range", .init()),
            ("NEAR 11 106 radius=0", "radius_not_positive", .init()),
            ("NEAR 11 106 radius=-5", "radius_not_positive", .init()),
            ("NEAR 11 106 radius=50000.1", "radius_too_large", .init()),
            ("CAMERA GET BC/0042", "invalid_value", .init()),
            ("CAMERA GET \"BC 42\"", "invalid_value", .init()),
            ("NEAR \"11 106 radius=3", "bad_quoting", .init()),
            ("CAMERA GET \"BC\"X", "bad_quoting", .init()),
            ("CAMERA GET \"a\\qb\"", "bad_quoting", .init()),
            ("PING\u{0}", "control_character", .init()),
            ("PING\u{1B}[2J", "control_character", .init()),
        ]
        for (line, expected, limits) in cases {
            #expect(code(line, limits: limits) == expected, "\(line.debugDescription)")
        }
        #expect(throws: ProtocolError.self) { try RequestParser.parse([0x50, 0x49, 0xFF, 0x47], limits: .init()) }
        do {
            _ = try RequestParser.parse([0x50, 0x49, 0xFF, 0x47], limits: .init())
        } catch {
            #expect(error.code == .invalidUTF8)
        }
    }

    @Test func limitsAreInclusive() throws {
        #expect(code("NEAR 90 180 radius=50000 limit=10000") == nil)
        #expect(code("NEAR -90 -180 radius=0.001 limit=1") == nil)
        var l = ProtocolLimits()
        l.maxRadius = 500
        #expect(code("NEAR 11 106 radius=501", limits: l) == "radius_too_large")
        // A line of exactly the maximum is accepted.
        let line = "PING" + String(repeating: " ", count: l.maxLineBytes - 4)
        #expect(code(line, limits: l) == nil)
        #expect(code(line + " ", limits: l) == "line_too_long")
    }

    @Test func errorsNameTheField() throws {
        do {
            _ = try RequestParser.parse("NEAR 11 106 radius=-1")
            Issue.record("expected an error")
        } catch {
            #expect(error.field == "radius")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(error.json.utf8)) as? [String: Any])
            #expect(json["ok"] as? Bool == false)
            let e = try #require(json["error"] as? [String: Any])
            #expect(e["code"] as? String == "radius_not_positive")
            #expect(e["field"] as? String == "radius")
            #expect((e["message"] as? String)?.contains("radius") == true)
        }
    }

    @Test func tokenizerQuotesAndOptions() throws {
        let t = try Tokenizer.tokenize(#"CMD "a b" x=1 note="Số 12, \"Hẻm\" 5" path=\\x plain"#)
        #expect(t.words == ["CMD", "a b", "plain"])
        #expect(t.options.map(\.name) == ["x", "note", "path"])
        #expect(t.options.map(\.value) == ["1", #"Số 12, "Hẻm" 5"#, #"\\x"#])
        // quote() round-trips through the tokenizer.
        for v in ["", "a b", "Đường số 7", #"q"uote"#, #"back\slash"#, "k=v", "tab\there"] {
            let t2 = try Tokenizer.tokenize("X " + Tokenizer.quote(v))
            #expect(t2.words == ["X", v])
        }
    }

    @Test func jsonWriterEscapes() throws {
        var w = JSONWriter()
        w.object { o in
            o.field("s", "a\"b\\c\nd\u{1}é Đ")
            o.field("n", 1.5)
            o.field("i", 42)
            o.field("nan", Double.nan)
            o.field("nil", nil as String?)
            o.key("arr")
            o.array { a in a.value(1); a.value("x"); a.value(true) }
        }
        let o = try #require(try JSONSerialization.jsonObject(with: Data(w.string.utf8)) as? [String: Any])
        #expect(o["s"] as? String == "a\"b\\c\nd\u{1}é Đ")
        #expect((o["n"] as? NSNumber)?.doubleValue == 1.5)
        #expect((o["i"] as? NSNumber)?.intValue == 42)
        #expect(o["nan"] is NSNull)
        #expect(o["nil"] is NSNull)
        #expect((o["arr"] as? [Any])?.count == 3)
        #expect(!w.string.contains("\n"))
    }

    /// Rounded numbers are written from integers: the text must be what the general path
    /// (the shortest form of the rounded double) writes, for every sign, size and digit count.
    @Test func jsonWriterDecimalsMatchTheGeneralPath() {
        var rng = SystemRandomNumberGenerator()
        var values: [Double] = [0, -0.0, 0.0004, 0.0005, -0.0004, -0.5, 12, 12.5, 123.456789, 359.96, 359.94, 1e12 + 0.5,
                                9.99e14, 1e15, 1e16, -1e16, 0.1, 0.2, 0.3, 1.005, 2.675,
                                // exact ties at 1, 2 and 3 decimals: half away from zero, as `rounded()`
                                0.25, -0.25, 12.25, 359.75, 0.125, -0.125, 0.0625, 1.0625, -1.0625, 999_999_999_999.5,
                                .nan, .infinity, -.infinity, 1e15 - 1, 1e15 - 0.5, 999_999_999_999.9995]
        for _ in 0..<20_000 {
            let magnitude = [1.0, 10, 500, 1e4, 1e7, 1e12][Int.random(in: 0..<6, using: &rng)]
            values.append(Double.random(in: -magnitude...magnitude, using: &rng))
        }
        for d in values {
            for digits in 1...3 {
                var scale = 1.0
                for _ in 0..<digits { scale *= 10 }
                var fast = JSONWriter(), general = JSONWriter()
                fast.value(d, decimals: digits)
                general.value((d * scale).rounded() / scale)
                #expect(fast.string == general.string, "\(d) with \(digits) decimals")
            }
        }
    }

    /// Plain decimals are read by the fast path (digits ÷ a power of ten) to the very double that
    /// `Double(_:)` (strtod) reads, sign and zero included; every other spelling is left to it.
    @Test func plainDecimalsMatchStrtod() throws {
        var rng = SystemRandomNumberGenerator()
        var texts = ["0", "-0", "+0", "0.0", "-0.000", "00012.3400", "1", "-1", "90", "-90", "180", "11.1", "106.61234567",
                     "0.1", "0.2", "0.3", "1.005", "2.675", "9007199254740993", "999999999999999", "9999999999999999",
                     "123456789012345", "1234567890123456", "0.0000000000000000000001", "0.00000000000000000000001",
                     "1.", ".5", "+.5", "-", "+", "", "1e2", "1E-2", "1.5e3", "0x10", "1_0", " 1", "1 ", "--1", "+-1",
                     "nan", "inf", "12,5", "1.2.3", "٣"]
        let digits = Array("0123456789")
        func run(_ n: Int) -> String { String((0..<n).map { _ in digits[Int.random(in: 0..<10, using: &rng)] }) }
        for _ in 0..<40_000 {
            let sign = ["", "-", "+"][Int.random(in: 0..<3, using: &rng)]
            let whole = run(Int.random(in: 1...9, using: &rng))
            let fraction = Int.random(in: 0...3, using: &rng) == 0 ? "" : "." + run(Int.random(in: 1...17, using: &rng))
            texts.append(sign + whole + fraction)
        }
        var fast = 0
        for t in texts {
            let expected = Values.isDecimal(t) ? Double(t) : nil
            guard let v = Values.plainDecimal(t) else { continue }
            fast += 1
            #expect(v.bitPattern == expected?.bitPattern, "\(t): \(v) against \(String(describing: expected))")
        }
        #expect(fast > 20_000)
        #expect(Values.plainDecimal("1e2") == nil && Values.plainDecimal("1.") == nil && Values.plainDecimal("1234567890123456") == nil)
        #expect(try Values.double("-0", field: "x").sign == .minus)
        #expect(try Values.double("1e2", field: "x") == 100)
    }

    /// The `NEAR` fast path gives the general parser's command for every line it takes, and
    /// leaves every other line (other spellings, errors, envelope options) to it; it takes most
    /// plain lines.
    @Test func nearFastPathAgreesWithTheGeneralParser() throws {
        var rng = SystemRandomNumberGenerator()
        func pick<T>(_ a: [T]) -> T { a[Int.random(in: 0..<a.count, using: &rng)] }
        let heads = ["NEAR", "NEAR", "NEAR", "near", "Near", " NEAR", "NEAR\t", "NEARX", "NEAREST"]
        let numbers = ["11.1", "-11.25", "+106.6", "106.61234567", "0", "90", "-90.5", "180", "181", "1e2", "nan", "abc", "", "11,5", "\"11.1\"",
                       "-0", "011.10", "1.23456789012345678", "89.9999999999999999999"]
        let options = ["radius=200", "radius=0", "radius=-5", "radius=60000", "radius=500.5", "RADIUS=200", "limit=5", "limit=0",
                       "limit=10000", "limit=x", "fields=distance_m,sees,footage", "fields=ID,Lat", "fields=nope", "fields=",
                       "sees=only", "sees=ALL", "sees=maybe", "order=urgency", "order=x", "offset=3", "offset=-1",
                       "at=2026-11-29T21:30+07:00", "from=2026-11-29T21:00Z", "to=2026-11-29T22:00Z", "case=BC-1",
                       "purpose=\"a b\"", "color=red", "radius=200", "limit=5", "fields=a=b", "=5", "x",
                       "limit=007", "limit=+5", "limit=123456789012345678901", "limit=10001", "radius=0200", "radius=+300", "radius=1e2"]
        var taken = 0, plain = 0
        for n in 0..<30_000 {
            var parts = [pick(heads)]
            if n % 3 != 0 { parts += ["11.1", "106.6", "radius=\(pick(["200", "500", "1000"]))"] }
            let extra = Int.random(in: 0...4, using: &rng)
            for _ in 0..<extra { parts.append(Bool.random(using: &rng) ? pick(options) : pick(numbers)) }
            if n % 3 == 0 { parts.insert(contentsOf: [pick(numbers), pick(numbers)], at: 1) }
            if n % 7 == 0 { parts.shuffle(using: &rng) }
            let line = parts.joined(separator: Bool.random(using: &rng) ? " " : "  ")
            let bytes = Array(line.utf8)
            let general = Result { () throws(ProtocolError) in try RequestParser.parseGeneral(bytes, limits: .init()) }
            let fast = bytes.withUnsafeBufferPointer { RequestParser.nearLine($0, limits: .init()) }
            if case .success(let g) = general, g.caseID == nil, g.purpose == nil, case .near = g.command, line.hasPrefix("NEAR "),
               !line.contains("\""), !line.contains("RADIUS"), !line.contains("case="), !line.contains("purpose=") {
                plain += 1
            }
            guard let fast else { continue }
            taken += 1
            let g = try #require(try? general.get(), "the fast path took a line the general parser refuses: \(line)")
            #expect(fast.command == g.command, "\(line)")
            #expect(fast.spec.name == g.spec.name && fast.caseID == g.caseID && fast.purpose == g.purpose, "\(line)")
        }
        // Plain lines (upper-case NEAR, options as written by clients) nearly all take the fast path.
        #expect(plain > 1000)
        #expect(Double(taken) >= 0.9 * Double(plain), "fast path took \(taken) of \(plain) plain lines")
        // The parser as the server calls it: the fast path's answer, or the general one's error.
        #expect(try RequestParser.parse("NEAR 11.1 106.6 radius=200 fields=distance_m") == RequestParser.parse("near 11.1 106.6 RADIUS=200 fields=distance_m"))
        #expect(throws: ProtocolError.self) { try RequestParser.parse("NEAR 11.1 106.6 radius=0") }
    }

    /// Integers are written two digits at a time: the text must be `description`'s, for every
    /// length and sign, the ends of the range included.
    @Test func jsonWriterIntegersMatchDescription() {
        var rng = SystemRandomNumberGenerator()
        var values: [Int] = [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, -1, -9, -10, -99, -100, Int.max, Int.min, Int.max - 1, Int.min + 1]
        var p = 1
        for _ in 0..<18 { p *= 10; values += [p - 1, p, p + 1, -p, -(p - 1)] }
        for _ in 0..<20_000 {
            let bits = Int.random(in: 1...62, using: &rng)
            let v = Int.random(in: 0..<(1 << bits), using: &rng)
            values.append(Bool.random(using: &rng) ? v : -v)
        }
        for v in values {
            var w = JSONWriter()
            w.value(v)
            #expect(w.string == v.description, "\(v)")
        }
    }

    /// A prepared key writes what a literal name writes: first in an object or after a member,
    /// with every kind of value, for names of every length up to the longest a key holds.
    @Test func jsonWriterPreparedKeysMatchLiteralNames() {
        let names: [StaticString] = ["a", "id", "lat", "distance_m", "retention_days", "abcdefghijklmnopqrstuvwxyz01"]
        for name in names {
            let k = JSONWriter.Key(name)
            var a = JSONWriter(capacity: 1), b = JSONWriter(capacity: 1)
            for w in [0, 1] {
                let text = Array("Mỹ Phước \"x\"".utf8), plain = Array("BC-000123".utf8)
                if w == 0 {
                    a.object { o in
                        o.put(k, 1.5); o.put(k, 7); o.put(k, true); o.put(k, nil as Double?); o.put(k, 2.345678, decimals: 3)
                        o.put(k, false); o.put(k, -0.05, decimals: 2); o.put(k, 120.5, decimals: 3); o.put(k, 7.0, decimals: 1)
                        o.put(k, .nan, decimals: 2); o.put(k, 1e16, decimals: 1)
                        o.put(k, Int.min); o.put(k, -0.0); o.put(k, 123.456789); o.put(k, 1e-7); o.put(k, Double.infinity)
                        o.put(k, 1e300); o.put(k, -99999.5); o.put(k, 2.5 as Double?)
                        o.put(k, "s"); o.put(k, static: "lit"); o.put(k, static: "not_recording")
                        plain.withUnsafeBufferPointer { o.put(k, utf8: $0) }
                        text.withUnsafeBufferPointer { o.put(k, utf8: $0) }
                        o.put(k, utf8: nil)
                        o.put(k, ascii: 3) { $0[0] = 0x61; $0[1] = 0x62; $0[2] = 0x63; return true }
                        o.put(k, ascii: 3) { _ in false }
                    }
                } else {
                    b.object { o in
                        o.put(name, 1.5); o.put(name, 7); o.put(name, true); o.put(name, nil as Double?); o.put(name, 2.345678, decimals: 3)
                        o.put(name, false); o.put(name, -0.05, decimals: 2); o.put(name, 120.5, decimals: 3); o.put(name, 7.0, decimals: 1)
                        o.put(name, .nan, decimals: 2); o.put(name, 1e16, decimals: 1)
                        o.put(name, Int.min); o.put(name, -0.0); o.put(name, 123.456789); o.put(name, 1e-7); o.put(name, Double.infinity)
                        o.put(name, 1e300); o.put(name, -99999.5); o.put(name, 2.5 as Double?)
                        o.put(name, "s"); o.key(static: name); o.value(static: "lit"); o.key(static: name); o.value(static: "not_recording")
                        plain.withUnsafeBufferPointer { o.put(name, utf8: $0) }
                        text.withUnsafeBufferPointer { o.put(name, utf8: $0) }
                        o.put(name, utf8: nil)
                        o.put(name, ascii: 3) { $0[0] = 0x61; $0[1] = 0x62; $0[2] = 0x63; return true }
                        o.put(name, ascii: 3) { _ in false }
                    }
                }
            }
            #expect(a.string == b.string, "\(name)")
            #expect(a.string.hasPrefix("{\"\(name)\":1.5,\"\(name)\":7,"))
            #expect(a.string.contains(":false,\"\(name)\":-0.05,\"\(name)\":120.5,\"\(name)\":7,\"\(name)\":null,\"\(name)\":1e+16,"), "\(a.string)")
            #expect(a.string.contains(":\"not_recording\",\"\(name)\":\"BC-000123\","))
            #expect(a.string.contains(":-9223372036854775808,\"\(name)\":0,\"\(name)\":123.456789,\"\(name)\":1e-07,\"\(name)\":null,\"\(name)\":1e+300,\"\(name)\":-99999.5,\"\(name)\":2.5,"), "\(a.string)")
        }
    }

    /// The writer's buffer: growth from a tiny capacity, and truncation.
    @Test func jsonWriterBufferGrowsAndTruncates() {
        var w = JSONWriter(capacity: 1)
        w.array { a in
            for i in 0..<1000 { a.value("item \(i)") }
        }
        #expect(w.string.hasPrefix("[\"item 0\",\"item 1\""))
        #expect(w.string.hasSuffix(",\"item 999\"]"))
        #expect(w.count == w.bytes.count)
        var t = JSONWriter()
        t.array { a in
            a.value(1)
            let mark = a.count
            a.value("taken back")
            a.truncate(to: mark)
        }
        #expect(t.string == "[1]")
    }

    /// A member whose text is written in place: written whole, or, when the filler declines, not
    /// at all (no key, and the next member's comma as before).
    @Test func jsonWriterInPlaceText() {
        var w = JSONWriter(capacity: 1)
        w.object { o in
            o.put("a", 1)
            #expect(o.put("t", ascii: 3) { b in b[0] = 0x78; b[1] = 0x79; b[2] = 0x7A; return true })
            #expect(!o.put("u", ascii: 5) { b in b[0] = 0x21; return false })
            o.put("b", 2)
        }
        #expect(w.string == #"{"a":1,"t":"xyz","b":2}"#)
        var first = JSONWriter()
        first.object { o in
            #expect(!o.put("u", ascii: 2) { _ in false })
            o.put("b", true)
        }
        #expect(first.string == #"{"b":true}"#)
    }

    /// The eight-bytes-at-a-time escape check agrees with the byte-by-byte rule, for every byte
    /// value at every position and for random text of every length up to 40.
    @Test func jsonEscapeCheckAgreesWithTheByteRule() {
        func slow(_ b: [UInt8]) -> Bool { b.contains { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x7F } }
        var rng = SystemRandomNumberGenerator()
        var cases: [[UInt8]] = []
        for v in 0...255 {
            for at in 0..<17 {
                var b = [UInt8](repeating: UInt8(ascii: "a"), count: 17)
                b[at] = UInt8(v)
                cases.append(b)
                var high = [UInt8](repeating: 0xC3, count: 17)  // bytes of UTF-8 sequences around it
                high[at] = UInt8(v)
                cases.append(high)
            }
        }
        for _ in 0..<20_000 {
            let n = Int.random(in: 0...40, using: &rng)
            let alphabet: [UInt8] = [0x00, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7E, 0x7F, 0x80, 0xA2, 0xDC, 0xFF, 0x41, 0x61]
            cases.append((0..<n).map { _ in Bool.random(using: &rng) ? 0x61 : alphabet.randomElement(using: &rng)! })
        }
        for b in cases {
            let fast = b.withUnsafeBufferPointer { JSONWriter.needsEscaping($0) }
            #expect(fast == slow(b), "\(b)")
        }
    }

    /// Doubles that are decimals of up to nine places are written from integers: the text must
    /// be Swift's shortest form (`description`), which the general path writes, for coordinates,
    /// headings and ranges of every size and sign, and for doubles that are not short decimals.
    @Test func jsonWriterShortDecimalsAreTheShortestForm() {
        var rng = SystemRandomNumberGenerator()
        var values: [Double] = [0.0001, -0.0001, 0.00009999, 99999.999999999, 1e5 - 0.5, 1e5 + 0.5, 0.1, 0.2, 0.3,
                                1.005, 2.675, 11.1234567, 106.6543211, -0.5, 0.000123456789, 12345.678901234]
        for _ in 0..<40_000 {
            let places = Int.random(in: 1...10, using: &rng)
            var scale = 1.0
            for _ in 0..<places { scale *= 10 }
            let magnitude = [1e-3, 1.0, 90, 180, 360, 1e4, 2e5][Int.random(in: 0..<7, using: &rng)]
            let d = Double.random(in: -magnitude...magnitude, using: &rng)
            values.append((d * scale).rounded() / scale)
            values.append(d)
        }
        for d in values where d != d.rounded() {
            var w = JSONWriter()
            w.value(d)
            #expect(w.string == d.description, "\(d)")
        }
    }

    @Test func helpComesFromTheCommandTable() {
        let names = CommandTable.all.map(\.name)
        for expected in ["PING", "HELP", "NEAR", "CAMERA GET", "STATS", "QUIT", "OWNER ADD", "CAMERA REGISTER", "CAMERA LIST"] {
            #expect(names.contains(expected))
        }
        #expect(Set(names).count == names.count)
        for spec in CommandTable.all {
            #expect(!spec.summary.isEmpty)
            #expect(spec.synopsis.hasPrefix(spec.name))
            #expect(CommandTable.spec(named: spec.name.lowercased())?.name == spec.name)
        }
        #expect(CommandTable.spec(named: "NEAR")?.synopsis.hasPrefix("NEAR <lat> <lon> radius=<m> [limit=<n>] [at=<time>]") == true)
        #expect(CommandTable.spec(named: "NEAREST")?.synopsis.hasPrefix("NEAREST <lat> <lon> k=<n> [max=<m>]") == true)
    }

    @Test func randomGarbageNeverCrashes() {
        var rng = SeededRandom(seed: 7)
        let alphabet = Array("NEARCAMGT PINGHELPSTATSQU=\"\\0123456789.-+eEnaif radius=limit=\t".utf8) + [0xFF, 0x00, 0xC3, 0x0D]
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 60)
            let bytes = (0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            do {
                _ = try RequestParser.parse(bytes)
            } catch {
                #expect(!error.message.isEmpty)
            }
        }
    }
}
