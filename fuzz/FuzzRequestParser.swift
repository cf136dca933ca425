// libFuzzer entry point for the control protocol's request parser (ControlProtocol is pure
// Swift without package dependencies, so it compiles alone with -sanitize=fuzzer). See fuzz/README.md.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // Every line of the input, as the server would frame it.
    for line in bytes.split(separator: 10, omittingEmptySubsequences: false) {
        do {
            let request = try RequestParser.parseRequest(line)
            // What the server does next with a parsed request must not trap either.
            _ = request.spec.synopsis
            _ = request.spec.access.allows(.analyst)
        } catch {
            // A structured error must always be encodable as one JSON line.
            let json = error.json
            precondition(!json.utf8.contains(10), "an error line holds a newline")
            precondition(json.hasPrefix("{\"ok\":false"), "not an error object")
        }
    }
    // Quoting round-trips any string the parser accepts as a token.
    if let text = String(validating: bytes, as: UTF8.self), !text.unicodeScalars.contains("\r") {
        let quoted = Tokenizer.quote(text)
        precondition(!quoted.unicodeScalars.contains("\n"), "a quoted value holds a line break")
        if let t = try? Tokenizer.tokenize("X " + quoted) {
            precondition(t.words.count == 2 && t.words[1] == text, "quote/tokenize round trip failed for \(text.debugDescription)")
        }
    }
    return 0
}
