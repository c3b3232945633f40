import Postgres

/// The slice of a log table one run reads (SPEC §4): from the watermark less the overlap,
/// never before the retention cutoff, up to the database clock less the settle delay.
public struct ReadWindow: Sendable, Hashable, CustomStringConvertible {
    /// Inclusive lower bound.
    public var from: PostgresTimestamp
    /// Exclusive upper bound.
    public var until: PostgresTimestamp

    public init(from: PostgresTimestamp, until: PostgresTimestamp) {
        self.from = from
        self.until = until
    }

    /// The window after `watermark` (nil: never copied), as SPEC §4 defines it.
    public init(watermark: PostgresTimestamp?, overlap: Duration, settle: Duration,
                databaseNow: PostgresTimestamp, cutoff: PostgresTimestamp) {
        let start = watermark.map { $0.moved(by: .zero - overlap) } ?? cutoff
        self.from = max(start, cutoff)
        self.until = databaseNow.moved(by: .zero - settle)
    }

    /// Nothing to read: the settle delay has not passed since the watermark.
    public var isEmpty: Bool { from >= until }

    public var description: String { "[\(from.rfc3339), \(until.rfc3339))" }
}

extension PostgresTimestamp {
    /// This instant moved by a duration, to the microsecond.
    public func moved(by duration: Duration) -> PostgresTimestamp {
        let (seconds, attoseconds) = duration.components
        return PostgresTimestamp(
            microsecondsSinceEpoch: microsecondsSinceEpoch + seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
    }

    /// The retention cutoff: entries with a timestamp before it are expired.
    public static func retentionCutoff(now: PostgresTimestamp, days: Int) -> PostgresTimestamp {
        now.moved(by: .seconds(-Int64(days) * 86_400))
    }
}
