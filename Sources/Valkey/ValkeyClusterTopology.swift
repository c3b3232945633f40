import NIOCore
import NIOPosix
import RESP

/// The cluster client's shared state: the slot map and one connection per node.
actor ValkeyClusterTopology {
    private let configuration: ValkeyConfiguration
    private let seed: ClusterNodeAddress
    private(set) var map = ClusterSlotMap()
    private var connections: [ClusterNodeAddress: Task<ValkeyConnection, any Error>] = [:]
    private var refreshing: Task<Void, any Error>?

    init(configuration: ValkeyConfiguration) {
        self.configuration = configuration
        seed = ClusterNodeAddress(host: configuration.host, port: configuration.port)
    }

    /// Uses an open connection to the seed instead of opening another one.
    func adopt(_ connection: ValkeyConnection) {
        connections[seed] = Task { connection }
    }

    /// The configuration for one node: the seed's credentials, timeouts and TLS files. For TLS
    /// the certificate is checked against the configured server name, or the seed's host name
    /// when nodes announce IP addresses behind a DNS name.
    func configuration(for node: ClusterNodeAddress) -> ValkeyConfiguration {
        var copy = configuration
        copy.host = node.host
        copy.port = node.port
        if copy.usesTLS && copy.tlsServerName == nil && node.host != seed.host
            && (try? SocketAddress(ipAddress: seed.host, port: 0)) == nil {
            copy.tlsServerName = seed.host
        }
        return copy
    }

    /// The open connection to `node`, connecting when there is none yet (or the last attempt
    /// failed). A connection that was open and closed is never replaced: the node may have
    /// restarted and lost writes it had acknowledged, which only a new run can restore.
    func connection(to node: ClusterNodeAddress) async throws -> ValkeyConnection {
        if let task = connections[node] {
            if let connection = try? await task.value {
                if connection.isActive { return connection }
                throw ValkeyError(.connectionClosed, server: node.description,
                                  message: "the connection to this cluster node was lost; the run does not reconnect, since a restarted node may have lost acknowledged writes")
            }
            drop(node, task: task)
        }
        let nodeConfiguration = configuration(for: node)
        let task = Task { try await ValkeyConnection.connect(nodeConfiguration) }
        connections[node] = task
        do {
            return try await task.value
        } catch {
            drop(node, task: task)
            throw error
        }
    }

    /// Forgets (and closes) the connection to `node` after it failed.
    func dropConnection(to node: ClusterNodeAddress) {
        if let task = connections[node] { drop(node, task: task) }
    }

    private func drop(_ node: ClusterNodeAddress, task: Task<ValkeyConnection, any Error>) {
        guard let current = connections[node], current == task else { return }
        connections[node] = nil
        Task { if let connection = try? await task.value { await connection.close() } }
    }

    func moved(_ slot: UInt16, to node: ClusterNodeAddress) {
        map.assign(slot, to: node)
    }

    /// Reloads the slot map with `CLUSTER SLOTS` from the first node that answers (the known
    /// primaries, then the seed). Concurrent callers share one reload.
    func refresh() async throws {
        if let refreshing {
            return try await refreshing.value
        }
        let task = Task { try await self.reload() }
        refreshing = task
        defer { refreshing = nil }
        try await task.value
    }

    private func reload() async throws {
        var candidates = map.servingNodes
        if !candidates.contains(seed) { candidates.append(seed) }
        for node in map.nodes where !candidates.contains(node) { candidates.append(node) }
        var lastError: (any Error)?
        for node in candidates {
            do {
                let connection = try await connection(to: node)
                let reply = try await connection.send("CLUSTER", "SLOTS")
                let fresh = try ClusterSlotMap(clusterSlots: reply, queried: node)
                guard !fresh.nodes.isEmpty else {
                    throw ValkeyError(.protocolError, server: node.description, message: "CLUSTER SLOTS lists no node: is the cluster created?")
                }
                map = fresh
                return
            } catch let error as ValkeyError where error.kind == .authenticationFailed || error.kind == .invalidConfiguration || error.kind == .tlsFailed {
                throw error
            } catch {
                dropConnection(to: node)
                lastError = error
            }
        }
        throw lastError ?? ValkeyError(.connectionFailed, server: seed.description, message: "no cluster node answered CLUSTER SLOTS")
    }

    /// The open connections to primaries that serve slots, without connecting to others.
    func openConnections() async -> [ValkeyConnection] {
        var result: [ValkeyConnection] = []
        for node in map.servingNodes {
            if let task = connections[node], let connection = try? await task.value, connection.isActive {
                result.append(connection)
            }
        }
        return result
    }

    /// Open connections to every primary that serves slots, connecting as needed.
    func primaries() async throws -> [(node: ClusterNodeAddress, connection: ValkeyConnection)] {
        var result: [(node: ClusterNodeAddress, connection: ValkeyConnection)] = []
        for node in map.servingNodes {
            result.append((node, try await connection(to: node)))
        }
        return result
    }

    func closeAll() async {
        let tasks = connections.values
        connections = [:]
        for task in tasks {
            if let connection = try? await task.value { await connection.close() }
        }
    }
}
