import Postgres
import RESP
import Timestamps

/// Turns a page of log rows into one pipeline (SPEC §3, §4): HSET + EXPIREAT per entry, then
/// one variadic ZADD per index key of the page, then the index keys into their registry.
package struct LogPageEncoder: Sendable {
    package let table: LogTable
    package let templates: KeyTemplates
    /// How long an entry lives after its timestamp.
    package let retentionSeconds: Int64

    private let fieldNames: [String]
    private let timestampColumn: Int
    private let idColumn: Int
    private let entryTemplate: KeyTemplate
    private let indexTemplates: [KeyTemplate]
    private let columnIndex: [String: Int]
    private let registryKey: String
    private let prefixBytes: [UInt8]

    package init(table: LogTable, templates: KeyTemplates, retentionDays: Int) {
        self.table = table
        self.templates = templates
        self.retentionSeconds = Int64(retentionDays) * 86_400
        fieldNames = table.source.columns
        columnIndex = Dictionary(uniqueKeysWithValues: fieldNames.enumerated().map { ($1, $0) })
        timestampColumn = columnIndex["timestamp"]!
        idColumn = columnIndex["id"]!
        entryTemplate = templates[table.entry]
        indexTemplates = table.indexes.map { templates[$0] }
        registryKey = templates.indexRegistryKey(table: table.name)
        prefixBytes = Array(templates.prefix.utf8)
    }

    /// What a page held and where it ended.
    package struct PageOutcome: Sendable {
        package var rows = 0
        package var written = 0
        /// Older than the retention cutoff: read, not written.
        package var skippedTooOld = 0
        /// Ids of rows whose entry key names a NULL column (only with a custom template).
        package var skippedNullKey: [String] = []
        /// Rows that cannot be written: a timestamp no score can stand for (±infinity, beyond
        /// the instant type), or a value that cannot be encoded; by id, with the reason.
        package var skippedUnencodable: [(id: String, reason: String)] = []
        /// The last row's timestamp: the watermark once the page is acknowledged.
        package var lastTimestamp: Timestamp?
    }

    /// Appends the page's commands to `batch`. Rows are expected in the table's column order
    /// (`table.source.columns`), as the page reader selects them.
    package func encode(_ rows: [PostgresRow], cutoff: Timestamp,
                       into batch: inout CommandBatch) throws -> PageOutcome {
        var outcome = PageOutcome()
        guard let first = rows.first else { return outcome }
        try checkColumns(first)
        let encodings = (0..<first.count).map { FieldEncoding(typeOID: first[$0].typeOID) }
        var indexMembers = IndexMembers()
        var values = [String](repeating: "", count: fieldNames.count)
        var isNull = [Bool](repeating: false, count: fieldNames.count)

        for row in rows {
            outcome.rows += 1
            // The page reader never returns a NULL timestamp; guard anyway, it is never written.
            guard let timestampText = row.text(timestampColumn) else { continue }
            guard let timestamp = Timestamp(postgresText: timestampText) else {
                outcome.skippedUnencodable.append((row.text(idColumn) ?? "?", "its timestamp \(timestampText.prefix(40)) cannot be a score"))
                continue
            }
            outcome.lastTimestamp = timestamp
            guard timestamp >= cutoff else {
                outcome.skippedTooOld += 1
                continue
            }
            do {
                for column in 0..<fieldNames.count {
                    let cell = row[column]
                    isNull[column] = cell.isNull
                    // The timestamp is parsed once per row: it is the copy's costliest field.
                    values[column] = column == timestampColumn && encodings[column] == .timestamp
                        ? timestamp.rfc3339 : try encodings[column].encode(cell)
                }
            } catch {
                outcome.skippedUnencodable.append((row.text(idColumn) ?? "?", "\(error)"))
                continue
            }
            let lookup: (String) -> [UInt8]? = { name in
                guard let column = columnIndex[name], !isNull[column] else { return nil }
                return Array(values[column].utf8)
            }
            guard let entryKey = entryTemplate.render(prefix: prefixBytes, lookup) else {
                // The entry template names a column that is NULL here: report the row, copy the rest.
                outcome.skippedNullKey.append(values[idColumn])
                continue
            }

            batch.appendCommand(argumentCount: 2 + 2 * fieldNames.count)
            batch.appendArgument("HSET")
            batch.appendArgument(entryKey)
            for column in 0..<fieldNames.count {
                batch.appendArgument(fieldNames[column])
                batch.appendArgument(values[column])
            }
            let expireAt = saturatingSum(timestamp.unixSeconds, retentionSeconds)
            batch.appendCommand(argumentCount: 3)
            batch.appendArgument("EXPIREAT")
            batch.appendArgument(entryKey)
            batch.appendArgument(Int(expireAt))

            let score = timestamp.unixSecondsMillisTruncated
            for template in indexTemplates {
                // A NULL api_key_id or asset skips only the index that names it.
                guard let indexKey = template.render(prefix: prefixBytes, lookup) else { continue }
                indexMembers.add(key: indexKey, score: score, member: values[idColumn])
            }
            outcome.written += 1
        }

        for (key, members) in indexMembers.groups {
            batch.appendCommand(argumentCount: 2 + 2 * members.count)
            batch.appendArgument("ZADD")
            batch.appendArgument(key)
            for (score, member) in members {
                batch.appendArgument(score)
                batch.appendArgument(member)
            }
        }
        if !indexMembers.groups.isEmpty {
            batch.appendCommand(argumentCount: 2 + indexMembers.groups.count)
            batch.appendArgument("SADD")
            batch.appendArgument(registryKey)
            for (key, _) in indexMembers.groups { batch.appendArgument(key) }
        }
        return outcome
    }

    private func checkColumns(_ row: PostgresRow) throws {
        guard row.columnNames == fieldNames else {
            throw WriterError.unexpectedColumns(table: table.name, expected: fieldNames, got: row.columnNames)
        }
    }
}

/// Index members of one page grouped by index key, in first-seen order, so that each index
/// key gets one variadic ZADD.
struct IndexMembers {
    private(set) var groups: [([UInt8], [(String, String)])] = []
    private var position: [Key: Int] = [:]

    mutating func add(key: [UInt8], score: String, member: String) {
        if let index = position[Key(bytes: key)] {
            groups[index].1.append((score, member))
        } else {
            position[Key(bytes: key)] = groups.count
            groups.append((key, [(score, member)]))
        }
    }

    /// Hashes the key's bytes in one call; `[UInt8]`'s own hashing feeds them one by one,
    /// which was a tenth of the encoder's time in the copy's profile.
    private struct Key: Hashable {
        var bytes: [UInt8]

        func hash(into hasher: inout Hasher) {
            bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }
}

/// A row the writers cannot turn into commands; names the table and row, never secrets.
package enum WriterError: Error, Sendable, CustomStringConvertible {
    case unexpectedColumns(table: String, expected: [String], got: [String])

    package var description: String {
        switch self {
        case .unexpectedColumns(let table, let expected, let got):
            "\(table): expected the columns \(expected.joined(separator: ", ")), the query returned \(got.joined(separator: ", "))"
        }
    }
}
