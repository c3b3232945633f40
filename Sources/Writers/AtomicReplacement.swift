import RESP

/// Where a key is built before RENAME swaps it in, so readers see the old or the new value,
/// never a mix. The temporary key hashes to the final key's cluster slot.
package enum AtomicReplacement {
    package static func temporaryKey(for key: String) -> String {
        if hasHashTag(key) {
            // The first {tag} decides the slot; a suffix keeps it.
            return key + ":sync-tmp"
        }
        return "{" + key + "}:sync-tmp"
    }

    /// Whether the key has a non-empty `{...}` hash tag, the Valkey Cluster rule.
    static func hasHashTag(_ key: String) -> Bool {
        guard let open = key.firstIndex(of: "{") else { return false }
        guard let close = key[key.index(after: open)...].firstIndex(of: "}") else { return false }
        return close != key.index(after: open)
    }
}
