import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Reads surveillance cameras from OpenStreetMap data: Overpass API JSON
/// (`{"elements":[{"type":"node","id":…,"lat":…,"lon":…,"tags":{…}}]}`) or OSM XML
/// (`<osm><node id lat lon><tag k v/></node></osm>`).
///
/// Only nodes tagged `man_made=surveillance` are cameras; other nodes, ways and relations are
/// skipped without a row, and so are nodes whose `surveillance:type` is neither `camera` nor
/// `ALPR` (e.g. `guard`). Tags (see the OSM wiki, *Tag:man_made=surveillance*):
///
/// | tag | becomes |
/// | --- | --- |
/// | `camera:direction` | heading: degrees (`45`), a 16-point compass point (`NE`, `NNW`), or a range `90-270` (heading = the middle of the arc going clockwise from the first to the second, fov = the arc's width; `0-360` is a full circle). Several directions separated by `;` give one draft per direction. |
/// | `camera:type` | `dome` or `panning`: fov 360, heading `nil`, one draft (a direction is ignored). `fixed` or absent: the direction(s). |
/// | `surveillance:zone` | site: `traffic`, `street`, `town` → street; `shop`, `building`, `parking` → building; other → other |
/// | `height` | mount height in metres (`3`, `3.5 m`) |
/// | `operator` | owner name |
/// | `operator:type` | owner kind: `government`/`public` → public, `business`/`commercial` → business (else the default) |
/// | `addr:suburb`, else `addr:quarter` | ward (else `unknown`) |
/// | `addr:housenumber` + `addr:street` | address (else `OSM node <id>`) |
/// | `camera:mount`, `camera:type`, `camera:angle`, `surveillance` | kept in ``CameraDraft/notes`` |
///
/// `camera:angle` is the camera's **tilt** (the vertical angle from the horizontal), not its
/// field of view: it is only recorded in the notes, never used as the fov. OSM has no field of
/// view tag, so a single-direction camera gets the default fov (90°).
///
/// Ids: `OSM-<node id>` for one direction, `OSM-<node id>-1`, `-2`, … for several, in the
/// order of the tag. Status defaults to pending like every import.
public enum OSMImporter {
    /// One or more ``ImportRow``s per surveillance camera node, in file order;
    /// ``ImportRow/number`` is the node id. Throws ``ImportError`` when the data is not JSON
    /// or has no `elements` array, or an element has no integer `id`.
    public static func parseOverpassJSON(_ data: Data, jurisdiction: Jurisdiction? = nil) throws -> [ImportRow] {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw ImportError("not valid JSON: \(error.localizedDescription)")
        }
        guard let elements = (root as? [String: Any])?["elements"] as? [Any] else {
            throw ImportError("not Overpass JSON: there is no \"elements\" array")
        }
        var rows: [ImportRow] = []
        for (k, e) in elements.enumerated() {
            guard let e = e as? [String: Any] else { throw ImportError("element \(k + 1) is not a JSON object") }
            guard e["type"] as? String == "node" else { continue }
            guard let idNumber = e["id"].flatMap(ImportValue.jsonNumber), let id = Int(idNumber.text) else {
                throw ImportError("element \(k + 1) (a node) has no integer \"id\"")
            }
            var tags: [String: String] = [:]
            if let t = e["tags"] as? [String: Any] {
                for (key, value) in t {
                    if let s = value as? String { tags[key] = s }
                    else if let n = ImportValue.jsonNumber(value) { tags[key] = n.text }
                }
            }
            let lat = e["lat"].flatMap(ImportValue.jsonNumber)?.value
            let lon = e["lon"].flatMap(ImportValue.jsonNumber)?.value
            rows += self.rows(OSMNode(id: id, lat: lat, lon: lon, tags: tags), jurisdiction: jurisdiction)
        }
        return rows
    }

    /// The same for OSM XML (the `<osm>` document of the OSM API, JOSM and `osmium`). Only the
    /// `<node>` children of `<osm>` are read. Throws ``ImportError`` (with the line) when the
    /// XML is malformed, the root is not `<osm>`, or a node has no integer `id`.
    public static func parseXML(_ data: Data, jurisdiction: Jurisdiction? = nil) throws -> [ImportRow] {
        let parser = XMLParser(data: data)
        parser.shouldResolveExternalEntities = false
        parser.shouldProcessNamespaces = false
        let delegate = OSMXMLDelegate()
        parser.delegate = delegate
        let ok = parser.parse()
        if let e = delegate.failure { throw e }
        // Foundation on Linux returns true from parse() for some errors (extra content after
        // the root, a document cut short) but still reports them: check both.
        if let e = delegate.xmlError ?? parser.parserError {
            throw ImportError(line: delegate.xmlErrorLine ?? parser.lineNumber, "malformed XML: \(xmlErrorText(e))")
        }
        guard ok else { throw ImportError(line: parser.lineNumber, "malformed XML") }
        guard delegate.sawRoot else { throw ImportError("not OSM XML: there is no <osm> element") }
        // Foundation on Linux may report success for a document cut short; the root must close.
        guard delegate.closedRoot else {
            throw ImportError(line: parser.lineNumber, "malformed XML: the document ends before </osm> (is the file truncated?)")
        }
        return delegate.nodes.flatMap { rows($0, jurisdiction: jurisdiction) }
    }

    /// A readable text for an `XMLParser` error (Foundation on Linux has no descriptions).
    private static func xmlErrorText(_ e: Error) -> String {
        let ns = e as NSError
        let known: [Int: String] = [
            4: "the document is empty", 5: "the document ends too early or has content after the root element",
            26: "undeclared entity", 38: "unescaped '<' in an attribute value", 39: "an attribute has no value",
            41: "an attribute is not quoted", 65: "a space is needed between attributes", 68: "a name is expected",
            73: "'>' expected", 76: "an end tag does not match its start tag", 111: "an entity reference loop",
        ]
        let text = ns.localizedDescription
        if !text.isEmpty, !text.contains("(null)"), !text.hasPrefix("The operation could") { return text }
        return (known[ns.code] ?? "error") + " (XMLParser code \(ns.code))"
    }

    // MARK: Mapping

    /// A node as read from either format.
    struct OSMNode {
        var id: Int
        var lat: Double?
        var lon: Double?
        var tags: [String: String]
    }

    /// Whether the node is a surveillance camera that should be imported.
    static func isCamera(_ tags: [String: String]) -> Bool {
        guard tags["man_made"] == "surveillance" else { return false }
        guard let type = tags["surveillance:type"]?.trimmingCharacters(in: .whitespaces).lowercased() else { return true }
        return type == "camera" || type == "alpr"
    }

    /// Site kind from `surveillance:zone`.
    static func siteKind(zone: String?) -> SiteKind {
        switch zone?.trimmingCharacters(in: .whitespaces).lowercased() {
        case "traffic", "street", "town": return .street
        case "shop", "building", "parking": return .building
        default: return .other
        }
    }

    static func rows(_ node: OSMNode, jurisdiction: Jurisdiction?) -> [ImportRow] {
        guard isCamera(node.tags) else { return [] }
        do {
            return try drafts(node, jurisdiction: jurisdiction).map { ImportRow(number: node.id, result: .success($0)) }
        } catch {
            return [ImportRow(number: node.id, result: .failure(error))]
        }
    }

    private static func tagName(_ field: CameraField) -> String {
        switch field {
        case .heading, .fov: return "camera:direction"
        case .mountHeight: return "height"
        case .ownerName: return "operator"
        case .ownerKind: return "operator:type"
        case .ward: return "addr:suburb"
        case .address: return "addr:street"
        case .siteKind: return "surveillance:zone"
        default: return field.rawValue
        }
    }

    static func drafts(_ node: OSMNode, jurisdiction: Jurisdiction?) throws(ImportRowError) -> [CameraDraft] {
        let tags = node.tags
        let reader = DraftReader(number: node.id, name: tagName)
        func fail(_ field: String, _ reason: String) -> ImportRowError {
            ImportRowError(number: node.id, field: field, reason: reason)
        }
        guard let lat = node.lat else { throw fail("lat", "is missing (the node has no position)") }
        guard let lon = node.lon else { throw fail("lon", "is missing (the node has no position)") }
        func tag(_ key: String) -> String? {
            guard let v = tags[key].map(ImportText.clean), !v.isEmpty else { return nil }
            return v
        }

        var address = "OSM node \(node.id)"
        if let street = tag("addr:street") {
            address = tag("addr:housenumber").map { "\($0) \(street)" } ?? street
        }
        var base = CameraDraft(id: "OSM-\(node.id)", lat: lat, lon: lon, address: address)
        base.siteKind = siteKind(zone: tags["surveillance:zone"])
        base.ward = tag("addr:suburb") ?? tag("addr:quarter")
        base.ownerName = tag("operator")
        switch tag("operator:type")?.lowercased() {
        case "government", "public": base.ownerKind = .public
        case "business", "commercial": base.ownerKind = .business
        default: break
        }
        if let h = tag("height") {
            guard let m = parseHeight(h) else { throw fail("height", "must be metres such as 3 or 3.5 m, not '\(DraftReader.clip(h))'") }
            base.mountHeight = m
        }
        let cameraType = tag("camera:type")?.lowercased()
        var notes: [String] = []
        if let t = tag("camera:type") { notes.append("camera:type=\(t)") }
        if let m = tag("camera:mount") { notes.append("camera:mount=\(m)") }
        if let a = tag("camera:angle") { notes.append("camera:angle=\(a) (tilt)") }
        if let s = tag("surveillance") { notes.append("surveillance=\(s)") }

        var views: [OSMDirection.View] = [OSMDirection.View(heading: nil, fov: nil)]
        if cameraType == "dome" || cameraType == "panning" {
            views = [OSMDirection.View(heading: nil, fov: 360)]
            if let d = tag("camera:direction") { notes.append("camera:direction=\(d) (ignored for a \(cameraType!) camera)") }
        } else if let d = tag("camera:direction") {
            guard let parsed = OSMDirection.parse(d) else {
                throw fail("camera:direction", "must be degrees (45), a compass point (NE), a range (90-270) or several of these separated by ';', not '\(DraftReader.clip(d))'")
            }
            views = parsed
        }
        base.notes = notes.isEmpty ? nil : notes.joined(separator: "; ")

        var drafts: [CameraDraft] = []
        for (k, view) in views.enumerated() {
            var d = base
            if views.count > 1 { d.id = "OSM-\(node.id)-\(k + 1)" }
            d.heading = view.heading
            d.fov = view.fov
            try reader.check(d, jurisdiction: jurisdiction)
            drafts.append(d)
        }
        return drafts
    }

    /// Metres from an OSM `height` value: `3`, `3.5`, `3 m`, `3.5m`.
    static func parseHeight(_ s: String) -> Double? {
        var t = s.trimmingCharacters(in: .whitespaces)
        if t.hasSuffix("m") { t = String(t.dropLast()).trimmingCharacters(in: .whitespaces) }
        return ImportValue.decimal(t)
    }
}

/// OSM `camera:direction` values.
public enum OSMDirection {
    /// One direction a camera looks: a heading (`nil` = all around) and, for a range, its width.
    public struct View: Sendable, Equatable {
        /// Degrees clockwise from north, in [0, 360); `nil` for a full circle.
        public var heading: Double?
        /// The width of a range in degrees (360 for a full circle); `nil` for a single direction.
        public var fov: Double?

        /// Creates a view.
        public init(heading: Double?, fov: Double?) {
            self.heading = heading
            self.fov = fov
        }
    }

    /// The 16 compass points and their bearings.
    public static let compassPoints: [(name: String, degrees: Double)] = [
        ("N", 0), ("NNE", 22.5), ("NE", 45), ("ENE", 67.5), ("E", 90), ("ESE", 112.5), ("SE", 135), ("SSE", 157.5),
        ("S", 180), ("SSW", 202.5), ("SW", 225), ("WSW", 247.5), ("W", 270), ("WNW", 292.5), ("NW", 315), ("NNW", 337.5),
    ]

    /// The bearing of a compass point (`N`, `NE`, `NNE`, …, case-insensitive), or `nil`.
    public static func compassDegrees(_ s: String) -> Double? {
        let u = s.uppercased()
        return compassPoints.first(where: { $0.name == u })?.degrees
    }

    /// Every direction of a `camera:direction` value, or `nil` when a part cannot be read.
    /// Parts are separated by `;`; each is degrees (any real number, taken modulo 360), a compass
    /// point, or a range `a-b` of two of these. A range goes clockwise from `a` to `b`: the view's
    /// heading is its middle and its fov its width (`90-270` → heading 180, fov 180;
    /// `270-90` → heading 0, fov 180). A range of width 360 (`0-360`) is a full circle (heading
    /// `nil`); an empty range (`90-90`) is refused.
    public static func parse(_ value: String) -> [View]? {
        let parts = value.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !parts.isEmpty else { return nil }
        var views: [View] = []
        for p in parts {
            if let d = single(p) {
                views.append(View(heading: normalize(d), fov: nil))
                continue
            }
            // A range: try each '-' after the first character (the first may be a minus sign).
            var found: View?
            var k = p.index(after: p.startIndex)
            while k < p.endIndex, found == nil {
                if p[k] == "-",
                   let a = single(p[..<k].trimmingCharacters(in: .whitespaces)),
                   let b = single(p[p.index(after: k)...].trimmingCharacters(in: .whitespaces)) {
                    found = range(a, b)
                    if found == nil { return nil }
                }
                k = p.index(after: k)
            }
            guard let view = found else { return nil }
            views.append(view)
        }
        return views
    }

    private static func single(_ s: String) -> Double? {
        if let d = ImportValue.decimal(s), d.isFinite { return d }
        return compassDegrees(s)
    }

    private static func normalize(_ d: Double) -> Double {
        let r = d.truncatingRemainder(dividingBy: 360)
        let n = r < 0 ? r + 360 : r
        return n == 360 ? 0 : n + 0   // + 0 turns −0 into 0
    }

    private static func range(_ a: Double, _ b: Double) -> View? {
        let width = normalize(b - a)
        if width == 0 {
            guard abs(b - a) >= 360 else { return nil }
            return View(heading: nil, fov: 360)
        }
        return View(heading: normalize(normalize(a) + width / 2), fov: width)
    }
}

/// Collects the `<node>` children of `<osm>` and their `<tag>`s.
private final class OSMXMLDelegate: NSObject, XMLParserDelegate {
    var nodes: [OSMImporter.OSMNode] = []
    var failure: ImportError?
    var sawRoot = false
    var closedRoot = false
    /// The first error the parser reported, and its line.
    var xmlError: Error?
    var xmlErrorLine: Int?
    private var depth = 0
    private var current: OSMImporter.OSMNode?

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes: [String: String] = [:]) {
        depth += 1
        switch depth {
        case 1:
            guard !sawRoot else {
                failure = ImportError(line: parser.lineNumber, "malformed XML: more than one root element")
                parser.abortParsing()
                return
            }
            guard elementName == "osm" else {
                failure = ImportError(line: parser.lineNumber, "not OSM XML: the root element is <\(elementName)>, not <osm>")
                parser.abortParsing()
                return
            }
            sawRoot = true
        case 2 where elementName == "node":
            guard let idText = attributes["id"], let id = Int(idText) else {
                failure = ImportError(line: parser.lineNumber, "a <node> has no integer id")
                parser.abortParsing()
                return
            }
            current = OSMImporter.OSMNode(id: id, lat: attributes["lat"].flatMap(ImportValue.decimal),
                                          lon: attributes["lon"].flatMap(ImportValue.decimal), tags: [:])
        case 3 where elementName == "tag" && current != nil:
            if let k = attributes["k"], let v = attributes["v"] { current?.tags[k] = v }
        default:
            break
        }
    }

    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) {
        if xmlError == nil {
            xmlError = parseError
            xmlErrorLine = parser.lineNumber
        }
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
        if depth == 2, let node = current {
            nodes.append(node)
            current = nil
        }
        if depth == 1 { closedRoot = true }
        depth -= 1
    }
}
