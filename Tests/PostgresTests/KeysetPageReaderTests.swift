import Foundation
import Testing
@testable import Postgres
import Timestamps

@Suite("KeysetPageReader against the real server")
struct KeysetPageReaderTests {
    static let base = Timestamp(rfc3339: "2026-11-27T16:00:00Z")!

    /// Creates `logs` with `timestamp` of the given type and rows: 1,000 sharing `base`,
    /// plus 20 one second apart on each side of it and rows exactly on the window's bounds.
    func makeLogs(_ connection: PostgresConnection, _ schema: String, timestampType: String) async throws {
        try await connection.execute("""
            CREATE TABLE \(schema).logs (id uuid PRIMARY KEY, asset text, "timestamp" \(timestampType));
            CREATE INDEX ON \(schema).logs ("timestamp", id);
            INSERT INTO \(schema).logs
                SELECT md5('same' || n)::uuid, 'same-' || n, '2026-11-27 16:00:00' FROM generate_series(1, 1000) AS n;
            INSERT INTO \(schema).logs
                SELECT md5('around' || n)::uuid, 'around-' || n, timestamp '2026-11-27 16:00:00' + n * interval '1 second'
                FROM generate_series(-20, 20) AS n WHERE n <> 0;
            INSERT INTO \(schema).logs VALUES (md5('null')::uuid, 'no timestamp', NULL);
            """)
    }

    func readAll(_ reader: KeysetPageReader, from: Timestamp, until: Timestamp) async throws -> [[PostgresRow]] {
        var pages: [[PostgresRow]] = []
        for try await page in reader.pages(from: from, until: until) { pages.append(page) }
        return pages
    }

    func expectedIDs(_ connection: PostgresConnection, _ schema: String, from: Timestamp, until: Timestamp) async throws -> [String] {
        try await connection.query(
            #"SELECT id::text FROM \#(schema).logs WHERE "timestamp" >= $1::timestamptz AND "timestamp" < $2::timestamptz ORDER BY "timestamp", id"#,
            [.timestamp(from), .timestamp(until)]
        ).map { try #require(try $0[0].decode(String.self)) }
    }

    @Test(arguments: ["timestamptz", "timestamp"])
    func everyRowOnceAcrossEqualTimestamps(timestampType: String) async throws {
        try await TestDatabase.withScratchSchema { connection, schema in
            try await makeLogs(connection, schema, timestampType: timestampType)
            let reader = KeysetPageReader(connection: connection, table: "\(schema).logs", columns: ["id", "asset"], pageSize: 7)
            let from = Timestamp(microsecondsSinceEpoch: Self.base.microsecondsSinceEpoch - 10_000_000)
            let until = Timestamp(microsecondsSinceEpoch: Self.base.microsecondsSinceEpoch + 10_000_000)
            let pages = try await readAll(reader, from: from, until: until)
            let ids = pages.flatMap { $0.map { $0["id"]!.text! } }
            let expected = try await expectedIDs(connection, schema, from: from, until: until)
            // -10 s inclusive .. +10 s exclusive: 10 before, the 1,000 equal ones, 9 after.
            #expect(expected.count == 1019)
            #expect(ids == expected)
            #expect(Set(ids).count == ids.count)
            #expect(pages.dropLast().allSatisfy { $0.count == 7 })
            #expect(pages.count == (1019 + 6) / 7)
            // Rows carry the keyset column even when not asked for, and it decodes as UTC.
            let timestamps = try pages.flatMap { try $0.map { try #require(try $0["timestamp"]?.decode(Timestamp.self)) } }
            #expect(timestamps.first == from)
            #expect(timestamps == timestamps.sorted())
            #expect(timestamps.filter { $0 == Self.base }.count == 1000)
        }
    }

    @Test func pageEndingExactlyAtTheLastRow() async throws {
        try await TestDatabase.withScratchSchema { connection, schema in
            try await makeLogs(connection, schema, timestampType: "timestamptz")
            // 1,040 timestamped rows: page size 8 divides them, and 1,000 equal ones fill 125 pages.
            for pageSize in [8, 1040, 1000, 1] {
                let reader = KeysetPageReader(connection: connection, table: "\(schema).logs", columns: ["id"], pageSize: pageSize)
                let from = Timestamp(rfc3339: "2000-01-01")!
                let until = Timestamp(rfc3339: "2100-01-01")!
                let pages = try await readAll(reader, from: from, until: until)
                #expect(pages.allSatisfy { !$0.isEmpty })
                #expect(pages.map(\.count).reduce(0, +) == 1040)
                #expect(pages.flatMap { $0.map { $0["id"]!.text! } } == (try await expectedIDs(connection, schema, from: from, until: until)))
            }
            // Only the 1,000 equal rows: the window's upper bound excludes the next second.
            let reader = KeysetPageReader(connection: connection, table: "\(schema).logs", columns: ["id"], pageSize: 500)
            let pages = try await readAll(reader, from: Self.base, until: Timestamp(microsecondsSinceEpoch: Self.base.microsecondsSinceEpoch + 1_000_000))
            #expect(pages.map(\.count) == [500, 500])
        }
    }

    @Test func emptyWindowAndNewestTimestamp() async throws {
        try await TestDatabase.withScratchSchema { connection, schema in
            try await connection.execute(#"CREATE TABLE \#(schema)."Odd ""Name""" (id bigint PRIMARY KEY, at timestamp)"#)
            let reader = KeysetPageReader(connection: connection, table: #"\#(schema).Odd "Name""#, columns: ["id"], timestampColumn: "at", pageSize: 3)
            #expect(try await reader.newestTimestamp() == nil)
            #expect(try await readAll(reader, from: Self.base, until: Self.base).isEmpty)
            try await connection.execute(#"INSERT INTO \#(schema)."Odd ""Name""" SELECT n, timestamp '2026-11-27 16:00:00' + n * interval '1 ms' FROM generate_series(1, 10) AS n"#)
            #expect(try await reader.newestTimestamp() == Timestamp(microsecondsSinceEpoch: Self.base.microsecondsSinceEpoch + 10_000))
            // bigint ids are compared as numbers: 10 sorts after 9.
            let pages = try await readAll(reader, from: Self.base, until: Timestamp(rfc3339: "2027-01-01")!)
            #expect(pages.flatMap { try! $0.map { try $0["id"]!.decode(Int.self)! } } == Array(1...10))
            #expect(pages.map(\.count) == [3, 3, 3, 1])
        }
    }

    @Test func pagesUseTheIndex() async throws {
        try await TestDatabase.withScratchSchema { connection, schema in
            try await makeLogs(connection, schema, timestampType: "timestamp")
            try await connection.execute("ANALYZE \(schema).logs; SET enable_seqscan = off")
            let reader = KeysetPageReader(connection: connection, table: "\(schema).logs", columns: ["id"], pageSize: 7)
            let plan = try await connection.query("EXPLAIN " + reader.nextPageSQL, [.text("2026-11-27 16:00:00"), .text(UUID().uuidString), .timestamp(Self.base), .int(7)])
                .map { $0[0].text ?? "" }.joined(separator: "\n")
            #expect(plan.contains("Index"), "\(plan)")
            #expect(!plan.contains("Sort"), "\(plan)")
        }
    }

    @Test func stoppingEarlyLeavesTheConnectionUsable() async throws {
        try await TestDatabase.withScratchSchema { connection, schema in
            try await makeLogs(connection, schema, timestampType: "timestamptz")
            let reader = KeysetPageReader(connection: connection, table: "\(schema).logs", columns: ["id"], pageSize: 10)
            var seen = 0
            for try await page in reader.pages(from: Timestamp(rfc3339: "2000-01-01")!, until: Timestamp(rfc3339: "2100-01-01")!) {
                seen += page.count
                if seen >= 30 { break }
            }
            #expect(seen == 30)
            #expect(try await connection.query("SELECT count(*) FROM \(schema).logs")[0][0].decode(Int.self) == 1041)
        }
    }

    @Test func readsTheNextPageWhileTheCallerHoldsTheCurrentOne() async throws {
        try await TestDatabase.withScratchSchema { connection, schema in
            try await makeLogs(connection, schema, timestampType: "timestamptz")
            let backend = try #require(try await connection.query("SELECT pg_backend_pid()")[0][0].decode(Int.self))
            let observer = try await TestDatabase.connect()
            defer { observer.close() }
            let reader = KeysetPageReader(connection: connection, table: "\(schema).logs", columns: ["id"], pageSize: 10)
            var iterator = reader.pages(from: Timestamp(rfc3339: "2000-01-01")!, until: Timestamp(rfc3339: "2100-01-01")!).makeAsyncIterator()
            let first = try #require(try await iterator.next())
            #expect(first.count == 10)
            // Without asking for it, the reader's session has gone on to the next-page query.
            var lastQuery = ""
            for _ in 0..<100 {
                lastQuery = try await observer.query("SELECT query FROM pg_stat_activity WHERE pid = $1", [.int(Int64(backend))]).first?[0].text ?? ""
                if lastQuery.contains("> ($1, $2)") { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(lastQuery.contains("> ($1, $2)"), "\(lastQuery)")
            let second = try #require(try await iterator.next())
            #expect(second.first?["id"]?.text != first.last?["id"]?.text)
        }
    }

    @Test func missingTableFailsWithItsSQLState() async throws {
        let connection = try await TestDatabase.connect()
        defer { connection.close() }
        let reader = KeysetPageReader(connection: connection, table: "public.no_such_logs", columns: ["id"], pageSize: 10)
        let error = try await #require(throws: PostgresError.self) {
            for try await _ in reader.pages(from: Self.base, until: Self.base) {}
        }
        #expect(error.sqlState == "42P01")
    }
}

@Suite("KeysetPageReader memory")
struct KeysetPageReaderMemoryTests {
    static func residentKilobytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    @Test func readingALargeTableKeepsMemoryBounded() async throws {
        try await TestDatabase.withScratchSchema { connection, schema in
            try await connection.execute("""
                CREATE TABLE \(schema).usage_logs (id uuid PRIMARY KEY, asset text, price float8, payload text, "timestamp" timestamptz);
                INSERT INTO \(schema).usage_logs
                    SELECT md5(n::text)::uuid, 'asset-' || (n % 97), n * 0.25, repeat(md5(n::text), 8),
                           timestamptz '2026-11-01 00:00:00+00' + (n / 3) * interval '1 second'
                    FROM generate_series(1, 200000) AS n;
                CREATE INDEX ON \(schema).usage_logs ("timestamp", id);
                ANALYZE \(schema).usage_logs;
                """)
            let reader = KeysetPageReader(connection: connection, table: "\(schema).usage_logs",
                                          columns: ["id", "asset", "price", "payload", "timestamp"], pageSize: 1000)
            var rows = 0
            var pagesRead = 0
            var baseline = 0
            var peak = 0
            var checksum = 0.0
            for try await page in reader.pages(from: Timestamp(rfc3339: "2026-11-01")!, until: Timestamp(rfc3339: "2026-12-01")!) {
                rows += page.count
                pagesRead += 1
                for row in page { checksum += try row["price"]?.decode(Double.self) ?? 0 }
                if pagesRead == 5 { baseline = try Self.residentKilobytes() }
                if pagesRead > 5 { peak = max(peak, try Self.residentKilobytes()) }
            }
            #expect(rows == 200_000)
            #expect(pagesRead == 200)
            #expect(checksum == (1...200_000).reduce(0.0) { $0 + Double($1) * 0.25 })
            // The whole table is ~70 MB of text and over 100 MB as Swift rows; two pages are well
            // under 1 MB. The bound is generous because every other suite of this test process
            // allocates alongside (measured: 43 MB of growth on a loaded 2-core machine).
            let growthMB = Double(peak - baseline) / 1024
            #expect(growthMB < 64, "resident memory grew by \(growthMB) MB while reading 200,000 rows")
        }
    }

    /// `IDPageReader`: every row once, in id order, for a table of an exact multiple of the
    /// page size (the last, empty page ends it), one row short of it, and a text id; a
    /// schema-qualified name works, and `finish()` tells whether rows were left unread.
    @Test(arguments: [(200, "uuid"), (199, "uuid"), (57, "text")])
    func idPagesReadEveryRowOnce(rows: Int, idType: String) async throws {
        try await TestDatabase.withScratchSchema { connection, schema in
            try await connection.execute("""
                CREATE TABLE \(schema).keys (id \(idType) PRIMARY KEY, name text);
                INSERT INTO \(schema).keys SELECT md5('k' || n)::\(idType), 'key ' || n FROM generate_series(1, \(rows)) AS n;
                """)
            let expected = try await connection.query("SELECT id::text FROM \(schema).keys ORDER BY id").compactMap { $0.text(0) }
            let reader = IDPageReader(connection: connection, table: "\(schema).keys", columns: ["id", "name"], pageSize: 20)
            var pages: [[PostgresRow]] = []
            try await connection.withSnapshot {
                for try await page in reader.pages() { pages.append(page) }
            }
            #expect(pages.flatMap { $0.compactMap { $0.text(0) } } == expected)
            #expect(pages.dropLast().allSatisfy { $0.count == 20 })

            var early = reader.pages().makeAsyncIterator()
            _ = try await early.next()
            #expect(await early.finish() == true, "a full first page leaves rows unread")
            var whole = IDPageReader(connection: connection, table: "\(schema).keys", columns: ["id"], pageSize: 1000).pages().makeAsyncIterator()
            _ = try await whole.next()
            #expect(await whole.finish() == false, "one short page is the whole table")
            #expect(try await connection.query("SELECT 1").count == 1, "the connection is usable after finish()")
        }
    }

    /// A snapshot left by an error rolls back: the session is usable for the next statement.
    @Test func aFailedSnapshotLeavesTheSessionIdle() async throws {
        try await TestDatabase.withScratchSchema { connection, _ in
            await #expect(throws: PostgresError.self) {
                try await connection.withSnapshot { try await connection.query("SELECT 1/0") }
            }
            #expect(try await connection.query("SELECT 1").count == 1)
            // A write would fail inside the read-only snapshot; outside it, it works again.
            try await connection.execute("CREATE TEMP TABLE after_snapshot (x int)")
        }
    }
}
