import Testing
@testable import Postgres
import Timestamps

@Suite("Column types of SPEC §2 and their compatible variants")
struct PostgresTypesTests {
    @Test func usageLogColumnsDecode() async throws {
        try await TestDatabase.withScratchSchema { connection, schema in
            try await connection.execute("""
                CREATE TABLE \(schema).usage_logs (
                    id uuid PRIMARY KEY, api_key_id uuid, asset text, price float8, price_numeric numeric, source text,
                    cached bool, latency_ms int, duration_ms int, ip_address text, ip_inet inet, "timestamp" timestamptz,
                    local_timestamp timestamp, filters jsonb, filters_json json, monthly_usage int, big bigint, small smallint, ratio real)
                """)
            try await connection.execute("""
                INSERT INTO \(schema).usage_logs VALUES
                ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 'مرحبا 日本語 🚀👩‍💻', 0.1, 123456789.123,
                 'src', true, 12, 34, '192.168.0.1', '192.168.0.1', '2026-11-27 16:00:00.123456+00', '2026-11-27 16:00:00.123456',
                 '{"b": [1, "é"], "a": null}', '{"b": [1, "é"],  "a": null}', 2147483647, 9223372036854775807, -32768, 1.5),
                ('c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                 NULL, NULL, NULL, NULL, NULL, NULL, NULL)
                """)
            let rows = try await connection.query("SELECT * FROM \(schema).usage_logs ORDER BY id")
            #expect(rows.count == 2)
            let full = rows[0]
            #expect(full["id"]?.text == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")  // uuid comes back lower-case
            #expect(try full["asset"]?.decode(String.self) == "مرحبا 日本語 🚀👩‍💻")
            #expect(try full["price"]?.decode(Double.self) == 0.1)
            #expect(try full["price_numeric"]?.decode(Double.self) == 123456789.123)
            #expect(full["price_numeric"]?.text == "123456789.123")
            #expect(try full["cached"]?.decode(Bool.self) == true)
            #expect(try full["latency_ms"]?.decode(Int.self) == 12)
            #expect(try full["monthly_usage"]?.decode(Int.self) == 2_147_483_647)
            #expect(try full["big"]?.decode(Int.self) == Int.max)
            #expect(try full["small"]?.decode(Int.self) == -32768)
            #expect(try full["ratio"]?.decode(Double.self) == 1.5)
            #expect(full["ip_address"]?.text == "192.168.0.1")
            // inet prints a host address without /32; a netmask appears only when it is not the default.
            #expect(full["ip_inet"]?.text == "192.168.0.1")
            let utc = Timestamp(rfc3339: "2026-11-27T16:00:00.123456Z")
            #expect(try full["timestamp"]?.decode(Timestamp.self) == utc)
            #expect(full["local_timestamp"]?.text == "2026-11-27 16:00:00.123456")
            #expect(try full["local_timestamp"]?.decode(Timestamp.self) == utc)
            // jsonb is normalised by the server; json keeps the text as inserted.
            #expect(full["filters"]?.text == #"{"a": null, "b": [1, "é"]}"#)
            #expect(full["filters_json"]?.text == #"{"b": [1, "é"],  "a": null}"#)

            let empty = rows[1]
            for index in 1..<empty.count {
                let cell = empty[index]
                #expect(cell.isNull, "\(cell.columnName)")
                #expect(try cell.decode(String.self) == nil)
                #expect(try cell.decode(Int.self) == nil)
                #expect(try cell.decode(Double.self) == nil)
                #expect(try cell.decode(Bool.self) == nil)
                #expect(try cell.decode(Timestamp.self) == nil)
            }
        }
    }

    @Test func inetWithNetmaskAndIPv6() async throws {
        let connection = try await TestDatabase.connect()
        defer { connection.close() }
        let row = try #require(try await connection.query(
            "SELECT '10.0.0.0/8'::inet AS net, '192.168.0.1/32'::inet AS host32, '::1'::inet AS v6, '2001:db8::1/64'::inet AS v6net").first)
        #expect(row["net"]?.text == "10.0.0.0/8")
        #expect(row["host32"]?.text == "192.168.0.1")
        #expect(row["v6"]?.text == "::1")
        #expect(row["v6net"]?.text == "2001:db8::1/64")
    }

    @Test func floatsRoundTripExactly() async throws {
        try await TestDatabase.withScratchSchema { connection, schema in
            try await connection.execute("CREATE TABLE \(schema).f (n int, v float8, r numeric)")
            let values: [Double] = [0.1, 1e-7, 123456789.123, 1.0 / 3.0, -0.0, .leastNonzeroMagnitude, 1.7976931348623157e308, 2.5e10, 100]
            for (index, value) in values.enumerated() {
                try await connection.execute("INSERT INTO \(schema).f VALUES ($1, $2, $2::float8::numeric)", [.int(Int64(index)), .double(value)])
            }
            let rows = try await connection.query("SELECT v, r FROM \(schema).f ORDER BY n")
            for (row, value) in zip(rows, values) {
                let decoded = try #require(try row["v"]?.decode(Double.self))
                #expect(decoded.bitPattern == value.bitPattern, "\(value) came back as \(row["v"]?.text ?? "NULL")")
            }
            // Shortest round-trip text (extra_float_digits = 3 in PostgreSQL 12+).
            #expect(rows[0]["v"]?.text == "0.1")
            #expect(rows[1]["v"]?.text == "1e-07")
            #expect(rows[2]["v"]?.text == "123456789.123")
            #expect(try rows[2]["r"]?.decode(Double.self) == 123456789.123)
        }
    }
}
