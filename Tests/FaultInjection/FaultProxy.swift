import NIOCore
import NIOPosix
import Synchronization

/// A loopback TCP proxy that a test puts between the job and a real server, to make the
/// network fail the way it does in production: it passes bytes, stalls (keeps every socket
/// open and moves nothing, as a partition or a stopped process does), or resets every
/// connection (RST, as a failover or a crashed middlebox does).
package final class FaultProxy: Sendable {
    package enum Mode: Sendable, Equatable {
        /// Bytes flow both ways.
        case pass
        /// Connections are accepted and kept, but no byte moves in either direction.
        case stall
        /// Every open connection, and every new one, ends with a TCP reset.
        case reset
    }

    /// The port the proxy listens on, at 127.0.0.1.
    package let port: Int
    private let state: ProxyState
    private let server: any Channel
    private let group: MultiThreadedEventLoopGroup

    /// Listens on an ephemeral loopback port and forwards to `host:port`.
    ///
    /// The proxy has an event loop thread of its own: on the shared one, another test's
    /// large reply could hold its bytes back for seconds, and the job would see a stall that
    /// the test never made.
    package static func start(to host: String, port upstreamPort: Int, mode: Mode = .pass) async throws -> FaultProxy {
        let state = ProxyState(mode: mode)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                state.accepted.wrappingAdd(1, ordering: .relaxed)
                state.track(inbound)
                switch state.currentMode {
                case .reset:
                    FaultProxy.reset(inbound)
                    return inbound.eventLoop.makeSucceededVoidFuture()
                case .stall:
                    // Accepted by the kernel, never answered: a server that stopped.
                    return inbound.eventLoop.makeSucceededVoidFuture()
                case .pass:
                    break
                }
                let inboundForwarder = Forwarder(state: state)
                return inbound.pipeline.addHandler(inboundForwarder).flatMap {
                    ClientBootstrap(group: inbound.eventLoop)
                        .channelInitializer { upstream in
                            upstream.pipeline.addHandler(Forwarder(state: state, partner: inbound))
                        }
                        .connect(host: host, port: upstreamPort)
                        .map { upstream in
                            state.track(upstream)
                            inboundForwarder.partner = upstream
                            inbound.setOption(.autoRead, value: true).whenComplete { _ in }
                        }
                }.flatMapErrorThrowing { error in
                    inbound.close(promise: nil)
                    throw error
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return FaultProxy(server: server, state: state, group: group)
    }

    private init(server: any Channel, state: ProxyState, group: MultiThreadedEventLoopGroup) {
        self.server = server
        self.state = state
        self.group = group
        self.port = server.localAddress?.port ?? 0
    }

    /// Connections accepted since the start.
    package var connectionsAccepted: Int { state.accepted.load(ordering: .relaxed) }

    /// Changes what the proxy does from now on; `.reset` also resets every open connection.
    package func set(_ newMode: Mode) {
        state.mode.withLock { $0 = newMode }
        if newMode == .reset {
            for channel in state.open.withLock({ $0 }) { Self.reset(channel) }
        }
    }

    /// Stops listening and closes every connection.
    package func stop() async {
        try? await server.close()
        for channel in state.open.withLock({ $0 }) { try? await channel.close() }
        try? await group.shutdownGracefully()
    }

    /// Closes with SO_LINGER 0, so that the peer gets an RST rather than a FIN.
    static func reset(_ channel: any Channel) {
        channel.eventLoop.execute {
            if let provider = channel as? any SocketOptionProvider {
                provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
            } else {
                channel.close(promise: nil)
            }
        }
    }
}

/// What the proxy and its forwarders share.
private final class ProxyState: Sendable {
    let mode: Mutex<FaultProxy.Mode>
    let open = Mutex<[any Channel]>([])
    let accepted = Atomic<Int>(0)

    init(mode: FaultProxy.Mode) {
        self.mode = Mutex(mode)
    }

    var currentMode: FaultProxy.Mode { mode.withLock { $0 } }

    func track(_ channel: any Channel) {
        open.withLock { $0.append(channel) }
    }
}

/// Copies what one side reads to the other while the proxy passes; drops it while it stalls.
private final class Forwarder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let state: ProxyState
    var partner: (any Channel)?

    init(state: ProxyState, partner: (any Channel)? = nil) {
        self.state = state
        self.partner = partner
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state.currentMode == .pass, let partner else { return }
        partner.writeAndFlush(data, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // One side gone: the other side goes too, unless the proxy stalls (then a partition
        // keeps the peer's socket open, as the real network would).
        if state.currentMode != .stall { partner?.close(promise: nil) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
