import ControlProtocol
import ControlServer
import Foundation
import Logging
import NIOCore
import NIOExtras
import NIOPosix
import Postgres
import Registry
import RegistryStore
import ServiceLifecycle
import Testing

/// The package root (for `migrations/` and `../shared/data/`).
let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let migrationsDirectory = packageRoot.appendingPathComponent("migrations").path
let sharedData = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data")

/// A short temporary folder (Unix socket paths hold at most 107 bytes; CI clones deep).
func shortTempDirectory(_ prefix: String) throws -> String {
    let base = ProcessInfo.processInfo.environment["CAMREG_TEST_TMP"] ?? "/tmp"
    var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else { throw TestFailure("mkdtemp failed in \(base)") }
    let path = String(cString: p)
    chmod(path, 0o711)  // the cluster's unprivileged user must be able to reach it when we are root
    return path
}

/// A Unix socket of `type` (`SOCK_STREAM`, `SOCK_DGRAM`) bound to `path`; throws when it cannot
/// be made or bound. The caller closes it.
func boundUnixSocket(_ type: __socket_type, path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(type.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in raw.copyBytes(from: Array(path.utf8) + [0]) }
    let bound = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0 else {
        let message = String(cString: strerror(errno))
        close(fd)
        throw TestFailure("bind \(path): \(message)")
    }
    return fd
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

nonisolated(unsafe) private var clusterToStopAtExit: EmbeddedCluster?

/// One throwaway PostgreSQL for the whole test run, started with the daemon's own
/// ``EmbeddedCluster`` (or `CAMREG_TEST_DATABASE_URL`), stopped when the process exits.
/// Each test gets a database of its own.
actor TestPostgres {
    static let shared = TestPostgres()
    private var admin: PostgresConfiguration?
    private var counter = 0

    private func adminConfiguration() throws -> PostgresConfiguration {
        if let admin { return admin }
        let config: PostgresConfiguration
        if let url = ProcessInfo.processInfo.environment["CAMREG_TEST_DATABASE_URL"], !url.isEmpty {
            config = .url(url, applicationName: "camreg-tests")
        } else {
            let dir = try shortTempDirectory("pg")
            var logger = Logger(label: "test.cluster")
            logger.logLevel = .warning
            let cluster = try EmbeddedCluster(dataDirectory: dir, database: "postgres", logger: logger)
            try cluster.start()
            clusterToStopAtExit = cluster
            atexit {
                if let c = clusterToStopAtExit {
                    try? c.stop()
                    try? FileManager.default.removeItem(atPath: c.dataDirectory)
                }
            }
            config = cluster.configuration(database: "postgres")
        }
        admin = config
        return config
    }

    /// A new, empty database; returns how to connect to it.
    func freshDatabase(_ label: String = "t") throws -> PostgresConfiguration {
        let admin = try adminConfiguration()
        counter += 1
        let name = "\(label)_\(getpid())_\(counter)".lowercased().filter { $0.isLetter || $0.isNumber || $0 == "_" }
        let c = try PostgresConnection(configuration: admin)
        try c.query("DROP DATABASE IF EXISTS \(name)")
        try c.query("CREATE DATABASE \(name)")
        return admin.with("dbname", name)
    }

    /// A new database with the migrations applied.
    func migratedDatabase(_ label: String = "t") throws -> PostgresConfiguration {
        let config = try freshDatabase(label)
        let c = try PostgresConnection(configuration: config)
        try Migrator(directory: migrationsDirectory).apply(on: c)
        return config
    }
}

/// Starts a ``ControlServer`` over `index` on a temporary socket, runs `body` with the socket
/// path, and always shuts the server down gracefully (through its ServiceGroup).
func withTestServer<T: Sendable>(index: CameraIndex, store: PostgresClient? = nil, rebuildThreshold: Int = 512,
                                  limits: ProtocolLimits = .init(), access: AccessSettings = .init(),
                                  options: ControlServerOptions = .init(),
                                  _ body: @Sendable (String, RegistryService) async throws -> T) async throws -> T {
    try await withTestControlServer(index: index, store: store, rebuildThreshold: rebuildThreshold, limits: limits,
                                    access: access, options: options) { path, service, _ in try await body(path, service) }
}

/// ``withTestServer``, also handing the ``ControlServer`` to `body` (for its TCP port).
func withTestControlServer<T: Sendable>(index: CameraIndex, store: PostgresClient? = nil, rebuildThreshold: Int = 512,
                                        limits: ProtocolLimits = .init(), access: AccessSettings = .init(),
                                        options: ControlServerOptions = .init(),
                                        _ body: @Sendable (String, RegistryService, ControlServer) async throws -> T) async throws -> T {
    try await withStoppableTestServer(index: index, store: store, rebuildThreshold: rebuildThreshold, limits: limits,
                                      access: access, options: options) { path, service, server, _ in
        try await body(path, service, server)
    }
}

/// ``withTestControlServer``, also handing `body` a function that starts the server's graceful
/// shutdown (as SIGTERM would) and returns at once; the helper still waits for the end.
func withStoppableTestServer<T: Sendable>(index: CameraIndex, store: PostgresClient? = nil, rebuildThreshold: Int = 512,
                                          limits: ProtocolLimits = .init(), access: AccessSettings = .init(),
                                          options: ControlServerOptions = .init(), drainTimeout: TimeAmount = .seconds(2),
                                          _ body: @Sendable (String, RegistryService, ControlServer, @escaping @Sendable () async -> Void) async throws -> T) async throws -> T {
    let dir = try shortTempDirectory("sock")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/c.sock"
    var logger = Logger(label: "test.server")
    logger.logLevel = .warning
    let service = RegistryService(index: index, limits: limits, store: store, rebuildThreshold: rebuildThreshold,
                                  access: access, logger: logger)
    let server = ControlServer(socketPath: path, service: service, drainTimeout: drainTimeout, options: options, logger: logger)
    let group = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: logger))
    let running = Task { try await group.run() }
    await server.waitUntilReady()
    do {
        let value = try await body(path, service, server, { await group.triggerGracefulShutdown() })
        await group.triggerGracefulShutdown()
        try await running.value
        return value
    } catch {
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        throw error
    }
}

/// An async line client for the control socket (NIO, so that tests never block a thread).
///
/// A plain `Channel`: each response line goes into an `AsyncThrowingStream` that `readLine`
/// reads, and the end of the connection (or an error) ends the stream. Writes are queued and
/// flushed without waiting for the kernel, as a client that pipelines its requests would.
final class TestClient: Sendable {
    let channel: Channel
    private let iterator: IteratorBox

    final class IteratorBox: @unchecked Sendable {
        var it: AsyncThrowingStream<ByteBuffer, Error>.AsyncIterator
        init(_ it: AsyncThrowingStream<ByteBuffer, Error>.AsyncIterator) { self.it = it }
    }

    /// Hands each response line to the client's stream; the connection's end finishes it.
    final class LineSink: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let continuation: AsyncThrowingStream<ByteBuffer, Error>.Continuation
        init(_ continuation: AsyncThrowingStream<ByteBuffer, Error>.Continuation) { self.continuation = continuation }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            continuation.yield(Self.unwrapInboundIn(data))
        }
        func channelInactive(context: ChannelHandlerContext) {
            continuation.finish()
            context.fireChannelInactive()
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) {
            continuation.finish(throwing: error)
            context.close(promise: nil)
        }
    }

    private init(_ connect: (ClientBootstrap) -> EventLoopFuture<Channel>) async throws {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ByteBuffer.self)
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).channelInitializer { ch in
            ch.eventLoop.makeCompletedFuture {
                try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                try ch.pipeline.syncOperations.addHandler(LineSink(continuation))
            }
        }
        channel = try await connect(bootstrap).get()
        iterator = IteratorBox(stream.makeAsyncIterator())
    }

    /// A TCP client (for the optional TCP listener).
    convenience init(host: String, port: Int) async throws {
        try await self.init { $0.connect(host: host, port: port) }
    }

    convenience init(path: String) async throws {
        try await self.init { $0.connect(unixDomainSocketPath: path) }
    }

    /// Sends raw bytes as they are (queued and flushed; throws if the connection is closed).
    func sendRaw(_ bytes: [UInt8]) async throws {
        guard channel.isActive else { throw ChannelError.ioOnClosedChannel }
        channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
    }

    /// Sends one line (a newline is added).
    func send(_ line: String) async throws {
        try await sendRaw(Array((line + "\n").utf8))
    }

    /// Sends one line and returns only once it is in the kernel's socket buffer. `send` returns
    /// when the line is queued for the client's event loop, which a loaded machine may run much later:
    /// use this before signalling the daemon, so that the request was really sent first.
    func sendFlushed(_ line: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: line + "\n")).get()
    }

    /// The next response line, or `nil` when the server closed the connection. A cancelled wait
    /// throws `CancellationError` (the stream ends for good; so does this client).
    func readLine() async throws -> String? {
        guard let buf = try await iterator.it.next() else {
            try Task.checkCancellation()
            return nil
        }
        return String(buffer: buf)
    }

    /// The next response line, or `nil` when the server closed the connection or sent nothing
    /// for `seconds` (this side then closes it): a wait that would hang fails instead.
    func readLine(within seconds: Int64) async throws -> String? {
        let ch = channel
        let timer = ch.eventLoop.scheduleTask(in: .seconds(seconds)) { ch.close(promise: nil) }
        defer { timer.cancel() }
        return try await readLine()
    }

    /// Sends a line and decodes the JSON response.
    func request(_ line: String) async throws -> [String: Any] {
        try await send(line)
        guard let text = try await readLine() else { throw TestFailure("connection closed after \(line)") }
        return try decodeJSON(text)
    }

    func close() async {
        try? await channel.close()
    }

    deinit {
        channel.close(promise: nil)
    }
}

/// Waits until the server, asked through `client` (an admin), counts `count` open connections.
/// A client's connect returns once the kernel has queued it; the server admits connections on
/// several event loops, not always in the order they connected. A test that fills the server
/// must wait for every admission before the next client, which is otherwise admitted in place of
/// an earlier one that is still on its way (and that one gets the refusal instead).
func waitForAdmissions(_ client: TestClient, count: Int, timeout: Double = 120) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    var seen: Any?
    while Date() < deadline {
        seen = try await client.request("STATS")["connections"]
        if (seen as? NSNumber)?.intValue == count { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TestFailure("the server counts \(String(describing: seen)) connections, not \(count), after \(timeout) s")
}

func decodeJSON(_ text: String) throws -> [String: Any] {
    guard let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw TestFailure("not a JSON object: \(text)")
    }
    return o
}

/// The error code of a response, if it is an error.
func errorCode(_ o: [String: Any]) -> String? {
    (o["error"] as? [String: Any])?["code"] as? String
}

/// Deterministic random numbers for tests: the demo's SplitMix64.
typealias SeededRandom = SeededRNG
