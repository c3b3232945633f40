import RESP
import Valkey

/// The run summaries (SPEC §8): `sync:last_run` and `sync:last_run:COMMAND`.
package struct RunRecordWriter: Sendable {
    package let key: String

    package init(templates: KeyTemplates) {
        key = templates.key(.lastRun)
    }

    package func record(_ json: String, command: String) -> CommandBatch {
        var batch = CommandBatch()
        batch.append("SET", key, json)
        batch.append("SET", key + ":" + command, json)
        return batch
    }

    /// The last run's summary as stored (nil when none was recorded).
    package func lastRun(_ valkey: any ValkeyClient) async throws -> String? {
        try await valkey.send("GET", key).string
    }
}
