import Foundation
import Postgres
import RESP
import Testing
import Valkey

/// SPEC §11 against the real servers and the real binary: one odd value, setting, registry
/// member or output stream works or fails alone, and no secret appears anywhere.
@Suite(.timeLimit(.minutes(10))) struct BadInputTests {
    static let secret = "Zq7-s3cret-PW"

    /// A conninfo or URL libpq cannot parse is bad configuration (64, not 75), named by its
    /// setting, and its password appears in no output, record or metrics file.
    @Test(arguments: [
        "postgresql://sync:\(secret)%zz@127.0.0.1/db",
        "host=127.0.0.1 password='\(secret)",
        "host=127.0.0.1 password=\(secret) port",
        "postgresql://sync:\(secret)@127.0.0.1/db?nosuchoption=1",
    ])
    func anUnparseableConninfoIs64AndShowsNoSecret(conninfo: String) async throws {
        try await withHarness { job in
            let metrics = NSTemporaryDirectory() + "bad-input-\(UUID().uuidString).prom"
            defer { unlink(metrics) }
            for arguments in [["run", "--metrics-file", metrics], ["config"], ["config", "--json"]] {
                let result = try await job.run(arguments, environment: ["DATABASE_URL": conninfo])
                #expect(result.status == 64, "\(arguments): \(result.stderr)")
                #expect(result.stderr.contains("DATABASE_URL"), "\(result.stderr)")
                let everything = result.stdout + result.stderr + ((try? String(contentsOfFile: metrics, encoding: .utf8)) ?? "")
                #expect(!everything.contains(Self.secret) && !everything.contains("s3cret"), "\(arguments): \(everything)")
            }
            #expect(try await job.string("sync:last_run")?.contains("s3cret") != true)
        }
    }

    /// `--postgres-password-file` and `SYNC_VALKEY_PASSWORD_FILE`: the first line of a file
    /// is the password, wrong ones are rejected (64), and neither shows up in `config`.
    @Test func passwordsComeFromFiles() async throws {
        try await withHarness { job in
            let user = try JobHarness.variable("SYNC_TEST_PG_USER")
            let password = try JobHarness.variable("SYNC_TEST_PG_PASSWORD")
            var components = try #require(URLComponents(string: job.databaseURL))
            components.password = nil
            let withoutPassword = try #require(components.string)
            #expect(components.user == user)
            let directory = NSTemporaryDirectory() + "pw-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let good = directory + "/pg", wrong = directory + "/wrong"
            try (password + "\r\nsecond line ignored\n").write(toFile: good, atomically: true, encoding: .utf8)
            try (Self.secret + "\n").write(toFile: wrong, atomically: true, encoding: .utf8)
            try await job.postgres.execute("insert into application_parameters values ('a', '1')")
            let environment = ["DATABASE_URL": withoutPassword, "PGPASSWORD": "", "PGPASSFILE": "/nonexistent"]
            let ran = try await job.run(["run", "--stage", "params", "--postgres-password-file", good], environment: environment)
            #expect(ran.status == 0, "\(ran.stderr)")
            #expect(try await job.hash("app:params") == ["a": "1"])
            let rejected = try await job.run(["run", "--stage", "params"], environment: environment.merging(["SYNC_POSTGRES_PASSWORD_FILE": wrong]) { $1 })
            #expect(rejected.status == 64, "\(rejected.stderr)")
            #expect(!(rejected.stdout + rejected.stderr).contains(Self.secret))
            let missing = try await job.run(["run", "--stage", "params", "--postgres-password-file", directory + "/none"], environment: environment)
            #expect(missing.status == 64 && missing.stderr.contains("--postgres-password-file"), "\(missing.stderr)")
            let fifo = directory + "/fifo"
            #expect(mkfifo(fifo, 0o600) == 0)
            let blocked = try await job.run(["config", "--postgres-password-file", fifo], environment: environment)
            #expect(blocked.status == 64 && blocked.stderr.contains("not a regular file"), "\(blocked.stderr)")
            let shown = try await job.run(["config", "--json", "--postgres-password-file", good, "--valkey-password-file", wrong], environment: environment)
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(!shown.stdout.contains(password) && !shown.stdout.contains(Self.secret), "\(shown.stdout)")
            // The Valkey password file gives the ACL user its password; a wrong one is refused (64).
            let aclUser = try JobHarness.variable("SYNC_TEST_VALKEY_ACL_USER")
            let aclPassword = try JobHarness.variable("SYNC_TEST_VALKEY_ACL_PASSWORD")
            let goodValkey = directory + "/valkey"
            try (aclPassword + "\n").write(toFile: goodValkey, atomically: true, encoding: .utf8)
            let userOnly = job.valkeyURL.replacingOccurrences(of: "://", with: "://\(aclUser)@")
            let valkeyAccepted = try await job.run(["run", "--stage", "params", "--valkey-password-file", goodValkey],
                                                   environment: ["VALKEY_URL": userOnly])
            #expect(valkeyAccepted.status == 0, "\(valkeyAccepted.stderr)")
            let valkeyRejected = try await job.run(["run", "--stage", "params"],
                                                   environment: ["VALKEY_URL": userOnly, "SYNC_VALKEY_PASSWORD_FILE": wrong])
            #expect(valkeyRejected.status == 64, "\(valkeyRejected.stderr)")
            #expect(!(valkeyRejected.stdout + valkeyRejected.stderr).contains(Self.secret))
        }
    }

    /// API keys whose timestamps are ±infinity or at the ends of PostgreSQL's range are
    /// written as PostgreSQL prints them, and a deleted key is still removed in the same run.
    @Test func apiKeysAtTheEdgesOfTheTimestampRange() async throws {
        try await withHarness { job in
            try await job.postgres.execute("""
                insert into api_keys (id, api_key, name, last_used, created_at, last_success, burst_tokens) values
                  ('00000000-0000-0000-0000-000000000001', 'key-inf', 'a', 'infinity', '-infinity', '294276-12-31 23:59:59.999999+00', 'NaN'),
                  ('00000000-0000-0000-0000-000000000002', 'key-bc', 'b', '4714-11-24 00:00:00+00 BC', '10000-01-01 00:00:00+00', null, 'Infinity'),
                  ('00000000-0000-0000-0000-000000000003', 'key-gone', 'c', now(), now(), now(), 1)
                """)
            let first = try await job.run(["run", "--stage", "api-keys"])
            #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
            let infinite = try await job.hash("api_key:key-inf")
            #expect(infinite["last_used"] == "infinity" && infinite["created_at"] == "-infinity")
            #expect(infinite["last_success"] == "294276-12-31T23:59:59.999999Z" && infinite["burst_tokens"] == "NaN")
            let ancient = try await job.hash("api_key:key-bc")
            #expect(ancient["last_used"] == "-4713-11-24T00:00:00.000000Z" && ancient["created_at"] == "10000-01-01T00:00:00.000000Z")
            #expect(try await job.valkey.send("EXISTS", job.prefix + "api_key:key-gone").int == 1)
            try await job.postgres.execute("delete from api_keys where api_key = 'key-gone'")
            let second = try await job.run(["run", "--stage", "api-keys"])
            #expect(second.status == 0, "\(second.stderr)")
            #expect(try await job.valkey.send("EXISTS", job.prefix + "api_key:key-gone").int == 0)
        }
    }

    /// Log rows at ±infinity or far in the future neither stop the copy nor hide its lag; a
    /// watermark no instant can hold is malformed for `status`, not a crash.
    @Test func logRowsAndWatermarksOutsideTheRange() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 200)
            try await job.postgres.execute("""
                insert into usage_logs (id, timestamp) values
                  ('00000000-0000-0000-0000-0000000000f1', 'infinity'), ('00000000-0000-0000-0000-0000000000f2', '-infinity'),
                  ('00000000-0000-0000-0000-0000000000f3', '294276-12-31 23:59:59+00')
                """)
            let ran = try await job.run(["run", "--stage", "usage-logs"])
            #expect(ran.status == 0, "\(ran.stdout)\(ran.stderr)")
            #expect(ran.stdout.contains("lag seconds"), "\(ran.stdout)")
            #expect(try await job.valkey.send("EXISTS", job.prefix + "usage_log:00000000-0000-0000-0000-0000000000f1").int == 0)
            _ = try await job.valkey.send("SET", job.prefix + "sync:watermark:usage_logs", "999999-01-01T00:00:00.000000Z")
            let status = try await job.run(["status"])
            #expect(status.status == 0 && status.stdout.contains("MALFORMED"), "\(status.stdout)\(status.stderr)")
            let copy = try await job.run(["run", "--stage", "usage-logs"])
            #expect(copy.status == 1 && copy.stdout.contains("fix or delete the key"), "\(copy.stdout)")
            #expect(try await job.run(["verify"]).status == 1)
            // Far ahead but representable: left where it is, and verify ends (up to the clock).
            _ = try await job.valkey.send("SET", job.prefix + "sync:watermark:usage_logs", "290000-01-01T00:00:00.000000Z")
            #expect(try await job.run(["run", "--stage", "usage-logs"]).status == 0)
            let verify = try await job.run(["verify"])
            #expect(!verify.terminatedBySignal && verify.stdout.contains("through 290000-01-01"), "\(verify.stdout)\(verify.stderr)")
            let flag = try await job.run(["backfill", "usage-logs", "--since", "999999-01-01"])
            #expect(flag.status == 64, "\(flag.stderr)")
        }
    }

    /// Registry members that are not the family's keys are left alone and reported: retention
    /// trims none of them, api-keys deletes none of them.
    @Test func foreignRegistryMembersAreLeftAlone() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 300)
            #expect(try await job.run(["run"]).status == 0)
            let foreignIndex = job.prefix + "governor:usage_logs:index"
            let foreignKey = job.prefix + "ratelimit:bucket"
            _ = try await job.valkey.send("ZADD", foreignIndex, "1", "old-member")
            _ = try await job.valkey.send("SET", foreignKey, "x")
            _ = try await job.valkey.send("SADD", job.prefix + "sync:indexes:usage_logs", foreignIndex)
            _ = try await job.valkey.send("SADD", job.prefix + "sync:api_keys", foreignKey)
            let nightly = try await job.run(["run", "--stage", "api-keys", "--stage", "retention"])
            #expect(nightly.status == 0, "\(nightly.stdout)\(nightly.stderr)")
            #expect(nightly.stdout.contains("foreign registry members 1"), "\(nightly.stdout)")
            #expect(try await job.valkey.send("ZCARD", foreignIndex).int == 1, "the old member was not trimmed")
            #expect(try await job.string("ratelimit:bucket") == "x")
        }
    }

    /// Two templates that can render the same key are bad configuration, compared as patterns.
    @Test func overlappingTemplatesAre64() async throws {
        try await withHarness { job in
            for template in ["usage_logs_index_asset=${asset}", "usage_log=sync:${id}"] {
                let result = try await job.run(["config", "--key-template", template])
                #expect(result.status == 64 && result.stderr.contains("same key"), "\(template): \(result.stderr)")
            }
        }
    }

    /// stdout and stderr on a full disk, or on a pipe nobody reads, change nothing: the run
    /// ends as with a terminal, and its watermark, summary and metrics are written.
    @Test(arguments: ["full", "closed pipe"])
    func outputThatCannotBeWrittenChangesNothing(kind: String) async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 500)
            let metrics = NSTemporaryDirectory() + "out-\(UUID().uuidString).prom"
            defer { unlink(metrics) }
            let process = Process()
            // The test runner ignores SIGPIPE, and an ignored signal stays ignored across exec:
            // env restores the default, so the job meets the pipe as a scheduler's child would.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["--default-signal=PIPE", try JobHarness.binary.path, "run", "--metrics-file", metrics, "--log-level", "debug"]
            process.environment = ProcessInfo.processInfo.environment.merging([
                "DATABASE_URL": job.databaseURL, "VALKEY_URL": job.valkeyURL, "SYNC_KEY_PREFIX": job.prefix, "SYNC_SETTLE": "0s",
                "SYNC_LOG_FORMAT": "json",
            ].merging(job.valkeyEnvironment) { $1 }) { $1 }
            let pipe = Pipe()
            if kind == "full" {
                let full = try #require(FileHandle(forWritingAtPath: "/dev/full"))
                process.standardOutput = full
                process.standardError = full
            } else {
                try pipe.fileHandleForReading.close()
                process.standardOutput = pipe
                process.standardError = pipe
            }
            try process.run()
            await JobHarness.waitForExit(process)
            #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(kind): \(process.terminationStatus)")
            #expect(try await job.string("sync:watermark:usage_logs") != nil)
            #expect(try await job.string("sync:last_run")?.contains("\"outcome\":\"success\"") == true)
            #expect((try? String(contentsOfFile: metrics, encoding: .utf8))?.contains("sync_job_last_run_success{command=\"run\"} 1") == true)
        }
    }
}
