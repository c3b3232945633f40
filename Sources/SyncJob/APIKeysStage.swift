import Logging
import Postgres
import Valkey
import Writers

/// The `api-keys` stage (SPEC §5): reads every `api_keys` row, page by page in one snapshot,
/// hands each page to the API-key writer, sends what it builds, then removes the keys of rows
/// deleted or rotated since, and reports. Memory holds two pages (one read ahead) and the keys
/// written, whatever the size of the table. API key strings never reach a log line.
struct APIKeysStage {
    let configuration: Configuration
    let dryRun: Bool
    let logger: Logger

    func run(postgres: PostgresConnection, valkey: any ValkeyClient, report: inout StageReport) async throws {
        let writer = APIKeyWriter(templates: configuration.keys)
        // The registry's size is read while PostgreSQL answers: the two servers work at once.
        async let registeredCount = writer.registeredCount(valkey)
        var written = Set<String>()
        var read = 0, skipped = 0, revoked = 0, entries = 0
        var unencodable: [String] = []
        var stopped = false
        try await postgres.withSnapshot {
            var pages = writer.pages(on: postgres, pageSize: configuration.batchSize).makeAsyncIterator()
            while let rows = try await pages.next() {
                read += rows.count
                let plan = try writer.plan(rows, seen: &written)
                for skip in plan.skipped {
                    logger.warning("api_keys row skipped: \(skip.reason)", metadata: ["id": "\(skip.id)"])
                }
                skipped += plan.skipped.count
                unencodable += plan.skipped.filter(\.unencodable).map(\.id)
                revoked += plan.revoked
                entries += plan.entries.count
                if !dryRun {
                    try await valkey.sendCounting(writer.registration(of: plan.entries), doing: "registering API keys")
                    // Small batches, streamed: Valkey applies one while the next is encoded.
                    try await valkey.sendCounting(plan.entries.chunks(of: min(configuration.batchSize, 250)).lazy.map(writer.hashes),
                                                  doing: "writing API keys")
                }
                if Shutdown.stopRequested {
                    // Stopped only if rows remain unread: after the last page the run is complete.
                    stopped = await pages.finish()
                    break
                }
            }
        }
        report.count("read", read)
        report.count("skipped", skipped)
        // Every request authenticates against these keys: an empty source (a wrong database
        // or search_path, a failed migration) must not wipe them.
        let previousCount = try await registeredCount
        guard read > 0 || previousCount == 0 else {
            throw StageFailure("api_keys is empty; the \(previousCount) cached API keys were left in place (check the database and search_path)")
        }
        report.count(dryRun ? "would_write" : "written", entries)
        if stopped {
            // The rows after the stop were not read: removing "stale" keys now would delete live ones.
            report.count("revoked", revoked)
            report.fact("stopped", "by \(Shutdown.stopReason ?? "signal"), after the page in flight; deleted keys are removed by the next run")
            return
        }
        let (stale, foreign) = try await writer.staleKeys(valkey, written: written)
        if foreign.count > 0 {
            logger.warning("API-key registry members that the api_key template cannot render were left alone", metadata: [
                "registry": "\(writer.registryKey)", "members": "\(foreign.count)",
            ])
            report.count("foreign_registry_members", foreign.count)
        }
        report.count(dryRun ? "would_remove" : "removed", stale.count)
        report.count("revoked", revoked)
        if !dryRun {
            try await valkey.sendCounting(writer.removal(of: stale), doing: "removing deleted API keys")
        }
        if !unencodable.isEmpty {
            report.count("skipped_unencodable", unencodable.count)
            throw StageFailure("\(unencodable.count) api_keys row(s) could not be encoded and were skipped (their cached keys removed); "
                               + "the other keys were written. Ids: " + unencodable.prefix(5).joined(separator: " "))
        }
    }
}
