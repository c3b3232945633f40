import Timestamps

/// Column names and types of one result, shared by all its rows.
final class PostgresColumns: Sendable {
    let names: [String]
    let typeOIDs: [UInt32]
    private let indexByName: [String: Int]

    init(names: [String], typeOIDs: [UInt32]) {
        self.names = names
        self.typeOIDs = typeOIDs
        // The first column of a name wins, as in psql's `\gset` and most drivers.
        self.indexByName = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }

    func index(of name: String) -> Int? { indexByName[name] }
}

/// One row of a query result, values in PostgreSQL's text format.
package struct PostgresRow: Sendable {
    let columns: PostgresColumns
    let values: [String?]
    /// Position of the row in its result, for error messages.
    package let rowIndex: Int

    init(columns: PostgresColumns, values: [String?], rowIndex: Int) {
        self.columns = columns
        self.values = values
        self.rowIndex = rowIndex
    }

    package var columnNames: [String] { columns.names }

    package var count: Int { values.count }

    package subscript(_ index: Int) -> PostgresCell {
        PostgresCell(text: values[index], typeOID: columns.typeOIDs[index], columnName: columns.names[index], rowIndex: rowIndex)
    }

    /// The raw text of column `index` (nil for NULL), without building a cell.
    package func text(_ index: Int) -> String? { values[index] }

    package subscript(_ name: String) -> PostgresCell? {
        columns.index(of: name).map { self[$0] }
    }
}

/// One value of a row: its text as libpq gave it, and typed decoders.
package struct PostgresCell: Sendable {
    /// The raw text form (nil for NULL).
    package var text: String?
    /// The column's type OID (PQftype), e.g. 1184 for timestamptz.
    package var typeOID: UInt32
    package var columnName: String
    package var rowIndex: Int

    package var isNull: Bool { text == nil }

    package func decode(_ type: String.Type) throws -> String? { text }

    /// int2, int4, int8 (and any text holding a decimal integer).
    package func decode(_ type: Int.Type) throws -> Int? {
        try decode("an integer") { Int($0) }
    }

    /// float4, float8, numeric (via its decimal text; "NaN" and "Infinity" included).
    package func decode(_ type: Double.Type) throws -> Double? {
        try decode("a floating-point number") { Double($0) }
    }

    /// bool ('t'/'f').
    package func decode(_ type: Bool.Type) throws -> Bool? {
        try decode("a boolean") { text in
            switch text {
            case "t", "true": return true
            case "f", "false": return false
            default: return nil
            }
        }
    }

    /// timestamptz, and timestamp without time zone taken as UTC; ±infinity is an error
    /// because no finite watermark or score can stand for it.
    package func decode(_ type: Timestamp.Type) throws -> Timestamp? {
        try decode("a finite timestamp") { Timestamp(postgresText: $0) }
    }

    private func decode<T>(_ expected: String, _ parse: (String) -> T?) throws -> T? {
        guard let text else { return nil }
        guard let value = parse(text) else {
            throw PostgresError(
                kind: .decoding,
                message: "column \"\(columnName)\" (type OID \(typeOID)) of row \(rowIndex) holds \"\(text.prefix(80))\", which is not \(expected)")
        }
        return value
    }
}
