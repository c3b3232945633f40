import Foundation
import Postgres
import RESP
import Testing
import Timestamps
import Watermarks
import Writers

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

/// The standalone removal keeps two pipelines in flight, each reading the expired ids one
/// chunk ahead by offset: members that appear under those offsets must still all go.
@Suite(.timeLimit(.minutes(10))) struct PipelinedRetentionTests {
    @Test func everyExpiredMemberGoesWhenTheIndexChangesUnderTheOffsets() async throws {
        try await withHarness { job in
            let now = Timestamp(microsecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1_000_000))
            let writer = RetentionWriter(templates: try KeyTemplates(prefix: job.prefix), table: .usageLogs,
                                         cutoff: Timestamp.retentionCutoff(now: now, days: 93))
            let old = now.unixSeconds - 100 * 86_400
            func id(_ n: Int) -> String { String(format: "00000000-0000-0000-0000-%012d", n) }
            var fill = CommandBatch()
            for n in 0..<45 {
                // 40 expired entries, 5 fresh ones.
                let score = n < 40 ? old + Int64(n) : now.unixSeconds - Int64(n)
                fill.append("HSET", job.prefix + "usage_log:" + id(n), "id", id(n))
                fill.append("ZADD", writer.globalIndex, String(score), id(n))
            }
            _ = try await job.valkey.execute(fill)
            // Every second time it is asked, an expired member sorting before all others
            // appears: the offset reads of the pipelines in flight then skip members.
            var asked = 0
            var added = 0
            let removed = try await writer.removeAllExpiredEntries(chunk: 3, on: job.valkey) {
                asked += 1
                if asked % 2 == 0, added < 8 {
                    added += 1
                    let late = id(1000 + added)
                    _ = try? await job.valkey.send("HSET", job.prefix + "usage_log:" + late, "id", late)
                    _ = try? await job.valkey.send("ZADD", writer.globalIndex, String(old - Int64(added)), late)
                }
                return true
            }
            #expect(added >= 4)
            #expect(removed.members == 40 + added)
            #expect(removed.entries == 40 + added)
            let left = try await job.valkey.send("ZRANGE", writer.globalIndex, "0", "-1").array?.compactMap(\.string) ?? []
            #expect(Set(left) == Set((40..<45).map(id)))
            for n in [0, 20, 39] + (1...added).map({ 1000 + $0 }) {
                #expect(try await job.valkey.send("EXISTS", job.prefix + "usage_log:" + id(n)).int == 0, "\(id(n))")
            }
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct RetentionVolumeTests {
    /// A million expired entries in every index kind: all removed, in bounded memory.
    @Test func millionExpiredEntriesInBoundedMemory() async throws {
        try await withHarness { job in
            let expired = 1_000_000
            let fresh = 1000
            let now = Date().timeIntervalSince1970
            let prefix = job.prefix
            var produced = 0
            func id(_ i: Int) -> String {
                let digits = String(i)
                return "00000000-0000-0000-0000-" + String(repeating: "0", count: 12 - digits.count) + digits
            }
            // Written straight into Valkey, as an older copy would have left them.
            let outcome = try await job.valkey.executeStreaming { () -> CommandBatch? in
                guard produced < expired + fresh else { return nil }
                var batch = CommandBatch(reservingCapacity: 1 << 20)
                let end = min(produced + 5000, expired + fresh)
                for i in produced..<end {
                    let age = i < expired ? 100 * 86_400.0 + Double(i % 86_400) : Double(i % 3600)
                    let score = String(format: "%.3f", now - age)
                    let member = id(i)
                    batch.append("HSET", prefix + "usage_log:" + member, "id", member, "asset", "A\(i % 40)")
                    batch.append("ZADD", prefix + "usage_logs:index", score, member)
                    batch.append("ZADD", prefix + "usage_logs:index:api_key:k\(i % 50)", score, member)
                    batch.append("ZADD", prefix + "usage_logs:index:asset:A\(i % 40)", score, member)
                }
                produced = end
                return batch
            }
            #expect(outcome.errorCount == 0)
            var registry = CommandBatch()
            registry.append(["SADD", prefix + "sync:indexes:usage_logs", prefix + "usage_logs:index"]
                + (0..<50).map { prefix + "usage_logs:index:api_key:k\($0)" } + (0..<40).map { prefix + "usage_logs:index:asset:A\($0)" })
            _ = try await job.valkey.execute(registry)

            let result = try await job.run(["run", "--stage", "retention"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("removed entries \(expired)"), "\(result.stdout)")
            #expect(try await job.valkey.send("ZCARD", prefix + "usage_logs:index").int == Int64(fresh))
            var perKey: Int64 = 0
            for k in 0..<50 { perKey += try await job.valkey.send("ZCARD", prefix + "usage_logs:index:api_key:k\(k)").int ?? 0 }
            var perAsset: Int64 = 0
            for a in 0..<40 { perAsset += try await job.valkey.send("ZCARD", prefix + "usage_logs:index:asset:A\(a)").int ?? 0 }
            #expect(perKey == Int64(fresh) && perAsset == Int64(fresh))
            for i in stride(from: 0, to: expired, by: 99_991) {
                #expect(try await job.valkey.send("EXISTS", prefix + "usage_log:" + id(i)).int == 0)
            }
            #expect(try await job.valkey.send("EXISTS", prefix + "usage_log:" + id(expired)).int == 1)
            let summary = try #require(try await job.string("sync:last_run"))
            let object = try #require(try JSONSerialization.jsonObject(with: Data(summary.utf8)) as? [String: Any])
            let peak = try #require(object["peak_rss_bytes"] as? Int)
            #expect(peak > 0 && peak < 150 * 1024 * 1024, "peak RSS \(peak / 1_048_576) MB")
        }
    }
}
