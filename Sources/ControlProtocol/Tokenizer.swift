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
    public static func tokenize(_ bytes: some Collection<UInt8>) throws(ProtocolError) -> TokenizedLine {
        var raw = Array(bytes)
        if raw.last == 0x0D { raw.removeLast() }
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw ProtocolError(.invalidUTF8, "the request is not valid UTF-8")
        }
        return try tokenize(text)
    }

    /// Tokenizes one line of text.
    public static func tokenize(_ text: String) throws(ProtocolError) -> TokenizedLine {
        var words: [String] = []
        var options: [(name: String, value: String)] = []
        var scalars = Array(text.unicodeScalars)
        if scalars.last == "\r" { scalars.removeLast() }
        for s in scalars where (s.value < 0x20 && s != "\t") || s.value == 0x7F {
            throw ProtocolError(.controlCharacter,
                                "the request holds a control character (U+\(String(s.value, radix: 16, uppercase: true)))")
        }
        var i = 0
        let n = scalars.count
        func isSpace(_ s: Unicode.Scalar) -> Bool { s == " " || s == "\t" }
        func readQuoted() throws(ProtocolError) -> String {
            // scalars[i] == "\""
            i += 1
            var out = String.UnicodeScalarView()
            while i < n {
                let s = scalars[i]
                if s == "\\" {
                    guard i + 1 < n else { break }
                    let e = scalars[i + 1]
                    switch e {
                    case "\"", "\\": out.append(e)
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    default: throw ProtocolError(.badQuoting, "unknown escape \\\(e) in a quoted value")
                    }
                    i += 2
                } else if s == "\"" {
                    i += 1
                    if i < n && !isSpace(scalars[i]) {
                        throw ProtocolError(.badQuoting, "a closing quote must be followed by a space or the end of the line")
                    }
                    return String(out)
                } else {
                    out.append(s)
                    i += 1
                }
            }
            throw ProtocolError(.badQuoting, "a quoted value is not closed")
        }
        while i < n {
            while i < n && isSpace(scalars[i]) { i += 1 }
            if i >= n { break }
            if scalars[i] == "\"" {
                words.append(try readQuoted())
                continue
            }
            let start = i
            while i < n && !isSpace(scalars[i]) && scalars[i] != "=" && scalars[i] != "\"" { i += 1 }
            let head = String(String.UnicodeScalarView(scalars[start..<i]))
            if i < n && scalars[i] == "=" && isOptionName(head) {
                i += 1
                let value: String
                if i < n && scalars[i] == "\"" {
                    value = try readQuoted()
                } else {
                    let vs = i
                    while i < n && !isSpace(scalars[i]) {
                        if scalars[i] == "\"" { throw ProtocolError(.badQuoting, "a quote inside an unquoted value of \(head)") }
                        i += 1
                    }
                    value = String(String.UnicodeScalarView(scalars[vs..<i]))
                }
                options.append((head.lowercased(), value))
            } else {
                while i < n && !isSpace(scalars[i]) {
                    if scalars[i] == "\"" { throw ProtocolError(.badQuoting, "a quote inside an unquoted word") }
                    i += 1
                }
                words.append(String(String.UnicodeScalarView(scalars[start..<i])))
            }
        }
        return TokenizedLine(words: words, options: options)
    }

    static func isOptionName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first.isASCII,
              first.properties.isAlphabetic || first == "_" else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-") }
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
