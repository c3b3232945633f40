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
        // libxml2's (BOM first, XML declarations, WHATWG label aliases), libxml2 stops
        // reading at the first byte its converter rejects where a browser shows U+FFFD, and
        // it reads the rest of a page as Latin-1 after one invalid UTF-8 byte. What it gets
        // is valid UTF-8.
        var text = PageEncoding(of: html, transportCharset: encoding).utf8(html)
        var walk = SectionWalk()
        text.withUTF8 { buffer in
            guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
            base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                // libxml2 takes an int length; documents over 2 GiB are not documentation.
                SectionWalk.parse($0, count: Int32(clamping: buffer.count), into: &walk)
            }
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

    /// Appends UTF-8 text; libxml2 never splits a character between two calls.
    mutating func append(_ text: UnsafeBufferPointer<UInt8>) {
        var index = 0
        let count = text.count
        while index < count {
            let byte = text[index]
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0C, 0x0D:
                breakWord()
                index += 1
            case 0xC2 where index + 1 < count && text[index + 1] == 0xA0:
                breakWord()
                index += 2
            case 0xE2 where index + 2 < count && text[index + 1] == 0x80 && (text[index + 2] == 0x87 || text[index + 2] == 0xAF):
                breakWord()
                index += 3
            default:
                if pendingSpace {
                    bytes.append(0x20)
                    pendingSpace = false
                }
                bytes.append(byte)
                index += 1
            }
        }
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }
    var isEmpty: Bool { bytes.isEmpty }
}

/// The attributes libxml2 hands to a start tag: name, value, name, value, …, nil; a value
/// is nil for an attribute written without one. Names are lower-case.
private struct Attributes {
    let pairs: UnsafeMutablePointer<UnsafePointer<xmlChar>?>?

    /// The value of `name`, whitespace collapsed; nil when absent or empty.
    func value(_ name: String) -> String? {
        guard var pair = pairs else { return nil }
        while let attributeName = pair[0] {
            if strcasecmp(Self.cString(attributeName), name) == 0 {
                guard let value = pair[1] else { return nil }
                var text = CollapsedText()
                text.append(UnsafeBufferPointer(start: value, count: strlen(Self.cString(value))))
                return text.isEmpty ? nil : text.string
            }
            pair += 2
        }
        return nil
    }

    /// xmlChar is UInt8; the C string functions take the same bytes as CChar.
    private static func cString(_ text: UnsafePointer<xmlChar>) -> UnsafePointer<CChar> {
        UnsafeRawPointer(text).assumingMemoryBound(to: CChar.self)
    }

    /// Whether the element is a navigation, banner or content-info landmark by its ARIA
    /// `role`: the same as `nav`, `header` and `footer` to a browser, so removed like them
    /// (Sphinx's sidebars and related-page bars are `<div role="navigation">`).
    var isRemovedLandmark: Bool {
        guard pairs != nil, let role = value("role") else { return false }
        // The first token is the role; later ones are fallbacks for older browsers.
        let first = role.prefix(while: { $0 != " " }).lowercased()
        return first == "navigation" || first == "banner" || first == "contentinfo"
    }
}

/// A section heading being read: the anchors the rule may take, and its text with and
/// without each permalink inside it.
private struct OpenHeading {
    var level: Int
    var ownID: String?
    /// The first `id`, or `name` of an `a`, on an element inside the heading.
    var innerAnchor: String?
    /// The id of the `section` or `div` whose first heading this is.
    var containerID: String?
    var text = CollapsedText()
    /// For each fragment a link inside the heading points to (`<a href="#fragment">`), the
    /// heading's text outside the links to it.
    var textOutsideLinks: [(fragment: String, text: CollapsedText)] = []
    /// Fragments of the links being read, innermost last.
    var openLinks: [String] = []

    /// SPEC §7: the heading's id, else the id (or <a name>) of an element inside it, else
    /// the id of the section or div whose first heading it is.
    var anchor: String? { ownID ?? innerAnchor ?? containerID }

    /// The section's name: the text without permalinks to the section's own anchor (Sphinx's
    /// and MkDocs' "¶", Docusaurus' U+200B hash link, Hugo themes' "#"), unless that leaves
    /// nothing, as in a heading that is only a link to itself.
    var name: String {
        if let anchor,
           let outside = textOutsideLinks.first(where: { $0.fragment == anchor || $0.fragment.removingPercentEncoding == anchor }),
           !outside.text.isEmpty {
            return outside.text.string
        }
        return text.string
    }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        text.append(bytes)
        for index in textOutsideLinks.indices where !openLinks.contains(textOutsideLinks[index].fragment) {
            textOutsideLinks[index].text.append(bytes)
        }
    }

    mutating func breakWord() {
        text.breakWord()
        for index in textOutsideLinks.indices { textOutsideLinks[index].text.breakWord() }
    }

    mutating func openLink(to fragment: String) {
        if !textOutsideLinks.contains(where: { $0.fragment == fragment }) {
            textOutsideLinks.append((fragment, text))
        }
        openLinks.append(fragment)
    }

    mutating func closeLink() {
        openLinks.removeLast()
    }
}

/// The state of one pass over a document, fed by libxml2's SAX events in document order.
/// No tree is built: the parser's recovery (implied and auto-closed tags) is the same, and
/// building and freeing a tree took most of the time of a rebuild.
private struct SectionWalk {
    private struct Section {
        var name: String
        var anchor: String?
        var content = CollapsedText()
    }

    /// Where text goes right now.
    private enum Sink { case content, heading, title }

    /// What the end of an element must undo, for each element open outside removed ones.
    private enum Frame { case inline, block, container, title, heading, headingLink }

    private var title = CollapsedText()
    private var sawTitle = false
    private var firstH1: String?
    private var preamble = CollapsedText()
    private var sections: [Section] = []
    private var heading: OpenHeading?
    private var sink = Sink.content
    private var frames: [Frame] = []
    /// Above zero inside a removed element (script, nav, …): how many elements are open in it.
    private var removedDepth = 0

    /// The `section` and `div` elements open around the reader, outermost first, with their ids.
    private var openContainers: [String?] = []
    /// How many of `openContainers`, outermost first, already hold a section heading. Only
    /// the others can be opened by the next heading, and they always follow these.
    private var containersWithHeading = 0

    private static let options = Int32(bitPattern: HTML_PARSE_RECOVER.rawValue | HTML_PARSE_NOERROR.rawValue
        | HTML_PARSE_NOWARNING.rawValue | HTML_PARSE_NONET.rawValue | HTML_PARSE_IGNORE_ENC.rawValue)

    /// Runs libxml2's HTML parser over `bytes` (valid UTF-8) with `walk` receiving its events.
    static func parse(_ bytes: UnsafePointer<CChar>, count: Int32, into walk: inout SectionWalk) {
        guard let context = htmlCreateMemoryParserCtxt(bytes, count) else { return }
        defer { htmlFreeParserCtxt(context) }
        _ = htmlCtxtUseOptions(context, options)
        // Without this libxml2 guesses, and reads UTF-8 as Latin-1.
        context.pointee.charset = Int32(XML_CHAR_ENCODING_UTF8.rawValue)

        var handler = htmlSAXHandler()
        handler.startElement = { walk, name, attributes in
            guard let walk, let name else { return }
            walk.assumingMemoryBound(to: SectionWalk.self).pointee.start(name, Attributes(pairs: attributes))
        }
        handler.endElement = { walk, _ in
            walk?.assumingMemoryBound(to: SectionWalk.self).pointee.end()
        }
        handler.characters = { walk, text, length in
            guard let walk, let text, length > 0 else { return }
            walk.assumingMemoryBound(to: SectionWalk.self).pointee.characters(UnsafeBufferPointer(start: text, count: Int(length)))
        }
        // Contents of script and style; both are removed, but they must not reach `characters`.
        handler.cdataBlock = { _, _, _ in }
        // Errors, warnings and the other events stay nil: the parser then drops them.

        let ownHandler = context.pointee.sax
        withUnsafeMutablePointer(to: &walk) { walkPointer in
            withUnsafeMutablePointer(to: &handler) { handlerPointer in
                context.pointee.sax = handlerPointer
                context.pointee.userData = UnsafeMutableRawPointer(walkPointer)
                _ = htmlParseDocument(context)
                // htmlFreeParserCtxt frees the handler it holds: give it back its own.
                context.pointee.sax = ownHandler
                context.pointee.userData = UnsafeMutableRawPointer(context)
            }
        }
    }

    private mutating func start(_ name: UnsafePointer<xmlChar>, _ attributes: Attributes) {
        let kind = ElementKind(name)
        if heading != nil, heading?.innerAnchor == nil {
            heading?.innerAnchor = attributes.value("id") ?? (kind == .link ? attributes.value("name") : nil)
        }
        if removedDepth > 0 {
            removedDepth += 1
            return
        }
        if kind == .ignored || attributes.isRemovedLandmark {
            removedDepth = 1
            return
        }
        switch kind {
        case .ignored:
            return
        case .title:
            // Only the first <title> names the document; a title's text is never content.
            guard !sawTitle, sink == .content else {
                removedDepth = 1
                return
            }
            sawTitle = true
            sink = .title
            frames.append(.title)
        case .sectionHeading(let level) where sink == .content:
            heading = OpenHeading(level: level, ownID: attributes.value("id"), containerID: openedContainerID)
            containersWithHeading = openContainers.count
            sink = .heading
            frames.append(.heading)
        case .sectionHeading, .block:
            breakWord()
            frames.append(.block)
        case .container:
            breakWord()
            openContainers.append(attributes.value("id"))
            frames.append(.container)
        case .lineBreak:
            breakWord()
            frames.append(.inline)
        case .link:
            if sink == .heading, let href = attributes.value("href"), href.first == "#" {
                heading?.openLink(to: String(href.dropFirst()))
                frames.append(.headingLink)
            } else {
                frames.append(.inline)
            }
        case .inline:
            frames.append(.inline)
        }
    }

    private mutating func end() {
        if removedDepth > 0 {
            removedDepth -= 1
            return
        }
        guard let frame = frames.popLast() else { return }
        switch frame {
        case .inline:
            break
        case .block:
            breakWord()
        case .container:
            openContainers.removeLast()
            containersWithHeading = min(containersWithHeading, openContainers.count)
            breakWord()
        case .title:
            sink = .content
        case .heading:
            closeHeading()
        case .headingLink:
            heading?.closeLink()
        }
    }

    private mutating func closeHeading() {
        guard let open = heading else { return }
        heading = nil
        sink = .content
        let name = open.name
        if open.level == 1, firstH1 == nil, !name.isEmpty { firstH1 = name }
        sections.append(Section(name: name, anchor: open.anchor))
    }

    /// The id of the innermost open `section` or `div` that the heading about to be read is
    /// the first heading of.
    private var openedContainerID: String? {
        for index in openContainers.indices.reversed() where index >= containersWithHeading {
            if let id = openContainers[index] { return id }
        }
        return nil
    }

    private mutating func characters(_ text: UnsafeBufferPointer<UInt8>) {
        guard removedDepth == 0 else { return }
        switch sink {
        case .title: title.append(text)
        case .heading: heading?.append(text)
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
        case .heading: heading?.breakWord()
        case .content:
            if sections.isEmpty {
                preamble.breakWord()
            } else {
                sections[sections.count - 1].content.breakWord()
            }
        }
    }

    mutating func finish(publicURL: String, contentLimit: Int) -> (docTitle: String, entries: [SearchEntry]) {
        // A heading still open when the input ended (the parser closes all it can).
        if heading != nil { closeHeading() }
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
