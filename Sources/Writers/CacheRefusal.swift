import RESP
import Valkey

/// Valkey answered commands of a batch with error replies: what the batch was doing, how many
/// commands were refused, and the first reply in the server's words. A writer never puts a
/// value (an API key string) into `what`.
package struct CacheRefusal: Error, Sendable, CustomStringConvertible {
    package var server: String
    package var what: String
    package var reply: String
    package var refused: Int

    package init(server: String, what: String, reply: String, refused: Int = 1) {
        self.server = server
        self.what = what
        self.reply = reply
        self.refused = refused
    }

    /// READONLY, LOADING, ...: a later run gets past it (SPEC §10).
    package var isTemporary: Bool { ValkeyReply.isTemporary(reply) }

    package var description: String {
        "Valkey \(server) refused \(what)\(refused > 1 ? " (\(refused) commands)" : ""): \(reply)"
    }
}

extension ValkeyClient {
    /// Sends `batch` and returns its replies; any error reply throws `CacheRefusal` naming `what`.
    package func sendAll(_ batch: CommandBatch, doing what: String) async throws -> [RESPValue] {
        guard !batch.isEmpty else { return [] }
        return try refuseOnErrors(try await execute(batch), doing: what)
    }

    /// `replies`, unless one is an error: then `CacheRefusal` naming `what` and the first.
    package func refuseOnErrors(_ replies: [RESPValue], doing what: String) throws -> [RESPValue] {
        let errors = replies.filter(\.isError)
        if let first = errors.first {
            throw CacheRefusal(server: serverDescription, what: what, reply: first.errorMessage ?? "?", refused: errors.count)
        }
        return replies
    }

    /// Sends `batch`, keeping no replies (large batches); any error reply throws `CacheRefusal`.
    package func sendCounting(_ batch: CommandBatch, doing what: String) async throws {
        guard !batch.isEmpty else { return }
        try refuseOnErrors(try await executeCountingErrors(batch), doing: what)
    }

    /// Sends `batches` in order, keeping no replies. On a standalone server they are streamed
    /// on the connection (the server applies one while the next is built) and the first error
    /// reply throws `CacheRefusal` once all were sent; a cluster gets them one pipeline at a time.
    package func sendCounting(_ batches: some Sequence<CommandBatch>, doing what: String) async throws {
        guard let connection = self as? ValkeyConnection else {
            for batch in batches { try await sendCounting(batch, doing: what) }
            return
        }
        var iterator = batches.makeIterator()
        try refuseOnErrors(try await connection.executeStreaming { iterator.next() }, doing: what)
    }

    private func refuseOnErrors(_ outcome: PipelineOutcome, doing what: String) throws {
        if let first = outcome.firstErrors.first {
            throw CacheRefusal(server: serverDescription, what: what, reply: first.message, refused: outcome.errorCount)
        }
    }
}
