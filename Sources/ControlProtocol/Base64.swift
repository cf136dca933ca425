/// Standard base64 (RFC 4648: `A–Z a–z 0–9 + /`, `=` padding, no line breaks), the encoding of
/// upload chunks (`IMPORT DATA data=…`), without Foundation: a client encodes straight into the
/// request line it builds, and the daemon decodes a chunk's text straight into bytes. At a
/// million cameras the upload is 343 MB of base64, and Foundation's `Data(base64Encoded:)` /
/// `base64EncodedString()` with their `String` and `Data` copies took seconds of CPU on both
/// sides of the socket, on the two cores PostgreSQL needs for the import.
///
/// A text decodes when its length is a multiple of 4, every character is in the alphabet, and
/// `=` appears only as the last one or two characters — what `Data(base64Encoded:)` accepts
/// (a test compares the two), except surplus padding, which Foundation reads (`QQ===` as `A`,
/// `====` as a zero byte) and this refuses.
public enum Base64 {
    /// The 64 characters, by value.
    @usableFromInline static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Each byte's value in the alphabet; 0xFF for a byte outside it (`=` included).
    @usableFromInline static let values: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// The length of the encoding of `count` bytes.
    public static func encodedCount(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Appends the encoding of `bytes` to `out`.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let start = out.count
        let total = encodedCount(bytes.count)
        out.append(contentsOf: repeatElement(0, count: total))
        alphabet.withUnsafeBufferPointer { a in
            out.withUnsafeMutableBufferPointer { o in
                var w = start
                var i = 0
                let n = bytes.count
                while i + 3 <= n {
                    let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                    o[w] = a[Int(v >> 18)]
                    o[w + 1] = a[Int(v >> 12 & 63)]
                    o[w + 2] = a[Int(v >> 6 & 63)]
                    o[w + 3] = a[Int(v & 63)]
                    i += 3
                    w += 4
                }
                if i < n {
                    let second = i + 1 < n
                    let v = UInt32(bytes[i]) << 16 | (second ? UInt32(bytes[i + 1]) << 8 : 0)
                    o[w] = a[Int(v >> 18)]
                    o[w + 1] = a[Int(v >> 12 & 63)]
                    o[w + 2] = second ? a[Int(v >> 6 & 63)] : UInt8(ascii: "=")
                    o[w + 3] = UInt8(ascii: "=")
                }
            }
        }
    }

    /// The encoding of `bytes`.
    public static func encoded<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(encodedCount(bytes.count))
        let done: Void? = bytes.withContiguousStorageIfAvailable { encode(UnsafeRawBufferPointer($0), into: &out) }
        if done == nil { Array(bytes).withUnsafeBytes { encode($0, into: &out) } }
        return out
    }

    /// The bytes `text` encodes, or nil when it is not base64 (see the type's documentation).
    public static func decode(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let n = text.count
        guard n % 4 == 0 else { return nil }
        if n == 0 { return [] }
        let eq = UInt8(ascii: "=")
        let padding = text[n - 1] == eq ? (text[n - 2] == eq ? 2 : 1) : 0
        let count = n / 4 * 3 - padding
        return values.withUnsafeBufferPointer { t -> [UInt8]? in
            var ok = true
            let out = [UInt8](unsafeUninitializedCapacity: count) { o, initialized in
                var r = 0, w = 0
                // Whole groups; the last group (which may be padded) after the loop.
                while r + 4 < n {
                    let a = t[Int(text[r])], b = t[Int(text[r + 1])], c = t[Int(text[r + 2])], d = t[Int(text[r + 3])]
                    if (a | b | c | d) & 0xC0 != 0 { ok = false; break }
                    let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    o[w] = UInt8(truncatingIfNeeded: v >> 16)
                    o[w + 1] = UInt8(truncatingIfNeeded: v >> 8)
                    o[w + 2] = UInt8(truncatingIfNeeded: v)
                    r += 4
                    w += 3
                }
                if ok {
                    let a = t[Int(text[r])], b = t[Int(text[r + 1])]
                    let c = padding == 2 ? 0 : t[Int(text[r + 2])]
                    let d = padding >= 1 ? 0 : t[Int(text[r + 3])]
                    if (a | b | c | d) & 0xC0 != 0 {
                        ok = false
                    } else {
                        let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                        o[w] = UInt8(truncatingIfNeeded: v >> 16)
                        if padding < 2 { o[w + 1] = UInt8(truncatingIfNeeded: v >> 8) }
                        if padding < 1 { o[w + 2] = UInt8(truncatingIfNeeded: v) }
                    }
                }
                initialized = ok ? count : 0
            }
            return ok ? out : nil
        }
    }

    /// The bytes `text` encodes, or nil when it is not base64.
    public static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { decode($0) }
    }
}
