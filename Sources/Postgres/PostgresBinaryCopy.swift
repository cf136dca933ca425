import Foundation

/// Splits the byte stream of `COPY … TO STDOUT (FORMAT binary)` into rows, without copying
/// field values: each row is handed to the caller as a ``PostgresBinaryRow`` that points into
/// the bytes being fed (valid only during the callback).
///
/// The stream is the 11-byte signature `PGCOPY\n\377\r\n\0`, a flags word, a header extension,
/// then per row a 16-bit field count and, per field, a 32-bit length (−1 for NULL) and that many
/// bytes, and finally a field count of −1. Everything is big-endian. Rows may be split across
/// the chunks fed in (libpq hands out one CopyData message at a time, and the server sends the
/// header together with the first row); an incomplete row is kept until the next chunk.
/// Malformed input throws ``PostgresError/Code/unexpectedResult``; it never reads out of bounds.
public struct PostgresBinaryCopyDecoder {
    /// The number of fields every row must have.
    public let columns: Int
    private var pending: [UInt8] = []
    private var headerDone = false
    private var trailerSeen = false
    private var offsets: [Int]
    /// Rows decoded so far.
    public private(set) var rowCount = 0

    private static let signature: [UInt8] = [0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00]

    /// A decoder for rows of `columns` fields.
    public init(columns: Int) {
        self.columns = columns
        offsets = [Int](repeating: 0, count: columns * 2)
    }

    /// Feeds the next chunk of the stream; calls `row` for each complete row in it.
    public mutating func feed(_ chunk: UnsafeRawBufferPointer, row: (PostgresBinaryRow) throws -> Void) throws {
        if pending.isEmpty {
            let used = try parse(chunk, row: row)
            if used < chunk.count { pending.append(contentsOf: chunk[used...]) }
        } else {
            pending.append(contentsOf: chunk)
            let all = pending
            let used = try all.withUnsafeBytes { try parse($0, row: row) }
            pending.removeFirst(used)
        }
    }

    /// Checks that the stream ended with the trailer and nothing is left over.
    public func finish() throws {
        guard trailerSeen, pending.isEmpty else {
            throw PostgresError(code: .unexpectedResult, message: "binary COPY data ended early (\(pending.count) bytes left over)")
        }
    }

    /// Parses as many whole items as `bytes` holds; returns how many bytes were used.
    private mutating func parse(_ bytes: UnsafeRawBufferPointer, row: (PostgresBinaryRow) throws -> Void) throws -> Int {
        var p = 0
        let n = bytes.count
        if !headerDone {
            guard n >= 19 else { return 0 }
            guard Self.signature.indices.allSatisfy({ bytes[$0] == Self.signature[$0] }) else {
                throw PostgresError(code: .unexpectedResult, message: "not a binary COPY stream (bad signature)")
            }
            let ext = Int(Self.int32(bytes, 15))
            guard ext >= 0 else { throw PostgresError(code: .unexpectedResult, message: "bad binary COPY header extension") }
            guard n >= 19 + ext else { return 0 }
            p = 19 + ext
            headerDone = true
        }
        return try offsets.withUnsafeMutableBufferPointer { offs in
            while p < n {
                guard !trailerSeen else {
                    throw PostgresError(code: .unexpectedResult, message: "binary COPY data after the trailer")
                }
                guard n - p >= 2 else { return p }
                let count = Int(Int16(bitPattern: UInt16(bytes[p]) << 8 | UInt16(bytes[p + 1])))
                if count == -1 {
                    trailerSeen = true
                    p += 2
                    continue
                }
                guard count == columns else {
                    throw PostgresError(code: .unexpectedResult, message: "binary COPY row has \(count) fields, expected \(columns)")
                }
                var q = p + 2
                for f in 0..<count {
                    guard n - q >= 4 else { return p }
                    let len = Int(Self.int32(bytes, q))
                    q += 4
                    if len < 0 {
                        guard len == -1 else { throw PostgresError(code: .unexpectedResult, message: "bad binary COPY field length \(len)") }
                        offs[2 * f] = q
                        offs[2 * f + 1] = -1
                    } else {
                        guard n - q >= len else { return p }
                        offs[2 * f] = q
                        offs[2 * f + 1] = len
                        q += len
                    }
                }
                try row(PostgresBinaryRow(bytes: bytes, fields: UnsafeBufferPointer(offs)))
                rowCount += 1
                p = q
            }
            return p
        }
    }

    static func int32(_ b: UnsafeRawBufferPointer, _ i: Int) -> Int32 {
        Int32(bigEndian: b.loadUnaligned(fromByteOffset: i, as: Int32.self))
    }
}

/// One row of a binary COPY stream: field accessors that check each field's length and type
/// width and throw ``PostgresError/Code/unexpectedResult`` on a mismatch. Valid only inside the
/// callback it was passed to.
public struct PostgresBinaryRow {
    let bytes: UnsafeRawBufferPointer
    /// Offset and length (−1 for NULL) of each field.
    let fields: UnsafeBufferPointer<Int>

    /// Whether field `i` is NULL.
    public func isNull(_ i: Int) -> Bool { fields[2 * i + 1] < 0 }

    /// The raw bytes of field `i`, or `nil` for NULL.
    public func bytes(_ i: Int) -> UnsafeRawBufferPointer? {
        let len = fields[2 * i + 1]
        guard len >= 0 else { return nil }
        let start = fields[2 * i]
        return UnsafeRawBufferPointer(rebasing: bytes[start..<start + len])
    }

    private func fixed(_ i: Int, _ width: Int, _ type: String) throws -> Int? {
        let len = fields[2 * i + 1]
        if len < 0 { return nil }
        guard len == width else {
            throw PostgresError(code: .unexpectedResult, message: "field \(i) has \(len) bytes, not a \(type)")
        }
        return fields[2 * i]
    }

    /// A `float8` field.
    public func double(_ i: Int) throws -> Double? {
        try fixed(i, 8, "float8").map { Double(bitPattern: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: $0, as: UInt64.self))) }
    }

    /// An `int8` (or `timestamptz`: microseconds since 2000-01-01) field.
    public func int64(_ i: Int) throws -> Int64? {
        try fixed(i, 8, "int8").map { Int64(bigEndian: bytes.loadUnaligned(fromByteOffset: $0, as: Int64.self)) }
    }

    /// An `int4` field.
    public func int32(_ i: Int) throws -> Int32? {
        try fixed(i, 4, "int4").map { Int32(bigEndian: bytes.loadUnaligned(fromByteOffset: $0, as: Int32.self)) }
    }

    /// An unsigned 32-bit field (`xid`, `oid`).
    public func uint32(_ i: Int) throws -> UInt32? {
        try fixed(i, 4, "xid").map { UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: $0, as: UInt32.self)) }
    }

    /// A text field as a `String` (UTF-8; invalid sequences are repaired), or `nil` for NULL.
    public func string(_ i: Int) -> String? {
        bytes(i).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A `timestamptz` field as seconds since 1970 — exactly the `float8` that
    /// `extract(epoch from …)::float8` gives (the microseconds are exact in a `Double`, and one
    /// division by 10⁶ rounds correctly, as the server's numeric-to-float8 cast does).
    public func epochSeconds(_ i: Int) throws -> Double? {
        try int64(i).map { us in
            let (shifted, overflow) = us.addingReportingOverflow(946_684_800_000_000)
            if us == .max || (overflow && us > 0) { return .infinity }
            if us == .min || overflow { return -.infinity }
            return Double(shifted) / 1_000_000
        }
    }
}

/// Builds the byte stream of `COPY … FROM STDIN (FORMAT binary)` (the layout
/// ``PostgresBinaryCopyDecoder`` reads): the signature and header first, then rows, then the
/// trailer from ``finish()``. Values go in as the server's binary receive functions read them,
/// so the server does no text conversion: `float8` as its IEEE bits, `int4`/`int8` big-endian,
/// `text` as its UTF-8 bytes (the server still checks the encoding), `timestamptz` as
/// microseconds since 2000-01-01 UTC. The caller takes the bytes in chunks with ``take()``.
public struct PostgresBinaryCopyEncoder {
    /// The bytes not yet taken.
    public private(set) var bytes: [UInt8] = []
    /// Seconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
    static let postgresEpochMicros: Int64 = 946_684_800_000_000

    /// An encoder whose first bytes are the stream's signature and header.
    public init(reserve: Int = 1 << 17) {
        bytes.reserveCapacity(reserve)
        bytes.append(contentsOf: [0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00])
        int32Bits(0)  // flags: no OIDs
        int32Bits(0)  // no header extension
    }

    /// Starts a row of `fields` values.
    public mutating func row(fields: Int) { int16Bits(Int16(fields)) }
    /// A NULL value.
    public mutating func null() { int32Bits(-1) }
    /// A `text` value (NULL for nil).
    public mutating func text(_ value: String?) {
        guard var value else { return null() }
        value.withUTF8 { b in
            int32Bits(Int32(b.count))
            bytes.append(contentsOf: b)
        }
    }
    /// A one-dimensional `text[]` value without NULL elements (array_recv's layout: dimensions,
    /// a has-NULL flag, the element type's OID, each dimension's length and lower bound, then
    /// each element as a length and its UTF-8 bytes).
    public mutating func textArray<S: Collection>(_ values: S) where S.Element == String {
        // The value's length goes first: a placeholder, patched once the array is written.
        let lengthAt = bytes.count
        int32Bits(0)
        int32Bits(1)                    // one dimension
        int32Bits(0)                    // no NULL elements
        int32Bits(25)                   // text
        int32Bits(Int32(values.count))  // its length
        int32Bits(1)                    // lower bound
        for value in values {
            var value = value
            value.withUTF8 { b in
                int32Bits(Int32(b.count))
                bytes.append(contentsOf: b)
            }
        }
        let length = UInt32(bytes.count - lengthAt - 4)
        for k in 0..<4 { bytes[lengthAt + k] = UInt8(truncatingIfNeeded: length >> (24 - 8 * k)) }
    }
    /// A `float8` value (NULL for nil).
    public mutating func double(_ value: Double?) {
        guard let value else { return null() }
        int32Bits(8)
        int64Bits(Int64(bitPattern: value.bitPattern))
    }
    /// An `int4` value.
    public mutating func int32(_ value: Int32) {
        int32Bits(4)
        int32Bits(value)
    }
    /// An `int8` value.
    public mutating func int64(_ value: Int64) {
        int32Bits(8)
        int64Bits(value)
    }
    /// A `timestamptz` value given in microseconds since the Unix epoch.
    public mutating func timestamp(unixMicros: Int64) {
        int32Bits(8)
        int64Bits(unixMicros - Self.postgresEpochMicros)
    }
    /// Ends the stream (the trailer: a field count of −1).
    public mutating func finish() { int16Bits(-1) }

    /// Hands over the bytes built so far and starts an empty buffer (keeping its capacity).
    public mutating func take() -> [UInt8] {
        let out = bytes
        bytes.removeAll(keepingCapacity: true)
        return out
    }

    private mutating func int16Bits(_ v: Int16) {
        let u = UInt16(bitPattern: v)
        bytes.append(UInt8(u >> 8)); bytes.append(UInt8(u & 0xFF))
    }
    private mutating func int32Bits(_ v: Int32) {
        let u = UInt32(bitPattern: v)
        bytes.append(UInt8(u >> 24)); bytes.append(UInt8((u >> 16) & 0xFF))
        bytes.append(UInt8((u >> 8) & 0xFF)); bytes.append(UInt8(u & 0xFF))
    }
    private mutating func int64Bits(_ v: Int64) {
        let u = UInt64(bitPattern: v)
        withUnsafeBytes(of: u.bigEndian) { bytes.append(contentsOf: $0) }
    }
}
