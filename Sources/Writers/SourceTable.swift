/// A PostgreSQL table of SPEC §2 the job copies, with the columns it reads in hash-field order.
public struct SourceTable: Sendable, Hashable {
    /// The table name in PostgreSQL, also `${table}` of the watermark key.
    public let name: String
    public let columns: [String]

    public static let usageLogs = SourceTable(name: "usage_logs", columns: [
        "id", "api_key_id", "asset", "price", "source", "cached", "latency_ms", "duration_ms",
        "ip_address", "timestamp", "readable_timestamp", "cache_age_seconds", "cluster_node",
        "region", "monthly_usage", "monthly_limit",
    ])

    public static let reportUsageLogs = SourceTable(name: "report_usage_logs", columns: [
        "id", "api_key_id", "report_type", "format", "filters", "row_count", "duration_ms",
        "ip_address", "timestamp", "readable_timestamp", "cluster_node", "region", "protocol",
        "status_code",
    ])

    public static let apiKeys = SourceTable(name: "api_keys", columns: [
        "id", "user_id", "name", "tier", "query_limit", "current_usage", "rate_limit_qps",
        "burst_limit", "burst_tokens", "api_key", "minimum_wait_seconds", "revoked",
        "lrs_enabled", "last_used", "created_at", "last_success",
    ])

    public static let applicationParameters = SourceTable(
        name: "application_parameters", columns: ["name", "value"])
}

/// A log table copied incrementally (SPEC §4): its entry hash and its sorted-set indexes.
public struct LogTable: Sendable {
    public let source: SourceTable
    public let entry: KeyTemplates.Name
    public let indexes: [KeyTemplates.Name]

    public static let usageLogs = LogTable(
        source: .usageLogs, entry: .usageLog,
        indexes: [.usageLogsIndex, .usageLogsIndexApiKey, .usageLogsIndexAsset])

    public static let reportUsageLogs = LogTable(
        source: .reportUsageLogs, entry: .reportUsageLog,
        indexes: [.reportUsageLogsIndex, .reportUsageLogsIndexApiKey])

    public var name: String { source.name }
}
