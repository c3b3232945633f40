/// One search result entry: a section of one documentation page.
package struct SearchEntry: Sendable, Hashable, Codable {
    package var docTitle: String
    package var section: String
    package var url: String
    package var content: String

    package init(docTitle: String, section: String, url: String, content: String) {
        self.docTitle = docTitle
        self.section = section
        self.url = url
        self.content = content
    }

    enum CodingKeys: String, CodingKey {
        case docTitle = "doc_title"
        case section
        case url
        case content
    }
}

/// The JSON text stored under a language's search-index key (SPEC §7).
package enum SearchIndexJSON {
    /// Encodes entries as a compact JSON array, keys in the order doc_title, section, url,
    /// content. Non-ASCII text is written as raw UTF-8, which keeps CJK and Devanagari
    /// indexes about a third of the size `\u` escapes would give.
    package static func encode(_ entries: [SearchEntry]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entries.reduce(2) { $0 + 64 + $1.docTitle.utf8.count + $1.section.utf8.count + $1.url.utf8.count + $1.content.utf8.count })
        out.append(UInt8(ascii: "["))
        for (index, entry) in entries.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"doc_title":"#.utf8)
            appendString(entry.docTitle, to: &out)
            out.append(contentsOf: #","section":"#.utf8)
            appendString(entry.section, to: &out)
            out.append(contentsOf: #","url":"#.utf8)
            appendString(entry.url, to: &out)
            out.append(contentsOf: #","content":"#.utf8)
            appendString(entry.content, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func appendString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // A Swift String is always valid UTF-8, so bytes other than `"`, `\` and the C0
        // controls can be copied as they are.
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(byte)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(byte)
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0x08: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "f"))
            case 0x00..<0x20:
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
