import Postgres
import SearchIndex
import Valkey
import Watermarks
import Writers

/// SPEC §8: what each failure means for the process — 64 for configuration or credentials
/// an operator must fix, 75 for a temporary condition the next scheduled run gets past, 1 for
/// a stage that failed — and which setting an operator should look at. The libraries only
/// say what happened; this is the one place that decides.
enum ExitCodes {
    static let usage: Int32 = 64
    static let temporary: Int32 = 75
    static let failed: Int32 = 1

    static func code(for error: any Error) -> Int32 {
        switch error {
        case let error as ValkeyError:
            switch error.kind {
            case .invalidConfiguration, .authenticationFailed, .tlsFailed: return usage
            case .connectionFailed, .timeout, .connectionClosed, .protocolError: return temporary
            case .server: return ValkeyReply.isTemporary(error.message) ? temporary : failed
            }
        case let refusal as CacheRefusal:
            return refusal.isTemporary ? temporary : failed
        case let error as PostgresError:
            switch error.kind {
            case .authenticationFailed, .invalidConninfo: return usage
            case .connectionFailed, .connectionLost, .timeout: return temporary
            case .query, .decoding: return failed
            }
        case is ConfigurationError:
            return usage
        case let error as SearchIndexError:
            // A manifest that cannot be fetched may be a passing outage; a bad location or
            // manifest needs an operator.
            if case .manifestUnreadable = error { return temporary }
            return usage
        default:
            return failed
        }
    }

    /// " — check …": the settings that decide what failed, for the message on stderr.
    static func hint(for error: any Error) -> String {
        switch error {
        case let error as PostgresError where error.kind == .authenticationFailed:
            return " — check the user and password in --postgres-url / DATABASE_URL, PGPASSWORD or ~/.pgpass"
        case let error as PostgresError where error.kind == .invalidConninfo:
            return " — check --postgres-url / DATABASE_URL"
        case let error as PostgresError where error.kind == .connectionFailed:
            return " — is the server running and reachable? check --postgres-url / DATABASE_URL or the PG* environment"
        case let error as PostgresError where error.kind == .timeout:
            return " — raise --postgres-timeout / SYNC_POSTGRES_TIMEOUT if the server is only slow"
        case let error as ValkeyError where error.kind == .authenticationFailed:
            return " — check the user and password in --valkey-url / VALKEY_URL"
        case let error as ValkeyError where error.kind == .connectionFailed:
            return " — is the server running and reachable? check --valkey-url / VALKEY_URL"
        case let error as ValkeyError where error.kind == .timeout:
            return " — raise --valkey-timeout / SYNC_VALKEY_TIMEOUT if the server is only slow"
        case let error as ValkeyError where error.kind == .tlsFailed:
            return " — check --valkey-ca-file, --valkey-cert-file, --valkey-key-file and --valkey-tls-server-name"
        case is SearchIndexError:
            return " — check --docs / SYNC_DOCS"
        default:
            return ""
        }
    }
}
