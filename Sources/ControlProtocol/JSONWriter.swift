/// A small, allocation-light JSON writer for response lines: no Foundation, no reflection.
///
/// Numbers are written in Swift's shortest round-trip form; non-finite doubles become `null`.
public struct JSONWriter: Sendable {
    /// The bytes written so far (UTF-8).
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    /// Removes what was written after `mark` (a `bytes.count` taken between two elements of an
    /// array), so that an element that made an answer too large can be taken back. Nothing may be
    /// written into the same array afterwards but its end.
    public mutating func truncate(to mark: Int) {
        bytes.removeSubrange(mark...)
    }

    /// The text written so far.
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separator() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
    }

    /// Writes `{…}` with members written by `body`.
    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        separator()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
        body(&self)
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    /// Writes `[…]` with elements written by `body`.
    public mutating func array(_ body: (inout JSONWriter) -> Void) {
        separator()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
        body(&self)
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes a member name; the next value written is its value.
    public mutating func key(_ name: String) {
        separator()
        appendString(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// Writes a string value.
    public mutating func value(_ s: String) { separator(); appendString(s) }
    /// Writes a boolean value.
    public mutating func value(_ b: Bool) { separator(); bytes.append(contentsOf: (b ? "true" : "false").utf8) }
    /// Writes an integer value.
    public mutating func value(_ i: Int) { separator(); appendInt(i) }
    /// Writes a double value (`null` if not finite).
    public mutating func value(_ d: Double) {
        separator()
        if d.isFinite {
            if d == d.rounded(), abs(d) < 1e15 { appendInt(Int(d)) } else {
                bytes.append(contentsOf: d.description.utf8)
            }
        } else {
            bytes.append(contentsOf: "null".utf8)
        }
    }
    /// Writes `null`.
    public mutating func null() { separator(); bytes.append(contentsOf: "null".utf8) }

    /// Writes a double rounded to `digits` decimals (used for distances and bearings).
    public mutating func value(_ d: Double, decimals digits: Int) {
        guard d.isFinite else { null(); return }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        value((d * scale).rounded() / scale)
    }

    /// `key: value` shorthands.
    public mutating func field(_ name: String, _ v: String) { key(name); value(v) }
    public mutating func field(_ name: String, _ v: Bool) { key(name); value(v) }
    public mutating func field(_ name: String, _ v: Int) { key(name); value(v) }
    public mutating func field(_ name: String, _ v: Double) { key(name); value(v) }
    /// `key: value` or `key: null`.
    public mutating func field(_ name: String, _ v: String?) { key(name); if let v { value(v) } else { null() } }
    public mutating func field(_ name: String, _ v: Int?) { key(name); if let v { value(v) } else { null() } }
    public mutating func field(_ name: String, _ v: Double?) { key(name); if let v { value(v) } else { null() } }

    /// Writes a member name known at compile time (a literal that needs no escaping): copied
    /// as it is, for the hot answers (search hits).
    public mutating func key(static name: StaticString) {
        // One append of `,"name":` (a response holds thousands of these).
        let comma = needsComma
        needsComma = false
        name.withUTF8Buffer { n in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: n.count + 4) { buf in
                var i = 0
                if comma { buf[0] = UInt8(ascii: ","); i = 1 }
                buf[i] = UInt8(ascii: "\"")
                if n.count > 0 { UnsafeMutableRawPointer(buf.baseAddress! + i + 1).copyMemory(from: n.baseAddress!, byteCount: n.count) }
                buf[i + 1 + n.count] = UInt8(ascii: "\"")
                buf[i + 2 + n.count] = UInt8(ascii: ":")
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buf[0..<(i + 3 + n.count)]))
            }
        }
    }

    /// `key: value` shorthands with a compile-time member name (see ``key(static:)``).
    public mutating func put(_ name: StaticString, _ v: String) { key(static: name); value(v) }
    public mutating func put(_ name: StaticString, _ v: Bool) { key(static: name); value(v) }
    public mutating func put(_ name: StaticString, _ v: Int) { key(static: name); value(v) }
    public mutating func put(_ name: StaticString, _ v: Double) { key(static: name); value(v) }
    public mutating func put(_ name: StaticString, _ v: String?) { key(static: name); if let v { value(v) } else { null() } }
    public mutating func put(_ name: StaticString, _ v: Int?) { key(static: name); if let v { value(v) } else { null() } }
    public mutating func put(_ name: StaticString, _ v: Double?) { key(static: name); if let v { value(v) } else { null() } }
    public mutating func put(_ name: StaticString, _ v: Double, decimals: Int) { key(static: name); value(v, decimals: decimals) }

    /// `key: "text"` from UTF-8 bytes (escaped as needed), or `key: null` for `nil`: writes text
    /// held outside a `String` (the index's packed table) without making one.
    public mutating func put(_ name: StaticString, utf8 v: UnsafeBufferPointer<UInt8>?) {
        key(static: name)
        separator()
        if let v { appendString(utf8: v) } else { bytes.append(contentsOf: "null".utf8) }
    }

    /// Appends raw, already-encoded JSON (e.g. a cached object) as a value.
    public mutating func raw(_ json: [UInt8]) { separator(); bytes.append(contentsOf: json) }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Decimal digits of `i`, without making a `String`.
    private mutating func appendInt(_ i: Int) {
        if i < 0 { bytes.append(UInt8(ascii: "-")) }
        var v = i.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[23 - n] = UInt8(truncatingIfNeeded: v % 10) + 0x30
                v /= 10
                n += 1
            } while v > 0
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(24 - n)...]))
        }
    }

    private mutating func appendString(_ s: String) {
        var s = s
        s.withUTF8 { appendString(utf8: $0) }
    }

    private mutating func appendString(utf8 u: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escaping: copy them whole.
        var plain = true
        for b in u where b < 0x20 || b == 0x22 || b == 0x5C || b == 0x7F { plain = false; break }
        if plain {
            bytes.append(contentsOf: u)
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for b in u {
            switch b {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(b)
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(b)
            case 0x0A: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
            case 0..<0x20, 0x7F:
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          Self.hex[Int(b >> 4)], Self.hex[Int(b & 0xF)]])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
