import Timestamps

/// Reads a table page by page in (timestamp, id) order between two bounds, without OFFSET.
///
/// Each page is one indexed range scan continuing after the previous page's last
/// (timestamp, id), so rows sharing a timestamp are never skipped nor repeated across pages,
/// and memory holds at most the page being processed plus the one being read ahead.
/// Rows whose timestamp is NULL are never read.
package struct KeysetPageReader: Sendable {
    package let connection: PostgresConnection
    package let pageSize: Int
    private let selectList: String
    private let source: String
    private let timestampColumn: String
    private let idColumn: String
    /// Positions of the keyset columns in the select list: the cursor is read from there.
    private let timestampIndex: Int
    private let idIndex: Int

    /// - Parameters:
    ///   - table: a table name, optionally schema-qualified ("public.usage_logs"); each part is
    ///     quoted as an identifier, so names are taken literally and cannot inject SQL.
    ///   - columns: the columns to read; the keyset columns are appended when missing.
    package init(connection: PostgresConnection, table: String, columns: [String],
                timestampColumn: String = "timestamp", idColumn: String = "id", pageSize: Int) {
        precondition(pageSize > 0, "a page holds at least one row")
        var selected = columns
        for keysetColumn in [timestampColumn, idColumn] where !selected.contains(keysetColumn) {
            selected.append(keysetColumn)
        }
        self.connection = connection
        self.pageSize = pageSize
        self.selectList = selected.map(quoteIdentifier).joined(separator: ", ")
        self.source = quoteQualifiedName(table)
        self.timestampColumn = quoteIdentifier(timestampColumn)
        self.idColumn = quoteIdentifier(idColumn)
        self.timestampIndex = selected.firstIndex(of: timestampColumn)!
        self.idIndex = selected.firstIndex(of: idColumn)!
    }

    /// Pages of rows with from <= timestamp < until, ordered by (timestamp, id); the keyset
    /// cursor after each page is (last row's timestamp, last row's id). The next page is read
    /// while the caller handles the current one.
    package func pages(from: Timestamp, until: Timestamp) -> KeysetPages {
        let reader = self
        return KeysetPages(plan: PagePlan(
            pageSize: pageSize,
            firstPage: {
                try await reader.connection.query(
                    reader.firstPageSQL, [.timestamp(from), .timestamp(until), .int(Int64(reader.pageSize))])
            },
            pageAfter: { last in
                let cursor = try reader.cursor(after: last)
                return try await reader.connection.query(
                    reader.nextPageSQL, [.text(cursor.timestamp), .text(cursor.id), .timestamp(until), .int(Int64(reader.pageSize))])
            }))
    }

    /// The newest finite timestamp in the table (max), or nil when it holds no timestamped
    /// row, or only ones an instant cannot hold (`infinity`, beyond year 294,000).
    package func newestTimestamp() async throws -> Timestamp? {
        let rows = try await connection.query("SELECT \(newestSQL)")
        return rows.first.flatMap { $0.text(0) }.flatMap(Timestamp.init(postgresText:))
    }

    /// `infinity`, and times beyond what an instant holds, are no row's time: left out, so
    /// that one such row cannot hide the lag.
    private var newestSQL: String {
        "(SELECT max(\(timestampColumn)) FROM \(source) WHERE \(timestampColumn) <= '\(Timestamp.latest.rfc3339)')"
    }

    /// `newestTimestamp()` and the number of rows without a timestamp, in one statement (each
    /// part still reads only the (timestamp, id) index).
    package func newestTimestampAndUntimestampedCount() async throws -> (newest: Timestamp?, untimestamped: Int) {
        let rows = try await connection.query(
            "SELECT \(newestSQL), (SELECT count(*) FROM \(source) WHERE \(timestampColumn) IS NULL)")
        guard let row = rows.first else { return (nil, 0) }
        return (row.text(0).flatMap(Timestamp.init(postgresText:)), try row[1].decode(Int.self) ?? 0)
    }

    // The parameters are untyped, so PostgreSQL gives each the type of the column it is
    // compared with: the comparisons stay within one type and use the (timestamp, id) index,
    // for timestamptz or timestamp columns and uuid, bigint or text ids alike. A bound is sent
    // as RFC 3339 UTC text, which a timestamp-without-time-zone column reads as UTC (its input
    // ignores the 'Z'); a cursor is sent back as the exact text PostgreSQL returned.
    var firstPageSQL: String {
        "SELECT \(selectList) FROM \(source) WHERE \(timestampColumn) >= $1 AND \(timestampColumn) < $2 "
            + "ORDER BY \(timestampColumn), \(idColumn) LIMIT $3"
    }

    var nextPageSQL: String {
        "SELECT \(selectList) FROM \(source) WHERE (\(timestampColumn), \(idColumn)) > ($1, $2) AND \(timestampColumn) < $3 "
            + "ORDER BY \(timestampColumn), \(idColumn) LIMIT $4"
    }

    fileprivate func cursor(after row: PostgresRow) throws -> (timestamp: String, id: String) {
        let timestamp = row[timestampIndex]
        let id = row[idIndex]
        guard let timestampText = timestamp.text, let idText = id.text else {
            throw nullKeysetColumn(timestamp.isNull ? timestamp : id, in: source, on: connection)
        }
        return (timestampText, idText)
    }
}

/// Reads a whole table page by page in the order of its unique `id` column, without OFFSET:
/// each page continues after the previous page's last id, so with a snapshot
/// (`PostgresConnection.withSnapshot`) every row is read exactly once, and memory holds at
/// most the page being processed plus the one being read ahead.
package struct IDPageReader: Sendable {
    package let connection: PostgresConnection
    package let pageSize: Int
    private let firstPageSQL: String
    private let nextPageSQL: String
    private let source: String
    private let idIndex: Int

    /// `columns` must hold `idColumn`; names are quoted as in `KeysetPageReader`.
    package init(connection: PostgresConnection, table: String, columns: [String], idColumn: String = "id", pageSize: Int) {
        precondition(pageSize > 0, "a page holds at least one row")
        self.connection = connection
        self.pageSize = pageSize
        let selectList = columns.map(quoteIdentifier).joined(separator: ", ")
        source = quoteQualifiedName(table)
        let id = quoteIdentifier(idColumn)
        // The cursor goes back untyped, as the exact text PostgreSQL returned: the comparison
        // stays within the column's own type (uuid, bigint, text) and uses its index.
        firstPageSQL = "SELECT \(selectList) FROM \(source) ORDER BY \(id) LIMIT $1"
        nextPageSQL = "SELECT \(selectList) FROM \(source) WHERE \(id) > $1 ORDER BY \(id) LIMIT $2"
        idIndex = columns.firstIndex(of: idColumn)!
    }

    /// Every row, page by page; the next page is read while the caller handles the current one.
    package func pages() -> KeysetPages {
        let reader = self
        return KeysetPages(plan: PagePlan(
            pageSize: pageSize,
            firstPage: { try await reader.connection.query(reader.firstPageSQL, [.int(Int64(reader.pageSize))]) },
            pageAfter: { last in
                guard let id = last.text(reader.idIndex) else {
                    throw nullKeysetColumn(last[reader.idIndex], in: reader.source, on: reader.connection)
                }
                return try await reader.connection.query(reader.nextPageSQL, [.text(id), .int(Int64(reader.pageSize))])
            }))
    }
}

/// The pages of one read, as an AsyncSequence; iterate it once.
package struct KeysetPages: AsyncSequence, Sendable {
    package typealias Element = [PostgresRow]
    fileprivate let plan: PagePlan

    package func makeAsyncIterator() -> AsyncIterator { AsyncIterator(plan: plan) }

    /// Yields each page as soon as it is read and immediately starts reading the next one.
    package struct AsyncIterator: AsyncIteratorProtocol {
        private let plan: PagePlan
        private var state: State = .notStarted

        private enum State {
            case notStarted
            case reading(PageRead)
            case finished
        }

        fileprivate init(plan: PagePlan) { self.plan = plan }

        /// Ends the iteration without cancelling the page being read ahead: waits for it, so
        /// that no cancel meant for it can reach a later statement on the connection. True when
        /// that page held rows, or might have: the table was not read to its end.
        package mutating func finish() async -> Bool {
            defer { state = .finished }
            guard case .reading(let pending) = state else { return false }
            do {
                return !(try await pending.value).isEmpty
            } catch {
                return true
            }
        }

        package mutating func next() async throws -> [PostgresRow]? {
            let read: PageRead
            switch state {
            case .finished: return nil
            case .notStarted: read = PageRead(plan.firstPage)
            case .reading(let pending): read = pending
            }
            let page: [PostgresRow]
            do {
                page = try await read.value
            } catch {
                state = .finished
                throw error
            }
            // A short page is the last one; a full page may have a successor, read ahead now.
            guard page.count == plan.pageSize, let last = page.last else {
                state = .finished
                return page.isEmpty ? nil : page
            }
            let pageAfter = plan.pageAfter
            state = .reading(PageRead { try await pageAfter(last) })
            return page
        }
    }
}

/// How to read the first page and the page after a row.
private struct PagePlan: Sendable {
    let pageSize: Int
    let firstPage: @Sendable () async throws -> [PostgresRow]
    let pageAfter: @Sendable (PostgresRow) async throws -> [PostgresRow]
}

/// One page being read ahead; abandoning it (the caller stopped iterating) cancels the query.
private final class PageRead: Sendable {
    private let task: Task<[PostgresRow], Error>

    init(_ read: @escaping @Sendable () async throws -> [PostgresRow]) {
        task = Task { try await read() }
    }

    deinit { task.cancel() }

    var value: [PostgresRow] {
        get async throws {
            let task = self.task
            return try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
        }
    }
}

/// A keyset column that is NULL: the pages cannot continue after its row.
private func nullKeysetColumn(_ cell: PostgresCell, in source: String, on connection: PostgresConnection) -> PostgresError {
    PostgresError(kind: .decoding, message: "keyset column \"\(cell.columnName)\" of row \(cell.rowIndex) is NULL in \(source)",
                  server: connection.serverDescription)
}

/// A table name, optionally schema-qualified ("public.usage_logs"), each part quoted.
private func quoteQualifiedName(_ name: String) -> String {
    name.split(separator: ".", omittingEmptySubsequences: false).map { quoteIdentifier(String($0)) }.joined(separator: ".")
}

/// A double-quoted SQL identifier, so any name is taken literally.
package func quoteIdentifier(_ name: String) -> String {
    "\"" + name.replacing("\"", with: "\"\"") + "\""
}
