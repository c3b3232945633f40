import Logging
import Postgres
import Timestamps
import Valkey
import Watermarks
import Writers

/// The `retention` stage (SPEC §6): for each log table, the retention writer removes the
/// expired members of the global index and their entries, then trims every registered index
/// key, in bounded chunks: the cost grows with what expires and the number of index keys,
/// never with the keyspace. Each chunk is a safe point for a signal or `--max-runtime`.
struct RetentionStage {
    let configuration: Configuration
    let dryRun: Bool
    let logger: Logger
    let chunk = 1000

    func run(postgres: PostgresConnection, valkey: any ValkeyClient, report: inout StageReport) async throws {
        let now = try await postgres.databaseNow()
        let cutoff = Timestamp.retentionCutoff(now: now, days: configuration.retentionDays)
        report.fact("cutoff", cutoff.rfc3339)
        var entries = 0
        var members = 0
        var indexKeys = 0
        var foreign = ForeignMembers()
        for table in [LogTable.usageLogs, .reportUsageLogs] {
            if Shutdown.stopRequested { break }
            let writer = RetentionWriter(templates: configuration.keys, table: table, cutoff: cutoff)
            if dryRun {
                let expired = try await writer.expiredCount(valkey)
                entries += writer.entriesNamedByID ? expired : 0
                members += expired
            } else if let connection = valkey as? ValkeyConnection {
                let removed = try await writer.removeAllExpiredEntries(chunk: chunk, on: connection) { !Shutdown.stopRequested }
                entries += removed.entries
                members += removed.members
            } else {
                // Each round trip removes one chunk and reads the next.
                var ids = try await writer.expiredIDs(limit: chunk, valkey)
                while !ids.isEmpty, !Shutdown.stopRequested {
                    let removed = try await writer.removeExpiredEntries(ids, thenRead: chunk, valkey)
                    entries += removed.entries
                    members += removed.members
                    ids = removed.next
                }
            }
            let others = try await writer.indexKeys(chunk: chunk, valkey) { keys in
                indexKeys += keys.count
                members += dryRun ? try await writer.expiredMembers(of: keys, valkey) : try await writer.trim(keys, valkey)
                return !Shutdown.stopRequested
            }
            if others.count > 0 {
                logger.warning("index registry members that are not \(table.name) index keys were left alone", metadata: [
                    "registry": "\(writer.registry)", "members": "\(others.count)", "first": "\(others.first.joined(separator: " "))",
                ])
            }
            foreign.merge(others)
        }
        if foreign.count > 0 {
            report.count("foreign_registry_members", foreign.count)
            report.fact("foreign_registry_members_first", foreign.first.joined(separator: " "))
        }
        report.count(dryRun ? "would_remove_entries" : "removed_entries", entries)
        report.count(dryRun ? "would_remove_members" : "removed_members", members)
        report.count("index_keys", indexKeys)
    }
}
