import Postgres
import RESP
import Valkey

/// The API-key family (SPEC §5): one hash per `api_keys` row, without TTL, and a registry
/// set of every key written, so that a later run can delete the keys of rows deleted or
/// rotated since without KEYS or a SCAN of the keyspace. No API key string reaches a message.
package struct APIKeyWriter: Sendable {
    package let templates: KeyTemplates

    package init(templates: KeyTemplates) {
        self.templates = templates
    }

    package var registryKey: String { templates.prefix + "sync:api_keys" }
    package var columns: [String] { SourceTable.apiKeys.columns }
    package var query: String { SourceTable.apiKeys.selectAll + " order by id" }

    /// One hash to write.
    package struct Entry: Sendable {
        package var key: String
        package var values: [String]
    }

    /// A row that is not written, by its id only: the other values may be sensitive.
    package struct Skip: Sendable, Hashable {
        package var id: String
        package var reason: String
    }

    package struct Plan: Sendable {
        package var entries: [Entry] = []
        package var keys = Set<String>()
        package var skipped: [Skip] = []
        package var revoked = 0
    }

    /// The hashes `rows` (read with `query`) become, each rendered by the `api_key` template.
    package func plan(_ rows: [PostgresRow]) throws -> Plan {
        var plan = Plan()
        plan.entries.reserveCapacity(rows.count)
        plan.keys.reserveCapacity(rows.count)
        let template = templates[.apiKey]
        let prefix = Array(templates.prefix.utf8)
        let columns = columns
        let columnIndex = Dictionary(uniqueKeysWithValues: columns.enumerated().map { ($1, $0) })
        let apiKeyColumn = columnIndex["api_key"]!
        let revokedColumn = columnIndex["revoked"]
        let encodings = rows.first.map { first in (0..<first.count).map { FieldEncoding(typeOID: first[$0].typeOID) } } ?? []
        for row in rows {
            let id = row.text(0) ?? "?"
            if let revokedColumn, let revoked = row.text(revokedColumn), revoked == "t" || revoked == "true" { plan.revoked += 1 }
            guard row.text(apiKeyColumn) != nil else {
                plan.skipped.append(Skip(id: id, reason: "the api_key is NULL"))
                continue
            }
            var values: [String] = []
            values.reserveCapacity(columns.count)
            for column in 0..<columns.count {
                // PostgreSQL's text is the field as it is for most types: no cell to build.
                values.append(encodings[column] == .verbatim ? row.text(column) ?? "" : try encodings[column].encode(row[column]))
            }
            guard let keyBytes = template.render(prefix: prefix, { name in
                guard let index = columnIndex[name], row.text(index) != nil else { return nil }
                return Array(values[index].utf8)
            }) else {
                plan.skipped.append(Skip(id: id, reason: "the key template names a NULL column"))
                continue
            }
            let key = String(decoding: keyBytes, as: UTF8.self)
            guard plan.keys.insert(key).inserted else {
                plan.skipped.append(Skip(id: id, reason: "it renders the same key as an earlier row"))
                continue
            }
            plan.entries.append(Entry(key: key, values: values))
        }
        return plan
    }

    /// SADD of every key to be written: sent first, so that a run killed half-way still
    /// knows every key it may have written.
    package func registration(of keys: Set<String>) -> CommandBatch {
        var batch = CommandBatch()
        for chunk in Array(keys).chunks(of: 1000) {
            batch.appendCommand(argumentCount: 2 + chunk.count)
            batch.appendArgument("SADD")
            batch.appendArgument(registryKey)
            for key in chunk { batch.appendArgument(key) }
        }
        return batch
    }

    /// One HSET per entry.
    package func hashes(_ entries: ArraySlice<Entry>) -> CommandBatch {
        var batch = CommandBatch()
        for entry in entries {
            batch.appendCommand(argumentCount: 2 + 2 * columns.count)
            batch.appendArgument("HSET")
            batch.appendArgument(entry.key)
            for (column, value) in zip(columns, entry.values) {
                batch.appendArgument(column)
                batch.appendArgument(value)
            }
        }
        return batch
    }

    /// Deletes `stale` keys and forgets them. One DEL per key: in cluster mode the keys live
    /// in different slots.
    package func removal(of stale: Set<String>) -> CommandBatch {
        var batch = CommandBatch()
        let sorted = stale.sorted()
        for key in sorted { batch.append("DEL", key) }
        for chunk in sorted.chunks(of: 1000) { batch.append(["SREM", registryKey] + chunk) }
        return batch
    }

    /// The keys an earlier run wrote.
    package func registeredKeys(_ valkey: any ValkeyClient) async throws -> Set<String> {
        try await SetScan.members(of: registryKey, in: valkey)
    }
}
