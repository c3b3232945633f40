import RESP

/// The search indexes (SPEC §7): one SET per language (atomic by itself), and the legacy key
/// with the English index.
package struct SearchIndexWriter: Sendable {
    package let templates: KeyTemplates

    package init(templates: KeyTemplates) {
        self.templates = templates
    }

    /// SETs of each language's JSON, in the order of the languages' codes.
    package func replacement<JSON: RESPArgument>(_ indexes: [String: JSON]) -> CommandBatch {
        var batch = CommandBatch()
        func set(_ key: String, _ json: JSON) {
            batch.appendCommand(argumentCount: 3)
            batch.appendArgument("SET")
            batch.appendArgument(key)
            batch.appendArgument(json)
        }
        for (language, json) in indexes.sorted(by: { $0.key < $1.key }) {
            set(templates.key(.searchIndex, ["lang": language]), json)
            if language == "en" { set(templates.key(.searchIndexLegacy), json) }
        }
        return batch
    }
}
