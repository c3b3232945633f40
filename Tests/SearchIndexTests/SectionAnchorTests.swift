import Foundation
import Testing
@testable import SearchIndex

/// SPEC §7's anchor rule, one shape at a time: the heading's `id`, else the `id` (or
/// `<a name>`) of an element inside it, else the `id` of the `section`/`div` whose first
/// heading it is.
@Suite("Section anchors")
struct SectionAnchorTests {
    private func urls(_ html: String) -> [String] {
        HTMLSections.sections(html: Array(("<title>T</title>" + html).utf8), publicURL: "/p.html").entries.map(\.url)
    }

    @Test func theHeadingsOwnIdComesFirst() {
        #expect(urls(#"<section id="s"><h2 id="h"><a id="a"></a><a name="n"></a>T</h2></section>"#) == ["/p.html#h"])
    }

    @Test func thenTheFirstIdOrAnchorNameInsideTheHeading() {
        #expect(urls(#"<section id="s"><h2><a id="a"></a>T</h2></section>"#) == ["/p.html#a"])
        #expect(urls(#"<div id="s"><h2><a name="n"></a>T</h2></div>"#) == ["/p.html#n"])
        #expect(urls(#"<h2><span><a name="first"></a></span><em id="second">T</em></h2>"#) == ["/p.html#first"])
        #expect(urls(#"<h2><a id="by-id" name="by-name">T</a></h2>"#) == ["/p.html#by-id"])
        // `name` makes an anchor only on an `a`.
        #expect(urls(#"<h2><input name="q">T</h2>"#) == ["/p.html"])
    }

    @Test func thenTheSectionOrDivWhoseFirstHeadingItIs() {
        #expect(urls(#"<section id="s"><h2>A</h2><p>x</p><h3>B</h3></section>"#) == ["/p.html#s", "/p.html"])
        #expect(urls(#"<div class="section" id="d"><div class="titlepage"><div><div><h2>A</h2></div></div></div></div>"#) == ["/p.html#d"])
        // Nested sections each open with their own heading.
        #expect(urls(#"<section id="a"><h1>A</h1><section id="b"><h2>B</h2></section><section id="c"><h2>C</h2><h2>D</h2></section></section>"#)
            == ["/p.html#a", "/p.html#b", "/p.html#c", "/p.html"])
        // The innermost element with an id wins; one without an id passes the rule outward.
        #expect(urls(#"<div id="page"><section id="intro"><h1>A</h1></section></div>"#) == ["/p.html#intro"])
        #expect(urls(#"<section id="outer"><section><h2>A</h2></section></section>"#) == ["/p.html#outer"])
    }

    @Test func aHeadingThatDoesNotOpenItsSectionTakesNoAnchorFromIt() {
        // An earlier heading in a nested block already opened the section.
        #expect(urls(#"<section id="s"><div><h2>A</h2></div><h2>B</h2></section>"#) == ["/p.html#s", "/p.html"])
        // Text before the first heading (its own section) does not stop it from opening one.
        #expect(urls(#"<section id="s"><p>lead</p><h2>A</h2></section>"#) == ["/p.html", "/p.html#s"])
        // A section after a heading, closed before the next heading, does not carry over.
        #expect(urls(#"<h1>A</h1><section id="s"><p>x</p></section><h2>B</h2>"#) == ["/p.html", "/p.html"])
    }

    @Test func onlySectionAndDivCarryAnAnchorForTheirHeading() {
        #expect(urls(#"<article id="a"><h2>A</h2></article>"#) == ["/p.html"])
        #expect(urls(#"<main id="m"><h2>A</h2></main>"#) == ["/p.html"])
        #expect(urls(#"<span id="label"></span><h2>A</h2>"#) == ["/p.html"])
    }

    @Test func headingsThatStartNoSectionDoNotOpenOne() {
        // Removed blocks and h4–h6 hold no section heading.
        #expect(urls(#"<section id="s"><nav><h2>Contents</h2></nav><h2>A</h2></section>"#) == ["/p.html#s"])
        #expect(urls(#"<section id="s"><h4>Note</h4><h2>A</h2></section>"#) == ["/p.html", "/p.html#s"])
    }

    @Test func anEmptyIdIsNoAnchor() {
        #expect(urls(#"<section id="s"><h2 id="">A</h2></section>"#) == ["/p.html#s"])
        #expect(urls(#"<h2><a name=""></a>A</h2>"#) == ["/p.html"])
    }
}

/// Permalinks inside a heading (Sphinx's and MkDocs' "¶", Docusaurus' U+200B hash link,
/// Hugo themes' "#") are not part of the section's name.
@Suite("Heading permalinks")
struct HeadingPermalinkTests {
    private func sections(_ html: String) -> [String] {
        HTMLSections.sections(html: Array(("<title>T</title>" + html).utf8), publicURL: "/p.html").entries.map(\.section)
    }

    @Test func aLinkToTheSectionsOwnAnchorIsLeftOutOfItsName() {
        #expect(sections(##"<section id="x"><h2>Title<a class="headerlink" href="#x">¶</a></h2></section>"##) == ["Title"])
        #expect(sections(##"<h2 id="x">Title<a class="headerlink" href="#x">&para;</a></h2>"##) == ["Title"])
        #expect(sections("<h2 id=\"x\">Title<a href=\"#x\" class=\"hash-link\">\u{200B}</a></h2>") == ["Title"])
        #expect(sections(##"<h2 id="été">Été <a href="#%C3%A9t%C3%A9">#</a></h2>"##) == ["Été"])
    }

    @Test func otherLinksStayInTheName() {
        #expect(sections(##"<h2 id="x">See <a href="#y">the limits</a></h2>"##) == ["See the limits"])
        #expect(sections(#"<h2 id="x">Title<a href="/other#x">¶</a></h2>"#) == ["Title¶"])
    }

    @Test func aHeadingThatIsOnlyALinkToItselfKeepsThatText() {
        #expect(sections(##"<h2 id="x"><a href="#x">Title</a></h2>"##) == ["Title"])
    }
}

/// ARIA landmark roles equal to the removed elements: navigation (`nav`), banner
/// (`header`), contentinfo (`footer`).
@Suite("Landmark roles")
struct LandmarkRoleTests {
    @Test func navigationBannerAndContentinfoAreRemovedLikeTheirElements() {
        let html = #"""
            <title>T</title>
            <div role="banner">Site</div>
            <div class="related" role="navigation"><h3>Navigation</h3><a href="/">up</a></div>
            <div role="main"><h1>A</h1><p>a</p></div>
            <div class="sphinxsidebar" role="navigation search"><h3>Quick search</h3></div>
            <div class="footer" role="contentinfo">© 2026</div>
            <div role="note">kept</div>
            """#
        let entries = HTMLSections.sections(html: Array(html.utf8), publicURL: "/p.html").entries
        #expect(entries == [SearchEntry(docTitle: "T", section: "A", url: "/p.html", content: "a kept")])
    }
}
