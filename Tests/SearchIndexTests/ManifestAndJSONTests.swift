import Foundation
import Testing
@testable import SearchIndex

@Suite("Documentation manifest")
struct DocsManifestTests {
    private let specExample = """
        {"languages": ["en", "es", "ja"], "documents": ["getting-started", "api"],
         "path": "${lang}/docs/${doc}.html", "url": "/${lang}/docs/${doc}.html",
         "overrides": {"en": {"path": "docs/${doc}.html", "url": "/docs/${doc}.html"}}}
        """

    @Test func expandsTemplatesWithOverrides() throws {
        let manifest = try DocsManifest(json: Data(specExample.utf8))
        #expect(manifest.languages == ["en", "es", "ja"])
        #expect(manifest.documents == ["getting-started", "api"])
        #expect(manifest.path(lang: "ja", doc: "api") == "ja/docs/api.html")
        #expect(manifest.url(lang: "ja", doc: "api") == "/ja/docs/api.html")
        #expect(manifest.path(lang: "en", doc: "api") == "docs/api.html")
        #expect(manifest.url(lang: "en", doc: "api") == "/docs/api.html")
    }

    @Test func anOverrideMayReplaceOnlyOneTemplate() throws {
        let json = #"{"languages":["en"],"documents":["a"],"path":"${lang}/${doc}.html","url":"/${lang}/${doc}","overrides":{"en":{"url":"/${doc}"}}}"#
        let manifest = try DocsManifest(json: Data(json.utf8))
        #expect(manifest.path(lang: "en", doc: "a") == "en/a.html")
        #expect(manifest.url(lang: "en", doc: "a") == "/a")
    }

    @Test(arguments: [
        (#"{"documents":["a"],"path":"${doc}","url":"${doc}"}"#, DocsManifestError.missingField(field: "languages")),
        (#"{"languages":["en"],"path":"${doc}","url":"${doc}"}"#, .missingField(field: "documents")),
        (#"{"languages":["en"],"documents":["a"],"url":"${doc}"}"#, .missingField(field: "path")),
        (#"{"languages":["en"],"documents":["a"],"path":"${doc}"}"#, .missingField(field: "url")),
        (#"{"languages":"en","documents":["a"],"path":"${doc}","url":"${doc}"}"#, .notAnArrayOfStrings(field: "languages")),
        (#"{"languages":[],"documents":["a"],"path":"${doc}","url":"${doc}"}"#, .emptyValue(field: "languages")),
        (#"{"languages":["en","en"],"documents":["a"],"path":"${doc}","url":"${doc}"}"#, .duplicateName(field: "languages", name: "en")),
        (#"{"languages":["en"],"documents":["a"],"path":"${doc}","url":"/${language}/${doc}"}"#,
         .unknownPlaceholder(field: "url", placeholder: "language", template: "/${language}/${doc}")),
        (#"{"languages":["en"],"documents":["a"],"path":"${lang}/x.html","url":"${doc}"}"#,
         .missingDocPlaceholder(field: "path", template: "${lang}/x.html")),
        (#"{"languages":["en"],"documents":["a"],"path":"${doc","url":"${doc}"}"#,
         .unterminatedPlaceholder(field: "path", template: "${doc")),
        (#"{"languages":["en"],"documents":["a"],"path":"${doc}","url":"${doc}","overrides":{"en":{"path":"${lng}/${doc}"}}}"#,
         .unknownPlaceholder(field: "overrides.en.path", placeholder: "lng", template: "${lng}/${doc}")),
        (#"{"languages":["en"],"documents":["a"],"path":"${doc}","url":"${doc}","overrides":{"en":{"pth":"x"}}}"#,
         .unknownField(field: "overrides.en.pth")),
        (#"{"languages":["en"],"documents":["a"],"path":"${doc}","url":"${doc}","overrides":{"en":"x"}}"#,
         .notAnObject(field: "overrides.en")),
    ])
    func rejectsInvalidManifestsNamingTheField(json: String, expected: DocsManifestError) {
        #expect(throws: expected) { try DocsManifest(json: Data(json.utf8)) }
    }

    @Test func errorMessagesNameTheField() {
        do {
            _ = try DocsManifest(json: Data(#"{"languages":["en"],"documents":["a"],"path":"${doc}","url":"/${language}/${doc}"}"#.utf8))
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("url"))
            #expect(error.description.contains("${language}"))
        }
    }

    @Test func rejectsNonJSON() {
        #expect {
            try DocsManifest(json: Data("not json".utf8))
        } throws: { error in
            if case .invalidJSON = error as? DocsManifestError { return true }
            return false
        }
    }
}

@Suite("Search index JSON")
struct SearchIndexJSONTests {
    @Test func writesKeysInOrderAndNonASCIIRaw() throws {
        let entries = [SearchEntry(docTitle: "レート制限", section: "Rate \"limits\"", url: "/ja/docs/a.html#x/y", content: "a\\b\nc\t\u{01}é😀")]
        let bytes = SearchIndexJSON.encode(entries)
        let text = try #require(String(validating: bytes, as: UTF8.self))
        #expect(text == #"[{"doc_title":"レート制限","section":"Rate \"limits\"","url":"/ja/docs/a.html#x/y","content":"a\\b\nc\t\u0001é😀"}]"#)
        #expect(try JSONDecoder().decode([SearchEntry].self, from: Data(bytes)) == entries)
    }

    @Test func emptyIndexIsAnEmptyArray() {
        #expect(SearchIndexJSON.encode([]) == Array("[]".utf8))
    }

    @Test func everyControlCharacterRoundTrips() throws {
        let all = String(String.UnicodeScalarView((0..<0x20).compactMap(Unicode.Scalar.init) + ["\"", "\\", "/", "\u{7F}", "\u{2028}"]))
        let entries = [SearchEntry(docTitle: all, section: "", url: "", content: all)]
        let bytes = SearchIndexJSON.encode(entries)
        #expect(try JSONDecoder().decode([SearchEntry].self, from: Data(bytes)) == entries)
        let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [[String: String]]
        #expect(object?.first?["doc_title"] == all)
    }
}
