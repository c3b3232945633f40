import Postgres
import Timestamps

/// The slice of a log table one run reads (SPEC §4): from the watermark less the overlap,
/// never before the retention cutoff, up to the database clock less the settle delay.
package struct ReadWindow: Sendable, Hashable, CustomStringConvertible {
    /// Inclusive lower bound.
    package var from: Timestamp
    /// Exclusive upper bound.
    package var until: Timestamp

    package init(from: Timestamp, until: Timestamp) {
        self.from = from
        self.until = until
    }

    /// The window after `watermark` (nil: never copied), as SPEC §4 defines it.
    package init(watermark: Timestamp?, overlap: Duration, settle: Duration,
                databaseNow: Timestamp, cutoff: Timestamp) {
        let start = watermark.map { $0.moved(by: .zero - overlap) } ?? cutoff
        self.from = max(start, cutoff)
        self.until = databaseNow.moved(by: .zero - settle)
    }

    /// Nothing to read: the settle delay has not passed since the watermark.
    package var isEmpty: Bool { from >= until }

    package var description: String { "[\(from.rfc3339), \(until.rfc3339))" }
}

extension Timestamp {
    /// The retention cutoff: entries with a timestamp before it are expired.
    package static func retentionCutoff(now: Timestamp, days: Int) -> Timestamp {
        now.moved(by: .seconds(-Int64(days) * 86_400))
    }
}
