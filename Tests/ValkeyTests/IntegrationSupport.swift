import Foundation
import NIOCore
import RESP
import Testing
import Valkey

/// The real servers started by `scripts/services up`; a missing variable fails the test.
enum TestServers {
    static func variable(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            Issue.record("\(name) is not set: run `eval \"$(scripts/services env)\"` (after `scripts/services up`) before the tests")
            throw MissingVariable(name: name)
        }
        return value
    }

    struct MissingVariable: Error { var name: String }

    static func valkey(commandTimeout: Duration? = nil) throws -> ValkeyConfiguration {
        var configuration = try ValkeyConfiguration(url: try variable("SYNC_TEST_VALKEY_URL"))
        if let commandTimeout { configuration.commandTimeout = commandTimeout }
        return configuration
    }

    static func redisTLS(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) throws -> ValkeyConfiguration {
        try ValkeyConfiguration(
            url: try variable("SYNC_TEST_REDIS_TLS_URL"),
            caFile: try caFile ?? variable("SYNC_TEST_TLS_CA_FILE"),
            certFile: certFile, keyFile: keyFile, tlsServerName: serverName)
    }

    /// A configuration with the ACL user's (or given) credentials spliced into `url`.
    static func withCredentials(_ configuration: ValkeyConfiguration, user: String, password: String) -> ValkeyConfiguration {
        var copy = configuration
        copy.username = user
        copy.password = password
        return copy
    }

    /// A key prefix no other test (or run) uses.
    static func keyPrefix(_ test: String) -> String {
        "valkeytests:\(test):\(UUID().uuidString.prefix(8)):"
    }
}

/// Resident memory of this process, from /proc/self/status.
func residentMemoryBytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        return kilobytes.map { $0 * 1024 }
    }
    return nil
}

/// A private valkey-server on a spare loopback port, killed by `stop()`.
final class PrivateValkeyServer {
    let process = Process()
    let port: Int

    init(port: Int) throws {
        self.port = port
        process.executableURL = URL(fileURLWithPath: try TestServers.variable("SYNC_TEST_VALKEY_SERVER"))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("valkeytests-\(port)-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--enable-debug-command", "yes", "--dir", directory.path, "--daemonize", "no", "--loglevel", "warning"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    var url: String { "valkey://127.0.0.1:\(port)" }

    func waitUntilReady() async throws -> ValkeyConnection {
        let configuration = try ValkeyConfiguration(url: url)
        var lastError: (any Error)?
        for _ in 0..<100 {
            do { return try await ValkeyConnection.connect(configuration) } catch { lastError = error }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw lastError!
    }

    func kill() {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { kill() }
}
