import Foundation
import Testing
@testable import SyncJob

/// SPEC §11 for the executable's own files: password files and the metrics file.
@Suite struct BadInputUnitTests {
    func scratch() throws -> String {
        let directory = NSTemporaryDirectory() + "unit-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func aPasswordFileGivesItsFirstLine() throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/pw"
        try "s3cret\r\nnext\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try PasswordFile.firstLine(path, setting: "--x") == "s3cret")
        try "only-line".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try PasswordFile.firstLine(path, setting: "--x") == "only-line")
        try "\nsecond".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try PasswordFile.firstLine(path, setting: "--x") }
        #expect(mkfifo(directory + "/fifo", 0o600) == 0)
        // A FIFO must fail at once, not wait for a writer.
        #expect(throws: ConfigurationError.self) { try PasswordFile.firstLine(directory + "/fifo", setting: "--x") }
        #expect(throws: ConfigurationError.self) { try PasswordFile.firstLine(directory, setting: "--x") }
        #expect(throws: ConfigurationError.self) { try PasswordFile.firstLine(directory + "/none", setting: "--x") }
    }

    /// The temporary file is created exclusively under an unguessable name: a link planted at
    /// the name the job once used (`PATH.tmp.PID`) is neither followed nor overwritten.
    @Test func theMetricsFileNeverFollowsAPlantedLink() throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/sync.prom", victim = directory + "/victim"
        try "untouched".write(toFile: victim, atomically: true, encoding: .utf8)
        #expect(symlink(victim, path + ".tmp.\(getpid())") == 0)
        var summary = RunSummary(command: "run", dryRun: false)
        summary.finish(exitCode: 0, interruptedBy: nil)
        try MetricsFile(path: path).write(summary)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched")
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("sync_job_last_run_success{command=\"run\"} 1"))
        let (first, a) = try MetricsFile(path: path).createTemporaryFile()
        let (second, b) = try MetricsFile(path: path).createTemporaryFile()
        close(a); close(b)
        #expect(first != second && first.hasPrefix(directory + "/.sync.prom.tmp.") && !first.hasSuffix(".prom"))
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".tmp.") && !$0.hasSuffix("\(getpid())") }
        #expect(left.count == 2, "only the two made by hand: \(left)")
    }

    @Test func theDocsURLsPasswordIsMasked() {
        #expect(DocsLocationText.hidingPassword("https://bob:hunter2@docs.example/x") == "https://bob:***@docs.example/x")
        #expect(DocsLocationText.hidingPassword("/srv/docs") == "/srv/docs")
        #expect(!DocsLocationText.hidingPassword("https://bob:hun ter2@[::1/x").contains("hun"))
        #expect(!DocsLocationText.isReadable("ftp://bob:pw@host/x"))
    }
}
