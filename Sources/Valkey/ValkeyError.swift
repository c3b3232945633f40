/// A failure talking to Valkey: which server, what kind, and a message that never holds a password.
package struct ValkeyError: Error, Sendable, CustomStringConvertible {
    /// What went wrong; the program decides what each kind means for the run.
    package enum Kind: Sendable, Hashable, CustomStringConvertible {
        /// A bad URL, option or unreadable file; the message names the setting.
        case invalidConfiguration
        /// Unreachable, refused, DNS failure, or the connect timeout.
        case connectionFailed
        /// WRONGPASS, NOAUTH or NOPERM while authenticating (HELLO or AUTH).
        case authenticationFailed
        /// TLS handshake or certificate verification failed.
        case tlsFailed
        /// No reply within the command timeout; the connection was closed.
        case timeout
        /// The server closed the connection while commands were pending.
        case connectionClosed
        /// The server answered outside the RESP protocol.
        case protocolError
        /// The server answered a command with an error reply.
        case server

        package var description: String {
            switch self {
            case .invalidConfiguration: return "invalid configuration"
            case .connectionFailed: return "connection failed"
            case .authenticationFailed: return "authentication failed"
            case .tlsFailed: return "TLS failed"
            case .timeout: return "timeout"
            case .connectionClosed: return "connection closed"
            case .protocolError: return "protocol error"
            case .server: return "server error"
            }
        }
    }

    package var kind: Kind
    /// `host:port`, when the failure concerns a server.
    package var server: String?
    package var message: String

    package init(_ kind: Kind, server: String?, message: String) {
        self.kind = kind
        self.server = server
        self.message = message
    }

    package var isTemporaryReply: Bool { kind == .server && ValkeyReply.isTemporary(message) }

    package var description: String {
        if let server {
            return "Valkey \(server): \(kind): \(message)"
        }
        return "Valkey: \(kind): \(message)"
    }
}

/// What an error reply's first word says about the server (SPEC §10).
package enum ValkeyReply {
    /// The server cannot serve right now and will again without an operator: a replica after
    /// a failover, loading its data, a cluster reconfiguring, a busy script. `OOM`, `MISCONF`
    /// and other refusals need an operator.
    package static let temporaryCodes: Set<Substring> = ["READONLY", "LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "BUSY"]
    /// The temporary replies the cluster client retries itself, at the same node after a
    /// pause; the others end the batch.
    package static let retriedInCluster: Set<Substring> = ["TRYAGAIN", "CLUSTERDOWN", "LOADING"]

    /// The reply's code: its first word ("OOM", "READONLY", ...).
    package static func code(_ message: String) -> Substring {
        message.prefix { $0 != " " }
    }

    package static func isTemporary(_ message: String) -> Bool {
        temporaryCodes.contains(code(message))
    }
}
