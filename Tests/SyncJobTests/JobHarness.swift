import Foundation
import Postgres
import RESP
import Testing
import Valkey

/// The real servers of scripts/services and the built sync-job binary, as a test reaches them.
/// Each harness owns a PostgreSQL schema (the job finds it through `search_path`) and a
/// Valkey key prefix, so tests run in parallel without seeing each other.
final class JobHarness: Sendable {
    struct MissingEnvironment: Error, CustomStringConvertible {
        var variable: String
        var description: String {
            "\(variable) is not set: run `eval \"$(scripts/services env)\"` (scripts/test does) so the tests reach the real servers"
        }
    }

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    let schema: String
    let prefix: String
    let databaseURL: String
    let valkeyURL: String
    let postgres: PostgresConnection
    let valkey: ValkeyConnection

    static func variable(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            throw MissingEnvironment(variable: name)
        }
        return value
    }

    /// The sync-job binary built next to the tests (or SYNC_JOB_BIN).
    static var binary: URL {
        get throws {
            if let path = ProcessInfo.processInfo.environment["SYNC_JOB_BIN"] { return URL(fileURLWithPath: path) }
            // The test bundle lives in the build folder, beside the executable.
            var directory = Bundle.main.bundleURL
            for _ in 0..<4 {
                let candidate = directory.appendingPathComponent("sync-job")
                if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
                directory.deleteLastPathComponent()
            }
            let fallback = repositoryRoot.appendingPathComponent(".build/debug/sync-job")
            guard FileManager.default.isExecutableFile(atPath: fallback.path) else {
                throw MissingEnvironment(variable: "SYNC_JOB_BIN (no built sync-job found; run swift build)")
            }
            return fallback
        }
    }

    private init(schema: String, prefix: String, databaseURL: String, valkeyURL: String,
                 postgres: PostgresConnection, valkey: ValkeyConnection) {
        self.schema = schema
        self.prefix = prefix
        self.databaseURL = databaseURL
        self.valkeyURL = valkeyURL
        self.postgres = postgres
        self.valkey = valkey
    }

    /// A fresh schema holding the tables of schema/schema.sql, and a fresh key prefix.
    static func make() async throws -> JobHarness {
        let base = try variable("SYNC_TEST_DATABASE_URL")
        let valkeyURL = try variable("SYNC_TEST_VALKEY_URL")
        let id = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        let schema = "job_\(id)"
        let admin = try await PostgresConnection.connect(base)
        try await admin.execute("create schema \(schema)")
        admin.close()
        let separator = base.contains("?") ? "&" : "?"
        let databaseURL = base + separator + "options=-csearch_path%3D\(schema)"
        let postgres = try await PostgresConnection.connect(databaseURL)
        let ddl = try String(contentsOf: repositoryRoot.appendingPathComponent("schema/schema.sql"), encoding: .utf8)
        try await postgres.execute(ddl)
        let valkey = try await ValkeyConnection.connect(try ValkeyConfiguration(url: valkeyURL))
        return JobHarness(schema: schema, prefix: "test:\(id):", databaseURL: databaseURL, valkeyURL: valkeyURL,
                          postgres: postgres, valkey: valkey)
    }

    /// Drops the schema and every key under the prefix.
    func tearDown() async {
        _ = try? await postgres.execute("drop schema \(schema) cascade")
        postgres.close()
        if let keys = try? await keys() {
            for chunk in stride(from: 0, to: keys.count, by: 1000) {
                _ = try? await valkey.send(["DEL"] + keys[chunk..<min(chunk + 1000, keys.count)])
            }
        }
        await valkey.close()
    }

    /// Fills the tables with the sample-data generator.
    func generate(usageRows: Int, reportRows: Int? = nil, apiKeys: Int = 50, anchor: String? = nil) async throws {
        // The generator is a psql script; run it through psql so its variables work as documented.
        var arguments = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", databaseURL,
                         "-v", "usage_rows=\(usageRows)", "-v", "api_keys=\(apiKeys)",
                         "-f", Self.repositoryRoot.appendingPathComponent("schema/generate.sql").path]
        if let reportRows { arguments += ["-v", "report_rows=\(reportRows)"] }
        if let anchor { arguments += ["-v", "anchor=\(anchor)"] }
        let result = try await Self.runProcess("/usr/bin/env", ["psql"] + arguments, environment: [:])
        #expect(result.status == 0, "psql failed: \(result.stderr)")
    }

    struct ProcessResult {
        var status: Int32
        var stdout: String
        var stderr: String
        var terminatedBySignal: Bool
    }

    /// Runs sync-job with this harness's servers, schema and key prefix.
    func run(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> ProcessResult {
        var environment = [
            "DATABASE_URL": databaseURL, "VALKEY_URL": valkeyURL, "SYNC_KEY_PREFIX": prefix,
            "SYNC_LOG_FORMAT": "json", "SYNC_SETTLE": "0s",
        ]
        environment.merge(extra) { $1 }
        return try await Self.runProcess(try Self.binary.path, arguments, environment: environment)
    }

    /// Starts sync-job without waiting for it.
    func start(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Process {
        var environment = ProcessInfo.processInfo.environment
        environment.merge([
            "DATABASE_URL": databaseURL, "VALKEY_URL": valkeyURL, "SYNC_KEY_PREFIX": prefix,
            "SYNC_LOG_FORMAT": "json", "SYNC_SETTLE": "0s",
        ]) { $1 }
        environment.merge(extra) { $1 }
        let process = Process()
        process.executableURL = try Self.binary
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func runProcess(_ path: String, _ arguments: [String], environment extra: [String: String]) async throws -> ProcessResult {
        var environment = ProcessInfo.processInfo.environment
        environment.merge(extra) { $1 }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes while the process runs, so a chatty process never blocks on a full pipe.
        async let stdout = Task.detached { out.fileHandleForReading.readDataToEndOfFile() }.value
        async let stderr = Task.detached { err.fileHandleForReading.readDataToEndOfFile() }.value
        let (o, e) = await (stdout, stderr)
        process.waitUntilExit()
        return ProcessResult(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                             stderr: String(decoding: e, as: UTF8.self),
                             terminatedBySignal: process.terminationReason == .uncaughtSignal)
    }

    // MARK: Reading Valkey

    /// Every key under the prefix (SCAN is fine in a test; the job never does it).
    func keys() async throws -> [String] {
        var cursor = "0"
        var keys: [String] = []
        repeat {
            let reply = try await valkey.send("SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000")
            guard let parts = reply.array, parts.count == 2 else { break }
            cursor = parts[0].string ?? "0"
            keys += parts[1].array?.compactMap(\.string) ?? []
        } while cursor != "0"
        return keys.sorted()
    }

    func hash(_ key: String) async throws -> [String: String] {
        let reply = try await valkey.send("HGETALL", prefix + key)
        var result: [String: String] = [:]
        for entry in reply.mapEntries ?? [] { result[entry.key.string ?? ""] = entry.value.string ?? "" }
        return result
    }

    /// Members and scores of a sorted set, read in chunks so that huge sets stay cheap.
    func sortedSet(_ key: String) async throws -> [String: String] {
        var result: [String: String] = [:]
        var start = 0
        let chunk = 5000
        while true {
            let reply = try await valkey.send("ZRANGE", prefix + key, String(start), String(start + chunk - 1), "WITHSCORES")
            let items = reply.array ?? []
            if let first = items.first, first.array != nil {
                // RESP3: [member, score] pairs.
                for item in items { if let pair = item.array, pair.count == 2 { result[pair[0].string ?? ""] = Self.scoreText(pair[1]) } }
                if items.count < chunk { break }
            } else {
                for index in stride(from: 0, to: items.count - 1, by: 2) { result[items[index].string ?? ""] = Self.scoreText(items[index + 1]) }
                if items.count < 2 * chunk { break }
            }
            start += chunk
        }
        return result
    }

    static func scoreText(_ value: RESPValue) -> String {
        if case .double(let number) = value { return String(number) }
        return value.string.flatMap { Double($0) }.map { String($0) } ?? "?"
    }

    func string(_ key: String) async throws -> String? {
        try await valkey.send("GET", prefix + key).string
    }

    func expireTime(_ key: String) async throws -> Int64? {
        try await valkey.send("EXPIRETIME", prefix + key).int
    }

    /// A canonical dump of everything under the prefix: types, values, scores and expiry.
    func snapshot(excluding excluded: Set<String> = ["sync:last_run"]) async throws -> [String: String] {
        var result: [String: String] = [:]
        for key in try await keys() {
            let name = String(key.dropFirst(prefix.count))
            if excluded.contains(name) { continue }
            let type = try await valkey.send("TYPE", key).string ?? "?"
            let expiry = try await valkey.send("EXPIRETIME", key).int ?? 0
            var body = ""
            switch type {
            case "hash": body = try await hash(name).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}")
            case "zset": body = try await sortedSet(name).sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: "\u{1}")
            case "set": body = (try await valkey.send("SMEMBERS", key).array ?? []).compactMap(\.string).sorted().joined(separator: "\u{1}")
            default: body = try await valkey.send("GET", key).string ?? ""
            }
            result[name] = "\(type)|\(expiry)|\(body)"
        }
        return result
    }
}

/// Runs `body` with a fresh harness and always tears it down.
func withHarness(_ body: (JobHarness) async throws -> Void) async throws {
    let harness = try await JobHarness.make()
    do {
        try await body(harness)
        await harness.tearDown()
    } catch {
        await harness.tearDown()
        throw error
    }
}
