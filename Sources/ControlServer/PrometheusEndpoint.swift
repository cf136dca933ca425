import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import Registry
import ServiceLifecycle

/// The optional Prometheus text endpoint (`GET /metrics`), off by default (`metrics_listen`).
///
/// Request counts and latency histograms per command come through swift-metrics (recorded by
/// ``RequestMetrics``); the gauges (cameras, delta, database state, change-feed position and
/// lag) are read from the service at each scrape. A tiny HTTP/1.1 responder on NIO: one
/// request per connection, nothing but `/metrics`.
public final class PrometheusEndpoint: Service, Sendable {
    /// The address to listen on.
    public let host: String
    /// The port (0 picks a free one; see ``boundPort``).
    public let port: Int
    private let registry: PrometheusCollectorRegistry
    private let service: RegistryService
    private let logger: Logger
    private let bound = NIOLockedValueBox<Int?>(nil)

    public init(host: String, port: Int, registry: PrometheusCollectorRegistry, service: RegistryService, logger: Logger) {
        self.host = host
        self.port = port
        self.registry = registry
        self.service = service
        self.logger = logger
    }

    /// The port actually listened on, once listening.
    public var boundPort: Int? { bound.withLockedValue { $0 } }

    /// The exposition text: gauges refreshed from the service, then everything registered.
    public func render() -> String {
        let index = service.index
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "camreg_cameras", unitName: "", helpText: "Cameras in the index (retired included)")).set(Double(index.count))
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "camreg_index_delta", unitName: "", helpText: "Changes waiting to be folded into the index snapshot")).set(Double(index.deltaCount))
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "camreg_index_built_timestamp_seconds", unitName: "", helpText: "When the index snapshot was last rebuilt"))
            .set(index.snapshot.builtAt.timeIntervalSince1970)
        let sources = service.reliability.sources
        if let h = sources.monitor?.health {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "camreg_database_up", unitName: "", helpText: "1 when writes can reach PostgreSQL")).set(to: h.admitsWrites ? 1.0 : 0.0)
        }
        if let f = sources.feed?.status {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "camreg_feed_connected", unitName: "", helpText: "1 when the change feed's connection is up")).set(to: f.connected ? 1.0 : 0.0)
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "camreg_feed_applied_seq", unitName: "", helpText: "Last change number applied to the index")).set(Double(f.appliedSeq) as Double)
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "camreg_feed_database_seq", unitName: "", helpText: "Highest change number in the database at the last catch-up")).set(Double(f.databaseSeq) as Double)
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "camreg_feed_lag", unitName: "", helpText: "Changes in the database not yet applied")).set(Double(f.lag) as Double)
        }
        return registry.emitToString()
    }

    public func run() async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] ch in
                ch.pipeline.configureHTTPServerPipeline().flatMap {
                    ch.pipeline.addHandler(MetricsHTTPHandler(render: { self.render() }))
                }
            }
            .bind(host: host, port: port).get()
        bound.withLockedValue { $0 = channel.localAddress?.port }
        logger.info("Prometheus endpoint listening", metadata: ["address": "\(host):\(channel.localAddress?.port ?? port)"])
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// Answers `GET /metrics` with the exposition text, anything else with 404; then closes.
final class MetricsHTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private let render: @Sendable () -> String
    private var head: HTTPRequestHead?

    init(render: @escaping @Sendable () -> String) {
        self.render = render
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let head else { return }
            let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
            let ok = head.method == .GET && path == "/metrics"
            let text = ok ? render() : "not found; try GET /metrics\n"
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
            headers.add(name: "Content-Length", value: String(text.utf8.count))
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: ok ? .ok : .notFound, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
