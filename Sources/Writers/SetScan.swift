import RESP
import Valkey

/// The members of a set, read with SSCAN in chunks: registries of API keys and index keys.
package enum SetScan {
    /// Visits the members of `key` chunk by chunk until the end or until `visit` returns false.
    /// A member may be visited twice (SSCAN's guarantee); removals while visiting are safe.
    package static func chunks(of key: String, count: Int = 1000, in valkey: any ValkeyClient,
                               _ visit: ([String]) async throws -> Bool) async throws {
        var cursor = "0"
        repeat {
            let reply = try await valkey.send("SSCAN", key, cursor, "COUNT", String(count))
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw ValkeyError(.protocolError, server: valkey.serverDescription, message: "unexpected SSCAN reply for \(key)")
            }
            cursor = next
            guard try await visit((parts[1].array ?? []).compactMap(\.string)) else { return }
        } while cursor != "0"
    }

    /// Every member of `key`.
    package static func members(of key: String, in valkey: any ValkeyClient) async throws -> Set<String> {
        var members = Set<String>()
        try await chunks(of: key, in: valkey) { chunk in
            members.formUnion(chunk)
            return true
        }
        return members
    }
}

extension Array {
    /// Consecutive slices of at most `size` elements.
    package func chunks(of size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
