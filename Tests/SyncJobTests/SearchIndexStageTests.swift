import Foundation
import Testing

/// The `search-index` stage end to end (SPEC §7): the real binary, the sample site, Valkey.
@Suite(.timeLimit(.minutes(5))) struct SearchIndexStageTests {
    static let languages = ["en", "es", "pt", "fr", "de", "ru", "hi", "ur", "pa", "ar", "ja", "zh"]
    var sampleDocs: String { JobHarness.repositoryRoot.appendingPathComponent("sample-docs").path }

    /// scripts/docs-server.py on a free loopback port, with the given failure injection.
    func startServer(_ arguments: [String]) throws -> (Process, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", JobHarness.repositoryRoot.appendingPathComponent("scripts/docs-server.py").path,
                             "--root", sampleDocs, "--port", "0"] + arguments
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
        let port = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return (process, "http://127.0.0.1:\(port)/")
    }

    @Test func twelveKeysPlusLegacyFromTheSampleSite() async throws {
        try await withHarness { job in
            let result = try await job.run(["run", "--stage", "search-index", "--docs", sampleDocs])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            for language in Self.languages {
                let value = try #require(try await job.string("search:index:\(language)"), "search:index:\(language)")
                let entries = try #require(try JSONSerialization.jsonObject(with: Data(value.utf8)) as? [[String: String]])
                #expect(entries.count >= 6, "\(language): \(entries.count) entries")
                #expect(entries.allSatisfy { Set($0.keys) == ["doc_title", "section", "url", "content"] && $0["content"]!.count <= 500 })
            }
            #expect(try await job.string("search:index") == (try await job.string("search:index:en")))
            #expect(try await job.valkey.send("TTL", job.prefix + "search:index:ja").int == -1)
        }
    }

    @Test func aFailingLanguageKeepsItsPreviousKeyAndTheStageExits1() async throws {
        try await withHarness { job in
            #expect(try await job.run(["run", "--stage", "search-index", "--docs", sampleDocs]).status == 0)
            let sentinel = "[{\"doc_title\":\"previous\",\"section\":\"previous\",\"url\":\"/ar/x\",\"content\":\"kept\"}]"
            _ = try await job.valkey.send("SET", job.prefix + "search:index:ar", sentinel)
            _ = try await job.valkey.send("SET", job.prefix + "search:index:de", "[]")
            let (server, url) = try startServer(["--fail-prefix", "/ar/", "--fail-status", "500"])
            defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
            let result = try await job.run(["run", "--stage", "search-index", "--docs", url])
            #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
            #expect((result.stdout + result.stderr).contains("ar/"), "the failed documents are named: \(result.stdout)")
            #expect(try await job.string("search:index:ar") == sentinel, "the failing language keeps its previous key")
            #expect(try await job.string("search:index:de") != "[]", "the other languages are rebuilt")
        }
    }

    @Test func missingDocsLocationIsAConfigurationError() async throws {
        try await withHarness { job in
            let result = try await job.run(["run", "--stage", "search-index"])
            #expect(result.status == 64, "\(result.stdout)\(result.stderr)")
            #expect((result.stdout + result.stderr).contains("SYNC_DOCS"))
            let bad = try await job.run(["run", "--stage", "search-index", "--docs", "/nonexistent/site"])
            #expect(bad.status == 64, "\(bad.stdout)\(bad.stderr)")
        }
    }
}
