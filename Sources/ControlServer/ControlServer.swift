import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOPosix
import ControlProtocol
import ServiceLifecycle

/// Why the control socket could not be opened.
public struct ControlServerError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

/// Transport settings and limits of the control socket.
public struct ControlServerOptions: Sendable {
    /// Most connections open at once; the next one gets `too_many_connections` and is closed.
    /// Fewer when the open-file limit leaves no room for them (``OpenFileLimit``).
    public var maxConnections = 1024
    /// A connection with no request for this long is closed (`idle_timeout`); 0 disables.
    public var idleTimeout: TimeAmount = .seconds(300)
    /// A client that reads none of its answers for this long is disconnected (slow-reader
    /// protection: at most the write buffer's high-water mark is held for it).
    public var writeStallTimeout: TimeAmount = .seconds(30)
    /// Group owning the Unix socket (mode 0660); nil keeps the daemon's group.
    public var socketGroup: String?
    /// Also listen on TCP (off by default); every command but PING, AUTH, HELP and QUIT then needs `AUTH`.
    public var tcpHost: String = "127.0.0.1"
    /// The TCP port; nil: no TCP listener.
    public var tcpPort: Int?
    public init() {}
}

/// The control socket: a line-based protocol over a Unix domain socket, served with SwiftNIO.
///
/// Each connection is served by a ``ConnectionHandler`` on its event loop: in-memory queries are
/// answered there, the rest in a task, always in request order (pipelining is allowed). Lines are cut by `LineBasedFrameDecoder` and capped at `maxLineBytes`. It is a
/// `Service`: on graceful shutdown it stops accepting, lets every connection finish the
/// requests it has received, then closes them.
public final class ControlServer: Service, Sendable {
    /// The socket path.
    public let socketPath: String
    private let service: RegistryService
    private let group: EventLoopGroup
    private let logger: Logger
    private let drainTimeout: TimeAmount
    private let connections = NIOLockedValueBox([ObjectIdentifier: Channel]())
    private let ready = NIOLockedValueBox<[CheckedContinuation<Void, Never>]?>([])
    /// Limits and transports.
    public let options: ControlServerOptions
    /// The connections admitted at once: `options.maxConnections`, or fewer if the open-file
    /// limit (raised to its hard limit when the server is made) cannot hold them.
    public let connectionLimit: Int
    private let boundTCPPort = NIOLockedValueBox<Int?>(nil)

    /// The TCP port actually bound (when TCP is on; port 0 picks a free one).
    public var tcpPort: Int? { boundTCPPort.withLockedValue { $0 } }

    /// A server for `service` on `socketPath` (mode 0660; a stale socket file is replaced, a live one refused).
    public init(socketPath: String, service: RegistryService, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                drainTimeout: TimeAmount = .seconds(10), options: ControlServerOptions = .init(),
                logger: Logger = Logger(label: "camreg.control")) {
        self.options = options
        self.connectionLimit = OpenFileLimit.connectionLimit(options.maxConnections, logger: logger)
        self.socketPath = socketPath
        self.service = service
        self.group = group
        self.drainTimeout = drainTimeout
        self.logger = logger
    }

    /// Returns once the socket is listening (or immediately if it already is).
    public func waitUntilReady() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = ready.withLockedValue { r in
                if r == nil { return true }
                r!.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    public func run() async throws {
        do {
            try await serve()
        } catch {
            markReady()  // nobody waits forever for a server that failed to start
            throw error
        }
    }

    private func markReady() {
        let waiters = ready.withLockedValue { r in defer { r = nil }; return r ?? [] }
        waiters.forEach { $0.resume() }
    }

    private func serve() async throws {
        try Self.prepareSocketPath(socketPath)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // A client that sends its requests and then shuts down its side (`socat`, `nc -N`)
            // still gets its answers: input closed ends the request loop, not the connection.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 << 10, high: 1 << 20))
            .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: false) { channel in
                channel.eventLoop.makeCompletedFuture { try self.setUp(channel, tcp: false) }
            }
        guard chmod(socketPath, 0o660) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await server.channel.close()
            throw ControlServerError(message: "cannot set mode 0660 on \(socketPath): \(reason)")
        }
        if let name = options.socketGroup {
            guard let g = getgrnam(name) else {
                try? await server.channel.close()
                throw ControlServerError(message: "socket group \(name) does not exist")
            }
            guard chown(socketPath, uid_t.max, g.pointee.gr_gid) == 0 else {
                let reason = String(cString: strerror(errno))
                try? await server.channel.close()
                throw ControlServerError(message: "cannot give \(socketPath) to group \(name): \(reason)")
            }
        }
        let tcp: NIOAsyncChannel<Void, Never>?
        if let port = options.tcpPort {
            do {
                tcp = try await ServerBootstrap(group: group)
                    .serverChannelOption(.backlog, value: 256)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.allowRemoteHalfClosure, value: true)
                    .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 << 10, high: 1 << 20))
                    .bind(host: options.tcpHost, port: port) { channel in
                        channel.eventLoop.makeCompletedFuture { try self.setUp(channel, tcp: true) }
                    }
                boundTCPPort.withLockedValue { $0 = tcp?.channel.localAddress?.port }
                logger.info("control TCP listening", metadata: ["host": "\(options.tcpHost)", "port": "\(tcpPort ?? port)"])
            } catch {
                try? await server.channel.close()
                throw ControlServerError(message: "cannot listen on TCP \(options.tcpHost):\(port): \(error)")
            }
        } else {
            tcp = nil
        }
        logger.info("control socket listening", metadata: ["socket": "\(socketPath)"])
        markReady()

        try await withGracefulShutdownHandler {
            // Connections are served by their `ConnectionHandler`s on the event loops; these
            // loops only keep accepting until the listeners close.
            try await withThrowingDiscardingTaskGroup { outer in
                if let tcp {
                    outer.addTask {
                        try await tcp.executeThenClose { inbound in for try await _ in inbound {} }
                    }
                }
                try await server.executeThenClose { inbound in for try await _ in inbound {} }
            }
        } onGracefulShutdown: {
            self.logger.info("control socket: stopping accepting, draining connections")
            server.channel.close(promise: nil)
            tcp?.channel.close(promise: nil)
            self.quiesce()
        }
        // Draining: every connection answers what it has read, then closes (or is closed at the
        // drain timeout by `quiesce`).
        while connections.withLockedValue({ !$0.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        unlink(socketPath)
        logger.info("control socket closed")
    }

    /// The pipeline of a connection: one handler, which cuts the lines (NIOExtras'
    /// `LineBasedFrameDecoder`, capped), answers them and keeps the idle and slow-reader timers.
    private func setUp(_ channel: Channel, tcp: Bool) throws {
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(ConnectionHandler(server: self, service: service, tcp: tcp,
                                              idleTimeout: options.idleTimeout > .zero ? options.idleTimeout : nil,
                                              writeStallTimeout: options.writeStallTimeout))
    }

    /// Counts a new connection in, unless the server holds its maximum.
    func admit(_ channel: Channel) -> Bool {
        connections.withLockedValue { c -> Bool in
            guard c.count < connectionLimit else { return false }
            c[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    /// Counts a closed connection out.
    func release(_ channel: Channel) {
        _ = connections.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Tells every connection to drain: each answers all that its client sent before it goes
    /// quiet, then closes (``ConnectionHandler/Quiesce``). Connections still open after the drain
    /// timeout are closed.
    private func quiesce() {
        let open = connections.withLockedValue { Array($0.values) }
        for channel in open {
            channel.eventLoop.execute { channel.pipeline.fireUserInboundEventTriggered(ConnectionHandler.Quiesce()) }
            channel.eventLoop.scheduleTask(in: drainTimeout) { channel.close(promise: nil) }
        }
    }

    /// The session of a new connection: over the Unix socket, a peer running as the daemon's own
    /// OS user is `admin` (when allowed); everyone else starts anonymous.
    func session(for channel: Channel, tcp: Bool) -> EventLoopFuture<ConnectionSession> {
        if tcp {
            let peer = channel.remoteAddress.map { "tcp:\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "tcp:?"
            return channel.eventLoop.makeSucceededFuture(ConnectionSession(identity: .anonymous, peer: peer))
        }
        guard let provider = channel as? SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(ConnectionSession(identity: .anonymous, peer: "unix:unknown"))
        }
        let peerAdmin = service.access.peerAdmin
        let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return future.map { cred in
            let peer = "unix:pid=\(cred.pid),uid=\(cred.uid)"
            if peerAdmin, cred.uid == geteuid() {
                return ConnectionSession(identity: Identity(name: "peer:uid=\(cred.uid)", label: "daemon user (peer credentials)", role: .admin),
                                         peer: peer, peerMapped: true)
            }
            return ConnectionSession(identity: .anonymous, peer: peer)
        }.recover { _ in ConnectionSession(identity: .anonymous, peer: "unix:unknown") }
    }

    /// Refuses a socket path that is too long or served by a live daemon; removes a stale one.
    static func prepareSocketPath(_ path: String) throws {
        guard path.utf8.count <= 107 else {
            throw ControlServerError(message: "socket path is \(path.utf8.count) bytes; a Unix socket path holds at most 107: \(path)")
        }
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw ControlServerError(message: "\(path) exists and is not a socket; refusing to replace it")
        }
        if Self.isListening(path) {
            throw ControlServerError(message: "another process is listening on \(path) (is camregd already running?)")
        }
        unlink(path)
    }

    static func isListening(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return rc == 0
    }
}

/// `struct ucred` of `SO_PEERCRED` (Linux): the peer's pid, uid and gid.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}
