import Testing
@testable import Postgres
import Timestamps

@Suite("Timestamp text forms")
struct TimestampTests {
    // 2026-11-27T16:00:00Z, computed independently: 20784 days after 1970-01-01 plus 16 h.
    let base: Int64 = (20_784 * 86_400 + 16 * 3600) * 1_000_000

    @Test func parsesUTCWithMicroseconds() throws {
        let timestamp = try #require(Timestamp(rfc3339: "2026-11-27T16:00:00.123456Z"))
        #expect(timestamp.microsecondsSinceEpoch == base + 123_456)
        #expect(timestamp.rfc3339 == "2026-11-27T16:00:00.123456Z")
    }

    @Test func roundTripsThroughRFC3339() throws {
        for micros: Int64 in [0, 1, -1, base, base + 999_999, -86_400_000_001, 253_402_300_799_999_999, -62_135_596_800_000_000] {
            let timestamp = Timestamp(microsecondsSinceEpoch: micros)
            #expect(Timestamp(rfc3339: timestamp.rfc3339) == timestamp, "\(timestamp.rfc3339)")
        }
        #expect(Timestamp(microsecondsSinceEpoch: 0).rfc3339 == "1970-01-01T00:00:00.000000Z")
        #expect(Timestamp(microsecondsSinceEpoch: -62_135_596_800_000_000).rfc3339 == "0001-01-01T00:00:00.000000Z")
    }

    @Test func appliesOffsets() {
        #expect(Timestamp(rfc3339: "2026-11-27T18:00:00+02:00")?.microsecondsSinceEpoch == base)
        #expect(Timestamp(rfc3339: "2026-11-27T10:30:00-05:30")?.microsecondsSinceEpoch == base)
        #expect(Timestamp(rfc3339: "2026-11-28T01:00:00.5+09:00")?.microsecondsSinceEpoch == base + 500_000)
        #expect(Timestamp(rfc3339: "2026-11-27t16:00:00z")?.microsecondsSinceEpoch == base)
    }

    @Test func acceptsFewerOrMoreFractionalDigits() {
        #expect(Timestamp(rfc3339: "2026-11-27T16:00:00Z")?.microsecondsSinceEpoch == base)
        #expect(Timestamp(rfc3339: "2026-11-27T16:00:00.1Z")?.microsecondsSinceEpoch == base + 100_000)
        #expect(Timestamp(rfc3339: "2026-11-27T16:00:00.123Z")?.microsecondsSinceEpoch == base + 123_000)
        // Nanoseconds are truncated, never rounded up.
        #expect(Timestamp(rfc3339: "2026-11-27T16:00:00.123456789Z")?.microsecondsSinceEpoch == base + 123_456)
    }

    @Test func plainDateIsMidnightUTC() {
        #expect(Timestamp(rfc3339: "2026-11-01")?.rfc3339 == "2026-11-01T00:00:00.000000Z")
        #expect(Timestamp(rfc3339: "1969-12-31")?.microsecondsSinceEpoch == -86_400_000_000)
    }

    @Test func datesBefore1970() {
        #expect(Timestamp(rfc3339: "1969-12-31T23:59:59.999999Z")?.microsecondsSinceEpoch == -1)
        #expect(Timestamp(rfc3339: "1900-03-01T00:00:00Z")?.rfc3339 == "1900-03-01T00:00:00.000000Z")
        #expect(Timestamp(rfc3339: "1600-02-29T12:00:00Z")?.rfc3339 == "1600-02-29T12:00:00.000000Z")
    }

    @Test func rejectsMalformedText() {
        for text in ["", "2026-11-27T16:00:00", "2026-13-01", "2026-02-29", "2026-11-27T24:00:00Z", "2026-11-27T16:00Z",
                     "2026-11-27T16:00:00.Z", "26-11-27", "2026-11-27T16:00:00Zjunk", "infinity", "2026-11-27 16:00:00+00 BC"] {
            #expect(Timestamp(rfc3339: text) == nil, "\(text)")
        }
    }

    @Test func parsesPostgresOutput() {
        #expect(Timestamp(postgresText: "2026-11-27 16:00:00.123456+00")?.microsecondsSinceEpoch == base + 123_456)
        #expect(Timestamp(postgresText: "2026-11-27 16:00:00")?.microsecondsSinceEpoch == base)
        #expect(Timestamp(postgresText: "2026-11-27 21:30:00+05:30")?.microsecondsSinceEpoch == base)
        #expect(Timestamp(postgresText: "0001-01-01 00:00:00+00 BC")?.rfc3339 == "0000-01-01T00:00:00.000000Z")
        #expect(Timestamp(postgresText: "infinity") == nil)
        #expect(Timestamp(postgresText: "-infinity") == nil)
    }

    @Test func scoreTextTruncatesToTheMillisecond() {
        let seconds: Int64 = 1_795_881_600
        func score(_ micros: Int64) -> String { Timestamp(microsecondsSinceEpoch: seconds * 1_000_000 + micros).unixSecondsMillisTruncated }
        #expect(score(123_999) == "1795881600.123")
        #expect(score(123_000) == "1795881600.123")
        #expect(score(120_000) == "1795881600.12")
        #expect(score(999) == "1795881600")
        #expect(score(0) == "1795881600")
        #expect(Double(score(123_999)) == 1_795_881_600.123)
        // Before 1970 the value is floored, toward the past.
        #expect(Timestamp(microsecondsSinceEpoch: -1).unixSecondsMillisTruncated == "-0.001")
        #expect(Timestamp(microsecondsSinceEpoch: -1_500_000).unixSecondsMillisTruncated == "-1.5")
        #expect(Timestamp(microsecondsSinceEpoch: -1_000_001).unixSecondsMillisTruncated == "-1.001")
    }

    @Test func ordersByInstant() {
        let earlier = Timestamp(rfc3339: "2026-11-27T18:00:00+03:00")!
        let later = Timestamp(rfc3339: "2026-11-27T16:00:00Z")!
        #expect(earlier < later)
    }
}
