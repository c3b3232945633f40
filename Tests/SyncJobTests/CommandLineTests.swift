import Foundation
import Testing

/// The command-line conventions an operator expects: `--version`, shell completions, and
/// `config`, the first command run on call. The real binary; no server is needed.
@Suite struct CommandLineTests {
    /// Every setting variable emptied (empty counts as unset), so that the test process's own
    /// environment does not leak in.
    static let clean: [String: String] = [
        "DATABASE_URL": "", "VALKEY_URL": "", "SYNC_KEY_PREFIX": "", "SYNC_BATCH_SIZE": "", "SYNC_OVERLAP": "",
        "SYNC_KEY_TEMPLATES": "", "SYNC_DOCS": "", "SYNC_LOG_LEVEL": "", "SYNC_LOG_FORMAT": "", "SYNC_METRICS_FILE": "",
        "PGHOST": "", "PGPORT": "", "PGUSER": "", "PGPASSWORD": "", "PGDATABASE": "", "PGSERVICE": "",
    ]

    func syncJob(_ arguments: [String], _ environment: [String: String] = [:]) async throws -> JobHarness.ProcessResult {
        try await JobHarness.runProcess(try JobHarness.binary.path, arguments, environment: Self.clean.merging(environment) { $1 })
    }

    @Test func versionNamesTheReleaseAndTheCommit() async throws {
        let result = try await syncJob(["--version"])
        #expect(result.status == 0, "\(result.stderr)")
        let line = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line.wholeMatch(of: /sync-job \d+\.\d+\.\d+ \(commit [0-9a-f]{12}(-dirty)?\)/) != nil, "\(line)")
        let git = try await JobHarness.runProcess("/usr/bin/env", ["git", "-C", JobHarness.repositoryRoot.path, "rev-parse", "--short=12", "HEAD"],
                                                  environment: [:])
        if git.status == 0 {
            let head = git.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(line.contains("(commit \(head)"), "built from \(head): \(line)")
        }
    }

    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScripts(shell: String) async throws {
        let result = try await syncJob(["--generate-completion-script", shell])
        #expect(result.status == 0, "\(result.stderr)")
        for word in ["sync-job", "backfill", "verify", "config", "valkey-url", "max-runtime"] {
            #expect(result.stdout.contains(word), "\(shell): \(word) missing")
        }
    }

    @Test func configShowsEachValueWithItsOriginAndHidesPasswords() async throws {
        let result = try await syncJob(["config", "--json", "--batch-size", "7", "--key-template", "api_key=ak:${id}"], [
            "DATABASE_URL": "postgresql://reader:Pg-S3cret-pw@db.example:6432/prod?sslmode=require",
            "VALKEY_URL": "valkeys://syncer:Vk-S3cret-pw@cache.example:6380/2",
            "SYNC_BATCH_SIZE": "500", "SYNC_OVERLAP": "90s",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.contains("S3cret") && !result.stderr.contains("S3cret"), "a password leaked: \(result.stdout)")
        struct Report: Decodable { var rows: [[String: String]] }
        let rows = try JSONDecoder().decode(Report.self, from: Data(result.stdout.utf8)).rows
        func row(_ setting: String) -> (value: String?, from: String?) {
            let found = rows.first { $0["setting"] == setting }
            return (found?["value"], found?["from"])
        }
        #expect(row("--batch-size") == ("7", "--batch-size"), "the flag wins over SYNC_BATCH_SIZE")
        #expect(row("--overlap") == ("1m30s", "SYNC_OVERLAP"))
        #expect(row("--settle") == ("5s", "default"))
        #expect(row("--valkey-url") == ("valkeys://syncer:***@cache.example:6380/2", "VALKEY_URL"))
        #expect(row("--postgres-url").value == "postgresql://reader:***@db.example:6432/prod?sslmode=require")
        #expect(row("  host") == ("db.example", "DATABASE_URL"))
        #expect(row("  port") == ("6432", "DATABASE_URL"))
        #expect(row("  sslmode") == ("require", "DATABASE_URL"))
        #expect(row("  password") == ("***", "DATABASE_URL"))
        #expect(row("--key-template api_key") == ("ak:${id}", "--key-template"))
        #expect(row("--key-template usage_log") == ("usage_log:${id}", "default"))
    }

    @Test func configFollowsLibpqsEnvironmentWhenNoURLIsGiven() async throws {
        let result = try await syncJob(["config"], ["PGHOST": "pg.internal", "PGUSER": "job", "PGPASSWORD": "Env-S3cret"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.contains("Env-S3cret"))
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("  host ") && $0.contains("pg.internal") && $0.hasSuffix("libpq: PGHOST") }, "\(result.stdout)")
        #expect(lines.contains { $0.hasPrefix("  password ") && $0.contains("***") && $0.hasSuffix("libpq: PGPASSWORD") }, "\(result.stdout)")
        #expect(lines.contains { $0.hasPrefix("--postgres-url ") && $0.hasSuffix("unset: libpq's PG* environment") }, "\(result.stdout)")
    }

    @Test func configListsEveryProblemAndExits64() async throws {
        let result = try await syncJob(["config", "--batch-size", "0", "--valkey-timeout", "soon"],
                                       ["SYNC_OVERLAP": "5 parsecs", "SYNC_KEY_TEMPLATES": "usage_log=plain", "VALKEY_URL": "http://x"])
        #expect(result.status == 64, "\(result.stdout)")
        for setting in ["--batch-size", "--valkey-timeout", "SYNC_OVERLAP", "SYNC_KEY_TEMPLATES", "VALKEY_URL"] {
            #expect(result.stderr.contains(setting), "\(setting) not listed: \(result.stderr)")
        }
        #expect(result.stderr.contains("5 bad settings"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }
}
