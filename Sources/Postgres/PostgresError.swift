import Timestamps

/// An error from PostgreSQL or libpq: SQLSTATE, the server's message, and which server — never the password.
package struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, coarsely enough to choose an exit code or a retry.
    package enum Kind: Sendable, Hashable {
        /// The connection string or URL cannot be parsed: fix the configuration.
        case invalidConninfo
        /// The server could not be reached or refused the connection: retry later.
        case connectionFailed
        /// The server rejected the credentials (SQLSTATE 28P01/28000): fix the configuration.
        case authenticationFailed
        /// The server rejected a statement.
        case query
        /// A value did not decode to the requested Swift type.
        case decoding
        /// An established connection broke.
        case connectionLost
        /// The server sent nothing for longer than the connection's timeout: connecting, or
        /// in the middle of a statement (a partition, a stopped server, a half-open socket).
        case timeout
    }

    package var kind: Kind
    package var sqlState: String?
    package var message: String
    package var detail: String?
    package var hint: String?
    /// host:port/dbname of the server concerned.
    package var server: String?
    /// The timeout that expired, for `.timeout`.
    package var timeout: Duration?

    package init(kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil, hint: String? = nil,
                server: String? = nil, timeout: Duration? = nil) {
        self.kind = kind
        self.timeout = timeout
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.server = server
    }

    package var description: String {
        var text: String
        switch kind {
        case .invalidConninfo: text = "the PostgreSQL connection string is invalid"
        case .connectionFailed: text = "cannot connect to PostgreSQL"
        case .authenticationFailed: text = "PostgreSQL rejected the credentials"
        case .query: text = "PostgreSQL query failed"
        case .decoding: text = "cannot decode a PostgreSQL value"
        case .connectionLost: text = "lost the PostgreSQL connection"
        case .timeout: text = "PostgreSQL timed out" + (timeout.map { " (timeout \($0.secondsText))" } ?? "")
        }
        if let server { text += " at \(server)" }
        text += ": \(message)"
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail { text += "; detail: \(detail)" }
        if let hint { text += "; hint: \(hint)" }
        return text
    }

    /// The error with every secret replaced; libpq may echo parts of a conninfo string back.
    func scrubbing(_ secrets: [String]) -> PostgresError {
        var copy = self
        copy.message = scrub(message, secrets)
        copy.detail = detail.map { scrub($0, secrets) }
        copy.hint = hint.map { scrub($0, secrets) }
        copy.server = server.map { scrub($0, secrets) }
        return copy
    }
}

func scrub(_ text: String, _ secrets: [String]) -> String {
    var text = text
    for secret in secrets where !secret.isEmpty {
        text = text.replacing(secret, with: "***")
    }
    return text
}
