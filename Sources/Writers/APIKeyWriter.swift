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

    package var registryKey: String { templates.prefix + KeyTemplates.apiKeyRegistry }
    package var columns: [String] { SourceTable.apiKeys.columns }

    /// Every `api_keys` row, `pageSize` at a time in id order; read them in
    /// `PostgresConnection.withSnapshot` so that the pages are one consistent table.
    package func pages(on postgres: PostgresConnection, pageSize: Int) -> KeysetPages {
        IDPageReader(connection: postgres, table: SourceTable.apiKeys.name, columns: columns, pageSize: pageSize).pages()
    }

    /// One hash to write.
    package struct Entry: Sendable {
        package var key: String
        package var values: [String]
    }

    /// A row that is not written, by its id only: the other values may be sensitive.
    package struct Skip: Sendable, Hashable {
        package var id: String
        package var reason: String
        /// A value that cannot be encoded (SPEC §11): the stage completes, then fails. Its
        /// cached hash, if any, is removed with the stale keys: a key the job cannot render
        /// truthfully is not left authenticating on old values.
        package var unencodable = false
    }

    package struct Plan: Sendable {
        package var entries: [Entry] = []
        package var skipped: [Skip] = []
        package var revoked = 0
    }

    /// The hashes one page of `rows` (from `pages`) becomes, each rendered by the `api_key`
    /// template. `seen` holds the keys of the pages before and gains this page's: a row that
    /// renders a key already seen is skipped.
    package func plan(_ rows: [PostgresRow], seen: inout Set<String>) throws -> Plan {
        var plan = Plan()
        plan.entries.reserveCapacity(rows.count)
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
                if encodings[column] == .verbatim {
                    values.append(row.text(column) ?? "")
                } else if let value = try? encodings[column].encode(row[column]) {
                    values.append(value)
                } else {
                    // Named by column only: the value may be as sensitive as the rest of the row.
                    plan.skipped.append(Skip(id: id, reason: "its \(columns[column]) value cannot be encoded", unencodable: true))
                    break
                }
            }
            guard values.count == columns.count else { continue }
            guard let keyBytes = template.render(prefix: prefix, { name in
                guard let index = columnIndex[name], row.text(index) != nil else { return nil }
                return Array(values[index].utf8)
            }) else {
                plan.skipped.append(Skip(id: id, reason: "the key template names a NULL column"))
                continue
            }
            let key = String(decoding: keyBytes, as: UTF8.self)
            guard seen.insert(key).inserted else {
                plan.skipped.append(Skip(id: id, reason: "it renders the same key as an earlier row"))
                continue
            }
            plan.entries.append(Entry(key: key, values: values))
        }
        return plan
    }

    /// SADD of every key of `entries`: sent before their hashes, so that a run killed
    /// half-way still knows every key it may have written.
    package func registration(of entries: [Entry]) -> CommandBatch {
        var batch = CommandBatch()
        for chunk in entries.chunks(of: 1000) {
            batch.appendCommand(argumentCount: 2 + chunk.count)
            batch.appendArgument("SADD")
            batch.appendArgument(registryKey)
            for entry in chunk { batch.appendArgument(entry.key) }
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

    /// How many keys earlier runs registered.
    package func registeredCount(_ valkey: any ValkeyClient) async throws -> Int {
        let reply = try await valkey.send("SCARD", registryKey)
        guard let count = reply.int else {
            throw ValkeyError(.protocolError, server: valkey.serverDescription, message: "unexpected SCARD reply for \(registryKey)")
        }
        return Int(count)
    }

    /// The registered keys that are not in `written`: rows deleted or rotated since; and the
    /// members the `api_key` template cannot render, which are left alone. The registry is
    /// read in chunks, never held whole.
    package func staleKeys(_ valkey: any ValkeyClient, written: Set<String>) async throws -> (stale: Set<String>, foreign: ForeignMembers) {
        var stale = Set<String>()
        var foreign = ForeignMembers()
        try await SetScan.chunks(of: registryKey, in: valkey) { chunk in
            for key in chunk where !written.contains(key) {
                if templates.isAPIKey(key) { stale.insert(key) } else { foreign.add(key) }
            }
            return true
        }
        return (stale, foreign)
    }
}
