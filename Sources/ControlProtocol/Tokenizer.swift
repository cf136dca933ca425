/// One request line split into words: positional arguments and `key=value` options.
///
/// Syntax: tokens are separated by spaces or tabs. A token may be double-quoted (`"…"`, with
/// `\"` and `\\` escapes) to hold spaces; an option's value may be quoted too (`note="a b"`).
/// A token is an option when it starts with a name (`[A-Za-z_][A-Za-z0-9_-]*`) followed by `=`.
public struct TokenizedLine: Equatable, Sendable {
    /// Positional words, in order (command words included).
    public var words: [String]
    /// Options in order as written (names lower-cased).
    public var options: [(name: String, value: String)]

    public static func == (a: TokenizedLine, b: TokenizedLine) -> Bool {
        a.words == b.words && a.options.map(\.name) == b.options.map(\.name)
            && a.options.map(\.value) == b.options.map(\.value)
    }
}

/// Splits request lines; pure and allocation-bounded by the line length.
public enum Tokenizer {
    /// Tokenizes raw bytes of one line (without its newline; a trailing `\r` is dropped).
    ///
    /// Works on the bytes: words and values are cut out as byte ranges and become `String`s in
    /// one step (short ones need no allocation), which matters on the query path. Every byte
    /// that means something here (space, tab, `"`, `=`, `\`, control characters) is ASCII, and
    /// UTF-8 never uses ASCII bytes inside a multi-byte character, so cutting at them is safe.
    public static func tokenize(_ bytes: some Collection<UInt8>) throws(ProtocolError) -> TokenizedLine {
        let result: Result<TokenizedLine, ProtocolError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(ProtocolError) in try tokenize(buffer: buffer) }
        }
        if let result { return try result.get() }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { buffer throws(ProtocolError) in try tokenize(buffer: buffer) }
    }

    /// Tokenizes one line of text.
    public static func tokenize(_ text: String) throws(ProtocolError) -> TokenizedLine {
        try tokenize(Array(text.utf8))
    }

    private static func tokenize(buffer whole: UnsafeBufferPointer<UInt8>) throws(ProtocolError) -> TokenizedLine {
        var n = whole.count
        if n > 0 && whole[n - 1] == 0x0D { n -= 1 }
        let b = UnsafeBufferPointer(rebasing: whole[0..<n])
        var ascii = true
        for c in b {
            if (c < 0x20 && c != 0x09) || c == 0x7F {
                throw ProtocolError(.controlCharacter,
                                    "the request holds a control character (U+\(String(c, radix: 16, uppercase: true)))")
            }
            if c >= 0x80 { ascii = false }
        }
        if !ascii, String(validating: b, as: UTF8.self) == nil {
            throw ProtocolError(.invalidUTF8, "the request is not valid UTF-8")
        }
        let space: UInt8 = 0x20, tab: UInt8 = 0x09, quote: UInt8 = 0x22, equals: UInt8 = 0x3D, backslash: UInt8 = 0x5C
        func isSpace(_ c: UInt8) -> Bool { c == space || c == tab }
        func text(_ from: Int, _ to: Int) -> String { String(decoding: UnsafeBufferPointer(rebasing: b[from..<to]), as: UTF8.self) }
        var words: [String] = []
        var options: [(name: String, value: String)] = []
        var i = 0
        func readQuoted() throws(ProtocolError) -> String {
            // b[i] == quote
            i += 1
            var out: [UInt8] = []
            while i < n {
                let c = b[i]
                if c == backslash {
                    guard i + 1 < n else { break }
                    let e = b[i + 1]
                    switch e {
                    case quote, backslash: out.append(e)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    default:
                        // The escaped character, whole (it may be more than one byte).
                        var end = i + 2
                        while end < n && b[end] & 0xC0 == 0x80 { end += 1 }
                        throw ProtocolError(.badQuoting, "unknown escape \\\(text(i + 1, end)) in a quoted value")
                    }
                    i += 2
                } else if c == quote {
                    i += 1
                    if i < n && !isSpace(b[i]) {
                        throw ProtocolError(.badQuoting, "a closing quote must be followed by a space or the end of the line")
                    }
                    return String(decoding: out, as: UTF8.self)
                } else {
                    out.append(c)
                    i += 1
                }
            }
            throw ProtocolError(.badQuoting, "a quoted value is not closed")
        }
        while i < n {
            while i < n && isSpace(b[i]) { i += 1 }
            if i >= n { break }
            if b[i] == quote {
                words.append(try readQuoted())
                continue
            }
            let start = i
            while i < n && !isSpace(b[i]) && b[i] != equals && b[i] != quote { i += 1 }
            if i < n && b[i] == equals && isOptionName(UnsafeBufferPointer(rebasing: b[start..<i])) {
                // Option names are ASCII: lower-case them byte by byte.
                let name = String(decoding: b[start..<i].map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
                i += 1
                let value: String
                if i < n && b[i] == quote {
                    value = try readQuoted()
                } else {
                    let vs = i
                    while i < n && !isSpace(b[i]) {
                        if b[i] == quote { throw ProtocolError(.badQuoting, "a quote inside an unquoted value of \(text(start, vs - 1))") }
                        i += 1
                    }
                    value = text(vs, i)
                }
                options.append((name, value))
            } else {
                while i < n && !isSpace(b[i]) {
                    if b[i] == quote { throw ProtocolError(.badQuoting, "a quote inside an unquoted word") }
                    i += 1
                }
                words.append(text(start, i))
            }
        }
        return TokenizedLine(words: words, options: options)
    }

    /// `[A-Za-z_][A-Za-z0-9_-]*`.
    static func isOptionName(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let first = s.first, (first | 0x20 >= 0x61 && first | 0x20 <= 0x7A) || first == 0x5F else { return false }
        return s.allSatisfy { c in (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D }
    }
}

extension Tokenizer {
    /// Quotes a value for a request line when it needs it (spaces, quotes, `=`, backslashes, line
    /// breaks, or empty). A line break becomes `\n`, so a value can never end the request line.
    public static func quote(_ value: String) -> String {
        let needs = value.isEmpty || value.unicodeScalars.contains {
            $0 == " " || $0 == "\t" || $0 == "\"" || $0 == "\\" || $0 == "=" || $0 == "\n" || $0 == "\r"
        }
        guard needs else { return value }
        var out = "\""
        for s in value.unicodeScalars {
            switch s {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(s)
            }
        }
        return out + "\""
    }
}
