import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import RESP
import Synchronization
import Timestamps

/// One connection to a Valkey (or Redis) server: single commands, pipelines and streams of pipelines.
///
/// Safe to share between tasks: every request goes through the channel, whose handler
/// keeps replies in command order.
package final class ValkeyConnection: Sendable {
    let channel: any Channel
    package let configuration: ValkeyConfiguration
    /// `host:port` of the server, for messages.
    package var serverDescription: String { configuration.serverDescription }
    /// 3 after a successful `HELLO 3`, 2 when the server only speaks RESP2.
    package let protocolVersion: Int
    /// HELLO's `mode` (`standalone`, `cluster`, `sentinel`), nil when the server did not say.
    package let serverMode: String?
    /// Replicas of this server, asked once (nil: not asked yet).
    private let knownReplicas = Mutex<Int?>(nil)

    private init(channel: any Channel, configuration: ValkeyConfiguration, protocolVersion: Int, serverMode: String?) {
        self.channel = channel
        self.configuration = configuration
        self.protocolVersion = protocolVersion
        self.serverMode = serverMode
    }

    /// Connects (within `connectTimeout`), negotiates TLS when configured, sends `HELLO 3`
    /// with the credentials, and selects the database.
    package static func connect(
        _ configuration: ValkeyConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ValkeyConnection {
        let server = configuration.serverDescription
        let sslContext = try configuration.usesTLS ? makeSSLContext(configuration) : nil
        let serverHostname = configuration.tlsServerName ?? configuration.host
        // An IP address cannot be sent as SNI; without a name NIOSSL verifies the IP SAN
        // against the address actually connected to.
        let sniHostname = isIPAddress(serverHostname) ? nil : serverHostname
        let commandTimeout = TimeAmount(configuration.commandTimeout)
        let eventLoop = eventLoopGroup.next()
        // Completed when the TLS handshake ends, so a rejected certificate is reported as a
        // TLS failure rather than as the closed channel HELLO would meet.
        let tlsHandshake = eventLoop.makePromise(of: Void.self)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: sniHostname))
                        try channel.pipeline.syncOperations.addHandler(TLSHandshakeWaiter(promise: tlsHandshake))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ValkeyChannelHandler(server: server, commandTimeout: commandTimeout))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
        } catch let error as NIOSSLExtraError {
            throw ValkeyError(.invalidConfiguration, server: server, message: "valkey-tls-server-name is not usable for TLS: \(error)")
        } catch {
            tlsHandshake.fail(ChannelError.ioOnClosedChannel)
            throw ValkeyError(.connectionFailed, server: server, message: "cannot connect: \(error)")
        }
        if sslContext == nil {
            tlsHandshake.succeed(())
        }
        // A server (or a partition) that accepts TCP but never answers the handshake would
        // otherwise hold the run forever: the handshake gets the connect timeout too.
        // (HELLO and AUTH then wait under the command timeout of the channel handler.)
        let handshakeTimer = sslContext == nil ? nil : eventLoop.scheduleTask(in: TimeAmount(configuration.connectTimeout)) {
            channel.pipeline.fireErrorCaught(ValkeyError(.timeout, server: server,
                message: "no TLS handshake within \(configuration.connectTimeout.secondsText); the connection was closed"))
        }
        do {
            try await tlsHandshake.futureResult.get()
            handshakeTimer?.cancel()
        } catch {
            handshakeTimer?.cancel()
            try? await channel.close()
            throw ValkeyChannelHandler.classify(error, server: server)
        }
        do {
            let (version, mode) = try await handshake(channel: channel, configuration: configuration)
            return ValkeyConnection(channel: channel, configuration: configuration, protocolVersion: version, serverMode: mode)
        } catch {
            try? await channel.close()
            throw error
        }
    }

    private static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    private static func makeSSLContext(_ configuration: ValkeyConfiguration) throws -> NIOSSLContext {
        func invalid(_ message: String) -> ValkeyError {
            ValkeyError(.invalidConfiguration, server: configuration.serverDescription, message: message)
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .fullVerification
        if let caFile = configuration.caFile {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw invalid("valkey-ca-file: cannot load PEM certificates from \(caFile): \(error)")
            }
        }
        if let certFile = configuration.certFile, let keyFile = configuration.keyFile {
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
            } catch {
                throw invalid("valkey-cert-file: cannot load a PEM certificate from \(certFile): \(error)")
            }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } catch {
                throw invalid("valkey-key-file: cannot load a PEM private key from \(keyFile): \(error)")
            }
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw invalid("TLS settings rejected (does the key match the certificate?): \(error)")
        }
    }

    private static func handshake(channel: any Channel, configuration: ValkeyConfiguration) async throws -> (Int, String?) {
        let server = configuration.serverDescription
        var hello = CommandBatch()
        var arguments = ["HELLO", "3"]
        if let password = configuration.password {
            arguments += ["AUTH", configuration.username ?? "default", password]
        }
        if let name = configuration.clientName {
            arguments += ["SETNAME", name]
        }
        hello.append(arguments)
        var version = 3
        let reply = try await submitSingle(hello.buffer, on: channel, server: server)
        let mode = reply.mapEntries?.first { $0.key.string == "mode" }?.value.string
        if case .error(let message) = reply {
            if isAuthenticationError(message) {
                throw ValkeyError(.authenticationFailed, server: server, message: "the server rejected the credentials: \(message)")
            }
            guard message.hasPrefix("NOPROTO") || message.lowercased().contains("unknown command") else {
                throw ValkeyError(.protocolError, server: server, message: "HELLO failed: \(message)")
            }
            // A RESP2-only server: authenticate the old way.
            version = 2
            if let password = configuration.password {
                var auth = CommandBatch()
                if let username = configuration.username {
                    auth.append("AUTH", username, password)
                } else {
                    auth.append("AUTH", password)
                }
                if case .error(let message) = try await submitSingle(auth.buffer, on: channel, server: server) {
                    throw ValkeyError(.authenticationFailed, server: server, message: "the server rejected the credentials: \(message)")
                }
            }
        }
        if configuration.database != 0 {
            var select = CommandBatch()
            select.append("SELECT", String(configuration.database))
            if case .error(let message) = try await submitSingle(select.buffer, on: channel, server: server) {
                throw ValkeyError(.invalidConfiguration, server: server, message: "database \(configuration.database) from the valkey-url path was rejected: \(message)")
            }
        }
        return (version, mode)
    }

    private static func isAuthenticationError(_ message: String) -> Bool {
        message.hasPrefix("WRONGPASS") || message.hasPrefix("NOAUTH") || message.hasPrefix("NOPERM")
            || message.hasPrefix("ERR AUTH") || message.contains("invalid password")
    }

    // MARK: Commands

    /// Sends one command; an error reply is thrown as `ValkeyError` of kind `.server`.
    package func send(_ arguments: String...) async throws -> RESPValue {
        try await send(arguments)
    }

    /// Sends one command; an error reply is thrown as `ValkeyError` of kind `.server`.
    package func send<S: Sequence>(_ arguments: S) async throws -> RESPValue where S.Element: RESPArgument {
        var batch = CommandBatch()
        batch.append(arguments)
        let reply = try await Self.submitSingle(batch.buffer, on: channel, server: serverDescription)
        if case .error(let message) = reply {
            throw ValkeyError(.server, server: serverDescription, message: message)
        }
        return reply
    }

    /// Sends every command of `batch` in one go and returns the replies in order. Error
    /// replies are returned as `.error` values; only connection failures throw.
    package func execute(_ batch: CommandBatch) async throws -> [RESPValue] {
        try await execute(encoded: batch.buffer, count: batch.count)
    }

    /// `execute` for `count` commands already encoded in `bytes`, e.g. a cluster node's share
    /// of a batch.
    func execute(encoded bytes: ByteBuffer, count: Int) async throws -> [RESPValue] {
        guard count > 0 else { return [] }
        let promise = channel.eventLoop.makePromise(of: [RESPValue].self)
        return try await submit(.collect(bytes, count: count, promise), promise)
    }

    /// Like `execute`, but keeps no replies: memory stays bounded whatever the batch size.
    package func executeCountingErrors(_ batch: CommandBatch) async throws -> PipelineOutcome {
        try await executeCountingErrors(encoded: batch.buffer, count: batch.count)
    }

    /// `executeCountingErrors` for `count` commands already encoded in `bytes`.
    func executeCountingErrors(encoded bytes: ByteBuffer, count: Int) async throws -> PipelineOutcome {
        guard count > 0 else { return PipelineOutcome() }
        let promise = channel.eventLoop.makePromise(of: PipelineOutcome.self)
        return try await submit(.counting(bytes, count: count, promise), promise)
    }

    /// Replies of a batch written with `enqueue`.
    package struct PendingReplies: Sendable {
        let future: EventLoopFuture<[RESPValue]>
        let server: String

        /// The replies in order, as `execute` returns them.
        package func get() async throws -> [RESPValue] {
            do {
                return try await future.get()
            } catch {
                throw ValkeyChannelHandler.classify(error, server: server)
            }
        }
    }

    /// Writes `batch` at once and returns without waiting for its replies: batches enqueued
    /// one after another reach the server in that order, so a caller may keep several in
    /// flight. Bounded like `execute` by the command timeout.
    package func enqueue(_ batch: CommandBatch) -> PendingReplies {
        let promise = channel.eventLoop.makePromise(of: [RESPValue].self)
        write(.collect(batch.buffer, count: batch.count, promise), failing: promise)
        return PendingReplies(future: promise.futureResult, server: serverDescription)
    }

    /// False once the connection is closed, by either side.
    var isActive: Bool { channel.isActive }

    /// Writes batch after batch while replies are being read, for streams of millions of
    /// commands: a new batch is taken only once the one before last reached the socket, so
    /// at most about two batches are in memory. Error indices count from the stream's start.
    package func executeStreaming<Batches: AsyncSequence>(_ batches: Batches) async throws -> PipelineOutcome
    where Batches.Element == CommandBatch {
        var iterator = batches.makeAsyncIterator()
        return try await executeStreaming { try await iterator.next() }
    }

    /// The producer form of `executeStreaming`: `nextBatch` returns nil when done.
    package func executeStreaming(nextBatch: () async throws -> CommandBatch?) async throws -> PipelineOutcome {
        var total = PipelineOutcome()
        var written = 0
        var writes = CircularBuffer<EventLoopFuture<Void>>()
        var replies = CircularBuffer<(offset: Int, future: EventLoopFuture<PipelineOutcome>)>()
        func awaitReply() async throws {
            let (offset, future) = replies.removeFirst()
            total.merge(try await mapErrors { try await future.get() }, offset: offset)
        }
        while let batch = try await nextBatch() {
            guard !batch.isEmpty else { continue }
            let promise = channel.eventLoop.makePromise(of: PipelineOutcome.self)
            writes.append(write(.counting(batch.buffer, count: batch.count, promise), failing: promise))
            replies.append((written, promise.futureResult))
            written += batch.count
            if writes.count >= 2 {
                let oldest = writes.removeFirst()
                try await mapErrors { try await oldest.get() }
            }
            // Replies of long-finished batches are folded in so the list stays short.
            while replies.count > 16 {
                try await awaitReply()
            }
        }
        while !replies.isEmpty {
            try await awaitReply()
        }
        return total
    }

    // MARK: Replication

    /// Replicas connected to this server: `connected_slaves` of `INFO replication`, else the
    /// replicas `ROLE` lists; 0 when both are refused (an ACL without them). Asked once.
    package func replicaCount() async throws -> Int {
        if let known = knownReplicas.withLock({ $0 }) { return known }
        var count = 0
        if let info = try? await send("INFO", "replication").string,
           let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("connected_slaves:") }) {
            count = Int(line.dropFirst("connected_slaves:".count).filter { !$0.isWhitespace }) ?? 0
        } else if let role = try? await send("ROLE").array, role.first?.string == "master", role.count >= 3 {
            count = role[2].array?.count ?? 0
        }
        knownReplicas.withLock { $0 = count }
        return count
    }

    package func waitForReplication(required: Int?) async throws {
        let count: Int
        if let required { count = required } else { count = min(1, try await replicaCount()) }
        guard count > 0 else { return }
        // WAIT's own limit stays under the connection's, so that the reply says how many
        // replicas confirmed before the connection would be given up.
        let (seconds, attoseconds) = configuration.commandTimeout.components
        let milliseconds = max(1, Int((Double(seconds) + Double(attoseconds) / 1e18) * 900))
        let confirmed = try await send("WAIT", String(count), String(milliseconds)).int ?? 0
        guard confirmed >= count else {
            throw ValkeyError(.timeout, server: serverDescription,
                              message: "only \(confirmed) of \(count) replica(s) confirmed the writes within \(milliseconds)ms (the Valkey timeout); the watermark stays before them")
        }
    }

    /// Closes the connection; pending commands fail with `.connectionClosed`.
    package func close() async {
        try? await channel.close()
    }

    // MARK: Plumbing

    private func submit<T: Sendable>(_ request: ValkeyRequest, _ promise: EventLoopPromise<T>) async throws -> T {
        write(request, failing: promise)
        return try await mapErrors { try await promise.futureResult.get() }
    }

    /// Writes `request`; a failed write fails `promise` (the request's own) with the error
    /// classified. Returns the write's future, which completes once the bytes reached the socket.
    @discardableResult
    private func write<T: Sendable>(_ request: ValkeyRequest, failing promise: EventLoopPromise<T>) -> EventLoopFuture<Void> {
        let writePromise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(request, promise: writePromise)
        writePromise.futureResult.whenFailure { [server = serverDescription] error in
            promise.fail(ValkeyChannelHandler.classify(error, server: server))
        }
        return writePromise.futureResult
    }

    private static func submitSingle(_ bytes: ByteBuffer, on channel: any Channel, server: String) async throws -> RESPValue {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        let writePromise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(ValkeyRequest.single(bytes, promise), promise: writePromise)
        writePromise.futureResult.whenFailure { error in
            promise.fail(ValkeyChannelHandler.classify(error, server: server))
        }
        do {
            return try await promise.futureResult.get()
        } catch {
            throw ValkeyChannelHandler.classify(error, server: server)
        }
    }

    private func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw ValkeyChannelHandler.classify(error, server: serverDescription)
        }
    }
}

/// Reports the end of the TLS handshake: success, or the error that ended it.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let promise: EventLoopPromise<Void>
    private var done = false

    init(promise: EventLoopPromise<Void>) {
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, !done {
            done = true
            promise.succeed(())
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            promise.fail(error)
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            promise.fail(ChannelError.ioOnClosedChannel)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if !done {
            done = true
            promise.fail(ChannelError.ioOnClosedChannel)
        }
    }
}
