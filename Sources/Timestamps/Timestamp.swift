/// An instant as microseconds since the Unix epoch, UTC — exact, no Double rounding. The
/// program's one time type: command-line arguments, PostgreSQL values, watermarks and scores.
package struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    package var microsecondsSinceEpoch: Int64

    package init(microsecondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = microsecondsSinceEpoch
    }

    /// Parses RFC 3339 ("2026-11-27T16:00:00.123456Z", "...+02:00", any number of fractional
    /// digits — beyond six they are truncated) or a plain date ("2026-11-01", midnight UTC).
    /// A date-time without an offset is rejected: it would silently mean a local time.
    package init?(rfc3339 text: String) {
        guard let value = TimestampText.parse(text, style: .rfc3339) else { return nil }
        self = value
    }

    /// Parses PostgreSQL's ISO output ("2026-11-27 16:00:00.123456+00", "... BC"); without an
    /// offset (a `timestamp without time zone` column) the value is taken as UTC.
    package init?(postgresText text: String) {
        guard let value = TimestampText.parse(text, style: .postgres) else { return nil }
        self = value
    }

    package static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.microsecondsSinceEpoch < rhs.microsecondsSinceEpoch
    }

    /// Always UTC with 'Z' and exactly six fractional digits, so that the text sorts like the
    /// value (for years 0 to 9999; others have more year digits, or a minus sign).
    package var rfc3339: String {
        let (seconds, micros) = floorDivision(microsecondsSinceEpoch, 1_000_000)
        return TimestampText.rfc3339(secondsSinceEpoch: seconds, microsecond: micros)
    }

    /// PostgreSQL's text of a `timestamp`/`timestamptz` value as the cache stores it: RFC 3339
    /// UTC with six fractional digits (years beyond 9999 with more digits, BC years as
    /// astronomical years below 1), and `infinity`/`-infinity` as PostgreSQL prints them. Every
    /// value PostgreSQL can hold has one, even those beyond what a `Timestamp` holds; nil
    /// only for text PostgreSQL does not produce.
    package static func cacheText(postgresText text: String) -> String? {
        if text == "infinity" || text == "-infinity" { return text }
        guard let parts = TimestampText.parseParts(text, style: .postgres) else { return nil }
        return TimestampText.rfc3339(secondsSinceEpoch: parts.seconds, microsecond: parts.micros)
    }

    /// The earliest and latest instants the type holds (about 292,000 years either side of
    /// 1970; PostgreSQL's own range ends at 4714 BC and 294276 AD).
    package static let earliest = Timestamp(microsecondsSinceEpoch: .min)
    package static let latest = Timestamp(microsecondsSinceEpoch: .max)

    /// Unix seconds floored to the millisecond, shortest decimal form ("1795881600.123",
    /// "1795881600.12", "1795881600"): the sorted-set score, so `Double(text)` is the nearest
    /// double to the millisecond value and scores never claim a precision they lack.
    package var unixSecondsMillisTruncated: String {
        let milliseconds = floorDivision(microsecondsSinceEpoch, 1000).quotient
        let magnitude = milliseconds.magnitude
        return String(unsafeUninitializedCapacity: 24) { buffer in
            var text = ASCIIWriter(buffer)
            if milliseconds < 0 { text.put("-") }
            text.put(magnitude / 1000, width: 1)
            var fraction = magnitude % 1000
            if fraction != 0 {
                var digits = 3
                while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
                text.put(".")
                text.put(fraction, width: digits)
            }
            return text.count
        }
    }

    package var description: String { rfc3339 }

    /// This instant moved by a duration, to the microsecond; saturating at `earliest` and
    /// `latest`, so that no watermark or flag value, however far out, can trap.
    package func moved(by duration: Duration) -> Timestamp {
        let (seconds, attoseconds) = duration.components
        let micros = saturatingSum(saturatingProduct(seconds, 1_000_000), attoseconds / 1_000_000_000_000)
        return Timestamp(microsecondsSinceEpoch: saturatingSum(microsecondsSinceEpoch, micros))
    }

    /// Rounded up to a whole millisecond, the precision of the index scores (saturating).
    package var ceilingMillisecond: Timestamp {
        let (quotient, remainder) = floorDivision(microsecondsSinceEpoch, 1000)
        return remainder == 0 ? self : Timestamp(microsecondsSinceEpoch: saturatingProduct(quotient + 1, 1000))
    }

    /// Midnight UTC of this instant's day.
    package var startOfDay: Timestamp {
        // Saturating: the earliest instants' day starts before what the type holds.
        Timestamp(microsecondsSinceEpoch: saturatingSum(microsecondsSinceEpoch, -floorDivision(microsecondsSinceEpoch, 86_400_000_000).remainder))
    }

    /// The whole seconds since the epoch, floored.
    package var unixSeconds: Int64 { floorDivision(microsecondsSinceEpoch, 1_000_000).quotient }

    /// The microseconds from `other` to this instant, as a duration (saturating).
    package func duration(since other: Timestamp) -> Duration {
        let (difference, overflow) = microsecondsSinceEpoch.subtractingReportingOverflow(other.microsecondsSinceEpoch)
        return .microseconds(overflow ? (other > self ? Int64.min : Int64.max) : difference)
    }
}

/// `a + b`, or the nearest bound of Int64 where it does not fit.
package func saturatingSum(_ a: Int64, _ b: Int64) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? (b > 0 ? .max : .min) : sum
}

/// `a * b`, or the nearest bound of Int64 where it does not fit.
package func saturatingProduct(_ a: Int64, _ b: Int64) -> Int64 {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? ((a < 0) == (b < 0) ? .max : .min) : product
}

/// Floor division: negative timestamps round toward the past, never toward 1970.
package func floorDivision(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int64) {
    var quotient = value / divisor
    var remainder = value % divisor
    if remainder < 0 { quotient -= 1; remainder += divisor }
    return (quotient, remainder)
}

/// Decimal digits and ASCII characters into a buffer big enough for them (the formatters
/// above size theirs for the longest text they write).
private struct ASCIIWriter {
    let buffer: UnsafeMutableBufferPointer<UInt8>
    private(set) var count = 0

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

    mutating func put(_ character: Unicode.Scalar) {
        buffer[count] = UInt8(ascii: character)
        count += 1
    }

    /// `value` in decimal, left-padded with zeros to at least `width` digits.
    mutating func put(_ value: UInt64, width: Int) {
        var digits = 1
        var rest = value / 10
        while rest > 0 { digits += 1; rest /= 10 }
        let length = max(digits, width)
        var remaining = value
        for position in stride(from: count + length - 1, through: count, by: -1) {
            buffer[position] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
        }
        count += length
    }
}

/// Proleptic Gregorian calendar arithmetic (Howard Hinnant's days_from_civil / civil_from_days),
/// so that dates before 1970 and far from it need no Foundation calendar.
enum CivilDate {
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func fromDays(_ daysSinceEpoch: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func daysInMonth(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2:
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
            return leap ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

/// One parser for both spellings: RFC 3339 from operators, ISO text from PostgreSQL.
enum TimestampText {
    enum Style { case rfc3339, postgres }

    /// The instant, or nil when the text is not one or lies outside what a `Timestamp` holds.
    static func parse(_ text: String, style: Style) -> Timestamp? {
        guard let parts = parseParts(text, style: style) else { return nil }
        let (whole, overflow) = parts.seconds.multipliedReportingOverflow(by: 1_000_000)
        let (micros, overflowAgain) = whole.addingReportingOverflow(parts.micros)
        return overflow || overflowAgain ? nil : Timestamp(microsecondsSinceEpoch: micros)
    }

    /// Whole seconds since the epoch and the microsecond within the second: with at most six
    /// year digits the seconds always fit, whatever the instant type can hold.
    static func parseParts(_ text: String, style: Style) -> (seconds: Int64, micros: Int64)? {
        var text = text
        // Scans the string's own UTF-8 bytes: no copy, as this runs for every copied row.
        return text.withUTF8 { parse(bytes: $0, style: style) }
    }

    /// RFC 3339 UTC, 'Z', six fractional digits; at least four year digits, a minus sign
    /// before years below 0 (written byte by byte: this runs once per copied row).
    static func rfc3339(secondsSinceEpoch: Int64, microsecond: Int64) -> String {
        let (days, secondOfDay) = floorDivision(secondsSinceEpoch, 86_400)
        let (year, month, day) = CivilDate.fromDays(days)
        return String(unsafeUninitializedCapacity: 40) { buffer in
            var text = ASCIIWriter(buffer)
            if year < 0 { text.put("-") }
            text.put(year.magnitude, width: 4)
            text.put("-"); text.put(UInt64(month), width: 2)
            text.put("-"); text.put(UInt64(day), width: 2)
            text.put("T"); text.put(UInt64(secondOfDay / 3600), width: 2)
            text.put(":"); text.put(UInt64(secondOfDay / 60 % 60), width: 2)
            text.put(":"); text.put(UInt64(secondOfDay % 60), width: 2)
            text.put("."); text.put(UInt64(microsecond), width: 6)
            text.put("Z")
            return text.count
        }
    }

    private static func parse(bytes: UnsafeBufferPointer<UInt8>, style: Style) -> (seconds: Int64, micros: Int64)? {
        var scanner = Scanner(bytes)
        // Years before 0 as this program writes them (astronomical, "-0044-03-15T...Z").
        let negativeYear = style == .rfc3339 && scanner.take("-")
        guard let unsignedYear = scanner.number(minDigits: 4, maxDigits: 6), scanner.take("-"),
              let month = scanner.number(minDigits: 2, maxDigits: 2), scanner.take("-"),
              let day = scanner.number(minDigits: 2, maxDigits: 2),
              case let year = negativeYear ? -unsignedYear : unsignedYear,
              (1...12).contains(month), day >= 1, day <= CivilDate.daysInMonth(year: year, month: month)
        else { return nil }
        var secondOfDay: Int64 = 0
        var micros: Int64 = 0
        var offsetSeconds: Int64 = 0
        var hasOffset = false
        if scanner.atEnd {
            // A plain date: midnight UTC (operators' `--since 2026-11-01`).
            guard style == .rfc3339 else { return nil }
            hasOffset = true
        } else {
            guard scanner.take("T") || scanner.take("t") || scanner.take(" "),
                  let hour = scanner.number(minDigits: 2, maxDigits: 2), scanner.take(":"),
                  let minute = scanner.number(minDigits: 2, maxDigits: 2), scanner.take(":"),
                  let second = scanner.number(minDigits: 2, maxDigits: 2),
                  hour < 24, minute < 60, second < 60
            else { return nil }
            secondOfDay = hour * 3600 + minute * 60 + second
            if scanner.take(".") {
                var digits = 0
                while let digit = scanner.digit() {
                    // Digits beyond microseconds are truncated: the value never moves forward in time.
                    if digits < 6 { micros = micros * 10 + digit }
                    digits += 1
                }
                guard digits > 0 else { return nil }
                for _ in digits..<max(digits, 6) { micros *= 10 }
            }
            if scanner.take("Z") || scanner.take("z") {
                hasOffset = true
            } else if let sign: Int64 = scanner.take("+") ? 1 : (scanner.take("-") ? -1 : nil) {
                guard let hours = scanner.number(minDigits: 2, maxDigits: 2), hours < 24 else { return nil }
                var minutes: Int64 = 0
                var seconds: Int64 = 0
                if scanner.take(":") || scanner.peekDigit {
                    guard let m = scanner.number(minDigits: 2, maxDigits: 2), m < 60 else { return nil }
                    minutes = m
                    if scanner.take(":") {
                        guard let s = scanner.number(minDigits: 2, maxDigits: 2), s < 60 else { return nil }
                        seconds = s
                    }
                }
                offsetSeconds = sign * (hours * 3600 + minutes * 60 + seconds)
                hasOffset = true
            }
        }
        var astronomicalYear = year
        if style == .postgres, scanner.take(literal: " BC") {
            astronomicalYear = 1 - year  // PostgreSQL's 1 BC is year 0.
        }
        guard scanner.atEnd, hasOffset || style == .postgres else { return nil }
        let days = CivilDate.days(year: astronomicalYear, month: month, day: day)
        return (days * 86_400 + secondOfDay - offsetSeconds, micros)
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var atEnd: Bool { position == bytes.count }

        var peekDigit: Bool { position < bytes.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) }

        mutating func take(_ character: Unicode.Scalar) -> Bool {
            guard position < bytes.count, bytes[position] == UInt8(ascii: character) else { return false }
            position += 1
            return true
        }

        mutating func take(literal: StaticString) -> Bool {
            let matches = literal.withUTF8Buffer { literal in
                bytes.count - position >= literal.count
                    && literal.indices.allSatisfy { bytes[position + $0] == literal[$0] }
            }
            if matches { position += literal.utf8CodeUnitCount }
            return matches
        }

        mutating func digit() -> Int64? {
            guard peekDigit else { return nil }
            defer { position += 1 }
            return Int64(bytes[position] - UInt8(ascii: "0"))
        }

        mutating func number(minDigits: Int, maxDigits: Int) -> Int64? {
            let start = position
            var value: Int64 = 0
            while position - start < maxDigits, let digit = digit() { value = value * 10 + digit }
            return position - start >= minDigits ? value : nil
        }
    }
}
