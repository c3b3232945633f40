import Foundation
import Logging
import Postgres
import RESP
import Timestamps
import Valkey
import Watermarks
import Writers

/// `sync-job verify [--repair]`: per-day counts of each log table in PostgreSQL against its
/// global index in Valkey, from the retention cutoff (or --since) to the watermark. Repair
/// re-copies each differing day and removes that day's entries PostgreSQL no longer has.
struct Verification {
    let configuration: Configuration
    let logger: Logger

    struct DayCount: Equatable {
        var day: String
        var postgres: Int
        var valkey: Int
    }

    func run(since: Timestamp?, repair: Bool, postgres: PostgresConnection, valkey: any ValkeyClient) async throws -> Int32 {
        let now = try await postgres.databaseNow()
        let cutoff = Timestamp.retentionCutoff(now: now, days: configuration.retentionDays)
        var start = cutoff
        if let since {
            if since < cutoff {
                logger.notice("verify starts at the retention cutoff: older rows are not cached", metadata: ["cutoff": "\(cutoff.rfc3339)"])
            } else {
                start = since
            }
        }
        // Whole milliseconds, the precision of the index scores.
        start = Timestamp(microsecondsSinceEpoch: (start.microsecondsSinceEpoch + 999) / 1000 * 1000)
        var differing = 0
        for (stage, table) in [(Stage.usageLogs, LogTable.usageLogs), (.reportLogs, .reportUsageLogs)] {
            let watermarkKey = configuration.keys.key(.watermark, ["table": table.name])
            guard let raw = try await valkey.send("GET", watermarkKey).string else {
                print("\(table.name): no watermark yet, nothing to verify")
                continue
            }
            guard let watermark = Timestamp(rfc3339: raw) else { throw WatermarkError(key: watermarkKey, value: raw) }
            guard start <= watermark else {
                print("\(table.name): the watermark \(raw) is before the start \(start.rfc3339), nothing to verify")
                continue
            }
            var days = try await compare(table, from: start, through: watermark, postgres: postgres, valkey: valkey)
            var bad = days.filter { $0.postgres != $0.valkey }
            print("\(table.name): \(days.count) day(s) from \(start.rfc3339) through \(raw), \(bad.count) differ")
            for day in bad {
                print("  \(day.day): postgres \(day.postgres), valkey \(day.valkey) (\(day.valkey - day.postgres >= 0 ? "+" : "")\(day.valkey - day.postgres))")
            }
            if repair, !bad.isEmpty {
                let copier = LogCopyStage(stage, configuration: configuration, dryRun: false, logger: logger)
                for day in bad {
                    // A day is the safe point: stop before the next one on a signal or --max-runtime.
                    if Shutdown.stopRequested { break }
                    let (dayStart, dayEnd) = dayBounds(day.day, from: start, through: watermark)
                    let removed = try await removeVanished(table, from: dayStart, until: dayEnd, postgres: postgres, valkey: valkey)
                    let outcome = try await copier.copy(window: ReadWindow(from: dayStart, until: dayEnd), cutoff: cutoff,
                                                        postgres: postgres, valkey: valkey, store: nil, watermark: nil)
                    print("  repaired \(day.day): re-copied \(outcome.written) row(s), removed \(removed) vanished entr\(removed == 1 ? "y" : "ies")")
                }
                days = try await compare(table, from: start, through: watermark, postgres: postgres, valkey: valkey)
                bad = days.filter { $0.postgres != $0.valkey }
                print("\(table.name): after repair \(bad.count) day(s) differ")
            }
            differing += bad.count
        }
        return differing == 0 ? 0 : 1
    }

    /// The day's [start, end) clipped to the verified range; `end` is just past the watermark
    /// on the watermark's day.
    private func dayBounds(_ day: String, from start: Timestamp, through watermark: Timestamp) -> (Timestamp, Timestamp) {
        let dayStart = Timestamp(rfc3339: day)!
        let dayEnd = dayStart.moved(by: .seconds(86_400))
        return (max(dayStart, start), min(dayEnd, watermark.moved(by: .microseconds(1))))
    }

    private func compare(_ table: LogTable, from start: Timestamp, through watermark: Timestamp,
                         postgres: PostgresConnection, valkey: any ValkeyClient) async throws -> [DayCount] {
        let rows = try await postgres.query("""
            select to_char(date_trunc('day', "timestamp" at time zone 'UTC'), 'YYYY-MM-DD'), count(*)
            from \(quoteIdentifier(table.name))
            where "timestamp" >= $1 and "timestamp" <= $2
            group by 1 order by 1
            """, [.timestamp(start), .timestamp(watermark)])
        var counts: [String: Int] = [:]
        for row in rows { counts[try row[0].decode(String.self)!] = try row[1].decode(Int.self) ?? 0 }
        // Every day of the range, also those PostgreSQL has no rows for.
        var days: [String] = []
        var day = Timestamp(microsecondsSinceEpoch: start.microsecondsSinceEpoch / 86_400_000_000 * 86_400_000_000)
        while day <= watermark {
            days.append(String(day.rfc3339.prefix(10)))
            day = day.moved(by: .seconds(86_400))
        }
        let global = configuration.keys.key(table.indexes[0])
        var batch = CommandBatch()
        for name in days {
            let (low, high) = dayBounds(name, from: start, through: watermark)
            // Scores are milliseconds: [low, high) in whole milliseconds.
            batch.append("ZCOUNT", global, low.unixSecondsMillisTruncated,
                         "(" + Timestamp(microsecondsSinceEpoch: (high.microsecondsSinceEpoch + 999) / 1000 * 1000).unixSecondsMillisTruncated)
        }
        let replies = try await valkey.execute(batch)
        return zip(days, replies).map { DayCount(day: $0, postgres: counts[$0] ?? 0, valkey: Int($1.int ?? -1)) }
    }

    /// Removes the entries indexed in [from, until) whose rows PostgreSQL no longer has:
    /// the hash, and the member from every index that names it.
    private func removeVanished(_ table: LogTable, from: Timestamp, until: Timestamp,
                                postgres: PostgresConnection, valkey: any ValkeyClient) async throws -> Int {
        let keys = configuration.keys
        let global = keys.key(table.indexes[0])
        let untilScore = "(" + Timestamp(microsecondsSinceEpoch: (until.microsecondsSinceEpoch + 999) / 1000 * 1000).unixSecondsMillisTruncated
        var offset = 0
        var removed = 0
        let chunk = 1000
        while true {
            let ids = (try await valkey.send("ZRANGEBYSCORE", global, from.unixSecondsMillisTruncated, untilScore,
                                             "LIMIT", String(offset), String(chunk)).array ?? []).compactMap(\.string)
            if ids.isEmpty { break }
            let present = Set(try await postgres.query(
                "select id::text from \(quoteIdentifier(table.name)) where id::text = any($1::text[])",
                [.text("{" + ids.joined(separator: ",") + "}")]).compactMap { try $0[0].decode(String.self) })
            let vanished = ids.filter { !present.contains($0) }
            for id in vanished {
                try await removeEntry(id, table: table, valkey: valkey)
            }
            removed += vanished.count
            offset += ids.count - vanished.count
            if ids.count < chunk { break }
        }
        return removed
    }

    private func removeEntry(_ id: String, table: LogTable, valkey: any ValkeyClient) async throws {
        let keys = configuration.keys
        let entryTemplate = keys[table.entry]
        let fields = Array(Set(table.indexes.flatMap { keys[$0].fields } + entryTemplate.fields).subtracting(["id"])).sorted()
        var values: [String: String] = ["id": id]
        var entryKey = entryTemplate.render(prefix: keys.prefix, values)
        if let key = entryKey, !fields.isEmpty {
            let reply = try await valkey.send(["HMGET", key] + fields)
            for (field, value) in zip(fields, reply.array ?? []) {
                if let text = value.string, !text.isEmpty { values[field] = text }
            }
        }
        entryKey = entryTemplate.render(prefix: keys.prefix, values)
        var batch = CommandBatch()
        if let entryKey { batch.append("UNLINK", entryKey) }
        var indexKeys = table.indexes.compactMap { keys[$0].render(prefix: keys.prefix, values) }
        if indexKeys.count < table.indexes.count {
            // The hash is gone, so its per-key indexes are unknown: ask every registered one.
            indexKeys += try await registeredIndexKeys(table, valkey: valkey)
        }
        for key in Set(indexKeys) { batch.append("ZREM", key, id) }
        let outcome = try await valkey.executeCountingErrors(batch)
        if let refused = outcome.firstErrors.first {
            throw StageFailure.refused(by: valkey.serverDescription, "\(outcome.errorCount) command(s) removing the vanished entry \(id) of \(table.name)",
                                       reply: refused.message)
        }
    }

    private func registeredIndexKeys(_ table: LogTable, valkey: any ValkeyClient) async throws -> [String] {
        let registry = configuration.keys.indexRegistryKey(table: table.name)
        var cursor = "0"
        var result: [String] = []
        repeat {
            let parts = try await valkey.send("SSCAN", registry, cursor, "COUNT", "1000").array ?? []
            guard parts.count == 2 else { break }
            cursor = parts[0].string ?? "0"
            result += (parts[1].array ?? []).compactMap(\.string)
        } while cursor != "0"
        return result
    }
}
