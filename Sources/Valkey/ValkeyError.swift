/// A failure talking to Valkey: which server, what kind, and a message that never holds a password.
package struct ValkeyError: Error, Sendable, CustomStringConvertible {
    /// What went wrong. The program maps kinds to exit codes (SPEC §8):
    /// - 64 (bad usage or configuration): `invalidConfiguration`, `authenticationFailed`,
    ///   `tlsFailed` (a certificate or TLS setting the server or client rejects);
    /// - 75 (temporary, retry on the next schedule): `connectionFailed`, `timeout`,
    ///   `connectionClosed`, `protocolError`;
    /// - 1 (a stage failed): `server`, an error reply to a command.
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

        /// The process exit code of SPEC §8 for this kind of failure.
        package var exitCode: Int32 {
            switch self {
            case .invalidConfiguration, .authenticationFailed, .tlsFailed: return 64
            case .connectionFailed, .timeout, .connectionClosed, .protocolError: return 75
            case .server: return 1
            }
        }

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

    /// An error reply saying the server cannot serve right now (a replica after a failover,
    /// loading its data, a cluster reconfiguring, a busy script), which a later run will get
    /// past: exit 75, not 1. `OOM`, `MISCONF` and other refusals need an operator: exit 1.
    package static func isTemporaryReply(_ message: String) -> Bool {
        ["READONLY", "LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "BUSY"].contains { message.hasPrefix($0) }
    }

    package var isTemporaryReply: Bool { kind == .server && Self.isTemporaryReply(message) }

    package var description: String {
        if let server {
            return "Valkey \(server): \(kind): \(message)"
        }
        return "Valkey: \(kind): \(message)"
    }
}
