import Logging
import Postgres
import RESP
import Timestamps
import Valkey
import Watermarks
import Writers

/// The `retention` stage (SPEC §6): removes every usage- and report-log index member older
/// than the cutoff, and its entry hash. It visits the global index (whose expired members
/// name the entries to delete) and the index keys listed in the copy's registry, in bounded
/// chunks: its cost grows with what expires and the number of index keys, never with the
/// keyspace.
struct RetentionStage {
    let configuration: Configuration
    let dryRun: Bool
    let logger: Logger
    let chunk = 1000

    func run(postgres: PostgresConnection, valkey: any ValkeyClient, report: inout StageReport) async throws {
        let now = try await postgres.databaseNow()
        let cutoff = Timestamp.retentionCutoff(now: now, days: configuration.retentionDays)
        // Members scored strictly below the cutoff's score are expired.
        let bound = "(" + cutoff.unixSecondsMillisTruncated
        report.fact("cutoff", cutoff.rfc3339)
        var entries = 0
        var members = 0
        var indexKeys = 0
        for table in [LogTable.usageLogs, .reportUsageLogs] {
            if Shutdown.stopRequested { break }
            let removed = try await expireEntries(table, bound: bound, valkey: valkey)
            entries += removed.entries
            members += removed.members
            let swept = try await sweepIndexes(table, bound: bound, valkey: valkey)
            members += swept.members
            indexKeys += swept.keys
        }
        report.count(dryRun ? "would_remove_entries" : "removed_entries", entries)
        report.count(dryRun ? "would_remove_members" : "removed_members", members)
        report.count("index_keys", indexKeys)
    }

    /// Deletes the entry hashes named by the global index's expired members, then the members.
    private func expireEntries(_ table: LogTable, bound: String, valkey: any ValkeyClient) async throws -> (entries: Int, members: Int) {
        let keys = configuration.keys
        let global = keys.key(table.indexes[0])
        let entryTemplate = keys[table.entry]
        // An entry key made from the id alone can be named from the index; any other
        // template's entries expire by their own EXPIREAT.
        let entryFromID = entryTemplate.fields.allSatisfy { $0 == "id" }
        if dryRun {
            let count = try await valkey.send("ZCOUNT", global, "-inf", bound).int ?? 0
            return (entryFromID ? Int(count) : 0, Int(count))
        }
        var entries = 0
        var members = 0
        while true {
            let reply = try await valkey.send("ZRANGEBYSCORE", global, "-inf", bound, "LIMIT", "0", String(chunk))
            let ids = (reply.array ?? []).compactMap(\.string)
            if ids.isEmpty { break }
            var batch = CommandBatch()
            if entryFromID {
                // One UNLINK per entry: in cluster mode the entries live in different slots.
                for id in ids {
                    if let key = entryTemplate.render(prefix: keys.prefix, ["id": id]) { batch.append("UNLINK", key) }
                }
            }
            batch.append(["ZREM", global] + ids)
            let replies = try await valkey.execute(batch)
            if let failure = replies.first(where: \.isError) {
                throw StageFailure.refused(by: valkey.serverDescription, "removing expired \(table.name) entries", reply: failure.errorMessage ?? "?")
            }
            entries += replies.dropLast().reduce(0) { $0 + Int($1.int ?? 0) }
            members += Int(replies.last?.int ?? 0)
            // Each chunk is a safe point: what is left expires on the next run.
            if ids.count < chunk || Shutdown.stopRequested { break }
        }
        return (entries, members)
    }

    /// Trims every registered per-API-key and per-asset index key; forgets keys that became empty.
    private func sweepIndexes(_ table: LogTable, bound: String, valkey: any ValkeyClient) async throws -> (members: Int, keys: Int) {
        let registry = configuration.keys.indexRegistryKey(table: table.name)
        let global = configuration.keys.key(table.indexes[0])
        var cursor = "0"
        var members = 0
        var keys = 0
        repeat {
            let reply = try await valkey.send("SSCAN", registry, cursor, "COUNT", String(chunk))
            guard let parts = reply.array, parts.count == 2 else {
                throw StageFailure("unexpected SSCAN reply for \(registry)")
            }
            cursor = parts[0].string ?? "0"
            // The global index was trimmed with its entries already.
            let indexKeys = (parts[1].array ?? []).compactMap(\.string).filter { $0 != global }
            keys += indexKeys.count
            guard !indexKeys.isEmpty else { continue }
            var batch = CommandBatch()
            for key in indexKeys {
                if dryRun {
                    batch.append("ZCOUNT", key, "-inf", bound)
                } else {
                    batch.append("ZREMRANGEBYSCORE", key, "-inf", bound)
                    batch.append("EXISTS", key)
                }
            }
            let replies = try await valkey.execute(batch)
            if let failure = replies.first(where: \.isError) {
                throw StageFailure.refused(by: valkey.serverDescription, "trimming \(table.name) indexes", reply: failure.errorMessage ?? "?")
            }
            if dryRun {
                members += replies.reduce(0) { $0 + Int($1.int ?? 0) }
                continue
            }
            var emptied: [String] = []
            for (offset, key) in indexKeys.enumerated() {
                members += Int(replies[2 * offset].int ?? 0)
                if replies[2 * offset + 1].int == 0 { emptied.append(key) }
            }
            if !emptied.isEmpty {
                // SSCAN tolerates removals during the iteration.
                _ = try await valkey.send(["SREM", registry] + emptied)
            }
        } while cursor != "0" && !Shutdown.stopRequested
        return (members, keys)
    }
}
