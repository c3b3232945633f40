import Foundation
import Postgres
import Timestamps
import Valkey
import Writers

/// `sync-job status`: what an operator on call asks first — how far behind is the cache,
/// and how did the last run end.
struct StatusReport {
    let configuration: Configuration

    func print(json: Bool, postgres: PostgresConnection, valkey: any ValkeyClient) async throws {
        var tables: [(name: String, watermark: String?, newest: Timestamp?, lag: Double?)] = []
        for table in [LogTable.usageLogs, .reportUsageLogs] {
            let raw = try await valkey.send("GET", configuration.keys.key(.watermark, ["table": table.name])).string
            let newest = try await KeysetPageReader(connection: postgres, table: table.name, columns: ["id"], pageSize: 1).newestTimestamp()
            var lag: Double?
            if let newest, let watermark = raw.flatMap(Timestamp.init(rfc3339:)) {
                lag = Double(max(0, newest.microsecondsSinceEpoch - watermark.microsecondsSinceEpoch)) / 1e6
            }
            tables.append((table.name, raw, newest, lag))
        }
        let lastRun = try await valkey.send("GET", configuration.keys.key(.lastRun)).string
        if json {
            let items = tables.map { table in
                "\(JSONText.quote(table.name)):{\"watermark\":\(table.watermark.map(JSONText.quote) ?? "null"),"
                    + "\"newest_row\":\(table.newest.map { JSONText.quote($0.rfc3339) } ?? "null"),"
                    + "\"lag_seconds\":\(table.lag.map { String(format: "%.3f", $0) } ?? "null")}"
            }
            // The last run is already JSON (written by this program); embed it as it is.
            let last = lastRun.flatMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil ? $0 : nil }
            Swift.print("{\"watermarks\":{\(items.joined(separator: ","))},\"last_run\":\(last ?? "null")}")
            return
        }
        for table in tables {
            let lag = table.lag.map { String(format: "lag %.1f s", $0) } ?? (table.watermark == nil ? "never copied" : "lag unknown")
            Swift.print("\(table.name.padding(toLength: 18, withPad: " ", startingAt: 0)) watermark \(table.watermark ?? "(none)")"
                + "  newest row \(table.newest?.rfc3339 ?? "(none)")  \(lag)")
        }
        guard let lastRun, let object = try? JSONSerialization.jsonObject(with: Data(lastRun.utf8)) as? [String: Any] else {
            Swift.print("last run: " + (lastRun == nil ? "(none recorded)" : "(unreadable: \(lastRun!.prefix(80)))"))
            return
        }
        Swift.print("last run: \(object["command"] ?? "?") \(object["outcome"] ?? "?") (exit \(object["exit_code"] ?? "?")),"
            + " finished \(object["finished_at"] ?? "?"), \(object["seconds"] ?? "?") s, on \(object["host"] ?? "?")")
        for stage in object["stages"] as? [[String: Any]] ?? [] {
            let counts = (stage["counts"] as? [String: Any] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            Swift.print("  \(stage["stage"] ?? "?"): \(stage["outcome"] ?? "?"), \(counts.joined(separator: ", "))"
                + ((stage["error"] as? String).map { " — \($0)" } ?? ""))
        }
    }
}
