import Logging
import Postgres
import Valkey
import Writers

/// The `api-keys` stage (SPEC §5): reads every `api_keys` row, hands the rows to the
/// API-key writer, sends what it builds, and reports. API key strings never reach a log line.
struct APIKeysStage {
    let configuration: Configuration
    let dryRun: Bool
    let logger: Logger

    func run(postgres: PostgresConnection, valkey: any ValkeyClient, report: inout StageReport) async throws {
        let writer = APIKeyWriter(templates: configuration.keys)
        // The registry is read while PostgreSQL answers: the two servers work at once.
        async let registered = writer.registeredKeys(valkey)
        let rows = try await postgres.query(writer.query)
        report.count("read", rows.count)
        let plan = try writer.plan(rows)
        for skip in plan.skipped {
            logger.warning("api_keys row skipped: \(skip.reason)", metadata: ["id": "\(skip.id)"])
        }
        report.count("skipped", plan.skipped.count)

        let previous = try await registered
        // Every request authenticates against these keys: an empty source (a wrong database
        // or search_path, a failed migration) must not wipe them.
        guard !rows.isEmpty || previous.isEmpty else {
            throw StageFailure("api_keys is empty; the \(previous.count) cached API keys were left in place (check the database and search_path)")
        }
        let stale = previous.subtracting(plan.keys)
        report.count(dryRun ? "would_write" : "written", plan.entries.count)
        report.count(dryRun ? "would_remove" : "removed", stale.count)
        report.count("revoked", plan.revoked)
        if dryRun { return }

        // Only keys the registry does not hold yet: an unchanged table registers nothing.
        try await valkey.sendCounting(writer.registration(of: plan.keys.subtracting(previous)), doing: "registering API keys")
        // Small batches, streamed: Valkey applies one while the next is encoded.
        try await valkey.sendCounting(plan.entries.chunks(of: min(configuration.batchSize, 250)).lazy.map(writer.hashes),
                                      doing: "writing API keys")
        try await valkey.sendCounting(writer.removal(of: stale), doing: "removing deleted API keys")
    }
}
