import NIOCore
import NIOPosix

/// A loopback server that answers whatever it is sent with bytes a test chooses: a reply
/// cut off in the middle, deeply nested aggregates, or an endless stream of attributes. It
/// stands in for a broken or hostile server behind a Valkey address.
package final class HostileRESPServer: Sendable {
    package enum Behaviour: Sendable {
        /// Sends these bytes once, then nothing more, keeping the connection open.
        case once([UInt8])
        /// Sends these bytes again and again while the client keeps reading.
        case forever([UInt8])
    }

    package let port: Int
    private let server: any Channel

    package static func start(_ behaviour: Behaviour) async throws -> HostileRESPServer {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Answerer(behaviour: behaviour))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return HostileRESPServer(server: server)
    }

    private init(server: any Channel) {
        self.server = server
        self.port = server.localAddress?.port ?? 0
    }

    package func stop() async {
        try? await server.close()
    }
}

private final class Answerer: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let behaviour: HostileRESPServer.Behaviour
    var answered = false

    init(behaviour: HostileRESPServer.Behaviour) {
        self.behaviour = behaviour
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        answered = true
        switch behaviour {
        case .once(let bytes):
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
        case .forever(let bytes):
            var chunk = context.channel.allocator.buffer(capacity: 64 * 1024)
            while chunk.readableBytes + bytes.count <= 64 * 1024 { chunk.writeBytes(bytes) }
            keepWriting(context: context, chunk: chunk)
        }
    }

    /// Writes `chunk` whenever the previous one left, until the client goes away: bounded by
    /// the client, never by the server.
    private func keepWriting(context: ChannelHandlerContext, chunk: ByteBuffer) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(chunk)).whenSuccess {
            let (answerer, context) = loopBound.value
            guard context.channel.isActive else { return }
            answerer.keepWriting(context: context, chunk: chunk)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
