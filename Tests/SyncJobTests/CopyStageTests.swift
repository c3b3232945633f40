import Foundation
import Postgres
import Testing

/// The `usage-logs` and `report-logs` stages end to end: the real binary against the real
/// servers, asserting on what Valkey holds afterwards (SPEC §3, §4).
@Suite(.timeLimit(.minutes(10))) struct CopyStageTests {
    /// What SPEC §3 says each usage_logs row becomes, computed by PostgreSQL itself.
    static let expectedUsageSQL = """
        select id::text as id,
               json_build_object(
                 'id', id::text, 'api_key_id', coalesce(api_key_id::text, ''), 'asset', coalesce(asset, ''),
                 'price', coalesce(price::text, ''), 'source', coalesce(source, ''),
                 'cached', case when cached then 'true' when not cached then 'false' else '' end,
                 'latency_ms', coalesce(latency_ms::text, ''), 'duration_ms', coalesce(duration_ms::text, ''),
                 'ip_address', coalesce(ip_address, ''),
                 'timestamp', to_char("timestamp" at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                 'readable_timestamp', coalesce(readable_timestamp, ''),
                 'cache_age_seconds', coalesce(cache_age_seconds::text, ''), 'cluster_node', coalesce(cluster_node, ''),
                 'region', coalesce(region, ''), 'monthly_usage', coalesce(monthly_usage::text, ''),
                 'monthly_limit', coalesce(monthly_limit::text, ''))::text as fields,
               coalesce(api_key_id::text, '') as api_key_id, coalesce(asset, '') as asset,
               (floor(extract(epoch from "timestamp") * 1000) / 1000)::text as score,
               floor(extract(epoch from "timestamp"))::bigint + 93 * 86400 as expire_at,
               "timestamp" >= now() - interval '93 days' + interval '10 minutes' as fresh,
               "timestamp" < now() - interval '93 days' - interval '10 minutes' as stale
        from usage_logs where "timestamp" is not null
        """

    @Test func everyUsageRowLandsWithEveryFieldIndexAndExpiry() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 3000, reportRows: 0, apiKeys: 20)
            let result = try await job.run(["run", "--stage", "usage-logs", "--batch-size", "256"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("usage-logs: read"), "\(result.stdout)")

            let rows = try await job.postgres.query(Self.expectedUsageSQL)
            let global = try await job.sortedSet("usage_logs:index")
            var perKey: [String: [String: String]] = [:]
            var perAsset: [String: [String: String]] = [:]
            var fresh = 0
            var checkedStale = 0
            for row in rows {
                let id = try row["id"]!.decode(String.self)!
                let score = Double(try row["score"]!.decode(String.self)!)!
                if try row["fresh"]!.decode(Bool.self)! {
                    fresh += 1
                    let expected = try JSONSerialization.jsonObject(with: Data(try row["fields"]!.decode(String.self)!.utf8)) as! [String: String]
                    let stored = try await job.hash("usage_log:\(id)")
                    #expect(stored == expected, "usage_log:\(id)")
                    #expect(try await job.expireTime("usage_log:\(id)") == Int64(try row["expire_at"]!.decode(Int.self)!))
                    #expect(global[id].flatMap(Double.init) == score, "score of \(id)")
                    let apiKey = try row["api_key_id"]!.decode(String.self)!
                    if !apiKey.isEmpty {
                        if perKey[apiKey] == nil { perKey[apiKey] = try await job.sortedSet("usage_logs:index:api_key:\(apiKey)") }
                        #expect(perKey[apiKey]?[id].flatMap(Double.init) == score)
                    }
                    let asset = try row["asset"]!.decode(String.self)!
                    if !asset.isEmpty {
                        if perAsset[asset] == nil { perAsset[asset] = try await job.sortedSet("usage_logs:index:asset:\(asset)") }
                        #expect(perAsset[asset]?[id].flatMap(Double.init) == score)
                    }
                } else if try row["stale"]!.decode(Bool.self)! {
                    checkedStale += 1
                    #expect(try await job.hash("usage_log:\(id)").isEmpty, "a row older than the cutoff was written")
                    #expect(global[id] == nil)
                }
            }
            #expect(fresh > 2000 && checkedStale > 100, "the sample should straddle the cutoff")
            // Rows within minutes of the cutoff may fall either side between the job's clock and ours.
            let band = rows.count - fresh - checkedStale
            #expect(global.count >= fresh && global.count <= fresh + band, "the global index holds exactly the fresh rows")
            let nullKeyIndex = try await job.keys().filter { $0.hasSuffix("index:api_key:") || $0.hasSuffix("index:asset:") }
            #expect(nullKeyIndex.isEmpty, "a NULL api_key_id or asset must not make an index key")
            let watermark = try await job.string("sync:watermark:usage_logs")
            let newest = try await job.postgres.query(
                "select to_char(max(\"timestamp\") at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') from usage_logs")
            #expect(watermark == (try newest[0][0].decode(String.self)))
        }
    }

    @Test func reportLogsLandWithTheirTwoIndexes() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 0, reportRows: 800, apiKeys: 10)
            let result = try await job.run(["run", "--stage", "report-logs"])
            #expect(result.status == 0, "\(result.stderr)")
            let rows = try await job.postgres.query("""
                select id::text, coalesce(filters::text, '') as filters, coalesce(api_key_id::text, '') as api_key_id,
                       status_code::text, (floor(extract(epoch from "timestamp") * 1000) / 1000)::text as score
                from report_usage_logs
                where "timestamp" >= now() - interval '93 days' + interval '10 minutes'
                """)
            let global = try await job.sortedSet("report_usage_logs:index")
            #expect(global.count == rows.count)
            for row in rows.prefix(200) {
                let id = try row[0].decode(String.self)!
                let stored = try await job.hash("report_usage_log:\(id)")
                #expect(stored.count == 14)
                #expect(stored["filters"] == (try row["filters"]!.decode(String.self)))
                #expect(stored["status_code"] == (try row["status_code"]!.decode(String.self)))
                let apiKey = try row["api_key_id"]!.decode(String.self)!
                if !apiKey.isEmpty {
                    let index = try await job.sortedSet("report_usage_logs:index:api_key:\(apiKey)")
                    #expect(index[id].flatMap(Double.init) == Double(try row["score"]!.decode(String.self)!))
                }
            }
        }
    }

    @Test func thousandRowsSharingATimestampAllArriveWithBatchSizeSeven() async throws {
        try await withHarness { job in
            try await job.postgres.execute("""
                insert into usage_logs (id, asset, "timestamp")
                select md5('same' || i)::uuid, 'BTC', now() - interval '1 hour' from generate_series(1, 1000) as i;
                insert into usage_logs (id, asset, "timestamp")
                select md5('around' || i)::uuid, 'ETH', now() - interval '1 hour' + (i || ' seconds')::interval
                from generate_series(-3, 3) as i where i <> 0;
                """)
            let result = try await job.run(["run", "--stage", "usage-logs", "--batch-size", "7"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try await job.sortedSet("usage_logs:index:asset:BTC").count == 1000)
            #expect(try await job.sortedSet("usage_logs:index").count == 1006)
            #expect(result.stdout.contains("pages 144"), "1006 rows in pages of 7: \(result.stdout)")
        }
    }

    @Test func lateRowInsideTheOverlapArrivesOnTheNextRun() async throws {
        try await withHarness { job in
            try await job.postgres.execute("""
                insert into usage_logs (id, asset, "timestamp")
                select md5('early' || i)::uuid, 'BTC', now() - interval '1 hour' + (i || ' seconds')::interval
                from generate_series(1, 50) as i
                """)
            #expect(try await job.run(["run", "--stage", "usage-logs"]).status == 0)
            let watermark = try #require(try await job.string("sync:watermark:usage_logs"))
            // Committed late with a timestamp 2 minutes before the watermark: inside the 5-minute overlap.
            try await job.postgres.execute("""
                insert into usage_logs (id, asset, "timestamp") values
                  ('00000000-0000-0000-0000-000000000001', 'SOL', $1::timestamptz - interval '2 minutes'),
                  ('00000000-0000-0000-0000-000000000002', 'SOL', $1::timestamptz - interval '20 minutes')
                """, [.text(watermark)])
            let second = try await job.run(["run", "--stage", "usage-logs"])
            #expect(second.status == 0, "\(second.stderr)")
            let index = try await job.sortedSet("usage_logs:index")
            #expect(index["00000000-0000-0000-0000-000000000001"] != nil, "a row inside the overlap window is copied")
            #expect(index["00000000-0000-0000-0000-000000000002"] == nil, "a row later than the overlap allows is not re-read")
            #expect(index.count == 51)
            #expect(try await job.string("sync:watermark:usage_logs") == watermark, "the watermark did not move backwards")
        }
    }

    @Test func twoRunsOverTheSameSourceLeaveIdenticalState() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 2000, reportRows: 300, apiKeys: 15)
            // A long retention, so that no entry expires between the snapshots.
            let stages = ["run", "--stage", "usage-logs", "--stage", "report-logs", "--batch-size", "333", "--retention-days", "400"]
            #expect(try await job.run(stages).status == 0)
            let first = try await job.snapshot()
            #expect(try await job.run(stages).status == 0)
            #expect(try await job.snapshot() == first)
            // A full re-copy from scratch (no watermark) gives the same bytes too.
            _ = try await job.valkey.send("DEL", job.prefix + "sync:watermark:usage_logs", job.prefix + "sync:watermark:report_usage_logs")
            #expect(try await job.run(stages).status == 0)
            let third = try await job.snapshot()
            #expect(third == first)
            #expect(first.count > 2000)
        }
    }

    @Test func aWatermarkAheadOfTheSourceIsLeftWhereItIs() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 500, reportRows: 0, apiKeys: 5)
            let later = "2099-01-01T00:00:00.000000Z"
            _ = try await job.valkey.send("SET", job.prefix + "sync:watermark:usage_logs", later)
            let result = try await job.run(["run", "--stage", "usage-logs"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try await job.string("sync:watermark:usage_logs") == later)
        }
    }

    @Test func dryRunReadsAndCountsButWritesNothing() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 400, reportRows: 40, apiKeys: 5)
            let result = try await job.run(["run", "--stage", "usage-logs", "--stage", "report-logs", "--dry-run"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("would write"), "\(result.stdout)")
            #expect(try await job.keys().isEmpty, "a dry run wrote to Valkey")
        }
    }

    @Test func killedRunThenRerunLeavesExactlyTheSourceRows() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 120_000, reportRows: 0, apiKeys: 100)
            let process = try job.start(["run", "--stage", "usage-logs", "--batch-size", "300"])
            // Kill it once a few pages are acknowledged, in the middle of the copy.
            #expect(try await job.waitForKey("sync:watermark:usage_logs"), "the copy never acknowledged a page")
            // A few pages later: the kill lands in the middle of the copy, not at its start.
            for _ in 0..<3 {
                let watermark = try await job.string("sync:watermark:usage_logs")
                _ = try await job.waitForChange(of: "sync:watermark:usage_logs", from: watermark) { !process.isRunning }
            }
            kill(process.processIdentifier, SIGKILL)
            await JobHarness.waitForExit(process)
            #expect(process.terminationReason == .uncaughtSignal, "the copy finished before it could be killed")
            let killedAt = try #require(try await job.string("sync:watermark:usage_logs"))

            // Never past an unacknowledged page: everything before the watermark is there (rows
            // tied with it may be in the page after it; the rerun's overlap re-reads them).
            let upToWatermark = try await job.postgres.query("""
                select id::text from usage_logs
                where "timestamp" >= now() - interval '93 days' + interval '10 minutes' and "timestamp" < $1::timestamptz
                """, [.text(killedAt)])
            let partial = try await job.sortedSet("usage_logs:index")
            let missing = upToWatermark.filter { partial[(try? $0[0].decode(String.self)) ?? ""] == nil }
            #expect(!upToWatermark.isEmpty && missing.isEmpty, "\(missing.count) rows before the watermark \(killedAt) are missing")

            let rerun = try await job.run(["run", "--stage", "usage-logs", "--batch-size", "5000"])
            #expect(rerun.status == 0, "\(rerun.stderr)")
            let expected = Set(try await job.postgres.query("""
                select id::text from usage_logs where "timestamp" >= now() - interval '93 days'
                """).map { try $0[0].decode(String.self)! })
            let index = try await job.sortedSet("usage_logs:index")
            // Rows right at the cutoff may fall either side of it between the job's clock and ours.
            let boundary = Set(try await job.postgres.query("""
                select id::text from usage_logs where "timestamp" between now() - interval '93 days' - interval '10 minutes'
                                                                 and now() - interval '93 days' + interval '10 minutes'
                """).map { try $0[0].decode(String.self)! })
            #expect(Set(index.keys).subtracting(boundary) == expected.subtracting(boundary))
            let hashes = try await job.keys().filter { $0.hasPrefix(job.prefix + "usage_log:") }
            // A hash whose row crossed the cutoff during the test expired by its own EXPIREAT;
            // its index member waits for the retention stage.
            #expect(Set(hashes.map { String($0.dropFirst((job.prefix + "usage_log:").count)) }).subtracting(boundary)
                    == Set(index.keys).subtracting(boundary))
        }
    }

    @Test func unreachableValkeyExits75WithAClearMessage() async throws {
        try await withHarness { job in
            try await job.generate(usageRows: 10, reportRows: 0, apiKeys: 2)
            let result = try await job.run(["run", "--stage", "usage-logs"], environment: ["VALKEY_URL": "valkey://127.0.0.1:1"])
            #expect(result.status == 75)
            #expect(result.stderr.contains("127.0.0.1:1"), "\(result.stderr)")
        }
    }

    @Test func badSettingsExit64NamingTheSetting() async throws {
        try await withHarness { job in
            let batch = try await job.run(["run", "--stage", "usage-logs", "--batch-size", "0"])
            #expect(batch.status == 64)
            #expect(batch.stderr.contains("--batch-size"), "\(batch.stderr)")
            let overlap = try await job.run(["run", "--stage", "usage-logs"], environment: ["SYNC_OVERLAP": "five minutes"])
            #expect(overlap.status == 64)
            #expect(overlap.stderr.contains("SYNC_OVERLAP"), "\(overlap.stderr)")
            let template = try await job.run(["run", "--key-template", "usage_log=ul:${nope}"])
            #expect(template.status == 64)
            #expect(template.stderr.contains("usage_log") && template.stderr.contains("nope"), "\(template.stderr)")
            let stage = try await job.run(["run", "--stage", "everything"])
            #expect(stage.status == 64)
        }
    }
}
