import Timestamps

/// A query parameter; every case is sent to PostgreSQL in text format, `nil` is SQL NULL.
package enum PostgresValue: Sendable, Hashable {
    case text(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case timestamp(Timestamp)
    case uuid(String)

    /// The text PostgreSQL parses for this value.
    package var postgresText: String {
        switch self {
        case .text(let text), .uuid(let text): return text
        case .int(let value): return String(value)
        case .double(let value):
            // Swift's description is the shortest round-trip form ("0.1", "1e-07"), which
            // PostgreSQL's float8 input reads back exactly; only the specials are spelled differently.
            if value.isNaN { return "NaN" }
            if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
            return value.description
        case .bool(let value): return value ? "true" : "false"
        case .timestamp(let value): return value.rfc3339
        }
    }
}
