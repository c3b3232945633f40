import Foundation
import Postgres
import RESP
import Testing
import Valkey

/// The `params` and `api-keys` stages (SPEC §5) against the real servers.
@Suite(.timeLimit(.minutes(10))) struct ParamsAndAPIKeysTests {
    @Test func paramsAreReplacedAndDeletedParametersDisappear() async throws {
        try await withHarness { job in
            try await job.postgres.execute("""
                insert into application_parameters values ('log_level', 'info'), ('cache_pool_size', '300'),
                  ('gone_soon', 'x'), ('empty_value', null), ('ünïcode', 'Wartung — 02:00')
                """)
            #expect(try await job.run(["run", "--stage", "params"]).status == 0)
            #expect(try await job.hash("app:params") == [
                "log_level": "info", "cache_pool_size": "300", "gone_soon": "x", "empty_value": "", "ünïcode": "Wartung — 02:00",
            ])
            #expect(try await job.valkey.send("TTL", job.prefix + "app:params").int == -1, "no TTL")
            try await job.postgres.execute("delete from application_parameters where name = 'gone_soon'; update application_parameters set value = 'debug' where name = 'log_level'")
            #expect(try await job.run(["run", "--stage", "params"]).status == 0)
            #expect(try await job.hash("app:params") == [
                "log_level": "debug", "cache_pool_size": "300", "empty_value": "", "ünïcode": "Wartung — 02:00",
            ])
            #expect(try await job.keys().filter { $0.contains("sync-tmp") }.isEmpty)
        }
    }

    @Test func emptyParamsTableLeavesTheHashUnlessAllowed() async throws {
        try await withHarness { job in
            try await job.postgres.execute("insert into application_parameters values ('a', '1')")
            #expect(try await job.run(["run", "--stage", "params"]).status == 0)
            try await job.postgres.execute("delete from application_parameters")
            let refused = try await job.run(["run", "--stage", "params"])
            #expect(refused.status == 1)
            #expect((refused.stdout + refused.stderr).contains("--allow-empty-params"), "\(refused.stdout)\(refused.stderr)")
            #expect(try await job.hash("app:params") == ["a": "1"])
            let allowed = try await job.run(["run", "--stage", "params", "--allow-empty-params"])
            #expect(allowed.status == 0, "\(allowed.stderr)")
            #expect(try await job.valkey.send("EXISTS", job.prefix + "app:params").int == 0)
        }
    }

    @Test func readerNeverSeesAMixOfOldAndNewParameters() async throws {
        try await withHarness { job in
            let count = 1000
            let setA = Dictionary(uniqueKeysWithValues: (0..<count).map { ("p\($0)", "a\($0)") })
            let setB = Dictionary(uniqueKeysWithValues: (0..<count / 2).map { ("p\($0)", "b\($0)") } + [("only_b", "b")])
            func load(_ set: [String: String]) async throws {
                try await job.postgres.execute("delete from application_parameters")
                let names = Array(set.keys)
                for start in stride(from: 0, to: names.count, by: 500) {
                    let part = names[start..<min(start + 500, names.count)]
                    let values = part.map { "('\($0)', '\(set[$0]!)')" }.joined(separator: ",")
                    try await job.postgres.execute("insert into application_parameters values \(values)")
                }
            }
            try await load(setA)
            #expect(try await job.run(["run", "--stage", "params"]).status == 0)
            let reader = try await ValkeyConnection.connect(try ValkeyConfiguration(url: job.valkeyURL))
            let key = job.prefix + "app:params"
            let watching = Task {
                var views = 0
                var mixed = 0
                while !Task.isCancelled {
                    let reply = try await reader.send("HGETALL", key)
                    var view: [String: String] = [:]
                    for entry in reply.mapEntries ?? [] { view[entry.key.string ?? ""] = entry.value.string ?? "" }
                    if view != setA && view != setB { mixed += 1 }
                    views += 1
                }
                return (views, mixed)
            }
            for round in 0..<6 {
                try await load(round % 2 == 0 ? setB : setA)
                let result = try await job.run(["run", "--stage", "params"])
                #expect(result.status == 0, "\(result.stderr)")
            }
            watching.cancel()
            let (views, mixed) = try await watching.value
            await reader.close()
            #expect(views > 5, "the reader should have looked many times during the replacements")
            #expect(mixed == 0, "\(mixed) of \(views) views mixed old and new parameters")
        }
    }

    @Test func apiKeysAreWrittenRevokedDeletedAndRotated() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 0, reportRows: 0, apiKeys: 5000)
            let result = try await job.run(["run", "--stage", "api-keys"], environment: ["SYNC_LOG_LEVEL": "trace"])
            #expect(result.status == 0, "\(result.stderr)")
            let expected = try await job.postgres.query("""
                select api_key, id::text, coalesce(name, '') as name, revoked::text,
                       coalesce(to_char(last_used at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '') as last_used,
                       coalesce(burst_tokens::text, '') as burst_tokens
                from api_keys where api_key is not null
                """)
            #expect(expected.count == 5000)
            let stored = try await job.keys().filter { $0.hasPrefix(job.prefix + "api_key:") }
            #expect(stored.count == 5000)
            for row in expected.prefix(300) {
                let hash = try await job.hash("api_key:" + (try row["api_key"]!.decode(String.self)!))
                #expect(hash.count == 16)
                #expect(hash["id"] == (try row["id"]!.decode(String.self)))
                #expect(hash["name"] == (try row["name"]!.decode(String.self)))
                #expect(hash["revoked"] == (try row["revoked"]!.decode(String.self)! == "true" ? "true" : "false"))
                #expect(hash["last_used"] == (try row["last_used"]!.decode(String.self)))
                #expect(hash["burst_tokens"] == (try row["burst_tokens"]!.decode(String.self)))
            }
            // No API key string in any output, even at trace level.
            #expect(!result.stdout.contains("tbk_") && !result.stderr.contains("tbk_"))

            let picks = try await job.postgres.query("select id::text, api_key from api_keys where not revoked order by id limit 3")
            let (revokeID, deleteKey, rotateKey) = (try picks[0][0].decode(String.self)!, try picks[1][1].decode(String.self)!, try picks[2][1].decode(String.self)!)
            let revokeKey = try picks[0][1].decode(String.self)!
            try await job.postgres.execute("update api_keys set revoked = true where id = $1::uuid", [.text(revokeID)])
            try await job.postgres.execute("delete from api_keys where api_key = $1", [.text(deleteKey)])
            try await job.postgres.execute("update api_keys set api_key = 'tbk_rotated_0001' where api_key = $1", [.text(rotateKey)])
            try await job.postgres.execute("insert into api_keys (id, name) values ('00000000-0000-0000-0000-0000000000aa', 'no key yet')")
            let second = try await job.run(["run", "--stage", "api-keys"])
            #expect(second.status == 0, "\(second.stderr)")
            #expect(try await job.hash("api_key:" + revokeKey)["revoked"] == "true")
            #expect(try await job.hash("api_key:" + deleteKey).isEmpty, "a deleted key is gone")
            #expect(try await job.hash("api_key:" + rotateKey).isEmpty, "the old string of a rotated key is gone")
            #expect(try await job.hash("api_key:tbk_rotated_0001")["id"] != nil)
            #expect(second.stderr.contains("00000000-0000-0000-0000-0000000000aa"), "the NULL api_key row is reported by id")
            #expect(!second.stdout.contains("tbk_") && !second.stderr.contains("tbk_"))
            #expect(try await job.keys().filter { $0.hasPrefix(job.prefix + "api_key:") }.count == 4999)

            // An empty table (a wrong database, a failed migration) never wipes the cached keys.
            try await job.postgres.execute("delete from api_keys")
            let empty = try await job.run(["run", "--stage", "api-keys"])
            #expect(empty.status == 1)
            #expect(empty.stdout.contains("api_keys is empty"), "\(empty.stdout)")
            #expect(try await job.keys().filter { $0.hasPrefix(job.prefix + "api_key:") }.count == 4999)
        }
    }

    /// Two rows that render the same key (a template joining two columns), on the first and
    /// the last page: the first row by id is written, the other reported by id, and nothing
    /// written is deleted afterwards.
    @Test func rowsRenderingTheSameKeyAcrossPagesKeepTheFirst() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 0, reportRows: 0, apiKeys: 300)
            try await job.postgres.execute("""
                insert into api_keys (id, api_key, name) values
                    ('00000000-0000-0000-0000-000000000001', 'tbk_dupA', 'B'),
                    ('ffffffff-ffff-ffff-ffff-fffffffffff1', 'tbk_dup', 'AB')
                """)
            let arguments = ["run", "--stage", "api-keys", "--batch-size", "40", "--key-template", "api_key=k:${api_key}${name}"]
            let result = try await job.run(arguments)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try await job.hash("k:tbk_dupAB")["id"] == "00000000-0000-0000-0000-000000000001")
            #expect(result.stderr.contains("ffffffff-ffff-ffff-ffff-fffffffffff1") && result.stderr.contains("renders the same key"),
                    "\(result.stderr)")
            let written = try await job.postgres.query("select count(*) from api_keys where api_key is not null and name is not null")
            let expected = try #require(try written.first?[0].decode(Int.self)) - 1
            #expect(try await job.valkey.send("SCARD", job.prefix + "sync:api_keys").int == Int64(expected))
            #expect(try await job.keys().filter { $0.hasPrefix(job.prefix + "k:") }.count == expected)
            let again = try await job.run(arguments)
            #expect(again.status == 0 && again.stdout.contains("removed 0,"), "\(again.stdout)")
            #expect(try await job.hash("k:tbk_dupAB")["id"] == "00000000-0000-0000-0000-000000000001")
        }
    }

    /// A harness whose 300 API keys one `api-keys` run (pages of 100) has cached in a private
    /// valkey-server on `privatePort`; `body` gets a connection to that server.
    private func withCachedAPIKeys(
        privatePort: Int,
        _ body: (JobHarness, ValkeyOutageTests.PrivateValkey, ValkeyConnection) async throws -> Void
    ) async throws {
        try await withHarness { job in
            let valkey = try ValkeyOutageTests.PrivateValkey(port: privatePort)
            defer { valkey.stop() }
            try await valkey.start()
            try await job.generate(usageRows: 0, reportRows: 0, apiKeys: 300)
            let first = try await job.run(["run", "--stage", "api-keys", "--batch-size", "100"], environment: ["VALKEY_URL": valkey.url])
            #expect(first.status == 0, "\(first.stderr)")
            let reader = try await ValkeyConnection.connect(try ValkeyConfiguration(url: valkey.url))
            do {
                try await body(job, valkey, reader)
            } catch {
                await reader.close()
                throw error
            }
            await reader.close()
        }
    }

    /// A run of `api-keys` held between its pages: Valkey refuses writes for a while
    /// (`CLIENT PAUSE WRITE`), so the run has read its first pages and waits on its first write.
    /// `body` runs in that moment; the writes resume when it returns. Returns the held run's
    /// process (ended) and a connection to the private server.
    private func holdingAPIKeysRunBetweenPages(
        _ job: JobHarness, valkey: ValkeyOutageTests.PrivateValkey,
        _ body: (Process) async throws -> Void
    ) async throws -> Process {
        let application = "sync-job-held-\(job.schema)"
        let control = try await ValkeyConnection.connect(try ValkeyConfiguration(url: valkey.url))
        _ = try await control.send("CLIENT", "PAUSE", "60000", "WRITE")
        let process = try job.start(["run", "--stage", "api-keys", "--batch-size", "100"],
                                    environment: ["VALKEY_URL": valkey.url, "PGAPPNAME": application])
        // Observable: the run's session idles after an api_keys select.
        var between = false
        for _ in 0..<1500 where process.isRunning {
            let sessions = try await job.postgres.query("""
                select 1 from pg_stat_activity
                where application_name = $1 and state like 'idle%' and query like '%"api_keys"%'
                """, [.text(application)])
            if !sessions.isEmpty { between = true; break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(between, "the run never stopped between two pages")
        try await body(process)
        _ = try await control.send("CLIENT", "UNPAUSE")
        await control.close()
        await JobHarness.waitForExit(process)
        return process
    }

    /// The pages of one run are one snapshot: a row that moves from a later page to an earlier
    /// one while the run is between them (deleted, inserted again under a lower id) keeps its
    /// key. Read page by page without a snapshot, the run would see it in neither and delete it.
    @Test func apiKeyPagesAreOneSnapshot() async throws {
        try await withCachedAPIKeys(privatePort: 56_955) { job, valkey, reader in
            let environment = ["VALKEY_URL": valkey.url]
            let last = try await job.postgres.query("select id::text, api_key from api_keys where api_key is not null order by id desc limit 1")
            let (lastID, lastKey) = (try #require(last.first?.text(0)), try #require(last.first?.text(1)))
            #expect(try await reader.send("HGET", job.prefix + "api_key:" + lastKey, "id").string == lastID)

            let columns = "user_id, name, tier, query_limit, current_usage, rate_limit_qps, burst_limit, burst_tokens, api_key, minimum_wait_seconds, revoked, lrs_enabled, last_used, created_at, last_success"
            let held = try await holdingAPIKeysRunBetweenPages(job, valkey: valkey) { _ in
                try await job.postgres.execute("""
                    with moved as (delete from api_keys where id = $1::uuid returning *)
                    insert into api_keys (id, \(columns)) select '00000000-0000-0000-0000-000000000001', \(columns) from moved
                    """, [.text(lastID)])
            }
            #expect(held.terminationStatus == 0)
            #expect(try await reader.send("HGET", job.prefix + "api_key:" + lastKey, "id").string == lastID,
                    "the key of a row that moved between pages was removed")
            let next = try await job.run(["run", "--stage", "api-keys", "--batch-size", "100"], environment: environment)
            #expect(next.status == 0, "\(next.stderr)")
            #expect(try await reader.send("HGET", job.prefix + "api_key:" + lastKey, "id").string == "00000000-0000-0000-0000-000000000001")
        }
    }

    /// SIGTERM between pages: the run ends after the page in flight and removes nothing, since
    /// the keys of the rows it did not read would look deleted.
    @Test func aStoppedAPIKeysRunRemovesNothing() async throws {
        try await withCachedAPIKeys(privatePort: 56_956) { job, valkey, reader in
            let registered = try #require(try await reader.send("SCARD", job.prefix + "sync:api_keys").int)
            #expect(registered > 250)

            let held = try await holdingAPIKeysRunBetweenPages(job, valkey: valkey) { process in
                kill(process.processIdentifier, SIGTERM)
            }
            #expect(held.terminationReason == .uncaughtSignal && held.terminationStatus == SIGTERM)
            #expect(try await reader.send("SCARD", job.prefix + "sync:api_keys").int == registered)
            var cursor = "0", missing = 0
            repeat {
                let reply = try await reader.send("SSCAN", job.prefix + "sync:api_keys", cursor, "COUNT", "1000")
                cursor = reply.array?[0].string ?? "0"
                for key in reply.array?[1].array?.compactMap(\.string) ?? [] where try await reader.send("EXISTS", key).int != 1 {
                    missing += 1
                }
            } while cursor != "0"
            #expect(missing == 0, "\(missing) keys of unread rows were removed")
            let record = try #require(try await reader.send("GET", job.prefix + "sync:last_run").string)
            #expect(record.contains("after the page in flight"), "\(record)")
        }
    }
}
