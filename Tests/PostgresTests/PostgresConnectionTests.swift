import Foundation
import Testing
@testable import Postgres
import Timestamps

@Suite("PostgresConnection against the real server")
struct PostgresConnectionTests {
    @Test func describesTheServerWithoutThePassword() async throws {
        let connection = try await TestDatabase.connect()
        defer { connection.close() }
        let host = try TestDatabase.variable("SYNC_TEST_PG_HOST")
        let port = try TestDatabase.variable("SYNC_TEST_PG_PORT")
        let database = try TestDatabase.variable("SYNC_TEST_PG_DATABASE")
        #expect(connection.serverDescription == "\(host):\(port)/\(database)")
        #expect(!connection.serverDescription.contains(try TestDatabase.variable("SYNC_TEST_PG_PASSWORD")))
    }

    @Test func sessionSettingsMakeTextPredictable() async throws {
        let connection = try await TestDatabase.connect()
        defer { connection.close() }
        let row = try #require(try await connection.query(
            "SELECT current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds, current_setting('client_encoding') AS enc, current_setting('application_name') AS app").first)
        #expect(row["tz"]?.text == "UTC")
        #expect(row["ds"]?.text == "ISO, YMD")
        #expect(row["enc"]?.text == "UTF8")
        #expect(row["app"]?.text == "sync-job")
    }

    @Test func queryErrorCarriesSQLStateAndMessage() async throws {
        let connection = try await TestDatabase.connect()
        defer { connection.close() }
        let error = try await #require(throws: PostgresError.self) {
            try await connection.query("SELECT * FROM no_such_table_here")
        }
        #expect(error.kind == .query)
        #expect(error.sqlState == "42P01")
        #expect(error.message == "relation \"no_such_table_here\" does not exist")
        #expect(error.server == connection.serverDescription)
        #expect(error.description.contains("42P01"))
        // The connection stays usable after a statement error.
        #expect(try await connection.query("SELECT 1 AS one").first?["one"]?.decode(Int.self) == 1)
    }

    @Test func parametersAreTextAndNilIsNull() async throws {
        let connection = try await TestDatabase.connect()
        defer { connection.close() }
        let ts = Timestamp(rfc3339: "2026-11-27T16:00:00.123456Z")!
        let row = try #require(try await connection.query(
            "SELECT $1::text AS a, $2::int8 AS b, $3::float8 AS c, $4::bool AS d, $5::timestamptz AS e, $6::uuid AS f, $7::text AS g, $8::float8 AS h",
            [.text("héllo 'quoted'"), .int(-42), .double(0.1), .bool(true), .timestamp(ts), .uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), nil, .double(-.infinity)]).first)
        #expect(try row["a"]?.decode(String.self) == "héllo 'quoted'")
        #expect(try row["b"]?.decode(Int.self) == -42)
        #expect(try row["c"]?.decode(Double.self) == 0.1)
        #expect(try row["d"]?.decode(Bool.self) == true)
        #expect(try row["e"]?.decode(Timestamp.self) == ts)
        #expect(row["e"]?.text == "2026-11-27 16:00:00.123456+00")
        #expect(row["e"]?.typeOID == 1184)
        #expect(row["f"]?.text == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        #expect(row["g"]?.isNull == true)
        #expect(try row["g"]?.decode(String.self) == nil)
        #expect(try row["h"]?.decode(Double.self) == -.infinity)
        #expect(row.count == 8)
        #expect(row.columnNames == ["a", "b", "c", "d", "e", "f", "g", "h"])
        #expect(row["missing"] == nil)
    }

    @Test func executeReportsAffectedRowsAndRunsScripts() async throws {
        try await TestDatabase.withScratchSchema { connection, schema in
            let created = try await connection.execute("""
                CREATE TABLE \(schema).items (id int PRIMARY KEY, name text);
                INSERT INTO \(schema).items VALUES (1, 'a'), (2, 'b'), (3, 'c');
                """)
            #expect(created == 3)  // a script reports its last statement
            #expect(try await connection.execute("UPDATE \(schema).items SET name = $1 WHERE id >= $2", [.text("z"), .int(2)]) == 2)
            #expect(try await connection.execute("DELETE FROM \(schema).items WHERE id = $1", [.int(99)]) == 0)
            let names = try await connection.query("SELECT name FROM \(schema).items ORDER BY id").map { try $0[0].decode(String.self) }
            #expect(names == ["a", "z", "z"])
        }
    }

    @Test func databaseNowIsTheServerClock() async throws {
        let connection = try await TestDatabase.connect()
        defer { connection.close() }
        let now = try await connection.databaseNow()
        let local = Int64(Date().timeIntervalSince1970 * 1_000_000)
        // Same machine: the clocks agree within a minute (a sanity bound, not a timing).
        #expect(abs(now.microsecondsSinceEpoch - local) < 60_000_000)
    }

    @Test func decodingErrorsNameTheColumnAndRow() async throws {
        let connection = try await TestDatabase.connect()
        defer { connection.close() }
        let rows = try await connection.query(
            "SELECT * FROM (VALUES (1, 'now'::text, '2026-01-01'::timestamptz), (2, 'x', 'infinity'::timestamptz)) AS v(n, word, at)")
        let error = try #require(throws: PostgresError.self) { try rows[1]["at"]?.decode(Timestamp.self) }
        #expect(error.kind == .decoding)
        #expect(error.message.contains("\"at\""))
        #expect(error.message.contains("row 1"))
        #expect(error.message.contains("infinity"))
        #expect(throws: PostgresError.self) { try rows[0]["word"]?.decode(Int.self) }
        #expect(throws: PostgresError.self) { try rows[0]["word"]?.decode(Bool.self) }
    }

    @Test func closeIsIdempotentAndLaterStatementsFail() async throws {
        let connection = try await TestDatabase.connect()
        connection.close()
        connection.close()
        let error = try await #require(throws: PostgresError.self) { try await connection.query("SELECT 1") }
        #expect(error.kind == .connectionLost)
    }

    @Test func aTerminatedSessionIsAConnectionLoss() async throws {
        let connection = try await TestDatabase.connect()
        defer { connection.close() }
        let backend = try #require(try await connection.query("SELECT pg_backend_pid()")[0][0].decode(Int.self))
        let killer = try await TestDatabase.connect()
        defer { killer.close() }
        #expect(try await killer.query("SELECT pg_terminate_backend($1)", [.int(Int64(backend))])[0][0].decode(Bool.self) == true)
        let error = try await #require(throws: PostgresError.self) { try await connection.query("SELECT 1") }
        #expect(error.kind == .connectionLost, "\(error)")
    }

    @Test func cancellingATaskCancelsItsStatement() async throws {
        let connection = try await TestDatabase.connect()
        defer { connection.close() }
        let sleeper = Task { try await connection.execute("SELECT pg_sleep(30)") }
        // Wait until the statement is running on the server, then cancel the task.
        for _ in 0..<200 {
            let running = try await TestDatabase.activeSleeps()
            if running > 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        sleeper.cancel()
        let error = try await #require(throws: PostgresError.self) { try await sleeper.value }
        #expect(error.sqlState == "57014")
        #expect(try await connection.query("SELECT 2 AS two").first?["two"]?.decode(Int.self) == 2)
    }
}

extension TestDatabase {
    /// Statements of this test user currently sleeping, seen from a separate connection.
    static func activeSleeps() async throws -> Int {
        let observer = try await connect()
        defer { observer.close() }
        let rows = try await observer.query(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active' AND pid <> pg_backend_pid()")
        return try rows[0][0].decode(Int.self) ?? 0
    }
}

@Suite("Connecting: credentials, reachability, libpq environment", .serialized)
struct PostgresConnectingTests {
    @Test func wrongPasswordIsAnAuthenticationFailureWithoutThePassword() async throws {
        let host = try TestDatabase.variable("SYNC_TEST_PG_HOST")
        let port = try TestDatabase.variable("SYNC_TEST_PG_PORT")
        let user = try TestDatabase.variable("SYNC_TEST_PG_USER")
        let database = try TestDatabase.variable("SYNC_TEST_PG_DATABASE")
        let password = "Zq7-distinctive-Secret-9x"
        for conninfo in ["postgresql://\(user):\(password)@\(host):\(port)/\(database)",
                         "host=\(host) port=\(port) user=\(user) dbname=\(database) password=\(password)"] {
            let error = try await #require(throws: PostgresError.self) { try await PostgresConnection.connect(conninfo) }
            #expect(error.kind == .authenticationFailed)
            #expect(error.message.contains("password authentication failed"))
            #expect(error.server == "\(host):\(port)/\(database)")
            for text in [error.description, error.message, "\(error)", String(reflecting: error)] {
                #expect(!text.contains(password))
                #expect(!text.contains("distinctive"))
            }
        }
    }

    @Test func unreachablePortIsAConnectionFailureNamingHostAndPort() async throws {
        let host = try TestDatabase.variable("SYNC_TEST_PG_HOST")
        let user = try TestDatabase.variable("SYNC_TEST_PG_USER")
        let error = try await #require(throws: PostgresError.self) {
            try await PostgresConnection.connect("postgresql://\(user):secret-pw-4711@\(host):1/nowhere?connect_timeout=5")
        }
        #expect(error.kind == .connectionFailed)
        #expect(error.server == "\(host):1/nowhere")
        #expect(error.description.contains("\(host):1"))
        #expect(!error.description.contains("secret-pw-4711"))
    }

    @Test func nilConninfoUsesLibpqEnvironment() async throws {
        let names = ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGAPPNAME"]
        let values = [try TestDatabase.variable("SYNC_TEST_PG_HOST"), try TestDatabase.variable("SYNC_TEST_PG_PORT"),
                      try TestDatabase.variable("SYNC_TEST_PG_USER"), try TestDatabase.variable("SYNC_TEST_PG_PASSWORD"),
                      try TestDatabase.variable("SYNC_TEST_PG_DATABASE"), "from-pgappname"]
        let saved = names.map { getenv($0).map { String(cString: $0) } }
        for (name, value) in zip(names, values) { setenv(name, value, 1) }
        defer {
            for (name, value) in zip(names, saved) {
                if let value { setenv(name, value, 1) } else { unsetenv(name) }
            }
        }
        for conninfo in [nil, ""] as [String?] {
            let connection = try await PostgresConnection.connect(conninfo)
            defer { connection.close() }
            let row = try #require(try await connection.query("SELECT current_user AS u, current_database() AS d, current_setting('application_name') AS app").first)
            #expect(row["u"]?.text == values[2])
            #expect(row["d"]?.text == values[4])
            // PGAPPNAME wins over the fallback application name, as for psql.
            #expect(row["app"]?.text == "from-pgappname")
            #expect(connection.serverDescription == "\(values[0]):\(values[1])/\(values[4])")
        }
        // A wrong PGPASSWORD is scrubbed from errors too.
        setenv("PGPASSWORD", "env-Secret-Pw-31337", 1)
        let error = try await #require(throws: PostgresError.self) { try await PostgresConnection.connect(nil) }
        #expect(error.kind == .authenticationFailed)
        #expect(!error.description.contains("env-Secret-Pw-31337"))
    }
}

@Suite struct ConninfoParseProblemTests {
    @Test(arguments: ["postgresql://u:s3cr%zzet@h/db", "host=h password='s3cret", "host=h password=s3cret port", "postgresql://u:s3cret@h/db?nosuch=1", "password=s3cret x"])
    func anUnparseableStringIsNamedWithoutItsSecret(conninfo: String) throws {
        let problem = try #require(PostgresConnection.parseProblem(in: conninfo))
        #expect(!problem.contains("s3c") && !problem.contains("cret"), "\(problem)")
    }

    @Test func aParseableStringHasNoProblem() {
        #expect(PostgresConnection.parseProblem(in: "postgresql://u:p@h/db?sslmode=require") == nil)
        #expect(PostgresConnection.parseProblem(in: "host=h password='a b'") == nil)
    }
}
