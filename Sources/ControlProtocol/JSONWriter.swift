#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small, allocation-light JSON writer for response lines: no Foundation, no reflection.
///
/// Numbers are written in Swift's shortest round-trip form; non-finite doubles become `null`.
///
/// Noncopyable: a writer owns its buffer alone, so appends need no copy-on-write check.
/// `@unchecked Sendable`: the buffer is reachable only through this one value, so sending the
/// writer moves it.
public struct JSONWriter: ~Copyable, @unchecked Sendable {
    /// The bytes written so far (UTF-8), as an array (a copy: read it once, at the end).
    public var bytes: [UInt8] { out.array }
    /// Ends the writer and hands its bytes over without a copy (see ``JSONBytes``).
    public consuming func finish() -> JSONBytes { out.finish() }
    /// How many bytes are written so far.
    public var count: Int { out.count }
    @usableFromInline var out: Output
    @usableFromInline var needsComma = false

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

    @inlinable @inline(__always)
    mutating func separator() {
        if needsComma { out.append(UInt8(ascii: ",")) }
        needsComma = true
    }

    /// Writes `{…}` with members written by `body`.
    @inlinable
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
        if let f = Self.shortForm(d) {
            appendDecimal(f.n, digits: f.digits)
        } else if d.isFinite {
            out.append(contentsOf: d.description.utf8)
        } else {
            out.append(static: "null")
        }
    }
    /// Writes `null`.
    public mutating func null() { separator(); out.append(static: "null") }

    /// Writes a double rounded to `digits` decimals (used for distances and bearings).
    public mutating func value(_ d: Double, decimals digits: Int) {
        guard d.isFinite else { null(); return }
        if let f = Self.roundedForm(d, decimals: digits) {
            separator()
            appendDecimal(f.n, digits: f.digits)
        } else {
            var scale = 1.0
            for _ in 0..<digits { scale *= 10 }
            value((d * scale).rounded() / scale)
        }
    }

    /// `d` as `n / 10^digits` written from integers, when it is a whole number under 10¹⁵
    /// (digits 0) or a decimal of at most nine places (coordinates are stored to seven) between
    /// 10⁻⁴ and 10⁵; `nil` otherwise (the general path, `description`). For 10⁻⁴ ≤ |d| < 10⁵
    /// the double's spacing is under 10⁻¹⁰, so no other decimal of at most nine places (and
    /// none shorter) reads back as `d`: the digits are those of Swift's shortest form,
    /// `d.description`, which a test checks.
    @inline(__always)
    static func shortForm(_ d: Double) -> (n: Int, digits: Int)? {
        let m = abs(d)
        guard m < 1e15 else { return nil }  // also NaN
        let whole = Int(d)
        if Double(whole) == d { return (whole, 0) }
        guard m >= 1e-4, m < 1e5 else { return nil }
        let scaled = roundedHalfAway(d * 1e9)
        guard Double(scaled) / 1e9 == d else { return nil }
        return (scaled, 9)
    }

    /// `x.rounded()` (half away from zero) as an integer, for |x| < 10¹⁵: the truncation is a
    /// conversion instruction and the fraction `x − trunc(x)` is exact, where `rounded()` is a
    /// call to libm's `round` (the generic x86-64 target has no rounding instruction), one or
    /// two a hit member.
    @inlinable @inline(__always)
    static func roundedHalfAway(_ x: Double) -> Int {
        let t = Int(x)
        let f = x - Double(t)
        return f >= 0.5 ? t + 1 : f <= -0.5 ? t - 1 : t
    }

    /// `d` rounded to `decimals` places as `n / 10^decimals`, when that has at most 15
    /// significant digits (then the shortest form of the rounded double is that decimal
    /// itself) and 1 ≤ decimals ≤ 9; `nil` otherwise (the general path).
    @inlinable @inline(__always)
    static func roundedForm(_ d: Double, decimals: Int) -> (n: Int, digits: Int)? {
        guard decimals > 0, decimals <= 9 else { return nil }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let x = d * scale
        guard abs(x) < 1e15 - 1 else { return nil }  // also NaN and infinities
        return (roundedHalfAway(x), decimals)
    }

    /// Writes `n / 10^digits` (see ``writeDecimal(_:digits:at:)``).
    private mutating func appendDecimal(_ n: Int, digits: Int) {
        let p = out.tail(reserving: Self.maximumDecimalBytes)
        out.advance(by: Self.writeDecimal(n, digits: digits, at: p))
    }

    /// The most bytes ``writeDecimal(_:digits:at:)`` writes: a sign, 16 digits, a point, and
    /// room for the leading zeros of a small fraction.
    @usableFromInline static let maximumDecimalBytes = 24

    /// Writes `n / 10^digits` (0 ≤ digits ≤ 9; |n| < 10¹⁵ when digits > 0) at `p` as a
    /// decimal, trailing zeros of the fraction dropped (none left, or digits 0: no point), in at
    /// most ``maximumDecimalBytes``; returns the bytes written. One division splits the whole
    /// part from the fraction; the fraction is written zero-padded to `digits` places and its
    /// trailing zeros are then cut off the end, and both parts are written from their last digit,
    /// two at a time from ``digitPairs``: no loop over the number's digits but the writing itself
    /// (a search answer writes one to four per hit; coordinates have nine places).
    @inlinable @inline(__always)
    static func writeDecimal(_ n: Int, digits: Int, at p: UnsafeMutablePointer<UInt8>) -> Int {
        assert(digits >= 0 && digits <= 9, "writeDecimal: 0 ≤ digits ≤ 9")
        let sign = n < 0 ? 1 : 0
        if sign == 1 { p[0] = UInt8(ascii: "-") }
        guard digits > 0 else { return sign + writeWhole(n.magnitude, at: p + sign) }
        // A constant divisor per case: the compiler multiplies and shifts, where a divisor read
        // from a table took a hardware division (tens of cycles, one to four a hit).
        let m = n.magnitude
        let (whole, fraction): (UInt, UInt)
        switch digits {
        case 1: (whole, fraction) = m.quotientAndRemainder(dividingBy: 10)
        case 2: (whole, fraction) = m.quotientAndRemainder(dividingBy: 100)
        case 3: (whole, fraction) = m.quotientAndRemainder(dividingBy: 1_000)
        case 4: (whole, fraction) = m.quotientAndRemainder(dividingBy: 10_000)
        case 5: (whole, fraction) = m.quotientAndRemainder(dividingBy: 100_000)
        case 6: (whole, fraction) = m.quotientAndRemainder(dividingBy: 1_000_000)
        case 7: (whole, fraction) = m.quotientAndRemainder(dividingBy: 10_000_000)
        case 8: (whole, fraction) = m.quotientAndRemainder(dividingBy: 100_000_000)
        default: (whole, fraction) = m.quotientAndRemainder(dividingBy: 1_000_000_000)
        }
        var end = sign + writeWhole(whole, at: p + sign)
        guard fraction != 0 else { return end }
        p[end] = UInt8(ascii: ".")
        end += 1 + digits
        writeDigits(fraction, count: digits, endingAt: p + end)
        while p[end - 1] == UInt8(ascii: "0") { end -= 1 }  // the fraction is not zero: stops at a digit
        return end
    }

    /// Writes `m` in decimal at `p`; returns the number of digits (at least one).
    @inlinable @inline(__always)
    static func writeWhole(_ m: UInt, at p: UnsafeMutablePointer<UInt8>) -> Int {
        var length = 1
        var t = m
        while t >= 100 {
            t /= 100
            length += 2
        }
        if t >= 10 { length += 1 }
        writeDigits(m, count: length, endingAt: p + length)
        return length
    }

    /// Writes the last `count` decimal digits of `m` (zero-padded) just before `end`.
    @inlinable @inline(__always)
    static func writeDigits(_ m: UInt, count: Int, endingAt end: UnsafeMutablePointer<UInt8>) {
        let pairs = digitPairs.utf8Start
        var m = m, i = 0, left = count
        while left >= 2 {
            let q = m / 100
            let r = Int(truncatingIfNeeded: m &- q &* 100) &* 2
            i -= 2
            end[i] = pairs[r]
            end[i + 1] = pairs[r + 1]
            m = q
            left -= 2
        }
        if left == 1 { end[i - 1] = UInt8(truncatingIfNeeded: m % 10) &+ 0x30 }
    }

    /// "00", "01", … "99": the two digits of every number under 100, for ``writeDecimal(_:digits:at:)``.
    @usableFromInline static let digitPairs: StaticString =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

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
        // One reservation for `,"name":` (a response holds thousands of these).
        let comma = needsComma
        needsComma = false
        name.withUTF8Buffer { out.appendKey($0, comma: comma) }
    }

    /// A member name made ready once: its bytes with the comma before it and the colon after
    /// (`,"name":`), so that writing it is one fixed-size copy, with no branch on its length. A
    /// search answer writes some twenty of them per hit, hundreds per answer.
    public struct Key: Sendable {
        /// `,"name":`, then zeros: room to copy 32 bytes from offset 0 or 1.
        @usableFromInline var bytes: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)
        /// Bytes of `,"name":`.
        @usableFromInline let count: Int

        /// The longest name a key holds, in bytes.
        public static let maximumNameBytes = 28

        /// A key for `name`, a literal that needs no escaping, at most ``maximumNameBytes`` long.
        public init(_ name: StaticString) {
            let n = name.utf8CodeUnitCount
            precondition(n <= Self.maximumNameBytes, "a JSONWriter.Key holds at most \(Self.maximumNameBytes) bytes")
            count = n + 4
            withUnsafeMutableBytes(of: &bytes) { b in
                b[0] = UInt8(ascii: ",")
                b[1] = UInt8(ascii: "\"")
                name.withUTF8Buffer { for (i, c) in $0.enumerated() { b[2 + i] = c } }
                b[n + 2] = UInt8(ascii: "\"")
                b[n + 3] = UInt8(ascii: ":")
            }
        }
    }

    /// Writes a prepared member name (see ``Key``).
    @inlinable @inline(__always)
    public mutating func key(_ key: Key) {
        _ = member(key, room: 0)
        needsComma = false  // the value follows without a comma
    }

    /// Writes a prepared member name with room for `room` bytes of its value after it, and
    /// returns where the value goes: the caller writes it and calls `out.advance(by:)`. One
    /// capacity check for the member, where a key and a value written apart made one per piece
    /// (the members of a search hit are written here: some hundred per answer).
    @inlinable @inline(__always)
    mutating func member(_ key: Key, room: Int) -> UnsafeMutablePointer<UInt8> {
        let skip = needsComma ? 0 : 1
        let p = out.tail(reserving: 32 + room)
        // The 32 bytes from offset `skip` as four words, shifted in registers. Copied through
        // memory (`withUnsafeBytes(of:)` then a load at offset 1) the key went onto the stack
        // and was read back at once across its two halves: a store-forwarding stall on each
        // load, 27 % of the per-hit render's samples at a million cameras.
        let (a, b, c, d, e) = key.bytes
        let words: (UInt64, UInt64, UInt64, UInt64) = needsComma
            ? (a, b, c, d)
            : (a >> 8 | b << 56, b >> 8 | c << 56, c >> 8 | d << 56, d >> 8 | e << 56)
        needsComma = true
        let raw = UnsafeMutableRawPointer(p)
        raw.storeBytes(of: words.0, as: UInt64.self)
        raw.storeBytes(of: words.1, toByteOffset: 8, as: UInt64.self)
        raw.storeBytes(of: words.2, toByteOffset: 16, as: UInt64.self)
        raw.storeBytes(of: words.3, toByteOffset: 24, as: UInt64.self)
        out.advance(by: key.count - skip)
        return p + (key.count - skip)
    }

    /// `key: value` shorthands with a prepared member name (see ``Key``).
    public mutating func put(_ k: Key, _ v: String) { key(k); value(v) }
    @inlinable @inline(__always)
    public mutating func put(_ k: Key, _ v: Bool) {
        let p = member(k, room: 8)
        // "true" / "false" as one word (little-endian), stored whole: room was made for it.
        UnsafeMutableRawPointer(p).storeBytes(of: v ? 0x6575_7274 : 0x65_736C_6166 as UInt64, as: UInt64.self)
        out.advance(by: v ? 4 : 5)
    }
    public mutating func put(_ k: Key, _ v: Int) {
        let p = member(k, room: Self.maximumDecimalBytes)
        out.advance(by: Self.writeDecimal(v, digits: 0, at: p))
    }
    public mutating func put(_ k: Key, _ v: Double) {
        guard let f = Self.shortForm(v) else { key(k); value(v); return }
        let p = member(k, room: Self.maximumDecimalBytes)
        out.advance(by: Self.writeDecimal(f.n, digits: f.digits, at: p))
    }
    public mutating func put(_ k: Key, _ v: Double?) { if let v { put(k, v) } else { key(k); null() } }
    /// Transparent: inlined at every call, where `decimals` is a literal and the cases of the
    /// other place counts fold away (as `@inline(__always)` the optimiser kept it a call from
    /// `render`'s per-hit closure, ~240 instructions for a distance).
    @_transparent
    public mutating func put(_ k: Key, _ v: Double, decimals: Int) {
        guard let f = Self.roundedForm(v, decimals: decimals) else { key(k); value(v, decimals: decimals); return }
        let p = member(k, room: Self.maximumDecimalBytes)
        out.advance(by: Self.writeDecimal(f.n, digits: f.digits, at: p))
    }
    /// `key: "text"` from UTF-8 bytes, or `key: null` (as with a literal name).
    @inlinable @inline(__always)
    public mutating func put(_ k: Key, utf8 v: UnsafeBufferPointer<UInt8>?) {
        guard let v, let from = v.baseAddress, !Self.needsEscaping(v) else { key(k); value(utf8: v); return }
        quoted(k, from, count: v.count)
    }
    /// `key: "text"` for a literal that needs no escaping (as with a literal name).
    @inlinable @inline(__always)
    public mutating func put(_ k: Key, static text: StaticString) {
        guard text.hasPointerRepresentation else { key(k); value(static: text); return }
        quoted(k, text.utf8Start, count: text.utf8CodeUnitCount)
    }

    /// `key: "…"` with `count` bytes from `from` that need no escaping.
    @inlinable @inline(__always)
    mutating func quoted(_ k: Key, _ from: UnsafePointer<UInt8>, count n: Int) {
        let p = member(k, room: n + 2)
        p[0] = UInt8(ascii: "\"")
        Output.copy(UnsafeRawPointer(from), to: UnsafeMutableRawPointer(p + 1), count: n)
        p[n + 1] = UInt8(ascii: "\"")
        out.advance(by: n + 2)
    }
    /// `key: "…"` written in place by `fill` (as with a literal name).
    @discardableResult
    public mutating func put(_ k: Key, ascii count: Int, _ fill: (UnsafeMutableBufferPointer<UInt8>) -> Bool) -> Bool {
        let mark = out.count, comma = needsComma
        key(k)
        return quoted(count: count, fill, undo: mark, comma: comma)
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

    /// Writes a literal string value that needs no escaping (an enum's name in an answer):
    /// copied as it is, with no `String` in between.
    public mutating func value(static text: StaticString) {
        separator()
        out.append(UInt8(ascii: "\""))
        out.append(static: text)
        out.append(UInt8(ascii: "\""))
    }

    /// `key: "text"` from UTF-8 bytes (escaped as needed), or `key: null` for `nil`: writes text
    /// held outside a `String` (the index's packed table) without making one.
    public mutating func put(_ name: StaticString, utf8 v: UnsafeBufferPointer<UInt8>?) {
        key(static: name)
        value(utf8: v)
    }

    /// Writes a string value from UTF-8 bytes (escaped as needed), or `null` for `nil`.
    public mutating func value(utf8 v: UnsafeBufferPointer<UInt8>?) {
        separator()
        if let v { appendString(utf8: v) } else { out.append(static: "null") }
    }

    /// `key: "…"` with the `count` bytes between the quotes written in place by `fill` (text that
    /// needs no escaping, such as a timestamp; no `String` is made). When `fill` returns false
    /// nothing is written, not even the key, and this returns false.
    @discardableResult
    public mutating func put(_ name: StaticString, ascii count: Int, _ fill: (UnsafeMutableBufferPointer<UInt8>) -> Bool) -> Bool {
        let mark = out.count, comma = needsComma
        key(static: name)
        return quoted(count: count, fill, undo: mark, comma: comma)
    }

    /// The quoted value of `put(_:ascii:_:)`; when `fill` fails, takes the key back.
    private mutating func quoted(count: Int, _ fill: (UnsafeMutableBufferPointer<UInt8>) -> Bool, undo mark: Int, comma: Bool) -> Bool {
        guard out.appendQuoted(count: count, fill) else {
            out.truncate(to: mark)
            needsComma = comma
            return false
        }
        needsComma = true
        return true
    }

    /// Appends raw, already-encoded JSON (e.g. a cached object) as a value.
    public mutating func raw(_ json: [UInt8]) { separator(); out.append(contentsOf: json) }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Decimal digits of `i`, without making a `String`.
    private mutating func appendInt(_ i: Int) {
        appendDecimal(i, digits: 0)
    }

    private mutating func appendString(_ s: String) {
        var s = s
        s.withUTF8 { appendString(utf8: $0) }
    }

    /// Whether any byte of `u` is a control character, `"`, `\\` or DEL: eight bytes at a time.
    @inlinable @inline(__always)
    static func needsEscaping(_ u: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let p = u.baseAddress else { return false }
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        /// A byte's high bit is set where `x`'s byte is zero (exact for bytes under 0x80, and a
        /// byte of 0x80 or more never matches the patterns below).
        @inline(__always) func zeroBytes(_ x: UInt64) -> UInt64 { (x &- ones) & ~x & highs }
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= u.count {
            let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            // Bytes under 0x20: (w & 0xE0…) == 0 for ASCII bytes; DEL, quote, backslash by equality.
            let ascii = ~w & highs
            let control = zeroBytes(w & (0xE0 * ones)) & ascii
            let special = zeroBytes(w ^ (0x22 * ones)) | zeroBytes(w ^ (0x5C * ones)) | zeroBytes(w ^ (0x7F * ones))
            if (control | (special & ascii)) != 0 { return true }
            i += 8
        }
        while i < u.count {
            let b = p[i]
            if b < 0x20 || b == 0x22 || b == 0x5C || b == 0x7F { return true }
            i += 1
        }
        return false
    }

    private mutating func appendString(utf8 u: UnsafeBufferPointer<UInt8>) {
        out.append(UInt8(ascii: "\""))
        // Most strings need no escaping: copy them whole.
        if !Self.needsEscaping(u) {
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

/// The writer's byte buffer: one `malloc`ed block, grown by doubling, owned by one writer
/// (noncopyable, so no copy-on-write check per append), taken from and given back to the
/// thread's spare (``SpareBlock``) in `init` and `deinit` (the one place), unless
/// ``finish()`` hands it to a ``JSONBytes``.
/// Small appends (a comma, a quote, a member name) cost a capacity check and a store; an answer
/// of twenty hits makes about a thousand of them.
@usableFromInline
struct Output: ~Copyable {
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var count = 0
    @usableFromInline var capacity: Int

    /// A block of at least `capacity` bytes: the thread's spare block when it is big enough
    /// (see ``SpareBlock``), so that answering a request takes no `malloc` for its text.
    init(capacity: Int) {
        (base, self.capacity) = SpareBlock.take(max(16, capacity))
    }

    @inlinable deinit { SpareBlock.give(base, capacity: capacity) }

    var array: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    /// The block, handed to a ``JSONBytes`` (which gives it back in its `deinit`).
    consuming func finish() -> JSONBytes {
        let bytes = JSONBytes(base: base, count: count, capacity: capacity)
        discard self
        return bytes
    }

    /// Room for `n` more bytes.
    @inlinable @inline(__always) mutating func reserve(_ n: Int) {
        if count + n > capacity { grow(toAtLeast: count + n) }
    }

    @usableFromInline mutating func grow(toAtLeast needed: Int) {
        var c = capacity
        while c < needed { c *= 2 }
        guard let b = malloc(c)?.assumingMemoryBound(to: UInt8.self) else { fatalError("JSONWriter: out of memory for \(c) bytes") }
        b.update(from: base, count: count)
        free(base)
        base = b
        capacity = c
    }

    @inlinable @inline(__always) mutating func append(_ b: UInt8) {
        reserve(1)
        base[count] = b
        count += 1
    }

    /// Room for `n` more bytes, and where they go: the caller writes them, then calls
    /// ``advance(by:)`` with the number written (at most `n`).
    @inlinable @inline(__always) mutating func tail(reserving n: Int) -> UnsafeMutablePointer<UInt8> {
        reserve(n)
        return base + count
    }

    /// Counts `n` bytes written at ``tail(reserving:)``.
    @inlinable @inline(__always) mutating func advance(by n: Int) {
        count += n
    }

    @inline(__always) mutating func append(contentsOf u: UnsafeBufferPointer<UInt8>) {
        guard let src = u.baseAddress, u.count > 0 else { return }
        let n = u.count
        reserve(n)
        Self.copy(UnsafeRawPointer(src), to: UnsafeMutableRawPointer(base + count), count: n)
        count += n
    }

    /// Copies `n` bytes (the regions do not overlap).
    @inlinable @inline(__always) static func copy(_ from: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, count n: Int) {
        // Most appends are a few bytes: two overlapping word moves beat a call to memmove
        // (which the compiler makes of a byte loop).
        if n >= 8, n <= 16 {
            let head = from.loadUnaligned(as: UInt64.self)
            let tail = from.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
            dst.storeBytes(of: head, as: UInt64.self)
            dst.storeBytes(of: tail, toByteOffset: n - 8, as: UInt64.self)
        } else if n >= 4, n < 8 {
            let head = from.loadUnaligned(as: UInt32.self)
            let tail = from.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
            dst.storeBytes(of: head, as: UInt32.self)
            dst.storeBytes(of: tail, toByteOffset: n - 4, as: UInt32.self)
        } else if n < 4 {
            guard n > 0 else { return }
            dst.storeBytes(of: from.load(as: UInt8.self), as: UInt8.self)
            if n > 1 { dst.storeBytes(of: from.load(fromByteOffset: 1, as: UInt8.self), toByteOffset: 1, as: UInt8.self) }
            if n > 2 { dst.storeBytes(of: from.load(fromByteOffset: 2, as: UInt8.self), toByteOffset: 2, as: UInt8.self) }
        } else {
            dst.copyMemory(from: from, byteCount: n)
        }
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

    /// Appends `"name":`, after a comma if `comma`: one capacity check.
    @inline(__always) mutating func appendKey(_ name: UnsafeBufferPointer<UInt8>, comma: Bool) {
        reserve(name.count + 4)
        if comma { base[count] = UInt8(ascii: ","); count += 1 }
        base[count] = UInt8(ascii: "\"")
        count += 1
        append(contentsOf: name)
        base[count] = UInt8(ascii: "\"")
        base[count + 1] = UInt8(ascii: ":")
        count += 2
    }

    /// Appends `"`, `count` bytes written by `fill`, `"`; appends nothing if `fill` returns false.
    mutating func appendQuoted(count n: Int, _ fill: (UnsafeMutableBufferPointer<UInt8>) -> Bool) -> Bool {
        reserve(n + 2)
        guard fill(UnsafeMutableBufferPointer(start: base + count + 1, count: n)) else { return false }
        base[count] = UInt8(ascii: "\"")
        base[count + n + 1] = UInt8(ascii: "\"")
        count += n + 2
        return true
    }

    mutating func truncate(to mark: Int) {
        count = min(count, max(0, mark))
    }
}

/// A finished JSON text, in the block its writer wrote it into (``JSONWriter/finish()``): handed
/// over without a copy. The block is this object's alone and is released in `deinit`, the one
/// place: kept as the thread's spare block, or freed.
///
/// `@unchecked Sendable`: immutable after it is made, and the block is reachable only through it.
public final class JSONBytes: @unchecked Sendable {
    private let base: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    /// The number of bytes.
    public let count: Int

    init(base: UnsafeMutablePointer<UInt8>, count: Int, capacity: Int) {
        self.base = base
        self.count = count
        self.capacity = capacity
    }

    deinit { SpareBlock.give(base, capacity: capacity) }

    /// Reads the bytes in place.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// The bytes, copied into an array.
    public var array: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }
}

/// One spare output block per thread, for the next writer on that thread.
///
/// An answer's text (a few KiB) is bigger than what glibc serves from its per-thread cache
/// (1 KiB), so each one took the malloc arena's lock to allocate and again to free. camregd keeps
/// one arena for all its threads (memory), and its event loops contended for that lock: `strace`
/// counted 0.3 `futex` calls a request at a million cameras, 4 connections. A writer now takes
/// its thread's spare block (``take(_:)``) and gives its block back when it is done
/// (``give(_:capacity:)``): in steady state an event loop answers without allocating its text.
/// A block is kept up to 64 KiB; the spare of a thread that ends is freed by the key's destructor.
/// While a block is a spare, its first eight bytes hold its capacity.
@usableFromInline
enum SpareBlock {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { block in free(block) }
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return key
    }()

    /// A block of at least `capacity` bytes and its capacity: the thread's spare when it is big
    /// enough, else a new one (a spare too small is freed).
    @usableFromInline
    static func take(_ capacity: Int) -> (UnsafeMutablePointer<UInt8>, Int) {
        if let spare = pthread_getspecific(key) {
            pthread_setspecific(key, nil)
            let kept = spare.load(as: Int.self)
            if kept >= capacity { return (spare.assumingMemoryBound(to: UInt8.self), kept) }
            free(spare)
        }
        guard let block = malloc(capacity) else { fatalError("JSONWriter: out of memory for \(capacity) bytes") }
        return (block.assumingMemoryBound(to: UInt8.self), capacity)
    }

    /// Keeps `block` as the thread's spare when it has none and the block is at most 64 KiB;
    /// frees it otherwise.
    @usableFromInline
    static func give(_ block: UnsafeMutablePointer<UInt8>, capacity: Int) {
        guard capacity <= 64 * 1024, pthread_getspecific(key) == nil else { return free(block) }
        UnsafeMutableRawPointer(block).storeBytes(of: capacity, as: Int.self)
        pthread_setspecific(key, block)
    }
}
