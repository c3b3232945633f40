import NIOCore
import RESP

/// A Valkey Cluster seen as one server: routes each command by its key's hash slot, splits
/// pipelines per primary and sends the parts in parallel, and follows MOVED and ASK.
///
/// Temporary cluster states (TRYAGAIN, CLUSTERDOWN, LOADING) and lost connections are
/// retried with a bounded backoff; when the cluster stays unavailable the error thrown is of
/// kind `.connectionFailed` or `.connectionClosed` (exit 75: retry on the next schedule).
/// Re-sending is safe for the job's commands, which are all idempotent.
package final class ValkeyClusterClient: ValkeyClient {
    package let configuration: ValkeyConfiguration
    let topology: ValkeyClusterTopology
    private let seed: ClusterNodeAddress

    /// How often a batch is re-sent after TRYAGAIN, CLUSTERDOWN or LOADING before giving up.
    package static let retryLaterAttempts = 5
    /// How often a batch is re-sent after a node could not be reached before giving up.
    package static let connectionAttempts = 5
    /// Rounds of redirections (MOVED, ASK) one batch may go through.
    package static let redirectRounds = 16

    /// `host:port` of the seed node.
    package var serverDescription: String { configuration.serverDescription }

    private init(configuration: ValkeyConfiguration, topology: ValkeyClusterTopology) {
        self.configuration = configuration
        self.topology = topology
        seed = ClusterNodeAddress(host: configuration.host, port: configuration.port)
    }

    /// Connects to the seed node of `configuration` (or adopts `seedConnection`, already
    /// open to it) and loads the slot map with `CLUSTER SLOTS`.
    package static func connect(_ configuration: ValkeyConfiguration, seedConnection: ValkeyConnection? = nil) async throws -> ValkeyClusterClient {
        guard configuration.database == 0 else {
            throw ValkeyError(.invalidConfiguration, server: configuration.serverDescription,
                              message: "a cluster has only database 0: remove the /\(configuration.database) path from valkey-url")
        }
        let topology = ValkeyClusterTopology(configuration: configuration)
        if let seedConnection { await topology.adopt(seedConnection) }
        do {
            try await topology.refresh()
        } catch {
            await topology.closeAll()
            throw error
        }
        return ValkeyClusterClient(configuration: configuration, topology: topology)
    }

    /// The slot map as the client knows it now.
    package var slotMap: ClusterSlotMap {
        get async { await topology.map }
    }

    /// Reloads the slot map from the cluster.
    package func refreshSlotMap() async throws {
        try await topology.refresh()
    }

    /// One connection per primary that serves slots, e.g. to SCAN the whole keyspace (a SCAN
    /// sent through the client sees one node only).
    package func primaries() async throws -> [(node: ClusterNodeAddress, connection: ValkeyConnection)] {
        try await topology.primaries()
    }

    /// WAIT on every primary this client has an open connection to: the ones written to.
    package func waitForReplication(required: Int?) async throws {
        let connections = await topology.openConnections()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for connection in connections {
                group.addTask { try await connection.waitForReplication(required: required) }
            }
            try await group.waitForAll()
        }
    }

    package func close() async {
        await topology.closeAll()
    }

    // MARK: Commands

    /// Sends one command to the node serving its key; an error reply is thrown as
    /// `ValkeyError` of kind `.server`, naming that node.
    package func send<S: Sequence>(_ arguments: S) async throws -> RESPValue where S.Element: RESPArgument {
        var batch = CommandBatch()
        batch.append(arguments)
        let result = try await route(batch, counting: false)
        let reply = result.replies[0]
        if case .error(let message) = reply {
            throw ValkeyError(.server, server: (result.lastNode ?? seed).description, message: message)
        }
        return reply
    }

    package func execute(_ batch: CommandBatch) async throws -> [RESPValue] {
        guard !batch.isEmpty else { return [] }
        return try await route(batch, counting: false).replies
    }

    package func executeCountingErrors(_ batch: CommandBatch) async throws -> PipelineOutcome {
        guard !batch.isEmpty else { return PipelineOutcome() }
        return try await route(batch, counting: true).outcome
    }

    // MARK: Routing

    /// A command still to send, to the owner of its slot or, after ASK, to the named node.
    private struct Pending {
        var index: Int
        var ask: ClusterNodeAddress?
    }

    private struct Destination: Hashable {
        var node: ClusterNodeAddress
        var asking: Bool
    }

    private enum NodeReplies {
        case values([RESPValue])
        case outcome(PipelineOutcome)
    }

    private struct Routed {
        var replies: [RESPValue]
        var outcome: PipelineOutcome
        var lastNode: ClusterNodeAddress?
    }

    /// Sends every command of `batch` until each has a final reply. In counting mode only
    /// the outcome is kept (and, per round, the indices of the commands to re-send).
    private func route(_ batch: CommandBatch, counting: Bool) async throws -> Routed {
        let layout = try BatchLayout(batch.buffer, count: batch.count)
        var result = Routed(replies: counting ? [] : Array(repeating: .null, count: layout.count),
                            outcome: PipelineOutcome(commandCount: layout.count), lastNode: nil)
        var finalErrors: [(index: Int, message: String)] = []
        var pending = (0..<layout.count).map { Pending(index: $0, ask: nil) }
        // The last redirection or temporary error of each command being retried, reported
        // as its reply if the retries run out.
        var retryReplies: [Int: String] = [:]
        var retryLaterRounds = 0
        var connectionFailures = 0
        var rounds = 0
        while !pending.isEmpty {
            rounds += 1
            let map = await topology.map
            var destinations: [Destination: [Int]] = [:]
            for command in pending {
                let node: ClusterNodeAddress
                if let ask = command.ask {
                    node = ask
                } else if layout.slots[command.index] >= 0, let owner = map.node(for: UInt16(layout.slots[command.index])) {
                    node = owner
                } else {
                    node = map.servingNodes.first ?? seed
                }
                destinations[Destination(node: node, asking: command.ask != nil), default: []].append(command.index)
            }
            let whole = destinations.count == 1 && pending.count == layout.count && destinations.first?.key.asking == false
            let replies = await withTaskGroup(of: (Destination, [Int], Result<NodeReplies, any Error>).self) { group in
                for (destination, indices) in destinations {
                    let bytes = whole ? batch.buffer : Self.encode(indices, asking: destination.asking, from: batch.buffer, layout: layout)
                    group.addTask {
                        do {
                            let connection = try await self.topology.connection(to: destination.node)
                            if destination.asking {
                                let values = try await connection.execute(encoded: bytes, count: 2 * indices.count)
                                return (destination, indices, .success(.values(stride(from: 1, to: values.count, by: 2).map { values[$0] })))
                            }
                            if counting {
                                let outcome = try await connection.executeCountingErrors(encoded: bytes, count: indices.count)
                                return (destination, indices, .success(.outcome(outcome)))
                            }
                            return (destination, indices, .success(.values(try await connection.execute(encoded: bytes, count: indices.count))))
                        } catch {
                            return (destination, indices, .failure(error))
                        }
                    }
                }
                var all: [(Destination, [Int], Result<NodeReplies, any Error>)] = []
                for await reply in group { all.append(reply) }
                return all
            }

            var next: [Pending] = []
            var connectionError: ValkeyError?
            var retryLaterNode: ClusterNodeAddress?
            func retry(_ index: Int, _ message: String, from node: ClusterNodeAddress) async -> Bool {
                guard let redirect = ClusterRedirect(message) else { return false }
                switch redirect {
                case .moved(let slot, let owner):
                    await topology.moved(slot, to: owner.resolved(against: node))
                    next.append(Pending(index: index, ask: nil))
                case .ask(_, let target):
                    next.append(Pending(index: index, ask: target.resolved(against: node)))
                case .retryLater:
                    retryLaterNode = node
                    next.append(Pending(index: index, ask: nil))
                }
                retryReplies[index] = message
                return true
            }
            for (destination, indices, reply) in replies {
                switch reply {
                case .failure(let error):
                    // Only a node that could not be reached is tried again (after a refresh of
                    // the slot map); a connection lost mid-stage ends the run, since the node
                    // may have lost what it acknowledged (SPEC §10).
                    guard let error = error as? ValkeyError, error.kind == .connectionFailed else { throw error }
                    await topology.dropConnection(to: destination.node)
                    connectionError = error
                    next += indices.map { Pending(index: $0, ask: nil) }
                case .success(.values(let values)):
                    for (index, value) in zip(indices, values) {
                        if case .error(let message) = value, await retry(index, message, from: destination.node) { continue }
                        retryReplies[index] = nil
                        if counting {
                            if case .error(let message) = value {
                                result.outcome.errorCount += 1
                                finalErrors.append((index, message))
                            }
                        } else {
                            result.replies[index] = value
                        }
                        result.lastNode = destination.node
                    }
                case .success(.outcome(let outcome)):
                    for error in outcome.clusterRetries {
                        _ = await retry(indices[error.index], error.message, from: destination.node)
                    }
                    result.outcome.errorCount += outcome.errorCount - outcome.clusterRetries.count
                    for error in outcome.firstErrors where ClusterRedirect(error.message) == nil {
                        finalErrors.append((indices[error.index], error.message))
                    }
                    result.lastNode = destination.node
                }
            }

            if let connectionError {
                connectionFailures += 1
                guard connectionFailures < Self.connectionAttempts else {
                    throw ValkeyError(connectionError.kind, server: connectionError.server,
                                      message: "\(connectionError.message) (cluster node, \(connectionFailures) attempts)")
                }
                try await Task.sleep(for: Self.backoff(connectionFailures, first: .milliseconds(100)))
                try? await topology.refresh()
            } else if let retryLaterNode {
                retryLaterRounds += 1
                guard retryLaterRounds < Self.retryLaterAttempts else {
                    let message = next.lazy.compactMap { retryReplies[$0.index] }.first ?? "temporary cluster error"
                    throw ValkeyError(.connectionFailed, server: retryLaterNode.description,
                                      message: "the cluster is not available after \(retryLaterRounds) attempts: \(message)")
                }
                try await Task.sleep(for: Self.backoff(retryLaterRounds, first: .milliseconds(50)))
                if message(next, retryReplies, hasPrefix: "CLUSTERDOWN") { try? await topology.refresh() }
            }
            if rounds >= Self.redirectRounds && !next.isEmpty {
                // Redirected in circles: report the last redirection as the reply.
                for command in next {
                    let message = retryReplies[command.index] ?? "redirected too often"
                    if counting { finalErrors.append((command.index, message)) } else { result.replies[command.index] = .error(message) }
                }
                if counting { result.outcome.errorCount += next.count }
                next = []
            }
            pending = next
            if counting && finalErrors.count > 2 * PipelineOutcome.keptErrorLimit {
                finalErrors = Array(finalErrors.sorted { $0.index < $1.index }.prefix(PipelineOutcome.keptErrorLimit))
            }
        }
        if counting {
            result.outcome.firstErrors = Array(finalErrors.sorted { $0.index < $1.index }.prefix(PipelineOutcome.keptErrorLimit))
        }
        return result
    }

    private func message(_ pending: [Pending], _ messages: [Int: String], hasPrefix prefix: String) -> Bool {
        pending.contains { messages[$0.index]?.hasPrefix(prefix) == true }
    }

    /// `first`, doubled per attempt, at most one second.
    static func backoff(_ attempt: Int, first: Duration) -> Duration {
        min(first * (1 << min(attempt - 1, 10)), .seconds(1))
    }

    private static let asking: ByteBuffer = {
        var batch = CommandBatch()
        batch.append("ASKING")
        return batch.buffer
    }()

    /// Copies the bytes of the commands at `indices` (runs of neighbours in one go), each
    /// preceded by ASKING when `asking`.
    static func encode(_ indices: [Int], asking: Bool, from buffer: ByteBuffer, layout: BatchLayout) -> ByteBuffer {
        var output = ByteBufferAllocator().buffer(capacity: 0)
        buffer.withUnsafeReadableBytes { bytes in
            var capacity = 0
            for index in indices { capacity += layout.range(of: index).count }
            output.reserveCapacity(capacity + (asking ? indices.count * Self.asking.readableBytes : 0))
            var runStart = -1
            var runEnd = -1
            for index in indices {
                let range = layout.range(of: index)
                if asking {
                    output.writeImmutableBuffer(Self.asking)
                    output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[range]))
                } else if range.lowerBound == runEnd {
                    runEnd = range.upperBound
                } else {
                    if runStart >= 0 { output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<runEnd])) }
                    runStart = range.lowerBound
                    runEnd = range.upperBound
                }
            }
            if runStart >= 0 { output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<runEnd])) }
        }
        return output
    }
}
