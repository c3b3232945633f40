import CLibPQ
import Dispatch
import Foundation
import Timestamps

/// A connection to PostgreSQL through libpq.
///
/// libpq calls block, so each connection runs them on its own serial DispatchQueue, off
/// Swift's cooperative thread pool; callers await them through continuations. Statements
/// issued concurrently on one connection run one after another, in the order they arrive.
package final class PostgresConnection: Sendable {
    /// host:port/dbname as libpq resolved them — never the password.
    package let serverDescription: String
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
    ///
    /// `timeout` bounds the connection (libpq's `connect_timeout`, unless the string or
    /// PGCONNECT_TIMEOUT sets one) and every later wait for the server's next bytes: a server
    /// that stops answering mid-query fails the statement with `.timeout` instead of hanging.
    /// TCP keepalives and `tcp_user_timeout` are asked for unless the string sets them, and
    /// the session asks the server to probe the client too, so that a vanished client's
    /// session (and its advisory locks) ends within about a minute.
    ///
    /// `password`, when given (a password file's), wins over any password in the string,
    /// PGPASSWORD and .pgpass.
    package static func connect(_ conninfo: String?, password: String? = nil, applicationName: String = "sync-job",
                               timeout: Duration = .seconds(60)) async throws -> PostgresConnection {
        let queue = DispatchQueue(label: "postgres-connection")
        let handle = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<LibPQHandle, Error>) in
            queue.async {
                continuation.resume(with: Result {
                    try LibPQHandle.open(conninfo: conninfo, password: password, applicationName: applicationName, timeout: timeout)
                })
            }
        }
        return PostgresConnection(handle: handle, queue: queue)
    }

    /// Runs one statement with text-format parameters (`$1`, `$2`…; nil is NULL) and returns its rows.
    package func query(_ sql: String, _ parameters: [PostgresValue?] = []) async throws -> [PostgresRow] {
        try await run { handle in try handle.execute(sql, parameters, multiStatement: false).rows }
    }

    /// Runs a statement and returns the rows it affected (0 when the command reports none).
    /// Without parameters, `sql` may hold several statements separated by semicolons; they
    /// run as one implicit transaction (PostgreSQL's simple query protocol) and the count is
    /// the last statement's.
    @discardableResult
    package func execute(_ sql: String, _ parameters: [PostgresValue?] = []) async throws -> Int {
        try await run { handle in try handle.execute(sql, parameters, multiStatement: parameters.isEmpty).affectedRows }
    }

    /// Runs `body` in one read-only REPEATABLE READ transaction, so that every query in it
    /// sees the same snapshot of the database (a table read in pages reads each row once, as
    /// one query would). Committed when `body` returns; rolled back when it throws.
    package func withSnapshot<R>(_ body: () async throws -> R) async throws -> R {
        try await execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        do {
            let result = try await body()
            try await execute("COMMIT")
            return result
        } catch {
            // If the connection itself broke, the original error is the one to report.
            await leaveTransaction()
            throw error
        }
    }

    /// Rolls back until the session is outside any transaction, so that the stages after a
    /// failed one find it usable. A cancel meant for an abandoned read-ahead query can land on
    /// the first ROLLBACK: it is tried again.
    private func leaveTransaction() async {
        for _ in 0..<3 {
            _ = try? await execute("ROLLBACK")
            if (try? await run { handle in handle.isInTransaction }) == false { return }
        }
    }

    /// The database clock (`clock_timestamp()`): the copy stops at this minus a settle delay,
    /// so the job's own clock skew never matters.
    package func databaseNow() async throws -> Timestamp {
        let rows = try await query("SELECT clock_timestamp()")
        guard let now = try rows.first?[0].decode(Timestamp.self) else {
            throw PostgresError(kind: .decoding, message: "clock_timestamp() returned no value", server: serverDescription)
        }
        return now
    }

    /// Closes the connection after the statements already queued; later statements fail.
    /// Idempotent, and does not block the caller.
    package func close() {
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

/// Owns one PGconn, in libpq's non-blocking mode: every wait for the server is a `poll`
/// with a deadline, so a stalled server (a network partition, a half-open socket after a
/// failover) fails the statement within the timeout instead of hanging the run.
///
/// `@unchecked Sendable` is safe because: `connection` and `broken` are read and written only
/// inside closures on the owning PostgresConnection's serial queue (and in `deinit`, which runs
/// when no such closure holds the handle any more); the cancellation state (`cancelToken`,
/// `runningTicket`, `cancelledTickets`, `nextTicket`) is read and written only under `lock`;
/// `server`, `secrets` and `timeout` are immutable. `CancelToken` is used off the lock (see there).
final class LibPQHandle: @unchecked Sendable {
    static let defaultConnectTimeoutSeconds = 10
    private var connection: OpaquePointer?
    /// Set once a statement timed out: the protocol state is unknown, so the session is unusable.
    private var broken: PostgresError?
    let server: String
    /// Passwords that must never appear in an error (from the conninfo, PGPASSWORD, .pgpass).
    let secrets: [String]
    /// The longest wait for the server's next bytes.
    let timeout: Duration

    private let lock = NSLock()
    private var cancelToken: CancelToken?
    private var nextTicket: UInt64 = 0
    private var runningTicket: UInt64?
    private var cancelledTickets: Set<UInt64> = []

    private init(connection: OpaquePointer, server: String, secrets: [String], timeout: Duration) {
        self.connection = connection
        self.server = server
        self.secrets = secrets
        self.timeout = timeout
        self.cancelToken = PQgetCancel(connection).map(CancelToken.init)
    }

    deinit { finish() }

    static func open(conninfo: String?, password: String?, applicationName: String, timeout: Duration) throws -> LibPQHandle {
        // A string libpq cannot parse would come back in its error message, password included.
        if let conninfo, let problem = PostgresConnection.parseProblem(in: conninfo) {
            throw PostgresError(kind: .invalidConninfo, message: problem)
        }
        var secrets = passwords(in: conninfo)
        if let fromEnvironment = ProcessInfo.processInfo.environment["PGPASSWORD"] { secrets.append(fromEnvironment) }
        if let password { secrets.append(password) }

        // expand_dbname makes libpq read `dbname` as a whole URL or conninfo string; an absent
        // value makes it fall back to the PG* environment and service file, as psql does.
        // Defaults sit before `dbname`, so the operator's own values in the string win; the
        // connect timeout is left out when PGCONNECT_TIMEOUT is set. libpq waits forever for an
        // unreachable host by default, and a scheduled job must instead fail and retry.
        let environment = ProcessInfo.processInfo.environment
        let timeoutSeconds = max(2, Int((timeout.seconds).rounded(.up)))
        let timeoutMilliseconds = max(1, Int(timeout.seconds * 1000))
        var defaults: [(String, String)] = []
        if environment["PGCONNECT_TIMEOUT"] == nil { defaults.append(("connect_timeout", String(timeoutSeconds))) }
        let given = Set(keywords(in: conninfo))
        for (keyword, value) in [("keepalives", "1"), ("keepalives_idle", "10"), ("keepalives_interval", "5"),
                                 ("keepalives_count", "3"), ("tcp_user_timeout", String(timeoutMilliseconds))]
        where !given.contains(keyword) {
            defaults.append((keyword, value))
        }
        // Parameters after `dbname` override what the expanded string sets: the password file wins.
        let keywords = defaults.map(\.0) + ["dbname", "fallback_application_name"] + (password == nil ? [] : ["password"])
        let values: [String?] = defaults.map(\.1) + [conninfo.flatMap { $0.isEmpty ? nil : $0 }, applicationName] + (password == nil ? [] : [password])
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
            let kind: PostgresError.Kind = authenticationMarkers.contains { message.contains($0) } ? .authenticationFailed
                : message.contains("timeout expired") ? .timeout : .connectionFailed
            throw PostgresError(kind: kind, message: message, server: server, timeout: kind == .timeout ? timeout : nil)
                .scrubbing(secrets)
        }

        // NOTICEs would otherwise be printed by libpq on stderr, where the job writes JSON logs.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        guard PQsetnonblocking(connection, 1) == 0 else {
            let message = trimmed(errorMessage(connection))
            PQfinish(connection)
            throw PostgresError(kind: .connectionFailed, message: "cannot switch to non-blocking mode: \(message)", server: server)
        }
        let handle = LibPQHandle(connection: connection, server: server, secrets: secrets, timeout: timeout)
        // Fixed session settings make the text output predictable: UTC ISO timestamps,
        // shortest round-trip floats, UTF-8 whatever the server or PGCLIENTENCODING say. The
        // server-side keepalives end the session of a client that vanished (and free its
        // advisory lock) within about a minute, where the kernel default is two hours.
        _ = try handle.execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET client_encoding = 'UTF8'; "
                + "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3",
            [], multiStatement: true)
        return handle
    }

    func finish() {
        lock.withLock { cancelToken = nil }
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

    /// Whether the session is inside a transaction block (or cannot tell).
    var isInTransaction: Bool {
        guard broken == nil, let connection else { return false }
        return PQtransactionStatus(connection) != PQTRANS_IDLE
    }

    /// Cancels the statement of `ticket`: on the server if it is running, before it starts otherwise.
    func cancel(_ ticket: UInt64) {
        let token: CancelToken? = lock.withLock {
            if runningTicket == ticket { return cancelToken }
            cancelledTickets.insert(ticket)
            return nil
        }
        token?.send()
    }

    // MARK: Statements

    struct Outcome {
        var rows: [PostgresRow]
        var affectedRows: Int
    }

    func execute(_ sql: String, _ parameters: [PostgresValue?], multiStatement: Bool) throws -> Outcome {
        if let broken { throw broken }
        guard let connection else {
            throw PostgresError(kind: .connectionLost, message: "the connection is closed", server: server)
        }
        let sent: Int32
        if multiStatement {
            sent = PQsendQuery(connection, sql)
        } else {
            let texts = parameters.map { $0?.postgresText }
            sent = withCStrings(texts) { pointers in
                PQsendQueryParams(connection, sql, Int32(pointers.count), nil, pointers, nil, nil, 0)
            }
        }
        guard sent == 1 else { throw connectionError(connection) }
        try flushOutput(connection)

        // Like PQexec: the last result wins, except that an error wins over what follows it.
        var last: OpaquePointer?
        var failure: PostgresError?
        defer { if let last { PQclear(last) } }
        while true {
            try awaitResult(connection)
            guard let result = PQgetResult(connection) else { break }
            switch PQresultStatus(result) {
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                if let previous = last { PQclear(previous) }
                last = result
            default:
                if failure == nil { failure = error(from: result, connection: connection) }
                PQclear(result)
            }
        }
        if let failure { throw failure }
        guard let last else { throw connectionError(connection) }
        let affected = String(cString: PQcmdTuples(last))
        return Outcome(rows: Self.rows(of: last), affectedRows: Int(affected) ?? 0)
    }

    /// Sends what libpq still holds of the statement, waiting for the socket as needed.
    private func flushOutput(_ connection: OpaquePointer) throws {
        while true {
            switch PQflush(connection) {
            case 0: return
            case 1:
                // Reading while waiting keeps a server that answers early from blocking on us.
                let events = try wait(connection, for: Int16(POLLIN | POLLOUT), doing: "sending a statement")
                if events & Int16(POLLIN) != 0, PQconsumeInput(connection) == 0 { throw connectionError(connection) }
            default: throw connectionError(connection)
            }
        }
    }

    /// Reads until libpq holds a whole result (or the end of them), each wait bounded.
    private func awaitResult(_ connection: OpaquePointer) throws {
        while PQisBusy(connection) == 1 {
            _ = try wait(connection, for: Int16(POLLIN), doing: "waiting for the server's reply")
            if PQconsumeInput(connection) == 0 { throw connectionError(connection) }
        }
    }

    /// Polls the socket for `events` at most `timeout`; past it the statement is cancelled on
    /// the server (from another thread: PQcancel opens a connection of its own and may itself
    /// stall), the session is given up, and the wait fails with `.timeout`.
    private func wait(_ connection: OpaquePointer, for events: Int16, doing what: String) throws -> Int16 {
        let socket = PQsocket(connection)
        guard socket >= 0 else { throw connectionError(connection) }
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = deadline - ContinuousClock.now
            let milliseconds = remaining <= .zero ? 0 : Int32(min(remaining.seconds * 1000, Double(Int32.max)).rounded(.up))
            var descriptor = pollfd(fd: socket, events: events, revents: 0)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return descriptor.revents }
            if ready < 0, errno == EINTR { continue }
            if ready < 0 {
                throw PostgresError(kind: .connectionLost, message: "poll failed: \(String(cString: strerror(errno)))", server: server)
            }
            if ContinuousClock.now < deadline { continue }
            lock.withLock { cancelToken }?.send()
            let error = PostgresError(kind: .timeout, message: "no answer for \(timeout.secondsText) while \(what); the session was given up",
                                      server: server, timeout: timeout)
            broken = error
            throw error
        }
    }

    private func connectionError(_ connection: OpaquePointer) -> PostgresError {
        PostgresError(kind: connectionLostOrQuery(connection), message: trimmed(errorMessage(connection)), server: server).scrubbing(secrets)
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

/// libpq's cancel request for one connection, freed when the last user lets go of it.
///
/// `@unchecked Sendable` is safe because the pointer is immutable and PQcancel is documented
/// as safe to call from any thread; the class keeps it alive while a request is on its way,
/// even after the connection itself was closed.
final class CancelToken: @unchecked Sendable {
    private let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { PQfreeCancel(pointer) }

    /// Sends the request from a thread of its own: PQcancel connects to the server and waits
    /// for it, which must block neither a caller's thread nor a lock, and may never end when
    /// the network is partitioned.
    func send() {
        let thread = Thread { [self] in
            var buffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(pointer, &buffer, Int32(buffer.count))
        }
        thread.start()
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

/// The keywords a conninfo string or URL sets, as libpq itself parses it.
private func keywords(in conninfo: String?) -> [String] {
    conninfoOptions(conninfo).map(\.keyword)
}

/// Every `password` the conninfo string or URL carries, as libpq itself parses it.
private func passwords(in conninfo: String?) -> [String] {
    var found: [String] = []
    for option in conninfoOptions(conninfo) where option.keyword == "password" {
        found.append(option.value)
        // A URL carries the password percent-encoded; scrub that spelling too.
        if let encoded = option.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) { found.append(encoded) }
    }
    return found
}

/// The options a conninfo string or URL sets (with a value), as libpq itself parses it.
func conninfoOptions(_ conninfo: String?) -> [(keyword: String, value: String)] {
    guard let conninfo, !conninfo.isEmpty else { return [] }
    var parseError: UnsafeMutablePointer<CChar>?
    guard let options = PQconninfoParse(conninfo, &parseError) else {
        if let parseError { PQfreemem(parseError) }
        return []
    }
    defer { PQconninfoFree(options) }
    var found: [(keyword: String, value: String)] = []
    var option = options
    while let keyword = option.pointee.keyword {
        if let value = option.pointee.val { found.append((String(cString: keyword), String(cString: value))) }
        option += 1
    }
    return found
}

/// One connection parameter as libpq would use it for `conninfo`, and where it came from.
package struct ConnectionParameter: Sendable, Hashable {
    package enum Origin: Sendable, Hashable {
        /// The conninfo string or URL the program was given.
        case conninfo
        /// A libpq environment variable (PGHOST, ...).
        case environment(String)
        /// libpq's own default.
        case libpqDefault
    }

    package var keyword: String
    /// nil: libpq leaves it unset. A password is never returned, only whether one is set.
    package var value: String?
    package var origin: Origin
    package var isSecret: Bool
}

extension PostgresConnection {
    /// The parameters libpq would connect with for `conninfo` (nil: only the PG* environment
    /// and defaults), as it resolves them itself: the conninfo first, then its environment
    /// variables, then its compiled-in defaults. Service files and .pgpass are applied by
    /// libpq at connect time and are not resolved here. Secrets are replaced by "***".
    package static func effectiveParameters(_ conninfo: String?, environment: [String: String],
                                            keywords wanted: [String]) -> [ConnectionParameter] {
        let given = Dictionary(conninfoOptions(conninfo), uniquingKeysWith: { $1 })
        guard let defaults = PQconndefaults() else { return [] }
        defer { PQconninfoFree(defaults) }
        var byKeyword: [String: ConnectionParameter] = [:]
        var option = defaults
        while let keywordPointer = option.pointee.keyword {
            defer { option += 1 }
            let keyword = String(cString: keywordPointer)
            guard wanted.contains(keyword) else { continue }
            let secret = option.pointee.dispchar.map { String(cString: $0) == "*" } ?? false
            let variable = option.pointee.envvar.map { String(cString: $0) }
            var parameter: ConnectionParameter
            if let value = given[keyword] {
                parameter = ConnectionParameter(keyword: keyword, value: value, origin: .conninfo, isSecret: secret)
            } else if let variable, let value = environment[variable], !value.isEmpty {
                parameter = ConnectionParameter(keyword: keyword, value: value, origin: .environment(variable), isSecret: secret)
            } else {
                parameter = ConnectionParameter(keyword: keyword, value: option.pointee.compiled.map { String(cString: $0) },
                                                origin: .libpqDefault, isSecret: secret)
            }
            if secret, parameter.value != nil { parameter.value = "***" }
            byKeyword[keyword] = parameter
        }
        return wanted.compactMap { byKeyword[$0] }
    }
}

/// Calls `body` with NUL-terminated copies of `strings` (nil stays nil) that live for the call.
private func withCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.flatMap { strdup($0) } }
    defer { copies.forEach { free($0) } }
    return body(copies.map { $0.map { UnsafePointer($0) } })
}
