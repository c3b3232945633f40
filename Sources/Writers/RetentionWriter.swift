import RESP
import Timestamps
import Valkey

/// Retention of one log table's keys (SPEC §6): the global index's expired members name the
/// entry hashes to delete; every registered per-API-key and per-asset index is trimmed, and
/// forgotten once empty. Each call is one bounded chunk, so the caller decides where to stop.
package struct RetentionWriter: Sendable {
    package let templates: KeyTemplates
    package let table: LogTable
    /// The score bound of expired members: strictly below the cutoff's score.
    package let bound: String

    package init(templates: KeyTemplates, table: LogTable, cutoff: Timestamp) {
        self.templates = templates
        self.table = table
        self.bound = "(" + cutoff.unixSecondsMillisTruncated
    }

    package var globalIndex: String { templates.key(table.indexes[0]) }
    package var registry: String { templates.indexRegistryKey(table: table.name) }

    /// An entry key made from the id alone can be named from the index; entries under any
    /// other template expire by their own EXPIREAT.
    package var entriesNamedByID: Bool { templates[table.entry].fields.allSatisfy { $0 == "id" } }

    /// How many members of the global index have expired (a dry run's count).
    package func expiredCount(_ valkey: any ValkeyClient) async throws -> Int {
        Int(try await valkey.send("ZCOUNT", globalIndex, "-inf", bound).int ?? 0)
    }

    /// The first `limit` expired members of the global index: the ids of the first chunk.
    package func expiredIDs(limit: Int, _ valkey: any ValkeyClient) async throws -> [String] {
        let reply = try await valkey.send(readExpired(limit: limit))
        return (reply.array ?? []).compactMap(\.string)
    }

    /// Removes `ids` (expired members of the global index) and their entry hashes, and reads
    /// the next chunk of up to `limit` expired ids in the same round trip: the read comes
    /// after the removal in the pipeline, so it never returns the ids just removed.
    /// Returns the entries and members removed, and the next chunk (empty: nothing is left).
    package func removeExpiredEntries(_ ids: [String], thenRead limit: Int,
                                      _ valkey: any ValkeyClient) async throws -> (entries: Int, members: Int, next: [String]) {
        guard !ids.isEmpty else { return (0, 0, []) }
        var batch = CommandBatch()
        if entriesNamedByID {
            // One UNLINK per entry: in cluster mode the entries live in different slots.
            let template = templates[table.entry]
            for id in ids {
                if let key = template.render(prefix: templates.prefix, ["id": id]) { batch.append("UNLINK", key) }
            }
        }
        let unlinks = batch.count
        batch.append(["ZREM", globalIndex] + ids)
        batch.append(readExpired(limit: limit))
        let replies = try await valkey.sendAll(batch, doing: "removing expired \(table.name) entries")
        let entries = replies.prefix(unlinks).reduce(0) { $0 + Int($1.int ?? 0) }
        let next = (replies.last?.array ?? []).compactMap(\.string)
        return (entries, Int(replies[unlinks].int ?? 0), next)
    }

    private func readExpired(limit: Int) -> [String] {
        ["ZRANGEBYSCORE", globalIndex, "-inf", bound, "LIMIT", "0", String(limit)]
    }

    /// Visits the registered index keys chunk by chunk (the global index, trimmed with its
    /// entries, left out) until `visit` returns false.
    package func indexKeys(chunk: Int, _ valkey: any ValkeyClient, _ visit: ([String]) async throws -> Bool) async throws {
        let global = globalIndex
        try await SetScan.chunks(of: registry, count: chunk, in: valkey) { keys in
            try await visit(keys.filter { $0 != global })
        }
    }

    /// Counts the expired members of `keys` (a dry run).
    package func expiredMembers(of keys: [String], _ valkey: any ValkeyClient) async throws -> Int {
        var batch = CommandBatch()
        for key in keys { batch.append("ZCOUNT", key, "-inf", bound) }
        return try await valkey.sendAll(batch, doing: "counting expired \(table.name) index members").reduce(0) { $0 + Int($1.int ?? 0) }
    }

    /// Trims `keys` and forgets those left empty; returns the members removed.
    package func trim(_ keys: [String], _ valkey: any ValkeyClient) async throws -> Int {
        guard !keys.isEmpty else { return 0 }
        var batch = CommandBatch()
        for key in keys {
            batch.append("ZREMRANGEBYSCORE", key, "-inf", bound)
            batch.append("EXISTS", key)
        }
        let replies = try await valkey.sendAll(batch, doing: "trimming \(table.name) indexes")
        var members = 0
        var emptied: [String] = []
        for (offset, key) in keys.enumerated() {
            members += Int(replies[2 * offset].int ?? 0)
            if replies[2 * offset + 1].int == 0 { emptied.append(key) }
        }
        if !emptied.isEmpty {
            // SSCAN tolerates removals during the iteration.
            var forget = CommandBatch()
            forget.append(["SREM", registry] + emptied)
            _ = try await valkey.sendAll(forget, doing: "forgetting emptied \(table.name) indexes")
        }
        return members
    }
}
