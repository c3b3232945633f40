import Foundation

/// The repository root, found from this file's path (Tests/SearchIndexTests/…).
let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let sampleDocs: URL = repositoryRoot.appendingPathComponent("sample-docs")

/// scripts/docs-server.py on a loopback port, for one test.
final class DocsServer: Sendable {
    let port: Int
    private let process: Process

    var baseURL: String { "http://127.0.0.1:\(port)/" }

    convenience init(root: URL = sampleDocs, arguments: [String] = []) throws {
        try self.init(python: [repositoryRoot.appendingPathComponent("scripts/docs-server.py").path,
                               "--root", root.path, "--port", "0"] + arguments)
    }

    /// Serves `root` answering each file with the Content-Type given for its name, else
    /// `text/html` with no charset (docs-server.py labels every page UTF-8).
    convenience init(root: URL = shapeFixtures, contentTypes: [String: String]) throws {
        let types = String(decoding: try JSONEncoder().encode(contentTypes), as: UTF8.self)
        try self.init(python: ["-c", Self.labellingServer, root.path, types])
    }

    private static let labellingServer = """
        import functools, http.server, json, os, signal, sys
        root, types = sys.argv[1], json.loads(sys.argv[2])
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        class Handler(http.server.SimpleHTTPRequestHandler):
            def guess_type(self, path):
                name = os.path.basename(path)
                return types.get(name, "application/json" if name.endswith(".json") else "text/html")
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """

    private init(python arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The server prints its port on the first line once it listens.
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let text = String(data: line, encoding: .utf8),
              let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw DocsServerError(output: String(decoding: line, as: UTF8.self))
        }
        self.process = process
        self.port = port
    }

    deinit {
        // SIGKILL: a SIGTERM the child inherited blocked would leave waitUntilExit hanging.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

struct DocsServerError: Error, CustomStringConvertible {
    var output: String
    var description: String { "docs-server.py did not print a port: \(output)" }
}
