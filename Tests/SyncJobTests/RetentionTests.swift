import Foundation
import Postgres
import Testing

/// The `retention` stage (SPEC §6) against the real servers.
@Suite(.timeLimit(.minutes(10))) struct RetentionTests {
    @Test func boundaryAcrossEveryIndexKind() async throws {
        try await withHarness { job in
            // Rows 92.99 and 93.01 days old, with an API key and an asset, in both log tables.
            try await job.postgres.execute("""
                insert into usage_logs (id, api_key_id, asset, "timestamp") values
                  ('00000000-0000-0000-0000-000000000001', '10000000-0000-0000-0000-000000000001', 'BTC', now() - interval '92.99 days'),
                  ('00000000-0000-0000-0000-000000000002', '10000000-0000-0000-0000-000000000001', 'BTC', now() - interval '93.01 days'),
                  ('00000000-0000-0000-0000-000000000003', '10000000-0000-0000-0000-000000000002', 'ETH', now() - interval '93.5 days'),
                  ('00000000-0000-0000-0000-000000000004', '10000000-0000-0000-0000-000000000002', 'ETH', now() - interval '95 days'),
                  ('00000000-0000-0000-0000-000000000005', null, null, now() - interval '1 day');
                insert into report_usage_logs (id, api_key_id, "timestamp") values
                  ('00000000-0000-0000-0000-000000000011', '10000000-0000-0000-0000-000000000001', now() - interval '92.99 days'),
                  ('00000000-0000-0000-0000-000000000012', '10000000-0000-0000-0000-000000000001', now() - interval '93.01 days');
                """)
            // Copied with a longer retention, so that the old rows exist in Valkey.
            let copy = try await job.run(["run", "--stage", "usage-logs", "--stage", "report-logs", "--retention-days", "100"])
            #expect(copy.status == 0, "\(copy.stderr)")
            #expect(try await job.sortedSet("usage_logs:index").count == 5)
            // An entry that already expired (hash gone, members left) and a member without a hash.
            _ = try await job.valkey.send("DEL", job.prefix + "usage_log:00000000-0000-0000-0000-000000000003")
            _ = try await job.valkey.send("ZADD", job.prefix + "usage_logs:index:asset:ETH", "1000", "ffffffff-0000-0000-0000-000000000000")

            let dry = try await job.run(["run", "--stage", "retention", "--dry-run"])
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(try await job.sortedSet("usage_logs:index").count == 5, "a dry run removes nothing")
            #expect(dry.stdout.contains("would remove"), "\(dry.stdout)")

            let result = try await job.run(["run", "--stage", "retention"])
            #expect(result.status == 0, "\(result.stderr)")
            let kept = "00000000-0000-0000-0000-000000000001"
            #expect(Set(try await job.sortedSet("usage_logs:index").keys) == [kept, "00000000-0000-0000-0000-000000000005"])
            #expect(Set(try await job.sortedSet("usage_logs:index:api_key:10000000-0000-0000-0000-000000000001").keys) == [kept])
            #expect(Set(try await job.sortedSet("usage_logs:index:asset:BTC").keys) == [kept])
            #expect(try await job.valkey.send("EXISTS", job.prefix + "usage_logs:index:asset:ETH").int == 0)
            #expect(try await job.valkey.send("EXISTS", job.prefix + "usage_logs:index:api_key:10000000-0000-0000-0000-000000000002").int == 0)
            #expect(!(try await job.hash("usage_log:" + kept)).isEmpty)
            for gone in ["00000000-0000-0000-0000-000000000002", "00000000-0000-0000-0000-000000000003", "00000000-0000-0000-0000-000000000004"] {
                #expect(try await job.hash("usage_log:" + gone).isEmpty)
            }
            #expect(Set(try await job.sortedSet("report_usage_logs:index").keys) == ["00000000-0000-0000-0000-000000000011"])
            #expect(Set(try await job.sortedSet("report_usage_logs:index:api_key:10000000-0000-0000-0000-000000000001").keys) == ["00000000-0000-0000-0000-000000000011"])
            #expect(try await job.hash("report_usage_log:00000000-0000-0000-0000-000000000012").isEmpty)
            // Emptied index keys leave the registry too.
            let registry = try await job.valkey.send("SMEMBERS", job.prefix + "sync:indexes:usage_logs").array?.compactMap(\.string) ?? []
            #expect(!registry.contains(job.prefix + "usage_logs:index:asset:ETH"))
            #expect(registry.contains(job.prefix + "usage_logs:index:asset:BTC"))
        }
    }
}
