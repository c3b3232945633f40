import Postgres

/// A PostgreSQL table of SPEC §2 the job copies, with the columns it reads in hash-field order.
package struct SourceTable: Sendable, Hashable {
    /// The table name in PostgreSQL, also `${table}` of the watermark key.
    package let name: String
    package let columns: [String]

    /// `select` of the columns, in order, from the table.
    package var selectAll: String {
        "select " + columns.map(quoteIdentifier).joined(separator: ", ") + " from " + quoteIdentifier(name)
    }

    package static let usageLogs = SourceTable(name: "usage_logs", columns: [
        "id", "api_key_id", "asset", "price", "source", "cached", "latency_ms", "duration_ms",
        "ip_address", "timestamp", "readable_timestamp", "cache_age_seconds", "cluster_node",
        "region", "monthly_usage", "monthly_limit",
    ])

    package static let reportUsageLogs = SourceTable(name: "report_usage_logs", columns: [
        "id", "api_key_id", "report_type", "format", "filters", "row_count", "duration_ms",
        "ip_address", "timestamp", "readable_timestamp", "cluster_node", "region", "protocol",
        "status_code",
    ])

    package static let apiKeys = SourceTable(name: "api_keys", columns: [
        "id", "user_id", "name", "tier", "query_limit", "current_usage", "rate_limit_qps",
        "burst_limit", "burst_tokens", "api_key", "minimum_wait_seconds", "revoked",
        "lrs_enabled", "last_used", "created_at", "last_success",
    ])

    package static let applicationParameters = SourceTable(
        name: "application_parameters", columns: ["name", "value"])
}

/// A log table copied incrementally (SPEC §4): its entry hash and its sorted-set indexes.
package struct LogTable: Sendable {
    package let source: SourceTable
    package let entry: KeyTemplates.Name
    package let indexes: [KeyTemplates.Name]

    package static let usageLogs = LogTable(
        source: .usageLogs, entry: .usageLog,
        indexes: [.usageLogsIndex, .usageLogsIndexApiKey, .usageLogsIndexAsset])

    package static let reportUsageLogs = LogTable(
        source: .reportUsageLogs, entry: .reportUsageLog,
        indexes: [.reportUsageLogsIndex, .reportUsageLogsIndexApiKey])

    package var name: String { source.name }
}
