import Foundation
import Logging

/// The stages of SPEC §1, in the order a run performs them.
enum Stage: String, CaseIterable, Sendable, Comparable {
    case params
    case apiKeys = "api-keys"
    case usageLogs = "usage-logs"
    case reportLogs = "report-logs"
    case retention
    case searchIndex = "search-index"

    /// `sync-job run` without `--stage`.
    static let defaultRun: [Stage] = [.params, .apiKeys, .usageLogs, .reportLogs]

    static func < (lhs: Stage, rhs: Stage) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// What one stage did, for the summary line and `sync:last_run`.
struct StageReport: Sendable {
    var stage: Stage
    var seconds: Double = 0
    /// Counters in a stable order, e.g. ("read", 1000), ("written", 990).
    var counts: [(String, Int)] = []
    /// Extra facts, e.g. ("watermark_before", "2026-...Z").
    var facts: [(String, String)] = []
    var failure: String?

    mutating func count(_ name: String, _ value: Int) {
        if let index = counts.firstIndex(where: { $0.0 == name }) { counts[index].1 = value } else { counts.append((name, value)) }
    }

    mutating func fact(_ name: String, _ value: String) {
        if let index = facts.firstIndex(where: { $0.0 == name }) { facts[index].1 = value } else { facts.append((name, value)) }
    }

    /// The report as log metadata.
    var metadata: Logger.Metadata {
        var metadata: Logger.Metadata = ["stage": "\(stage.rawValue)", "seconds": "\(seconds)"]
        for (name, value) in counts { metadata[name] = "\(value)" }
        for (name, value) in facts { metadata[name] = "\(value)" }
        return metadata
    }

    /// The one-line summary printed after the stage.
    var summaryLine: String {
        var parts = counts.map { "\($0.0.replacingOccurrences(of: "_", with: " ")) \($0.1)" }
        parts.append(String(format: "%.2f s", seconds))
        if let read = counts.first(where: { $0.0 == "read" })?.1, seconds > 0 {
            parts.append(String(format: "%.0f rows/s", Double(read) / seconds))
        }
        parts += facts.map { "\($0.0.replacingOccurrences(of: "_", with: " ")) \($0.1)" }
        if let failure { parts.append("FAILED: \(failure)") }
        return "\(stage.rawValue): " + parts.joined(separator: ", ")
    }
}
