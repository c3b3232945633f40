#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The character encoding of one page and its conversion to UTF-8, chosen the way browsers
/// choose it (WHATWG Encoding and HTML standards): a byte order mark, else the transport's
/// charset (HTTP Content-Type), else what the document declares in its first 1024 bytes
/// (`<meta charset>`, `<meta http-equiv="Content-Type">`, an XML declaration), else UTF-8.
struct PageEncoding: Equatable, Sendable {
    /// The iconv name of the encoding; "UTF-8" needs no converter.
    var name: String
    /// Bytes of a byte order mark at the start of the page, not part of its text.
    var bomLength = 0

    static let utf8 = PageEncoding(name: "UTF-8")

    /// The encoding of `bytes`; `transportCharset` is the charset the server declared, if any.
    /// A label no converter knows is passed over, as browsers pass over one they do not know.
    init(of bytes: [UInt8], transportCharset: String?) {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { self.init(name: "UTF-8", bomLength: 3); return }
        if bytes.starts(with: [0xFF, 0xFE]) { self.init(name: "UTF-16LE", bomLength: 2); return }
        if bytes.starts(with: [0xFE, 0xFF]) { self.init(name: "UTF-16BE", bomLength: 2); return }
        if let transportCharset, let name = Self.converterName(label: transportCharset) {
            self.init(name: name)
            return
        }
        if let declared = Self.declaredLabel(bytes), var name = Self.converterName(label: declared) {
            // An ASCII-compatible declaration cannot have been read from UTF-16 text.
            if name.hasPrefix("UTF-16") { name = "UTF-8" }
            self.init(name: name)
            return
        }
        self = .utf8
    }

    init(name: String, bomLength: Int = 0) {
        self.name = name
        self.bomLength = bomLength
    }

    /// `bytes` as valid UTF-8 without the byte order mark: each byte sequence that is not
    /// text in the encoding becomes U+FFFD, and the rest of the page is still read.
    func utf8(_ bytes: [UInt8]) -> String {
        let body = bytes.dropFirst(bomLength)
        if name == "UTF-8" { return String(decoding: body, as: UTF8.self) }
        return Self.convert(body, from: name) ?? String(decoding: body, as: UTF8.self)
    }

    // MARK: Labels

    /// The converter for an encoding label, nil when the label names no encoding this
    /// machine can decode. Labels whose browser decoder is a superset of the encoding they
    /// name map to that superset, as the WHATWG Encoding standard does: ISO-8859-1 and
    /// US-ASCII are read as windows-1252, Shift_JIS as Windows-31J, GB2312 as GB18030,
    /// EUC-KR as UHC (CP949), EUC-JP with the NEC and IBM extensions, Big5 as Big5-HKSCS.
    static func converterName(label: String) -> String? {
        var trimmed = Substring(label.lowercased())
        while trimmed.first?.isWhitespace == true { trimmed.removeFirst() }
        while trimmed.last?.isWhitespace == true { trimmed.removeLast() }
        let key = String(trimmed)
        guard !key.isEmpty else { return nil }
        if let name = browserAliases[key] { return name }
        return converterExists(key) ? key.uppercased() : nil
    }

    private static let browserAliases: [String: String] = {
        var aliases: [String: String] = [:]
        func add(_ name: String, _ labels: [String]) { for label in labels { aliases[label] = name } }
        add("UTF-8", ["utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"])
        add("UTF-16LE", ["utf-16", "utf-16le", "unicode", "unicodefeff", "ucs-2", "iso-10646-ucs-2", "csunicode"])
        add("UTF-16BE", ["utf-16be", "unicodefffe"])
        add("CP1252", ["windows-1252", "x-cp1252", "cp1252", "iso-8859-1", "iso8859-1", "iso88591", "iso_8859-1",
                       "iso_8859-1:1987", "iso-ir-100", "l1", "latin1", "csisolatin1", "cp819", "ibm819",
                       "us-ascii", "ascii", "ansi_x3.4-1968"])
        add("CP1251", ["windows-1251", "x-cp1251", "cp1251"])
        add("CP1254", ["windows-1254", "x-cp1254", "cp1254", "iso-8859-9", "iso8859-9", "iso88599", "iso_8859-9",
                       "iso_8859-9:1989", "iso-ir-148", "l5", "latin5", "csisolatin5"])
        add("CP874", ["windows-874", "dos-874", "tis-620", "iso-8859-11", "iso8859-11", "iso885911"])
        add("CP932", ["shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "ms932", "windows-31j", "csshiftjis"])
        add("EUC-JP-MS", ["euc-jp", "x-euc-jp", "cseucpkdfmtjapanese"])
        add("ISO-2022-JP", ["iso-2022-jp", "csiso2022jp"])
        add("GB18030", ["gb18030", "gbk", "x-gbk", "gb2312", "gb_2312", "gb_2312-80", "csgb2312", "chinese",
                        "iso-ir-58", "csiso58gb231280"])
        add("BIG5-HKSCS", ["big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"])
        add("CP949", ["euc-kr", "cseuckr", "windows-949", "ks_c_5601-1987", "ks_c_5601-1989", "ksc5601", "ksc_5601",
                      "csksc56011987", "iso-ir-149", "korean"])
        add("KOI8-R", ["koi8-r", "koi8_r", "koi8", "koi", "cskoi8r"])
        add("KOI8-U", ["koi8-u", "koi8-ru"])
        add("CP866", ["ibm866", "cp866", "866", "csibm866"])
        add("ISO-8859-8", ["iso-8859-8-i", "csiso88598i", "logical"])
        add("MACINTOSH", ["macintosh", "mac", "x-mac-roman", "csmacintosh"])
        add("MAC-CYRILLIC", ["x-mac-cyrillic", "x-mac-ukrainian"])
        return aliases
    }()

    private static func converterExists(_ name: String) -> Bool {
        guard let converter = openConverter(name) else { return false }
        iconv_close(converter)
        return true
    }

    private static func openConverter(_ name: String) -> iconv_t? {
        let converter = iconv_open("UTF-8", name)
        // iconv_open reports failure as (iconv_t)-1.
        guard let converter, Int(bitPattern: converter) != -1 else { return nil }
        return converter
    }

    // MARK: Declarations in the document

    /// The encoding label the document declares in its first 1024 bytes: a `<meta>` found by
    /// the HTML standard's prescan (comments and other tags skipped, attributes parsed), else
    /// the `encoding` of an XML declaration at its very start (DocBook's XHTML).
    static func declaredLabel(_ bytes: [UInt8]) -> String? {
        let head = Array(bytes.prefix(1024))
        return metaLabel(head) ?? xmlDeclarationLabel(head)
    }

    private static func xmlDeclarationLabel(_ head: [UInt8]) -> String? {
        guard head.starts(with: Array("<?xml".utf8)),
              let end = head.firstIndex(of: UInt8(ascii: ">")) else { return nil }
        var scanner = TagScanner(bytes: head, position: 5, end: end)
        while let (name, value) = scanner.nextAttribute() {
            if name == "encoding" { return value.isEmpty ? nil : value }
        }
        return nil
    }

    private static func metaLabel(_ head: [UInt8]) -> String? {
        var position = 0
        while let open = head[position...].firstIndex(of: UInt8(ascii: "<")) {
            position = open + 1
            if head[open...].starts(with: Array("<!--".utf8)) {
                guard let close = find(Array("-->".utf8), in: head, from: open + 4) else { return nil }
                position = close + 3
                continue
            }
            let nameStart = position
            var nameEnd = nameStart
            while nameEnd < head.count, Self.isTagNameByte(head[nameEnd]) { nameEnd += 1 }
            let name = String(decoding: head[nameStart..<nameEnd], as: UTF8.self).lowercased()
            // A `<` that opens no tag is text.
            if name.isEmpty { continue }
            guard !name.hasPrefix("!"), !name.hasPrefix("?"), !name.hasPrefix("/") else {
                // <!DOCTYPE …>, <?xml …?>, </p>: skipped to their end.
                guard let close = head[position...].firstIndex(of: UInt8(ascii: ">")) else { return nil }
                position = close + 1
                continue
            }
            var scanner = TagScanner(bytes: head, position: nameEnd, end: head.count)
            var attributes: [String: String] = [:]
            while let (attribute, value) = scanner.nextAttribute() {
                if attributes[attribute] == nil { attributes[attribute] = value }
            }
            position = scanner.position
            guard name == "meta" else { continue }
            if let charset = attributes["charset"], !charset.isEmpty {
                return charset
            }
            if attributes["http-equiv"]?.lowercased() == "content-type", let content = attributes["content"],
               let charset = charsetParameter(in: content) {
                return charset
            }
        }
        return nil
    }

    /// The charset in a `content` value, as the HTML standard extracts it from a meta element.
    static func charsetParameter(in content: String) -> String? {
        let lowered = content.lowercased()
        guard let found = lowered.range(of: "charset") else { return nil }
        var rest = lowered[found.upperBound...].drop(while: { $0 == " " || $0 == "\t" })
        guard rest.first == "=" else { return charsetParameter(in: String(lowered[found.upperBound...])) }
        rest = rest.dropFirst().drop(while: { $0 == " " || $0 == "\t" })
        let value: Substring
        if let quote = rest.first, quote == "\"" || quote == "'" {
            value = rest.dropFirst().prefix(while: { $0 != quote })
        } else {
            value = rest.prefix(while: { $0 != ";" && $0 != " " && $0 != "\t" })
        }
        return value.isEmpty ? nil : String(value)
    }

    private static func isTagNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "!"), UInt8(ascii: "?"), UInt8(ascii: "/"),
             UInt8(ascii: "-"), UInt8(ascii: ":"):
            return true
        default:
            return false
        }
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard start <= bytes.count - needle.count else { return nil }
        for index in start...(bytes.count - needle.count) where bytes[index..<index + needle.count].elementsEqual(needle) {
            return index
        }
        return nil
    }

    // MARK: Conversion

    /// `bytes` converted from `name` to UTF-8, nil when no converter exists for it.
    private static func convert(_ bytes: ArraySlice<UInt8>, from name: String) -> String? {
        guard let converter = openConverter(name) else { return nil }
        defer { iconv_close(converter) }
        var input = Array(bytes)
        var output = [UInt8](repeating: 0, count: max(64, input.count * 3))
        var written = 0
        input.withUnsafeMutableBufferPointer { inputBuffer in
            inputBuffer.withMemoryRebound(to: CChar.self) { inputChars in
                var inPointer = inputChars.baseAddress
                var inLeft = inputChars.count
                while inLeft > 0 {
                    if output.count - written < 16 { output += [UInt8](repeating: 0, count: output.count) }
                    let (result, error, produced) = output.withUnsafeMutableBufferPointer { outputBuffer in
                        outputBuffer.withMemoryRebound(to: CChar.self) { outputChars in
                            var outPointer: UnsafeMutablePointer<CChar>? = outputChars.baseAddress! + written
                            var outLeft = outputChars.count - written
                            let result = iconv(converter, &inPointer, &inLeft, &outPointer, &outLeft)
                            return (result, errno, outputChars.count - written - outLeft)
                        }
                    }
                    written += produced
                    guard result == -1 else { continue }
                    switch error {
                    case E2BIG:
                        output += [UInt8](repeating: 0, count: output.count)
                    default:
                        // EILSEQ (no character in the encoding) or EINVAL (cut off at the end):
                        // one U+FFFD for the byte, then reading goes on after it.
                        if output.count - written < 3 { output += [UInt8](repeating: 0, count: output.count) }
                        output.replaceSubrange(written..<written + 3, with: [0xEF, 0xBF, 0xBD])
                        written += 3
                        inPointer = inPointer.map { $0 + 1 }
                        inLeft -= 1
                        iconv(converter, nil, nil, nil, nil)  // back to the initial shift state
                    }
                }
            }
        }
        return String(decoding: output[..<written], as: UTF8.self)
    }
}

/// Reads `name=value` attributes of one tag, as the HTML standard's prescan does: names are
/// lower-cased, values may be quoted with " or ', and the tag ends at `>`.
private struct TagScanner {
    let bytes: [UInt8]
    var position: Int
    let end: Int

    mutating func nextAttribute() -> (String, String)? {
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0C || byte == 0x0D }
        while position < end, isSpace(bytes[position]) || bytes[position] == UInt8(ascii: "/") { position += 1 }
        guard position < end, bytes[position] != UInt8(ascii: ">") else {
            if position < end { position += 1 }
            return nil
        }
        let nameStart = position
        while position < end, !isSpace(bytes[position]), bytes[position] != UInt8(ascii: "="),
              bytes[position] != UInt8(ascii: ">"), !(bytes[position] == UInt8(ascii: "/") && position > nameStart) {
            position += 1
        }
        let name = String(decoding: bytes[nameStart..<position], as: UTF8.self).lowercased()
        while position < end, isSpace(bytes[position]) { position += 1 }
        guard position < end, bytes[position] == UInt8(ascii: "=") else { return (name, "") }
        position += 1
        while position < end, isSpace(bytes[position]) { position += 1 }
        guard position < end else { return (name, "") }
        let quote = bytes[position]
        if quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") {
            position += 1
            let valueStart = position
            while position < end, bytes[position] != quote { position += 1 }
            let value = String(decoding: bytes[valueStart..<position], as: UTF8.self)
            if position < end { position += 1 }
            return (name, value)
        }
        let valueStart = position
        while position < end, !isSpace(bytes[position]), bytes[position] != UInt8(ascii: ">") { position += 1 }
        return (name, String(decoding: bytes[valueStart..<position], as: UTF8.self))
    }
}
