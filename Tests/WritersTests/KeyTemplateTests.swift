import Testing
@testable import Writers

@Suite struct KeyTemplateTests {
    @Test func defaultsRenderAsSpecSays() throws {
        let keys = try KeyTemplates()
        #expect(keys.key(.usageLogsIndex) == "usage_logs:index")
        #expect(keys.key(.appParams) == "app:params")
        #expect(keys.key(.watermark, ["table": "usage_logs"]) == "sync:watermark:usage_logs")
        #expect(keys.key(.searchIndex, ["lang": "ja"]) == "search:index:ja")
        #expect(keys[.usageLogsIndexApiKey].fields == ["api_key_id"])
    }

    @Test func prefixIsPrependedToEveryKey() throws {
        let keys = try KeyTemplates(prefix: "staging:")
        #expect(keys.key(.lastRun) == "staging:sync:last_run")
        #expect(keys.indexRegistryKey(table: "usage_logs") == "staging:sync:indexes:usage_logs")
        let rendered = keys[.usageLog].render(prefix: Array(keys.prefix.utf8)) { $0 == "id" ? Array("abc".utf8) : nil }
        #expect(rendered.map { String(decoding: $0, as: UTF8.self) } == "staging:usage_log:abc")
    }

    @Test func hashTagsAndOtherBracesAreLiteral() throws {
        let keys = try KeyTemplates(overrides: ["usage_log": "{usage}:log:${id}:${asset}", "app_params": "{app}:params"])
        let rendered = keys[.usageLog].render { ["id": "1", "asset": "BTC"][$0].map { Array($0.utf8) } }
        #expect(rendered.map { String(decoding: $0, as: UTF8.self) } == "{usage}:log:1:BTC")
        #expect(keys.key(.appParams) == "{app}:params")
    }

    @Test func nullPlaceholderValueGivesNoKey() throws {
        let keys = try KeyTemplates()
        #expect(keys[.usageLogsIndexAsset].render { _ in nil } == nil)
    }

    @Test(arguments: [
        ("usage_log=usage_log:${nope}", "unknown field `${nope}`"),
        ("usage_log=usage_log:${id", "no closing"),
        ("usage_log=x:${}", "names no field"),
        ("app_params=app:${lang}", "takes no placeholders"),
        ("no_such_key=x", "no such key"),
        ("usage_log=", "empty"),
        ("api_key=api:${asset}", "unknown field"),
    ])
    func badTemplatesAreRejectedNamingTheProblem(item: String, problem: String) throws {
        let error = #expect(throws: KeyTemplateError.self) {
            try KeyTemplates(overrides: KeyTemplates.parseOverrides([item]))
        }
        #expect(error?.description.contains(problem) == true, "\(error?.description ?? "")")
        #expect(error?.description.contains(String(item.split(separator: "=").first ?? "")) == true)
    }

    @Test func overrideWithoutEqualsIsRejected() {
        #expect(throws: KeyTemplateError.self) { try KeyTemplates.parseOverrides(["usage_log"]) }
    }
}

/// SPEC §3: a template under which rows would overwrite each other is a configuration error.
@Suite struct KeyTemplateCollisionTests {
    @Test(arguments: [
        ("usage_log", "plain", "${id}"),
        ("report_usage_log", "r:${api_key_id}", "${id}"),
        ("api_key", "key:${name}", "${api_key} or ${id}"),
        ("usage_logs_index_api_key", "idx:one", "${api_key_id}"),
        ("usage_logs_index_asset", "idx:asset", "${asset}"),
        ("watermark", "sync:wm", "${table}"),
        ("search_index", "search:all", "${lang}"),
    ])
    func templatesThatMergeRowsAreRefused(name: String, template: String, required: String) {
        #expect {
            try KeyTemplates(overrides: [name: template])
        } throws: { error in
            "\(error)".contains(name) && "\(error)".contains(required)
        }
    }

    @Test func templatesNamingTheirKeyAreAccepted() throws {
        let keys = try KeyTemplates(overrides: ["api_key": "key:${id}", "usage_log": "{u}:${asset}:${id}"])
        #expect(keys[.apiKey].fields == ["id"])
    }

    @Test func twoFamiliesOnOneTemplateAreRefused() {
        #expect(throws: KeyTemplateError.self) {
            try KeyTemplates(overrides: ["usage_logs_index": "idx", "report_usage_logs_index": "idx"])
        }
    }
}
