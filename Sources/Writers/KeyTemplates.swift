/// The configurable key names of SPEC §3, with the key prefix.
package struct KeyTemplates: Sendable {
    /// One configurable key of SPEC §3 (the NAME of `--key-template NAME=TEMPLATE`).
    package enum Name: String, Sendable, CaseIterable {
        case usageLog = "usage_log"
        case usageLogsIndex = "usage_logs_index"
        case usageLogsIndexApiKey = "usage_logs_index_api_key"
        case usageLogsIndexAsset = "usage_logs_index_asset"
        case reportUsageLog = "report_usage_log"
        case reportUsageLogsIndex = "report_usage_logs_index"
        case reportUsageLogsIndexApiKey = "report_usage_logs_index_api_key"
        case apiKey = "api_key"
        case appParams = "app_params"
        case watermark = "watermark"
        case searchIndex = "search_index"
        case searchIndexLegacy = "search_index_legacy"
        case lastRun = "last_run"

        package var defaultTemplate: String {
            switch self {
            case .usageLog: "usage_log:${id}"
            case .usageLogsIndex: "usage_logs:index"
            case .usageLogsIndexApiKey: "usage_logs:index:api_key:${api_key_id}"
            case .usageLogsIndexAsset: "usage_logs:index:asset:${asset}"
            case .reportUsageLog: "report_usage_log:${id}"
            case .reportUsageLogsIndex: "report_usage_logs:index"
            case .reportUsageLogsIndexApiKey: "report_usage_logs:index:api_key:${api_key_id}"
            case .apiKey: "api_key:${api_key}"
            case .appParams: "app:params"
            case .watermark: "sync:watermark:${table}"
            case .searchIndex: "search:index:${lang}"
            case .searchIndexLegacy: "search:index"
            case .lastRun: "sync:last_run"
            }
        }

        /// What the template's placeholders may name.
        package var allowedFields: Set<String> {
            switch self {
            case .usageLog, .usageLogsIndex, .usageLogsIndexApiKey, .usageLogsIndexAsset:
                Set(SourceTable.usageLogs.columns)
            case .reportUsageLog, .reportUsageLogsIndex, .reportUsageLogsIndexApiKey:
                Set(SourceTable.reportUsageLogs.columns)
            case .apiKey: Set(SourceTable.apiKeys.columns)
            case .watermark: ["table"]
            case .searchIndex: ["lang"]
            case .appParams, .searchIndexLegacy, .lastRun: []
            }
        }

        /// Placeholders a template must name, one of each inner list, so that rows (or
        /// tables, or languages) never overwrite each other under one key (SPEC §3).
        package var requiredFields: [[String]] {
            switch self {
            case .usageLog, .reportUsageLog: [["id"]]
            case .apiKey: [["api_key", "id"]]
            case .usageLogsIndexApiKey, .reportUsageLogsIndexApiKey: [["api_key_id"]]
            case .usageLogsIndexAsset: [["asset"]]
            case .watermark: [["table"]]
            case .searchIndex: [["lang"]]
            case .usageLogsIndex, .reportUsageLogsIndex, .appParams, .searchIndexLegacy, .lastRun: []
            }
        }
    }

    /// Prepended to every key the job writes.
    package let prefix: String
    private let templates: [Name: KeyTemplate]

    /// The defaults of SPEC §3 with `overrides` (NAME → TEMPLATE) applied; validates every one.
    package init(prefix: String = "", overrides: [String: String] = [:]) throws(KeyTemplateError) {
        self.prefix = prefix
        var templates: [Name: KeyTemplate] = [:]
        for (name, text) in overrides {
            guard let key = Name(rawValue: name) else {
                let known = Name.allCases.map(\.rawValue).joined(separator: ", ")
                throw KeyTemplateError(name: name, template: text, problem: "no such key; known names: \(known)")
            }
            let template = try KeyTemplate(text, allowedFields: key.allowedFields, name: name)
            for alternatives in key.requiredFields where !alternatives.contains(where: template.fields.contains) {
                let spelled = alternatives.map { "${\($0)}" }.joined(separator: " or ")
                throw KeyTemplateError(name: name, template: text,
                                       problem: "must name \(spelled), or different rows would overwrite each other under one key")
            }
            templates[key] = template
        }
        for key in Name.allCases where templates[key] == nil {
            templates[key] = try KeyTemplate(key.defaultTemplate, allowedFields: key.allowedFields, name: key.rawValue)
        }
        // Two families under one key would overwrite each other too, and so would a family
        // and the job's bookkeeping: compared as patterns, not as texts, since `${asset}`
        // alone can render any key at all.
        let bookkeeping = try Self.bookkeeping(lastRun: templates[.lastRun]!)
        for (offset, key) in Name.allCases.enumerated() {
            let template = templates[key]!
            for other in Name.allCases.dropFirst(offset + 1) where template.canRenderSameKey(as: templates[other]!) {
                throw KeyTemplateError(name: key.rawValue, template: template.text,
                                       problem: "can render the same key as \(other.rawValue)=\(templates[other]!.text); each key family needs keys of its own")
            }
            for own in bookkeeping where template.canRenderSameKey(as: own) {
                throw KeyTemplateError(name: key.rawValue, template: template.text,
                                       problem: "can render the same key as the job's own bookkeeping key \(own.text)")
            }
        }
        self.templates = templates
    }

    /// The bookkeeping keys (SPEC §3 `sync:`) beside the templates: the API-key registry, the
    /// index registries and the per-command run summaries.
    private static func bookkeeping(lastRun: KeyTemplate) throws(KeyTemplateError) -> [KeyTemplate] {
        [
            try KeyTemplate(apiKeyRegistry, allowedFields: [], name: "api-key registry"),
            try KeyTemplate(indexRegistryStem + "${table}", allowedFields: ["table"], name: "index registry"),
            try KeyTemplate(lastRun.text + ":${command}", allowedFields: ["command"], name: "run summary"),
        ]
    }

    package static let apiKeyRegistry = "sync:api_keys"
    package static let indexRegistryStem = "sync:indexes:"

    /// Parses `NAME=TEMPLATE` items (flags, or the comma-separated SYNC_KEY_TEMPLATES).
    package static func parseOverrides(_ items: [String]) throws(KeyTemplateError) -> [String: String] {
        var result: [String: String] = [:]
        for item in items {
            guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
                throw KeyTemplateError(name: item, template: "", problem: "expected NAME=TEMPLATE")
            }
            result[String(item[..<equals])] = String(item[item.index(after: equals)...])
        }
        return result
    }

    package subscript(_ name: Name) -> KeyTemplate { templates[name]! }

    /// The full key of a template without placeholders, or with the given values.
    package func key(_ name: Name, _ values: [String: String] = [:]) -> String {
        // Placeholders were validated at start-up; a missing value here is a programming error.
        guard let key = self[name].render(prefix: prefix, values) else {
            preconditionFailure("key template \(name.rawValue) rendered without all its values")
        }
        return key
    }

    /// The bookkeeping set listing every index key written for a table (SPEC §3 `sync:`),
    /// so that retention finds the per-key and per-asset indexes without scanning the keyspace.
    package func indexRegistryKey(table: String) -> String {
        prefix + Self.indexRegistryStem + table
    }
}
