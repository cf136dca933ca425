import Foundation

/// The result of sending the whole query list to one system with one client setting.
struct RunResult: Sendable {
    let system: String
    let connections: Int
    let depth: Int
    let queries: Int
    let seconds: Double
    let p50: Double, p99: Double, p999: Double   // microseconds
    let clientCPU: Double                        // share of all cores used by this process
    let digests: [IDSetDigest]
    /// CPU time of the server's processes per query, microseconds (nil when not measured).
    var serverCPU: Double? = nil
    /// The kernel's (system time's) share of `serverCPU`.
    var serverSystemShare: Double? = nil
    /// Times per query a server thread was switched out while still runnable (preempted), and
    /// switched out because it waited (slept), over all the server's threads (nil when not measured).
    var serverPreemptions: Double? = nil
    var serverSleeps: Double? = nil
    /// Which round of the setting this was (`--rounds`), from 1.
    var round = 1
    var qps: Double { Double(queries) / seconds }
}

func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func processCPUSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
}

/// User + system CPU seconds of processes, from `/proc/<pid>/stat` (fields 14 and 15, in
/// clock ticks); processes that are gone count 0.
func processesCPUSeconds(_ pids: [Int32]) -> Double {
    let t = processesCPU(pids)
    return t.user + t.system
}

/// User and system CPU seconds of processes (see ``processesCPUSeconds(_:)``).
func processesCPU(_ pids: [Int32]) -> (user: Double, system: Double) {
    let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
    var user = 0.0, system = 0.0
    for pid in pids {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { continue }
        // After "pid (comm) ": state is field 3, so utime/stime are the 12th and 13th after comm.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { continue }
        user += u / tick
        system += s / tick
    }
    return (user, system)
}

/// Context switches of processes, all their threads summed, from `/proc/<pid>/task/*/status`:
/// `voluntary` (the thread waited: a read, `epoll_wait`, a lock) and `involuntary` (it was
/// preempted while it could have run on). Threads that ended meanwhile are not counted.
func processesSwitches(_ pids: [Int32]) -> (voluntary: Int, involuntary: Int) {
    var voluntary = 0, involuntary = 0
    for pid in pids {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { continue }
        for task in tasks {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, let n = Int(parts[1].trimmingCharacters(in: .whitespaces)) else { continue }
                if parts[0] == "voluntary_ctxt_switches" { voluntary += n }
                if parts[0] == "nonvoluntary_ctxt_switches" { involuntary += n }
            }
        }
    }
    return (voluntary, involuntary)
}

/// The processes whose parent is `pid` (e.g. the backends of a PostgreSQL postmaster).
func childProcesses(of pid: Int32) -> [Int32] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { Int32($0) }.filter { child in
        guard let text = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return false }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 1 && Int32(fields[1]) == pid
    }
}

/// Shared, index-disjoint output of the client threads.
final class RunBuffers: @unchecked Sendable {
    var latencies: [UInt64]
    var digests: [IDSetDigest]
    var errors: [String] = []
    let lock = NSLock()
    init(count: Int) {
        latencies = [UInt64](repeating: 0, count: count)
        digests = [IDSetDigest](repeating: IDSetDigest(), count: count)
    }
}

final class ClientBox: @unchecked Sendable {
    let client: QueryClient
    init(_ c: QueryClient) { client = c }
}

enum Runner {
    /// Sends queries `0..<count` over `connections` clients (query `i` goes to client
    /// `i % connections`), all on the calling thread (`driver` `.poll`) or each on a thread of
    /// its own with blocking I/O (`.threads`), `depth` requests in flight per connection
    /// (written together, replies read in order). A query's latency runs from the write of its
    /// batch to the end of its reply.
    /// `serverPIDs` gives the server's processes (read once the clients are connected): their CPU
    /// time over the run, per query, is reported as `serverCPU`.
    static func run(system: String, count: Int, connections: Int, depth: Int, driver: Driver = .poll,
                    serverPIDs: () -> [Int32] = { [] },
                    makeClient: (Int) throws -> QueryClient) throws -> RunResult {
        let clients = try (0..<connections).map { ClientBox(try makeClient($0)) }
        for box in clients { box.client.sendsAsync = driver == .poll }
        let servers = serverPIDs()
        let server0 = processesCPU(servers)
        let switches0 = processesSwitches(servers)
        let out = RunBuffers(count: count)
        let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
        let cpu0 = processCPUSeconds()
        let t0 = monotonicNanos()
        switch driver {
        case .threads: driveThreads(clients, count: count, depth: depth, out: out)
        case .poll: drivePolled(clients, count: count, depth: depth, out: out)
        }
        let seconds = Double(monotonicNanos() - t0) / 1e9
        let cpu = processCPUSeconds() - cpu0
        let server1 = processesCPU(servers)
        let switches1 = processesSwitches(servers)
        let serverSeconds = (server1.user - server0.user) + (server1.system - server0.system)
        let serverCPU = servers.isEmpty ? nil : serverSeconds / Double(count) * 1e6
        let systemShare = servers.isEmpty || serverSeconds <= 0 ? nil : (server1.system - server0.system) / serverSeconds
        if let e = out.errors.first { throw BenchError("\(system): \(e)") }
        let sorted = out.latencies.sorted()
        func pct(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let k = min(sorted.count - 1, Int((p * Double(sorted.count)).rounded(.up)) - 1)
            return Double(sorted[max(0, k)]) / 1000
        }
        let perQuery = { (n: Int) -> Double? in servers.isEmpty ? nil : Double(n) / Double(count) }
        return RunResult(system: system, connections: connections, depth: depth, queries: count, seconds: seconds,
                         p50: pct(0.5), p99: pct(0.99), p999: pct(0.999), clientCPU: cpu / (seconds * cores),
                         digests: out.digests, serverCPU: serverCPU, serverSystemShare: systemShare,
                         serverPreemptions: perQuery(switches1.involuntary - switches0.involuntary),
                         serverSleeps: perQuery(switches1.voluntary - switches0.voluntary))
    }

    /// How the client connections are driven.
    enum Driver: String, Sendable {
        /// One thread for all connections: each connection's batch is written, and `poll` says
        /// whose replies have arrived (as redis-benchmark and memtier drive theirs).
        case poll
        /// One thread per connection with blocking reads.
        case threads
    }

    /// One thread per connection, blocking I/O.
    private static func driveThreads(_ clients: [ClientBox], count: Int, depth: Int, out: RunBuffers) {
        let connections = clients.count
        let done = DispatchSemaphore(value: 0)
        for t in 0..<connections {
            let box = clients[t]
            let thread = Thread {
                defer { done.signal() }
                let mine = Array(stride(from: t, to: count, by: connections))
                var i = 0
                do {
                    while i < mine.count {
                        let batch = mine[i..<min(i + depth, mine.count)]
                        let sent = monotonicNanos()
                        try box.client.send(batch)
                        for q in batch {
                            let (digest, _) = try box.client.receive(collect: false)
                            let now = monotonicNanos()
                            out.latencies[q] = now - sent
                            out.digests[q] = digest
                        }
                        i += batch.count
                    }
                } catch {
                    out.lock.lock(); out.errors.append("\(error)"); out.lock.unlock()
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        for _ in 0..<connections { done.wait() }
    }

    /// All connections on the calling thread: every connection's first batch is written, then
    /// `poll` waits for replies; a connection whose socket is readable has its whole batch read
    /// (the rest of a batch follows its first reply closely) and its next batch written. Nothing
    /// of a reply is read before `poll` sees it: a batch is written whole before its replies are
    /// read (libpq, blocking, reads while it writes only when the socket's send buffer is full,
    /// which a batch of sixteen statements never fills).
    private static func drivePolled(_ clients: [ClientBox], count: Int, depth: Int, out: RunBuffers) {
        let connections = clients.count
        let mine = (0..<connections).map { t in Array(stride(from: t, to: count, by: connections)) }
        var next = [Int](repeating: 0, count: connections)       // first query of the batch in flight
        var sentAt = [UInt64](repeating: 0, count: connections)
        var fds = clients.map { pollfd(fd: $0.client.pollFD, events: Int16(POLLIN), revents: 0) }
        var active = 0
        do {
            func start(_ t: Int) throws {
                guard next[t] < mine[t].count else { fds[t].fd = -1; return }
                sentAt[t] = monotonicNanos()
                try clients[t].client.send(mine[t][next[t]..<min(next[t] + depth, mine[t].count)])
                active += 1
            }
            for t in 0..<connections { try start(t) }
            while active > 0 {
                let n = poll(&fds, nfds_t(connections), -1)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw BenchError("poll: \(String(cString: strerror(errno)))")
                }
                for t in 0..<connections where fds[t].fd >= 0 && fds[t].revents != 0 {
                    fds[t].revents = 0
                    let batch = mine[t][next[t]..<min(next[t] + depth, mine[t].count)]
                    for q in batch {
                        let (digest, _) = try clients[t].client.receive(collect: false)
                        out.latencies[q] = monotonicNanos() - sentAt[t]
                        out.digests[q] = digest
                    }
                    next[t] += batch.count
                    active -= 1
                    try start(t)
                }
            }
        } catch {
            out.errors.append("\(error)")
        }
    }
}
