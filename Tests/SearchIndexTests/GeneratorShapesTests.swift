import Foundation
import Testing
@testable import SearchIndex

/// Pages as DocBook, Sphinx, Hugo, Docusaurus and MkDocs emit them, with their navigation,
/// tables of contents, permalinks and encoding declarations; also a site (`manifest.json`)
/// of one language, "shapes", holding each page as a document.
let shapeFixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

/// The sections each fixture page must yield (SPEC §7), in document order, keyed by the
/// page's name. Boilerplate that §7 does not remove (DocBook's navigation tables, a
/// Docusaurus table of contents in a div, a footer that is a div) is content by its rule.
let expectedShapeSections: KeyValuePairs<String, (docTitle: String, sections: [(String, String?, String)])> = [
    // XHTML, ISO-8859-1 declared only by the XML declaration and read as windows-1252 as
    // browsers do (“ ” … —); anchors are <a id> inside the headings.
    "docbook-xhtml-en": ("Chapter 2. Installation", [
        ("Chapter 2. Installation", nil, "Chapter 2. Installation Prev Next"),
        ("Chapter 2. Installation", "installation",
         "Table of Contents 2.1. Requirements 2.2. Café mode This chapter explains how to install the server on a “clean” host."),
        ("2.1. Requirements", "install-requirements", "You need 2 GB of memory and a naïve resolver… PostgreSQL 15 Valkey 8"),
        ("2.2. Café mode", "install-cafe", "Café mode serves cached prices only — no upstream calls."),
        ("2.2.1. Limits", "install-cafe-limits",
         "At most 60 requests per minute. Prev Next Chapter 1. Overview Home Chapter 3. Configuration"),
    ]),
    // HTML with <a name> anchors; Shift_JIS in http-equiv, read as Windows-31J (① ② 髙 ～).
    "docbook-html-ja-sjis": ("第3章 設定", [
        ("第3章 設定", nil, "第3章 設定 前へ 次へ"),
        ("第3章 設定", "config", "設定ファイルは /etc/coinprice.conf です。"),
        ("3.1. ポート番号", "config-port", "① 既定のポートは 8080 です。② 髙橋さんの環境では 8081～8089 を使います。"),
        ("3.2. ｷｬｯｼｭ", "config-cache", "ﾃﾞｰﾀは 60 秒間キャッシュされます。"),
        ("3.2.1. 容量", "config-cache-size", "最大 512 MB です。 前へ 次へ 第2章 インストール ホーム 第4章 運用"),
    ]),
    // XHTML in EUC-JP (with the NEC row: ①); the id is on the div.section whose titlepage
    // holds the heading three divs down.
    "docbook-xhtml-ja-eucjp": ("第4章 運用", [
        ("第4章 運用", nil, "第4章 運用 前へ"),
        ("第4章 運用", "operations", "日々の運用手順をまとめます。"),
        ("4.1. バックアップ", "ops-backup", "① 毎晩 3 時にバックアップを取ります。"),
        ("4.1.1. 復元", "ops-backup-restore", "ﾘｽﾄｱ は数分で終わります。"),
        ("4.2. 監視", "ops-monitoring", "遅延が 30 秒を超えると警告します。"),
    ]),
    // Sphinx 1.8: <div class="section" id>, a label's <span id> before the heading, "¶"
    // headerlinks, windows-1251; related bars, sidebar and footer are ARIA landmarks.
    "sphinx-old-ru-cp1251": ("Установка — Документация CoinPrice 2.1", [
        ("Установка", "id1", "Сервер ставится из пакета."),
        ("Требования", "requirements", "PostgreSQL 15 Valkey 8"),
        ("Проверка «ключа»", "id2", "Выполните coinprice check — команда вернёт «OK»."),
    ]),
    // Sphinx 7 with alabaster: <section id>; the sidebar's logo h1 and h3s are navigation;
    // alabaster's footer is a plain div.
    "sphinx-hi": ("त्वरित शुरुआत — CoinPrice 2.1 दस्तावेज़", [
        ("त्वरित शुरुआत", "id1", "यह गाइड पाँच मिनट लेती है।"),
        ("API कुंजी बनाएँ", "api-key", "डैशबोर्ड खोलें और कुंजियाँ पृष्ठ से कुंजी कॉपी करें। टिप्पणी कुंजी किसी के साथ साझा न करें।"),
        ("पहला अनुरोध", "id2",
         #"curl -H "X-API-Key: $API_KEY" ©2024, CoinPrice. | Powered by Sphinx 7.2.6 & Alabaster 0.7.16 | Page source"#),
    ]),
    // Hugo: <h2 id> in Arabic script, self links (one percent-encoded), the TOC in
    // <nav id="TableOfContents">; the theme puts the title h1 in the article's <header>.
    "hugo-ar": ("حدود المعدل | CoinPrice API", [
        ("حدود المعدل | CoinPrice API", nil, "المحتويات لكل مفتاح حدٌّ لعدد الطلبات في الدقيقة."),
        ("الحدود لكل خطة", "الحدود-لكل-خطة", "الخطة طلبات في الدقيقة مجانية 60 احترافية 600"),
        ("ترويسات الاستجابة", "ترويسات-الاستجابة", "كل استجابة تحمل ترويسة X-RateLimit-Remaining."),
        ("X-RateLimit-Reset", "x-ratelimit-reset", "وقت إعادة الضبط بثوانٍ منذ ١٩٧٠. ↑"),
    ]),
    // Docusaurus 3: hash links holding U+200B, navbar, sidebar, breadcrumbs and pagination
    // in <nav>, the title h1 in <header>, the desktop TOC in a div after the article.
    "docusaurus-zh": ("快速开始 | CoinPrice 文档", [
        ("快速开始 | CoinPrice 文档", nil, "跳到主要内容 本页总览 本指南大约需要五分钟。"),
        ("创建 API 密钥", "创建-api-密钥", "在控制台的密钥页面创建密钥。"),
        ("X-API-Key 请求头", "x-api-key-请求头", "每个请求都要带上这个请求头。"),
        ("第一个请求", "第一个请求", "curl https://api.coinprice.example/v1/prices 创建 API 密钥 X-API-Key 请求头 第一个请求"),
    ]),
    // MkDocs Material: <h2 id> with &para; headerlinks, Python-Markdown's ids for headings
    // without ASCII letters (_1, _2); header, both sidebars' <nav>s and footer removed.
    "mkdocs-material-ru": ("Быстрый старт - CoinPrice", [
        ("Быстрый старт - CoinPrice", nil, "Перейти к содержанию"),
        ("Быстрый старт", "_1", "Это руководство займёт пять минут."),
        ("Установка", "_2", "pip install coinprice"),
        ("Ключ API", "api", "Внимание Никому не передавайте ключ."),
        ("Заголовок X-API-Key", "x-api-key", "Передавайте ключ в заголовке."),
    ]),
]

/// The entries `expectedShapeSections` describes for `page`, published at `url`.
func expectedShapeEntries(_ page: String, url: String) throws -> [SearchEntry] {
    let expected = try #require(expectedShapeSections.first { $0.key == page }?.value)
    return expected.sections.map { section, anchor, content in
        SearchEntry(docTitle: expected.docTitle, section: section, url: anchor.map { "\(url)#\($0)" } ?? url, content: content)
    }
}

func shapeFixture(_ page: String) throws -> [UInt8] {
    try [UInt8](Data(contentsOf: shapeFixtures.appendingPathComponent("\(page).html")))
}

@Suite("Pages as documentation generators emit them")
struct GeneratorShapesTests {
    @Test(arguments: expectedShapeSections.map(\.key))
    func eachPageGivesItsSections(page: String) throws {
        let url = "/shapes/\(page).html"
        let result = HTMLSections.sections(html: try shapeFixture(page), publicURL: url)
        let expected = try expectedShapeEntries(page, url: url)
        #expect(result.docTitle == expected.first?.docTitle)
        #expect(result.entries.count == expected.count)
        for (got, want) in zip(result.entries, expected) {
            #expect(got == want)
        }
    }

    @Test(arguments: expectedShapeSections.map(\.key))
    func noBoilerplateOrPermalinkGlyphReachesAName(page: String) throws {
        let entries = HTMLSections.sections(html: try shapeFixture(page), publicURL: "/p.html").entries
        for entry in entries {
            #expect(!entry.section.contains("¶") && !entry.section.contains("\u{200B}") && !entry.section.hasSuffix("#"), "\(entry.section)")
            #expect(!entry.content.contains("\u{FFFD}") && !entry.section.contains("\u{FFFD}"), "\(entry)")
            // Sidebars, navbars and tables of contents in <nav> or role="navigation".
            for navigation in ["Навигация", "Оглавление", "Быстрый поиск", "Quick search", "Related Topics", "Содержание",
                               "文档侧边栏", "页面路径", "下一页", "Главная", "التوثيق", "Material for MkDocs"] {
                #expect(!entry.section.contains(navigation) && !entry.content.contains(navigation), "\(page): \(navigation)")
            }
        }
    }

    @Test func theFixturesCoverEveryShapeAndScript() throws {
        let text = try expectedShapeSections.flatMap { try expectedShapeEntries($0.key, url: "/") }.map(\.content).joined()
        let scalars = text.unicodeScalars
        #expect(scalars.contains { (0x0400...0x04FF).contains($0.value) }, "Cyrillic")
        #expect(scalars.contains { (0x0900...0x097F).contains($0.value) }, "Devanagari")
        #expect(scalars.contains { (0x0600...0x06FF).contains($0.value) }, "Arabic")
        #expect(scalars.contains { (0x4E00...0x9FFF).contains($0.value) }, "CJK ideographs")
        #expect(scalars.contains { (0x00C0...0x00FF).contains($0.value) }, "Latin-1 letters")
        for prefix in ["docbook-", "sphinx-", "hugo-", "docusaurus-", "mkdocs-"] {
            #expect(expectedShapeSections.contains { $0.key.hasPrefix(prefix) }, "\(prefix)")
        }
    }

    @Test func theSiteOfEveryShapeBuildsFromTheDirectory() async throws {
        let build = try await SearchIndexBuilder(location: shapeFixtures.path).build()
        #expect(build.failures.isEmpty)
        let expected = try expectedShapeSections.flatMap { try expectedShapeEntries($0.key, url: "/shapes/\($0.key).html") }
        #expect(build.indexes["shapes"] == expected)
        #expect(build.documentCount == expectedShapeSections.count)
    }

    @Test func theSiteOfEveryShapeBuildsOverHTTPWithEachPagesContentType() async throws {
        // Legacy pages say their charset in the header too, as a configured server would.
        let server = try DocsServer(contentTypes: [
            "docbook-xhtml-en.html": "application/xhtml+xml",
            "docbook-html-ja-sjis.html": "text/html; charset=Shift_JIS",
            "docbook-xhtml-ja-eucjp.html": "text/html; charset=\"euc-jp\"",
            "sphinx-old-ru-cp1251.html": "text/html;charset=windows-1251",
        ])
        let build = try await SearchIndexBuilder(location: server.baseURL).build()
        #expect(build.failures.isEmpty)
        let expected = try expectedShapeSections.flatMap { try expectedShapeEntries($0.key, url: "/shapes/\($0.key).html") }
        #expect(build.indexes["shapes"] == expected)
    }

    @Test func aCharsetGivenOnlyByTheHeaderIsHonouredOverHTTP() async throws {
        let site = FileManager.default.temporaryDirectory.appendingPathComponent("header-charset-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: site, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: site) }
        try Data(#"{"languages":["ru","ja"],"documents":["page"],"path":"${lang}-${doc}.html","url":"/${lang}/${doc}.html"}"#.utf8)
            .write(to: site.appendingPathComponent("manifest.json"))
        // No declaration in the pages: only the header says how to read them.
        let russian = "<title>Ключи</title><h2 id=\"k\">Ротация ключей</h2><p>Ключ действует год.</p>"
        try Data(encoded(russian, as: "CP1251")).write(to: site.appendingPathComponent("ru-page.html"))
        let japanese = "<title>キー</title><h2 id=\"k\">キーの更新</h2><p>① 年に一度更新します。</p>"
        try Data(encoded(japanese, as: "CP932")).write(to: site.appendingPathComponent("ja-page.html"))
        let server = try DocsServer(root: site, contentTypes: [
            "ru-page.html": "text/html; charset=windows-1251", "ja-page.html": "text/html; charset=shift_jis",
        ])
        let build = try await SearchIndexBuilder(location: server.baseURL).build()
        #expect(build.failures.isEmpty)
        #expect(build.indexes["ru"] == [SearchEntry(docTitle: "Ключи", section: "Ротация ключей", url: "/ru/page.html#k", content: "Ключ действует год.")])
        #expect(build.indexes["ja"] == [SearchEntry(docTitle: "キー", section: "キーの更新", url: "/ja/page.html#k", content: "① 年に一度更新します。")])
    }
}

/// `text` in the encoding iconv names `name`, for pages in legacy encodings.
func encoded(_ text: String, as name: String) -> [UInt8] {
    let converter = iconv_open(name, "UTF-8")
    precondition(Int(bitPattern: converter) != -1, "iconv has no \(name)")
    defer { iconv_close(converter) }
    var input = text.utf8.map { CChar(bitPattern: $0) }
    var output = [CChar](repeating: 0, count: input.count * 4 + 16)
    let count = input.withUnsafeMutableBufferPointer { inputBuffer in
        output.withUnsafeMutableBufferPointer { outputBuffer in
            var inPointer = inputBuffer.baseAddress
            var inLeft = inputBuffer.count
            var outPointer = outputBuffer.baseAddress
            var outLeft = outputBuffer.count
            precondition(iconv(converter, &inPointer, &inLeft, &outPointer, &outLeft) != -1, "not all of the text is in \(name)")
            return outputBuffer.count - outLeft
        }
    }
    return output.prefix(count).map { UInt8(bitPattern: $0) }
}
