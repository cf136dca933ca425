import Foundation

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A blocking Unix-socket stream with a read buffer: lines, exact byte counts, whole writes.
final class UnixStream {
    let fd: Int32
    private var buf = [UInt8](repeating: 0, count: 1 << 16)
    private var start = 0, end = 0

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket(): \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { close(fd); throw BenchError("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
            p[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let e = String(cString: strerror(errno)); close(fd)
            throw BenchError("connect(\(path)): \(e)")
        }
    }

    deinit { close(fd) }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = Glibc.write(fd, p.baseAddress! + off, p.count - off)
                if n < 0 { if errno == EINTR { continue }; throw BenchError("write: \(String(cString: strerror(errno)))") }
                off += n
            }
        }
    }

    /// Reads more bytes into the buffer (compacting or growing it first).
    private func fill() throws {
        if start > 0 && start == end { start = 0; end = 0 }
        if end == buf.count {
            if start > 0 {
                buf.withUnsafeMutableBufferPointer { b in
                    _ = memmove(b.baseAddress!, b.baseAddress! + start, end - start)
                }
                end -= start; start = 0
            } else {
                buf.append(contentsOf: [UInt8](repeating: 0, count: buf.count))
            }
        }
        let n = buf.withUnsafeMutableBufferPointer { b in Glibc.read(fd, b.baseAddress! + end, b.count - end) }
        if n < 0 { if errno == EINTR { return }; throw BenchError("read: \(String(cString: strerror(errno)))") }
        if n == 0 { throw BenchError("connection closed by the server") }
        end += n
    }

    /// Calls `body` with the next line (without `\n`; a `\r` before it is kept) and consumes it.
    func withLine<T>(_ body: (UnsafeBufferPointer<UInt8>) throws -> T) throws -> T {
        var scanned = 0   // bytes after `start` already searched (fill() may move `start`)
        while true {
            let from = start + scanned
            let nl: Int? = buf.withUnsafeBufferPointer { b in
                guard from < end, let p = memchr(b.baseAddress! + from, 0x0A, end - from) else { return nil }
                return UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self) - b.baseAddress!
            }
            if let nl {
                defer { start = nl + 1 }
                return try buf.withUnsafeBufferPointer { b in try body(UnsafeBufferPointer(rebasing: b[start..<nl])) }
            }
            scanned = end - start
            try fill()
        }
    }

    /// Calls `body` with exactly `n` bytes and consumes them.
    func withBytes<T>(_ n: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> T) throws -> T {
        while end - start < n { try fill() }
        defer { start += n }
        return try buf.withUnsafeBufferPointer { b in try body(UnsafeBufferPointer(rebasing: b[start..<start + n])) }
    }
}

/// Order-independent digest of an id set: the wrapping sum of a mixed FNV-1a per id.
struct IDSetDigest: Equatable, Sendable {
    var count = 0
    var sum: UInt64 = 0
    mutating func add<C: Collection>(_ id: C) where C.Element == UInt8 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in id { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        h = (h ^ (h >> 31)) &* 0x94D0_49BB_1331_11EB
        sum &+= h ^ (h >> 29)
        count += 1
    }
}
