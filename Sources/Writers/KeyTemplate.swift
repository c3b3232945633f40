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

/// A key template that cannot be used; names the template and what is wrong.
package struct KeyTemplateError: Error, Sendable, CustomStringConvertible {
    package var name: String
    package var template: String
    package var problem: String
    package var description: String { "key template \(name)=\(template): \(problem)" }
}
