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

    /// Always UTC with 'Z' and exactly six fractional digits, so that the text sorts like the value.
    package var rfc3339: String {
        let (days, microsecondOfDay) = floorDivision(microsecondsSinceEpoch, 86_400_000_000)
        let (year, month, day) = CivilDate.fromDays(days)
        let seconds = microsecondOfDay / 1_000_000
        // Written byte by byte: this runs once per copied row (the copy's profile, issue 14).
        return String(unsafeUninitializedCapacity: 40) { buffer in
            var text = ASCIIWriter(buffer)
            if year < 0 { text.put("-") }
            text.put(year.magnitude, width: 4)
            text.put("-"); text.put(UInt64(month), width: 2)
            text.put("-"); text.put(UInt64(day), width: 2)
            text.put("T"); text.put(UInt64(seconds / 3600), width: 2)
            text.put(":"); text.put(UInt64(seconds / 60 % 60), width: 2)
            text.put(":"); text.put(UInt64(seconds % 60), width: 2)
            text.put("."); text.put(UInt64(microsecondOfDay % 1_000_000), width: 6)
            text.put("Z")
            return text.count
        }
    }

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

    /// This instant moved by a duration, to the microsecond.
    package func moved(by duration: Duration) -> Timestamp {
        let (seconds, attoseconds) = duration.components
        return Timestamp(microsecondsSinceEpoch: microsecondsSinceEpoch + seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
    }

    /// Rounded up to a whole millisecond, the precision of the index scores.
    package var ceilingMillisecond: Timestamp {
        Timestamp(microsecondsSinceEpoch: -floorDivision(-microsecondsSinceEpoch, 1000).quotient * 1000)
    }

    /// Midnight UTC of this instant's day.
    package var startOfDay: Timestamp {
        Timestamp(microsecondsSinceEpoch: floorDivision(microsecondsSinceEpoch, 86_400_000_000).quotient * 86_400_000_000)
    }

    /// The whole seconds since the epoch, floored.
    package var unixSeconds: Int64 { floorDivision(microsecondsSinceEpoch, 1_000_000).quotient }

    /// The microseconds from `other` to this instant, as a duration.
    package func duration(since other: Timestamp) -> Duration {
        .microseconds(microsecondsSinceEpoch - other.microsecondsSinceEpoch)
    }
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

    static func parse(_ text: String, style: Style) -> Timestamp? {
        var text = text
        // Scans the string's own UTF-8 bytes: no copy, as this runs for every copied row.
        return text.withUTF8 { parse(bytes: $0, style: style) }
    }

    private static func parse(bytes: UnsafeBufferPointer<UInt8>, style: Style) -> Timestamp? {
        var scanner = Scanner(bytes)
        guard let year = scanner.number(minDigits: 4, maxDigits: 6), scanner.take("-"),
              let month = scanner.number(minDigits: 2, maxDigits: 2), scanner.take("-"),
              let day = scanner.number(minDigits: 2, maxDigits: 2),
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
        let seconds = days * 86_400 + secondOfDay - offsetSeconds
        return Timestamp(microsecondsSinceEpoch: seconds * 1_000_000 + micros)
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
