import Foundation
import Timestamps

/// What one run did: the JSON of `sync:last_run` and the source of the metrics file.
struct RunSummary: Sendable {
    var command: String
    var dryRun: Bool
    var startedAt = Date()
    var finishedAt = Date()
    var stages: [StageReport] = []
    var exitCode: Int32 = 0
    var interruptedBy: Int32?
    /// The process's peak resident memory (VmHWM), so operators see the memory bound hold.
    var peakRSSBytes: Int = 0
    /// Why the run ended before or outside its stages (a server unreachable, the lock busy).
    var error: String?
    /// What stopped the run early: a signal or `max-runtime`.
    var stoppedBy: String?

    init(command: String, dryRun: Bool) {
        self.command = command
        self.dryRun = dryRun
    }

    var outcome: String {
        if stoppedBy != nil { return "interrupted" }
        return exitCode == 0 ? "success" : "failed"
    }

    /// The command's own name, for `sync:last_run:COMMAND` and the metrics label: `run`,
    /// `nightly`, `backfill`, `verify`.
    var commandKey: String {
        String(command.split(separator: " ").first ?? "run")
    }

    mutating func finish(exitCode: Int32, interruptedBy signal: Int32?) {
        finishedAt = Date()
        self.exitCode = exitCode
        interruptedBy = signal
        stoppedBy = Shutdown.stopReason
        peakRSSBytes = Self.peakRSS()
    }

    static func peakRSS() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return 0 }
        return kilobytes * 1024
    }

    /// The JSON of `sync:last_run`.
    var json: String { RunRecord(self).json }

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}

/// The JSON of `sync:last_run` and `sync:last_run:COMMAND`: written by a run, read back by
/// `status`.
struct RunRecord: Codable, Sendable, Equatable {
    var command: String
    var outcome: String
    var exitCode: Int32
    var startedAt: String
    var finishedAt: String
    var seconds: Double
    var host: String
    var peakRSSBytes: Int
    var stages: [StageRecord]
    var error: String?
    var stoppedBy: String?

    struct StageRecord: Codable, Sendable, Equatable {
        var stage: String
        var seconds: Double
        var outcome: String
        var counts: [String: Int]
        var facts: [String: String]?
        var error: String?
    }

    enum CodingKeys: String, CodingKey {
        case command, outcome, seconds, host, stages, error
        case exitCode = "exit_code", startedAt = "started_at", finishedAt = "finished_at"
        case peakRSSBytes = "peak_rss_bytes", stoppedBy = "stopped_by"
    }

    init(_ summary: RunSummary) {
        command = summary.command
        outcome = summary.outcome
        exitCode = summary.exitCode
        startedAt = RunSummary.timestamp(summary.startedAt)
        finishedAt = RunSummary.timestamp(summary.finishedAt)
        seconds = Self.milliseconds(summary.finishedAt.timeIntervalSince(summary.startedAt))
        host = ProcessInfo.processInfo.hostName
        peakRSSBytes = summary.peakRSSBytes
        stages = summary.stages.map { stage in
            StageRecord(stage: stage.stage.rawValue, seconds: Self.milliseconds(stage.seconds),
                        outcome: stage.failure == nil ? "success" : "failed",
                        counts: Dictionary(stage.counts, uniquingKeysWith: { $1 }),
                        facts: stage.facts.isEmpty ? nil : Dictionary(stage.facts, uniquingKeysWith: { $1 }),
                        error: stage.failure)
        }
        error = summary.error
        stoppedBy = summary.stoppedBy
    }

    /// Seconds rounded to the millisecond.
    static func milliseconds(_ seconds: Double) -> Double { (seconds * 1000).rounded() / 1000 }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// A stored record; nil when the text is not one.
    init?(json: String) {
        guard let record = try? JSONDecoder().decode(RunRecord.self, from: Data(json.utf8)) else { return nil }
        self = record
    }
}

/// Prometheus text format for node_exporter's textfile collector, written atomically
/// (temporary file + rename) so the collector never reads half a file.
struct MetricsFile {
    let path: String

    func write(_ summary: RunSummary) throws {
        let command = summary.commandKey
        let commandLabel = "command=\"\(command)\""
        // Every sample carries the command; the samples of other commands are kept as they
        // were, so that the minute `run` never hides what the last `nightly` did (SPEC §10).
        var othersSamples: [String: [String]] = [:]
        var ownValues: [String: Double] = [:]
        let previous = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        for line in previous.split(separator: "\n") where !line.hasPrefix("#") {
            guard let nameEnd = line.firstIndex(where: { $0 == "{" || $0 == " " }), line[nameEnd] == "{",
                  let labelsEnd = line.firstIndex(of: "}") else { continue }
            let name = String(line[..<nameEnd])
            let labels = line[line.index(after: nameEnd)..<labelsEnd]
            guard let owner = Self.commandLabel(in: labels) else { continue }
            if owner != command {
                othersSamples[name, default: []].append(String(line))
            } else if labels == commandLabel[...], let value = Double(line.split(separator: " ").last ?? "") {
                ownValues[name] = value
            }
        }
        let finished = summary.finishedAt.timeIntervalSince1970
        let success = summary.outcome == "success"
        let lastSuccess = success ? finished : (ownValues["sync_job_last_success_timestamp_seconds"] ?? 0)
        let failures = (ownValues["sync_job_failures_total"] ?? 0) + (success ? 0 : 1)
        var lines: [String] = []
        func metric(_ name: String, _ help: String, _ type: String, _ samples: [(labels: String, value: Double)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for sample in samples {
                let value = sample.value.rounded() == sample.value && abs(sample.value) < 1e15
                    ? String(Int64(sample.value)) : String(sample.value)
                lines.append("\(name){\(commandLabel)\(sample.labels.isEmpty ? "" : ",")\(sample.labels)} \(value)")
            }
            lines += othersSamples[name] ?? []
        }
        metric("sync_job_last_run_timestamp_seconds", "When the last run of the command finished (Unix time).", "gauge", [("", finished)])
        metric("sync_job_last_success_timestamp_seconds", "When the last successful run of the command finished (Unix time).", "gauge", [("", lastSuccess)])
        metric("sync_job_last_run_success", "1 if the last run of the command succeeded, else 0.", "gauge", [("", success ? 1 : 0)])
        metric("sync_job_last_run_exit_code", "Exit code of the last run of the command.", "gauge", [("", Double(summary.exitCode))])
        metric("sync_job_failures_total", "Runs of the command that failed or were interrupted, since the metrics file was created.", "counter", [("", failures)])
        metric("sync_job_peak_rss_bytes", "Peak resident memory of the last run of the command.", "gauge", [("", Double(summary.peakRSSBytes))])
        metric("sync_job_run_duration_seconds", "Duration of the last run of the command.", "gauge",
               [("", summary.finishedAt.timeIntervalSince(summary.startedAt))])
        metric("sync_job_stage_duration_seconds", "Duration of each stage in the last run of the command.", "gauge",
               summary.stages.map { ("stage=\"\($0.stage.rawValue)\"", $0.seconds) })
        metric("sync_job_stage_success", "1 if the stage succeeded in the last run of the command, else 0.", "gauge",
               summary.stages.map { ("stage=\"\($0.stage.rawValue)\"", $0.failure == nil ? 1 : 0) })
        metric("sync_job_stage_rows", "Rows (or items) each stage handled in the last run of the command, by kind.", "gauge",
               summary.stages.flatMap { stage in stage.counts.map { ("stage=\"\(stage.stage.rawValue)\",kind=\"\($0.0)\"", Double($0.1)) } })
        metric("sync_job_lag_seconds", "How far the watermark trails the newest source row, after the last run of the command.", "gauge",
               summary.stages.compactMap { stage in
                   stage.facts.first { $0.0 == "lag_seconds" }.flatMap { Double($0.1) }
                       .map { ("table=\"\(stage.stage == .usageLogs ? "usage_logs" : "report_usage_logs")\"", $0) }
               })
        let text = lines.joined(separator: "\n") + "\n"
        let (temporary, descriptor) = try createTemporaryFile()
        let complete = Self.writeAll(text, to: descriptor)
        let reason = String(cString: strerror(errno))
        close(descriptor)
        guard complete else {
            unlink(temporary)
            throw ConfigurationError(setting: "--metrics-file", problem: "cannot write \(temporary): \(reason)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw ConfigurationError(setting: "--metrics-file", problem: "cannot replace \(path): \(reason)")
        }
    }

    /// A new file beside `path`, created exclusively under a name nobody can guess (a link
    /// planted there in advance is never followed or overwritten), and not ending in `.prom`,
    /// so the textfile collector never reads it half-written.
    func createTemporaryFile() throws -> (path: String, descriptor: Int32) {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<8 {
            let suffix = String(generator.next(), radix: 16)
            let temporary = directory + "/." + url.lastPathComponent + ".tmp." + suffix
            let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if descriptor >= 0 { return (temporary, descriptor) }
            guard errno == EEXIST else {
                throw ConfigurationError(setting: "--metrics-file", problem: "cannot create a file in \(directory): \(String(cString: strerror(errno)))")
            }
        }
        throw ConfigurationError(setting: "--metrics-file", problem: "cannot create a file in \(directory): names taken")
    }

    private static func writeAll(_ text: String, to descriptor: Int32) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written > 0 { offset += written } else if written < 0, errno == EINTR { continue } else { return false }
            }
            return true
        }
    }

    /// The value of the `command` label in a sample's label text, if it has one.
    static func commandLabel(in labels: Substring) -> String? {
        guard let start = labels.range(of: "command=\"") else { return nil }
        let rest = labels[start.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end])
    }
}
