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
}
