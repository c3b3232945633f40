import Testing
@testable import Postgres
@testable import Timestamps

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

    /// The byte-writing formatters against plain reference spellings, over instants from
    /// about 30,000 BC to 33,000 AD (seeded, so a failure repeats) and the edges of a day.
    @Test func formattersMatchReferenceSpellings() {
        func padded(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        func reference(_ micros: Int64) -> (rfc3339: String, score: String) {
            var days = micros / 86_400_000_000, ofDay = micros % 86_400_000_000
            if ofDay < 0 { days -= 1; ofDay += 86_400_000_000 }
            let (year, month, day) = CivilDate.fromDays(days)
            let second = ofDay / 1_000_000
            let date = (year < 0 ? "-" + padded(-year, 4) : padded(year, 4)) + "-" + padded(month, 2) + "-" + padded(day, 2)
            let time = padded(second / 3600, 2) + ":" + padded(second / 60 % 60, 2) + ":" + padded(second % 60, 2) + "." + padded(ofDay % 1_000_000, 6)
            var millis = micros / 1000
            if micros % 1000 < 0 { millis -= 1 }
            var score = (millis < 0 ? "-" : "") + String(millis.magnitude / 1000)
            let fraction = millis.magnitude % 1000
            if fraction != 0 {
                score += "." + padded(Int64(fraction), 3)
                while score.hasSuffix("0") { score.removeLast() }
            }
            return (date + "T" + time + "Z", score)
        }
        var state: UInt64 = 0x5EED_1234
        var samples: [Int64] = [0, -1, 1, 999, -999, 1000, -1000, 86_399_999_999, -86_400_000_000, 253_402_300_800_000_000]
        for _ in 0..<20_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            samples.append(Int64(bitPattern: state) % 1_000_000_000_000_000_000)
        }
        for micros in samples {
            let timestamp = Timestamp(microsecondsSinceEpoch: micros)
            let expected = reference(micros)
            #expect(timestamp.rfc3339 == expected.rfc3339, "\(micros)")
            #expect(timestamp.unixSecondsMillisTruncated == expected.score, "\(micros)")
            // RFC 3339 has no years before 0000; PostgreSQL spells those "... BC" instead.
            if micros >= -62_167_219_200_000_000 {
                #expect(Timestamp(rfc3339: timestamp.rfc3339) == timestamp, "\(micros)")
            }
        }
    }

    @Test func ordersByInstant() {
        let earlier = Timestamp(rfc3339: "2026-11-27T18:00:00+03:00")!
        let later = Timestamp(rfc3339: "2026-11-27T16:00:00Z")!
        #expect(earlier < later)
    }
}

/// SPEC §11: every value PostgreSQL can hold is encoded, or refused without a trap.
@Suite("Timestamps across PostgreSQL's whole range")
struct TimestampRangeTests {
    @Test func nothingOutsideTheTypeTraps() {
        #expect(Timestamp(postgresText: "294276-12-31 23:59:59.999999+00") == nil)
        #expect(Timestamp(rfc3339: "999999-12-31T23:59:59Z") == nil)
        #expect(Timestamp(postgresText: "infinity") == nil)
        #expect(Timestamp.latest.moved(by: .seconds(86_400)) == Timestamp.latest)
        #expect(Timestamp.earliest.moved(by: .seconds(-86_400)) == Timestamp.earliest)
        #expect(Timestamp.latest.ceilingMillisecond == Timestamp.latest)
        #expect(Timestamp.latest.duration(since: Timestamp.earliest) == .microseconds(Int64.max))
        _ = Timestamp.earliest.startOfDay
        #expect(Timestamp(rfc3339: Timestamp.latest.rfc3339)?.microsecondsSinceEpoch == Int64.max - Int64.max % 1)
        #expect(Timestamp(rfc3339: "-0044-03-15T12:00:00.000000Z")?.rfc3339 == "-0044-03-15T12:00:00.000000Z")
    }

    /// A property test through the real server: random instants over PostgreSQL's whole
    /// range (4714 BC to 294276 AD) as PostgreSQL prints them; the cache text must name the
    /// instant PostgreSQL's own `extract(epoch ...)` gives.
    @Test func cacheTextNamesTheInstantPostgreSQLHolds() async throws {
        let connection = try await TestDatabase.connect()
        defer { connection.close() }
        var generator = SplitMix(seed: 0x5eed)
        // Days from 1970 of PostgreSQL's first and last day, and a few edges of our own type.
        var days: [Int64] = [-2_440_588, 106_741_941, 106_751_991, 106_752_000, 2_932_896, 0, -1, -719_528]
        var seconds: [Int64] = [0, 86_399, 0, 0, 43_200, 0, 86_399, 0]
        var micros: [Int64] = [0, 999_999, 0, 123_456, 1, 0, 999_999, 0]
        for _ in 0..<2000 {
            days.append(Int64(generator.next() % 109_192_529) - 2_440_588)
            seconds.append(Int64(generator.next() % 86_400))
            micros.append(Int64(generator.next() % 1_000_000))
        }
        func array(_ values: [Int64]) -> PostgresValue { .text("{" + values.map(String.init).joined(separator: ",") + "}") }
        let rows = try await connection.query("""
            select v::text, extract(epoch from v)::text from (
              select timestamptz '1970-01-01 00:00:00+00' + make_interval(days => d::int) + make_interval(secs => s + m / 1000000.0) as v
              from unnest($1::bigint[], $2::bigint[], $3::bigint[]) as t(d, s, m)
              where d between -2440588 and 106741941) as x
            """, [array(days), array(seconds), array(micros)])
        #expect(rows.count > 1900)
        for row in rows {
            let text = try #require(row.text(0)), epoch = try #require(row.text(1))
            let cache = try #require(Timestamp.cacheText(postgresText: text), "\(text)")
            let parts = try #require(TimestampText.parseParts(cache, style: .rfc3339), "\(cache)")
            #expect(Self.epochText(parts) == Self.normalised(epoch), "\(text) -> \(cache)")
            if let instant = Timestamp(postgresText: text) { #expect(instant.rfc3339 == cache) }
        }
        for infinite in ["infinity", "-infinity"] {
            let rows = try await connection.query("select '\(infinite)'::timestamptz::text")
            #expect(Timestamp.cacheText(postgresText: try #require(rows.first?.text(0))) == infinite)
        }
    }

    static func epochText(_ parts: (seconds: Int64, micros: Int64)) -> String {
        normalised(parts.seconds >= 0 || parts.micros == 0
            ? "\(parts.seconds).\(String(parts.micros).leftPadded(6))"
            : "-\(-(parts.seconds + 1)).\(String(1_000_000 - parts.micros).leftPadded(6))")
    }

    /// "12.500000" and "12.5" alike as "12.5"; "-0.5" stays, "-0" is "0".
    static func normalised(_ text: String) -> String {
        var text = text
        if text.contains(".") { while text.hasSuffix("0") { text.removeLast() } }
        if text.hasSuffix(".") { text.removeLast() }
        return text == "-0" ? "0" : text
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// A seeded generator, so a failing value reproduces.
private struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
