import Foundation
@testable import SyncJob
import Testing

/// The run summary as JSON (`sync:last_run`) and as the metrics file, without a server.
@Suite struct RunRecordTests {
    func summary(command: String = "run", exitCode: Int32 = 0, stageFailure: String? = nil) -> RunSummary {
        var summary = RunSummary(command: command, dryRun: false)
        var report = StageReport(stage: .usageLogs)
        report.seconds = 1.23456
        report.count("read", 1000)
        report.count("written", 990)
        report.fact("watermark_after", "2026-12-01T00:00:00.000000Z")
        report.fact("lag_seconds", "4.500")
        report.failure = stageFailure
        summary.stages = [report]
        summary.exitCode = exitCode
        summary.peakRSSBytes = 52_000_000
        summary.finishedAt = summary.startedAt.addingTimeInterval(2.5)
        return summary
    }

    @Test func jsonHasTheDocumentedFieldsAndReadsBack() throws {
        let json = summary(stageFailure: "Valkey x refused: OOM").json
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["command"] as? String == "run")
        #expect(object["exit_code"] as? Int == 0)
        #expect(object["outcome"] as? String == "success")
        #expect(object["seconds"] as? Double == 2.5)
        #expect(object["peak_rss_bytes"] as? Int == 52_000_000)
        #expect(object["error"] == nil && object["stopped_by"] == nil, "absent, not null")
        let stage = try #require((object["stages"] as? [[String: Any]])?.first)
        #expect(stage["stage"] as? String == "usage-logs")
        #expect(stage["seconds"] as? Double == 1.235)
        #expect(stage["outcome"] as? String == "failed")
        #expect(stage["error"] as? String == "Valkey x refused: OOM")
        #expect((stage["counts"] as? [String: Int]) == ["read": 1000, "written": 990])
        #expect((stage["facts"] as? [String: String])?["watermark_after"] == "2026-12-01T00:00:00.000000Z")
        #expect(!json.contains("\\/"), "slashes are not escaped")
        let record = try #require(RunRecord(json: json))
        #expect(record == RunRecord(summary(stageFailure: "Valkey x refused: OOM")).withHost(record.host).withTimes(record))
        #expect(RunRecord(json: "{\"command\":1}") == nil)
    }

    @Test func metricsFileKeepsOtherCommandsAndCountsFailures() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sync-job-unit-\(UUID()).prom").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = MetricsFile(path: path)
        try file.write(summary(command: "nightly"))
        try file.write(summary(command: "run", exitCode: 75))
        try file.write(summary(command: "run", exitCode: 75))
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("sync_job_last_run_success{command=\"nightly\"} 1"), "\(text)")
        #expect(text.contains("sync_job_last_run_exit_code{command=\"run\"} 75"), "\(text)")
        #expect(text.contains("sync_job_failures_total{command=\"run\"} 2"), "\(text)")
        #expect(text.contains("sync_job_failures_total{command=\"nightly\"} 0"), "\(text)")
        #expect(text.contains("sync_job_stage_rows{command=\"run\",stage=\"usage-logs\",kind=\"read\"} 1000"), "\(text)")
        #expect(text.contains("sync_job_lag_seconds{command=\"run\",table=\"usage_logs\"} 4.5"), "\(text)")
        // Each metric's HELP and TYPE once, every sample line parseable as name{labels} value.
        #expect(text.components(separatedBy: "# TYPE sync_job_failures_total counter").count == 2)
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(Double(line.split(separator: " ").last ?? "") != nil, "\(line)")
        }
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp.\(getpid())"), "the temporary file is renamed away")
    }
}

extension RunRecord {
    func withHost(_ host: String) -> RunRecord {
        var copy = self
        copy.host = host
        return copy
    }

    func withTimes(_ other: RunRecord) -> RunRecord {
        var copy = self
        copy.startedAt = other.startedAt
        copy.finishedAt = other.finishedAt
        return copy
    }
}
