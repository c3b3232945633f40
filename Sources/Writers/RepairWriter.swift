import RESP
import Timestamps
import Valkey

/// What `verify` reads of one log table's keys and what `verify --repair` deletes (SPEC §9):
/// per-day counts of the global index, the ids indexed in a range, and the entries whose rows
/// PostgreSQL no longer has.
package struct RepairWriter: Sendable {
    package let templates: KeyTemplates
    package let table: LogTable

    package init(templates: KeyTemplates, table: LogTable) {
        self.templates = templates
        self.table = table
    }

    package var globalIndex: String { templates.key(table.indexes[0]) }

    /// Members of the global index scored in each [low, high), in whole milliseconds, one
    /// ZCOUNT per range in one pipeline. -1 where the reply was not a number.
    package func counts(_ ranges: [(low: Timestamp, high: Timestamp)], _ valkey: any ValkeyClient) async throws -> [Int] {
        var batch = CommandBatch()
        for range in ranges {
            batch.append("ZCOUNT", globalIndex, range.low.unixSecondsMillisTruncated, "(" + range.high.ceilingMillisecond.unixSecondsMillisTruncated)
        }
        return try await valkey.sendAll(batch, doing: "counting \(table.name) index members").map { Int($0.int ?? -1) }
    }

    /// Up to `limit` ids indexed in [from, until), skipping the first `offset`.
    package func indexedIDs(from: Timestamp, until: Timestamp, offset: Int, limit: Int, _ valkey: any ValkeyClient) async throws -> [String] {
        let reply = try await valkey.send("ZRANGEBYSCORE", globalIndex, from.unixSecondsMillisTruncated,
                                          "(" + until.ceilingMillisecond.unixSecondsMillisTruncated,
                                          "LIMIT", String(offset), String(limit))
        return (reply.array ?? []).compactMap(\.string)
    }

    /// Removes the entries of `ids`: each hash, and the id from every index that names it,
    /// in two pipelines (the hashes' index fields, then the deletions).
    package func remove(_ ids: [String], _ valkey: any ValkeyClient) async throws {
        guard !ids.isEmpty else { return }
        let entryTemplate = templates[table.entry]
        let fields = Array(Set(table.indexes.flatMap { templates[$0].fields } + entryTemplate.fields).subtracting(["id"])).sorted()
        var values = ids.map { ["id": $0] }
        if !fields.isEmpty {
            var reads = CommandBatch()
            var readFor: [Int] = []
            for (position, id) in ids.enumerated() {
                guard let key = entryTemplate.render(prefix: templates.prefix, ["id": id]) else { continue }
                reads.append(["HMGET", key] + fields)
                readFor.append(position)
            }
            let replies = try await valkey.sendAll(reads, doing: "reading vanished \(table.name) entries")
            for (position, reply) in zip(readFor, replies) {
                for (field, value) in zip(fields, reply.array ?? []) {
                    if let text = value.string, !text.isEmpty { values[position][field] = text }
                }
            }
        }
        var registered: [String]?
        var batch = CommandBatch()
        for (id, known) in zip(ids, values) {
            if let key = entryTemplate.render(prefix: templates.prefix, known) { batch.append("UNLINK", key) }
            var indexKeys = table.indexes.compactMap { templates[$0].render(prefix: templates.prefix, known) }
            if indexKeys.count < table.indexes.count {
                // The hash is gone, so its per-key indexes are unknown: ask every registered one.
                if registered == nil {
                    registered = try await SetScan.members(of: templates.indexRegistryKey(table: table.name), in: valkey)
                        .filter { templates.isIndexKey($0, of: table) }
                }
                indexKeys += registered ?? []
            }
            for key in Set(indexKeys).sorted() { batch.append("ZREM", key, id) }
        }
        try await valkey.sendCounting(batch, doing: "removing \(ids.count) vanished \(table.name) entr\(ids.count == 1 ? "y" : "ies")")
    }
}
