import Logging
import Postgres
import RESP
import Valkey
import Writers

/// The `api-keys` stage (SPEC §5): every `api_keys` row as a hash without TTL. A registry set
/// of the keys written lets each run delete the keys of rows deleted or rotated since,
/// without KEYS or a SCAN of the keyspace. API key strings never reach a log line.
struct APIKeysStage {
    let configuration: Configuration
    let dryRun: Bool
    let logger: Logger

    var registryKey: String { configuration.keys.prefix + "sync:api_keys" }

    func run(postgres: PostgresConnection, valkey: any ValkeyClient, report: inout StageReport) async throws {
        let columns = SourceTable.apiKeys.columns
        let rows = try await postgres.query(
            "select " + columns.map(quoteIdentifier).joined(separator: ", ") + " from api_keys order by id")
        report.count("read", rows.count)
        let template = configuration.keys[.apiKey]
        let prefix = Array(configuration.keys.prefix.utf8)
        let apiKeyColumn = columns.firstIndex(of: "api_key")!
        let encodings = rows.first.map { first in (0..<first.count).map { FieldEncoding(typeOID: first[$0].typeOID) } } ?? []

        var batch = CommandBatch()
        var written = Set<String>()
        var skipped = 0
        var entries: [(key: String, values: [String])] = []
        for row in rows {
            guard !row[apiKeyColumn].isNull else {
                skipped += 1
                // Only the row id: the other values may be sensitive.
                logger.warning("api_keys row has a NULL api_key; skipped", metadata: ["id": "\(row[0].text ?? "?")"])
                continue
            }
            var values: [String] = []
            values.reserveCapacity(columns.count)
            for column in 0..<columns.count { values.append(try encodings[column].encode(row[column])) }
            guard let keyBytes = template.render(prefix: prefix, { name in
                guard let index = columns.firstIndex(of: name), !row[index].isNull else { return nil }
                return Array(values[index].utf8)
            }) else {
                skipped += 1
                logger.warning("api_keys row: the key template names a NULL column; skipped", metadata: ["id": "\(row[0].text ?? "?")"])
                continue
            }
            let key = String(decoding: keyBytes, as: UTF8.self)
            if !written.insert(key).inserted {
                skipped += 1
                logger.warning("api_keys row renders the same key as an earlier row; skipped", metadata: ["id": "\(row[0].text ?? "?")"])
                continue
            }
            entries.append((key, values))
        }
        report.count("skipped", skipped)

        let previous = try await registeredKeys(valkey)
        // Every request authenticates against these keys: an empty source (a wrong database
        // or search_path, a failed migration) must not wipe them.
        guard !rows.isEmpty || previous.isEmpty else {
            throw StageFailure("api_keys is empty; the \(previous.count) cached API keys were left in place (check the database and search_path)")
        }
        let stale = previous.subtracting(written)
        report.count(dryRun ? "would_write" : "written", entries.count)
        report.count(dryRun ? "would_remove" : "removed", stale.count)
        report.count("revoked", rows.filter { (try? $0["revoked"]?.decode(Bool.self)) == true }.count)
        if dryRun { return }

        // Register first: a run killed half-way still knows every key it may have written.
        for chunk in written.sorted().chunks(of: 1000) {
            batch.appendCommand(argumentCount: 2 + chunk.count)
            batch.appendArgument("SADD")
            batch.appendArgument(registryKey)
            for key in chunk { batch.appendArgument(key) }
        }
        try await send(&batch, valkey)
        for entry in entries {
            batch.appendCommand(argumentCount: 2 + 2 * columns.count)
            batch.appendArgument("HSET")
            batch.appendArgument(entry.key)
            for (column, value) in zip(columns, entry.values) {
                batch.appendArgument(column)
                batch.appendArgument(value)
            }
            if batch.count >= configuration.batchSize { try await send(&batch, valkey) }
        }
        try await send(&batch, valkey)
        // One DEL per key: in cluster mode the keys live in different slots.
        for key in stale.sorted() { batch.append("DEL", key) }
        for chunk in stale.sorted().chunks(of: 1000) { batch.append(["SREM", registryKey] + chunk) }
        try await send(&batch, valkey)
    }

    private func registeredKeys(_ valkey: any ValkeyClient) async throws -> Set<String> {
        var keys = Set<String>()
        var cursor = "0"
        repeat {
            let reply = try await valkey.send("SSCAN", registryKey, cursor, "COUNT", "1000")
            guard let parts = reply.array, parts.count == 2 else {
                throw StageFailure("unexpected SSCAN reply for \(registryKey)")
            }
            cursor = parts[0].string ?? "0"
            for member in parts[1].array ?? [] { if let key = member.string { keys.insert(key) } }
        } while cursor != "0"
        return keys
    }

    private func send(_ batch: inout CommandBatch, _ valkey: any ValkeyClient) async throws {
        guard !batch.isEmpty else { return }
        let outcome = try await valkey.executeCountingErrors(batch)
        batch.removeAll(keepingCapacity: true)
        if let first = outcome.firstErrors.first {
            // The reply names no key string, so it is safe to show.
            throw StageFailure.refused(by: valkey.serverDescription, "\(outcome.errorCount) api-key command(s)", reply: first.message)
        }
    }
}

extension Array {
    func chunks(of size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
