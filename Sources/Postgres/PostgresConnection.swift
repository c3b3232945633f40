import CLibPQ
import Dispatch
import Foundation

/// A connection to PostgreSQL through libpq.
///
/// libpq calls block, so each connection runs them on its own serial DispatchQueue, off
/// Swift's cooperative thread pool; callers await them through continuations. Statements
/// issued concurrently on one connection run one after another, in the order they arrive.
public final class PostgresConnection: Sendable {
    /// host:port/dbname as libpq resolved them — never the password.
    public let serverDescription: String
    private let handle: LibPQHandle
    private let queue: DispatchQueue

    private init(handle: LibPQHandle, queue: DispatchQueue) {
        self.handle = handle
        self.queue = queue
        self.serverDescription = handle.server
    }

    deinit { close() }

    /// Connects with a libpq URL or conninfo string; `nil` (or empty) leaves everything to
    /// libpq's own environment — PGHOST, PGSERVICE, PGSSLMODE, ~/.pgpass… — exactly as psql does.
    /// `applicationName` is only a fallback: `application_name` in the string or PGAPPNAME wins.
    public static func connect(_ conninfo: String?, applicationName: String = "sync-job") async throws -> PostgresConnection {
        let queue = DispatchQueue(label: "postgres-connection")
        let handle = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<LibPQHandle, Error>) in
            queue.async {
                continuation.resume(with: Result { try LibPQHandle.open(conninfo: conninfo, applicationName: applicationName) })
            }
        }
        return PostgresConnection(handle: handle, queue: queue)
    }

    /// Runs one statement with text-format parameters (`$1`, `$2`…; nil is NULL) and returns its rows.
    public func query(_ sql: String, _ parameters: [PostgresValue?] = []) async throws -> [PostgresRow] {
        try await run { handle in try handle.execute(sql, parameters, multiStatement: false).rows }
    }

    /// Runs a statement and returns the rows it affected (0 when the command reports none).
    /// Without parameters, `sql` may hold several statements separated by semicolons; they
    /// run as one implicit transaction (PostgreSQL's simple query protocol) and the count is
    /// the last statement's.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [PostgresValue?] = []) async throws -> Int {
        try await run { handle in try handle.execute(sql, parameters, multiStatement: parameters.isEmpty).affectedRows }
    }

    /// The database clock (`clock_timestamp()`): the copy stops at this minus a settle delay,
    /// so the job's own clock skew never matters.
    public func databaseNow() async throws -> PostgresTimestamp {
        let rows = try await query("SELECT clock_timestamp()")
        guard let now = try rows.first?[0].decode(PostgresTimestamp.self) else {
            throw PostgresError(kind: .decoding, message: "clock_timestamp() returned no value", server: serverDescription)
        }
        return now
    }

    /// Closes the connection after the statements already queued; later statements fail.
    /// Idempotent, and does not block the caller.
    public func close() {
        queue.async { [handle] in handle.finish() }
    }

    private func run<T: Sendable>(_ operation: @escaping @Sendable (LibPQHandle) throws -> T) async throws -> T {
        try Task.checkCancellation()
        let handle = self.handle
        let ticket = handle.newTicket()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
                queue.async {
                    continuation.resume(with: Result { try handle.running(ticket) { try operation(handle) } })
                }
            }
        } onCancel: {
            handle.cancel(ticket)
        }
    }
}

/// Owns one PGconn.
///
/// `@unchecked Sendable` is safe because: `connection` is read and written only inside
/// closures on the owning PostgresConnection's serial queue (and in `deinit`, which runs when
/// no such closure holds the handle any more); the cancellation state (`cancelToken`,
/// `runningTicket`, `cancelledTickets`, `nextTicket`) is read and written only under `lock`;
/// `server` and `secrets` are immutable. PQcancel is documented as safe from any thread.
final class LibPQHandle: @unchecked Sendable {
    static let defaultConnectTimeoutSeconds = 10
    private var connection: OpaquePointer?
    let server: String
    /// Passwords that must never appear in an error (from the conninfo, PGPASSWORD, .pgpass).
    let secrets: [String]

    private let lock = NSLock()
    private var cancelToken: OpaquePointer?
    private var nextTicket: UInt64 = 0
    private var runningTicket: UInt64?
    private var cancelledTickets: Set<UInt64> = []

    private init(connection: OpaquePointer, server: String, secrets: [String]) {
        self.connection = connection
        self.server = server
        self.secrets = secrets
        self.cancelToken = PQgetCancel(connection)
    }

    deinit { finish() }

    static func open(conninfo: String?, applicationName: String) throws -> LibPQHandle {
        var secrets = passwords(in: conninfo)
        if let fromEnvironment = ProcessInfo.processInfo.environment["PGPASSWORD"] { secrets.append(fromEnvironment) }

        // expand_dbname makes libpq read `dbname` as a whole URL or conninfo string; an absent
        // value makes it fall back to the PG* environment and service file, as psql does.
        // libpq waits forever for an unreachable host by default; a scheduled job must instead
        // fail and retry on the next run. The default sits before `dbname` so a connect_timeout
        // in the string wins, and it is left out when PGCONNECT_TIMEOUT is set.
        let environment = ProcessInfo.processInfo.environment
        let keywords = ["connect_timeout", "dbname", "fallback_application_name"]
        let values: [String?] = [environment["PGCONNECT_TIMEOUT"] == nil ? String(defaultConnectTimeoutSeconds) : nil,
                                 conninfo.flatMap { $0.isEmpty ? nil : $0 }, applicationName]
        let connection = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in
                PQconnectdbParams(keywordPointers + [nil], valuePointers + [nil], 1)
            }
        }
        guard let connection else {
            throw PostgresError(kind: .connectionFailed, message: "libpq could not allocate a connection")
        }
        if let password = PQpass(connection) { secrets.append(String(cString: password)) }
        let server = describeServer(connection)

        guard PQstatus(connection) == CONNECTION_OK else {
            let message = trimmed(errorMessage(connection))
            PQfinish(connection)
            let authenticationMarkers = ["password authentication failed", "authentication failed", "no password supplied",
                                         "no pg_hba.conf entry", "password is required", "SASL authentication"]
            let kind: PostgresError.Kind = authenticationMarkers.contains { message.contains($0) } ? .authenticationFailed : .connectionFailed
            throw PostgresError(kind: kind, message: message, server: server).scrubbing(secrets)
        }

        // NOTICEs would otherwise be printed by libpq on stderr, where the job writes JSON logs.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        let handle = LibPQHandle(connection: connection, server: server, secrets: secrets)
        // Fixed session settings make the text output predictable: UTC ISO timestamps,
        // shortest round-trip floats, UTF-8 whatever the server or PGCLIENTENCODING say.
        _ = try handle.execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET client_encoding = 'UTF8'",
            [], multiStatement: true)
        return handle
    }

    func finish() {
        lock.lock()
        if let cancelToken { PQfreeCancel(cancelToken) }
        cancelToken = nil
        lock.unlock()
        if let connection { PQfinish(connection) }
        connection = nil
    }

    // MARK: Cancellation

    func newTicket() -> UInt64 {
        lock.withLock {
            nextTicket += 1
            return nextTicket
        }
    }

    /// Marks `ticket` as the statement in progress so a cancel reaches only that statement.
    func running<T>(_ ticket: UInt64, _ body: () throws -> T) throws -> T {
        let cancelledBeforeStart = lock.withLock {
            runningTicket = ticket
            return cancelledTickets.remove(ticket) != nil
        }
        defer { lock.withLock { runningTicket = nil } }
        if cancelledBeforeStart { throw CancellationError() }
        return try body()
    }

    /// Cancels the statement of `ticket`: on the server if it is running, before it starts otherwise.
    func cancel(_ ticket: UInt64) {
        lock.withLock {
            if runningTicket == ticket {
                // Holding the lock keeps the next statement from starting before the request is sent.
                if let cancelToken {
                    var buffer = [CChar](repeating: 0, count: 256)
                    _ = PQcancel(cancelToken, &buffer, Int32(buffer.count))
                }
            } else {
                cancelledTickets.insert(ticket)
            }
        }
    }

    // MARK: Statements

    struct Outcome {
        var rows: [PostgresRow]
        var affectedRows: Int
    }

    func execute(_ sql: String, _ parameters: [PostgresValue?], multiStatement: Bool) throws -> Outcome {
        guard let connection else {
            throw PostgresError(kind: .connectionLost, message: "the connection is closed", server: server)
        }
        let result: OpaquePointer?
        if multiStatement {
            result = PQexec(connection, sql)
        } else {
            let texts = parameters.map { $0?.postgresText }
            result = withCStrings(texts) { pointers in
                PQexecParams(connection, sql, Int32(pointers.count), nil, pointers, nil, nil, 0)
            }
        }
        guard let result else {
            throw PostgresError(kind: connectionLostOrQuery(connection), message: trimmed(errorMessage(connection)), server: server).scrubbing(secrets)
        }
        defer { PQclear(result) }

        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            let affected = String(cString: PQcmdTuples(result))
            return Outcome(rows: Self.rows(of: result), affectedRows: Int(affected) ?? 0)
        default:
            throw error(from: result, connection: connection)
        }
    }

    private func error(from result: OpaquePointer, connection: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
        }
        let sqlState = field("C")
        let message = field("M") ?? trimmed(String(cString: PQresultErrorMessage(result)))
        var kind = connectionLostOrQuery(connection)
        // Class 08 (connection exception) and 57P01..57P03 (shutdown) mean the session is gone.
        if let sqlState, sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(sqlState) { kind = .connectionLost }
        return PostgresError(kind: kind, sqlState: sqlState, message: message.isEmpty ? trimmed(errorMessage(connection)) : message,
                             detail: field("D"), hint: field("H"), server: server).scrubbing(secrets)
    }

    private func connectionLostOrQuery(_ connection: OpaquePointer) -> PostgresError.Kind {
        PQstatus(connection) == CONNECTION_BAD ? .connectionLost : .query
    }

    private static func rows(of result: OpaquePointer) -> [PostgresRow] {
        let rowCount = PQntuples(result)
        let columnCount = PQnfields(result)
        guard columnCount > 0 else { return [] }
        let columns = PostgresColumns(
            names: (0..<columnCount).map { String(cString: PQfname(result, $0)) },
            typeOIDs: (0..<columnCount).map { UInt32(PQftype(result, $0)) })
        var rows: [PostgresRow] = []
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            let values: [String?] = (0..<columnCount).map { column in
                if PQgetisnull(result, row, column) == 1 { return nil }
                let bytes = UnsafeRawPointer(PQgetvalue(result, row, column)!).assumingMemoryBound(to: UInt8.self)
                return String(decoding: UnsafeBufferPointer(start: bytes, count: Int(PQgetlength(result, row, column))), as: UTF8.self)
            }
            rows.append(PostgresRow(columns: columns, values: values, rowIndex: Int(row)))
        }
        return rows
    }
}

// MARK: libpq helpers

/// host:port/dbname, bracketing IPv6 literals; the password is not part of it.
private func describeServer(_ connection: OpaquePointer) -> String {
    let host = PQhost(connection).map { String(cString: $0) } ?? ""
    let port = PQport(connection).map { String(cString: $0) } ?? ""
    let database = PQdb(connection).map { String(cString: $0) } ?? ""
    let hostText = host.contains(":") && !host.hasPrefix("/") ? "[\(host)]" : host
    return "\(hostText):\(port)/\(database)"
}

private func errorMessage(_ connection: OpaquePointer) -> String {
    PQerrorMessage(connection).map { String(cString: $0) } ?? "unknown libpq error"
}

/// libpq's messages span lines ("...failed: Connection refused\n\tIs the server running..."); one
/// line reads better in a log record.
private func trimmed(_ text: String) -> String {
    text.split(whereSeparator: \.isNewline)
        .map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty }
        .joined(separator: " ")
}

/// Every `password` the conninfo string or URL carries, as libpq itself parses it.
private func passwords(in conninfo: String?) -> [String] {
    guard let conninfo, !conninfo.isEmpty else { return [] }
    var parseError: UnsafeMutablePointer<CChar>?
    guard let options = PQconninfoParse(conninfo, &parseError) else {
        if let parseError { PQfreemem(parseError) }
        return []
    }
    defer { PQconninfoFree(options) }
    var found: [String] = []
    var option = options
    while let keyword = option.pointee.keyword {
        if String(cString: keyword) == "password", let value = option.pointee.val {
            found.append(String(cString: value))
            // A URL carries the password percent-encoded; scrub that spelling too.
            if let encoded = String(cString: value).addingPercentEncoding(withAllowedCharacters: .alphanumerics) { found.append(encoded) }
        }
        option += 1
    }
    return found
}

/// Calls `body` with NUL-terminated copies of `strings` (nil stays nil) that live for the call.
private func withCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.flatMap { strdup($0) } }
    defer { copies.forEach { free($0) } }
    return body(copies.map { $0.map { UnsafePointer($0) } })
}
