import CLibXML2
import Foundation

/// Splits one HTML document into search sections at its h1/h2/h3 headings (SPEC §7).
package enum HTMLSections {
    /// Longest `content`, in grapheme clusters (Swift `Character`s).
    package static let maxContentCharacters = 500

    /// Parses `html` the way browsers do (recovering from unclosed and implied tags) and
    /// returns the document title and one entry per section, in document order.
    /// `encoding` is a charset name from the transport (HTTP Content-Type), if any.
    package static func sections(html: [UInt8], publicURL: String, encoding: String? = nil) -> (docTitle: String, entries: [SearchEntry]) {
        sections(html: html, publicURL: publicURL, encoding: encoding, contentLimit: maxContentCharacters)
    }

    /// `contentLimit` exists so tests can see the uncut text a cut section came from.
    static func sections(html: [UInt8], publicURL: String, encoding: String?, contentLimit: Int) -> (docTitle: String, entries: [SearchEntry]) {
        libxml2Ready
        let charset = encoding ?? declaredCharset(html) ?? "UTF-8"
        let options = Int32(bitPattern: HTML_PARSE_RECOVER.rawValue | HTML_PARSE_NOERROR.rawValue
            | HTML_PARSE_NOWARNING.rawValue | HTML_PARSE_NONET.rawValue)
        // libxml2 takes an int length; documents over 2 GiB are not documentation.
        let length = Int32(clamping: html.count)
        let document: htmlDocPtr? = html.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.flatMap { base in
                base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    htmlReadMemory($0, length, publicURL, charset, options)
                }
            }
        }
        guard let document else { return ("", []) }
        defer { xmlFreeDoc(document) }

        var walk = SectionWalk()
        if let root = xmlDocGetRootElement(document) {
            walk.visit(root)
        }
        return walk.finish(publicURL: publicURL, contentLimit: contentLimit)
    }

    package static func sections(html: Data, publicURL: String, encoding: String? = nil) -> (docTitle: String, entries: [SearchEntry]) {
        sections(html: [UInt8](html), publicURL: publicURL, encoding: encoding)
    }

    /// xmlInitParser must run once before parsers run on several threads at a time.
    private static let libxml2Ready: Void = { xmlInitParser() }()

    /// The charset a document declares in its first 1024 bytes (`<meta charset>` or
    /// http-equiv), as browsers' prescan does; a UTF-16 byte order mark wins.
    static func declaredCharset(_ html: [UInt8]) -> String? {
        if html.starts(with: [0xFF, 0xFE]) { return "UTF-16LE" }
        if html.starts(with: [0xFE, 0xFF]) { return "UTF-16BE" }
        let head = String(decoding: html.prefix(1024), as: UTF8.self).lowercased()
        guard let found = head.range(of: "charset=") else { return nil }
        let name = head[found.upperBound...]
            .drop(while: { $0 == "\"" || $0 == "'" || $0 == " " })
            .prefix(while: { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ":" || $0 == "." })
        return name.isEmpty ? nil : String(name)
    }
}

/// Plain text being gathered: whitespace (ASCII, U+00A0, U+2007, U+202F) collapses to one
/// space, and no space is kept at either end.
struct CollapsedText {
    private(set) var bytes: [UInt8] = []
    private var pendingSpace = false

    /// Separates what follows from what came before, as a block boundary does.
    mutating func breakWord() {
        if !bytes.isEmpty { pendingSpace = true }
    }

    mutating func append(_ text: UnsafePointer<UInt8>) {
        var p = text
        while true {
            let byte = p.pointee
            if byte == 0 { return }
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0C, 0x0D:
                breakWord(); p += 1; continue
            case 0xC2 where p[1] == 0xA0:
                breakWord(); p += 2; continue
            case 0xE2 where p[1] == 0x80 && (p[2] == 0x87 || p[2] == 0xAF):
                breakWord(); p += 3; continue
            default:
                if pendingSpace {
                    bytes.append(0x20)
                    pendingSpace = false
                }
                bytes.append(byte)
                p += 1
            }
        }
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }
    var isEmpty: Bool { bytes.isEmpty }
}

/// The state of one walk over a parsed document, in document order.
private struct SectionWalk {
    private struct Section {
        var name: String
        var anchor: String?
        var content = CollapsedText()
    }

    /// Where text nodes go right now.
    private enum Sink { case content, heading, title }

    private var title = CollapsedText()
    private var sawTitle = false
    private var firstH1: String?
    private var preamble = CollapsedText()
    private var sections: [Section] = []
    private var heading = CollapsedText()
    private var sink = Sink.content

    mutating func visit(_ node: xmlNodePtr) {
        var child = node.pointee.children
        while let current = child {
            handle(current)
            child = current.pointee.next
        }
    }

    private mutating func handle(_ node: xmlNodePtr) {
        switch node.pointee.type {
        case XML_TEXT_NODE, XML_CDATA_SECTION_NODE:
            if let text = node.pointee.content { append(text) }
        case XML_ELEMENT_NODE:
            element(node)
        default:
            break  // comments, processing instructions
        }
    }

    private mutating func element(_ node: xmlNodePtr) {
        guard let rawName = node.pointee.name else { return }
        let kind = ElementKind(rawName)
        switch kind {
        case .ignored:
            return
        case .title:
            // Only the first <title> names the document; a title's text is never content.
            guard !sawTitle, sink == .content else { return }
            sawTitle = true
            sink = .title
            visit(node)
            sink = .content
        case .sectionHeading(let level) where sink == .content:
            heading = CollapsedText()
            sink = .heading
            visit(node)
            sink = .content
            let name = heading.string
            if level == 1, firstH1 == nil, !name.isEmpty { firstH1 = name }
            sections.append(Section(name: name, anchor: Self.attribute("id", of: node)))
        case .sectionHeading, .block:
            breakWord()
            visit(node)
            breakWord()
        case .lineBreak:
            breakWord()
        case .inline:
            visit(node)
        }
    }

    private mutating func append(_ text: UnsafePointer<xmlChar>) {
        switch sink {
        case .title: title.append(text)
        case .heading: heading.append(text)
        case .content:
            if sections.isEmpty {
                preamble.append(text)
            } else {
                sections[sections.count - 1].content.append(text)
            }
        }
    }

    private mutating func breakWord() {
        switch sink {
        case .title: title.breakWord()
        case .heading: heading.breakWord()
        case .content:
            if sections.isEmpty {
                preamble.breakWord()
            } else {
                sections[sections.count - 1].content.breakWord()
            }
        }
    }

    private static func attribute(_ name: String, of node: xmlNodePtr) -> String? {
        var property = node.pointee.properties
        while let current = property {
            if let attributeName = current.pointee.name,
               String(cString: attributeName).lowercased() == name {
                var value = CollapsedText()
                var child = current.pointee.children
                while let text = child {
                    if let content = text.pointee.content { value.append(content) }
                    child = text.pointee.next
                }
                return value.isEmpty ? nil : value.string
            }
            property = current.pointee.next
        }
        return nil
    }

    func finish(publicURL: String, contentLimit: Int) -> (docTitle: String, entries: [SearchEntry]) {
        let docTitle = title.isEmpty ? (firstH1 ?? "") : title.string
        var entries: [SearchEntry] = []
        entries.reserveCapacity(sections.count + 1)
        if !preamble.isEmpty {
            entries.append(SearchEntry(docTitle: docTitle, section: docTitle, url: publicURL,
                                       content: Self.truncated(preamble.string, to: contentLimit)))
        }
        for section in sections {
            entries.append(SearchEntry(
                docTitle: docTitle,
                // A heading with no text (an image, an empty anchor) is still a section.
                section: section.name.isEmpty ? docTitle : section.name,
                url: section.anchor.map { "\(publicURL)#\($0)" } ?? publicURL,
                content: Self.truncated(section.content.string, to: contentLimit)))
        }
        return (docTitle, entries)
    }

    static func truncated(_ text: String, to limit: Int) -> String {
        guard let end = text.index(text.startIndex, offsetBy: limit, limitedBy: text.endIndex),
              end < text.endIndex else { return text }
        var cut = text[..<end]
        // The cut may land just after a collapsed space; content is always trimmed.
        while cut.last == " " { cut = cut.dropLast() }
        return String(cut)
    }
}

/// How the section walk treats an element, by its (lower-case) HTML name.
private enum ElementKind: Equatable {
    case ignored, title, sectionHeading(level: Int), block, lineBreak, inline

    private static let ignoredNames: Set<String> = [
        "script", "style", "noscript", "nav", "header", "footer", "template",
    ]
    private static let blockNames: Set<String> = [
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "form", "h4", "h5", "h6", "hr",
        "html", "legend", "li", "main", "ol", "option", "p", "pre", "section", "summary",
        "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "hgroup", "menu", "center",
    ]

    init(_ rawName: UnsafePointer<xmlChar>) {
        // libxml2's HTML parser already lower-cases element names.
        let name = String(cString: rawName)
        switch name {
        case "h1": self = .sectionHeading(level: 1)
        case "h2": self = .sectionHeading(level: 2)
        case "h3": self = .sectionHeading(level: 3)
        case "title": self = .title
        case "br": self = .lineBreak
        default:
            if Self.ignoredNames.contains(name) { self = .ignored }
            else if Self.blockNames.contains(name) { self = .block }
            else { self = .inline }
        }
    }
}
