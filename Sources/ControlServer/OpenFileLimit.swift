import Foundation
import Logging

/// The process's open-file limit (`RLIMIT_NOFILE`) and how many client connections it allows.
///
/// Every connection holds a descriptor. With the default soft limit of 1,024 on many systems,
/// 1,024 connections cannot all be accepted: `accept` fails with `EMFILE`, the client waits in
/// the listen backlog with neither an answer nor a refusal. So, as Go's runtime and nginx do,
/// the daemon raises its soft limit to the hard limit at start-up, and, as Redis does with
/// `maxclients`, admits no more connections than the limit leaves room for after ``reserve``
/// descriptors for everything else (PostgreSQL connections, the data folder's files, the
/// listeners, logs). The refused ones get `too_many_connections`, a clear answer.
public enum OpenFileLimit {
    /// Descriptors kept for everything but client connections.
    public static let reserve = 64
    /// The most Linux lets a soft limit reach without raising `fs.nr_open` (its default).
    static let ceiling: rlim_t = 1 << 20

    /// The soft and hard limits now, or nil when they cannot be read.
    public static func current() -> (soft: rlim_t, hard: rlim_t)? {
        var rl = rlimit()
        guard getrlimit(resource, &rl) == 0 else { return nil }
        return (rl.rlim_cur, rl.rlim_max)
    }

    /// Raises the soft limit to the hard one (at most ``ceiling``); returns the soft limit after.
    /// Raising never needs privileges; a failure keeps the old limit.
    @discardableResult
    static func raise() -> rlim_t? {
        guard let (soft, hard) = current() else { return nil }
        let target = min(hard, ceiling)
        guard soft < target else { return soft }
        var rl = rlimit(rlim_cur: target, rlim_max: hard)
        return setrlimit(resource, &rl) == 0 ? target : soft
    }

    /// How many of `wanted` connections a soft limit of `soft` descriptors allows (at least 1).
    static func admissible(_ wanted: Int, soft: rlim_t?) -> Int {
        guard let soft, soft < rlim_t(Int.max) else { return wanted }
        return max(1, min(wanted, Int(soft) - reserve))
    }

    /// Raises the limit and returns how many of `wanted` connections to admit, warning when it
    /// is fewer.
    static func connectionLimit(_ wanted: Int, logger: Logger) -> Int {
        let soft = raise()
        let limit = admissible(wanted, soft: soft)
        if limit < wanted {
            logger.warning("the open-file limit allows fewer connections than configured; raise LimitNOFILE (systemd) or ulimit -n",
                           metadata: ["max_connections": "\(wanted)", "admitted": "\(limit)", "open_file_limit": "\(soft ?? 0)"])
        }
        return limit
    }

    #if canImport(Glibc)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resource = RLIMIT_NOFILE
    #endif
}
