import Testing
@testable import Postgres
@testable import Writers

@Suite struct FieldEncodingTests {
    func cell(_ text: String?, _ oid: UInt32) -> PostgresCell {
        PostgresCell(text: text, typeOID: oid, columnName: "c", rowIndex: 0)
    }

    @Test func nullIsEmptyForEveryType() throws {
        for oid: UInt32 in [16, 20, 23, 25, 114, 701, 869, 1114, 1184, 1700, 2950, 3802] {
            #expect(try FieldEncoding(typeOID: oid).encode(cell(nil, oid)) == "")
        }
    }

    @Test func booleans() throws {
        #expect(try FieldEncoding(typeOID: 16).encode(cell("t", 16)) == "true")
        #expect(try FieldEncoding(typeOID: 16).encode(cell("f", 16)) == "false")
    }

    @Test(arguments: [
        ("0.1", "0.1"), ("5", "5"), ("-2.5", "-2.5"), ("1e-07", "1e-07"), ("123456789.123", "123456789.123"),
        ("62824.79646000", "62824.79646"), ("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
        ("0.30000000000000004", "0.30000000000000004"), ("1e+16", "1e+16"),
    ])
    func floatsAreShortestRoundTrip(source: String, expected: String) throws {
        let encoded = try FieldEncoding(typeOID: 1700).encode(cell(source, 1700))
        #expect(encoded == expected)
        if let value = Double(source), value.isFinite { #expect(Double(encoded) == value) }
    }

    @Test func timestampsAreRFC3339UTCWithMicroseconds() throws {
        #expect(try FieldEncoding(typeOID: 1184).encode(cell("2026-11-27 16:00:00.123456+00", 1184)) == "2026-11-27T16:00:00.123456Z")
        #expect(try FieldEncoding(typeOID: 1184).encode(cell("2026-11-27 18:00:00.5+02", 1184)) == "2026-11-27T16:00:00.500000Z")
        #expect(try FieldEncoding(typeOID: 1114).encode(cell("2026-11-27 16:00:00", 1114)) == "2026-11-27T16:00:00.000000Z")
    }

    /// Every value PostgreSQL can hold is written as PostgreSQL prints it, never a trap.
    @Test(arguments: [
        ("infinity", "infinity"), ("-infinity", "-infinity"),
        ("294276-12-31 23:59:59.999999+00", "294276-12-31T23:59:59.999999Z"),
        ("10000-01-01 00:00:00+00", "10000-01-01T00:00:00.000000Z"),
        ("4714-11-24 00:00:00+00 BC", "-4713-11-24T00:00:00.000000Z"),
        ("0001-01-01 00:00:00+00 BC", "0000-01-01T00:00:00.000000Z"),
    ])
    func timestampsOfTheWholeRange(source: String, expected: String) throws {
        #expect(try FieldEncoding(typeOID: 1184).encode(cell(source, 1184)) == expected)
        #expect(try FieldEncoding(typeOID: 1114).encode(cell(source.replacingOccurrences(of: "+00", with: ""), 1114)) == expected)
    }

    @Test func textThatIsNoTimestampIsAnErrorNamingTheColumn() {
        let error = #expect(throws: PostgresError.self) {
            try FieldEncoding(typeOID: 1184).encode(PostgresCell(text: "soon", typeOID: 1184, columnName: "last_used", rowIndex: 3))
        }
        #expect(error?.description.contains("last_used") == true)
    }

    @Test func aNumericBeyondADoubleKeepsItsDecimal() throws {
        let huge = "1" + String(repeating: "0", count: 400)
        #expect(try FieldEncoding(typeOID: 1700).encode(cell(huge, 1700)) == huge)
        #expect(try FieldEncoding(typeOID: 1700).encode(cell("Infinity", 1700)) == "Infinity")
    }

    @Test func verbatimTypesKeepPostgresText() throws {
        #expect(try FieldEncoding(typeOID: 2950).encode(cell("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 2950)) == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        #expect(try FieldEncoding(typeOID: 3802).encode(cell("{\"a\": 1}", 3802)) == "{\"a\": 1}")
        #expect(try FieldEncoding(typeOID: 23).encode(cell("-42", 23)) == "-42")
        #expect(try FieldEncoding(typeOID: 25).encode(cell("東京 🚀", 25)) == "東京 🚀")
    }
}
