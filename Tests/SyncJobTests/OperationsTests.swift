import Foundation
import Postgres
import Testing
import Valkey

/// The command line of SPEC §8 as operators use it: the real binary as a subprocess.
@Suite(.timeLimit(.minutes(10))) struct OperationsTests {
    @Test func defaultRunNightlyAndStatus() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 1500, reportRows: 150, apiKeys: 30)
            let run = try await job.run(["run"])
            #expect(run.status == 0, "\(run.stderr)")
            for stage in ["params:", "api-keys:", "usage-logs:", "report-logs:"] {
                #expect(run.stdout.contains(stage), "\(stage) missing in \(run.stdout)")
            }
            #expect(!run.stdout.contains("retention:") && !run.stdout.contains("search-index:"))
            let docs = JobHarness.repositoryRoot.appendingPathComponent("sample-docs").path
            let nightly = try await job.run(["nightly", "--docs", docs])
            #expect(nightly.status == 0, "\(nightly.stdout)\(nightly.stderr)")
            #expect(nightly.stdout.contains("retention:") && nightly.stdout.contains("search-index:"))
            #expect(try await job.string("search:index:ja") != nil)
            #expect(try await job.string("search:index") == (try await job.string("search:index:en")))

            let lastRun = try #require(try await job.string("sync:last_run"))
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(lastRun.utf8)) as? [String: Any])
            #expect(summary["command"] as? String == "nightly" && summary["outcome"] as? String == "success")
            #expect((summary["stages"] as? [Any])?.count == 6)

            let status = try await job.run(["status"])
            #expect(status.status == 0, "\(status.stderr)")
            let watermark = try #require(try await job.string("sync:watermark:usage_logs"))
            #expect(status.stdout.contains("usage_logs") && status.stdout.contains(watermark), "\(status.stdout)")
            #expect(status.stdout.contains("last run: nightly success"), "\(status.stdout)")
            let json = try await job.run(["status", "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let marks = try #require(object["watermarks"] as? [String: [String: Any]])
            #expect(marks["usage_logs"]?["watermark"] as? String == watermark)
            #expect(marks["usage_logs"]?["lag_seconds"] as? Double == 0)
            #expect((object["last_run"] as? [String: Any])?["command"] as? String == "nightly")
        }
    }

    /// Rows without a timestamp are never copied (no window holds them) and the stage counts
    /// them; the lag is measured from the newest timestamped row.
    @Test func rowsWithoutATimestampAreCountedNotCopied() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 200, reportRows: 0, apiKeys: 5)
            _ = try await job.postgres.execute("update usage_logs set \"timestamp\" = null where id in (select id from usage_logs order by id limit 7)")
            let expected = try #require(try await job.postgres.query("select count(*) from usage_logs where \"timestamp\" is null").first?[0].decode(Int.self))
            let untimestamped = try await job.postgres.query("select id::text from usage_logs where \"timestamp\" is null").compactMap { $0.text(0) }
            #expect(expected >= 7)
            let run = try await job.run(["run", "--stage", "usage-logs"])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("skipped null timestamp \(expected),"), "\(run.stdout)")
            for id in untimestamped {
                #expect(try await job.valkey.send("EXISTS", job.prefix + "usage_log:" + id).int == 0, "\(id) was copied")
            }
            let lastRun = try #require(try await job.string("sync:last_run"))
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(lastRun.utf8)) as? [String: Any])
            let stage = try #require((summary["stages"] as? [[String: Any]])?.first)
            #expect((stage["counts"] as? [String: Int])?["skipped_null_timestamp"] == expected, "\(stage)")
            #expect((stage["facts"] as? [String: String])?["lag_seconds"] == "0.000", "\(stage)")
        }
    }

    /// One reader of watermark keys: a value that is not a timestamp is reported as such by
    /// `status` (verbatim, marked), and ends `verify` and the copy with a message naming the key.
    @Test func aMalformedWatermarkIsReportedEverywhere() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 50, reportRows: 0, apiKeys: 5)
            _ = try await job.valkey.send("SET", job.prefix + "sync:watermark:usage_logs", "last tuesday")
            let status = try await job.run(["status"])
            #expect(status.status == 0, "\(status.stderr)")
            #expect(status.stdout.contains("last tuesday (MALFORMED"), "\(status.stdout)")
            let json = try await job.run(["status", "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let usage = try #require((object["watermarks"] as? [String: [String: Any]])?["usage_logs"])
            #expect(usage["watermark"] as? String == "last tuesday" && usage["watermark_malformed"] as? Bool == true, "\(json.stdout)")
            for arguments in [["verify"], ["run", "--stage", "usage-logs"]] {
                let result = try await job.run(arguments)
                #expect(result.status == 1, "\(arguments): \(result.stdout)\(result.stderr)")
                #expect((result.stdout + result.stderr).contains("sync:watermark:usage_logs holds \"last tuesday\""), "\(arguments): \(result.stdout)\(result.stderr)")
            }
            #expect(try await job.string("sync:watermark:usage_logs") == "last tuesday", "left for the operator")
        }
    }

    @Test func backfillRestoresARangeWithoutMovingTheWatermark() async throws {
        try await withHarness { job in
            // No entry may expire between the snapshots this test compares.
            let longRetention = ["SYNC_RETENTION_DAYS": "400"]
            try await job.generate(usageRows: 2000, reportRows: 0, apiKeys: 10)
            #expect(try await job.run(["run", "--stage", "usage-logs"], environment: longRetention).status == 0)
            let watermark = try await job.string("sync:watermark:usage_logs")
            let before = try await job.snapshot()
            // Lose a day's worth of entries and their index members by hand.
            let lost = try await job.postgres.query("""
                select id::text from usage_logs where "timestamp" >= now() - interval '10 days' and "timestamp" < now() - interval '9 days'
                """).map { try $0[0].decode(String.self)! }
            #expect(lost.count > 5)
            for id in lost {
                _ = try await job.valkey.send("DEL", job.prefix + "usage_log:" + id)
                _ = try await job.valkey.send("ZREM", job.prefix + "usage_logs:index", id)
            }
            let since = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-11 * 86_400))
            let until = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-8 * 86_400))
            let result = try await job.run(["backfill", "usage-logs", "--since", since, "--until", until], environment: longRetention)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try await job.snapshot() == before)
            #expect(try await job.string("sync:watermark:usage_logs") == watermark, "backfill never moves the watermark")
            let bad = try await job.run(["backfill", "params", "--since", "2026-11-01"], environment: longRetention)
            #expect(bad.status == 64)
        }
    }

    @Test func verifyFindsDifferencesAndRepairHealsThem() async throws {
        try await withHarness { job in
            // No entry may expire between the snapshots this test compares.
            let longRetention = ["SYNC_RETENTION_DAYS": "400"]
            try await job.generate(usageRows: 3000, reportRows: 300, apiKeys: 10)
            #expect(try await job.run(["run", "--stage", "usage-logs", "--stage", "report-logs"], environment: longRetention).status == 0)
            let clean = try await job.run(["verify"], environment: longRetention)
            #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
            let healthy = try await job.snapshot()

            // Entries deleted from Valkey by hand, and a row deleted from PostgreSQL.
            let deleted = try await job.postgres.query("select id::text, to_char(\"timestamp\" at time zone 'UTC', 'YYYY-MM-DD') from usage_logs where \"timestamp\" > now() - interval '20 days' order by id limit 4")
            for row in deleted.prefix(3) {
                let id = try row[0].decode(String.self)!
                _ = try await job.valkey.send("DEL", job.prefix + "usage_log:" + id)
                _ = try await job.valkey.send("ZREM", job.prefix + "usage_logs:index", id)
            }
            let gone = try deleted[3][0].decode(String.self)!
            try await job.postgres.execute("delete from usage_logs where id = $1::uuid", [.text(gone)])

            let found = try await job.run(["verify"], environment: longRetention)
            #expect(found.status == 1, "\(found.stdout)")
            let day = try deleted[0][1].decode(String.self)!
            #expect(found.stdout.contains(day), "\(found.stdout)")

            let repaired = try await job.run(["verify", "--repair"], environment: longRetention)
            #expect(repaired.status == 0, "\(repaired.stdout)\(repaired.stderr)")
            #expect(try await job.run(["verify"], environment: longRetention).status == 0)
            #expect(try await job.hash("usage_log:" + gone).isEmpty, "an entry PostgreSQL no longer has is removed")
            #expect(try await job.sortedSet("usage_logs:index")[gone] == nil)
            var expected = healthy
            expected.removeValue(forKey: "usage_log:" + gone)
            let after = try await job.snapshot()
            #expect(after["usage_log:" + (try deleted[0][0].decode(String.self)!)] == healthy["usage_log:" + (try deleted[0][0].decode(String.self)!)])
            #expect(Set(after.keys) == Set(expected.keys))
            for (key, value) in expected where !key.contains("index") { #expect(after[key] == value, "\(key)") }
        }
    }

    @Test func secondRunExits75WhileTheFirstHoldsTheLock() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 120_000, reportRows: 0, apiKeys: 50)
            let first = try job.start(["run", "--stage", "usage-logs", "--batch-size", "300"])
            #expect(try await job.waitForKey("sync:watermark:usage_logs"), "the first run never acknowledged a page")
            let second = try await job.run(["run", "--stage", "params"])
            // A busy lock is an ending too, recorded under its own command (SPEC §10).
            let backfill = try await job.run(["backfill", "usage-logs", "--since", "2026-01-01"])
            #expect(backfill.status == 75)
            let recorded = try #require(try await job.string("sync:last_run:backfill"))
            #expect(recorded.contains("holds the lock") && recorded.contains("\"exit_code\":75"), "\(recorded)")
            await JobHarness.waitForExit(first)
            #expect(first.terminationStatus == 0)
            #expect(second.status == 75, "\(second.stdout)\(second.stderr)")
            #expect(second.stderr.contains("another sync-job run holds the lock"), "\(second.stderr)")
            // Another key prefix is another cache: not excluded.
            let free = try await job.run(["run", "--stage", "params"])
            #expect(free.status == 0)
        }
    }

    @Test func sigtermFinishesTheBatchSavesTheWatermarkAndExitsBySignal() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 120_000, reportRows: 0, apiKeys: 50)
            let process = try job.start(["run", "--stage", "usage-logs", "--stage", "report-logs", "--batch-size", "300"])
            // After the first acknowledged page the job's handlers are surely installed (a test
            // process's children inherit an ignored SIGTERM until then).
            #expect(try await job.waitForKey("sync:watermark:usage_logs"), "the copy never acknowledged a page")
            kill(process.processIdentifier, SIGTERM)
            await JobHarness.waitForExit(process)
            #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGTERM,
                    "exit by the same signal; got \(process.terminationReason) \(process.terminationStatus)")
            let watermark = try #require(try await job.string("sync:watermark:usage_logs"))
            let lastRun = try #require(try await job.string("sync:last_run"))
            #expect(lastRun.contains("\"outcome\":\"interrupted\""), "\(lastRun)")
            #expect(!lastRun.contains("report-logs"), "no stage starts after the signal")
            // Every row before the watermark is cached. Rows at the watermark itself may sit in
            // the page after it (the sample data puts page boundaries inside groups of equal
            // timestamps): the next run's overlap re-reads them, as it does below.
            let before = try await job.postgres.query("""
                select id::text from usage_logs where "timestamp" >= now() - interval '93 days' + interval '10 minutes'
                  and "timestamp" < $1::timestamptz
                """, [.text(watermark)])
            let index = try await job.sortedSet("usage_logs:index")
            let missing = before.compactMap { try? $0[0].decode(String.self) }.filter { index[$0] == nil }
            #expect(!before.isEmpty && missing.isEmpty,
                    "the batch in flight was finished: \(missing.count) of \(before.count) rows before the watermark \(watermark) are not cached, first \(missing.prefix(3))")
            let newest = try await job.postgres.query("select max(\"timestamp\") > $1::timestamptz from usage_logs", [.text(watermark)])
            #expect(try newest[0][0].decode(Bool.self) == true, "stopped in the middle of the copy")

            #expect(try await job.run(["run", "--stage", "usage-logs"]).status == 0)
            #expect(try await job.run(["verify"]).status == 0)
        }
    }

    @Test func badConfigurationAndRejectedCredentialsExit64WithoutSecrets() async throws {
        try await withHarness { job in
            let level = try await job.run(["run"], environment: ["SYNC_LOG_LEVEL": "loud"])
            #expect(level.status == 64 && level.stderr.contains("SYNC_LOG_LEVEL"), "\(level.stderr)")
            let scheme = try await job.run(["run", "--valkey-url", "http://127.0.0.1:1"])
            #expect(scheme.status == 64 && scheme.stderr.contains("--valkey-url"), "\(scheme.stderr)")
            let secret = "Sup3r-Secret-Pw"
            let badPG = job.databaseURL.replacingOccurrences(of: try JobHarness.variable("SYNC_TEST_PG_PASSWORD"), with: secret)
            let pg = try await job.run(["run"], environment: ["DATABASE_URL": badPG, "SYNC_LOG_LEVEL": "trace"])
            #expect(pg.status == 64, "\(pg.stderr)")
            #expect(!(pg.stdout + pg.stderr).contains(secret))
            let user = try JobHarness.variable("SYNC_TEST_VALKEY_ACL_USER")
            let port = job.valkeyURL.split(separator: ":").last!
            let valkey = try await job.run(["run"], environment: ["VALKEY_URL": "valkey://\(user):\(secret)@127.0.0.1:\(port)", "SYNC_LOG_LEVEL": "trace"])
            #expect(valkey.status == 64, "\(valkey.stderr)")
            #expect(!(valkey.stdout + valkey.stderr).contains(secret))
        }
    }

    @Test func noSecretInAnyLogLineAtTraceLevel() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 500, reportRows: 50, apiKeys: 40)
            try await job.postgres.execute("insert into api_keys (id, name) values ('00000000-0000-0000-0000-0000000000bb', 'null key')")
            let user = try JobHarness.variable("SYNC_TEST_VALKEY_ACL_USER")
            let password = try JobHarness.variable("SYNC_TEST_VALKEY_ACL_PASSWORD")
            let port = job.valkeyURL.split(separator: ":").last!
            let result = try await job.run(["run"], environment: [
                "VALKEY_URL": "valkey://\(user):\(password)@127.0.0.1:\(port)", "SYNC_LOG_LEVEL": "trace",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            let output = result.stdout + result.stderr
            #expect(result.stderr.split(separator: "\n").count > 5, "trace logging says something")
            #expect(!output.contains(password))
            #expect(!output.contains(try JobHarness.variable("SYNC_TEST_PG_PASSWORD")))
            #expect(!output.contains("tbk_"), "an API key string leaked")
            for line in result.stderr.split(separator: "\n") {
                #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "not JSON: \(line)")
            }
        }
    }

    @Test func metricsFileIsPrometheusTextWrittenAtomically() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 800, reportRows: 80, apiKeys: 10)
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("sync-job-\(job.schema).prom").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try await job.run(["run", "--metrics-file", path]).status == 0)
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let read = try await job.postgres.query("select count(*) from usage_logs where \"timestamp\" >= now() - interval '93 days'")
            #expect(text.contains("sync_job_stage_rows{command=\"run\",stage=\"usage-logs\",kind=\"read\"} \(try read[0][0].decode(Int.self)!)"), "\(text)")
            #expect(text.contains("sync_job_last_run_success{command=\"run\"} 1"))
            #expect(text.contains("sync_job_failures_total{command=\"run\"} 0"))
            #expect(text.contains("sync_job_lag_seconds{command=\"run\",table=\"usage_logs\"} 0"))
            let success = text.split(separator: "\n").first { $0.hasPrefix("sync_job_last_success_timestamp_seconds{command=\"run\"} ") }
            #expect(success != nil)
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                #expect(Double(line.split(separator: " ").last ?? "") != nil, "bad sample line: \(line)")
            }
            try await job.postgres.execute("delete from application_parameters")
            #expect(try await job.run(["run", "--stage", "params", "--metrics-file", path]).status == 1)
            let failed = try String(contentsOfFile: path, encoding: .utf8)
            #expect(failed.contains("sync_job_failures_total{command=\"run\"} 1") && failed.contains("sync_job_last_run_success{command=\"run\"} 0"))
            #expect(failed.split(separator: "\n").first { $0.hasPrefix("sync_job_last_success_timestamp_seconds{command=\"run\"} ") } == success,
                    "a failed run keeps the last success time")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path)
                .filter { $0.hasPrefix("sync-job-\(job.schema).prom.tmp") }
            #expect(leftovers.isEmpty)
        }
    }
}
