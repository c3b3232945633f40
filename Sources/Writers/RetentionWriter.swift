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
        ids(in: try await valkey.send(readExpired(offset: 0, limit: limit)))
    }

    /// What one removal pipeline did: the entries and members removed, and the ids read after.
    package struct Removal: Sendable {
        package var entries = 0
        package var members = 0
        /// Expired ids read after the removal (empty: none there).
        package var next: [String] = []
    }

    /// Removes `ids` (expired members of the global index) and their entry hashes, and reads
    /// the next chunk of up to `limit` expired ids in the same round trip: the read comes
    /// after the removal in the pipeline, so it never returns the ids just removed.
    package func removeExpiredEntries(_ ids: [String], thenRead limit: Int,
                                      _ valkey: any ValkeyClient) async throws -> Removal {
        guard !ids.isEmpty else { return Removal() }
        let (batch, unlinks) = removal(of: ids, thenRead: limit, skipping: 0)
        return removed(try await valkey.sendAll(batch, doing: removing), unlinks: unlinks)
    }

    /// `removeExpiredEntries` for a standalone server, with up to two pipelines in flight, so
    /// that Valkey works while this process reads one chunk's replies and builds the next.
    /// Each pipeline reads the expired ids one chunk further on (the chunk after the one
    /// already on its way); a last read from the start, once both are drained, catches
    /// any member that moved under the offsets. `proceed` is asked before each pipeline.
    package func removeAllExpiredEntries(chunk: Int, on connection: ValkeyConnection,
                                         proceed: () async -> Bool) async throws -> Removal {
        var total = Removal()
        var known = try await expiredIDs(limit: 2 * chunk, connection)
        var inFlight: [(replies: ValkeyConnection.PendingReplies, unlinks: Int)] = []
        while true {
            while inFlight.count < 2, !known.isEmpty, await proceed() {
                let ids = Array(known.prefix(chunk))
                known.removeFirst(ids.count)
                let (batch, unlinks) = removal(of: ids, thenRead: chunk, skipping: chunk)
                inFlight.append((connection.enqueue(batch), unlinks))
            }
            guard !inFlight.isEmpty else {
                guard await proceed() else { return total }
                known = try await expiredIDs(limit: 2 * chunk, connection)
                if known.isEmpty { return total }
                continue
            }
            let first = inFlight.removeFirst()
            let replies = try connection.refuseOnErrors(try await first.replies.get(), doing: removing)
            let removal = removed(replies, unlinks: first.unlinks)
            total.entries += removal.entries
            total.members += removal.members
            known += removal.next
        }
    }

    private var removing: String { "removing expired \(table.name) entries" }

    /// The pipeline of one chunk: the entries' UNLINKs, one ZREM of the ids from the global
    /// index, then the read of the next expired ids; and how many UNLINKs lead it.
    private func removal(of ids: [String], thenRead limit: Int, skipping skip: Int) -> (CommandBatch, unlinks: Int) {
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
        batch.append(readExpired(offset: skip, limit: limit))
        return (batch, unlinks)
    }

    private func removed(_ replies: [RESPValue], unlinks: Int) -> Removal {
        Removal(entries: replies.prefix(unlinks).reduce(0) { $0 + Int($1.int ?? 0) },
                members: Int(replies[unlinks].int ?? 0),
                next: ids(in: replies[replies.count - 1]))
    }

    private func ids(in reply: RESPValue) -> [String] {
        (reply.array ?? []).compactMap(\.string)
    }

    private func readExpired(offset: Int, limit: Int) -> [String] {
        ["ZRANGEBYSCORE", globalIndex, "-inf", bound, "LIMIT", String(offset), String(limit)]
    }

    /// Visits the registered index keys chunk by chunk (the global index, trimmed with its
    /// entries, left out) until `visit` returns false; returns the members that are not this
    /// table's index keys, which are never visited.
    @discardableResult
    package func indexKeys(chunk: Int, _ valkey: any ValkeyClient, _ visit: ([String]) async throws -> Bool) async throws -> ForeignMembers {
        let global = globalIndex
        var foreign = ForeignMembers()
        try await SetScan.chunks(of: registry, count: chunk, in: valkey) { keys in
            var own: [String] = []
            for key in keys where key != global {
                if templates.isIndexKey(key, of: table) { own.append(key) } else { foreign.add(key) }
            }
            return try await visit(own)
        }
        return foreign
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
