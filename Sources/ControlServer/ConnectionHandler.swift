import ControlProtocol
import NIOCore

/// Serves the request lines of one connection on its event loop.
///
/// Lines are cut by NIOExtras' `LineBasedFrameDecoder` (`\n` or `\r\n`), called through its
/// single-step API (by ``LineReader``) rather than from a `ByteToMessageHandler` of its own in front of this one: that
/// handler was a pipeline hop, a `NIOAny` and a decode loop for every read and read-complete of
/// every request (5 % of the daemon's CPU without pipelining). The cap is the same: a partial line
/// longer than `maxLineBytes + 2` ends the connection with `line_too_long`, and a whole line over
/// `maxLineBytes` is refused by the parser.
///
/// A line that ``RegistryService/answer(_:session:)`` can answer at once (a query of the
/// in-memory index, `PING`, `HELP`, …) is answered right there, in the same event-loop turn
/// that decoded it: no task, no thread hop. Replies are gathered as they are made and written
/// and flushed once per read (so a pipelined batch goes out as one buffer in one write). A
/// line that needs async work (a database write, an audit entry) runs in a task; lines read
/// meanwhile wait in a queue, so answers always leave in request order.
///
/// Backpressure: while a task is running, lines are queued, or the socket's write buffer is
/// above its high-water mark, `read` is held back, so a client cannot make the daemon buffer
/// without bound (the decoder still caps one line, and ``LineReader`` compacts the partial one).
///
/// Draining (``Quiesce``): when the server stops, the connection keeps reading until it has
/// answered everything and read nothing for ``quietPeriod`` while reading was allowed, then closes.
/// Bytes a client sent before the signal are in the socket buffer, and the event loop reads a
/// ready socket before it runs a timer that is due, so they are always read and answered; a
/// connection whose reads are held back (a write in flight, a pipelined queue) waits as long as it
/// must, up to the server's drain timeout.
///
/// Replies are written into one buffer the connection keeps and reuses: once the socket has
/// taken a flush, the buffer is no longer shared and the next replies are written into it again
/// (no allocation per read; a buffer grown past ``keptBufferBytes`` by a large answer is let go).
///
/// Timers: a connection with no read for the idle timeout while no request is in flight gets an
/// `idle_timeout` line and is closed; one whose client reads none of its answers for the
/// write-stall timeout (the socket stays above its high-water mark) is closed. They live here,
/// not in handlers of their own (NIO's `IdleStateHandler` and a guard, as before): every handler
/// in the pipeline is a hop for each read, read-complete, read request, write and flush of every
/// request, and the round trip is what a request without pipelining pays for.
///
/// Not `Sendable`: every method runs on the channel's event loop; the task's result comes back
/// through `NIOLoopBound`.
final class ConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    /// The event the server fires into every open connection when it stops accepting.
    struct Quiesce: Sendable {}

    /// How long a draining connection must be idle, with reading allowed, before it closes.
    static let quietPeriod: TimeAmount = .milliseconds(200)

    typealias InboundIn = ByteBuffer
    typealias InboundOut = Never
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Item {
        case line(ByteBuffer)
        /// The decoder refused a line as too long: answer, then close.
        case tooLong
    }

    /// The largest reply buffer a connection keeps between reads.
    static let keptBufferBytes = 64 * 1024

    private let server: ControlServer
    private let service: RegistryService
    private let tcp: Bool
    private let idleTimeout: TimeAmount?
    private let writeStallTimeout: TimeAmount
    /// When the socket was last read (partial lines count).
    private var lastRead = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?
    private var stallTimer: Scheduled<Void>?
    private var session: ConnectionSession?
    private var queue = CircularBuffer<Item>(initialCapacity: 4)
    /// A task is answering a request, or the session is being set up.
    private var busy = true
    private var admitted = false
    private var inputClosed = false
    private var closing = false
    private var readHeld = false
    private var unflushed = false
    /// Replies made since the last flush, one after the other: written to the channel as one
    /// buffer at the flush (a pipelined batch of sixteen answers is one buffer, one allocation
    /// and one pass through the pipeline, not sixteen).
    private var pending: ByteBuffer?
    /// The socket's bytes not yet cut into lines (a partial line; none held when there is none,
    /// so that the channel reuses its read buffer).
    private var lines = LineReader()
    /// The longest partial line kept (the line cap plus room for its `\r\n`).
    private let maxPartialLine: Int
    /// A partial line went over the cap: nothing more is read from this connection.
    private var overlong = false
    /// The buffer replies are written into (see the type's documentation).
    private var replyBuffer: ByteBuffer?
    private var context: ChannelHandlerContext?
    /// The server is stopping: close once quiet (see the type's documentation).
    private var draining = false
    /// Bumped by every read and every resumption of reading, so that a quiet check can tell
    /// whether anything happened since it was scheduled.
    private var readGeneration: UInt64 = 0

    init(server: ControlServer, service: RegistryService, tcp: Bool, idleTimeout: TimeAmount?, writeStallTimeout: TimeAmount) {
        self.maxPartialLine = service.limits.maxLineBytes + 2
        self.server = server
        self.service = service
        self.tcp = tcp
        self.idleTimeout = idleTimeout
        self.writeStallTimeout = writeStallTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimers()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        guard server.admit(context.channel) else {
            service.connectionRefused()
            closing = true
            sayAndClose(ProtocolError(.tooManyConnections, "the server holds its maximum of \(server.connectionLimit) connections; try again later"),
                        context: context)
            context.fireChannelActive()
            return
        }
        admitted = true
        service.connectionOpened()
        lastRead = .now()
        if let idleTimeout { scheduleIdleCheck(in: idleTimeout) }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        server.session(for: context.channel, tcp: tcp).whenComplete { result in
            let handler = loopBound.value
            handler.session = (try? result.get()) ?? ConnectionSession(identity: .anonymous, peer: "unix:unknown")
            handler.busy = false
            handler.drain()
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if admitted {
            admitted = false
            server.release(context.channel)
            service.connectionClosed()
        }
        queue.removeAll()
        session?.closed()
        stopTimers()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing, !overlong else { return }
        readGeneration &+= 1
        var input = unwrapInboundIn(data)
        // Serves (or queues) every whole line; a partial line is kept for the next read.
        lines.read(&input, more: { !closing }) { line in
            if busy || !queue.isEmpty {
                queue.append(.line(line))
            } else {
                serve(line)
            }
        }
        if lines.partialBytes > maxPartialLine {
            lines.drop()
            overlong = true
            if busy || !queue.isEmpty { queue.append(.tooLong) } else { answerTooLong() }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if idleTimeout != nil { lastRead = .now() }
        flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if busy || !queue.isEmpty || closing || !context.channel.isWritable {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stallTimer?.cancel()
            stallTimer = nil
            resumeReading()
        } else if stallTimer == nil {
            let channel = context.channel  // Sendable, unlike the context
            stallTimer = context.eventLoop.scheduleTask(in: writeStallTimeout) { channel.close(promise: nil) }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            // The client finished sending (or the server is draining): answer what was read, then close.
            inputClosed = true
            closeIfDone()
            return
        }
        if event is Quiesce {
            if !draining {
                draining = true
                scheduleQuietCheck()
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // The peer went away, or the socket failed: nothing more can be answered.
        context.close(promise: nil)
    }

    // MARK: Serving

    /// Answers one line: now, or through a task (then `busy` until it is written).
    private func serve(_ line: ByteBuffer) {
        guard let context, let session else { return }
        let bytes = Array(line.readableBytesView)
        switch service.answer(bytes, session: session) {
        case .now(let reply):
            write(reply)
        case .later(let work):
            busy = true
            flushIfNeeded()
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            Task {
                let reply = await work()
                eventLoop.execute {
                    let handler = loopBound.value
                    handler.busy = false
                    handler.write(reply)
                    handler.flushIfNeeded()
                    handler.drain()
                }
            }
        }
    }

    private func write(_ reply: Reply) {
        guard let context, !closing else { return }
        if pending == nil {
            if var kept = replyBuffer {
                replyBuffer = nil
                kept.clear()  // a fresh allocation only if the socket still holds the last flush
                pending = kept
            } else {
                pending = context.channel.allocator.buffer(capacity: max(4096, reply.count + 1))
            }
        }
        reply.withUnsafeBytes { pending!.writeBytes($0) }
        pending!.writeInteger(UInt8(ascii: "\n"))
        unflushed = true
        if reply.close {
            closing = true
            flushIfNeeded()
            context.close(promise: nil)
        }
    }

    private func answerTooLong() {
        write(service.lineTooLong())
        if !closing, let context {
            closing = true
            flushIfNeeded()
            context.close(promise: nil)
        }
    }

    /// Answers queued lines until one needs a task; then reads on, or closes after the last answer.
    private func drain() {
        while !busy, !closing, let item = queue.popFirst() {
            switch item {
            case .line(let line): serve(line)
            case .tooLong: answerTooLong()
            }
        }
        flushIfNeeded()
        if !busy, queue.isEmpty {
            closeIfDone()
            resumeReading()
        }
    }

    private func resumeReading() {
        guard readHeld, !busy, queue.isEmpty, !closing, let context, context.channel.isWritable else { return }
        readHeld = false
        readGeneration &+= 1
        context.read()
    }

    /// Checks, one quiet period from now, whether a draining connection read nothing meanwhile
    /// and has nothing left to answer; if so it ends as if the client had closed its side.
    private func scheduleQuietCheck() {
        guard let context else { return }
        let generation = readGeneration
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: Self.quietPeriod) {
            let handler = loopBound.value
            guard !handler.closing, handler.context != nil else { return }
            if generation == handler.readGeneration, !handler.busy, handler.queue.isEmpty, !handler.readHeld {
                handler.inputClosed = true
                handler.closeIfDone()
            } else {
                handler.scheduleQuietCheck()
            }
        }
    }

    /// Checks, `delay` from now, whether the connection has been idle for the idle timeout
    /// (nothing read, nothing in flight); if so it says `idle_timeout` and closes, otherwise it
    /// checks again when the timeout would next run out.
    private func scheduleIdleCheck(in delay: TimeAmount) {
        guard let context, let idleTimeout else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: delay) {
            let handler = loopBound.value
            guard !handler.closing, handler.context != nil else { return }
            let quiet = NIODeadline.now() - handler.lastRead
            if quiet < idleTimeout {
                handler.scheduleIdleCheck(in: idleTimeout - quiet)
            } else if handler.busy || !handler.queue.isEmpty {
                // A request is in flight (lines answered at once are done within their turn):
                // a slow request is not cut off.
                handler.scheduleIdleCheck(in: idleTimeout)
            } else {
                handler.closeIdle()
            }
        }
    }

    private func closeIdle() {
        guard let context, !closing else { return }
        service.idleClosed()
        flushIfNeeded()
        closing = true
        sayAndClose(ProtocolError(.idleTimeout, "no request for too long; closing"), context: context)
    }

    /// Writes `error` as the connection's last line, then closes it.
    private func sayAndClose(_ error: ProtocolError, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 200)
        buffer.writeString(error.json + "\n")
        let channel = context.channel  // Sendable, unlike the context
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }

    private func stopTimers() {
        idleTimer?.cancel()
        idleTimer = nil
        stallTimer?.cancel()
        stallTimer = nil
    }

    private func closeIfDone() {
        guard inputClosed, !busy, queue.isEmpty, !closing, let context else { return }
        closing = true
        flushIfNeeded()
        context.close(promise: nil)
    }

    private func flushIfNeeded() {
        guard unflushed, let context else { return }
        unflushed = false
        let buffer = pending
        pending = nil
        if let buffer { context.write(wrapOutboundOut(buffer), promise: nil) }
        context.flush()
        // Kept for the next replies: by now the socket has usually taken all of it, and the
        // buffer is ours alone again.
        if let buffer, buffer.capacity <= Self.keptBufferBytes { replyBuffer = buffer }
    }
}
