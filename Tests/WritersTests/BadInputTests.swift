import Testing
@testable import Postgres
import RESP
import Timestamps
@testable import Writers

/// SPEC §11 for the writers: templates compared as patterns, registries' members told
/// apart, rows that cannot be written skipped by id.
@Suite struct WriterBadInputTests {
    func template(_ text: String) throws -> KeyTemplate {
        try KeyTemplate(text, allowedFields: ["id", "asset", "x"], name: "t")
    }

    @Test func templatesMatchTheKeysTheyRender() throws {
        let index = try template("usage_logs:index:asset:${asset}")
        #expect(index.matches("p:usage_logs:index:asset:BTC", prefix: "p:"))
        #expect(index.matches("p:usage_logs:index:asset:", prefix: "p:"))
        #expect(!index.matches("usage_logs:index:asset:BTC", prefix: "p:"))
        #expect(!index.matches("p:governor:usage_logs:index", prefix: "p:"))
        #expect(!index.matches("p:usage_logs:index:api_key:k", prefix: "p:"))
        let tagged = try template("{u}:${id}:h:${x}")
        #expect(tagged.matches("{u}:1:h:2:h:3", prefix: ""))
        #expect(!tagged.matches("{u}:1:x", prefix: ""))
    }

    @Test(arguments: [
        ("${asset}", "app:params", true), ("usage_logs:index:asset:${asset}", "usage_logs:index", false),
        ("a:${id}:b", "a:${x}", true), ("a:${id}:b", "a:c", false), ("x${id}", "${asset}y", true),
        ("usage_log:${id}", "usage_logs:index", false), ("ab${id}cd", "a${x}d", true), ("ab${id}", "ba${x}", false),
    ])
    func templatesThatCanRenderTheSameKey(a: String, b: String, overlap: Bool) throws {
        #expect(try template(a).canRenderSameKey(as: template(b)) == overlap)
        #expect(try template(b).canRenderSameKey(as: template(a)) == overlap)
    }

    @Test func overlappingFamiliesAreRejected() throws {
        _ = try KeyTemplates()
        #expect(throws: KeyTemplateError.self) { try KeyTemplates(overrides: ["usage_logs_index_asset": "${asset}"]) }
        #expect(throws: KeyTemplateError.self) { try KeyTemplates(overrides: ["usage_log": "sync:${id}"]) }
        #expect(throws: KeyTemplateError.self) { try KeyTemplates(overrides: ["report_usage_log": "usage_log:${id}"]) }
        _ = try KeyTemplates(overrides: ["usage_logs_index_asset": "assets:${asset}"])
    }

    @Test func logRowsThatCannotBeWrittenAreSkippedByID() throws {
        let encoder = LogPageEncoder(table: .usageLogs, templates: try KeyTemplates(), retentionDays: 93)
        let page = LogPageEncoderTests()
        let good = page.row("00000000-0000-0000-0000-000000000001", timestamp: "2026-11-27 16:00:00+00")
        let infinite = page.row("00000000-0000-0000-0000-000000000002", timestamp: "infinity", index: 1)
        let beyond = page.row("00000000-0000-0000-0000-000000000003", timestamp: "294276-01-01 00:00:00+00", index: 2)
        var batch = CommandBatch()
        let outcome = try encoder.encode([good, infinite, beyond], cutoff: Timestamp(rfc3339: "2026-01-01")!, into: &batch)
        #expect(outcome.written == 1)
        #expect(outcome.skippedUnencodable.map(\.id) == ["00000000-0000-0000-0000-000000000002", "00000000-0000-0000-0000-000000000003"])
        #expect(outcome.lastTimestamp == Timestamp(rfc3339: "2026-11-27T16:00:00Z"))
    }

    @Test func anAPIKeyRowThatCannotBeEncodedIsSkippedWithoutItsValues() throws {
        let writer = APIKeyWriter(templates: try KeyTemplates())
        let oids: [String: UInt32] = ["revoked": 16, "lrs_enabled": 16, "last_used": 1184, "created_at": 1184, "last_success": 1184,
                                      "burst_tokens": 701, "minimum_wait_seconds": 701]
        let columns = PostgresColumns(names: writer.columns, typeOIDs: writer.columns.map { oids[$0] ?? 25 })
        func row(_ id: String, key: String, revoked: String) -> PostgresRow {
            PostgresRow(columns: columns, values: writer.columns.map { name in
                switch name {
                case "id": id
                case "api_key": key
                case "revoked": revoked
                case "last_used": "infinity"
                default: nil
                }
            }, rowIndex: 0)
        }
        var seen = Set<String>()
        let plan = try writer.plan([row("1", key: "secret-key-1", revoked: "t"), row("2", key: "secret-key-2", revoked: "maybe")], seen: &seen)
        #expect(plan.entries.map(\.key) == ["api_key:secret-key-1"])
        #expect(plan.skipped.map(\.id) == ["2"] && plan.skipped.allSatisfy(\.unencodable))
        #expect(!plan.skipped[0].reason.contains("secret") && plan.skipped[0].reason.contains("revoked"))
    }
}
