import Postgres
import RESP
import Timestamps
import Valkey

/// Reads and advances the watermark of each log table (SPEC §3 `sync:watermark:${table}`).
package struct WatermarkStore: Sendable {
    package let connection: any ValkeyClient
    private let keyForTable: @Sendable (String) -> String

    /// `keyForTable` gives the full key (prefix included) of a table's watermark.
    package init(connection: any ValkeyClient, keyForTable: @escaping @Sendable (String) -> String) {
        self.connection = connection
        self.keyForTable = keyForTable
    }

    package func key(for table: String) -> String { keyForTable(table) }

    /// The stored text, verbatim (nil when absent): what `status` prints.
    package func rawValue(for table: String) async throws -> String? {
        try await connection.send("GET", key(for: table)).string
    }

    /// The table's watermark; nil when it was never set.
    package func read(_ table: String) async throws -> Timestamp? {
        guard let text = try await rawValue(for: table) else { return nil }
        guard let value = Timestamp(rfc3339: text) else {
            throw WatermarkError(key: key(for: table), value: text)
        }
        return value
    }

    /// Stores `value` as is. The caller guarantees it is later than the stored watermark (the
    /// copy keeps the current one in memory; the run lock keeps other runs out).
    package func write(_ table: String, _ value: Timestamp) async throws {
        _ = try await connection.send("SET", key(for: table), value.rfc3339)
    }

    /// Moves the watermark to `value` unless it already stands there or later; a watermark
    /// never moves backwards. Call it only once every command of the page was acknowledged.
    /// Returns the watermark after the call.
    @discardableResult
    package func advance(_ table: String, to value: Timestamp) async throws -> Timestamp {
        // One run at a time holds the lock (SPEC §8), so read-then-write cannot race another run.
        if let current = try await read(table), current >= value { return current }
        _ = try await connection.send("SET", key(for: table), value.rfc3339)
        return value
    }
}

/// A watermark key that holds something other than an RFC 3339 timestamp.
package struct WatermarkError: Error, Sendable, CustomStringConvertible {
    package var key: String
    package var value: String
    package init(key: String, value: String) {
        self.key = key
        self.value = value
    }
    package var description: String {
        "watermark \(key) holds \"\(value.prefix(64))\", which is not an RFC 3339 timestamp; fix or delete the key"
    }
}
