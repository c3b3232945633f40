import RESP
import Timestamps
import Valkey
import Writers

/// The watermark rule of SPEC §4: after a page is acknowledged (every command answered
/// without error, and replicated where asked), the watermark moves to the page's last
/// timestamp, and only forward. A page without rows, or one that ends at or before the
/// current watermark (the overlap re-reading rows), leaves it where it is.
package enum WatermarkRule {
    /// Where the watermark moves after a page ending at `pageEnd` is acknowledged; nil when
    /// it stays at `current`.
    package static func next(current: Timestamp?, acknowledgedPageEndingAt pageEnd: Timestamp?) -> Timestamp? {
        guard let pageEnd else { return nil }
        if let current, pageEnd <= current { return nil }
        return pageEnd
    }
}

/// What a watermark key holds.
package enum WatermarkReading: Sendable, Hashable {
    /// No key: the table was never copied (or the cache was lost), a full copy of the window follows.
    case absent
    /// A timestamp.
    case at(Timestamp)
    /// Something else, verbatim: reported as such, never taken for absent.
    case malformed(String)

    package init(_ text: String?) {
        guard let text else { self = .absent; return }
        self = Timestamp(rfc3339: text).map(WatermarkReading.at) ?? .malformed(text)
    }
}

/// Reads and writes the watermark of each log table (SPEC §3 `sync:watermark:${table}`): the
/// one reader that the copy, `status` and `verify` use.
package struct WatermarkStore: Sendable {
    package let connection: any ValkeyClient
    package let templates: KeyTemplates

    package init(connection: any ValkeyClient, templates: KeyTemplates) {
        self.connection = connection
        self.templates = templates
    }

    package func key(for table: String) -> String { templates.key(.watermark, ["table": table]) }

    /// What the key holds.
    package func reading(_ table: String) async throws -> WatermarkReading {
        WatermarkReading(try await connection.send("GET", key(for: table)).string)
    }

    /// The table's watermark; nil when it was never set; a malformed value throws.
    package func read(_ table: String) async throws -> Timestamp? {
        switch try await reading(table) {
        case .absent: return nil
        case .at(let value): return value
        case .malformed(let text): throw WatermarkError(key: key(for: table), value: text)
        }
    }

    /// Stores `value`. The caller moves it by `WatermarkRule` alone, after an acknowledged
    /// page; the run lock keeps other runs out.
    package func write(_ table: String, _ value: Timestamp) async throws {
        _ = try await connection.send("SET", key(for: table), value.rfc3339)
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
