import FaultInjection
import Foundation
import Postgres
import RESP
import Synchronization
import Testing
import Timestamps
import Valkey

/// SPEC §10: whatever fails, the run ends on its own in bounded time with the exit code of
/// §8, nothing at or below the watermark is missing from Valkey, and the next run, the fault
/// gone, leaves the same cache as an undisturbed run. Faults are made the way they happen: a
/// proxy that stalls or resets connections, a server out of memory, a deadline.
///
/// Bounds on the time to exit are generous (the timeout plus 40 s, for a loaded 2-core CI
/// machine starting a debug build): they catch a hang, not a slow machine. Nothing here
/// measures speed. One test at a time, so that the faults' own load stays bounded.
@Suite(.serialized, .timeLimit(.minutes(10))) struct FaultTests {
    /// Rows spread over 100 days; a retention of 400 days keeps every one of them inside the
    /// window, so that runs seconds apart see exactly the same rows.
    static let retention = ["--retention-days", "400"]
    static let slack = Duration.seconds(40)

    // MARK: PostgreSQL

    @Test func postgresStallingAtConnectExits75WithinTheTimeout() async throws {
        try await withHarness { job in
            let proxy = try await FaultProxy.start(to: "127.0.0.1", port: try Self.postgresPort(), mode: .stall)
            let (result, elapsed) = try await job.timedRun(["run", "--stage", "params", "--postgres-timeout", "2s"],
                                                           environment: ["DATABASE_URL": try Self.databaseURL(job, through: proxy)])
            await proxy.stop()
            #expect(result.status == 75, "\(result.stderr)")
            #expect(elapsed < .seconds(2) + Self.slack, "took \(elapsed)")
            #expect(result.stderr.contains("127.0.0.1:\(proxy.port)") && result.stderr.contains("timed out"), "\(result.stderr)")
            // Recorded although no stage ran: the summary of `run` says why.
            let summary = try #require(try await job.string("sync:last_run:run"))
            #expect(summary.contains("\"exit_code\":75") && summary.contains("PostgreSQL"), "\(summary)")
        }
    }

    @Test func postgresStallingMidCopyExits75AndTheNextRunRestoresTheCache() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 8_000, reportRows: 0, apiKeys: 50)
            let proxy = try await FaultProxy.start(to: "127.0.0.1", port: try Self.postgresPort())
            let environment = ["DATABASE_URL": try Self.databaseURL(job, through: proxy)]
            let (result, elapsed) = try await Self.copy(job, ["--postgres-timeout", "5s"], environment: environment) { proxy.set(.stall) }
            await proxy.stop()
            #expect(result.status == 75, "\(result.stdout)\(result.stderr)")
            #expect(elapsed < .seconds(5) + Self.slack, "took \(elapsed) after the stall")
            #expect(result.stderr.contains("PostgreSQL") && result.stderr.contains("timed out"), "\(result.stderr)")
            try await Self.expectNothingMissingBelowTheWatermark(job)
            try await Self.expectNextRunMatchesAnUndisturbedOne(job)
        }
    }

    // MARK: Valkey

    @Test func valkeyStallingAtTheTLSHandshakeExits75AndIsRecorded() async throws {
        try await withHarness { job in
            let tls = try ValkeyConfiguration(url: try JobHarness.variable("SYNC_TEST_REDIS_TLS_URL"))
            let proxy = try await FaultProxy.start(to: tls.host, port: tls.port, mode: .stall)
            let metrics = FileManager.default.temporaryDirectory.appendingPathComponent("sync-job-\(job.schema)-tls.prom").path
            defer { try? FileManager.default.removeItem(atPath: metrics) }
            let (result, elapsed) = try await job.timedRun(
                ["run", "--stage", "params", "--valkey-timeout", "1s", "--metrics-file", metrics],
                environment: ["VALKEY_URL": "rediss://127.0.0.1:\(proxy.port)",
                              "SYNC_VALKEY_CA_FILE": try JobHarness.variable("SYNC_TEST_TLS_CA_FILE")])
            await proxy.stop()
            #expect(result.status == 75, "\(result.stderr)")
            #expect(elapsed < .seconds(1) + Self.slack, "took \(elapsed)")
            #expect(result.stderr.contains("127.0.0.1:\(proxy.port)") && result.stderr.contains("TLS handshake"), "\(result.stderr)")
            let text = try String(contentsOfFile: metrics, encoding: .utf8)
            #expect(text.contains("sync_job_last_run_exit_code{command=\"run\"} 75"), "\(text)")
        }
    }

    @Test(arguments: [FaultProxy.Mode.stall, .reset])
    func valkeyFailingMidCopyExits75AndTheNextRunRestoresTheCache(fault: FaultProxy.Mode) async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 8_000, reportRows: 0, apiKeys: 50)
            let direct = try ValkeyConfiguration(url: job.valkeyURL)
            let proxy = try await FaultProxy.start(to: direct.host, port: direct.port)
            let (result, elapsed) = try await Self.copy(job, ["--valkey-timeout", "2s"],
                                                        environment: ["VALKEY_URL": "valkey://127.0.0.1:\(proxy.port)"]) { proxy.set(fault) }
            await proxy.stop()
            #expect(result.status == 75, "\(fault): \(result.stdout)\(result.stderr)")
            #expect(elapsed < .seconds(2) + Self.slack, "\(fault): took \(elapsed)")
            #expect(result.stderr.contains("127.0.0.1:\(proxy.port)"), "the message names the server: \(result.stderr)")
            try await Self.expectNothingMissingBelowTheWatermark(job)
            try await Self.expectNextRunMatchesAnUndisturbedOne(job)
        }
    }

    @Test func valkeyOutOfMemoryEndsTheStageWithTheServersWords() async throws {
        try await withHarness { job in
            let valkey = try ValkeyOutageTests.PrivateValkey(port: 56_951, extraArguments: ["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"])
            defer { valkey.stop() }
            try await valkey.start()
            try await job.generate(usageRows: 8_000, reportRows: 0, apiKeys: 50)
            let result = try await job.run(["run", "--stage", "usage-logs", "--batch-size", "500"] + Self.retention,
                                           environment: ["VALKEY_URL": valkey.url])
            #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
            #expect((result.stdout + result.stderr).contains("OOM"), "the server's words: \(result.stdout)\(result.stderr)")
            #expect((result.stdout + result.stderr).contains("127.0.0.1:56951"))
            // What the watermark passed is in the cache (rows tied with it may be in the next page).
            let reader = try await ValkeyConnection.connect(try ValkeyConfiguration(url: valkey.url))
            if let raw = try await reader.send("GET", job.prefix + "sync:watermark:usage_logs").string {
                let rows = try await job.postgres.query("select id::text from usage_logs where \"timestamp\" < $1::timestamptz", [.text(raw)])
                for row in rows.prefix(2000) {
                    let id = try #require(try row[0].decode(String.self))
                    #expect(try await reader.send("ZSCORE", job.prefix + "usage_logs:index", id).isNull == false, "\(id) below the watermark is missing")
                }
            }
            await reader.close()
        }
    }

    @Test(arguments: [
        ("endless attributes", HostileRESPServer.Behaviour.forever(Array("|1\r\n+a\r\n+b\r\n".utf8))),
        ("sets nested without end", .forever(Array("~1\r\n".utf8))),
        ("maps nested without end", .forever(Array("%1\r\n+k\r\n".utf8))),
        ("a reply that stops in the middle", .once(Array("*3\r\n+a\r\n".utf8))),
        ("bytes outside the protocol", .once(Array("hello there\r\n".utf8))),
    ])
    func hostileRepliesEndTheRunWithAnErrorOfItsOwn(name: String, behaviour: HostileRESPServer.Behaviour) async throws {
        try await withHarness { job in
            let server = try await HostileRESPServer.start(behaviour)
            let (result, elapsed) = try await job.timedRun(["run", "--stage", "params", "--valkey-timeout", "2s"],
                                                           environment: ["VALKEY_URL": "valkey://127.0.0.1:\(server.port)"])
            await server.stop()
            #expect(result.status == 75, "\(name): \(result.stderr)")
            #expect(!result.terminatedBySignal, "\(name): crashed")
            #expect(elapsed < .seconds(2) + Self.slack, "\(name): took \(elapsed)")
            #expect(result.stderr.contains("127.0.0.1:\(server.port)"), "\(name): \(result.stderr)")
        }
    }

    /// Acknowledged means replicated: with its replica stopped (SIGSTOP), the primary cannot
    /// confirm a page, so the run ends with exit 75 and the watermark before that page.
    @Test func aReplicaThatStopsConfirmingEndsTheRunBeforeTheWatermarkMoves() async throws {
        try await withHarness { job in
            let primary = try ValkeyOutageTests.PrivateValkey(port: 56_952)
            defer { primary.stop() }
            try await primary.start()
            let replica = try ValkeyOutageTests.PrivateValkey(port: 56_953, extraArguments: ["--replicaof", "127.0.0.1", "56952"])
            defer { replica.stop() }
            try await replica.start()
            let watcher = try await ValkeyConnection.connect(try ValkeyConfiguration(url: primary.url))
            // Online, not only connected: a replica waits for the primary's delayed diskless
            // sync (repl-diskless-sync-delay, 5 s by default), and until then confirms nothing.
            var linked = false
            for _ in 0..<400 where !linked {
                linked = try await watcher.send("INFO", "replication").string?.contains("state=online") == true
                if !linked { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(linked, "the replica never came online")
            try await job.generate(usageRows: 8_000, reportRows: 0, apiKeys: 50)
            let run = Task { try await job.run(["run", "--stage", "usage-logs", "--batch-size", "20", "--valkey-timeout", "2s"] + Self.retention,
                                               environment: ["VALKEY_URL": primary.url]) }
            var started = false
            for _ in 0..<2000 where !started {
                started = !(try await watcher.send("GET", job.prefix + "sync:watermark:usage_logs").isNull)
                if !started { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(started, "the copy never acknowledged a page")
            let pid = try #require(replica.process?.processIdentifier)
            kill(pid, SIGSTOP)
            let stopped = ContinuousClock.now
            let before = try #require(try await watcher.send("GET", job.prefix + "sync:watermark:usage_logs").string)
            let result = try await run.value
            let elapsed = ContinuousClock.now - stopped
            kill(pid, SIGCONT)
            #expect(result.status == 75, "\(result.stdout)\(result.stderr)")
            #expect(elapsed < .seconds(2) + Self.slack, "took \(elapsed)")
            #expect(result.stderr.contains("replica"), "\(result.stderr)")
            // Without WAIT the copy would run to its end: the watermark may pass only the
            // pages already confirmed when the replica stopped (one in flight, one being read).
            let after = try #require(try await watcher.send("GET", job.prefix + "sync:watermark:usage_logs").string)
            let moved = try await job.postgres.query(
                "select count(*) from usage_logs where \"timestamp\" > $1::timestamptz and \"timestamp\" <= $2::timestamptz",
                [.text(before), .text(after)])
            #expect(try moved[0][0].decode(Int.self) ?? 0 <= 300, "the watermark moved from \(before) to \(after) with the replica stopped")
            await watcher.close()
            let resumed = try await job.run(["run", "--stage", "usage-logs"] + Self.retention, environment: ["VALKEY_URL": primary.url])
            #expect(resumed.status == 0, "\(resumed.stderr)")
        }
    }

    /// A Valkey restarted empty mid-copy: the run ends (75) without reconnecting, and the next
    /// run, finding no watermark, copies the whole window again.
    @Test func valkeyRestartedEmptyMidCopyIsRefilledByTheNextRun() async throws {
        try await withHarness { job in
            let valkey = try ValkeyOutageTests.PrivateValkey(port: 56_954, extraArguments: ["--appendonly", "no"])
            defer { valkey.stop() }
            try await valkey.start()
            try await job.generate(usageRows: 8_000, reportRows: 0, apiKeys: 50)
            let environment = ["VALKEY_URL": valkey.url]
            let run = Task { try await job.run(["run", "--stage", "usage-logs", "--batch-size", "20"] + Self.retention, environment: environment) }
            let watcher = try await ValkeyConnection.connect(try ValkeyConfiguration(url: valkey.url))
            var started = false
            for _ in 0..<2000 where !started {
                started = !(try await watcher.send("GET", job.prefix + "sync:watermark:usage_logs").isNull)
                if !started { try await Task.sleep(for: .milliseconds(10)) }
            }
            await watcher.close()
            #expect(started, "the copy never acknowledged a page")
            valkey.kill9()
            try await valkey.start()
            let failed = try await run.value
            #expect(failed.status == 75, "\(failed.stdout)\(failed.stderr)")
            let resumed = try await job.run(["run", "--stage", "usage-logs"] + Self.retention, environment: environment)
            #expect(resumed.status == 0, "\(resumed.stderr)")
            let reader = try await ValkeyConnection.connect(try ValkeyConfiguration(url: valkey.url))
            let indexed = try await reader.send("ZCARD", job.prefix + "usage_logs:index").int
            await reader.close()
            let rows = try await job.postgres.query("select count(*) from usage_logs where \"timestamp\" is not null")
            #expect(indexed == Int64(try rows[0][0].decode(Int.self) ?? -1), "the refilled index holds \(indexed ?? -1) ids")
        }
    }

    // MARK: Deadline

    @Test func maxRuntimeStopsAfterThePageInFlightAndExits75() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 20_000, reportRows: 0, apiKeys: 50)
            let (result, elapsed) = try await job.timedRun(["run", "--stage", "usage-logs", "--batch-size", "20", "--max-runtime", "1s"] + Self.retention)
            #expect(result.status == 75, "\(result.stdout)\(result.stderr)")
            #expect(elapsed < .seconds(1) + Self.slack, "took \(elapsed)")
            let summary = try #require(try await job.string("sync:last_run:run"))
            #expect(summary.contains("\"stopped_by\":\"max-runtime\""), "\(summary)")
            // On a machine slow enough that the deadline passed before the copy began, no
            // stage ran at all (also a safe point); otherwise the copy stopped after a page.
            if result.stdout.contains("usage-logs:") {
                #expect(result.stdout.contains("stopped by max-runtime"), "\(result.stdout)")
                try await Self.expectNothingMissingBelowTheWatermark(job)
            }
            try await Self.expectNextRunMatchesAnUndisturbedOne(job)
        }
    }

    // MARK: Commit guard

    /// A transaction inserts a row stamped `now()` and commits long after the overlap, while
    /// other sessions keep inserting newer rows and the job runs again and again: the
    /// watermark never passes the open transaction, so the late row is copied after its commit.
    @Test func commitGuardHoldsTheWatermarkBehindAnOpenTransaction() async throws {
        try await withHarness { job in
            let slow = try await PostgresConnection.connect(job.databaseURL)
            defer { slow.close() }
            let late = "00000000-0000-4000-8000-00000000aaaa"
            try await slow.execute("begin; insert into usage_logs (id, asset, \"timestamp\") values ('\(late)', 'LATE', now())")
            let started = try #require(try await slow.query("select now()")[0][0].decode(Timestamp.self))
            let inserter = Task {
                let writer = try await PostgresConnection.connect(job.databaseURL)
                defer { writer.close() }
                for _ in 0..<40 {
                    try await writer.execute("insert into usage_logs (id, asset, \"timestamp\") values (gen_random_uuid(), 'NEW', clock_timestamp())")
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            for _ in 0..<4 {
                let result = try await job.run(["run", "--stage", "usage-logs", "--overlap", "0s"])
                #expect(result.status == 0, "\(result.stderr)")
                if let raw = try await job.string("sync:watermark:usage_logs") {
                    let watermark = try #require(Timestamp(rfc3339: raw))
                    #expect(watermark < started, "the watermark \(raw) passed the open transaction started at \(started.rfc3339)")
                }
                #expect(result.stdout.contains("commit guard held back"), "\(result.stdout)")
            }
            try await inserter.value
            try await slow.execute("commit")
            // Other tests' sessions may hold transactions open too: run until the cache is
            // complete (the observable event), at most a minute.
            let rows = Int64(try await job.postgres.query("select count(*) from usage_logs")[0][0].decode(Int.self) ?? -1)
            var complete = false
            for _ in 0..<120 {
                let after = try await job.run(["run", "--stage", "usage-logs", "--overlap", "0s"])
                #expect(after.status == 0, "\(after.stderr)")
                complete = try await job.client.send("ZCARD", job.prefix + "usage_logs:index").int == rows
                if complete { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(try await job.hash("usage_log:\(late)")["asset"] == "LATE", "the late row was never copied")
            #expect(complete, "the index never held all \(rows) rows")
        }
    }

    // MARK: Recording

    @Test func endingsBeforeTheStagesAreRecordedPerCommand() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 200, reportRows: 20, apiKeys: 5)
            let metrics = FileManager.default.temporaryDirectory.appendingPathComponent("sync-job-\(job.schema)-endings.prom").path
            defer { try? FileManager.default.removeItem(atPath: metrics) }
            let nightly = try await job.run(["nightly", "--metrics-file", metrics, "--docs", Self.sampleDocs] + Self.retention)
            #expect(nightly.status == 0, "\(nightly.stderr)")
            // A minute `run` that cannot reach PostgreSQL: recorded, and the nightly's record stays.
            let failed = try await job.run(["run", "--metrics-file", metrics, "--postgres-timeout", "2s"],
                                           environment: ["DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"])
            #expect(failed.status == 75)
            let text = try String(contentsOfFile: metrics, encoding: .utf8)
            #expect(text.contains("sync_job_last_run_exit_code{command=\"run\"} 75"), "\(text)")
            #expect(text.contains("sync_job_last_run_success{command=\"nightly\"} 1"), "\(text)")
            #expect(text.contains("sync_job_stage_success{command=\"nightly\",stage=\"retention\"} 1"), "\(text)")
            #expect(try await job.string("sync:last_run:nightly")?.contains("\"outcome\":\"success\"") == true)
            let latest = try #require(try await job.string("sync:last_run"))
            #expect(latest.contains("\"command\":\"run\"") && latest.contains("\"exit_code\":75"), "\(latest)")
        }
    }

    // MARK: Configuration

    @Test(arguments: [
        (["--key-template", "usage_log=plain"], "usage_log"),
        (["--valkey-timeout", "0s"], "--valkey-timeout"),
        (["--postgres-timeout", "1e30"], "--postgres-timeout"),
        (["--max-runtime", "soon"], "--max-runtime"),
        (["--wait-replicas", "99"], "--wait-replicas"),
        (["--overlap", "99999999999999999999h"], "--overlap"),
        (["--key-template", "watermark=sync:wm"], "watermark"),
    ])
    func badSettingsExit64NamingTheSetting(arguments: [String], setting: String) async throws {
        try await withHarness { job in
            let result = try await job.run(["run"] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(setting), "\(arguments): \(result.stderr)")
            #expect(try await job.keys().isEmpty, "nothing written")
        }
    }

    @Test func badTemplateFromTheEnvironmentExits64() async throws {
        try await withHarness { job in
            let result = try await job.run(["run"], environment: ["SYNC_KEY_TEMPLATES": "usage_log=plain"])
            #expect(result.status == 64)
            #expect(result.stderr.contains("SYNC_KEY_TEMPLATES") && result.stderr.contains("${id}"), "\(result.stderr)")
        }
    }

    // MARK: Helpers

    static var sampleDocs: String { JobHarness.repositoryRoot.appendingPathComponent("sample-docs").path }

    static func postgresPort() throws -> Int {
        guard let port = Int(try JobHarness.variable("SYNC_TEST_PG_PORT")) else { throw JobHarness.MissingEnvironment(variable: "SYNC_TEST_PG_PORT") }
        return port
    }

    /// The harness's database URL with the port of `proxy` in place of the server's.
    static func databaseURL(_ job: JobHarness, through proxy: FaultProxy) throws -> String {
        job.databaseURL.replacingOccurrences(of: "127.0.0.1:\(try postgresPort())/", with: "127.0.0.1:\(proxy.port)/")
    }

    /// Starts a copy of small pages, makes `fault` happen once its first page is acknowledged,
    /// and returns how the run ended and how long after the fault.
    static func copy(_ job: JobHarness, _ arguments: [String], environment: [String: String],
                     fault: () -> Void) async throws -> (JobHarness.ProcessResult, Duration) {
        final class Flag: Sendable { let value = Atomic<Bool>(false) }
        let ended = Flag()
        let run = Task {
            defer { ended.value.store(true, ordering: .releasing) }
            return try await job.run(["run", "--stage", "usage-logs", "--batch-size", "20"] + arguments + retention, environment: environment)
        }
        let acknowledged = try await job.waitForKey("sync:watermark:usage_logs") { ended.value.load(ordering: .acquiring) }
        guard acknowledged else {
            let result = try await run.value
            Issue.record("the copy ended (exit \(result.status)) or stalled before it acknowledged a page: \(result.stderr)")
            return (result, .zero)
        }
        fault()
        let faulted = ContinuousClock.now
        let result = try await run.value
        return (result, ContinuousClock.now - faulted)
    }

    /// Every row below the watermark is indexed and has its hash. Rows at the watermark itself
    /// may sit in the page after it (the sample data puts page boundaries inside groups of
    /// equal timestamps); the next run's overlap re-reads them.
    static func expectNothingMissingBelowTheWatermark(_ job: JobHarness, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        guard let raw = try await job.string("sync:watermark:usage_logs") else {
            Issue.record("no watermark", sourceLocation: sourceLocation)
            return
        }
        let index = try await job.sortedSet("usage_logs:index")
        let rows = try await job.postgres.query("select id::text from usage_logs where \"timestamp\" < $1::timestamptz", [.text(raw)])
        var missing: [String] = []
        for row in rows {
            let id = try row[0].decode(String.self) ?? ""
            if index[id] == nil { missing.append(id) }
        }
        #expect(missing.isEmpty, "\(missing.count) of \(rows.count) rows below the watermark \(raw) are not indexed, e.g. \(missing.prefix(3))",
                sourceLocation: sourceLocation)
        if let sample = rows.last.flatMap({ try? $0[0].decode(String.self) }) {
            #expect(try await job.hash("usage_log:\(sample)")["id"] == sample, "the hash of the last row below the watermark", sourceLocation: sourceLocation)
        }
    }

    /// The next run, the fault gone, leaves the same keys, values, scores and expiries as an
    /// undisturbed run of the same source under another prefix.
    static func expectNextRunMatchesAnUndisturbedOne(_ job: JobHarness, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var resumed = try await job.run(["run", "--stage", "usage-logs"] + retention)
        // The faulted run's PostgreSQL session may take a moment to end and free the lock.
        for _ in 0..<100 where resumed.status == 75 && resumed.stderr.contains("holds the lock") {
            try await Task.sleep(for: .milliseconds(100))
            resumed = try await job.run(["run", "--stage", "usage-logs"] + retention)
        }
        #expect(resumed.status == 0, "\(resumed.stderr)", sourceLocation: sourceLocation)
        let reference = try await job.sibling()
        let undisturbed = try await reference.run(["run", "--stage", "usage-logs"] + retention)
        #expect(undisturbed.status == 0, "\(undisturbed.stderr)", sourceLocation: sourceLocation)
        func normalized(_ snapshot: [String: String], prefix: String) -> [String: String] {
            snapshot.mapValues { $0.replacingOccurrences(of: prefix, with: "<prefix>") }
        }
        let after = normalized(try await job.snapshot(), prefix: job.prefix)
        let expected = normalized(try await reference.snapshot(), prefix: reference.prefix)
        #expect(after.count == expected.count, "\(after.count) keys against \(expected.count)", sourceLocation: sourceLocation)
        let differing = expected.keys.filter { after[$0] != expected[$0] }.sorted()
        #expect(differing.isEmpty, "\(differing.count) keys differ from an undisturbed run, e.g. \(differing.prefix(3))", sourceLocation: sourceLocation)
        await reference.tearDown()
    }
}
