import ArgumentParser
import ControlProtocol
import Foundation

// `camreg coverage …` and `camreg layer …` (issue 4): the coverage-gap analysis with a live
// progress bar, a per-ward table, and GeoJSON / SVG / PNG maps.

/// Set by the SIGINT handler of `coverage run` (Ctrl-C): the poll loop then cancels the job.
nonisolated(unsafe) private var interrupted: sig_atomic_t = 0

/// One request on an open connection; an error answer is printed and ends the command (exit 2).
private func call(_ client: ControlClient, _ line: String, json: Bool) throws -> [String: Any] {
    let t = try client.request(line)
    guard let o = (try? JSONSerialization.jsonObject(with: Data(t.utf8))) as? [String: Any] else {
        throw CLIError("camregd sent something that is not a JSON object: \(t.prefix(200))")
    }
    if o["ok"] as? Bool != true {
        let e = o["error"] as? [String: Any] ?? [:]
        if json { print(t) } else { FileHandle.standardError.write(Data("error [\(text(e["code"]))]: \(text(e["message"]))\n".utf8)) }
        throw ExitCode(2)
    }
    return o
}

private func double(_ v: Any?) -> Double { (v as? NSNumber)?.doubleValue ?? 0 }
private func int(_ v: Any?) -> Int { (v as? NSNumber)?.intValue ?? 0 }

struct CoverageCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coverage",
        abstract: "Coverage-gap analysis: per-ward coverage of streets and intersections, gaps, placement suggestions, maps.",
        subcommands: [Run.self, Result.self, Status.self, Cancel.self])

    /// Where to write the map of a run.
    struct MapOutputs: ParsableArguments {
        @Option(help: "Write gaps, covered streets, sectors, intersections and suggestions as one GeoJSON FeatureCollection.")
        var geojson: String?
        @Option(help: "Draw the map as SVG.") var svg: String?
        @Option(help: "Draw the map as PNG (needs rsvg-convert).") var png: String?

        var any: Bool { geojson != nil || svg != nil || png != nil }

        func write(_ client: ControlClient, id: Int, title: String, json: Bool) throws {
            guard any else { return }
            let o = try call(client, "COVERAGE MAP \(id)", json: json)
            let features = o["features"] as? [[String: Any]] ?? []
            if o["map_stored"] as? Bool == false {
                FileHandle.standardError.write(Data("note: run \(id) was made with map=no; the map holds suggestions only\n".utf8))
            }
            if let geojson {
                let fc: [String: Any] = ["type": "FeatureCollection", "features": features]
                let data = try JSONSerialization.data(withJSONObject: fc)
                guard FileManager.default.createFile(atPath: geojson, contents: data) else { throw CLIError("cannot write \(geojson)") }
                if !json { print("GeoJSON: \(geojson) (\(features.count) features)") }
            }
            if svg != nil || png != nil {
                let text = CoverageMapSVG.render(features: features, title: title)
                let svgPath = svg ?? (NSTemporaryDirectory() + "/camreg-coverage-\(getpid()).svg")
                guard FileManager.default.createFile(atPath: svgPath, contents: Data(text.utf8)) else { throw CLIError("cannot write \(svgPath)") }
                if svg != nil, !json { print("SVG: \(svgPath)") }
                if let png {
                    defer { if svg == nil { try? FileManager.default.removeItem(atPath: svgPath) } }
                    guard let tool = CoverageMapSVG.converter() else {
                        throw CLIError("--png needs rsvg-convert (librsvg2-bin); the map can be written with --svg")
                    }
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: tool)
                    p.arguments = ["-o", png, svgPath]
                    try p.run()
                    p.waitUntilExit()
                    guard p.terminationStatus == 0 else { throw CLIError("rsvg-convert failed (status \(p.terminationStatus))") }
                    if !json { print("PNG: \(png)") }
                }
            }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Runs the analysis in camregd with a live progress bar, then prints the per-ward table.",
            discussion: "Ctrl-C cancels the job (JOB CANCEL) and exits with status 130.")
        @OptionGroup var options: ClientOptions
        @Option(help: "Only this ward.") var ward: String?
        @Option(help: "Count a camera only if its schedule records at this time (ISO-8601 with offset).") var at: String?
        @Option(help: "Suggest this many new camera sites (0–50).") var suggest: Int = 10
        @Option(name: .customLong("min-range"), help: "Do not count cameras whose range (m) is shorter.") var minRange: Double?
        @Option(help: "Weigh gaps by the incidents of the last n days.") var days: Int?
        @Option(help: "Suggested cameras' range, m.") var range: Double?
        @Option(help: "Suggested cameras' field of view, degrees.") var fov: Double?
        @Option(help: "Tile side, m.") var tile: Double?
        @Option(help: "Uncovered stretches listed.") var stretches: Int = 10
        @OptionGroup var outputs: MapOutputs

        func run() throws {
            var line = "COVERAGE RUN suggest=\(suggest)"
            if let ward { line += " ward=\(Tokenizer.quote(ward))" }
            if let at { line += " at=\(Tokenizer.quote(at))" }
            if let minRange { line += " min_range=\(minRange)" }
            if let days { line += " days=\(days)" }
            if let range { line += " range=\(range)" }
            if let fov { line += " fov=\(fov)" }
            if let tile { line += " tile=\(tile)" }
            if !outputs.any { line += " map=no" }
            let client = try ControlClient(path: options.socket, timeout: options.timeout)
            defer { client.close() }
            // The handler goes in before the run is asked for: a Ctrl-C that arrives while the
            // request is answered must still cancel the job, not kill the client and orphan it.
            signal(SIGINT) { _ in interrupted = 1 }
            defer { signal(SIGINT, SIG_DFL) }
            let started = try call(client, line, json: options.json)
            let id = int(started["id"])
            // A parent may have blocked SIGINT (the mask is inherited): unblock it.
            var unblock = sigset_t()
            sigemptyset(&unblock)
            sigaddset(&unblock, SIGINT)
            pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
            let interactive = !options.json && isatty(2) == 1
            var status: [String: Any] = [:]
            while true {
                if interrupted != 0 {
                    if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
                    let c = try call(client, "JOB CANCEL \(id)", json: options.json)
                    FileHandle.standardError.write(Data("interrupted: coverage run \(id) \(text(c["status"]))\n".utf8))
                    throw ExitCode(130)
                }
                status = try call(client, "JOB STATUS \(id)", json: options.json)
                let state = status["status"] as? String ?? "running"
                if interactive {
                    let share = min(1, double(status["percent"]) / 100)
                    let filled = Int(share * 30)
                    let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: 30 - filled)
                    let eta = (status["eta_s"] as? NSNumber).map { String(format: "ETA %.1f s", $0.doubleValue) } ?? ""
                    FileHandle.standardError.write(Data(String(format: "\r\u{1B}[Kcoverage run %d %@ %3.0f%%  %@  %.1f s  %@",
                                                               id, bar, share * 100, text(status["phase"]), double(status["elapsed_s"]), eta).utf8))
                }
                if state != "running" { break }
                Thread.sleep(forTimeInterval: 0.2)
            }
            if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            guard status["status"] as? String == "complete" else {
                FileHandle.standardError.write(Data("coverage run \(id) \(text(status["status"]))\(status["error"] is String ? ": \(text(status["error"]))" : "")\n".utf8))
                throw ExitCode(2)
            }
            let result = try call(client, "COVERAGE RESULT \(id) stretches=\(stretches)", json: options.json)
            if options.json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: result), as: UTF8.self))
            } else {
                printCoverage(result, id: id)
            }
            try outputs.write(client, id: id, title: "Coverage run \(id)" + (ward.map { " — \($0)" } ?? ""), json: options.json)
        }
    }

    struct Result: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Prints (and maps) a stored, complete coverage run.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The run id.") var id: Int
        @Option(help: "Uncovered stretches listed.") var stretches: Int = 10
        @OptionGroup var outputs: MapOutputs
        func run() throws {
            let client = try ControlClient(path: options.socket, timeout: options.timeout)
            defer { client.close() }
            let result = try call(client, "COVERAGE RESULT \(id) stretches=\(stretches)", json: options.json)
            if options.json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: result), as: UTF8.self))
            } else {
                printCoverage(result, id: id)
            }
            try outputs.write(client, id: id, title: "Coverage run \(id)", json: options.json)
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A coverage job's state, phase, percent and ETA.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The job id.") var id: Int
        func run() throws {
            try exchange(options, "JOB STATUS \(id)") { o in
                print(String(format: "job %d: %@, %@ %.0f%%, %.1f s%@", int(o["id"]), text(o["status"]), text(o["phase"]),
                             double(o["percent"]), double(o["elapsed_s"]), (o["error"] is String) ? " — \(text(o["error"]))" : ""))
            }
        }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stops a running coverage job.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The job id.") var id: Int
        func run() throws {
            try exchange(options, "JOB CANCEL \(id)") { o in print("job \(int(o["id"])): \(text(o["status"]))") }
        }
    }
}

/// Prints the per-ward table, the town row, the top stretches and the suggestions.
func printCoverage(_ o: [String: Any], id: Int) {
    let wards = o["wards"] as? [[String: Any]] ?? []
    let summary = o["summary"] as? [String: Any] ?? [:]
    let town = summary["town"] as? [String: Any] ?? [:]
    func row(_ w: [String: Any], name: String) -> [String] {
        [name, text(w["cameras"]), number(double(w["street_m"]) / 1000, decimals: 2), number(double(w["covered_m"]) / 1000, decimals: 2),
         number(double(w["covered_share"]) * 100, decimals: 1) + "%", number(double(w["covered_area_share"]) * 100, decimals: 1) + "%",
         text(w["intersections"]), text(w["intersections_unseen"]), text(w["intersections_single"]), text(w["intersections_multi"]),
         "\(int(w["incidents_unseen"]))/\(int(w["incidents"]))", number(double(w["gap_score"]), decimals: 2)]
    }
    print("Coverage run \(id): \(text(summary["cameras_counted"])) cameras counted, \(text(summary["tiles"])) tiles, "
          + String(format: "%.2f s", double(summary["compute_s"])))
    printTable(["WARD", "CAMERAS", "STREETS km", "COVERED km", "STREETS", "AREA", "INTERSECTIONS", "UNSEEN", "ONE CAMERA", "2+",
                "INCIDENTS UNSEEN", "GAP SCORE"],
               wards.map { row($0, name: text($0["ward"])) } + [row(town, name: "Town")], rightAligned: Set(1...11))
    let stretches = o["stretches"] as? [[String: Any]] ?? []
    if !stretches.isEmpty {
        print("\nLongest uncovered stretches (length × incident weight), \(text(summary["stretch_count"])) in all:")
        printTable(["WARD", "STREET", "LENGTH m", "WEIGHT", "LAT", "LON"],
                   stretches.map { [text($0["ward"]), text($0["street"]), number($0["length_m"], decimals: 0), text($0["weight"]),
                                    number($0["lat"], decimals: 6), number($0["lon"], decimals: 6)] }, rightAligned: [2, 3, 4, 5])
    }
    let suggestions = summary["suggestions"] as? [[String: Any]] ?? []
    if !suggestions.isEmpty {
        print("\nSuggested camera sites (greedy, each given the earlier ones):")
        printTable(["#", "SITE", "WARD", "LAT", "LON", "HEADING", "GAIN m", "WEIGHTED", "COVERED AFTER"],
                   suggestions.map { s in
                       [text(s["rank"]), text(s["site"]), text(s["ward"]), number(s["lat"], decimals: 6), number(s["lon"], decimals: 6),
                        s["heading"] is NSNumber ? number(s["heading"], decimals: 0) + "°" : "360°", number(s["gain_m"], decimals: 0),
                        number(s["weighted_gain"], decimals: 0),
                        number(double(s["covered_after_m"]) / max(1, double(town["street_m"])) * 100, decimals: 2) + "%"]
                   }, rightAligned: [0, 3, 4, 5, 6, 7, 8])
    }
}

/// Draws a run's features as an SVG map: wards, streets coloured covered/uncovered, sectors,
/// unseen and single-camera intersections, numbered suggestions, a legend and a scale bar.
enum CoverageMapSVG {
    static func converter() -> String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return paths.map { "\($0)/rsvg-convert" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func render(features: [[String: Any]], title: String, width: Double = 1600) -> String {
        // Extent over all coordinates.
        var minLon = Double.infinity, maxLon = -Double.infinity, minLat = Double.infinity, maxLat = -Double.infinity
        func visit(_ c: Any) {
            if let p = c as? [NSNumber], p.count >= 2 {
                let lon = p[0].doubleValue, lat = p[1].doubleValue
                minLon = min(minLon, lon); maxLon = max(maxLon, lon); minLat = min(minLat, lat); maxLat = max(maxLat, lat)
            } else if let a = c as? [Any] { a.forEach(visit) }
        }
        for f in features { visit((f["geometry"] as? [String: Any])?["coordinates"] ?? []) }
        if !minLon.isFinite { minLon = 0; maxLon = 1; minLat = 0; maxLat = 1 }
        let kx = cos((minLat + maxLat) / 2 * .pi / 180)
        let margin = 40.0, legendW = 260.0
        let scale = (width - 2 * margin - legendW) / max(1e-9, (maxLon - minLon) * kx)
        let height = (maxLat - minLat) * scale + 2 * margin + 40
        func xy(_ p: [NSNumber]) -> String {
            let x = margin + legendW + (p[0].doubleValue - minLon) * kx * scale
            let y = margin + 40 + (maxLat - p[1].doubleValue) * scale
            return String(format: "%.1f,%.1f", x, y)
        }
        func path(_ coords: Any, close: Bool) -> String {
            var d = ""
            func line(_ pts: [[NSNumber]]) {
                guard let f = pts.first else { return }
                d += "M" + xy(f) + pts.dropFirst().map { "L" + xy($0) }.joined() + (close ? "Z" : "")
            }
            func walk(_ c: Any) {
                if let pts = c as? [[NSNumber]] { line(pts) } else if let a = c as? [Any] { a.forEach(walk) }
            }
            walk(coords)
            return d
        }
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var layers: [String: [String]] = [:]
        var labels: [String] = []
        for f in features {
            let props = f["properties"] as? [String: Any] ?? [:]
            let g = f["geometry"] as? [String: Any] ?? [:]
            let coords = g["coordinates"] ?? []
            let layer = props["layer"] as? String ?? ""
            switch layer {
            case "ward":
                layers["ward", default: []].append("<path d=\"\(path(coords, close: true))\" fill=\"#f4f1ea\" stroke=\"#6b6256\" stroke-width=\"1.5\"/>")
                var sx = 0.0, sy = 0.0, n = 0.0
                func acc(_ c: Any) {
                    if let p = c as? [NSNumber], p.count >= 2 { sx += p[0].doubleValue; sy += p[1].doubleValue; n += 1 } else if let a = c as? [Any] { a.forEach(acc) }
                }
                acc(coords)
                if n > 0 {
                    let c = xy([NSNumber(value: sx / n), NSNumber(value: sy / n)]).split(separator: ",")
                    labels.append("<text x=\"\(c[0])\" y=\"\(c[1])\" font-size=\"16\" fill=\"#6b6256\" text-anchor=\"middle\" opacity=\"0.8\">\(esc(props["ward"] as? String ?? ""))</text>")
                }
            case "sector":
                layers["sector", default: []].append("<path d=\"\(path(coords, close: true))\"/>")
            case "covered":
                layers["covered", default: []].append("<path d=\"\(path(coords, close: false))\"/>")
            case "gap":
                layers["gap", default: []].append("<path d=\"\(path(coords, close: false))\"/>")
            case "intersection":
                let n = (props["cameras"] as? NSNumber)?.intValue ?? 0
                guard n <= 1, let p = coords as? [NSNumber] else { continue }
                let c = xy(p).split(separator: ",")
                layers[n == 0 ? "unseen" : "single", default: []].append("<circle cx=\"\(c[0])\" cy=\"\(c[1])\" r=\"3.5\"/>")
            case "suggestion_sector":
                layers["suggestion_sector", default: []].append("<path d=\"\(path(coords, close: true))\"/>")
            case "suggestion":
                guard let p = coords as? [NSNumber] else { continue }
                let c = xy(p).split(separator: ",")
                let rank = (props["rank"] as? NSNumber)?.intValue ?? 0
                layers["suggestion", default: []].append(
                    "<circle cx=\"\(c[0])\" cy=\"\(c[1])\" r=\"10\"/><text x=\"\(c[0])\" y=\"\(String(format: "%.1f", (Double(c[1]) ?? 0) + 4.5))\" fill=\"white\" stroke=\"none\">\(rank)</text>")
            default: continue
            }
        }
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="DejaVu Sans, Arial, sans-serif">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(Int(margin))" y="\(Int(margin))" font-size="22" font-weight="bold">\(esc(title))</text>

        """
        func group(_ key: String, _ attrs: String) {
            guard let items = layers[key], !items.isEmpty else { return }
            s += "<g id=\"\(key)\" \(attrs)>\n" + items.joined(separator: "\n") + "\n</g>\n"
        }
        group("ward", "")
        group("sector", "fill=\"#3b7dd8\" fill-opacity=\"0.18\" stroke=\"#3b7dd8\" stroke-opacity=\"0.35\" stroke-width=\"0.5\"")
        group("gap", "fill=\"none\" stroke=\"#d7301f\" stroke-width=\"2\" stroke-linecap=\"round\"")
        group("covered", "fill=\"none\" stroke=\"#1a9850\" stroke-width=\"2.5\" stroke-linecap=\"round\"")
        group("unseen", "fill=\"#d7301f\" stroke=\"white\" stroke-width=\"1\"")
        group("single", "fill=\"#fdae61\" stroke=\"#7f3b08\" stroke-width=\"1\"")
        group("suggestion_sector", "fill=\"#7b3294\" fill-opacity=\"0.25\" stroke=\"#7b3294\" stroke-dasharray=\"4 3\"")
        group("suggestion", "fill=\"#7b3294\" stroke=\"white\" stroke-width=\"2\" font-size=\"12\" font-weight=\"bold\" text-anchor=\"middle\"")
        s += "<g id=\"labels\">\n" + labels.joined(separator: "\n") + "\n</g>\n"
        // Legend.
        let lx = margin, ly = margin + 30
        let entries: [(String, String)] = [
            ("<line x1=\"0\" y1=\"0\" x2=\"28\" y2=\"0\" stroke=\"#1a9850\" stroke-width=\"3\"/>", "street seen by a camera"),
            ("<line x1=\"0\" y1=\"0\" x2=\"28\" y2=\"0\" stroke=\"#d7301f\" stroke-width=\"3\"/>", "street no camera sees (gap)"),
            ("<rect x=\"0\" y=\"-8\" width=\"28\" height=\"16\" fill=\"#3b7dd8\" fill-opacity=\"0.25\" stroke=\"#3b7dd8\"/>", "camera field of view"),
            ("<circle cx=\"14\" cy=\"0\" r=\"4\" fill=\"#d7301f\"/>", "intersection seen by no camera"),
            ("<circle cx=\"14\" cy=\"0\" r=\"4\" fill=\"#fdae61\" stroke=\"#7f3b08\"/>", "intersection seen by one camera only"),
            ("<circle cx=\"14\" cy=\"0\" r=\"9\" fill=\"#7b3294\"/><text x=\"14\" y=\"4\" fill=\"white\" font-size=\"11\" text-anchor=\"middle\">1</text>", "suggested new camera, in order"),
            ("<rect x=\"0\" y=\"-8\" width=\"28\" height=\"16\" fill=\"#f4f1ea\" stroke=\"#6b6256\"/>", "ward"),
        ]
        s += "<g id=\"legend\" transform=\"translate(\(lx),\(ly))\" font-size=\"13\">\n"
        s += "<rect x=\"-10\" y=\"-4\" width=\"\(Int(legendW - 20))\" height=\"\(entries.count * 24 + 16)\" fill=\"white\" stroke=\"#999\"/>\n"
        for (i, e) in entries.enumerated() {
            s += "<g transform=\"translate(0,\(i * 24 + 16))\">\(e.0)<text x=\"36\" y=\"4\">\(e.1)</text></g>\n"
        }
        s += "</g>\n"
        // Scale bar: a round length near 150 px.
        let metresPerPixel = 111_320.0 / scale
        let target = 150 * metresPerPixel
        let nice = [10.0, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000].last { $0 <= target } ?? 10
        let barPx = nice / metresPerPixel
        let by = height - margin / 2, bx = margin
        s += """
        <g id="scale" font-size="13">
        <rect x="\(bx)" y="\(by - 6)" width="\(String(format: "%.1f", barPx / 2))" height="6" fill="black"/>
        <rect x="\(String(format: "%.1f", bx + barPx / 2))" y="\(by - 6)" width="\(String(format: "%.1f", barPx / 2))" height="6" fill="white" stroke="black"/>
        <text x="\(bx)" y="\(by - 10)">0</text>
        <text x="\(String(format: "%.1f", bx + barPx))" y="\(by - 10)" text-anchor="middle">\(nice >= 1000 ? "\(Int(nice / 1000)) km" : "\(Int(nice)) m")</text>
        </g>
        </svg>

        """
        return s
    }
}

struct LayerCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layer",
        abstract: "Reference layers of the coverage analysis: ward polygons and the street network.",
        subcommands: [Import.self, Stats.self])

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replaces the ward layer (GeoJSON (Multi)Polygons) or the street layer (GeoJSON (Multi)LineStrings).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "wards or streets.") var layer: String
        @Argument(help: "The GeoJSON file.") var file: String
        @Option(name: .customLong("name-property"), help: "Wards: the property holding the ward's name.") var nameProperty: String?

        func run() throws {
            guard ["wards", "streets"].contains(layer) else { throw ValidationError("the layer is wards or streets, not \(layer)") }
            guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
            let client = try ControlClient(path: options.socket, timeout: max(options.timeout, 600))
            defer { client.close() }
            var begin = "IMPORT BEGIN format=\(layer)-geojson"
            if let nameProperty { begin += " name_property=\(Tokenizer.quote(nameProperty))" }
            _ = try call(client, begin, json: options.json)
            let bytes = [UInt8](data)
            var sent = 0
            while sent < bytes.count {
                let part = bytes[sent..<min(sent + 45_000, bytes.count)]
                _ = try call(client, "IMPORT DATA data=" + String(decoding: Base64.encoded(part), as: UTF8.self), json: options.json)
                sent += part.count
            }
            let o = try call(client, "IMPORT COMMIT", json: options.json)
            if options.json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self))
            } else {
                print("\(file): \(int(o["imported"])) \(layer) stored (the previous \(layer) layer is replaced)")
                if let names = o["names"] as? [String] { print(names.joined(separator: ", ")) }
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "How many wards and streets the layers hold.")
        @OptionGroup var options: ClientOptions
        func run() throws {
            try exchange(options, "COVERAGE LAYERS") { o in print("\(int(o["wards"])) wards, \(int(o["streets"])) streets") }
        }
    }
}
