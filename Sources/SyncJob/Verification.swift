import Foundation
import Logging
import Postgres
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
        start = start.ceilingMillisecond
        let store = WatermarkStore(connection: valkey, templates: configuration.keys)
        var differing = 0
        for (stage, table) in [(Stage.usageLogs, LogTable.usageLogs), (.reportLogs, .reportUsageLogs)] {
            guard let stored = try await store.read(table.name) else {
                print("\(table.name): no watermark yet, nothing to verify")
                continue
            }
            let raw = stored.rfc3339
            // A watermark set far ahead (by hand or a bug) is verified only up to the clock:
            // no day after it can hold a row yet, and walking them would never end.
            let watermark = min(stored, now)
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
        // Every day of the range, also those PostgreSQL has no rows for.
        var days: [String] = []
        var day = start.startOfDay
        while day <= watermark {
            days.append(String(day.rfc3339.prefix(10)))
            day = day.moved(by: .seconds(86_400))
        }
        let ranges = days.map { dayBounds($0, from: start, through: watermark) }.map { (low: $0.0, high: $0.1) }
        // One range count per day, each read from the (timestamp, id) index: the work grows
        // with the days, and a day costs what its index range does.
        func array(_ values: [Timestamp]) -> PostgresValue { .text("{" + values.map(\.rfc3339).joined(separator: ",") + "}") }
        let rows = try await postgres.query("""
            select (select count(*) from \(quoteIdentifier(table.name))
                    where "timestamp" >= day.low and "timestamp" < day.high)
            from unnest($1::timestamptz[], $2::timestamptz[]) with ordinality as day(low, high, n)
            order by day.n
            """, [array(ranges.map(\.low)), array(ranges.map(\.high))])
        let counts = try rows.map { try $0[0].decode(Int.self) ?? 0 }
        let replies = try await RepairWriter(templates: configuration.keys, table: table).counts(ranges, valkey)
        return days.indices.map { DayCount(day: days[$0], postgres: counts[$0], valkey: replies[$0]) }
    }

    /// Removes the entries indexed in [from, until) whose rows PostgreSQL no longer has,
    /// a page of ids at a time: the ids matched by the primary key, the deletions pipelined.
    private func removeVanished(_ table: LogTable, from: Timestamp, until: Timestamp,
                                postgres: PostgresConnection, valkey: any ValkeyClient) async throws -> Int {
        let writer = RepairWriter(templates: configuration.keys, table: table)
        var offset = 0
        var removed = 0
        let chunk = 1000
        while true {
            let ids = try await writer.indexedIDs(from: from, until: until, offset: offset, limit: chunk, valkey)
            if ids.isEmpty { break }
            // Only well-formed ids can be rows; the others are removed as vanished.
            let uuids = ids.filter { UUID(uuidString: $0) != nil }
            let present = Set(try await postgres.query(
                "select id::text from \(quoteIdentifier(table.name)) where id = any($1::uuid[])",
                [.text("{" + uuids.joined(separator: ",") + "}")]).compactMap { try $0[0].decode(String.self) })
            let vanished = ids.filter { !present.contains($0.lowercased()) }
            try await writer.remove(vanished, valkey)
            removed += vanished.count
            offset += ids.count - vanished.count
            if ids.count < chunk { break }
        }
        return removed
    }
}
