import RESP

/// What the stages need from Valkey, standalone or cluster: single commands and pipelines.
/// Every command of a batch must name its key first (argument 1) unless it takes none, and
/// multi-key commands must keep their keys in one cluster slot, so that a cluster client can
/// route each command by that key.
package protocol ValkeyClient: Sendable {
    /// `host:port` of the server (or the seed, for a cluster), for messages.
    var serverDescription: String { get }
    /// Sends one command; an error reply is thrown as `ValkeyError` of kind `.server`.
    func send<S: Sequence>(_ arguments: S) async throws -> RESPValue where S.Element: RESPArgument
    /// Sends every command of `batch` and returns the replies in the batch's order; error
    /// replies are `.error` values, only connection failures throw.
    func execute(_ batch: CommandBatch) async throws -> [RESPValue]
    /// Like `execute`, keeping only the error count and the first errors.
    func executeCountingErrors(_ batch: CommandBatch) async throws -> PipelineOutcome
    /// Waits until `required` replicas (nil: one where the primary has replicas, else none)
    /// hold every write sent so far, on every primary written to (SPEC §10); throws
    /// `.timeout` when they do not confirm within the command timeout.
    func waitForReplication(required: Int?) async throws
    func close() async
}

extension ValkeyClient {
    /// Sends one command; an error reply is thrown as `ValkeyError` of kind `.server`.
    package func send(_ arguments: String...) async throws -> RESPValue {
        try await send(arguments)
    }

    /// PING: whether the server serves commands now (a loading server answers LOADING).
    package func ping() async throws {
        _ = try await send("PING")
    }
}

extension ValkeyConnection: ValkeyClient {}
