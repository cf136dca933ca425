import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOPosix
import ServiceLifecycle

/// Why the control socket could not be opened.
public struct ControlServerError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

/// The control socket: a line-based protocol over a Unix domain socket, served with SwiftNIO.
///
/// One task per connection; requests on a connection are answered in order (pipelining is
/// allowed). Lines are capped (`LineBasedFrameDecoder` behind `maximumBufferSize`). It is a
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

    /// A server for `service` on `socketPath` (mode 0660; a stale socket file is replaced, a live one refused).
    public init(socketPath: String, service: RegistryService, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                drainTimeout: TimeAmount = .seconds(10), logger: Logger = Logger(label: "camreg.control")) {
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
        let maxLine = service.limits.maxLineBytes
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // A client that sends its requests and then shuts down its side (`socat`, `nc -N`)
            // still gets its answers: input closed ends the request loop, not the connection.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: false) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(LineBasedFrameDecoder(), maximumBufferSize: maxLine + 2))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        guard chmod(socketPath, 0o660) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await server.channel.close()
            throw ControlServerError(message: "cannot set mode 0660 on \(socketPath): \(reason)")
        }
        logger.info("control socket listening", metadata: ["socket": "\(socketPath)"])
        markReady()

        try await withGracefulShutdownHandler {
            try await server.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in inbound {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            self.logger.info("control socket: stopping accepting, draining connections")
            server.channel.close(promise: nil)
            self.quiesce()
        }
        unlink(socketPath)
        logger.info("control socket closed")
    }

    /// Closes the input side of every connection (after a 200 ms grace): each finishes what it
    /// has read, then ends. Connections still open after the drain timeout are closed.
    private func quiesce() {
        let open = connections.withLockedValue { Array($0.values) }
        for channel in open {
            // A short grace first: requests a client sent just before the signal are still in
            // the socket buffer; closing the input at once would discard them (and reset the
            // connection) although the client believes they were sent.
            channel.eventLoop.scheduleTask(in: .milliseconds(200)) { channel.close(mode: .input, promise: nil) }
            channel.eventLoop.scheduleTask(in: drainTimeout) { channel.close(promise: nil) }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let channel = connection.channel
        let id = ObjectIdentifier(channel)
        connections.withLockedValue { $0[id] = channel }
        service.connectionOpened()
        defer {
            connections.withLockedValue { $0[id] = nil }
            service.connectionClosed()
        }
        do {
            try await connection.executeThenClose { inbound, outbound in
                let session = ConnectionSession()
                do {
                    for try await line in inbound {
                        let reply = await service.respond(to: Array(line.readableBytesView), session: session)
                        var buffer = channel.allocator.buffer(capacity: reply.json.count + 1)
                        buffer.writeBytes(reply.json)
                        buffer.writeInteger(UInt8(ascii: "\n"))
                        try await outbound.write(buffer)
                        if reply.close { return }
                    }
                } catch is ByteToMessageDecoderError.PayloadTooLargeError {
                    let reply = service.lineTooLong()
                    var buffer = channel.allocator.buffer(capacity: reply.json.count + 1)
                    buffer.writeBytes(reply.json)
                    buffer.writeInteger(UInt8(ascii: "\n"))
                    try? await outbound.write(buffer)
                } catch is ChannelError {
                    // The peer went away.
                } catch let e as NIOCore.IOError where e.errnoCode == ECONNRESET || e.errnoCode == EPIPE {
                    // The peer went away.
                }
            }
        } catch {
            logger.debug("connection ended with an error", metadata: ["error": "\(error)"])
        }
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
