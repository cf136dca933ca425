import NIOCore
import NIOExtras

/// Cuts a connection's request lines out of the bytes it reads, keeping the partial line at the
/// end of a read for the next one.
///
/// The partial line is kept in the read's own buffer, and the next read is appended to it. A
/// client that never pauses (a pipelined stream of `IMPORT DATA` lines, each ~60 KB, held back
/// by the daemon) leaves a partial line after almost every read, so that buffer would never be
/// let go: without compaction it grew with everything the client sent (a whole 343 MB upload
/// of base64 lines, copied at each doubling). Once the lines cut from its front take more room
/// than the partial line left, the partial line is moved to the front (each byte is moved at
/// most once more on average), so the buffer stays about one read and one line long.
struct LineReader {
    private var unread: ByteBuffer?
    private let decoder = LineBasedFrameDecoder()

    /// Bytes of a partial line held (0 when none).
    var partialBytes: Int { unread?.readableBytes ?? 0 }

    /// The capacity of the buffer held for the partial line (0 when none).
    var heldCapacity: Int { unread?.capacity ?? 0 }

    /// Cuts the whole lines of everything read so far plus `input`, handing each (without its
    /// line end) to `line` as long as `more()` says so; a partial line is kept.
    mutating func read(_ input: inout ByteBuffer, more: () -> Bool, line: (ByteBuffer) -> Void) {
        // Lines are cut from the bytes left over from the last read, if any, else from this
        // read's buffer itself (the decoder resumes its scan where it stopped).
        if unread != nil {
            unread!.writeBuffer(&input)
            cut(&unread!, more: more, line: line)
            if unread!.readableBytes == 0 {
                unread = nil
            } else if unread!.readerIndex >= max(4096, unread!.readableBytes) {
                unread!.discardReadBytes()
            }
        } else {
            cut(&input, more: more, line: line)
            if input.readableBytes > 0 { unread = input }
        }
    }

    /// Drops the partial line.
    mutating func drop() {
        unread = nil
    }

    private func cut(_ buffer: inout ByteBuffer, more: () -> Bool, line: (ByteBuffer) -> Void) {
        // `decode(buffer:)` only throws for its own reasons; LineBasedFrameDecoder has none.
        while more(), let l = try? decoder.decode(buffer: &buffer) {
            line(l)
        }
    }
}
