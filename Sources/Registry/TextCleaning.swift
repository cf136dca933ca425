import Foundation

/// Trimming and NFC normalisation of text fields without Foundation's cost where nothing has
/// to change: imports clean every text field of every row, and most fields are already trimmed
/// and in NFC. The answers are exactly Foundation's (`trimmingCharacters(in:)` with
/// `.whitespaces` / `.whitespacesAndNewlines`, `precomposedStringWithCanonicalMapping`); the fast
/// paths only skip the call when it provably returns its input.
enum TextCleaning {
    /// A scalar no whitespace set of Foundation holds: printable ASCII other than space, and
    /// letters, numbers, punctuation and symbols (Foundation's sets also hold some format
    /// characters, such as U+200B, so only these categories are taken as certain).
    static func isSurelyNotSpace(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x80 { return s.value > 0x20 && s.value < 0x7F }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .decimalNumber, .letterNumber, .otherNumber,
             .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation,
             .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            return true
        default:
            return false
        }
    }

    /// `s.trimmingCharacters(in: newlines ? .whitespacesAndNewlines : .whitespaces)`.
    static func trimmed(_ s: String, newlines: Bool = true) -> String {
        // Most fields start and end with printable ASCII: decided from two bytes.
        let utf8 = s.utf8
        if let a = utf8.first, let z = utf8.last, a > 0x20, a < 0x7F, z > 0x20, z < 0x7F { return s }
        guard let first = s.unicodeScalars.first, let last = s.unicodeScalars.last else { return s }
        if isSurelyNotSpace(first) && isSurelyNotSpace(last) { return s }
        return s.trimmingCharacters(in: newlines ? .whitespacesAndNewlines : .whitespaces)
    }

    /// `s.trimmingCharacters(in: .whitespaces).isEmpty`.
    static func isBlank(_ s: String) -> Bool {
        if s.unicodeScalars.contains(where: isSurelyNotSpace) { return false }
        return s.trimmingCharacters(in: .whitespaces).isEmpty
    }

    /// `s.precomposedStringWithCanonicalMapping` (NFC). Text made only of scalars below U+0300
    /// (ASCII, Latin-1, Latin Extended-A/B, IPA, spacing modifiers) and of Latin Extended
    /// Additional (U+1E00–U+1EFF, the precomposed Vietnamese letters) is already NFC: every one
    /// of them has NFC_Quick_Check = Yes and none is a combining mark, so nothing can compose.
    static func nfc(_ s: String) -> String {
        let stable = s.utf8.withContiguousStorageIfAvailable(isStable)
            ?? s.unicodeScalars.allSatisfy { $0.value < 0x300 || (0x1E00...0x1EFF).contains($0.value) }
        return stable ? s : s.precomposedStringWithCanonicalMapping
    }

    /// Whether valid UTF-8 holds only scalars below U+0300 (one byte, or two with a lead byte
    /// C2–CB) and from U+1E00–U+1EFF (E1 followed by B8–BB): ``nfc(_:)``'s test on the bytes.
    static func isStable(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        while i < b.count {
            let c = b[i]
            if c < 0x80 { i += 1 }
            else if c >= 0xC2 && c <= 0xCB { i += 2 }
            else if c == 0xE1, i + 1 < b.count, b[i + 1] >= 0xB8, b[i + 1] <= 0xBB { i += 3 }
            else { return false }
        }
        return true
    }
}
