import ArgumentParser
import Foundation

/// The connection and behaviour settings shared by every command (SPEC §8). Each flag has a
/// variable; the flag wins.
struct SettingsOptions: ParsableArguments {
    @Option(name: .customLong("postgres-url"), help: ArgumentHelp(
        "libpq URL or conninfo of the source database; unset: libpq's own PG* environment, service file and .pgpass, as for psql. (DATABASE_URL)",
        valueName: "url"))
    var postgresURL: String?

    @Option(name: .customLong("postgres-password-file"), help: ArgumentHelp(
        "File whose first line is the PostgreSQL password (a mounted secret); wins over the URL, PGPASSWORD and .pgpass. (SYNC_POSTGRES_PASSWORD_FILE)",
        valueName: "path"))
    var postgresPasswordFile: String?

    @Option(name: .customLong("valkey-url"), help: ArgumentHelp(
        "Valkey server: valkey:// or redis:// plain, valkeys:// or rediss:// TLS; ACL user and password in the userinfo, database number in the path. Default valkey://127.0.0.1:6379. (VALKEY_URL)",
        valueName: "url"))
    var valkeyURL: String?

    @Option(name: .customLong("valkey-password-file"), help: ArgumentHelp(
        "File whose first line is the Valkey password (a mounted secret); wins over the URL's. (SYNC_VALKEY_PASSWORD_FILE)",
        valueName: "path"))
    var valkeyPasswordFile: String?

    @Option(name: .customLong("valkey-ca-file"), help: ArgumentHelp("CA certificates (PEM) to verify the Valkey server with. (SYNC_VALKEY_CA_FILE)", valueName: "path"))
    var valkeyCAFile: String?

    @Option(name: .customLong("valkey-cert-file"), help: ArgumentHelp("Client certificate (PEM) for Valkey TLS. (SYNC_VALKEY_CERT_FILE)", valueName: "path"))
    var valkeyCertFile: String?

    @Option(name: .customLong("valkey-key-file"), help: ArgumentHelp("Client private key (PEM) for Valkey TLS. (SYNC_VALKEY_KEY_FILE)", valueName: "path"))
    var valkeyKeyFile: String?

    @Option(name: .customLong("valkey-tls-server-name"), help: ArgumentHelp("Name to verify the Valkey server certificate against, when it differs from the URL's host. (SYNC_VALKEY_TLS_SERVER_NAME)", valueName: "name"))
    var valkeyTLSServerName: String?

    @Flag(name: .customLong("valkey-cluster"), help: "Talk to a Valkey cluster. (SYNC_VALKEY_CLUSTER=1)")
    var valkeyCluster = false

    @Option(name: .customLong("batch-size"), help: ArgumentHelp("Rows per page and pipeline (default 2000). (SYNC_BATCH_SIZE)", valueName: "rows"))
    var batchSize: String?

    @Option(name: .customLong("retention-days"), help: ArgumentHelp("Days usage and report logs are kept (default 93). (SYNC_RETENTION_DAYS)", valueName: "days"))
    var retentionDays: String?

    @Option(name: .customLong("overlap"), help: ArgumentHelp("How far before the watermark each copy re-reads, e.g. 5m, 30s (default 5m). (SYNC_OVERLAP)", valueName: "duration"))
    var overlap: String?

    @Option(name: .customLong("settle"), help: ArgumentHelp("How far behind the database clock each copy stops, e.g. 5s (default 5s). (SYNC_SETTLE)", valueName: "duration"))
    var settle: String?

    @Option(name: .customLong("docs"), help: ArgumentHelp("Documentation site for the search index: an http(s) base URL or a local directory holding manifest.json. (SYNC_DOCS)", valueName: "location"))
    var docs: String?

    @Option(name: .customLong("key-prefix"), help: ArgumentHelp("Prepended to every key the job writes (default empty). (SYNC_KEY_PREFIX)", valueName: "prefix"))
    var keyPrefix: String?

    @Option(name: .customLong("key-template"), help: ArgumentHelp("Overrides one key template of SPEC §3, e.g. usage_log=ul:${id}; repeatable. (SYNC_KEY_TEMPLATES, comma-separated)", valueName: "name=template"))
    var keyTemplates: [String] = []

    @Flag(name: .customLong("allow-empty-params"), help: "Let an empty application_parameters table clear the app:params hash.")
    var allowEmptyParams = false

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical (default info). (SYNC_LOG_LEVEL)", valueName: "level"))
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: ArgumentHelp("json (default off a terminal) or text. (SYNC_LOG_FORMAT)", valueName: "format"))
    var logFormat: String?

    @Option(name: .customLong("valkey-timeout"), help: ArgumentHelp("Longest wait for Valkey: connect, TLS handshake, HELLO/AUTH, and any reply without progress (default 30s). (SYNC_VALKEY_TIMEOUT)", valueName: "duration"))
    var valkeyTimeout: String?

    @Option(name: .customLong("postgres-timeout"), help: ArgumentHelp("Longest wait for PostgreSQL: connect, and any wait for the server's next bytes (default 60s). (SYNC_POSTGRES_TIMEOUT)", valueName: "duration"))
    var postgresTimeout: String?

    @Option(name: .customLong("max-runtime"), help: ArgumentHelp("Stop as on SIGTERM once the run has lasted this long, and exit 75 (default: no limit). (SYNC_MAX_RUNTIME)", valueName: "duration"))
    var maxRuntime: String?

    @Option(name: .customLong("wait-replicas"), help: ArgumentHelp("Replicas that must hold a page before its watermark moves (default 1 when the primary has replicas, else 0). (SYNC_WAIT_REPLICAS)", valueName: "count"))
    var waitReplicas: String?

    @Option(name: .customLong("max-hold"), help: ArgumentHelp("Longest the commit guard holds the copy back behind another session's open transaction (default 15m). (SYNC_MAX_HOLD)", valueName: "duration"))
    var maxHold: String?

    @Flag(name: .customLong("no-commit-guard"), help: "Do not hold the copy back behind other sessions' open transactions. (SYNC_COMMIT_GUARD=0)")
    var noCommitGuard = false

    @Option(name: .customLong("metrics-file"), help: ArgumentHelp("Write Prometheus text-format metrics here, atomically, for the node_exporter textfile collector. (SYNC_METRICS_FILE)", valueName: "path"))
    var metricsFile: String?
}
