import Foundation
import Logging
import RESP
import SearchIndex
import Valkey

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
        let lowered = location.lowercased()
        if !lowered.hasPrefix("http://"), !lowered.hasPrefix("https://") {
            let directory = lowered.hasPrefix("file://") ? (URL(string: location)?.path ?? location) : location
            guard FileManager.default.fileExists(atPath: directory + "/manifest.json") else {
                throw ConfigurationError(setting: "--docs / SYNC_DOCS", problem: "\(location) holds no manifest.json")
            }
        }
        let build = try await SearchIndexBuilder(location: location).build()
        report.count("documents", build.documentCount)
        report.count("sections", build.sectionCount)
        report.count("languages", build.indexes.count)
        let keys = configuration.keys
        var batch = CommandBatch()
        for (language, entries) in build.indexes.sorted(by: { $0.key < $1.key }) {
            let json = SearchIndexJSON.encode(entries)
            batch.appendCommand(argumentCount: 3)
            batch.appendArgument("SET")
            batch.appendArgument(keys.key(.searchIndex, ["lang": language]))
            batch.appendArgument(json)
            if language == "en" {
                batch.appendCommand(argumentCount: 3)
                batch.appendArgument("SET")
                batch.appendArgument(keys.key(.searchIndexLegacy))
                batch.appendArgument(json)
            }
        }
        if !dryRun, !batch.isEmpty {
            let outcome = try await valkey.executeCountingErrors(batch)
            if let first = outcome.firstErrors.first {
                throw StageFailure.refused(by: valkey.serverDescription, "\(outcome.errorCount) search-index writes", reply: first.message)
            }
        }
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
