import Foundation

/// Which CSV column holds which camera field. The default names are ``CameraField``'s raw
/// values (`id, lat, lon, site_kind, address, ward, heading, fov, range_m, mount_height_m,
/// owner_kind, owner_name, owner_phone, schedule, retention_days, status, created_at,
/// updated_at, version`), exactly the header ``CSVExporter`` writes. Column names are matched
/// case-insensitively after trimming; columns the mapping does not name are ignored.
public struct CSVMapping: Sendable, Equatable {
    /// The column name of each field.
    public var columns: [CameraField: String]
    /// The field separator: one ASCII character other than `"`, CR and LF (default `,`).
    public var separator: Unicode.Scalar

    /// Fields a file must have a column for.
    public static let requiredFields: [CameraField] = [.id, .lat, .lon, .address]

    /// The default mapping (every field under its own name, comma-separated).
    public static let `default` = CSVMapping()

    /// The default mapping, or a custom separator.
    public init(separator: Unicode.Scalar = ",") {
        columns = Dictionary(uniqueKeysWithValues: CameraField.allCases.map { ($0, $0.rawValue) })
        self.separator = separator
    }

    /// The column name for `field`.
    public subscript(field: CameraField) -> String {
        get { columns[field] ?? field.rawValue }
        set { columns[field] = newValue }
    }

    /// A copy that reads `field` from the column `column`, e.g.
    /// `CSVMapping.default.with(.lat, column: "Latitude")`.
    public func with(_ field: CameraField, column: String) -> CSVMapping {
        var m = self
        m[field] = column
        return m
    }
}

/// Reads cameras from CSV (RFC 4180).
///
/// - The first record is the header; columns are found by name through a ``CSVMapping``.
///   The `id`, `lat`, `lon` and `address` columns must be present (else ``ImportError``).
/// - A UTF-8 byte order mark is skipped; lines may end in CRLF, LF or CR.
/// - Quoted fields may hold separators, doubled quotes (`""` for `"`) and line breaks. A quote
///   inside an unquoted field is kept as a literal character.
/// - Empty and blank lines are skipped. Every other record must have as many fields as the
///   header.
/// - Empty fields are missing values. Text is trimmed and normalised to NFC; numbers must be
///   plain decimals (`11.05`, `1e-05`), enums their lower-case names, timestamps RFC 3339.
///
/// **Broken quotes.** When a quoted field never closes, or its closing quote is followed by
/// something other than a separator or a line end, or a record that ran over several lines has
/// the wrong number of fields (the usual sign of a stray quote swallowing the lines after it),
/// the record is reported as an error on the line it started on, naming the column where the
/// bad quote opened (or `record`), and reading **resumes at the next physical line**, so the
/// lines a stray quote would swallow are still read as records of their own. Nothing is
/// dropped silently: every line ends up in a record or in an error.
extension CSVRecordReader {
    /// A reader over `data` positioned after its header line, and the header's raw fields.
    /// Throws ``ImportError`` for an unusable separator, an empty file or an unreadable header.
    static func afterHeader(_ data: Data, separator: Unicode.Scalar) throws -> (reader: CSVRecordReader, header: [[UInt8]]) {
        try afterHeader(bytes: Array(data), more: nil, separator: separator)
    }

    /// ``afterHeader(_:separator:)`` over data that arrives in pieces (see ``CSVRecordReader``).
    static func afterHeader(bytes: [UInt8], more: (() throws -> [UInt8]?)?,
                            separator: Unicode.Scalar) throws -> (reader: CSVRecordReader, header: [[UInt8]]) {
        guard separator.isASCII, !["\"", "\r", "\n"].contains(separator) else {
            throw ImportError("the separator must be one ASCII character other than a quote or a line break")
        }
        var reader = CSVRecordReader(bytes: bytes, separator: UInt8(separator.value), more: more)
        guard let first = try reader.next() else { throw ImportError(line: 1, "the file is empty (a header is required)") }
        switch first {
        case .record(_, let fields, _): return (reader, fields)
        case .malformed(_, _, let reason): throw ImportError(line: 1, "cannot read the header: \(reason)")
        }
    }
}

public enum CSVImporter {
    /// One ``ImportRow`` per data record, in file order; ``ImportRow/number`` is the physical
    /// line the record starts on (the header is line 1). Throws ``ImportError`` when the
    /// separator is unusable, the file is empty, the header is unreadable or duplicates a
    /// mapped column, or a required column is missing.
    public static func parse(_ data: Data, mapping: CSVMapping = .default,
                             jurisdiction: Jurisdiction? = nil) throws -> [ImportRow] {
        var rows: [ImportRow] = []
        try parse(data, mapping: mapping, jurisdiction: jurisdiction) { rows += $0 }
        return rows
    }

    /// ``parse(_:mapping:jurisdiction:)`` handing the rows to `emit` in batches of up to
    /// `batchSize`, in file order, as they are read: a bulk import sends each batch on to the
    /// database while the next one is parsed. The header errors are thrown before any batch;
    /// an error thrown by `emit` stops the parse and is rethrown.
    public static func parse(_ data: Data, mapping: CSVMapping = .default, jurisdiction: Jurisdiction? = nil,
                             batchSize: Int = 4096, emit: ([ImportRow]) throws -> Void) throws {
        try parse(CSVRecordReader.afterHeader(data, separator: mapping.separator), mapping: mapping,
                  jurisdiction: jurisdiction, batchSize: batchSize, emit: emit)
    }

    /// ``parse(_:mapping:jurisdiction:batchSize:emit:)`` of a file that arrives in pieces while it
    /// is parsed (an upload): `more` returns the next piece, waiting for it if need be, or nil
    /// at the end of the file. A piece may end anywhere; the rows are those of the whole file
    /// read at once. An error thrown by `more` (the upload was dropped) stops the parse and is
    /// rethrown.
    public static func parse(more: @escaping () throws -> [UInt8]?, mapping: CSVMapping = .default, jurisdiction: Jurisdiction? = nil,
                             batchSize: Int = 4096, emit: ([ImportRow]) throws -> Void) throws {
        try parse(CSVRecordReader.afterHeader(bytes: [], more: more, separator: mapping.separator), mapping: mapping,
                  jurisdiction: jurisdiction, batchSize: batchSize, emit: emit)
    }

    private static func parse(_ opened: (reader: CSVRecordReader, header: [[UInt8]]), mapping: CSVMapping, jurisdiction: Jurisdiction?,
                              batchSize: Int, emit: ([ImportRow]) throws -> Void) throws {
        var reader = opened.reader
        let headerFields = opened.header
        var header: [String] = []
        for (k, f) in headerFields.enumerated() {
            guard let s = String(bytes: f, encoding: .utf8) else {
                throw ImportError(line: 1, "header column \(k + 1) is not valid UTF-8")
            }
            header.append(ImportText.clean(s).lowercased())
        }
        var index: [CameraField: Int] = [:]
        for field in CameraField.allCases {
            let name = ImportText.clean(mapping[field]).lowercased()
            let hits = header.indices.filter { header[$0] == name }
            if hits.count > 1 { throw ImportError(line: 1, "column '\(mapping[field])' appears \(hits.count) times in the header") }
            if let k = hits.first { index[field] = k }
        }
        for field in CSVMapping.requiredFields where index[field] == nil {
            throw ImportError(line: 1, "required column '\(mapping[field])' (\(field.rawValue)) is missing from the header")
        }

        // (field, column) pairs in field order: a row's values go into an array by ordinal.
        let columns = CameraField.allCases.compactMap { f in index[f].map { (field: f, column: $0) } }
        var rows: [ImportRow] = []
        rows.reserveCapacity(batchSize)
        while let item = try reader.next() {
            if rows.count >= batchSize {
                try emit(rows)
                rows.removeAll(keepingCapacity: true)
            }
            switch item {
            case .malformed(let line, let column, let reason):
                let field = column.map { $0 < header.count ? mapping.name(ofColumn: $0, header: headerFields) : "record" } ?? "record"
                rows.append(ImportRow(number: line, result: .failure(ImportRowError(number: line, field: field, reason: reason))))
            case .record(let line, let fields, let lastLine):
                if fields.count != header.count {
                    let reason = "has \(fields.count) field\(fields.count == 1 ? "" : "s"), the header has \(header.count)"
                    if lastLine > line {
                        // Probably a stray quote that swallowed the following lines: read them again.
                        try reader.resync(afterLineOf: line)
                        rows.append(ImportRow(number: line, result: .failure(ImportRowError(
                            number: line, field: "record", reason: reason + " (a quoted field ran on to line \(lastLine); is a quote missing?)"))))
                    } else {
                        rows.append(ImportRow(number: line, result: .failure(ImportRowError(number: line, field: "record", reason: reason))))
                    }
                    continue
                }
                do {
                    let d = try row(fields, line: line, columns: columns, mapping: mapping, jurisdiction: jurisdiction)
                    rows.append(ImportRow(number: line, result: .success(d)))
                } catch {
                    rows.append(ImportRow(number: line, result: .failure(error)))
                }
            }
        }
        if !rows.isEmpty { try emit(rows) }
    }

    private static func row(_ fields: [[UInt8]], line: Int, columns: [(field: CameraField, column: Int)], mapping: CSVMapping,
                            jurisdiction: Jurisdiction?) throws(ImportRowError) -> CameraDraft {
        let reader = DraftReader(number: line, name: { mapping[$0] })
        // Decode every mapped field first so that bad UTF-8 is reported on its column.
        var values = [String?](repeating: nil, count: CameraField.count)
        for (field, k) in columns {
            guard let s = utf8Text(fields[k]) else {
                throw reader.fail(field, "is not valid UTF-8 text")
            }
            values[field.ordinal] = s
        }
        return try reader.draft({ field in values[field.ordinal].map(RawValue.text) }, jurisdiction: jurisdiction)
    }

    /// The bytes as a string, or `nil` when they are not valid UTF-8. Decoding repairs bad
    /// input (with U+FFFD), so the bytes are valid exactly when they come back unchanged.
    /// (`String(validating:as:)` is generic over its sequence and looked up its type metadata
    /// on every call: an eighth of a CSV row's parse.)
    static func utf8Text(_ bytes: [UInt8]) -> String? {
        bytes.withUnsafeBufferPointer { b in
            let s = String(decoding: b, as: UTF8.self)
            let same = s.utf8.withContiguousStorageIfAvailable { u in
                u.count == b.count && (b.isEmpty || memcmp(u.baseAddress!, b.baseAddress!, b.count) == 0)
            } ?? s.utf8.elementsEqual(b)
            return same ? s : nil
        }
    }
}

extension CSVMapping {
    /// The header's name of column `k` (as written), for messages.
    fileprivate func name(ofColumn k: Int, header: [[UInt8]]) -> String {
        String(bytes: header[k], encoding: .utf8).map(ImportText.clean) ?? "column \(k + 1)"
    }
}

/// Splits CSV bytes into records, tracking physical line numbers, and resynchronising after a
/// malformed record (see ``CSVImporter``).
///
/// The bytes may arrive in pieces (an upload being parsed while it is sent): with a `more`
/// source, the reader asks for the next piece whenever it needs a byte past the ones it holds,
/// and the data ends when `more` returns nil. It reads exactly as it would read the whole file
/// at once: a piece may end anywhere, inside a quoted field, between CR and LF, or after a
/// separator.
struct CSVRecordReader {
    /// One record, or a record that could not be split.
    enum Item {
        /// Fields of a record that started on `line` and ended on `lastLine`.
        case record(line: Int, fields: [[UInt8]], lastLine: Int)
        /// A record starting on `line` that could not be split; `column` is the 0-based column
        /// where the bad quoted field began.
        case malformed(line: Int, column: Int?, reason: String)
    }

    private var b: [UInt8]
    private let sep: UInt8
    /// The next piece of the data (nil: no more), or nil when `b` is all of it.
    private let more: (() throws -> [UInt8]?)?
    /// `b` holds the rest of the data.
    private var final: Bool
    private var started = false
    private var i = 0
    private var line = 1
    /// Where the last record started (byte offset and line), for ``resync(afterLineOf:)``.
    private var recordStart = 0
    /// The previous record's field count: the next record's array is reserved that large.
    private var lastFieldCount = 0

    private static let quote = UInt8(ascii: "\""), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")

    init(bytes: [UInt8], separator: UInt8, more: (() throws -> [UInt8]?)? = nil) {
        b = bytes
        sep = separator
        self.more = more
        final = more == nil
    }

    /// Appends the next piece of the data; false when there is none (the data has ended).
    private mutating func fetch() throws -> Bool {
        while !final {
            guard let piece = try more?() else {
                final = true
                break
            }
            if !piece.isEmpty {
                b.append(contentsOf: piece)
                return true
            }
        }
        return false
    }

    /// Whether a byte exists at `k`, fetching pieces as needed.
    private mutating func has(_ k: Int) throws -> Bool {
        while k >= b.count { guard try fetch() else { return false } }
        return true
    }

    /// Moves past a line end at `i` (CRLF, LF or CR), counting the line.
    private mutating func skipLineEnd() throws {
        if b[i] == Self.cr, try has(i + 1), b[i + 1] == Self.lf { i += 2 } else { i += 1 }
        line += 1
    }

    /// Continues reading at the physical line after the one the last record started on.
    mutating func resync(afterLineOf startLine: Int) throws {
        i = recordStart
        line = startLine
        while true {
            while i < b.count, b[i] != Self.cr, b[i] != Self.lf { i += 1 }
            if try i < b.count || !fetch() { break }
        }
        if i < b.count { try skipLineEnd() }
    }

    /// The next record, or `nil` at the end of the data. Throws only what the `more` source throws.
    mutating func next() throws -> Item? {
        if !started {
            started = true
            while b.count < 3, try fetch() {}
            if b.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        }
        // Pieces already read are dropped once they are most of what is held (a record never
        // looks back before its own start).
        if !final, i >= 1 << 20, i * 2 >= b.count {
            b.removeSubrange(0..<i)
            i = 0
            recordStart = 0
        }
        // Skip empty and blank lines.
        while try has(i) {
            var k = i
            while true {
                while k < b.count, b[k] == UInt8(ascii: " ") || b[k] == UInt8(ascii: "\t") { k += 1 }
                if try k < b.count || !fetch() { break }
            }
            guard k == b.count || b[k] == Self.cr || b[k] == Self.lf else { break }
            i = k
            if i < b.count { try skipLineEnd() }
        }
        guard i < b.count else { return nil }
        recordStart = i
        let startLine = line
        var fields: [[UInt8]] = []
        fields.reserveCapacity(lastFieldCount)
        while true {
            var field: [UInt8] = []
            if b[i] == Self.quote {
                let openLine = line
                i += 1
                var closed = false
                // Copied a run at a time: up to the next quote (doubled or closing).
                var run = i
                scan: while true {
                    while i < b.count {
                        let c = b[i]
                        if c == Self.quote {
                            field.append(contentsOf: b[run..<i])
                            if try has(i + 1), b[i + 1] == Self.quote {
                                field.append(Self.quote)
                                i += 2
                                run = i
                                continue
                            }
                            i += 1
                            closed = true
                            break scan
                        }
                        if try c == Self.lf || (c == Self.cr && !(has(i + 1) && b[i + 1] == Self.lf)) { line += 1 }
                        i += 1
                    }
                    if !(try fetch()) { break }
                }
                if !closed {
                    try resync(afterLineOf: startLine)
                    return .malformed(line: startLine, column: fields.count,
                                      reason: "unterminated quoted field (the quote opened on line \(openLine) never closes)")
                }
                if try has(i), b[i] != sep, b[i] != Self.cr, b[i] != Self.lf {
                    let closeLine = line
                    try resync(afterLineOf: startLine)
                    return .malformed(line: startLine, column: fields.count,
                                      reason: "unexpected text after the closing quote on line \(closeLine) (a quote inside a quoted field must be doubled)")
                }
            } else {
                let start = i
                while true {
                    while i < b.count {
                        let c = b[i]
                        if c == sep || c == Self.cr || c == Self.lf { break }
                        i += 1
                    }
                    if try i < b.count || !fetch() { break }
                }
                if i > start { field = Array(b[start..<i]) }
            }
            fields.append(field)
            if i < b.count, b[i] == sep {
                i += 1
                if !(try has(i)) { fields.append([]) }   // a trailing separator at the end of the data
                else { continue }
            }
            let lastLine = line
            if i < b.count { try skipLineEnd() }
            lastFieldCount = fields.count
            return .record(line: startLine, fields: fields, lastLine: lastLine)
        }
    }
}
