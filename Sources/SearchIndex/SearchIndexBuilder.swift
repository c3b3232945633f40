import Foundation

/// A document that could not be fetched, and whether that costs its language the rebuild.
package struct DocumentFailure: Sendable, Hashable, CustomStringConvertible {
    package var language: String
    package var document: String
    /// The URL or file path that was read.
    package var location: String
    package var reason: String
    /// A 404 (or missing file) only skips the document; anything else fails the language.
    package var isNotFound: Bool

    package var description: String {
        "\(language)/\(document) (\(location)): \(reason)\(isNotFound ? ", skipped" : ", language kept as before")"
    }
}

/// The rebuilt search indexes of one run, and what went wrong on the way.
package struct SearchIndexBuild: Sendable {
    /// Every language of the manifest, in manifest order (built or failed).
    package var languages: [String]
    /// Complete languages only; a language with a non-404 failure is absent.
    package var indexes: [String: [SearchEntry]]
    /// Languages whose previous key must be kept, in manifest order.
    package var failedLanguages: [String]
    /// Every failed document, including 404s, in manifest order.
    package var failures: [DocumentFailure]
    /// Documents parsed into the indexes above.
    package var documentCount: Int
    /// Entries in the indexes above.
    package var sectionCount: Int

    /// True when the stage must exit 1 (SPEC §7: any failed document, 404 included).
}

/// Why the search-index stage could not start: the site's location or its manifest.
package enum SearchIndexError: Error, Sendable, CustomStringConvertible {
    case invalidLocation(String)
    /// A local directory without `manifest.json`: a wrong path, not an outage.
    case noManifest(location: String)
    case manifestUnreadable(location: String, reason: String)
    case manifestInvalid(location: String, DocsManifestError)

    package var description: String {
        switch self {
        case .invalidLocation(let location):
            "documentation location \"\(location)\" is neither a directory nor an http(s) URL"
        case .noManifest(let location):
            "\(location) holds no manifest.json"
        case .manifestUnreadable(let location, let reason):
            "cannot read the documentation manifest \(location): \(reason)"
        case .manifestInvalid(let location, let error):
            "\(location): \(error)"
        }
    }
}

/// Rebuilds every language's search index from a documentation site (SPEC §7).
package struct SearchIndexBuilder: Sendable {
    package var location: String
    package var timeout: Duration
    package var retries: Int
    package var concurrency: Int

    package init(location: String, timeout: Duration = .seconds(10), retries: Int = 2, concurrency: Int = 16) {
        self.location = location
        self.timeout = timeout
        self.retries = retries
        self.concurrency = concurrency
    }

    /// Reads the manifest, fetches and parses every document; throws only when the
    /// manifest cannot be read or is invalid.
    package func build() async throws(SearchIndexError) -> SearchIndexBuild {
        let source = try DocumentSource(location: location)
        if case .directory(let root) = source,
           !FileManager.default.fileExists(atPath: root.appendingPathComponent("manifest.json").path) {
            throw .noManifest(location: location)
        }
        let fetcher = DocumentFetcher(source: source, timeout: timeout, retries: retries, concurrency: concurrency)
        defer { fetcher.finish() }

        let manifestLocation = source.locate("manifest.json")
        let manifest: DocsManifest
        switch await fetcher.fetch(manifestLocation) {
        case .found(let bytes, _):
            do {
                manifest = try DocsManifest(json: Data(bytes))
            } catch {
                throw .manifestInvalid(location: manifestLocation, error)
            }
        case .notFound(let reason), .failed(let reason):
            throw .manifestUnreadable(location: manifestLocation, reason: reason)
        }
        return await build(manifest: manifest, source: source, fetcher: fetcher)
    }

    private struct Job: Sendable {
        var languageIndex: Int
        var documentIndex: Int
        var language: String
        var document: String
        var location: String
        var publicURL: String
    }

    private enum JobResult: Sendable {
        case parsed([SearchEntry])
        case failed(DocumentFailure)
    }

    private func build(manifest: DocsManifest, source: DocumentSource, fetcher: DocumentFetcher) async -> SearchIndexBuild {
        var jobs: [Job] = []
        for (languageIndex, language) in manifest.languages.enumerated() {
            for (documentIndex, document) in manifest.documents.enumerated() {
                jobs.append(Job(languageIndex: languageIndex, documentIndex: documentIndex,
                                language: language, document: document,
                                location: source.locate(manifest.path(lang: language, doc: document)),
                                publicURL: manifest.url(lang: language, doc: document)))
            }
        }

        // Results by language, then by document, so the index keeps manifest order
        // whatever order the fetches finish in.
        var results = Array(repeating: [JobResult?](repeating: nil, count: manifest.documents.count),
                            count: manifest.languages.count)
        await withTaskGroup(of: (Job, JobResult).self) { group in
            var next = jobs.startIndex
            // A sliding window: at most `concurrency` documents in flight at a time.
            func startNext() {
                guard next < jobs.endIndex else { return }
                let job = jobs[next]
                next += 1
                group.addTask { (job, await Self.run(job, fetcher: fetcher)) }
            }
            for _ in 0..<max(1, concurrency) { startNext() }
            while let (job, result) = await group.next() {
                results[job.languageIndex][job.documentIndex] = result
                startNext()
            }
        }

        var build = SearchIndexBuild(languages: manifest.languages, indexes: [:], failedLanguages: [], failures: [], documentCount: 0, sectionCount: 0)
        for (languageIndex, language) in manifest.languages.enumerated() {
            var entries: [SearchEntry] = []
            var documents = 0
            var languageFailed = false
            var notFound = 0
            for result in results[languageIndex] {
                switch result {
                case .parsed(let sections)?:
                    entries.append(contentsOf: sections)
                    documents += 1
                case .failed(let failure)?:
                    build.failures.append(failure)
                    if failure.isNotFound { notFound += 1 } else { languageFailed = true }
                case nil:
                    languageFailed = true  // unreachable: every job reports a result
                }
            }
            // Every document missing means a broken site or manifest, not a smaller
            // index: keep the previous key rather than publish an empty one.
            if notFound == manifest.documents.count { languageFailed = true }
            if languageFailed {
                build.failedLanguages.append(language)
            } else {
                build.indexes[language] = entries
                build.documentCount += documents
                build.sectionCount += entries.count
            }
        }
        return build
    }

    private static func run(_ job: Job, fetcher: DocumentFetcher) async -> JobResult {
        switch await fetcher.fetch(job.location) {
        case .found(let bytes, let charset):
            return .parsed(HTMLSections.sections(html: bytes, publicURL: job.publicURL, encoding: charset).entries)
        case .notFound(let reason):
            return .failed(DocumentFailure(language: job.language, document: job.document, location: job.location,
                                           reason: reason, isNotFound: true))
        case .failed(let reason):
            return .failed(DocumentFailure(language: job.language, document: job.document, location: job.location,
                                           reason: reason, isNotFound: false))
        }
    }
}
