/// Which members of the job's registries (`sync:api_keys`, `sync:indexes:${table}`) are the
/// job's own keys. A registry is a set anyone with access can add to, by hand or by a bug; a
/// member that its family's template (with the key prefix) cannot render may be another
/// service's key, so bookkeeping ignores it and reports it, and never deletes or trims it.
extension KeyTemplates {
    /// Whether `key` is one of `table`'s per-API-key or per-asset index keys (the global index
    /// included).
    package func isIndexKey(_ key: String, of table: LogTable) -> Bool {
        table.indexes.contains { self[$0].matches(key, prefix: prefix) }
    }

    /// Whether `key` is an API-key hash the `api_key` template renders.
    package func isAPIKey(_ key: String) -> Bool {
        self[.apiKey].matches(key, prefix: prefix)
    }
}

/// Registry members left alone because they are not the family's keys: how many, and the
/// first few (shortened) for the report.
package struct ForeignMembers: Sendable, Hashable {
    package var count = 0
    package var first: [String] = []

    package init() {}

    package mutating func add(_ member: String) {
        count += 1
        if first.count < 5 { first.append(member.count > 80 ? member.prefix(80) + "…" : member) }
    }

    package mutating func merge(_ other: ForeignMembers) {
        count += other.count
        first += other.first.prefix(max(0, 5 - first.count))
    }
}
