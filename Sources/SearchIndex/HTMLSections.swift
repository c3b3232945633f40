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
        // The page is decoded here, not by libxml2: browsers' choice of encoding differs from
        // libxml2's (BOM first, XML declarations, WHATWG label aliases), and libxml2 stops
        // reading at the first byte its converter rejects where a browser shows U+FFFD.
        var text = PageEncoding(of: html, transportCharset: encoding).utf8(html)
        let options = Int32(bitPattern: HTML_PARSE_RECOVER.rawValue | HTML_PARSE_NOERROR.rawValue
            | HTML_PARSE_NOWARNING.rawValue | HTML_PARSE_NONET.rawValue | HTML_PARSE_IGNORE_ENC.rawValue)
        let document: htmlDocPtr? = text.withUTF8 { buffer in
            buffer.baseAddress.flatMap { base in
                base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    // libxml2 takes an int length; documents over 2 GiB are not documentation.
                    htmlReadMemory($0, Int32(clamping: buffer.count), publicURL, "UTF-8", options)
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

    /// The heading's text without its permalinks, which name the section when it has any.
    private var headingName = CollapsedText()
    /// The anchor of the heading being read, and how deep the walk is inside a permalink to
    /// it (`<a href="#anchor">`, such as Sphinx's and MkDocs' "¶" or Docusaurus' hash link).
    private var headingAnchor: String?
    private var permalinkDepth = 0

    /// The `section` and `div` elements around the walk, outermost first, with their ids.
    private var openContainers: [String?] = []
    /// How many of `openContainers`, outermost first, already hold a section heading. Only
    /// the others can be opened by the next heading, and they always follow these.
    private var containersWithHeading = 0

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
        if node.pointee.properties != nil, Self.isRemovedLandmark(node) { return }
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
            // SPEC §7: the heading's id, else the id (or <a name>) of an element inside it,
            // else the id of the section or div whose first heading it is.
            let anchor = Self.attribute("id", of: node) ?? Self.innerAnchor(of: node) ?? openedContainerID
            containersWithHeading = openContainers.count
            heading = CollapsedText()
            headingName = CollapsedText()
            headingAnchor = anchor
            sink = .heading
            visit(node)
            sink = .content
            headingAnchor = nil
            // A heading that is only a link to itself is still named by that link's text.
            let name = headingName.isEmpty ? heading.string : headingName.string
            if level == 1, firstH1 == nil, !name.isEmpty { firstH1 = name }
            sections.append(Section(name: name, anchor: anchor))
        case .sectionHeading, .block:
            breakWord()
            visit(node)
            breakWord()
        case .container:
            breakWord()
            openContainers.append(Self.attribute("id", of: node))
            visit(node)
            openContainers.removeLast()
            containersWithHeading = min(containersWithHeading, openContainers.count)
            breakWord()
        case .lineBreak:
            breakWord()
        case .link:
            if sink == .heading, let headingAnchor, Self.isLink(node, to: headingAnchor) {
                permalinkDepth += 1
                visit(node)
                permalinkDepth -= 1
            } else {
                visit(node)
            }
        case .inline:
            visit(node)
        }
    }

    /// The id of the innermost open `section` or `div` that the heading about to be read is
    /// the first heading of.
    private var openedContainerID: String? {
        for index in openContainers.indices.reversed() where index >= containersWithHeading {
            if let id = openContainers[index] { return id }
        }
        return nil
    }

    /// The first `id`, or `name` of an `a`, on an element inside `node`, in document order.
    private static func innerAnchor(of node: xmlNodePtr) -> String? {
        var child = node.pointee.children
        while let current = child {
            if current.pointee.type == XML_ELEMENT_NODE {
                if let id = attribute("id", of: current) { return id }
                if let name = current.pointee.name, ElementKind(name) == .link,
                   let anchorName = attribute("name", of: current) {
                    return anchorName
                }
                if let inner = innerAnchor(of: current) { return inner }
            }
            child = current.pointee.next
        }
        return nil
    }

    /// Whether `node`'s `href` is the fragment `#anchor` (literal or percent-encoded).
    private static func isLink(_ node: xmlNodePtr, to anchor: String) -> Bool {
        guard let href = attribute("href", of: node), href.first == "#" else { return false }
        let fragment = href.dropFirst()
        return fragment == anchor || String(fragment).removingPercentEncoding == anchor
    }

    /// Whether `node` is a navigation, banner or content-info landmark by its ARIA `role`:
    /// the same as `nav`, `header` and `footer` to a browser, so removed like them
    /// (Sphinx's sidebars and related-page bars are `<div role="navigation">`).
    private static func isRemovedLandmark(_ node: xmlNodePtr) -> Bool {
        guard let role = attribute("role", of: node) else { return false }
        // The first token is the role; later ones are fallbacks for older browsers.
        let first = role.prefix(while: { $0 != " " }).lowercased()
        return first == "navigation" || first == "banner" || first == "contentinfo"
    }

    private mutating func append(_ text: UnsafePointer<xmlChar>) {
        switch sink {
        case .title: title.append(text)
        case .heading:
            heading.append(text)
            if permalinkDepth == 0 { headingName.append(text) }
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
        case .heading:
            heading.breakWord()
            headingName.breakWord()
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
    /// `container` is a block that may carry a section's anchor (`section`, `div`);
    /// `link` is an inline `a`, which may be a permalink inside a heading.
    case ignored, title, sectionHeading(level: Int), block, container, lineBreak, link, inline

    private static let ignoredNames: Set<String> = [
        "script", "style", "noscript", "nav", "header", "footer", "template",
    ]
    private static let blockNames: Set<String> = [
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
        "dl", "dt", "fieldset", "figcaption", "figure", "form", "h4", "h5", "h6", "hr",
        "html", "legend", "li", "main", "ol", "option", "p", "pre", "summary",
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
        case "a": self = .link
        case "section", "div": self = .container
        default:
            if Self.ignoredNames.contains(name) { self = .ignored }
            else if Self.blockNames.contains(name) { self = .block }
            else { self = .inline }
        }
    }
}
