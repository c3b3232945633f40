import Foundation

/// The documentation site's manifest (SPEC §7): languages, documents, and where each lives.
package struct DocsManifest: Sendable, Hashable {
    /// A `path` or `url` template whose only placeholders are `${lang}` and `${doc}`.
    package struct Template: Sendable, Hashable {
        package let text: String

        /// Validates the template; `field` names it in errors (`path`, `overrides.en.url`).
        package init(_ text: String, field: String) throws(DocsManifestError) {
            var rest = Substring(text)
            var sawDoc = false
            while let open = rest.range(of: "${") {
                guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                    throw .unterminatedPlaceholder(field: field, template: text)
                }
                let name = rest[open.upperBound..<close]
                switch name {
                case "lang": break
                case "doc": sawDoc = true
                default: throw .unknownPlaceholder(field: field, placeholder: String(name), template: text)
                }
                rest = rest[rest.index(after: close)...]
            }
            // Without `${doc}` every document of a language would share one path or URL.
            guard sawDoc else { throw .missingDocPlaceholder(field: field, template: text) }
            self.text = text
        }

        package func expand(lang: String, doc: String) -> String {
            text.replacingOccurrences(of: "${lang}", with: lang)
                .replacingOccurrences(of: "${doc}", with: doc)
        }
    }

    /// Per-language replacements for `path` and/or `url`.
    package struct Override: Sendable, Hashable {
        package var path: Template?
        package var url: Template?
    }

    package var languages: [String]
    package var documents: [String]
    package var pathTemplate: Template
    package var urlTemplate: Template
    package var overrides: [String: Override]

    package init(languages: [String], documents: [String], pathTemplate: Template, urlTemplate: Template, overrides: [String: Override] = [:]) {
        self.languages = languages
        self.documents = documents
        self.pathTemplate = pathTemplate
        self.urlTemplate = urlTemplate
        self.overrides = overrides
    }

    package init(json: Data) throws(DocsManifestError) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: json)
        } catch {
            throw .invalidJSON(String(describing: error))
        }
        guard let root = object as? [String: Any] else { throw .notAnObject(field: "(root)") }

        languages = try Self.names(root["languages"], field: "languages")
        documents = try Self.names(root["documents"], field: "documents")
        pathTemplate = try Template(Self.string(root["path"], field: "path"), field: "path")
        urlTemplate = try Template(Self.string(root["url"], field: "url"), field: "url")

        overrides = [:]
        if let raw = root["overrides"], !(raw is NSNull) {
            guard let byLanguage = raw as? [String: Any] else { throw .notAnObject(field: "overrides") }
            for (lang, value) in byLanguage {
                let field = "overrides.\(lang)"
                guard let fields = value as? [String: Any] else { throw .notAnObject(field: field) }
                for key in fields.keys where key != "path" && key != "url" {
                    throw .unknownField(field: "\(field).\(key)")
                }
                var override = Override()
                if let path = fields["path"] {
                    override.path = try Template(Self.string(path, field: "\(field).path"), field: "\(field).path")
                }
                if let url = fields["url"] {
                    override.url = try Template(Self.string(url, field: "\(field).url"), field: "\(field).url")
                }
                overrides[lang] = override
            }
        }
    }

    /// Where the document is fetched, relative to the site's location.
    package func path(lang: String, doc: String) -> String {
        (overrides[lang]?.path ?? pathTemplate).expand(lang: lang, doc: doc)
    }

    /// The document's public URL, which search results link to.
    package func url(lang: String, doc: String) -> String {
        (overrides[lang]?.url ?? urlTemplate).expand(lang: lang, doc: doc)
    }

    private static func string(_ value: Any?, field: String) throws(DocsManifestError) -> String {
        guard let value, !(value is NSNull) else { throw .missingField(field: field) }
        guard let string = value as? String else { throw .notAString(field: field) }
        guard !string.isEmpty else { throw .emptyValue(field: field) }
        return string
    }

    private static func names(_ value: Any?, field: String) throws(DocsManifestError) -> [String] {
        guard let value, !(value is NSNull) else { throw .missingField(field: field) }
        guard let array = value as? [Any] else { throw .notAnArrayOfStrings(field: field) }
        var names: [String] = []
        var seen: Set<String> = []
        for (index, element) in array.enumerated() {
            guard let name = element as? String else { throw .notAnArrayOfStrings(field: field) }
            guard !name.isEmpty, !name.contains(where: { $0.isWhitespace || $0 == "/" }) else {
                throw .invalidName(field: "\(field)[\(index)]", name: name)
            }
            guard seen.insert(name).inserted else { throw .duplicateName(field: field, name: name) }
            names.append(name)
        }
        guard !names.isEmpty else { throw .emptyValue(field: field) }
        return names
    }
}

/// Why a documentation manifest was rejected; every case names the offending field.
package enum DocsManifestError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalidJSON(String)
    case missingField(field: String)
    case notAString(field: String)
    case notAnObject(field: String)
    case notAnArrayOfStrings(field: String)
    case emptyValue(field: String)
    case unknownField(field: String)
    case invalidName(field: String, name: String)
    case duplicateName(field: String, name: String)
    case unknownPlaceholder(field: String, placeholder: String, template: String)
    case unterminatedPlaceholder(field: String, template: String)
    case missingDocPlaceholder(field: String, template: String)

    package var description: String {
        switch self {
        case .invalidJSON(let detail): "manifest is not valid JSON: \(detail)"
        case .missingField(let field): "manifest field \(field) is missing"
        case .notAString(let field): "manifest field \(field) must be a string"
        case .notAnObject(let field): "manifest field \(field) must be a JSON object"
        case .notAnArrayOfStrings(let field): "manifest field \(field) must be an array of strings"
        case .emptyValue(let field): "manifest field \(field) must not be empty"
        case .unknownField(let field): "manifest field \(field) is unknown (an override holds only path and url)"
        case .invalidName(let field, let name): "manifest field \(field) has an invalid name \"\(name)\" (empty, whitespace or /)"
        case .duplicateName(let field, let name): "manifest field \(field) lists \"\(name)\" twice"
        case .unknownPlaceholder(let field, let placeholder, let template):
            "manifest field \(field) uses unknown placeholder ${\(placeholder)} in \"\(template)\" (only ${lang} and ${doc})"
        case .unterminatedPlaceholder(let field, let template): "manifest field \(field) has an unterminated ${ in \"\(template)\""
        case .missingDocPlaceholder(let field, let template): "manifest field \(field) must contain ${doc}: \"\(template)\""
        }
    }
}
