import Foundation
import Testing
@testable import SearchIndex

private let languages = ["en", "es", "pt", "fr", "de", "ru", "hi", "ur", "pa", "ar", "ja", "zh"]
private let documents = ["getting-started", "authentication", "rate-limits", "usage-reports", "errors", "webhooks"]

private func file(lang: String, doc: String) -> URL {
    sampleDocs.appendingPathComponent(lang == "en" ? "docs/\(doc).html" : "\(lang)/docs/\(doc).html")
}

/// Sections a document should yield, counted from its text with regular expressions
/// rather than with the parser: h1–h3 outside the ignored blocks, plus one when text
/// precedes the first heading.
private func expectedSectionCount(_ html: String) throws -> Int {
    var text = html
    for block in ["nav", "header", "footer", "script", "style", "noscript", "head"] {
        text = try NSRegularExpression(pattern: "<\(block)[\\s>].*?</\(block)>", options: [.dotMatchesLineSeparators, .caseInsensitive])
            .stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: " ")
    }
    let heading = try NSRegularExpression(pattern: "<h[1-3][\\s>]", options: .caseInsensitive)
    let range = NSRange(text.startIndex..., in: text)
    let headings = heading.numberOfMatches(in: text, range: range)
    var preamble = 0
    if let first = heading.firstMatch(in: text, range: range), let end = Range(first.range, in: text) {
        let before = try NSRegularExpression(pattern: "<[^>]*>")
            .stringByReplacingMatches(in: String(text[..<end.lowerBound]), range: NSRange(text[..<end.lowerBound].startIndex..., in: String(text[..<end.lowerBound])), withTemplate: " ")
        if !before.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { preamble = 1 }
    }
    return headings + preamble
}

private func expectedCounts() throws -> [String: Int] {
    var counts: [String: Int] = [:]
    for lang in languages {
        counts[lang] = try documents.reduce(0) { $0 + (try expectedSectionCount(String(contentsOf: file(lang: lang, doc: $1), encoding: .utf8))) }
    }
    return counts
}

private let rateLimitHeaders = #"HTTP/1.1 200 OK Content-Type: application/json; charset=utf-8 X-Request-Id: 7f3c9a2e-1b4d-4e8f-9a6b-2c5d8e1f0a3b X-RateLimit-Limit: 600 X-RateLimit-Remaining: 598 X-RateLimit-Reset: 1767225600 {"data": [{"symbol": "BTC", "price_usd": "97250.12", "change_24h": "-1.84"}, {"symbol": "ETH", "price_usd": "3421.77", "change_24h": "0.62"}], "meta": {"currency": "USD", "timestamp": "2026-01-01T00:00:00Z"}}"#

/// Checks every property a built sample site must have, whichever way it was read.
private func checkSampleIndexes(_ build: SearchIndexBuild) throws {
    #expect(build.failures.isEmpty)
    #expect(build.failedLanguages.isEmpty)
    #expect(Set(build.indexes.keys) == Set(languages))
    #expect(build.languages == languages)
    #expect(build.documentCount == languages.count * documents.count)

    let counts = try expectedCounts()
    for lang in languages {
        #expect(build.indexes[lang]?.count == counts[lang], "section count of \(lang)")
    }
    #expect(build.sectionCount == counts.values.reduce(0, +))
    // Every document has at least four headings; a parser that lost sections would show.
    #expect(counts.values.allSatisfy { $0 >= documents.count * 4 })

    let en = try #require(build.indexes["en"])
    #expect(en.contains(SearchEntry(
        docTitle: "Getting started — CoinPrice API", section: "Getting started — CoinPrice API",
        url: "/docs/getting-started.html", content: "This guide takes about five minutes.")))
    #expect(en.contains(SearchEntry(
        docTitle: "Getting started — CoinPrice API", section: "Your first request", url: "/docs/getting-started.html",
        content: #"Create an account and open the dashboard. Copy your API key from the Keys page. Call the prices endpoint with the key in a header. curl -H "X-API-Key: $API_KEY" \ "https://api.coinprice.example/v1/prices?symbols=BTC,ETH&currency=USD""#)))
    #expect(en.contains(SearchEntry(
        docTitle: "Rate limits — CoinPrice API", section: "Limits per plan", url: "/docs/rate-limits.html#limits-per-plan",
        content: "Plan Requests per minute Requests per day Free 60 10 000 Pro 600 500 000 Enterprise 6 000 10 000 000")))
    #expect(en.contains(SearchEntry(
        docTitle: "Authentication — CoinPrice API", section: "Rotating keys", url: "/docs/authentication.html",
        content: "Create a new key, deploy it, then revoke the old one. Revoked keys stop working within one minute. Note A revoked key cannot be restored.")))
    #expect(!en.contains { $0.section == "Documentation" || $0.content.contains("analytics") || $0.content.contains("All rights reserved") })

    let ar = try #require(build.indexes["ar"])
    #expect(ar.contains(SearchEntry(
        docTitle: "المصادقة — CoinPrice API", section: "إرسال المفتاح", url: "/ar/docs/authentication.html#sending-the-key",
        content: "أرسل المفتاح في ترويسة X-API-Key. لا تضعه أبدًا في عنوان URL، لأن العناوين تنتهي في السجلات. GET /v1/prices?symbols=BTC HTTP/1.1 Host: api.coinprice.example X-API-Key: cp_live_<your-key>")))
    #expect(ar.contains(SearchEntry(
        docTitle: "البدء — CoinPrice API", section: "الخطوات التالية", url: "/ar/docs/getting-started.html#next-steps",
        content: "اقرأ عن المفاتيح والصلاحيات في المصادقة.")))

    // ja: the ZWJ emoji is the 500th Character, so a cut by scalars or bytes would split it.
    let ja = try #require(build.indexes["ja"])
    let jaHeaders = try #require(ja.first { $0.url == "/ja/docs/rate-limits.html#response-headers" })
    #expect(jaHeaders == SearchEntry(
        docTitle: "レート制限 — CoinPrice API", section: "レスポンスヘッダー X-RateLimit-*", url: "/ja/docs/rate-limits.html#response-headers",
        content: rateLimitHeaders + " すべてのレスポンスにはこれらのヘッダーが付くので、クライアントは残りのクォータを常に把握できます。リクエスト数を自分で数えるのではなく、毎回のレスポンスでヘッダーを読んでください。開発のヒント：👩🏽‍💻"))
    #expect(jaHeaders.content.count == 500)
    #expect(jaHeaders.content.last == "👩🏽‍💻")
    #expect(ja.contains(SearchEntry(
        docTitle: "はじめに — CoinPrice API", section: "最初のリクエスト", url: "/ja/docs/getting-started.html",
        content: #"アカウントを作成し、ダッシュボードを開きます。 「キー」ページからAPIキーをコピーします。 ヘッダーにキーを付けて価格エンドポイントを呼び出します。 curl -H "X-API-Key: $API_KEY" \ "https://api.coinprice.example/v1/prices?symbols=BTC,ETH&currency=USD""#)))

    // hi: Devanagari vowel signs and viramas make scalars outnumber Characters.
    let hi = try #require(build.indexes["hi"])
    let hiHeaders = try #require(hi.first { $0.url == "/hi/docs/rate-limits.html#response-headers" })
    #expect(hiHeaders == SearchEntry(
        docTitle: "दर सीमाएँ — CoinPrice API", section: "जवाब के हेडर X-RateLimit-*", url: "/hi/docs/rate-limits.html#response-headers",
        content: rateLimitHeaders + " हर जवाब में ये हेडर होते हैं, ताकि आपके क्लाइंट को हमेशा पता रहे कि उसका कितना कोटा बचा है। अनुरोध ख़ुद गिनने के बजाय हर जवाब में इन्हें पढ़ें: स"))
    #expect(hiHeaders.content.count == 500)
    #expect(hiHeaders.content.unicodeScalars.count > 500)
    #expect(hi.contains(SearchEntry(
        docTitle: "प्रमाणीकरण — CoinPrice API", section: "कुंजियाँ बदलना", url: "/hi/docs/authentication.html",
        content: "नई कुंजी बनाएँ, उसे लागू करें, फिर पुरानी कुंजी रद्द करें। रद्द की गई कुंजी एक मिनट के भीतर काम करना बंद कर देती है। ध्यान दें रद्द की गई कुंजी को वापस बहाल नहीं किया जा सकता।")))

    // fr: every é is written &eacute; in the source.
    #expect(build.indexes["fr"]?.contains { $0.section == "Vérifier les signatures" } == true)

    for (lang, entries) in build.indexes {
        var cutSections = 0
        for entry in entries {
            #expect(entry.content.count <= HTMLSections.maxContentCharacters, "\(lang) \(entry.url)")
            #expect(entry.content == entry.content.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(!entry.content.contains("  ") && !entry.content.contains("\u{00A0}") && !entry.content.contains("\n"))
            #expect(!entry.content.contains("\u{FFFD}") && !entry.section.isEmpty && !entry.docTitle.isEmpty)
            #expect(String(decoding: Array(entry.content.utf8), as: UTF8.self) == entry.content)
            if entry.content.count == HTMLSections.maxContentCharacters { cutSections += 1 }
        }
        #expect(cutSections >= 1, "\(lang) has a section longer than 500 characters")
        // Valid UTF-8 JSON that decodes back to the same entries.
        let json = SearchIndexJSON.encode(entries)
        #expect(String(validating: json, as: UTF8.self) != nil)
        #expect(try JSONDecoder().decode([SearchEntry].self, from: Data(json)) == entries)
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [[String: String]])
        #expect(objects.count == entries.count && objects.allSatisfy { Set($0.keys) == ["doc_title", "section", "url", "content"] })
    }
}

/// Every cut section is the first 500 Characters of its uncut text, so its last
/// Character is a whole grapheme of the source, never part of one.
private func checkCutsAgainstSource(_ build: SearchIndexBuild) throws {
    var cuts = 0
    for lang in languages {
        for doc in documents {
            let url = lang == "en" ? "/docs/\(doc).html" : "/\(lang)/docs/\(doc).html"
            let html = try [UInt8](Data(contentsOf: file(lang: lang, doc: doc)))
            let uncut = HTMLSections.sections(html: html, publicURL: url, encoding: nil, contentLimit: .max).entries
            let cut = build.indexes[lang, default: []].filter { $0.url == url || $0.url.hasPrefix(url + "#") }
            #expect(cut.count == uncut.count)
            for (short, full) in zip(cut, uncut) where full.content.count > HTMLSections.maxContentCharacters {
                cuts += 1
                let prefix = full.content.prefix(HTMLSections.maxContentCharacters)
                #expect(short.content == String(prefix).trimmingCharacters(in: .whitespaces))
                #expect(short.content.last == prefix.last || prefix.last == " ")
                #expect(Array(short.content) == Array(full.content.prefix(short.content.count)))
            }
        }
    }
    #expect(cuts >= languages.count)
}

@Suite("Sample documentation site")
struct SampleSiteTests {
    @Test func buildsFromTheDirectory() async throws {
        let build = try await SearchIndexBuilder(location: sampleDocs.path).build()
        try checkSampleIndexes(build)
        try checkCutsAgainstSource(build)
    }

    @Test(arguments: [true, false])
    func buildsOverHTTPTheSameAsFromTheDirectory(trailingSlash: Bool) async throws {
        let server = try DocsServer()
        let base = trailingSlash ? server.baseURL : String(server.baseURL.dropLast())
        let build = try await SearchIndexBuilder(location: base, concurrency: 8).build()
        try checkSampleIndexes(build)
        let local = try await SearchIndexBuilder(location: sampleDocs.path).build()
        #expect(build.indexes == local.indexes)
    }

    @Test func aLanguageWhoseDocumentsFailIsKeptAndTheOthersAreBuilt() async throws {
        let server = try DocsServer(arguments: ["--fail-prefix", "/ar/", "--fail-status", "500"])
        let build = try await SearchIndexBuilder(location: server.baseURL, timeout: .seconds(5), retries: 1).build()
        #expect(build.failedLanguages == ["ar"])
        #expect(build.indexes["ar"] == nil)
        #expect(Set(build.indexes.keys) == Set(languages).subtracting(["ar"]))
        #expect(build.failures.count == documents.count)
        #expect(build.failures.map(\.document) == documents)
        for failure in build.failures {
            #expect(failure.language == "ar" && !failure.isNotFound)
            #expect(failure.reason.contains("HTTP 500"))
            #expect(failure.location == "\(server.baseURL)ar/docs/\(failure.document).html")
        }
        let counts = try expectedCounts()
        #expect(build.indexes["ja"]?.count == counts["ja"])
        #expect(build.documentCount == (languages.count - 1) * documents.count)
    }

    @Test func aMissingDocumentIsSkippedAndItsLanguageStillBuilt() async throws {
        let server = try DocsServer(arguments: ["--fail-prefix", "/hi/docs/errors.html", "--fail-status", "404"])
        let build = try await SearchIndexBuilder(location: server.baseURL).build()
        #expect(build.failedLanguages.isEmpty)
        #expect(build.failures.count == 1)
        let failure = try #require(build.failures.first)
        #expect(failure.language == "hi" && failure.document == "errors" && failure.isNotFound)
        #expect(failure.location == "\(server.baseURL)hi/docs/errors.html")
        let hi = try #require(build.indexes["hi"])
        #expect(!hi.contains { $0.url.hasPrefix("/hi/docs/errors.html") })
        #expect(hi.contains { $0.url.hasPrefix("/hi/docs/webhooks.html") })
        let expected = try documents.filter { $0 != "errors" }
            .reduce(0) { $0 + (try expectedSectionCount(String(contentsOf: file(lang: "hi", doc: $1), encoding: .utf8))) }
        #expect(hi.count == expected)
    }

    @Test func aTimedOutDocumentFailsItsLanguage() async throws {
        let server = try DocsServer(arguments: ["--delay", "6", "--delay-prefix", "/ja/docs/webhooks.html"])
        let build = try await SearchIndexBuilder(location: server.baseURL, timeout: .milliseconds(1500), retries: 1).build()
        #expect(build.failedLanguages == ["ja"])
        #expect(build.indexes["ja"] == nil && build.indexes.count == languages.count - 1)
        let failure = try #require(build.failures.first)
        #expect(build.failures.count == 1 && failure.document == "webhooks" && !failure.isNotFound)
        #expect(failure.reason.contains("timed out"))
    }

    @Test func aDroppedConnectionIsRetriedThenFailsItsLanguage() async throws {
        let server = try DocsServer(arguments: ["--drop-prefix", "/zh/docs/errors.html"])
        let build = try await SearchIndexBuilder(location: server.baseURL, timeout: .seconds(5), retries: 2).build()
        #expect(build.failedLanguages == ["zh"])
        #expect(build.failures.count == 1)
        #expect(build.failures.first?.reason.contains("after 3 attempts") == true)
    }

    @Test func aMissingLocalFileCountsAsNotFound() async throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("search-index-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: sampleDocs, to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        try FileManager.default.removeItem(at: copy.appendingPathComponent("docs/webhooks.html"))
        let build = try await SearchIndexBuilder(location: copy.path).build()
        #expect(build.failedLanguages.isEmpty)
        #expect(build.failures.map(\.document) == ["webhooks"])
        #expect(build.failures.first?.isNotFound == true && build.failures.first?.language == "en")
        #expect(build.indexes["en"]?.contains { $0.url.hasPrefix("/docs/webhooks.html") } == false)
        #expect(build.indexes["en"]?.isEmpty == false)
    }

    @Test func aLanguageWithEveryDocumentMissingKeepsItsPreviousKey() async throws {
        let server = try DocsServer(arguments: ["--fail-prefix", "/pa/", "--fail-status", "404"])
        let build = try await SearchIndexBuilder(location: server.baseURL).build()
        #expect(build.failedLanguages == ["pa"])
        #expect(build.failures.count == documents.count && build.failures.allSatisfy(\.isNotFound))
    }

    @Test func anUnreadableManifestThrowsNamingItsLocation() async throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-site-\(UUID().uuidString)").path
        await #expect {
            try await SearchIndexBuilder(location: missing).build()
        } throws: { error in
            // A directory without a manifest is a wrong location (exit 64), not an outage.
            guard case .noManifest(let location)? = error as? SearchIndexError else { return false }
            return location == missing
        }
        let server = try DocsServer(arguments: ["--fail-prefix", "/manifest.json", "--fail-status", "503"])
        await #expect {
            try await SearchIndexBuilder(location: server.baseURL, retries: 1).build()
        } throws: { error in
            String(describing: error).contains("\(server.baseURL)manifest.json") && String(describing: error).contains("503")
        }
    }

    @Test func anInvalidManifestThrowsNamingTheField() async throws {
        let site = FileManager.default.temporaryDirectory.appendingPathComponent("bad-site-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: site, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: site) }
        try Data(#"{"languages":["en"],"documents":["a"],"path":"${doc}.html","url":"/${lnag}/${doc}"}"#.utf8)
            .write(to: site.appendingPathComponent("manifest.json"))
        await #expect {
            try await SearchIndexBuilder(location: site.path).build()
        } throws: { error in
            String(describing: error).contains("field url") && String(describing: error).contains("${lnag}")
        }
    }
}
