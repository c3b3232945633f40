import Postgres
import RESP

/// The application parameters (SPEC §5): one hash, replaced atomically by building it under
/// a temporary key and renaming it over the old one.
package struct ParamsWriter: Sendable {
    package let key: String

    package init(templates: KeyTemplates) {
        key = templates.key(.appParams)
    }

    package static let query = SourceTable.applicationParameters.selectAll + " order by name"

    /// The commands that replace the hash with `rows` (name, value), or delete it when there
    /// are none. A NULL value becomes the empty string, as every other field does.
    package func replacement(_ rows: [PostgresRow]) throws -> CommandBatch {
        let temporary = AtomicReplacement.temporaryKey(for: key)
        var batch = CommandBatch()
        batch.append("DEL", temporary)
        guard !rows.isEmpty else {
            batch.append("DEL", key)
            return batch
        }
        for part in rows.chunks(of: 500) {
            batch.appendCommand(argumentCount: 2 + 2 * part.count)
            batch.appendArgument("HSET")
            batch.appendArgument(temporary)
            for row in part {
                batch.appendArgument(try row[0].decode(String.self) ?? "")
                batch.appendArgument(try row[1].decode(String.self) ?? "")
            }
        }
        batch.append("RENAME", temporary, key)
        return batch
    }
}
