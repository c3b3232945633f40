// Client benchmark: the same N pipelined commands (HSET with 4 fields, ZADD to an index,
// alternating) written by this client and by `valkey-cli --pipe`, in one run.
//
// Usage: ValkeyBench [N]   (N commands, default 1,000,000)
// Reads SYNC_TEST_VALKEY_URL (or VALKEY_URL) and SYNC_TEST_VALKEY_CLI. Everything happens in
// database 9 (BENCH_DB to change it), which is emptied with FLUSHDB before and after each
// half: never FLUSHALL, never database 0 of the shared server. BENCH_ENCODE_ONLY=1 also
// prints the time spent encoding alone.
import Foundation
import RESP
import Timestamps
import Valkey

struct BenchRun {
    static let keyPrefix = "bench:"

    static func main() async {
        do {
            try await run()
        } catch {
            FileHandle.standardError.write(Data("valkey-bench: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let arguments = CommandLine.arguments.dropFirst()
        let total = arguments.first.flatMap { Int($0.replacingOccurrences(of: "_", with: "")) } ?? 1_000_000
        guard total >= 2, total % 2 == 0 else { throw BenchError("N must be an even number of commands ≥ 2") }
        guard let url = environment["SYNC_TEST_VALKEY_URL"] ?? environment["VALKEY_URL"] else {
            throw BenchError("SYNC_TEST_VALKEY_URL is not set: run `eval \"$(scripts/services env)\"`")
        }
        guard let cli = environment["SYNC_TEST_VALKEY_CLI"] else {
            throw BenchError("SYNC_TEST_VALKEY_CLI is not set: run `eval \"$(scripts/services env)\"`")
        }
        let database = Int(environment["BENCH_DB"] ?? "9") ?? 9
        guard database != 0 else { throw BenchError("BENCH_DB must not be 0: the benchmark empties its database") }
        var configuration = try ValkeyConfiguration(url: url)
        configuration.database = database
        let connection = try await ValkeyConnection.connect(configuration)
        defer { Task { await connection.close() } }
        let pairs = total / 2
        print("valkey-bench: \(total) commands (\(pairs) HSET with 4 fields + \(pairs) ZADD) against \(configuration.serverDescription) db \(database)")

        // --- this client: encoding included in the timing, as the writers pay for it too.
        _ = try await connection.send("FLUSHDB")
        let batchSize = 10_000
        var next = 0
        let encodeStart = ContinuousClock.now
        var encoded = 0
        if environment["BENCH_ENCODE_ONLY"] != nil {
            for start in stride(from: 0, to: pairs, by: batchSize / 2) {
                var batch = CommandBatch(reservingCapacity: batchSize * 100)
                for i in start..<min(pairs, start + batchSize / 2) { appendPair(i, to: &batch) }
                encoded += batch.count
            }
            print("encoding only: \((ContinuousClock.now - encodeStart).seconds) s for \(encoded) commands")
        }
        let clientStart = ContinuousClock.now
        let outcome = try await connection.executeStreaming {
            guard next < pairs else { return nil }
            let end = min(pairs, next + batchSize / 2)
            var batch = CommandBatch(reservingCapacity: (end - next) * 200)
            for i in next..<end { appendPair(i, to: &batch) }
            next = end
            return batch
        }
        let clientSeconds = (ContinuousClock.now - clientStart).seconds
        let clientKeys = try await connection.send("DBSIZE").int ?? -1
        guard outcome.commandCount == total, outcome.errorCount == 0, clientKeys == pairs + 1 else {
            throw BenchError("client half: \(outcome.commandCount) replies, \(outcome.errorCount) errors, \(clientKeys) keys (expected \(total), 0, \(pairs + 1)); first errors: \(outcome.firstErrors)")
        }
        _ = try await connection.send("FLUSHDB")

        // --- valkey-cli --pipe: the protocol file is generated first, only the pipe is timed.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("valkey-bench-\(getpid()).resp")
        defer { try? FileManager.default.removeItem(at: file) }
        FileManager.default.createFile(atPath: file.path, contents: nil)
        let handle = try FileHandle(forWritingTo: file)
        var batch = CommandBatch(reservingCapacity: 4 << 20)
        // --pipe does not select a database by itself, so the file starts with SELECT.
        batch.append("SELECT", String(database))
        for i in 0..<pairs {
            appendPair(i, to: &batch)
            if batch.buffer.readableBytes > 4 << 20 {
                handle.write(Data(batch.buffer.readableBytesView))
                batch.removeAll(keepingCapacity: true)
            }
        }
        handle.write(Data(batch.buffer.readableBytesView))
        try handle.close()

        let process = Process()
        process.executableURL = URL(fileURLWithPath: cli)
        var cliArguments = ["-h", configuration.host, "-p", String(configuration.port), "--pipe"]
        if let user = configuration.username { cliArguments += ["--user", user] }
        if configuration.password != nil { cliArguments += ["--no-auth-warning"] }
        process.arguments = cliArguments
        if let password = configuration.password {
            var env = environment
            env["REDISCLI_AUTH"] = password
            env["VALKEYCLI_AUTH"] = password
            process.environment = env
        }
        process.standardInput = try FileHandle(forReadingFrom: file)
        let output = Pipe()
        process.standardOutput = output
        let cliStart = ContinuousClock.now
        try process.run()
        let cliOutput = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let cliSeconds = (ContinuousClock.now - cliStart).seconds
        let cliText = String(decoding: cliOutput, as: UTF8.self)
        let cliKeys = try await connection.send("DBSIZE").int ?? -1
        guard process.terminationStatus == 0, cliText.contains("errors: 0"), cliKeys == pairs + 1 else {
            throw BenchError("valkey-cli --pipe: status \(process.terminationStatus), \(cliKeys) keys (expected \(pairs + 1)); output: \(cliText)")
        }
        _ = try await connection.send("FLUSHDB")

        let clientRate = Double(total) / clientSeconds
        let cliRate = Double(total) / cliSeconds
        print(String(format: "client:          %.3f s  %12.0f commands/s", clientSeconds, clientRate))
        print(String(format: "valkey-cli pipe: %.3f s  %12.0f commands/s", cliSeconds, cliRate))
        print(String(format: "ratio (client/valkey-cli): %.3f", clientRate / cliRate))
    }

    /// HSET bench:h:<i> with 4 fields, then ZADD bench:idx <i> bench:h:<i>.
    @inline(__always)
    static func appendPair(_ i: Int, to batch: inout CommandBatch) {
        let key = "\(keyPrefix)h:\(i)"
        batch.appendCommand(argumentCount: 10)
        batch.appendArgument("HSET")
        batch.appendArgument(key)
        batch.appendArgument("id")
        batch.appendArgument(i)
        batch.appendArgument("name")
        batch.appendArgument("row-name")
        batch.appendArgument("count")
        batch.appendArgument(i &* 7)
        batch.appendArgument("at")
        batch.appendArgument(1_700_000_000 + i)
        batch.appendCommand(argumentCount: 4)
        batch.appendArgument("ZADD")
        batch.appendArgument("\(keyPrefix)idx")
        batch.appendArgument(i)
        batch.appendArgument(key)
    }

}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

await BenchRun.main()
