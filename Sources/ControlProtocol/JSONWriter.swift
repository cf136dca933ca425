/// A small, allocation-light JSON writer for response lines: no Foundation, no reflection.
///
/// Numbers are written in Swift's shortest round-trip form; non-finite doubles become `null`.
public struct JSONWriter: Sendable {
    /// The bytes written so far (UTF-8), as an array (a copy: read it once, at the end).
    public var bytes: [UInt8] { out.array }
    /// How many bytes are written so far.
    public var count: Int { out.count }
    private var out: Output
    private var needsComma = false

    public init(capacity: Int = 256) {
        out = Output(capacity: capacity)
    }

    /// Removes what was written after `mark` (a `bytes.count` taken between two elements of an
    /// array), so that an element that made an answer too large can be taken back. Nothing may be
    /// written into the same array afterwards but its end.
    public mutating func truncate(to mark: Int) {
        out.truncate(to: mark)
    }

    /// The text written so far.
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separator() {
        if needsComma { out.append(UInt8(ascii: ",")) }
        needsComma = true
    }

    /// Writes `{…}` with members written by `body`.
    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        separator()
        out.append(UInt8(ascii: "{"))
        needsComma = false
        body(&self)
        out.append(UInt8(ascii: "}"))
        needsComma = true
    }

    /// Writes `[…]` with elements written by `body`.
    public mutating func array(_ body: (inout JSONWriter) -> Void) {
        separator()
        out.append(UInt8(ascii: "["))
        needsComma = false
        body(&self)
        out.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes a member name; the next value written is its value.
    public mutating func key(_ name: String) {
        separator()
        appendString(name)
        out.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// Writes a string value.
    public mutating func value(_ s: String) { separator(); appendString(s) }
    /// Writes a boolean value.
    public mutating func value(_ b: Bool) { separator(); out.append(static: b ? "true" : "false") }
    /// Writes an integer value.
    public mutating func value(_ i: Int) { separator(); appendInt(i) }
    /// Writes a double value (`null` if not finite).
    public mutating func value(_ d: Double) {
        separator()
        if d.isFinite {
            if d == d.rounded(), abs(d) < 1e15 { appendInt(Int(d)) } else {
                out.append(contentsOf: d.description.utf8)
            }
        } else {
            out.append(static: "null")
        }
    }
    /// Writes `null`.
    public mutating func null() { separator(); out.append(static: "null") }

    /// Writes a double rounded to `digits` decimals (used for distances and bearings).
    public mutating func value(_ d: Double, decimals digits: Int) {
        guard d.isFinite else { null(); return }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (d * scale).rounded()
        // Up to 15 significant digits the shortest form of `scaled / scale` is the decimal
        // itself: write it from integers (no `description`); larger values take the general path.
        guard digits > 0, digits <= 9, abs(scaled) < 1e15 else { value(scaled / scale); return }
        separator()
        let n = Int(scaled)
        let unit = Int(scale)
        let whole = n.magnitude / UInt(unit)
        var fraction = n.magnitude % UInt(unit)
        if n < 0 { out.append(UInt8(ascii: "-")) }
        appendInt(Int(whole))
        guard fraction != 0 else { return }
        // The fraction's digits, leading zeros kept and trailing ones dropped.
        var width = digits
        while fraction % 10 == 0 { fraction /= 10; width -= 1 }
        out.append(UInt8(ascii: "."))
        var buf: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &buf) { b in
            for i in stride(from: width - 1, through: 0, by: -1) {
                b[i] = UInt8(truncatingIfNeeded: fraction % 10) + 0x30
                fraction /= 10
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[0..<width]))
        }
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
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[0..<(i + 3 + n.count)]))
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
        if let v { appendString(utf8: v) } else { out.append(static: "null") }
    }

    /// Appends raw, already-encoded JSON (e.g. a cached object) as a value.
    public mutating func raw(_ json: [UInt8]) { separator(); out.append(contentsOf: json) }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Decimal digits of `i`, without making a `String`.
    private mutating func appendInt(_ i: Int) {
        if i >= 0 && i < 10 {
            out.append(UInt8(truncatingIfNeeded: i) + 0x30)
            return
        }
        if i < 0 { out.append(UInt8(ascii: "-")) }
        var v = i.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[23 - n] = UInt8(truncatingIfNeeded: v % 10) + 0x30
                v /= 10
                n += 1
            } while v > 0
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(24 - n)...]))
        }
    }

    private mutating func appendString(_ s: String) {
        var s = s
        s.withUTF8 { appendString(utf8: $0) }
    }

    private mutating func appendString(utf8 u: UnsafeBufferPointer<UInt8>) {
        out.append(UInt8(ascii: "\""))
        // Most strings need no escaping: copy them whole.
        var plain = true
        for b in u where b < 0x20 || b == 0x22 || b == 0x5C || b == 0x7F { plain = false; break }
        if plain {
            out.append(contentsOf: u)
            out.append(UInt8(ascii: "\""))
            return
        }
        for b in u {
            switch b {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(b)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(b)
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20, 0x7F:
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          Self.hex[Int(b >> 4)], Self.hex[Int(b & 0xF)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// The writer's byte buffer: one `malloc`ed block, grown by doubling, shared copy-on-write. Small
/// appends (a comma, a quote, a member name) cost a capacity check and a store, where an
/// `Array` append also goes through its generic uniqueness and growth paths; an answer of
/// twenty hits makes about a thousand of them.
struct Output: @unchecked Sendable {
    /// Owns the block; freed in `deinit` (the one place). `@unchecked Sendable`: a storage is
    /// written only through a unique reference (copy-on-write).
    final class Storage {
        var base: UnsafeMutablePointer<UInt8>
        var count = 0
        var capacity: Int

        init(capacity: Int) {
            self.capacity = max(16, capacity)
            base = .allocate(capacity: self.capacity)
        }

        deinit { base.deallocate() }

        func copy() -> Storage {
            let s = Storage(capacity: capacity)
            s.base.update(from: base, count: count)
            s.count = count
            return s
        }

        func grow(toAtLeast needed: Int) {
            var c = capacity
            while c < needed { c *= 2 }
            let b = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
            b.update(from: base, count: count)
            base.deallocate()
            base = b
            capacity = c
        }
    }

    private var storage: Storage

    init(capacity: Int) { storage = Storage(capacity: capacity) }

    var count: Int { storage.count }

    var array: [UInt8] { Array(UnsafeBufferPointer(start: storage.base, count: storage.count)) }

    /// Room for `n` more bytes in a storage this value alone holds.
    @inline(__always) private mutating func reserve(_ n: Int) -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        let s = storage
        if s.count + n > s.capacity { s.grow(toAtLeast: s.count + n) }
        return s
    }

    @inline(__always) mutating func append(_ b: UInt8) {
        let s = reserve(1)
        s.base[s.count] = b
        s.count += 1
    }

    mutating func append(contentsOf u: UnsafeBufferPointer<UInt8>) {
        guard let src = u.baseAddress, u.count > 0 else { return }
        let s = reserve(u.count)
        let dst = s.base + s.count
        if u.count <= 16 {
            // Most appends are a few bytes: a loop beats a call to memmove.
            for i in 0..<u.count { dst[i] = src[i] }
        } else {
            dst.update(from: src, count: u.count)
        }
        s.count += u.count
    }

    mutating func append(contentsOf u: UnsafeRawBufferPointer) {
        append(contentsOf: u.bindMemory(to: UInt8.self))
    }

    mutating func append(contentsOf a: [UInt8]) {
        a.withUnsafeBufferPointer { append(contentsOf: $0) }
    }

    mutating func append(contentsOf u: String.UTF8View) {
        var text = String(u)
        text.withUTF8 { append(contentsOf: $0) }
    }

    mutating func append(static text: StaticString) {
        text.withUTF8Buffer { append(contentsOf: $0) }
    }

    mutating func truncate(to mark: Int) {
        let s = reserve(0)
        s.count = min(s.count, max(0, mark))
    }
}
