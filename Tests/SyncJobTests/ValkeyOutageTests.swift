import Foundation
import Postgres
import RESP
import Testing
import Valkey

/// Valkey going away in the middle of a copy (SPEC §4, §8): exit 75 with a clear message,
/// and the next run resumes without loss.
@Suite(.timeLimit(.minutes(10))) struct ValkeyOutageTests {
    /// A private valkey-server whose data survives a SIGKILL (append-only file, fsync always),
    /// run as a child process so that the test can kill and reap it.
    final class PrivateValkey: @unchecked Sendable {
        // `process` is only touched by the test's own sequential steps.
        let port: Int
        let directory: URL
        let server: String
        var process: Process?
        let extraArguments: [String]

        init(port: Int, extraArguments: [String] = []) throws {
            self.port = port
            self.extraArguments = extraArguments
            server = try JobHarness.variable("SYNC_TEST_VALKEY_SERVER")
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("sync-job-outage-\(port)-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }

        var url: String { "valkey://127.0.0.1:\(port)" }

        func start() async throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: server)
            process.arguments = [
                "--port", String(port), "--bind", "127.0.0.1", "--daemonize", "no",
                "--dir", directory.path, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--logfile", directory.appendingPathComponent("valkey.log").path,
            ] + extraArguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            self.process = process
            for _ in 0..<100 {
                if let connection = try? await ValkeyConnection.connect(try ValkeyConfiguration(url: url)) {
                    await connection.close()
                    return
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            Issue.record("the private valkey-server on \(port) did not start")
        }

        func kill9() {
            guard let process else { return }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()  // immediate after SIGKILL
            self.process = nil
        }

        func stop() {
            kill9()
            try? FileManager.default.removeItem(at: directory)
        }
    }

    @Test func valkeyGoingAwayMidRunExits75AndTheNextRunResumes() async throws {
        try await withHarness { job in
            let valkey = try PrivateValkey(port: 56_950)
            defer { valkey.stop() }
            try await valkey.start()
            try await job.generate(usageRows: 120_000, reportRows: 0, apiKeys: 50)
            let environment = ["VALKEY_URL": valkey.url]
            let copy = Task { try await job.run(["run", "--stage", "usage-logs", "--batch-size", "300"], environment: environment) }
            let watcher = try await ValkeyConnection.connect(try ValkeyConfiguration(url: valkey.url))
            var started = false
            for _ in 0..<1000 {
                started = !(try await watcher.send("GET", job.prefix + "sync:watermark:usage_logs").isNull)
                if started { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            await watcher.close()
            #expect(started, "the copy never acknowledged a page")
            valkey.kill9()
            #expect((try? await ValkeyConnection.connect(try ValkeyConfiguration(url: valkey.url))) == nil, "the server is gone")
            let failed = try await copy.value
            #expect(failed.status == 75, "\(failed.stdout)\(failed.stderr)")
            #expect((failed.stdout + failed.stderr).contains("127.0.0.1:56950"), "the message names the server: \(failed.stdout)\(failed.stderr)")

            try await valkey.start()
            let resumed = try await job.run(["run", "--stage", "usage-logs"], environment: environment)
            #expect(resumed.status == 0, "\(resumed.stderr)")
            let reader = try await ValkeyConnection.connect(try ValkeyConfiguration(url: valkey.url))
            let count = try await reader.send("ZCARD", job.prefix + "usage_logs:index").int
            let hashes = try await reader.send("DBSIZE").int
            await reader.close()
            let fresh = try await job.postgres.query("""
                select count(*) filter (where "timestamp" >= now() - interval '93 days' + interval '10 minutes'),
                       count(*) filter (where "timestamp" >= now() - interval '93 days' - interval '10 minutes')
                from usage_logs
                """)
            let low = Int64(try fresh[0][0].decode(Int.self)!)
            let high = Int64(try fresh[0][1].decode(Int.self)!)
            #expect(count.map { $0 >= low && $0 <= high } == true, "index holds \(count ?? -1), PostgreSQL \(low)...\(high)")
            #expect(hashes.map { $0 > count ?? 0 } == true)
        }
    }

    @Test func unreachablePostgresExits75() async throws {
        try await withHarness { job in
            let result = try await job.run(["run"], environment: ["DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"])
            #expect(result.status == 75)
            #expect(result.stderr.contains("127.0.0.1"), "\(result.stderr)")
        }
    }
}
