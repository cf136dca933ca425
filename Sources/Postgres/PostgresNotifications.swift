import CLibPQ
import Foundation

/// One `NOTIFY` received on a connection that ran `LISTEN`.
public struct PostgresNotification: Sendable, Equatable {
    /// The channel name.
    public let channel: String
    /// The payload (empty when none was given).
    public let payload: String
    /// The process id of the server backend that sent it.
    public let senderPID: Int32
}

extension PostgresConnection {
    /// Waits up to `timeout` seconds for notifications on channels this connection `LISTEN`s to,
    /// and returns those that arrived (possibly none). Notifications already buffered by an
    /// earlier query are returned at once.
    ///
    /// Blocks the calling thread in `poll()` on the connection's socket: call it from a thread
    /// of its own (``ChangeFeed`` does), never from an event loop. Throws
    /// ``PostgresError/Code/connectionBroken`` when the server or the connection went away.
    public func waitForNotifications(timeout: Double) throws -> [PostgresNotification] {
        try withRawConnection { conn in
            var found = Self.takeNotifications(conn)
            if !found.isEmpty { return found }
            let fd = PQsocket(conn)
            guard fd >= 0, PQstatus(conn) == CONNECTION_OK else {
                throw PostgresError(code: .connectionBroken, message: "the connection is closed")
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&pfd, 1, Int32(max(0, min(timeout, 3600)) * 1000))
            if rc < 0 && errno != EINTR {
                throw PostgresError(code: .connectionBroken, message: "poll: \(String(cString: strerror(errno)))")
            }
            if rc > 0 {
                // Readable: a notification, or the server closing the connection.
                if PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK {
                    let message = String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
                    throw PostgresError(code: .connectionBroken, message: message.isEmpty ? "the server closed the connection" : message)
                }
                found = Self.takeNotifications(conn)
            }
            return found
        }
    }

    private static func takeNotifications(_ conn: OpaquePointer) -> [PostgresNotification] {
        var out: [PostgresNotification] = []
        while let n = PQnotifies(conn) {
            out.append(PostgresNotification(channel: String(cString: n.pointee.relname),
                                            payload: n.pointee.extra.map { String(cString: $0) } ?? "",
                                            senderPID: n.pointee.be_pid))
            PQfreemem(n)
        }
        return out
    }
}
