import Postgres
import RESP
import Valkey
import Writers

/// The `params` stage (SPEC §5): `application_parameters` as one hash, replaced atomically
/// by building it under a temporary key and renaming it over the old one.
struct ParamsStage {
    let configuration: Configuration
    let dryRun: Bool

    func run(postgres: PostgresConnection, valkey: any ValkeyClient, report: inout StageReport) async throws {
        let rows = try await postgres.query("select name, value from application_parameters order by name")
        report.count("read", rows.count)
        let key = configuration.keys.key(.appParams)
        guard !rows.isEmpty || configuration.allowEmptyParams else {
            throw StageFailure("application_parameters is empty; \(key) was left as it is (pass --allow-empty-params to clear it)")
        }
        if dryRun {
            report.count("would_write", rows.count)
            return
        }
        let temporary = AtomicReplacement.temporaryKey(for: key)
        var batch = CommandBatch()
        batch.append("DEL", temporary)
        if rows.isEmpty {
            batch.append("DEL", key)
        } else {
            let chunk = 500
            for start in stride(from: 0, to: rows.count, by: chunk) {
                let part = rows[start..<min(start + chunk, rows.count)]
                batch.appendCommand(argumentCount: 2 + 2 * part.count)
                batch.appendArgument("HSET")
                batch.appendArgument(temporary)
                for row in part {
                    batch.appendArgument(try row[0].decode(String.self) ?? "")
                    // A NULL value becomes the empty string, as every other field does.
                    batch.appendArgument(try row[1].decode(String.self) ?? "")
                }
            }
            batch.append("RENAME", temporary, key)
        }
        let replies = try await valkey.execute(batch)
        if let failure = replies.first(where: \.isError) {
            throw StageFailure.refused(by: valkey.serverDescription, "replacing \(key)", reply: failure.errorMessage ?? "?")
        }
        report.count("written", rows.count)
    }
}
