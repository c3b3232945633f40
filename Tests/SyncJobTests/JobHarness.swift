import ClusterTestSupport
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
    /// `valkeyURL` with its TLS files, as the harness's own connections use it.
    let valkeyConfiguration: ValkeyConfiguration
    /// What the job is given besides `VALKEY_URL` (the CA of a TLS cluster).
    let valkeyEnvironment: [String: String]
    let postgres: PostgresConnection
    /// A connection to the Valkey server (for a cluster harness: to the seed node only).
    let valkey: ValkeyConnection
    /// The cluster client of a cluster harness (`make(cluster: .plain)`), nil otherwise.
    let cluster: ValkeyClusterClient?
    /// Which local cluster a cluster harness runs on.
    let testCluster: TestCluster?
    /// What the reading helpers use: the cluster client or the plain connection.
    var client: any ValkeyClient { cluster ?? valkey }
    /// False for a `twin`, which shares its schema with the harness that made it.
    let ownsSchema: Bool

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
                 valkeyConfiguration: ValkeyConfiguration, valkeyEnvironment: [String: String] = [:],
                 postgres: PostgresConnection, valkey: ValkeyConnection,
                 cluster: ValkeyClusterClient? = nil, testCluster: TestCluster? = nil, ownsSchema: Bool = true) {
        self.schema = schema
        self.prefix = prefix
        self.databaseURL = databaseURL
        self.valkeyURL = valkeyURL
        self.valkeyConfiguration = valkeyConfiguration
        self.valkeyEnvironment = valkeyEnvironment
        self.postgres = postgres
        self.valkey = valkey
        self.cluster = cluster
        self.testCluster = testCluster
        self.ownsSchema = ownsSchema
    }

    /// A fresh schema and key prefix, with Valkey one of the local clusters (`cluster`) or
    /// the standalone server (nil).
    static func make(cluster: TestCluster?) async throws -> JobHarness {
        let harness = try await make()
        guard let cluster else { return harness }
        do {
            return try await harness.twin(cluster: cluster, ownsSchema: true)
        } catch {
            await harness.tearDown()
            throw error
        }
    }

    /// A harness on the same schema, with the same key prefix, against a cluster or (nil) the
    /// standalone server: the same run against both gives comparable snapshots.
    func twin(cluster: TestCluster?) async throws -> JobHarness {
        try await twin(cluster: cluster, ownsSchema: false)
    }

    private func twin(cluster: TestCluster?, ownsSchema: Bool) async throws -> JobHarness {
        let url = try cluster?.url ?? Self.variable("SYNC_TEST_VALKEY_URL")
        let configuration = try cluster?.configuration() ?? ValkeyConfiguration(url: url)
        let connection = try await ValkeyConnection.connect(configuration)
        let client = cluster == nil ? nil : try await ValkeyClusterClient.connect(configuration)
        let postgres = ownsSchema ? self.postgres : try await PostgresConnection.connect(databaseURL)
        if ownsSchema { await valkey.close() }
        return JobHarness(schema: schema, prefix: prefix, databaseURL: databaseURL, valkeyURL: url,
                          valkeyConfiguration: configuration, valkeyEnvironment: try cluster?.jobEnvironment ?? [:],
                          postgres: postgres, valkey: connection, cluster: client, testCluster: cluster,
                          ownsSchema: ownsSchema)
    }

    /// A harness on the same schema and Valkey server with a key prefix of its own: the same
    /// source copied twice, once undisturbed, gives the reference a faulted run must match.
    func sibling() async throws -> JobHarness {
        let id = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        let connection = try await ValkeyConnection.connect(valkeyConfiguration)
        let postgres = try await PostgresConnection.connect(databaseURL)
        return JobHarness(schema: schema, prefix: "test:\(id):", databaseURL: databaseURL, valkeyURL: valkeyURL,
                          valkeyConfiguration: valkeyConfiguration, valkeyEnvironment: valkeyEnvironment,
                          postgres: postgres, valkey: connection, ownsSchema: false)
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
        let configuration = try ValkeyConfiguration(url: valkeyURL)
        let valkey = try await ValkeyConnection.connect(configuration)
        return JobHarness(schema: schema, prefix: "test:\(id):", databaseURL: databaseURL, valkeyURL: valkeyURL,
                          valkeyConfiguration: configuration, postgres: postgres, valkey: valkey)
    }

    /// Drops the schema and every key under the prefix.
    func tearDown() async {
        if ownsSchema { _ = try? await postgres.execute("drop schema \(schema) cascade") }
        postgres.close()
        if let keys = try? await keys() {
            if let cluster {
                // One key per command: the keys live in many slots.
                for chunk in stride(from: 0, to: keys.count, by: 1000) {
                    var batch = CommandBatch()
                    for key in keys[chunk..<min(chunk + 1000, keys.count)] { batch.append("UNLINK", key) }
                    _ = try? await cluster.executeCountingErrors(batch)
                }
            } else {
                for chunk in stride(from: 0, to: keys.count, by: 1000) {
                    _ = try? await valkey.send(["DEL"] + keys[chunk..<min(chunk + 1000, keys.count)])
                }
            }
        }
        await cluster?.close()
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
        environment.merge(valkeyEnvironment) { $1 }
        environment.merge(extra) { $1 }
        return try await Self.runProcess(try Self.binary.path, arguments, environment: environment)
    }

    /// `run`, and how long the process took.
    func timedRun(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> (ProcessResult, Duration) {
        let started = ContinuousClock.now
        let result = try await run(arguments, environment: extra)
        return (result, ContinuousClock.now - started)
    }

    /// Starts sync-job without waiting for it.
    func start(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Process {
        var environment = ProcessInfo.processInfo.environment
        environment.merge([
            "DATABASE_URL": databaseURL, "VALKEY_URL": valkeyURL, "SYNC_KEY_PREFIX": prefix,
            "SYNC_LOG_FORMAT": "json", "SYNC_SETTLE": "0s",
        ]) { $1 }
        environment.merge(valkeyEnvironment) { $1 }
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
        // Read both pipes and wait on Dispatch threads, never on Swift's cooperative pool:
        // blocking reads there would starve every other task of the test until the child ends.
        let (o, e): (Data, Data) = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let group = DispatchGroup()
                nonisolated(unsafe) var errData = Data()
                group.enter()
                DispatchQueue.global().async {
                    errData = err.fileHandleForReading.readDataToEndOfFile()
                    group.leave()
                }
                let outData = out.fileHandleForReading.readDataToEndOfFile()
                group.wait()
                process.waitUntilExit()
                continuation.resume(returning: (outData, errData))
            }
        }
        return ProcessResult(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                             stderr: String(decoding: e, as: UTF8.self),
                             terminatedBySignal: process.terminationReason == .uncaughtSignal)
    }

    /// Waits (at most two minutes, polling) until `key` exists: e.g. a copy's first acknowledged page.
    func waitForKey(_ key: String, unless gaveUp: @Sendable () -> Bool = { false }) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if try await string(key) != nil { return true }
            if gaveUp() { return try await string(key) != nil }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// Waits (at most two minutes, polling) until `key` holds something other than `value`:
    /// e.g. the watermark after one more acknowledged page. False when `gaveUp` (the run
    /// ended) or the time ran out first.
    func waitForChange(of key: String, from value: String?, unless gaveUp: @Sendable () -> Bool = { false }) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if try await string(key) != value { return true }
            if gaveUp() { return false }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// Waits for a started process on a Dispatch thread, leaving the cooperative pool free.
    static func waitForExit(_ process: Process) async {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume()
            }
        }
    }

    // MARK: Reading Valkey

    /// Every key under the prefix (SCAN is fine in a test; the job never does it).
    func keys() async throws -> [String] {
        var keys: [String] = []
        // A SCAN sees one node: on a cluster, scan every primary.
        let nodes = try await cluster?.primaries().map(\.connection) ?? [valkey]
        for node in nodes {
            var cursor = "0"
            repeat {
                let reply = try await node.send("SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000")
                guard let parts = reply.array, parts.count == 2 else { break }
                cursor = parts[0].string ?? "0"
                keys += parts[1].array?.compactMap(\.string) ?? []
            } while cursor != "0"
        }
        return keys.sorted()
    }

    func hash(_ key: String) async throws -> [String: String] {
        let reply = try await client.send("HGETALL", prefix + key)
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
            let reply = try await client.send("ZRANGE", prefix + key, String(start), String(start + chunk - 1), "WITHSCORES")
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
        try await client.send("GET", prefix + key).string
    }

    func expireTime(_ key: String) async throws -> Int64? {
        try await client.send("EXPIRETIME", prefix + key).int
    }

    /// A canonical dump of everything under the prefix: types, values, scores and expiry.
    func snapshot(excluding excluded: Set<String> = ["sync:last_run"]) async throws -> [String: String] {
        // The run summaries (`sync:last_run` and one per command) differ from run to run.
        let names = try await keys().map { String($0.dropFirst(prefix.count)) }
            .filter { name in !excluded.contains(name) && !excluded.contains(where: { name.hasPrefix($0 + ":") }) }
        var result: [String: String] = [:]
        // Pipelined a thousand keys at a time: a snapshot of 100,000 keys takes seconds, not minutes.
        for start in stride(from: 0, to: names.count, by: 1000) {
            let chunk = Array(names[start..<min(start + 1000, names.count)])
            var probe = CommandBatch()
            for name in chunk {
                probe.append("TYPE", prefix + name)
                probe.append("EXPIRETIME", prefix + name)
            }
            let probed = try await client.execute(probe)
            var read = CommandBatch()
            var types: [String] = []
            for (offset, name) in chunk.enumerated() {
                let type = probed[2 * offset].string ?? "?"
                types.append(type)
                switch type {
                case "hash": read.append("HGETALL", prefix + name)
                case "set": read.append("SMEMBERS", prefix + name)
                case "zset": read.append("EXISTS", prefix + name)  // read below, in chunks of its own
                default: read.append("GET", prefix + name)
                }
            }
            let bodies = try await client.execute(read)
            for (offset, name) in chunk.enumerated() {
                let reply = bodies[offset]
                var body = ""
                switch types[offset] {
                case "hash":
                    body = (reply.mapEntries ?? []).map { "\($0.key.string ?? "")=\($0.value.string ?? "")" }.sorted().joined(separator: "\u{1}")
                case "zset": body = try await sortedSet(name).sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: "\u{1}")
                case "set": body = (reply.array ?? []).compactMap(\.string).sorted().joined(separator: "\u{1}")
                default: body = reply.string ?? ""
                }
                result[name] = "\(types[offset])|\(probed[2 * offset + 1].int ?? 0)|\(body)"
            }
        }
        return result
    }
}

/// Runs `body` with a fresh harness (on `cluster`, else the standalone server) and always
/// tears it down.
func withHarness(cluster: TestCluster? = nil, _ body: (JobHarness) async throws -> Void) async throws {
    let harness = try await JobHarness.make(cluster: cluster)
    do {
        try await body(harness)
        await harness.tearDown()
    } catch {
        await harness.tearDown()
        throw error
    }
}
