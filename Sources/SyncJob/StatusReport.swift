import Foundation
import Postgres
import Timestamps
import Valkey
import Watermarks
import Writers

/// `sync-job status`: what an operator on call asks first — how far behind is the cache,
/// and how did the last run end.
struct StatusReport {
    let configuration: Configuration

    /// `status --json`.
    struct Document: Codable, Equatable {
        var watermarks: [String: Table]
        var lastRun: RunRecord?

        struct Table: Codable, Equatable {
            /// The stored text, verbatim, also when it is not a timestamp.
            var watermark: String?
            var watermarkMalformed: Bool?
            var newestRow: String?
            var lagSeconds: Double?

            enum CodingKeys: String, CodingKey {
                case watermark, watermarkMalformed = "watermark_malformed", newestRow = "newest_row", lagSeconds = "lag_seconds"
            }
        }

        enum CodingKeys: String, CodingKey {
            case watermarks, lastRun = "last_run"
        }
    }

    func print(json: Bool, postgres: PostgresConnection, valkey: any ValkeyClient) async throws {
        let store = WatermarkStore(connection: valkey, templates: configuration.keys)
        var tables: [(name: String, reading: WatermarkReading, newest: Timestamp?)] = []
        for table in [LogTable.usageLogs, .reportUsageLogs] {
            let reading = try await store.reading(table.name)
            let newest = try await KeysetPageReader(connection: postgres, table: table.name, columns: ["id"], pageSize: 1).newestTimestamp()
            tables.append((table.name, reading, newest))
        }
        let lastRunText = try await RunRecordWriter(templates: configuration.keys).lastRun(valkey)
        let lastRun = lastRunText.flatMap(RunRecord.init(json:))
        if json {
            var document = Document(watermarks: [:], lastRun: lastRun)
            for table in tables {
                var entry = Document.Table(newestRow: table.newest?.rfc3339)
                switch table.reading {
                case .absent: break
                case .at(let watermark):
                    entry.watermark = watermark.rfc3339
                    entry.lagSeconds = table.newest.map { RunRecord.milliseconds(max(0, $0.duration(since: watermark).seconds)) }
                case .malformed(let text):
                    entry.watermark = text
                    entry.watermarkMalformed = true
                }
                document.watermarks[table.name] = entry
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            Swift.print(String(decoding: try encoder.encode(document), as: UTF8.self))
            return
        }
        for table in tables {
            let watermark: String
            let lag: String
            switch table.reading {
            case .absent:
                (watermark, lag) = ("(none)", "never copied")
            case .at(let value):
                watermark = value.rfc3339
                lag = table.newest.map { String(format: "lag %.1f s", max(0, $0.duration(since: value).seconds)) } ?? "lag unknown"
            case .malformed(let text):
                (watermark, lag) = ("\(text) (MALFORMED: not an RFC 3339 timestamp; the copy fails until the key is fixed or deleted)", "lag unknown")
            }
            Swift.print("\(table.name.padding(toLength: 18, withPad: " ", startingAt: 0)) watermark \(watermark)"
                + "  newest row \(table.newest?.rfc3339 ?? "(none)")  \(lag)")
        }
        guard let lastRun else {
            Swift.print("last run: " + (lastRunText.map { "(unreadable: \($0.prefix(80)))" } ?? "(none recorded)"))
            return
        }
        Swift.print("last run: \(lastRun.command) \(lastRun.outcome) (exit \(lastRun.exitCode)),"
            + " finished \(lastRun.finishedAt), \(lastRun.seconds) s, on \(lastRun.host)")
        for stage in lastRun.stages {
            let counts = stage.counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            Swift.print("  \(stage.stage): \(stage.outcome), \(counts.joined(separator: ", "))"
                + (stage.error.map { " — \($0)" } ?? ""))
        }
    }
}
