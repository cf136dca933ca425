import Foundation

/// A child process started with `posix_spawn` and reaped with `waitpid`.
///
/// Foundation's `Process` is not used for PostgreSQL programs: `pg_ctl start` leaves a
/// postmaster running that inherits descriptors, and `Process` waits for its own inherited
/// descriptor to close, so it would never see `pg_ctl` (or a daemon that started one) exit.
/// Before spawning, every descriptor of ours above 2 is marked close-on-exec so that nothing
/// leaks into the child. The child's stdin is /dev/null; stdout and stderr go to a file. Its
/// signal dispositions start at their defaults, with no signal blocked.
public final class ChildProcess: @unchecked Sendable {
    /// The child's process id.
    public let pid: pid_t
    private var status: Int32?
    private let lock = NSLock()

    /// Starts `argv[0]` (an absolute path) with `argv` and `environment`, output to `outputPath`.
    public init(_ argv: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
                outputPath: String, appendOutput: Bool = false) throws {
        Self.markDescriptorsCloseOnExec()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | (appendOutput ? O_APPEND : O_TRUNC), 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        // The child starts with default signal handling and nothing blocked, whatever this
        // process inherited or set up: a test runner or a shell's background job may ignore
        // SIGINT, and ServiceLifecycle ignores SIGINT and SIGTERM to watch them itself.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2] { sigaddset(&defaults, s) }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        guard rc == 0 else {
            throw ClusterError(step: "spawn", message: "cannot run \(argv[0]): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
    }

    /// The exit status if the child has exited (128 + signal number if a signal ended it), without blocking.
    public func exitStatus() -> Int32? {
        lock.lock(); defer { lock.unlock() }
        if let status { return status }
        var raw: Int32 = 0
        let r = waitpid(pid, &raw, WNOHANG)
        guard r == pid else { return nil }
        status = Self.decode(raw)
        return status
    }

    /// Blocks until the child exits; returns its status.
    @discardableResult
    public func wait() -> Int32 {
        lock.lock(); defer { lock.unlock() }
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        status = Self.decode(raw)
        return status!
    }

    /// Whether the child is still running.
    public var isRunning: Bool { exitStatus() == nil }

    /// Sends a signal.
    public func signal(_ sig: Int32) { kill(pid, sig) }

    private static func decode(_ raw: Int32) -> Int32 {
        raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }

    /// Marks every open descriptor above 2 close-on-exec (via /proc/self/fd).
    static func markDescriptorsCloseOnExec() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for name in entries {
            guard let fd = Int32(name), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }
}
