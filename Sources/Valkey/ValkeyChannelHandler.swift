import NIOCore
import NIOSSL
import RESP
import Timestamps

/// One unit of work for the channel: encoded commands and where their replies go.
enum ValkeyRequest: Sendable {
    case single(ByteBuffer, EventLoopPromise<RESPValue>)
    case collect(ByteBuffer, count: Int, EventLoopPromise<[RESPValue]>)
    case counting(ByteBuffer, count: Int, EventLoopPromise<PipelineOutcome>)
}

/// Writes requests in bounded chunks as the channel stays writable and matches replies to
/// them in order. Lives on the channel's event loop only.
final class ValkeyChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ValkeyRequest
    typealias OutboundOut = ByteBuffer

    /// A slice this size is handed to NIO at a time, so neither NIO's outbound queue nor
    /// TLS encryption ever hold a whole multi-megabyte pipeline at once.
    static let chunkSize = 128 * 1024

    private enum Sink {
        case single(EventLoopPromise<RESPValue>)
        case collect(count: Int, EventLoopPromise<[RESPValue]>)
        case counting(count: Int, EventLoopPromise<PipelineOutcome>)

        func fail(_ error: ValkeyError) {
            switch self {
            case .single(let p): p.fail(error)
            case .collect(_, let p): p.fail(error)
            case .counting(_, let p): p.fail(error)
            }
        }
    }

    private let server: String
    private let commandTimeout: TimeAmount
    private var decoder = RESPDecoder()
    private var sinks = CircularBuffer<Sink>()
    // State of the sink at the head of `sinks`, kept outside the enum so appending to the
    // reply array never copies it.
    private var headReceived = 0
    private var headValues: [RESPValue] = []
    private var headOutcome = PipelineOutcome()
    private var outbound = CircularBuffer<(bytes: ByteBuffer, promise: EventLoopPromise<Void>?)>()
    private var inbound = ByteBuffer()
    private var failure: ValkeyError?
    private var context: ChannelHandlerContext?
    private var timeoutTask: Scheduled<Void>?
    private var lastProgress = NIODeadline.uptimeNanoseconds(0)
    /// The event loop's clock (virtual on an `EmbeddedEventLoop`, so tests drive the timeout).
    private var now: NIODeadline { context?.eventLoop.now ?? .now() }

    init(server: String, commandTimeout: TimeAmount) {
        self.server = server
        self.commandTimeout = commandTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(ValkeyError(.connectionClosed, server: server, message: "the connection was closed"))
        self.context = nil
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        let bytes: ByteBuffer
        let sink: Sink
        switch request {
        case .single(let b, let p): bytes = b; sink = .single(p)
        case .collect(let b, let n, let p): bytes = b; sink = .collect(count: n, p)
        case .counting(let b, let n, let p): bytes = b; sink = .counting(count: n, p)
        }
        if let failure {
            // Work sent after the failure never reached the server: that is a closed
            // connection, whatever closed it.
            let closed = failure.kind == .connectionClosed ? failure
                : ValkeyError(.connectionClosed, server: server, message: "the connection was closed after an earlier failure (\(failure.kind): \(failure.message))")
            sink.fail(closed)
            promise?.fail(closed)
            return
        }
        let wasIdle = sinks.isEmpty
        sinks.append(sink)
        if wasIdle {
            startHead()
            lastProgress = now
            armTimeout(context: context)
        }
        outbound.append((bytes, promise))
        pumpWrites(context: context)
    }

    func flush(context: ChannelHandlerContext) {
        // Writes are flushed chunk by chunk in pumpWrites.
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            pumpWrites(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    private func pumpWrites(context: ChannelHandlerContext) {
        while failure == nil, context.channel.isWritable, var next = outbound.popFirst() {
            if next.bytes.readableBytes > Self.chunkSize {
                let chunk = next.bytes.readSlice(length: Self.chunkSize)!
                outbound.prepend(next)
                context.write(wrapOutboundOut(chunk), promise: nil)
            } else {
                // The caller's promise completes once the last chunk reached the socket:
                // that is the back-pressure signal executeStreaming waits for.
                context.write(wrapOutboundOut(next.bytes), promise: next.promise)
            }
            context.flush()
        }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if inbound.readableBytes == 0 {
            inbound = incoming
        } else {
            inbound.writeBuffer(&incoming)
        }
        do {
            try processInbound()
        } catch let error as RESPDecodingError {
            failAndClose(ValkeyError(.protocolError, server: server, message: error.description), context: context)
            return
        } catch let error as ValkeyError {
            failAndClose(error, context: context)
            return
        } catch {
            failAndClose(ValkeyError(.protocolError, server: server, message: "\(error)"), context: context)
            return
        }
        if inbound.readableBytes == 0 {
            inbound.clear()
        } else if inbound.readerIndex > 256 * 1024 {
            inbound.discardReadBytes()
        }
    }

    /// Decodes what arrived and hands replies to the pending requests.
    ///
    /// Progress against the timeout is a byte of an answer, never of a push: pushes are no
    /// answer to anything, and a server that sends nothing else (or trickles one without end)
    /// must not keep a pending request alive. A read makes progress when it completes a reply
    /// that is not a push, or when the reply it leaves incomplete is known not to be one:
    /// that reply is the last thing on the wire, so the read's last byte belongs to it. Thus
    /// a long reply arriving slowly keeps its request alive, however the bytes are split,
    /// and push bytes never do, whether whole or partial. Attributes ahead of a reply count
    /// once the reply they annotate has begun.
    private func processInbound() throws {
        var progressed = false
        defer { if progressed || decoder.partialReply == .reply { lastProgress = now } }
        while failure == nil {
            guard let head = sinks.first else {
                // Nothing pending: only out-of-band pushes may arrive.
                guard let value = try decoder.decode(buffer: &inbound) else { return }
                if case .push = value { continue }
                throw ValkeyError(.protocolError, server: server, message: "reply received with no command pending: \(value)")
            }
            switch head {
            case .counting(let count, let promise):
                guard let summary = try decoder.skipReply(buffer: &inbound) else { return }
                switch summary {
                case .push: continue
                case .success: break
                case .error(let message): headOutcome.recordError(at: headReceived, message)
                }
                progressed = true
                headReceived += 1
                headOutcome.commandCount += 1
                if headReceived == count {
                    let outcome = headOutcome
                    finishHead()
                    promise.succeed(outcome)
                }
            case .single(let promise):
                guard let value = try decoder.decode(buffer: &inbound) else { return }
                if case .push = value { continue }
                progressed = true
                finishHead()
                promise.succeed(value)
            case .collect(let count, let promise):
                guard let value = try decoder.decode(buffer: &inbound) else { return }
                if case .push = value { continue }
                progressed = true
                headValues.append(value)
                headReceived += 1
                if headReceived == count {
                    let values = headValues
                    headValues = []
                    finishHead()
                    promise.succeed(values)
                }
            }
        }
    }

    private func finishHead() {
        sinks.removeFirst()
        startHead()
    }

    private func startHead() {
        headReceived = 0
        headOutcome = PipelineOutcome()
        if case .collect(let count, _)? = sinks.first {
            headValues = []
            headValues.reserveCapacity(min(count, 1 << 16))
        }
    }

    // MARK: Failures

    func channelInactive(context: ChannelHandlerContext) {
        let pending = sinks.count
        failAll(ValkeyError(.connectionClosed, server: server, message: pending == 0
            ? "the connection is closed"
            : "the server closed the connection with \(pending) request(s) pending"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAndClose(Self.classify(error, server: server), context: context)
    }

    static func classify(_ error: any Error, server: String) -> ValkeyError {
        if let error = error as? ValkeyError { return error }
        if let error = error as? NIOSSLError {
            if case .uncleanShutdown = error {
                return ValkeyError(.connectionClosed, server: server, message: "the server closed the TLS connection")
            }
            return ValkeyError(.tlsFailed, server: server, message: "TLS handshake failed (check the CA file, client certificate and server name): \(error)")
        }
        if error is NIOSSLExtraError || error is BoringSSLError {
            return ValkeyError(.tlsFailed, server: server, message: "TLS failed (check the CA file, client certificate and server name): \(error)")
        }
        if let error = error as? RESPDecodingError {
            return ValkeyError(.protocolError, server: server, message: error.description)
        }
        return ValkeyError(.connectionClosed, server: server, message: "connection lost: \(error)")
    }

    private func failAndClose(_ error: ValkeyError, context: ChannelHandlerContext) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: ValkeyError) {
        guard failure == nil else { return }
        failure = error
        timeoutTask?.cancel()
        timeoutTask = nil
        let pendingSinks = sinks
        sinks.removeAll()
        let pendingWrites = outbound
        outbound.removeAll()
        headValues = []
        for sink in pendingSinks { sink.fail(error) }
        for write in pendingWrites { write.promise?.fail(error) }
    }

    // MARK: Timeout

    /// One timer at a time; it fires when nothing has progressed (see `processInbound`) for
    /// `commandTimeout` while work is pending, so a long pipeline that keeps making progress
    /// never times out.
    private func armTimeout(context: ChannelHandlerContext) {
        guard timeoutTask == nil else { return }
        scheduleTimeout(at: lastProgress + commandTimeout, context: context)
    }

    private func scheduleTimeout(at deadline: NIODeadline, context: ChannelHandlerContext) {
        timeoutTask = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            timeoutTask = nil
            guard failure == nil, !sinks.isEmpty, let context = self.context else { return }
            let due = lastProgress + commandTimeout
            if now >= due {
                let seconds = Duration.nanoseconds(commandTimeout.nanoseconds).secondsText
                failAndClose(ValkeyError(.timeout, server: server, message: "no reply for \(seconds) (the Valkey timeout) while commands were pending; the connection was closed"), context: context)
            } else {
                scheduleTimeout(at: due, context: context)
            }
        }
    }
}
