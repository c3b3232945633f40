import ClusterTestSupport
import Foundation
import NIOCore
import RESP
import Testing
import Valkey

@Suite("Cluster routing without a server")
struct ClusterRoutingTests {
    @Test func redirectionsAreParsed() throws {
        #expect(ClusterRedirect("MOVED 3999 127.0.0.1:6381") == .moved(slot: 3999, node: ClusterNodeAddress(host: "127.0.0.1", port: 6381)))
        #expect(ClusterRedirect("ASK 12 [::1]:7000") == .ask(slot: 12, node: ClusterNodeAddress(host: "::1", port: 7000)))
        #expect(ClusterRedirect("TRYAGAIN Multiple keys request during rehashing of slot") == .retryLater)
        #expect(ClusterRedirect("CLUSTERDOWN The cluster is down") == .retryLater)
        #expect(ClusterRedirect("LOADING Valkey is loading the dataset in memory") == .retryLater)
        #expect(ClusterRedirect("WRONGTYPE Operation against a key holding the wrong kind of value") == nil)
        #expect(ClusterRedirect("MOVED notanumber h:1") == nil)
        #expect(ClusterRedirect("MOVED 99999 h:1") == nil)
        // A redirection to a port no node can listen on is an error reply, not a reconnect.
        #expect(ClusterRedirect("MOVED 1 h:0") == nil)
        #expect(ClusterRedirect("ASK 1 h:65536") == nil)
        #expect(ClusterRedirect("MOVED 1 h:-6379") == nil)
        #expect(ClusterRedirect("MOVED 1 ?:6379") == nil, "an unknown endpoint is no address")
        // An empty host is the host the request went to.
        let sameHost = try #require(ClusterRedirect("MOVED 1 :6380"))
        #expect(sameHost == .moved(slot: 1, node: ClusterNodeAddress(host: "", port: 6380)))
        let current = ClusterNodeAddress(host: "10.0.0.7", port: 6379)
        #expect(ClusterNodeAddress(host: "", port: 6380).resolved(against: current) == ClusterNodeAddress(host: "10.0.0.7", port: 6380))
        #expect(ClusterNodeAddress(host: "10.0.0.8", port: 6380).resolved(against: current) == ClusterNodeAddress(host: "10.0.0.8", port: 6380))
    }

    @Test func slotMapFromClusterSlots() throws {
        let reply = RESPValue.array([
            .array([.integer(0), .integer(5460), .array([.bulkString(ByteBuffer(string: "10.0.0.1")), .integer(7000), .bulkString(ByteBuffer(string: "id1"))])]),
            .array([.integer(5461), .integer(16383), .array([.bulkString(ByteBuffer(string: "")), .integer(7001), .bulkString(ByteBuffer(string: "id2"))])]),
        ])
        var map = try ClusterSlotMap(clusterSlots: reply, queried: ClusterNodeAddress(host: "seed", port: 7001))
        #expect(map.node(for: 0) == ClusterNodeAddress(host: "10.0.0.1", port: 7000))
        #expect(map.node(for: 5461) == ClusterNodeAddress(host: "seed", port: 7001), "an empty endpoint is the queried node's host")
        #expect(map.unassignedSlotCount == 0)
        map.assign(42, to: ClusterNodeAddress(host: "10.0.0.3", port: 7002))
        #expect(map.node(for: 42)?.port == 7002)
        #expect(map.servingNodes.count == 3)
    }

    /// A node that reports a port no node can listen on answered garbage: the error names it.
    @Test(arguments: [0, -1, 65536])
    func slotMapRefusesAnImpossiblePort(port: Int64) {
        let reply = RESPValue.array([
            .array([.integer(0), .integer(16383), .array([.bulkString(ByteBuffer(string: "10.0.0.1")), .integer(port)])]),
        ])
        #expect {
            try ClusterSlotMap(clusterSlots: reply, queried: ClusterNodeAddress(host: "seed", port: 7001))
        } throws: { error in
            "\(error)".contains("seed:7001") && "\(error)".contains("CLUSTER SLOTS")
        }
    }

    @Test func clusterOptionInTheURL() throws {
        #expect(try ValkeyConfiguration(url: "valkey://h:1?cluster=1").cluster == true)
        #expect(try ValkeyConfiguration(url: "valkeys://u:p@h:1?cluster=false").cluster == false)
        #expect(try ValkeyConfiguration(url: "valkey://h:1").cluster == nil)
        #expect(throws: ValkeyError.self) { try ValkeyConfiguration(url: "valkey://h?cluster=maybe") }
    }
}

/// The cluster client against the local three-primary cluster; the slots stay where they are.
@Suite("Cluster client")
struct ClusterClientTests {
    @Test func pipelineSpreadsOverThePrimariesAndKeepsReplyOrder() async throws {
        try await ClusterTestLock.with(exclusive: false) {
            let client = try await ValkeyClusterClient.connect(try TestServers.cluster())
            let admin = try await ClusterAdmin.connect()
            let prefix = TestServers.keyPrefix("spread")
            var batch = CommandBatch()
            for i in 0..<300 {
                batch.append("SET", "\(prefix)s\(i)", "value-\(i)")
                batch.append("HSET", "\(prefix)h\(i)", "field", "\(i)")
                batch.append("ZADD", "\(prefix)z\(i % 7)", "\(i)", "m\(i)")
                batch.append("GET", "\(prefix)s\(i)")
                batch.append("PING")
            }
            let replies = try await client.execute(batch)
            #expect(replies.count == 1500)
            for i in 0..<300 {
                #expect(replies[5 * i + 3].string == "value-\(i)", "the GET reply of command \(5 * i + 3) is in place")
                #expect(replies[5 * i + 4].string == "PONG")
                #expect(replies[5 * i].string == "OK")
            }
            // Each key is on the node that owns its slot, and every node got some.
            var perNode: [Int: Int] = [:]
            for i in 0..<300 {
                let key = "\(prefix)s\(i)"
                let owner = try await admin.owner(of: HashSlot.slot(for: key))
                #expect(try await owner.connection.send("GET", key).string == "value-\(i)")
                perNode[owner.port, default: 0] += 1
            }
            #expect(perNode.count == 3 && perNode.values.allSatisfy { $0 > 0 }, "keys on every primary: \(perNode)")
            let zsetMembers = try await client.send("ZCARD", "\(prefix)z3").int
            #expect(zsetMembers == 43)

            var cleanup = CommandBatch()
            for i in 0..<300 { cleanup.append("DEL", "\(prefix)s\(i)"); cleanup.append("DEL", "\(prefix)h\(i)") }
            for i in 0..<7 { cleanup.append("DEL", "\(prefix)z\(i)") }
            let outcome = try await client.executeCountingErrors(cleanup)
            #expect(outcome.errorCount == 0 && outcome.commandCount == 607)
            await admin.close()
            await client.close()
        }
    }

    @Test func hashTagsKeepKeysInOneSlot() async throws {
        try await ClusterTestLock.with(exclusive: false) {
            let client = try await ValkeyClusterClient.connect(try TestServers.cluster())
            let tag = "{\(TestServers.keyPrefix("tag"))}"
            let temporary = "\(tag):tmp"
            let final = "\(tag):final"
            #expect(HashSlot.slot(for: temporary) == HashSlot.slot(for: final))
            var batch = CommandBatch()
            batch.append("DEL", temporary)
            batch.append("HSET", temporary, "a", "1", "b", "2")
            batch.append("RENAME", temporary, final)
            let replies = try await client.execute(batch)
            let failed = replies.filter(\.isError)
            #expect(failed.isEmpty, "\(replies)")
            #expect(try await client.send("HGET", final, "b").string == "2")
            #expect(try await client.send("EXISTS", temporary).int == 0)
            // A multi-key command over two slots is refused by the server, not mis-routed.
            let other = TestServers.keyPrefix("other") + "x"
            if HashSlot.slot(for: other) != HashSlot.slot(for: final) {
                await #expect(throws: ValkeyError.self) { try await client.send("RENAME", final, other) }
            }
            _ = try await client.send("DEL", final)
            await client.close()
        }
    }

    @Test func countingKeepsTheOriginalIndices() async throws {
        try await ClusterTestLock.with(exclusive: false) {
            let client = try await ValkeyClusterClient.connect(try TestServers.cluster())
            let prefix = TestServers.keyPrefix("count")
            var batch = CommandBatch()
            for i in 0..<100 { batch.append("SET", "\(prefix)\(i)", "x") }
            // Wrong type at 100, 150 and 199: the errors keep their batch positions.
            for i in 0..<100 {
                if i == 0 || i == 50 || i == 99 { batch.append("HSET", "\(prefix)\(i)", "f", "v") } else { batch.append("GET", "\(prefix)\(i)") }
            }
            let outcome = try await client.executeCountingErrors(batch)
            #expect(outcome.commandCount == 200)
            #expect(outcome.errorCount == 3)
            #expect(outcome.firstErrors.map(\.index) == [100, 150, 199])
            #expect(outcome.firstErrors.allSatisfy { $0.message.hasPrefix("WRONGTYPE") })
            var cleanup = CommandBatch()
            for i in 0..<100 { cleanup.append("DEL", "\(prefix)\(i)") }
            _ = try await client.execute(cleanup)
            await client.close()
        }
    }

    @Test func clusterModeIsDetected() async throws {
        try await ClusterTestLock.with(exclusive: false) {
            let detected = try await ValkeyClients.connect(try TestServers.cluster(), cluster: nil)
            #expect(detected is ValkeyClusterClient)
            await detected.close()
            let standalone = try await ValkeyClients.connect(try TestServers.valkey(), cluster: nil)
            #expect(standalone is ValkeyConnection)
            await standalone.close()
            var url = try TestServers.variable("SYNC_TEST_VALKEY_CLUSTER_URL")
            url += "?cluster=1"
            let fromURL = try await ValkeyClients.connect(try ValkeyConfiguration(url: url), cluster: nil)
            #expect(fromURL is ValkeyClusterClient)
            #expect(try await fromURL.send("PING").string == "PONG")
            await fromURL.close()
            var withDatabase = try TestServers.cluster()
            withDatabase.database = 3
            await #expect { try await ValkeyClusterClient.connect(withDatabase) } throws: {
                ($0 as? ValkeyError)?.kind == .invalidConfiguration
            }
        }
    }
}

/// Slot migrations and a killed node, behind the client's back. One at a time, and never
/// alongside the other cluster tests (exclusive lock); the slot layout is restored.
@Suite("Cluster client under resharding and failures", .serialized)
struct ClusterFailureTests {
    /// Keys of one slot: `count` keys sharing a hash tag; the slot's owner and another node.
    private func taggedKeys(_ name: String, count: Int, admin: ClusterAdmin) async throws
        -> (keys: [String], tag: String, slot: UInt16, source: ClusterAdmin.Node, target: ClusterAdmin.Node) {
        // A previous run stopped half-way must not leave its open slot to this one.
        try await admin.repairOpenSlots()
        let tag = TestServers.keyPrefix(name)
        let keys = (0..<count).map { "{\(tag)}:\($0)" }
        let slot = HashSlot.slot(for: keys[0])
        let source = try await admin.owner(of: slot)
        let target = admin.nodes.first { $0.port != source.port }!
        return (keys, "{\(tag)}", slot, source, target)
    }

    @Test func movedAfterAWholeSlotMigration() async throws {
        try await ClusterTestLock.with(exclusive: true) {
            let admin = try await ClusterAdmin.connect()
            let client = try await ValkeyClusterClient.connect(try TestServers.cluster())
            let (keys, tag, slot, source, target) = try await taggedKeys("moved", count: 50, admin: admin)
            var write = CommandBatch()
            for key in keys { write.append("SET", key, "v:\(key)") }
            #expect(try await client.executeCountingErrors(write).errorCount == 0)
            let movedBefore = try await admin.errorCount("MOVED")
            do {
                try await admin.migrate(slot, from: source, to: target)
                #expect(await client.slotMap.node(for: slot)?.port == source.port, "the client's map is stale")
                var batch = CommandBatch()
                for key in keys { batch.append("GET", key) }
                for key in keys { batch.append("SET", key + ":new", "n") }
                let replies = try await client.execute(batch)
                #expect(zip(keys, replies).allSatisfy { $0.1.string == "v:\($0.0)" }, "every GET answered after MOVED")
                #expect(replies.dropFirst(keys.count).allSatisfy { $0.string == "OK" })
                #expect(await client.slotMap.node(for: slot)?.port == target.port, "MOVED updated the map")
                #expect(try await admin.errorCount("MOVED") > movedBefore)
                // The keys really are on the new owner.
                #expect(try await target.connection.send("EXISTS", keys[0] + ":new").int == 1)
                #expect(try await admin.keys(in: slot, on: target, prefix: tag) == 100)
                try await admin.migrate(slot, from: target, to: source)
            } catch {
                try? await admin.migrate(slot, from: target, to: source)
                throw error
            }
            // And the client follows the slot back.
            var cleanup = CommandBatch()
            for key in keys { cleanup.append("DEL", key); cleanup.append("DEL", key + ":new") }
            let outcome = try await client.executeCountingErrors(cleanup)
            #expect(outcome.errorCount == 0)
            #expect(try await admin.keys(in: slot, on: source, prefix: tag) == 0)
            #expect(try await admin.keys(in: slot, on: target, prefix: tag) == 0)
            #expect(await client.slotMap.node(for: slot)?.port == source.port)
            await client.close()
            await admin.close()
        }
    }

    @Test func askWhileASlotIsHalfMigrated() async throws {
        try await ClusterTestLock.with(exclusive: true) {
            let admin = try await ClusterAdmin.connect()
            let client = try await ValkeyClusterClient.connect(try TestServers.cluster())
            let (keys, tag, slot, source, target) = try await taggedKeys("ask", count: 40, admin: admin)
            var write = CommandBatch()
            for key in keys { write.append("SET", key, "v:\(key)") }
            #expect(try await client.executeCountingErrors(write).errorCount == 0)
            let askBefore = try await admin.errorCount("ASK")
            do {
                try await admin.beginMigration(slot, from: source, to: target)
                // Exactly 20 of this test's keys (the slot may hold leftovers of other runs).
                _ = try await source.connection.send(["MIGRATE", "127.0.0.1", String(target.port), "", "0", "10000", "REPLACE", "KEYS"] + keys.suffix(20))
                #expect(try await admin.keys(in: slot, on: source, prefix: tag) == 20, "keys on both sides")
                var batch = CommandBatch()
                for key in keys { batch.append("GET", key) }
                for key in keys.prefix(10) { batch.append("SET", key + ":new", "n") }
                let replies = try await client.execute(batch)
                #expect(zip(keys, replies).allSatisfy { $0.1.string == "v:\($0.0)" }, "every GET answered, from either side")
                #expect(replies.dropFirst(keys.count).allSatisfy { $0.string == "OK" }, "\(replies.dropFirst(keys.count))")
                let counted = try await client.executeCountingErrors(batch)
                #expect(counted.errorCount == 0 && counted.commandCount == 50)
                #expect(try await admin.errorCount("ASK") > askBefore, "ASK was exercised")
                #expect(await client.slotMap.node(for: slot)?.port == source.port, "ASK leaves the map as it is")
                // New keys were created on the importing side.
                #expect(try await target.connection.execute({ var b = CommandBatch(); b.append("ASKING"); b.append("EXISTS", keys[0] + ":new"); return b }())[1].int == 1)
                // Finish, then move it all back.
                try await admin.moveKeys(slot, from: source, to: target)
                try await admin.finishMigration(slot, to: target)
                try await admin.migrate(slot, from: target, to: source)
            } catch {
                _ = try? await admin.moveKeys(slot, from: source, to: target)
                try? await admin.finishMigration(slot, to: target)
                try? await admin.migrate(slot, from: target, to: source)
                throw error
            }
            #expect(try await admin.keys(in: slot, on: source, prefix: tag) == 50)
            var cleanup = CommandBatch()
            for key in keys { cleanup.append("DEL", key); cleanup.append("DEL", key + ":new") }
            #expect(try await client.executeCountingErrors(cleanup).errorCount == 0)
            await client.close()
            await admin.close()
        }
    }

    /// SPEC §10: a node lost mid-run is never silently reconnected to (it may have lost
    /// acknowledged writes); a new client, as the next run opens, works again.
    @Test func killedNodeFailsInBoundedTimeAndTheNextClientRecovers() async throws {
        try await ClusterTestLock.with(exclusive: true) {
            let ports = try ClusterAdmin.ports
            let victim = ports.last!
            let client = try await ValkeyClusterClient.connect(try TestServers.cluster())
            let prefix = TestServers.keyPrefix("kill")
            var batch = CommandBatch()
            for i in 0..<200 { batch.append("SET", "\(prefix)\(i)", "\(i)") }
            #expect(try await client.executeCountingErrors(batch).errorCount == 0)
            try await ClusterAdmin.kill(port: victim)
            do {
                let start = ContinuousClock.now
                await #expect {
                    _ = try await client.execute(batch)
                } throws: {
                    let kind = ($0 as? ValkeyError)?.kind
                    return kind == .connectionFailed || kind == .connectionClosed
                }
                let elapsed = ContinuousClock.now - start
                #expect(elapsed < .seconds(20), "failed after \(elapsed)")
                try await ClusterAdmin.restart(port: victim)
            } catch {
                try? await ClusterAdmin.restart(port: victim)
                throw error
            }
            // The same client refuses to carry on with the restarted node...
            await #expect {
                _ = try await client.execute(batch)
            } throws: {
                ($0 as? ValkeyError)?.kind == .connectionClosed
            }
            await client.close()
            // ...and the next one works, with the node's data kept (append-only file).
            let nextClient = try await ValkeyClusterClient.connect(try TestServers.cluster())
            let replies = try await nextClient.execute(batch)
            #expect(replies.allSatisfy { $0.string == "OK" }, "\(replies.filter(\.isError).prefix(3))")
            var read = CommandBatch()
            for i in 0..<200 { read.append("GET", "\(prefix)\(i)") }
            #expect(try await nextClient.execute(read).enumerated().allSatisfy { $0.element.string == "\($0.offset)" })
            var cleanup = CommandBatch()
            for i in 0..<200 { cleanup.append("DEL", "\(prefix)\(i)") }
            _ = try await nextClient.executeCountingErrors(cleanup)
            await nextClient.close()
        }
    }
}
