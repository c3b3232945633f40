/// A key name with `${field}` placeholders; every other character, `{hash tags}` included, is literal.
package struct KeyTemplate: Sendable, Hashable, CustomStringConvertible {
    enum Part: Sendable, Hashable {
        case literal([UInt8])
        case field(String)
    }

    /// The template as configured, e.g. `usage_logs:index:api_key:${api_key_id}`.
    package let text: String
    let parts: [Part]

    /// The placeholder names, in order of appearance.
    package var fields: [String] {
        parts.compactMap { if case .field(let name) = $0 { name } else { nil } }
    }

    package var description: String { text }

    /// Parses `text`; `allowedFields` is what its placeholders may name.
    package init(_ text: String, allowedFields: Set<String>, name: String) throws(KeyTemplateError) {
        self.text = text
        var parts: [Part] = []
        var literal: [UInt8] = []
        let bytes = Array(text.utf8)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "$"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "{") {
                guard let close = bytes[(index + 2)...].firstIndex(of: UInt8(ascii: "}")) else {
                    throw KeyTemplateError(name: name, template: text, problem: "a `${` has no closing `}`")
                }
                let field = String(decoding: bytes[(index + 2)..<close], as: UTF8.self)
                guard !field.isEmpty else {
                    throw KeyTemplateError(name: name, template: text, problem: "`${}` names no field")
                }
                guard allowedFields.contains(field) else {
                    let known = allowedFields.sorted().joined(separator: ", ")
                    throw KeyTemplateError(
                        name: name, template: text,
                        problem: "unknown field `${\(field)}`" + (known.isEmpty ? "; this key takes no placeholders" : "; known fields: \(known)"))
                }
                if !literal.isEmpty {
                    parts.append(.literal(literal))
                    literal = []
                }
                parts.append(.field(field))
                index = close + 1
            } else {
                literal.append(bytes[index])
                index += 1
            }
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        guard !parts.isEmpty else {
            throw KeyTemplateError(name: name, template: text, problem: "the template is empty")
        }
        self.parts = parts
    }

    /// The key for these values, or nil when a placeholder's value is missing (NULL).
    package func render(prefix: [UInt8] = [], _ value: (String) -> [UInt8]?) -> [UInt8]? {
        var key = prefix
        for part in parts {
            switch part {
            case .literal(let bytes): key.append(contentsOf: bytes)
            case .field(let name):
                guard let bytes = value(name) else { return nil }
                key.append(contentsOf: bytes)
            }
        }
        return key
    }

    /// The key as a string, for templates without placeholders or with string values.
    package func render(prefix: String = "", _ values: [String: String] = [:]) -> String? {
        render(prefix: Array(prefix.utf8)) { values[$0].map { Array($0.utf8) } }
            .map { String(decoding: $0, as: UTF8.self) }
    }
}

extension KeyTemplate {
    /// One position of a template seen as a pattern: a literal byte, or a placeholder, which
    /// may render as any text (empty included).
    private enum Token: Equatable {
        case byte(UInt8)
        case any
    }

    private var tokens: [Token] {
        parts.flatMap { part -> [Token] in
            switch part {
            case .literal(let bytes): bytes.map(Token.byte)
            case .field: [.any]
            }
        }
    }

    /// Whether `key` is one this template renders after `prefix`, whatever its placeholders'
    /// values: how bookkeeping tells its own members from keys it must not touch.
    package func matches(_ key: String, prefix: String) -> Bool {
        let key = Array(key.utf8), prefix = Array(prefix.utf8)
        guard key.starts(with: prefix) else { return false }
        let pattern = tokens
        // Wildcard matching with one backtracking point: O(key × template) at worst.
        var p = 0, k = prefix.count, star = -1, resume = 0
        while k < key.count {
            if p < pattern.count, pattern[p] == .byte(key[k]) {
                p += 1; k += 1
            } else if p < pattern.count, pattern[p] == .any {
                star = p; resume = k; p += 1
            } else if star >= 0 {
                p = star + 1; resume += 1; k = resume
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == .any { p += 1 }
        return p == pattern.count
    }

    /// Whether some values of the placeholders make both templates render the same key: the
    /// literal parts are compared with every placeholder standing for any text.
    package func canRenderSameKey(as other: KeyTemplate) -> Bool {
        let a = tokens, b = other.tokens
        // Depth-first search over (position in a, position in b); each pair is visited once.
        var visited = Set<Int>()
        var pending = [(0, 0)]
        while let (i, j) = pending.popLast() {
            guard visited.insert(i * (b.count + 1) + j).inserted else { continue }
            if i == a.count && j == b.count { return true }
            if i < a.count, a[i] == .any {
                pending.append((i + 1, j))              // a's placeholder ends here
                if j < b.count { pending.append((i, j + 1)) }  // it covers b's next position
            }
            if j < b.count, b[j] == .any {
                pending.append((i, j + 1))
                if i < a.count { pending.append((i + 1, j)) }
            }
            if i < a.count, j < b.count, case .byte(let x) = a[i], case .byte(let y) = b[j], x == y {
                pending.append((i + 1, j + 1))
            }
        }
        return false
    }
}

/// A key template that cannot be used; names the template and what is wrong.
package struct KeyTemplateError: Error, Sendable, CustomStringConvertible {
    package var name: String
    package var template: String
    package var problem: String
    package var description: String { "key template \(name)=\(template): \(problem)" }
}
