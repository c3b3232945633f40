import Foundation
import Testing
@testable import SearchIndex

@Suite("HTML to search sections")
struct HTMLSectionsTests {
    private func parse(_ html: String, url: String = "/p.html") -> (docTitle: String, entries: [SearchEntry]) {
        HTMLSections.sections(html: Array(html.utf8), publicURL: url)
    }

    @Test func headingsStartSectionsWithAnchorsOnlyWhenTheyHaveIds() {
        let result = parse("""
            <html><head><title>Guide</title></head><body>
            <h1 id="top">Top</h1><p>one</p>
            <h2>No id</h2><p>two</p>
            <h3 id="deep">Deep</h3><p>three</p>
            </body></html>
            """)
        #expect(result.docTitle == "Guide")
        #expect(result.entries == [
            SearchEntry(docTitle: "Guide", section: "Top", url: "/p.html#top", content: "one"),
            SearchEntry(docTitle: "Guide", section: "No id", url: "/p.html", content: "two"),
            SearchEntry(docTitle: "Guide", section: "Deep", url: "/p.html#deep", content: "three"),
        ])
    }

    @Test func inlineElementsInsideHeadingsJoinWithoutSpaces() {
        let result = parse(#"<title>T</title><h2 id="x">Rate <code>limits</code></h2><p>body</p><h2 id="y"><b>Web</b><i>hooks</i></h2>"#)
        #expect(result.entries.map(\.section) == ["Rate limits", "Webhooks"])
        #expect(result.entries[0].url == "/p.html#x")
    }

    @Test func unclosedTagsAreRecovered() {
        let result = parse("<title>T</title><h1>A</h1><p>first<p>second<ul><li>x<li>y</ul><h2>B</h2><div><p>inside")
        #expect(result.entries == [
            SearchEntry(docTitle: "T", section: "A", url: "/p.html", content: "first second x y"),
            SearchEntry(docTitle: "T", section: "B", url: "/p.html", content: "inside"),
        ])
    }

    @Test func textBeforeHtmlFormsThePreHeadingSection() {
        // No <title>: the first h1 names the document and the pre-heading section.
        let result = parse("stray words <html><body><p>intro</p><h1>First <em>heading</em></h1>after</body></html>")
        #expect(result.docTitle == "First heading")
        #expect(result.entries == [
            SearchEntry(docTitle: "First heading", section: "First heading", url: "/p.html", content: "stray words intro"),
            SearchEntry(docTitle: "First heading", section: "First heading", url: "/p.html", content: "after"),
        ])
    }

    @Test func noPreHeadingSectionWhenOnlyIgnoredContentPrecedesTheFirstHeading() {
        let result = parse("<title>T</title><body><nav>Menu <h2>Nav heading</h2></nav><header>Site</header> \n <h1>A</h1>a<footer><h3>Foot</h3>f</footer>")
        #expect(result.entries == [SearchEntry(docTitle: "T", section: "A", url: "/p.html", content: "a")])
    }

    @Test func titleFallsBackToFirstH1NotAnEarlierH2() {
        let result = parse("<h2>Second level</h2><p>x</p><h1>Main</h1><p>y</p><h1>Other</h1>")
        #expect(result.docTitle == "Main")
        #expect(result.entries.map(\.docTitle) == ["Main", "Main", "Main"])
        #expect(result.entries.map(\.section) == ["Second level", "Main", "Other"])
    }

    @Test func titleWhitespaceIsCollapsedAndEntitiesDecoded() {
        let result = parse("<title>\n  Rate &amp; usage &#8212;\tdocs </title><h1>X</h1>")
        #expect(result.docTitle == "Rate & usage — docs")
    }

    @Test func entitiesAreDecoded() {
        let result = parse("<title>T</title><h1>E</h1><p>&amp; &lt;tag&gt; &quot;q&quot; &#8212; caf&eacute; &#x1F600; &copy;</p>")
        #expect(result.entries[0].content == "& <tag> \"q\" — café 😀 ©")
    }

    @Test func whitespaceIncludingNoBreakSpacesCollapses() {
        let result = parse("<title>T</title><h1>E</h1><p>  a&nbsp;&nbsp; b\n\t c \u{00A0}d&#160;</p>")
        #expect(result.entries[0].content == "a b c d")
    }

    @Test func blockElementsAreSeparatedButInlineElementsAreNot() {
        let result = parse("""
            <title>T</title>
            <h1>L</h1><ul><li>a</li><li>b</li></ul>
            <h2>T</h2><table><tr><td>1</td><td>2</td></tr><tr><th>3</th></tr></table>
            <h2>I</h2><p><b>a</b><i>b</i><span>c</span></p><p>d</p>line<br>break
            """)
        #expect(result.entries.map(\.content) == ["a b", "1 2 3", "abc d line break"])
    }

    @Test func h4ToH6AreContentNotSections() {
        let result = parse("<title>T</title><h2>A</h2><p>x</p><h4>Note</h4><p>y</p><h5>Five</h5><h6>Six</h6>z")
        #expect(result.entries == [SearchEntry(docTitle: "T", section: "A", url: "/p.html", content: "x Note y Five Six z")])
    }

    @Test func scriptStyleNoscriptNavHeaderFooterAreRemoved() {
        let result = parse("""
            <title>T</title><style>p { color: red }</style>
            <h1>A</h1><p>keep</p><script>var x = "<p>no</p>" && 1 < 2;</script><noscript>enable js</noscript>
            <nav><a href="/">Home</a></nav><header>Banner</header><p>also</p><footer>© 2026</footer>
            """)
        #expect(result.entries == [SearchEntry(docTitle: "T", section: "A", url: "/p.html", content: "keep also")])
    }

    @Test func headingsWithoutTextStillStartSections() {
        let result = parse(#"<title>T</title><h1>A</h1><h2 id="img"><img src="x.png"></h2><p>pic</p>"#)
        #expect(result.entries == [
            SearchEntry(docTitle: "T", section: "A", url: "/p.html", content: ""),
            SearchEntry(docTitle: "T", section: "T", url: "/p.html#img", content: "pic"),
        ])
    }

    @Test func contentIsCutAt500GraphemesWithoutSplittingAZWJEmoji() {
        let emoji = "👩🏽‍💻"  // woman technologist, medium skin tone: four scalars (ZWJ sequence), one Character
        let text = String(repeating: "a", count: 499) + emoji + "b"
        #expect(text.count == 501)
        let result = parse("<title>T</title><h1>A</h1><p>\(text)</p>")
        let content = result.entries[0].content
        #expect(content.count == 500)
        #expect(content == String(repeating: "a", count: 499) + emoji)
        #expect(content.last == Character(emoji))
        #expect(content.unicodeScalars.count == 503)
    }

    @Test func contentOfExactly500GraphemesIsKept() {
        let text = String(repeating: "क्षि", count: 500)  // each is one grapheme: conjunct plus vowel sign
        #expect(text.count == 500)
        let content = parse("<title>T</title><h1>A</h1><p>\(text)</p>").entries[0].content
        #expect(content == text)
        let longer = parse("<title>T</title><h1>A</h1><p>\(text)क्षि</p>").entries[0].content
        #expect(longer == text)
    }

    @Test func aCutAfterACollapsedSpaceIsTrimmed() {
        let text = String(repeating: "a", count: 499) + "   bc"
        let content = parse("<title>T</title><h1>A</h1><p>\(text)</p>").entries[0].content
        #expect(content == String(repeating: "a", count: 499))
    }

    @Test func declaredCharsetIsHonoured() {
        var bytes = Array(#"<html><head><meta charset="iso-8859-1"><title>Caf"#.utf8)
        bytes.append(0xE9)  // é in Latin-1
        bytes += Array("</title></head><body><h1>A</h1><p>x</p></body></html>".utf8)
        let result = HTMLSections.sections(html: bytes, publicURL: "/p.html")
        #expect(result.docTitle == "Café")
    }

    @Test func textAfterTheEndOfHtmlIsReadIntoTheBodyAsBrowsersDo() {
        let result = parse("<title>T</title><body><h1>A</h1><p>x</p></body></html>\nafter <b>all</b>")
        #expect(result.entries == [SearchEntry(docTitle: "T", section: "A", url: "/p.html", content: "x after all")])
    }

    @Test func aHeadingLeftOpenAtTheEndStillStartsASection() {
        #expect(parse(#"<title>T</title><p>x</p><h2 id="z">Unclosed <em>heading"#).entries == [
            SearchEntry(docTitle: "T", section: "T", url: "/p.html", content: "x"),
            SearchEntry(docTitle: "T", section: "Unclosed heading", url: "/p.html#z", content: ""),
        ])
    }

    @Test func emptyAndGarbageInputGiveNoSections() {
        #expect(parse("").entries.isEmpty)
        #expect(parse("   \n ").entries.isEmpty)
        let garbage = parse("<<<>>> &&& </p></div>")
        #expect(garbage.entries.count <= 1)
    }
}
