import Foundation
import Logging
import SearchIndex
import Valkey
import Writers

/// The `search-index` stage (SPEC §7): builds every language's index from the documentation
/// site and replaces each key with one SET (atomic by itself). A language with a document
/// that could not be fetched keeps its previous key; failed documents make the stage fail.
struct SearchIndexStage {
    let configuration: Configuration
    let dryRun: Bool
    let logger: Logger

    func run(valkey: any ValkeyClient, report: inout StageReport) async throws {
        guard let location = configuration.docs else {
            throw ConfigurationError(setting: "--docs / SYNC_DOCS", problem: "the search-index stage needs the documentation site's location")
        }
        let build = try await SearchIndexBuilder(location: location).build()
        report.count("documents", build.documentCount)
        report.count("sections", build.sectionCount)
        report.count("languages", build.indexes.count)
        let batch = SearchIndexWriter(templates: configuration.keys).replacement(build.indexes.mapValues(SearchIndexJSON.encode))
        if !dryRun { try await valkey.sendCounting(batch, doing: "\(batch.count) search-index writes") }
        report.count(dryRun ? "would_write_keys" : "written_keys", batch.count)
        for failure in build.failures {
            logger.error("search-index document failed", metadata: [
                "language": "\(failure.language)", "document": "\(failure.document)",
                "location": "\(failure.location)", "reason": "\(failure.reason)",
            ])
        }
        if !build.failures.isEmpty {
            let kept = build.failedLanguages.sorted()
            let list = build.failures.prefix(10).map { "\($0.language)/\($0.document) (\($0.reason))" }.joined(separator: "; ")
            throw StageFailure("\(build.failures.count) document(s) failed: \(list)"
                + (build.failures.count > 10 ? "; …" : "")
                + (kept.isEmpty ? "" : "; previous index kept for \(kept.joined(separator: ", "))"))
        }
    }
}
