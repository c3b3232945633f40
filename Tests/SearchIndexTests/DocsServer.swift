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

    init(root: URL = sampleDocs, arguments: [String] = []) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repositoryRoot.appendingPathComponent("scripts/docs-server.py").path,
                             "--root", root.path, "--port", "0"] + arguments
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
