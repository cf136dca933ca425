@testable import ControlServer
import NIOCore
import Testing

/// How a connection cuts its reads into request lines (`LineReader`).
@Suite("Connection line reader")
struct LineReaderTests {
    /// A client that never pauses: 64 KiB reads of 60,000-byte lines, so almost every read ends
    /// inside a line. Every line comes out whole and in order — also the ones still held
    /// (queued) when later reads arrive — and the buffer kept for the partial line stays about
    /// one read and one line long instead of growing with the stream (12 MB here).
    @Test func aStreamOfLongLinesKeepsABoundedBuffer() {
        let lineCount = 200, lineLength = 60_000, readSize = 65_536
        var stream: [UInt8] = []
        stream.reserveCapacity(lineCount * (lineLength + 1))
        for n in 0..<lineCount {
            stream += [UInt8](repeating: UInt8(ascii: "a") + UInt8(n % 26), count: lineLength)
            stream.append(UInt8(ascii: "\n"))
        }
        var reader = LineReader()
        var kept: [ByteBuffer] = []  // as a busy connection queues them
        var largest = 0
        for start in stride(from: 0, to: stream.count, by: readSize) {
            var input = ByteBuffer(bytes: stream[start..<min(stream.count, start + readSize)])
            reader.read(&input, more: { true }) { kept.append($0) }
            largest = max(largest, reader.heldCapacity)
        }
        #expect(kept.count == lineCount)
        #expect(reader.partialBytes == 0)
        for (n, line) in kept.enumerated() {
            let mark = UInt8(ascii: "a") + UInt8(n % 26)
            let view = line.readableBytesView
            #expect(view.count == lineLength && [view.first, view[view.startIndex + lineLength / 2], view.last] == [mark, mark, mark],
                    "line \(n)")
        }
        #expect(largest <= 4 * readSize, "the partial line's buffer grew to \(largest) bytes")
    }

    /// Lines split anywhere (CRLF too, a line end as the first byte of a read), and `more`
    /// stops the cutting: the rest is cut by the next read.
    @Test func linesSplitAnywhere() {
        let text = Array("PING\r\nNEAR 11.1 106.6 radius=200\nSTATS\n\nHELP\n".utf8)
        for cut in 1..<text.count {
            var reader = LineReader()
            var got: [String] = []
            var a = ByteBuffer(bytes: text[..<cut]), b = ByteBuffer(bytes: text[cut...])
            reader.read(&a, more: { true }) { got.append(String(buffer: $0)) }
            reader.read(&b, more: { true }) { got.append(String(buffer: $0)) }
            #expect(got == ["PING", "NEAR 11.1 106.6 radius=200", "STATS", "", "HELP"], "cut at \(cut)")
        }
        var reader = LineReader()
        var got: [String] = []
        var all = ByteBuffer(bytes: text)
        reader.read(&all, more: { got.count < 2 }) { got.append(String(buffer: $0)) }
        #expect(got == ["PING", "NEAR 11.1 106.6 radius=200"])
        var none = ByteBuffer()
        reader.read(&none, more: { true }) { got.append(String(buffer: $0)) }
        #expect(got == ["PING", "NEAR 11.1 106.6 radius=200", "STATS", "", "HELP"])
    }
}
