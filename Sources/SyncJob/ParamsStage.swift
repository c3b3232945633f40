import Postgres
import Valkey
import Writers

/// The `params` stage (SPEC §5): reads `application_parameters` and sends the parameters
/// writer's atomic replacement of the hash.
struct ParamsStage {
    let configuration: Configuration
    let dryRun: Bool

    func run(postgres: PostgresConnection, valkey: any ValkeyClient, report: inout StageReport) async throws {
        let writer = ParamsWriter(templates: configuration.keys)
        let rows = try await postgres.query(ParamsWriter.query)
        report.count("read", rows.count)
        guard !rows.isEmpty || configuration.allowEmptyParams else {
            throw StageFailure("application_parameters is empty; \(writer.key) was left as it is (pass --allow-empty-params to clear it)")
        }
        if dryRun {
            report.count("would_write", rows.count)
            return
        }
        _ = try await valkey.sendAll(try writer.replacement(rows), doing: "replacing \(writer.key)")
        report.count("written", rows.count)
    }
}
