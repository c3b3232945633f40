import Foundation
import Testing
@testable import SearchIndex

/// A small two-language site in a temporary directory; `big` names documents (or the
/// manifest) written one byte over the size limit, as sparse files that cost no disk.
private final class TemporarySite {
    let root: URL
    static let documents = ["intro", "huge", "outro"]

    init(big: Set<String>) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("size-limit-site-\(UUID().uuidString)")
        let manager = FileManager.default
        try manager.createDirectory(at: root.appendingPathComponent("en"), withIntermediateDirectories: true)
        try manager.createDirectory(at: root.appendingPathComponent("es"), withIntermediateDirectories: true)
        let manifest = #"{"languages":["en","es"],"documents":["intro","huge","outro"],"path":"${lang}/${doc}.html","url":"/${lang}/${doc}.html"}"#
        try write(Data(manifest.utf8), to: "manifest.json", oversized: big.contains("manifest.json"))
        for lang in ["en", "es"] {
            for doc in Self.documents {
                let html = "<html><head><title>\(doc)</title></head><body><h1>\(doc) \(lang)</h1><p>Text of \(doc).</p></body></html>"
                try write(Data(html.utf8), to: "\(lang)/\(doc).html", oversized: big.contains("\(lang)/\(doc).html"))
            }
        }
    }

    private func write(_ data: Data, to path: String, oversized: Bool) throws {
        let url = root.appendingPathComponent(path)
        try data.write(to: url)
        if oversized {
            let handle = try FileHandle(forWritingTo: url)
            try handle.truncate(atOffset: UInt64(DocumentFetcher.maxDocumentBytes + 1))
            try handle.close()
        }
    }

    deinit {
        try? FileManager.default.removeItem(at: root)
    }
}

/// Checks a build of a site whose `en/huge.html` is over the limit.
private func checkOversizedDocument(_ build: SearchIndexBuild, location: (String) -> String) throws {
    // Only that document failed, for a reason that names the limit.
    #expect(build.failures.count == 1)
    let failure = try #require(build.failures.first)
    #expect(failure.language == "en" && failure.document == "huge" && !failure.isNotFound)
    #expect(failure.reason.contains("32 MiB"), "\(failure.reason)")
    #expect(failure.location == location("en/huge.html"))
    // Its language keeps its previous index, as for any failed document; the other
    // language, whose documents are all small, is built from every document.
    #expect(build.failedLanguages == ["en"])
    #expect(build.indexes["en"] == nil)
    #expect(build.indexes["es"]?.map(\.section) == ["intro es", "huge es", "outro es"])
    #expect(build.documentCount == 3)
}

@Suite("Size limit of the documentation site")
struct SizeLimitTests {
    @Test func anOversizedLocalDocumentFailsAndTheOthersAreBuilt() async throws {
        let site = try TemporarySite(big: ["en/huge.html"])
        let build = try await SearchIndexBuilder(location: site.root.path).build()
        try checkOversizedDocument(build) { site.root.appendingPathComponent($0).path }
    }

    @Test func anOversizedLocalManifestIsUnreadable() async throws {
        let site = try TemporarySite(big: ["manifest.json"])
        await #expect {
            try await SearchIndexBuilder(location: site.root.path).build()
        } throws: { error in
            guard case .manifestUnreadable(let location, let reason)? = error as? SearchIndexError else { return false }
            return location == site.root.appendingPathComponent("manifest.json").path && reason.contains("32 MiB")
        }
    }

    @Test func aLocalFileIsReadUpToTheLimitAndNoFurther() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("size-limit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data(repeating: UInt8(ascii: "a"), count: 100).write(to: directory.appendingPathComponent("exact"))
        try Data(repeating: UInt8(ascii: "a"), count: 101).write(to: directory.appendingPathComponent("over"))
        let fetcher = DocumentFetcher(source: .directory(directory), timeout: .seconds(5), retries: 0, concurrency: 1, maxBytes: 100)
        guard case .found(let bytes, _) = await fetcher.fetch(directory.appendingPathComponent("exact").path) else {
            Issue.record("a file of exactly the limit was refused")
            return
        }
        #expect(bytes.count == 100)
        guard case .failed(let reason) = await fetcher.fetch(directory.appendingPathComponent("over").path) else {
            Issue.record("a file over the limit was read")
            return
        }
        #expect(reason.contains("100 bytes"))
        // A device reports no size: the read itself stops at the limit.
        guard case .failed = await fetcher.fetch("/dev/zero") else {
            Issue.record("/dev/zero was read as a document")
            return
        }
    }

    @Test func anOversizedDocumentOverHTTPFailsAndTheOthersAreBuilt() async throws {
        let site = try TemporarySite(big: ["en/huge.html"])
        let server = try DocsServer(root: site.root)
        let build = try await SearchIndexBuilder(location: server.baseURL, timeout: .seconds(20), retries: 1).build()
        try checkOversizedDocument(build) { server.baseURL + $0 }
    }

    @Test func aBodyOverTheLimitIsCutWhateverItsHeadersSay() async throws {
        let server = try UnboundedServer()
        let fetcher = DocumentFetcher(source: .http(base: URL(string: server.baseURL)!), timeout: .seconds(5),
                                      retries: 2, concurrency: 2, maxBytes: 1024 * 1024)
        defer { fetcher.finish() }
        // No Content-Length, and a body without end: reading stops at the limit. Not
        // retried, since the size will not change.
        let endless = await fetcher.fetch(server.baseURL + "endless.html")
        #expect(endless == .failed(reason: "larger than 1 MiB, the size limit for one file of the site"))
        // The client hung up soon after the limit: what the server sent meanwhile depends on
        // how fast the cancellation lands, hence the wide margin; a client reading on would
        // have taken the whole GiB.
        guard case .found(let sent, _) = await fetcher.fetch(server.baseURL + "sent") else {
            Issue.record("the server did not say how much it sent")
            return
        }
        let sentBytes = Int(String(decoding: sent, as: UTF8.self)) ?? .max
        #expect(sentBytes < 256 * 1024 * 1024, "the server sent \(sentBytes) bytes")
        // A Content-Length over the limit is refused before the body is read (this body is
        // short and cut short: reading it would fail otherwise).
        let announced = await fetcher.fetch(server.baseURL + "announced.html")
        #expect(announced == .failed(reason: "larger than 1 MiB, the size limit for one file of the site"))
        // A small body without Content-Length is read whole.
        let small = await fetcher.fetch(server.baseURL + "small.html")
        #expect(small == .found(Array("<h1>small</h1>".utf8), charset: nil))
    }
}

/// A loopback HTTP/1.0 server of oversized bodies: `/endless.html` sends 1 GiB without a
/// Content-Length, at most 64 MiB a second, or less if the client hangs up first, and
/// `/sent` says how much of it was sent; `/announced.html` announces 10 MiB but sends a few bytes; anything else is a
/// short page without Content-Length.
private final class UnboundedServer: Sendable {
    let port: Int
    private let process: Process

    var baseURL: String { "http://127.0.0.1:\(port)/" }

    private static let script = """
        import http.server, socketserver, sys, time
        sent = 0
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"
            def log_message(self, *args): pass
            def do_GET(self):
                global sent
                if self.path == "/sent":
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(str(sent).encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                if self.path == "/announced.html":
                    self.send_header("Content-Length", str(10 * 1024 * 1024))
                self.end_headers()
                if self.path != "/endless.html":
                    self.wfile.write(b"<h1>small</h1>")
                    return
                chunk = b"x" * 65536
                try:
                    for _ in range(16384):
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        time.sleep(0.001)
                except OSError:
                    pass
        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
        with Server(("127.0.0.1", 0), Handler) as server:
            print(server.server_address[1], flush=True)
            server.serve_forever()
        """

    init() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.script]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw DocsServerError(output: String(decoding: line, as: UTF8.self))
        }
        self.process = process
        self.port = port
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
