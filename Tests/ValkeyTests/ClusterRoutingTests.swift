import NIOCore
import RESP
import Testing
@testable import Valkey

/// The cluster client's pure parts: the slot map from a `CLUSTER SLOTS` reply, the parsing of
/// redirections, and the layout that splits a batch per node. No server, no socket. These
/// extend the suite "Cluster routing without a server" of ClusterClientTests.swift.
extension ClusterRoutingTests {

    // MARK: ClusterSlotMap

    @Test func slotMapFromThreeNodes() throws {
        let map = try ClusterSlotMap(clusterSlots: .array([
            slotsEntry(0, 5460, primary: ("10.0.0.1", 7000), replicas: [("10.0.0.4", 7003)]),
            slotsEntry(5461, 10922, primary: ("10.0.0.2", 7001), replicas: [("10.0.0.5", 7004)]),
            slotsEntry(10923, 16383, primary: ("10.0.0.3", 7002)),
        ]), queried: seedNode)
        let a = ClusterNodeAddress(host: "10.0.0.1", port: 7000)
        let b = ClusterNodeAddress(host: "10.0.0.2", port: 7001)
        let c = ClusterNodeAddress(host: "10.0.0.3", port: 7002)
        // Replicas are not primaries: only the three primaries, in the order seen.
        #expect(map.nodes == [a, b, c])
        #expect(map.servingNodes == [a, b, c])
        #expect(map.unassignedSlotCount == 0)
        // Every range edge.
        #expect(map.node(for: 0) == a)
        #expect(map.node(for: 5460) == a)
        #expect(map.node(for: 5461) == b)
        #expect(map.node(for: 10922) == b)
        #expect(map.node(for: 10923) == c)
        #expect(map.node(for: 16383) == c)
        // Known key slots (CLUSTER KEYSLOT): bar 5061, foo 12182.
        #expect(map.node(for: HashSlot.slot(for: "bar")) == a)
        #expect(map.node(for: HashSlot.slot(for: "foo")) == c)
    }

    @Test func unassignedSlotsAreCountedAndHaveNoNode() throws {
        // Holes at 0...99, 5000...5999 and 16000...16383; one primary serves two ranges.
        let map = try ClusterSlotMap(clusterSlots: .array([
            slotsEntry(100, 4999, primary: ("a.example", 6379)),
            slotsEntry(6000, 9999, primary: ("b.example", 6379)),
            slotsEntry(10000, 15999, primary: ("a.example", 6379)),
        ]), queried: seedNode)
        #expect(map.unassignedSlotCount == 100 + 1000 + 384)
        #expect(map.node(for: 0) == nil)
        #expect(map.node(for: 99) == nil)
        #expect(map.node(for: 100)?.host == "a.example")
        #expect(map.node(for: 4999)?.host == "a.example")
        #expect(map.node(for: 5000) == nil)
        #expect(map.node(for: 5999) == nil)
        #expect(map.node(for: 6000)?.host == "b.example")
        #expect(map.node(for: 15999)?.host == "a.example")
        #expect(map.node(for: 16000) == nil)
        #expect(map.node(for: 16383) == nil)
        #expect(map.nodes.count == 2, "a primary with two ranges is one node")

        #expect(ClusterSlotMap().unassignedSlotCount == 16384)
        #expect(ClusterSlotMap().node(for: 0) == nil)
        #expect(try ClusterSlotMap(clusterSlots: .array([]), queried: seedNode).nodes.isEmpty)
    }

    @Test func hostnamesIPv6AndUnknownEndpoints() throws {
        let map = try ClusterSlotMap(clusterSlots: .array([
            slotsEntry(0, 3999, primary: ("valkey-0.valkey.svc.cluster.local", 6379)),
            slotsEntry(4000, 7999, primary: ("::1", 7000)),
            // A node that does not know its own address reports "" or "?" (or null): the
            // address that was queried stands in for it.
            slotsEntry(8000, 9999, primary: ("", 7001)),
            slotsEntry(10000, 11999, primary: ("?", 7002)),
            .array([.integer(12000), .integer(16383), .array([.null, .integer(7003)])]),
        ]), queried: ClusterNodeAddress(host: "seed.example", port: 6379))
        #expect(map.node(for: 0) == ClusterNodeAddress(host: "valkey-0.valkey.svc.cluster.local", port: 6379))
        let ipv6 = try #require(map.node(for: 4000))
        #expect(ipv6.host == "::1" && ipv6.port == 7000 && ipv6.description == "[::1]:7000")
        #expect(map.node(for: 8000) == ClusterNodeAddress(host: "seed.example", port: 7001))
        #expect(map.node(for: 10000) == ClusterNodeAddress(host: "seed.example", port: 7002))
        #expect(map.node(for: 12000) == ClusterNodeAddress(host: "seed.example", port: 7003))
        #expect(map.unassignedSlotCount == 0)
    }

    @Test func portsSentAsStringsAreRead() throws {
        // RESP2 servers may send numbers as strings; `.int` reads both.
        let map = try ClusterSlotMap(clusterSlots: .array([
            .array([bulk("0"), bulk("16383"), .array([bulk("127.0.0.1"), bulk("6380")])]),
        ]), queried: seedNode)
        #expect(map.node(for: 8000) == ClusterNodeAddress(host: "127.0.0.1", port: 6380))
    }

    @Test(arguments: [
        ("not an array", RESPValue.error("ERR This instance has cluster support disabled")),
        ("slot past the end", .array([slotsEntry(0, 16384, primary: ("h", 1))])),
        ("start after end", .array([slotsEntry(10, 9, primary: ("h", 1))])),
        ("negative start", .array([slotsEntry(-1, 9, primary: ("h", 1))])),
        ("no primary", .array([.array([.integer(0), .integer(10)])])),
        ("primary without port", .array([.array([.integer(0), .integer(10), .array([bulk("h")])])])),
        ("port not a number", .array([.array([.integer(0), .integer(10), .array([bulk("h"), bulk("x")])])])),
    ])
    func malformedClusterSlotsIsAProtocolError(_ label: String, _ reply: RESPValue) {
        #expect(throws: ValkeyError.self, "\(label)") {
            _ = try ClusterSlotMap(clusterSlots: reply, queried: seedNode)
        }
        do {
            _ = try ClusterSlotMap(clusterSlots: reply, queried: seedNode)
        } catch let error as ValkeyError {
            #expect(error.kind == .protocolError && error.server == seedNode.description, "\(label)")
        } catch {
            Issue.record("\(label): \(error)")
        }
    }

    @Test func movedReassignsOneSlotAndANodeWithoutSlotsStopsServing() throws {
        var map = try ClusterSlotMap(clusterSlots: .array([
            slotsEntry(0, 8191, primary: ("10.0.0.1", 7000)),
            slotsEntry(8192, 8192, primary: ("10.0.0.2", 7000)),
            slotsEntry(8193, 16383, primary: ("10.0.0.3", 7000)),
        ]), queried: seedNode)
        let fresh = ClusterNodeAddress(host: "10.0.0.9", port: 7000)
        map.assign(3999, to: fresh)
        #expect(map.node(for: 3999) == fresh)
        #expect(map.node(for: 3998)?.host == "10.0.0.1" && map.node(for: 4000)?.host == "10.0.0.1")
        #expect(map.nodes.last == fresh)

        map.assign(8192, to: ClusterNodeAddress(host: "10.0.0.3", port: 7000))
        #expect(map.nodes.count == 4, "nodes keeps every node seen")
        #expect(map.servingNodes.map(\.host) == ["10.0.0.1", "10.0.0.3", "10.0.0.9"])
    }

    // MARK: ClusterRedirect

    @Test func movedAndAsk() {
        #expect(ClusterRedirect("MOVED 3999 127.0.0.1:6381") == .moved(slot: 3999, node: ClusterNodeAddress(host: "127.0.0.1", port: 6381)))
        #expect(ClusterRedirect("ASK 3999 127.0.0.1:6381") == .ask(slot: 3999, node: ClusterNodeAddress(host: "127.0.0.1", port: 6381)))
        #expect(ClusterRedirect("MOVED 0 h:1") == .moved(slot: 0, node: ClusterNodeAddress(host: "h", port: 1)))
        #expect(ClusterRedirect("MOVED 16383 h:1") == .moved(slot: 16383, node: ClusterNodeAddress(host: "h", port: 1)))
        // Hostnames (cluster-preferred-endpoint-type hostname) and IPv6, bare or bracketed.
        #expect(ClusterRedirect("MOVED 12182 valkey-2.valkey.svc:6379") == .moved(slot: 12182, node: ClusterNodeAddress(host: "valkey-2.valkey.svc", port: 6379)))
        #expect(ClusterRedirect("ASK 1 ::1:7000") == .ask(slot: 1, node: ClusterNodeAddress(host: "::1", port: 7000)))
        #expect(ClusterRedirect("MOVED 1 [fe80::1:2]:7000") == .moved(slot: 1, node: ClusterNodeAddress(host: "fe80::1:2", port: 7000)))
        #expect(ClusterRedirect("MOVED 1 2001:db8::7:6379") == .moved(slot: 1, node: ClusterNodeAddress(host: "2001:db8::7", port: 6379)))
        // Text after the address is ignored.
        #expect(ClusterRedirect("MOVED 5 h:1 extra words") == .moved(slot: 5, node: ClusterNodeAddress(host: "h", port: 1)))
    }

    @Test func temporaryClusterStatesAreRetryLater() {
        #expect(ClusterRedirect("TRYAGAIN Multiple keys request during rehashing of slot") == .retryLater)
        #expect(ClusterRedirect("CLUSTERDOWN The cluster is down") == .retryLater)
        #expect(ClusterRedirect("CLUSTERDOWN Hash slot not served") == .retryLater)
        #expect(ClusterRedirect("LOADING Valkey is loading the dataset in memory") == .retryLater)
        #expect(ClusterRedirect("TRYAGAIN") == .retryLater)
    }

    @Test(arguments: [
        "ERR unknown command 'FOO'",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "MOVED",
        "MOVED 3999",
        "MOVED 16384 127.0.0.1:6381",
        "MOVED -1 127.0.0.1:6381",
        "MOVED abc 127.0.0.1:6381",
        "MOVED 3999 127.0.0.1",
        "MOVED 3999 127.0.0.1:port",
        "MOVED 3999 ?:6381",
        "MOVED 3999 127.0.0.1:0",
        "moved 3999 127.0.0.1:6381",
        "MOVEDX 3999 127.0.0.1:6381",
        "CROSSSLOT Keys in request don't hash to the same slot",
        "MASTERDOWN Link with MASTER is down",
        "LOADINGX",
        "",
    ])
    func otherErrorsAreNotRedirects(_ message: String) {
        #expect(ClusterRedirect(message) == nil)
    }

    @Test func nodeAddressParsing() {
        #expect(ClusterNodeAddress("h:1") == ClusterNodeAddress(host: "h", port: 1))
        #expect(ClusterNodeAddress("[::1]:6379")?.description == "[::1]:6379")
        #expect(ClusterNodeAddress("::1:6379")?.description == "[::1]:6379")
        #expect(ClusterNodeAddress("h") == nil)
        #expect(ClusterNodeAddress("h:") == nil)
        // An empty host is a redirection's "the host the request went to" (the cluster spec).
        #expect(ClusterNodeAddress(":1") == ClusterNodeAddress(host: "", port: 1))
        #expect(ClusterNodeAddress("?:1") == nil)
        #expect(ClusterNodeAddress(host: "10.0.0.1", port: 7000).description == "10.0.0.1:7000")
    }

    // MARK: BatchLayout

    @Test func layoutFindsEachCommandAndTheSlotOfItsKey() throws {
        let commands: [[String]] = [
            ["SET", "foo", "1"],
            ["GET", "bar"],
            ["PING"],
            ["HSET", "{user1}:a", "f", "v"],
            ["set", "c", String(repeating: "v", count: 1000)],
            ["EXPIREAT", "hello", "1700000000"],
            ["GET", "{user1}:b"],
            ["ping", "message"],
            ["CLUSTER", "SLOTS"],
            ["DEL", "a"],
        ]
        var batch = CommandBatch()
        for command in commands { batch.append(command) }
        let layout = try BatchLayout(batch.buffer, count: batch.count)

        #expect(layout.count == commands.count)
        #expect(layout.offsets.count == commands.count + 1)
        #expect(layout.offsets.first == 0 && layout.offsets.last == batch.buffer.readableBytes)
        for (index, command) in commands.enumerated() {
            var alone = CommandBatch()
            alone.append(command)
            let range = layout.range(of: index)
            #expect(batch.buffer.getSlice(at: batch.buffer.readerIndex + range.lowerBound, length: range.count) == alone.buffer,
                    "bytes of command \(index)")
        }
        let expectedSlots: [Int32] = [
            Int32(HashSlot.slot(for: "foo")), Int32(HashSlot.slot(for: "bar")), -1,
            Int32(HashSlot.slot(for: "user1")), Int32(HashSlot.slot(for: "c")), Int32(HashSlot.slot(for: "hello")),
            Int32(HashSlot.slot(for: "user1")), -1, -1, Int32(HashSlot.slot(for: "a")),
        ]
        #expect(layout.slots == expectedSlots)
        #expect(layout.slots[0] == 12182 && layout.slots[1] == 5061)
    }

    @Test func layoutOffsetsAreRelativeToTheReaderIndex() throws {
        var batch = CommandBatch()
        batch.append("SET", "foo", "1")
        batch.append("GET", "bar")
        var shifted = ByteBuffer(string: "already read")
        var bytes = batch.buffer
        shifted.writeBuffer(&bytes)
        shifted.moveReaderIndex(forwardBy: "already read".utf8.count)
        let plain = try BatchLayout(batch.buffer, count: 2)
        let layout = try BatchLayout(shifted, count: 2)
        #expect(layout.offsets == plain.offsets && layout.slots == plain.slots)
    }

    @Test func batchesTheLayoutCannotRouteAreRefused() {
        var batch = CommandBatch()
        batch.append("GET", "a")
        batch.append("GET", "b")
        for (buffer, count) in [
            (batch.buffer, 3),                                 // count does not match
            (batch.buffer, 1),
            (ByteBuffer(string: "PING\r\n"), 1),               // inline command
            (ByteBuffer(string: "*1\r\n$4\r\nPIN"), 1),        // truncated
            (ByteBuffer(string: "*1\r\n:1\r\n"), 1),           // not a bulk string
            (ByteBuffer(string: "*0\r\n"), 1),                 // no command name
        ] {
            #expect {
                _ = try BatchLayout(buffer, count: count)
            } throws: { error in
                (error as? ValkeyError)?.kind == .invalidConfiguration
            }
        }
    }

    /// Splits a batch over three nodes the way the cluster client does (by the slot of each
    /// command's key, keyless commands to the first serving node), encodes each node's part
    /// with `ValkeyClusterClient.encode`, lets a fake node answer each command it received
    /// with the command's own text, and puts the answers back by index: the result is in the
    /// batch's original order.
    @Test(arguments: [false, true])
    func batchSplitOverNodesReassemblesInOriginalOrder(asking: Bool) throws {
        let map = try ClusterSlotMap(clusterSlots: .array([
            slotsEntry(0, 5460, primary: ("10.0.0.1", 7000)),
            slotsEntry(5461, 10922, primary: ("10.0.0.2", 7000)),
            slotsEntry(10923, 16383, primary: ("10.0.0.3", 7000)),
        ]), queried: seedNode)
        let commands: [[String]] = [
            ["SET", "foo", "1"],          // 12182: node 3
            ["GET", "bar"],               // 5061: node 1
            ["SET", "c", "3"],            // 7365: node 2
            ["PING"],                     // keyless: node 1
            ["HSET", "{c}:h", "f", "v"],  // as c: node 2
            ["GET", "a"],                 // 15495: node 3
            ["GET", "b"],                 // 3300: node 1
            ["INCR", "{foo}n"],           // as foo: node 3
            ["DEL", "hello"],             // 866: node 1
        ]
        var batch = CommandBatch()
        for command in commands { batch.append(command) }
        let layout = try BatchLayout(batch.buffer, count: batch.count)

        var parts: [ClusterNodeAddress: [Int]] = [:]
        for index in 0..<layout.count {
            let node = layout.slots[index] >= 0 ? map.node(for: UInt16(layout.slots[index]))! : map.servingNodes[0]
            parts[node, default: []].append(index)
        }
        #expect(parts.count == 3)
        #expect(parts[ClusterNodeAddress(host: "10.0.0.1", port: 7000)] == [1, 3, 6, 8])
        #expect(parts[ClusterNodeAddress(host: "10.0.0.2", port: 7000)] == [2, 4])
        #expect(parts[ClusterNodeAddress(host: "10.0.0.3", port: 7000)] == [0, 5, 7])

        var replies = [String?](repeating: nil, count: commands.count)
        for (_, indices) in parts {
            let bytes = ValkeyClusterClient.encode(indices, asking: asking, from: batch.buffer, layout: layout)
            var received = try decodeCommands(bytes)
            if asking {
                #expect(received.count == 2 * indices.count)
                #expect(stride(from: 0, to: received.count, by: 2).allSatisfy { received[$0] == ["ASKING"] })
                received = stride(from: 1, to: received.count, by: 2).map { received[$0] }
            }
            #expect(received.count == indices.count)
            // The fake node answers each command with its text, in the order received.
            let answers = received.map { $0.joined(separator: " ") }
            for (index, answer) in zip(indices, answers) { replies[index] = answer }
        }
        #expect(replies == commands.map { $0.joined(separator: " ") })
    }

    @Test func encodeCopiesRunsOfNeighboursAndKeepsTheOrderGiven() throws {
        var batch = CommandBatch()
        for key in ["k0", "k1", "k2", "k3", "k4"] { batch.append("GET", key) }
        let layout = try BatchLayout(batch.buffer, count: batch.count)
        let all = ValkeyClusterClient.encode([0, 1, 2, 3, 4], asking: false, from: batch.buffer, layout: layout)
        #expect(all == batch.buffer)
        let some = ValkeyClusterClient.encode([0, 1, 3, 4], asking: false, from: batch.buffer, layout: layout)
        #expect(try decodeCommands(some) == [["GET", "k0"], ["GET", "k1"], ["GET", "k3"], ["GET", "k4"]])
        let one = ValkeyClusterClient.encode([2], asking: false, from: batch.buffer, layout: layout)
        #expect(try decodeCommands(one) == [["GET", "k2"]])
    }
}

// MARK: Helpers

private let seedNode = ClusterNodeAddress(host: "127.0.0.1", port: 7000)

private func bulk(_ text: String) -> RESPValue {
    .bulkString(ByteBuffer(string: text))
}

/// One entry of a `CLUSTER SLOTS` reply: start, end, primary, replicas (each host, port, id).
private func slotsEntry(_ start: Int64, _ end: Int64, primary: (String, Int64), replicas: [(String, Int64)] = []) -> RESPValue {
    func node(_ address: (String, Int64)) -> RESPValue {
        .array([bulk(address.0), .integer(address.1), bulk("id-\(address.0)-\(address.1)")])
    }
    return .array([.integer(start), .integer(end), node(primary)] + replicas.map(node))
}

/// The commands in an encoded buffer, as their arguments.
private func decodeCommands(_ buffer: ByteBuffer) throws -> [[String]] {
    var buffer = buffer
    var decoder = RESPDecoder()
    var commands: [[String]] = []
    while let value = try decoder.decode(buffer: &buffer) {
        commands.append(try #require(value.array).map { try #require($0.string) })
    }
    #expect(buffer.readableBytes == 0)
    return commands
}
