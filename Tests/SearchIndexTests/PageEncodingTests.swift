import Foundation
import Testing
@testable import SearchIndex

/// How a page's bytes become text: BOM, then the transport's charset, then the document's
/// declaration, then UTF-8; labels read as browsers read them; bad bytes become U+FFFD.
@Suite("Page encodings")
struct PageEncodingTests {
    private func text(_ bytes: [UInt8], transport: String? = nil) -> String {
        let entries = HTMLSections.sections(html: bytes, publicURL: "/p.html", encoding: transport).entries
        return entries.map(\.content).joined(separator: "|")
    }

    private func page(_ head: String, _ body: String, as name: String) -> [UInt8] {
        Array("<html><head>\(head)</head><body><h1>A</h1><p>".utf8) + encoded(body, as: name) + Array("</p></body></html>".utf8)
    }

    @Test func utf8IsTheDefault() {
        #expect(text(Array("<h1>A</h1><p>Привет, 世界, नमस्ते, مرحبا</p>".utf8)) == "Привет, 世界, नमस्ते, مرحبا")
    }

    @Test(arguments: [
        (#"<meta charset="windows-1251">"#, "CP1251", "Ключ действует год."),
        (#"<meta charset=koi8-r>"#, "KOI8-R", "Ключ действует год."),
        (#"<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">"#, "CP1251", "Ключ — «год»."),
        (#"<META HTTP-EQUIV="content-type" CONTENT="text/html;charset='Shift_JIS'">"#, "CP932", "① 髙橋 ﾃﾞｰﾀ ～"),
        (#"<meta content="text/html; charset=EUC-JP" http-equiv="Content-Type" />"#, "EUC-JP-MS", "日本語の文書 ①"),
        (#"<meta charset="gb2312">"#, "GB18030", "中文 镕 𠀀"),
        (#"<meta charset="euc-kr">"#, "CP949", "한국어 똠방각하"),
        (#"<meta charset="iso-8859-1">"#, "CP1252", "Café “quoted” … €"),
        (#"<meta charset="us-ascii">"#, "CP1252", "naïve"),
        (#"<meta charset="windows-1256">"#, "CP1256", "مرحبا بالعالم"),
    ])
    func aDeclarationInTheDocumentIsHonoured(head: String, encoding: String, body: String) {
        #expect(text(page(head, body, as: encoding)) == body)
    }

    @Test func anXMLDeclarationIsHonoured() {
        let bytes = Array(#"<?xml version="1.0" encoding="windows-1251"?>"#.utf8) + page("", "Ключ действует год.", as: "CP1251")
        #expect(text(bytes) == "Ключ действует год.")
        let single = Array("<?xml version='1.0' encoding='EUC-JP' standalone='no'?>".utf8) + page("", "日本語", as: "EUC-JP")
        #expect(text(single) == "日本語")
        // Only at the very start of the page.
        let late = Array("<p>x</p><?xml version=\"1.0\" encoding=\"windows-1251\"?>".utf8) + page("", "Ключ", as: "CP1251")
        #expect(PageEncoding(of: late, transportCharset: nil) == .utf8)
    }

    @Test func aMetaWinsOverTheXMLDeclarationAsInBrowsersPrescan() {
        let bytes = Array(#"<?xml version="1.0" encoding="ISO-8859-1"?>"#.utf8)
            + page(#"<meta charset="windows-1251">"#, "Ключ", as: "CP1251")
        #expect(text(bytes) == "Ключ")
    }

    @Test func theTransportCharsetWinsOverTheDocument() {
        let bytes = page(#"<meta charset="iso-8859-1">"#, "Ключ действует год.", as: "CP1251")
        #expect(text(bytes, transport: "windows-1251") == "Ключ действует год.")
        #expect(text(bytes) != "Ключ действует год.")
        // A label nothing can decode is passed over, as browsers do.
        #expect(text(page(#"<meta charset="windows-1251">"#, "Ключ", as: "CP1251"), transport: "x-no-such-charset") == "Ключ")
    }

    @Test func aByteOrderMarkWinsOverEverything() {
        let body = "<meta charset=\"windows-1251\"><h1>A</h1><p>Привет, 世界 👩🏽‍💻</p>"
        #expect(text([0xEF, 0xBB, 0xBF] + Array(body.utf8), transport: "windows-1251") == "Привет, 世界 👩🏽‍💻")
        #expect(text([0xFF, 0xFE] + encoded(body, as: "UTF-16LE"), transport: "iso-8859-1") == "Привет, 世界 👩🏽‍💻")
        #expect(text([0xFE, 0xFF] + encoded(body, as: "UTF-16BE")) == "Привет, 世界 👩🏽‍💻")
    }

    @Test func aUTF16DeclarationInAnASCIICompatiblePageMeansUTF8() {
        #expect(text(Array("<meta charset=\"utf-16\"><h1>A</h1><p>Привет</p>".utf8)) == "Привет")
    }

    @Test func declarationsOutsideAMetaOrPastTheFirst1024BytesAreNot() {
        let decoys = #"<!-- <meta charset="koi8-r"> --><script charset="koi8-r" src="x.js"></script><p>charset=koi8-r</p>"#
        #expect(PageEncoding(of: Array(decoys.utf8), transportCharset: nil) == .utf8)
        let late = String(repeating: " ", count: 1024) + #"<meta charset="koi8-r">"#
        #expect(PageEncoding(of: Array(late.utf8), transportCharset: nil) == .utf8)
    }

    @Test func badBytesBecomeReplacementCharactersAndTheRestIsRead() {
        // UTF-8 with a stray Latin-1 byte: one U+FFFD, and the rest is still read as UTF-8.
        let utf8 = Array("<h1>A</h1><p>a ".utf8) + [0xFF] + Array(" при</p><h2>B</h2><p>ещё</p>".utf8)
        #expect(text(utf8) == "a \u{FFFD} при|ещё")
        // Shift_JIS with a lead byte cut short: one U+FFFD, then the page goes on.
        let opening: [UInt8] = Array(page(#"<meta charset="shift_jis">"#, "前", as: "CP932").dropLast("</p></body></html>".utf8.count))
        let sjis = opening + [0x81] + Array("</p><h2>B</h2><p>".utf8) + encoded("日本語", as: "CP932") + Array("</p>".utf8)
        #expect(text(sjis) == "前\u{FFFD}|日本語")
    }

    @Test(arguments: [
        ("windows-1251", "CP1251"), (" Windows-1251 ", "CP1251"), ("latin1", "CP1252"), ("ISO-8859-1", "CP1252"),
        ("ascii", "CP1252"), ("Shift_JIS", "CP932"), ("x-sjis", "CP932"), ("euc-jp", "EUC-JP-MS"),
        ("GB2312", "GB18030"), ("utf8", "UTF-8"), ("UTF-8", "UTF-8"), ("iso-8859-5", "ISO-8859-5"),
    ])
    func labelsMapToTheDecoderBrowsersUse(label: String, name: String) {
        #expect(PageEncoding.converterName(label: label) == name)
    }

    @Test func unknownLabelsMapToNothing() {
        #expect(PageEncoding.converterName(label: "x-no-such-charset") == nil)
        #expect(PageEncoding.converterName(label: "") == nil)
    }

    @Test func theHeadersCharsetParameterIsRead() {
        #expect(DocumentFetcher.charset(contentType: "text/html; charset=windows-1251") == "windows-1251")
        #expect(DocumentFetcher.charset(contentType: #"text/html;charset="Shift_JIS""#) == "Shift_JIS")
        #expect(DocumentFetcher.charset(contentType: "text/html") == nil)
    }
}
