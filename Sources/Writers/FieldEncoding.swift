import Postgres
import Timestamps

/// How one PostgreSQL column becomes hash-field text (SPEC §3), chosen once per result column.
package enum FieldEncoding: Sendable, Hashable {
    /// Text, integers, uuids, inet, JSON: PostgreSQL's own text is already the encoding.
    case verbatim
    case boolean
    case float
    case timestamp

    /// The encoding for a column of this type OID.
    package init(typeOID: UInt32) {
        switch typeOID {
        case 16: self = .boolean
        case 700, 701, 1700: self = .float  // float4, float8, numeric
        case 1114, 1184: self = .timestamp  // timestamp, timestamptz
        default: self = .verbatim
        }
    }

    /// The field text; NULL is the empty string, so every write sets every field.
    package func encode(_ cell: PostgresCell) throws -> String {
        guard let text = cell.text else { return "" }
        switch self {
        case .verbatim:
            return text
        case .boolean:
            guard let value = try cell.decode(Bool.self) else { return "" }
            return value ? "true" : "false"
        case .float:
            guard let value = try cell.decode(Double.self) else { return "" }
            // A numeric beyond a double's range keeps PostgreSQL's exact decimal, not "Infinity".
            if value.isInfinite, !text.hasSuffix("Infinity") { return text }
            return FieldEncoding.shortest(value)
        case .timestamp:
            // PostgreSQL's whole range, ±infinity and years past 9999 included: none traps.
            guard let value = Timestamp.cacheText(postgresText: text) else {
                throw PostgresError(kind: .decoding, message: "column \"\(cell.columnName)\" of row \(cell.rowIndex) holds \"\(text.prefix(80))\", which is not a PostgreSQL timestamp")
            }
            return value
        }
    }

    /// The shortest decimal that round-trips, in the spelling PostgreSQL and Go use
    /// (`5`, not `5.0`; `1e-07`; `NaN`, `Infinity`).
    package static func shortest(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        let text = value.description
        if text.hasSuffix(".0") { return String(text.dropLast(2)) }
        return text
    }
}
