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
        let replies = try await execute(batch)
        let errors = replies.filter(\.isError)
        if let first = errors.first {
            throw CacheRefusal(server: serverDescription, what: what, reply: first.errorMessage ?? "?", refused: errors.count)
        }
        return replies
    }

    /// Sends `batch`, keeping no replies (large batches); any error reply throws `CacheRefusal`.
    package func sendCounting(_ batch: CommandBatch, doing what: String) async throws {
        guard !batch.isEmpty else { return }
        let outcome = try await executeCountingErrors(batch)
        if let first = outcome.firstErrors.first {
            throw CacheRefusal(server: serverDescription, what: what, reply: first.message, refused: outcome.errorCount)
        }
    }
}

/// The members of a set, read with SSCAN in chunks: registries of API keys and index keys.
package enum SetScan {
    /// Visits the members of `key` chunk by chunk until the end or until `visit` returns false.
    /// A member may be visited twice (SSCAN's guarantee); removals while visiting are safe.
    package static func chunks(of key: String, count: Int = 1000, in valkey: any ValkeyClient,
                               _ visit: ([String]) async throws -> Bool) async throws {
        var cursor = "0"
        repeat {
            let reply = try await valkey.send("SSCAN", key, cursor, "COUNT", String(count))
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw ValkeyError(.protocolError, server: valkey.serverDescription, message: "unexpected SSCAN reply for \(key)")
            }
            cursor = next
            guard try await visit((parts[1].array ?? []).compactMap(\.string)) else { return }
        } while cursor != "0"
    }

    /// Every member of `key`.
    package static func members(of key: String, in valkey: any ValkeyClient) async throws -> Set<String> {
        var members = Set<String>()
        try await chunks(of: key, in: valkey) { chunk in
            members.formUnion(chunk)
            return true
        }
        return members
    }
}

extension Array {
    /// Consecutive slices of at most `size` elements.
    package func chunks(of size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
