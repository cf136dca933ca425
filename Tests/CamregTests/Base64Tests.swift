import ControlProtocol
import Foundation
import Testing

/// The upload chunks' base64 (`Base64`) against Foundation's: the same text for every length
/// and byte, and the same texts accepted and refused (but surplus `=`, which Foundation takes).
@Suite("Base64 of upload chunks")
struct Base64Tests {
    @Test func encodesAndDecodesLikeFoundation() {
        var rng = SystemRandomNumberGenerator()
        for length in Array(0..<70) + [44_999, 45_000, 45_001] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let ours = Base64.encoded(bytes)
            let theirs = Data(bytes).base64EncodedString()
            #expect(String(decoding: ours, as: UTF8.self) == theirs, "length \(length)")
            #expect(Base64.decode(theirs) == bytes, "length \(length)")
            var appended = Array("IMPORT DATA data=".utf8)
            bytes.withUnsafeBytes { Base64.encode($0, into: &appended) }
            #expect(appended == Array("IMPORT DATA data=".utf8) + ours)
        }
        let all = (0...255).map(UInt8.init)
        #expect(Base64.decode(String(decoding: Base64.encoded(all), as: UTF8.self)) == all)
    }

    @Test func refusesWhatFoundationRefuses() {
        let texts = ["", "QQ==", "QUI=", "QUJD", "QQ", "QQ=", "Q===", "QUJ", "QUJDR", "Q=Q=", "=QQQ",
                     "QU JD", "QUJD\n", "QUJD QUJD", "QUJ-", "QUJ_", "QUJ!", "QUJDQQ==QUJD", "QUJDQUJD", "QR==", "QUK=",
                     "ÀÀÀÀ", "QUJDQ===", "AAAA", "////", "++++"]
        for text in texts {
            let ours = Base64.decode(text)
            let theirs = Data(base64Encoded: text).map(Array.init)
            #expect(ours == theirs, "\(text.debugDescription): ours \(String(describing: ours)), Foundation's \(String(describing: theirs))")
        }
        // Surplus padding: Foundation reads "QQ===" as "A" and "====" as a zero byte; refused here.
        for text in ["QQ===", "====", "QUJD===="] {
            #expect(Base64.decode(text) == nil, "\(text)")
            #expect(Data(base64Encoded: text) != nil, "Foundation accepts \(text)")
        }
    }
}
