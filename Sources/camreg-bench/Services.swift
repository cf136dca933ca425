import Foundation
import Postgres
import RegistryStore

/// Everything the bench started, stopped in reverse order exactly once: at the end, on an
/// error, or on SIGINT/SIGTERM.
final class Cleanup: @unchecked Sendable {
    static let shared = Cleanup()
    private let lock = NSLock()
    private var actions: [(String, () -> Void)] = []
    private var signalSources: [DispatchSourceSignal] = []

    func add(_ name: String, _ action: @escaping () -> Void) {
        lock.lock(); actions.append((name, action)); lock.unlock()
    }

    func runAll() {
        lock.lock()
        let list = actions.reversed()
        actions.removeAll()
        lock.unlock()
        for (name, action) in list {
            FileHandle.standardError.write("cleanup: \(name)\n".data(using: .utf8)!)
            action()
        }
    }

    func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in
                runAll()
                exit(128 + sig)
            }
            source.resume()
            signalSources.append(source)
        }
    }
}

/// Stops a child: SIGTERM, then SIGKILL after `timeout` seconds.
func stopChild(_ child: ChildProcess, timeout: Double = 15) {
    guard child.isRunning else { return }
    child.signal(SIGTERM)
    let deadline = monotonicNanos() + UInt64(timeout * 1e9)
    while child.isRunning && monotonicNanos() < deadline { usleep(10_000) }
    if child.isRunning { child.signal(SIGKILL); child.wait() }
}

/// VmRSS of a process in bytes.
func residentBytes(pid: pid_t) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
        return kb.map { $0 * 1024 }
    }
    return nil
}

/// The largest resident mappings of a process (from `/proc/<pid>/smaps`): name (or address
/// range for anonymous memory), resident KiB and the transparent-huge-page part of it.
func residentMappings(pid: pid_t, top: Int = 8) -> [(name: String, rssKiB: Int, hugeKiB: Int)] {
    // Read to the end with read(2): /proc files report a size of 0, and reading by the size
    // they report stops early.
    let fd = open("/proc/\(pid)/smaps", O_RDONLY)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    let text = String(decoding: bytes, as: UTF8.self)
    var out: [(name: String, rssKiB: Int, hugeKiB: Int)] = []
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard let first = fields.first else { continue }
        if first.contains("-"), !first.hasSuffix(":") {
            out.append((fields.count > 5 ? String(fields[5...].joined(separator: " ")) : "[anon \(first)]", 0, 0))
        } else if first == "Rss:", fields.count > 1, !out.isEmpty {
            out[out.count - 1].rssKiB = Int(fields[1]) ?? 0
        } else if first == "AnonHugePages:", fields.count > 1, !out.isEmpty {
            out[out.count - 1].hugeKiB = Int(fields[1]) ?? 0
        }
    }
    return Array(out.sorted { $0.rssKiB > $1.rssKiB }.prefix(top))
}

/// Finds an executable: next to this program first, then on PATH.
func findExecutable(_ name: String) -> String? {
    let fm = FileManager.default
    let selfDir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    if fm.isExecutableFile(atPath: selfDir + "/" + name) { return selfDir + "/" + name }
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") where fm.isExecutableFile(atPath: "\(dir)/\(name)") {
        return "\(dir)/\(name)"
    }
    return nil
}

/// Connects and pings until the server answers, or `timeout` passes; returns the seconds since `t0`.
func waitUntilAnswering(since t0: UInt64, timeout: Double, child: ChildProcess, log: String, _ ping: () throws -> Bool) throws -> Double {
    let deadline = t0 + UInt64(timeout * 1e9)
    while true {
        if (try? ping()) == true { return Double(monotonicNanos() - t0) / 1e9 }
        if !child.isRunning {
            let tail = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").suffix(20).joined(separator: "\n")
            throw BenchError("process exited before answering; log:\n\(tail)")
        }
        if monotonicNanos() > deadline { throw BenchError("no answer after \(timeout) s") }
        usleep(2_000)
    }
}

/// A Redis server on a Unix socket only, persistence off except an explicit `SAVE` to `dir`.
final class RedisServer {
    let binary: String
    let dir: String
    var socket: String { dir + "/r.sock" }
    var log: String { dir + "/redis.log" }
    private(set) var child: ChildProcess?

    init(binary: String, dir: String) {
        self.binary = binary
        self.dir = dir
    }

    /// Starts the server; returns the seconds from spawn to the first `PONG` (after any RDB load).
    @discardableResult
    func start() throws -> Double {
        try? FileManager.default.removeItem(atPath: socket)
        let t0 = monotonicNanos()
        let c = try ChildProcess([binary, "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700",
                                  "--save", "", "--appendonly", "no", "--dir", dir, "--dbfilename", "bench.rdb",
                                  "--daemonize", "no"], outputPath: log, appendOutput: true)
        child = c
        return try waitUntilAnswering(since: t0, timeout: 600, child: c, log: log) {
            let r = try RedisClient(socket: socket).command(["PING"])
            return r.text == "PONG"
        }
    }

    func stop() {
        if let child { stopChild(child) }
        child = nil
    }
}
