import Foundation
import NIOCore
import RESP
import Testing
import Valkey

@Suite(.serialized) struct ValkeyPlainIntegration {
    @Test func setGetAndHashPipeline() async throws {
        let connection = try await ValkeyConnection.connect(try TestServers.valkey())
        let prefix = TestServers.keyPrefix("plain")
        #expect(connection.serverDescription == (try TestServers.valkey()).serverDescription)
        #expect(connection.protocolVersion == 3)
        #expect(try await connection.send("SET", prefix + "k", "v").string == "OK")
        #expect(try await connection.send("GET", prefix + "k").string == "v")
        #expect(try await connection.send("GET", prefix + "missing").isNull)

        var batch = CommandBatch()
        for i in 0..<500 {
            batch.appendCommand(argumentCount: 6)
            batch.appendArgument("HSET")
            batch.appendArgument(prefix + "h:\(i)")
            batch.appendArgument("n")
            batch.appendArgument(i)
            batch.appendArgument("name")
            batch.appendArgument("row \(i)")
        }
        batch.append("HINCRBY", prefix + "k", "f", "1")  // WRONGTYPE: reported in place
        batch.append("HGETALL", prefix + "h:7")
        let replies = try await connection.execute(batch)
        #expect(replies.count == 502)
        #expect(replies[0..<500].allSatisfy { $0 == .integer(2) })
        #expect(replies[500].errorMessage?.hasPrefix("WRONGTYPE") == true)
        let hash = Dictionary(uniqueKeysWithValues: try #require(replies[501].mapEntries).map { ($0.key.string!, $0.value.string!) })
        #expect(hash == ["n": "7", "name": "row 7"])
        #expect(try await connection.send("HGET", prefix + "h:499", "name").string == "row 499")

        let outcome = try await connection.executeCountingErrors(batch)
        #expect(outcome.commandCount == 502 && outcome.errorCount == 1)
        #expect(outcome.firstErrors.first?.index == 500)
        #expect(outcome.firstErrors.first?.message.hasPrefix("WRONGTYPE") == true)

        await #expect {
            try await connection.send("HGET", prefix + "k", "f")
        } throws: { ($0 as? ValkeyError)?.kind == .server }
        // The connection is still usable after an error reply.
        #expect(try await connection.send("PING").string == "PONG")

        var cleanup = CommandBatch()
        for i in 0..<500 { cleanup.append("DEL", prefix + "h:\(i)") }
        cleanup.append("DEL", prefix + "k")
        #expect(try await connection.executeCountingErrors(cleanup).errorCount == 0)
        #expect(try await connection.send("EXISTS", prefix + "h:1").int == 0)
        await connection.close()
    }

    @Test func databaseFromThePath() async throws {
        var configuration = try TestServers.valkey()
        configuration.database = 5
        let connection = try await ValkeyConnection.connect(configuration)
        let prefix = TestServers.keyPrefix("db")
        _ = try await connection.send("SET", prefix + "k", "5")
        let other = try await ValkeyConnection.connect(try TestServers.valkey())
        #expect(try await other.send("EXISTS", prefix + "k").int == 0)
        #expect(try await connection.send("EXISTS", prefix + "k").int == 1)
        _ = try await connection.send("DEL", prefix + "k")
        await connection.close()
        await other.close()
    }

    @Test func concurrentRequestsOnOneConnection() async throws {
        let connection = try await ValkeyConnection.connect(try TestServers.valkey())
        let prefix = TestServers.keyPrefix("concurrent")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask {
                    _ = try await connection.send("SET", prefix + "\(i)", "\(i)")
                    let value = try await connection.send("GET", prefix + "\(i)")
                    #expect(value.string == "\(i)")
                }
            }
            try await group.waitForAll()
        }
        #expect(try await connection.send((0..<50).map { prefix + "\($0)" }.reduce(into: ["DEL"]) { $0.append($1) }).int == 50)
        await connection.close()
    }

    @Test func streamingFromAnAsyncSequenceReportsStreamIndices() async throws {
        let connection = try await ValkeyConnection.connect(try TestServers.valkey())
        let prefix = TestServers.keyPrefix("stream")
        _ = try await connection.send("SET", prefix + "string", "x")
        let batches = AsyncStream<CommandBatch> { continuation in
            for b in 0..<5 {
                var batch = CommandBatch()
                for i in 0..<100 { batch.append("SADD", prefix + "set", "\(b * 100 + i)") }
                if b == 3 { batch.append("SADD", prefix + "string", "boom") }  // command 400 + 300 = index 400
                continuation.yield(batch)
            }
            continuation.yield(CommandBatch())  // empty batches are skipped
            continuation.finish()
        }
        let outcome = try await connection.executeStreaming(batches)
        #expect(outcome.commandCount == 501)
        #expect(outcome.errorCount == 1)
        #expect(outcome.firstErrors.map(\.index) == [400])
        #expect(try await connection.send("SCARD", prefix + "set").int == 500)
        _ = try await connection.send("DEL", prefix + "set", prefix + "string")
        await connection.close()
    }

    @Test func refusedConnection() async throws {
        var configuration = try ValkeyConfiguration(url: "valkey://127.0.0.1:1")
        configuration.connectTimeout = .seconds(2)
        await #expect {
            try await ValkeyConnection.connect(configuration)
        } throws: { error in
            let e = error as? ValkeyError
            return e?.kind == .connectionFailed && "\(error)".contains("127.0.0.1:1")
        }
    }

    @Test func aclUserAndWrongPassword() async throws {
        let user = try TestServers.variable("SYNC_TEST_VALKEY_ACL_USER")
        let password = try TestServers.variable("SYNC_TEST_VALKEY_ACL_PASSWORD")
        let good = TestServers.withCredentials(try TestServers.valkey(), user: user, password: password)
        let connection = try await ValkeyConnection.connect(good)
        #expect(try await connection.send("ACL", "WHOAMI").string == user)
        await connection.close()
        #expect(!good.description.contains(password))

        let wrongPassword = "wrong-\(password)-pw"
        let bad = TestServers.withCredentials(try TestServers.valkey(), user: user, password: wrongPassword)
        await #expect {
            try await ValkeyConnection.connect(bad)
        } throws: { error in
            let e = error as? ValkeyError
            let text = "\(error) \(e?.message ?? "")"
            return e?.kind == .authenticationFailed && !text.contains(wrongPassword) && text.contains(bad.serverDescription)
        }
    }

    @Test func commandTimeoutClosesTheConnection() async throws {
        let connection = try await ValkeyConnection.connect(try TestServers.valkey(commandTimeout: .milliseconds(300)))
        let key = TestServers.keyPrefix("timeout") + "empty-list"
        let start = ContinuousClock.now
        await #expect {
            try await connection.send("BLPOP", key, "0")
        } throws: { error in
            let e = error as? ValkeyError
            return e?.kind == .timeout && "\(error)".contains(connection.serverDescription)
        }
        #expect(ContinuousClock.now - start < .seconds(10))
        await #expect {
            try await connection.send("PING")
        } throws: { ($0 as? ValkeyError)?.kind == .connectionClosed }
        await connection.close()
    }

    @Test func serverClosingMidPipeline() async throws {
        let server = try PrivateValkeyServer(port: 56999)
        defer { server.kill() }
        let probe = try await server.waitUntilReady()
        await probe.close()

        let collecting = try await ValkeyConnection.connect(try ValkeyConfiguration(url: server.url))
        let counting = try await ValkeyConnection.connect(try ValkeyConfiguration(url: server.url))
        var probing = try ValkeyConfiguration(url: server.url)
        probing.commandTimeout = .milliseconds(300)
        var batch = CommandBatch()
        batch.append("SET", "a", "1")
        batch.append("DEBUG", "SLEEP", "30")
        for i in 0..<200_000 { batch.append("SET", "k\(i)", "v") }

        let start = ContinuousClock.now
        let collected = Task { try await collecting.execute(batch) }
        let counted = Task { try await counting.executeCountingErrors(batch) }
        // The pipelines are mid-way once the server sleeps inside them: a PING goes unanswered.
        var sleeping = false
        for _ in 0..<100 where !sleeping {
            do {
                // Connecting says HELLO, which times out the same way.
                let probe = try await ValkeyConnection.connect(probing)
                _ = try await probe.send("PING")
                await probe.close()
            } catch let error as ValkeyError where error.kind == .timeout {
                sleeping = true  // the client closed the probe
            }
        }
        try #require(sleeping, "the server never started DEBUG SLEEP")
        server.kill()
        await #expect {
            _ = try await collected.value
        } throws: { error in
            let e = error as? ValkeyError
            return e?.kind == .connectionClosed && "\(error)".contains("127.0.0.1:56999")
        }
        await #expect {
            _ = try await counted.value
        } throws: { ($0 as? ValkeyError)?.kind == .connectionClosed }
        #expect(ContinuousClock.now - start < .seconds(20))
        await collecting.close()
        await counting.close()
    }

    @Test func millionCommandsWithBoundedMemory() async throws {
        let connection = try await ValkeyConnection.connect(try TestServers.valkey())
        let key = TestServers.keyPrefix("million") + "counter"
        let total = 1_000_000
        let perBatch = 10_000
        let before = try #require(residentMemoryBytes())
        var produced = 0
        let outcome = try await connection.executeStreaming {
            guard produced < total else { return nil }
            var batch = CommandBatch(reservingCapacity: perBatch * 64)
            for _ in 0..<perBatch {
                batch.appendCommand(argumentCount: 2)
                batch.appendArgument("INCR")
                batch.appendArgument(key)
            }
            produced += perBatch
            return batch
        }
        let after = try #require(residentMemoryBytes())
        #expect(outcome.commandCount == total)
        #expect(outcome.errorCount == 0)
        #expect(try await connection.send("GET", key).int == Int64(total))
        #expect(after - before < 300 * 1024 * 1024, "resident memory grew by \((after - before) >> 20) MB")

        // One single huge batch through executeCountingErrors, with an error in it.
        var batch = CommandBatch()
        for _ in 0..<total { batch.append("DECR", key) }
        batch.append("HSET", key, "f", "v")
        let single = try await connection.executeCountingErrors(batch)
        #expect(single.commandCount == total + 1 && single.errorCount == 1 && single.firstErrors.first?.index == total)
        #expect(try await connection.send("GET", key).int == 0)
        _ = try await connection.send("DEL", key)
        await connection.close()
    }
}

@Suite struct RedisTLSIntegration {
    @Test func verifiedAgainstTheGeneratedCA() async throws {
        let connection = try await ValkeyConnection.connect(try TestServers.redisTLS())
        let prefix = TestServers.keyPrefix("tls")
        var batch = CommandBatch()
        for i in 0..<1000 { batch.append("SET", prefix + "\(i)", String(repeating: "x", count: 200)) }
        let outcome = try await connection.executeCountingErrors(batch)
        #expect(outcome.commandCount == 1000 && outcome.errorCount == 0)
        #expect(try await connection.send("STRLEN", prefix + "999").int == 200)
        var cleanup = CommandBatch()
        for i in 0..<1000 { cleanup.append("DEL", prefix + "\(i)") }
        #expect(try await connection.execute(cleanup).allSatisfy { $0 == .integer(1) })
        await connection.close()
    }

    @Test func localhostNameIsVerifiedToo() async throws {
        let configuration = try TestServers.redisTLS(serverName: "localhost")
        let connection = try await ValkeyConnection.connect(configuration)
        #expect(try await connection.send("PING").string == "PONG")
        await connection.close()
    }

    @Test func wrongCAIsRejected() async throws {
        let configuration = try TestServers.redisTLS(caFile: try TestServers.variable("SYNC_TEST_TLS_WRONG_CA_FILE"))
        await #expect {
            try await ValkeyConnection.connect(configuration)
        } throws: { error in
            let e = error as? ValkeyError
            return e?.kind == .tlsFailed && "\(error)".contains(configuration.serverDescription)
        }
    }

    @Test func clientCertificate() async throws {
        let configuration = try TestServers.redisTLS(
            certFile: try TestServers.variable("SYNC_TEST_TLS_CLIENT_CERT_FILE"),
            keyFile: try TestServers.variable("SYNC_TEST_TLS_CLIENT_KEY_FILE"))
        let connection = try await ValkeyConnection.connect(configuration)
        #expect(try await connection.send("PING").string == "PONG")
        await connection.close()
    }

    @Test func aclUserOverTLS() async throws {
        let user = try TestServers.variable("SYNC_TEST_VALKEY_ACL_USER")
        let password = try TestServers.variable("SYNC_TEST_VALKEY_ACL_PASSWORD")
        let connection = try await ValkeyConnection.connect(TestServers.withCredentials(try TestServers.redisTLS(), user: user, password: password))
        #expect(try await connection.send("ACL", "WHOAMI").string == user)
        await connection.close()
        let wrong = "nope-\(password)"
        await #expect {
            try await ValkeyConnection.connect(TestServers.withCredentials(try TestServers.redisTLS(), user: user, password: wrong))
        } throws: { error in
            (error as? ValkeyError)?.kind == .authenticationFailed && !"\(error)".contains(wrong)
        }
    }
}
