import NIOCore
import RESP

/// A cluster node's client address, `host:port`.
package struct ClusterNodeAddress: Sendable, Hashable, CustomStringConvertible {
    package var host: String
    package var port: Int

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// The ports a node can listen on.
    static let ports: ClosedRange<Int64> = 1...65535

    /// Parses `host:port` (the last colon separates the port, so IPv6 hosts work too); nil for
    /// anything else, a port outside 1...65535 or the unknown endpoint `?`. The host may be
    /// empty: a redirection's "same host as the request" (see `resolved(against:)`).
    package init?(_ text: Substring) {
        guard let colon = text.lastIndex(of: ":"), let port = Int64(text[text.index(after: colon)...]),
              Self.ports.contains(port) else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard host != "?" else { return nil }
        self.init(host: String(host), port: Int(port))
    }

    /// This address, with an empty host read as `current`'s: a node that does not know its own
    /// endpoint redirects with `MOVED slot :port`, meaning the host the request went to.
    package func resolved(against current: ClusterNodeAddress) -> ClusterNodeAddress {
        host.isEmpty ? ClusterNodeAddress(host: current.host, port: port) : self
    }

    package var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// Which primary serves each of the 16384 hash slots, as `CLUSTER SLOTS` last reported it
/// plus the MOVED redirections seen since.
package struct ClusterSlotMap: Sendable {
    /// The primaries, in the order they were first seen.
    package private(set) var nodes: [ClusterNodeAddress] = []
    /// Index into `nodes` per slot; -1 when no node is known to serve the slot.
    private var owners = [Int16](repeating: -1, count: Int(HashSlot.count))

    package init() {}

    /// Builds the map from a `CLUSTER SLOTS` reply. `queried` replaces an empty or unknown
    /// (`?`) endpoint, which a node reports when it does not know its own address.
    package init(clusterSlots reply: RESPValue, queried: ClusterNodeAddress) throws {
        guard let ranges = reply.array else {
            throw ValkeyError(.protocolError, server: queried.description, message: "CLUSTER SLOTS answered \(reply)")
        }
        for range in ranges {
            guard let parts = range.array, parts.count >= 3,
                  let start = parts[0].int, let end = parts[1].int, 0 <= start, start <= end, end < Int64(HashSlot.count),
                  let primary = parts[2].array, primary.count >= 2, let port = primary[1].int,
                  ClusterNodeAddress.ports.contains(port)
            else {
                throw ValkeyError(.protocolError, server: queried.description, message: "unexpected CLUSTER SLOTS entry \(range)")
            }
            var host = primary[0].string ?? ""
            if host.isEmpty || host == "?" { host = queried.host }
            let node = ClusterNodeAddress(host: host, port: Int(port))
            let index = indexOf(node)
            for slot in Int(start)...Int(end) { owners[slot] = index }
        }
    }

    /// The primary serving `slot`, if known.
    package func node(for slot: UInt16) -> ClusterNodeAddress? {
        let index = owners[Int(slot)]
        return index < 0 ? nil : nodes[Int(index)]
    }

    /// Records a MOVED redirection: `slot` is now served by `node`.
    package mutating func assign(_ slot: UInt16, to node: ClusterNodeAddress) {
        owners[Int(slot)] = indexOf(node)
    }

    /// Slots no node is known to serve.
    package var unassignedSlotCount: Int { owners.lazy.filter { $0 < 0 }.count }

    /// Primaries that serve at least one slot (a node that lost all its slots is left out).
    package var servingNodes: [ClusterNodeAddress] {
        var used = [Bool](repeating: false, count: nodes.count)
        for owner in owners where owner >= 0 { used[Int(owner)] = true }
        return nodes.indices.filter { used[$0] }.map { nodes[$0] }
    }

    private mutating func indexOf(_ node: ClusterNodeAddress) -> Int16 {
        if let index = nodes.firstIndex(of: node) { return Int16(index) }
        nodes.append(node)
        return Int16(nodes.count - 1)
    }
}

/// An error reply that the cluster client answers by re-sending the command.
package enum ClusterRedirect: Sendable, Hashable {
    /// `MOVED slot host:port`: the slot has a new owner for good.
    case moved(slot: UInt16, node: ClusterNodeAddress)
    /// `ASK slot host:port`: this one command goes to `node`, preceded by `ASKING`.
    case ask(slot: UInt16, node: ClusterNodeAddress)
    /// `ValkeyReply.retriedInCluster` (TRYAGAIN, CLUSTERDOWN, LOADING): the same node, after a pause.
    case retryLater

    package init?(_ message: String) {
        guard let first = message.utf8.first,
              first == UInt8(ascii: "M") || first == UInt8(ascii: "A") || first == UInt8(ascii: "T")
                || first == UInt8(ascii: "C") || first == UInt8(ascii: "L")
        else { return nil }
        let words = message.split(separator: " ", maxSplits: 3)
        switch words.first {
        case "MOVED", "ASK":
            guard words.count >= 3, let slot = UInt16(words[1]), slot < HashSlot.count,
                  let node = ClusterNodeAddress(words[2]) else { return nil }
            self = words[0] == "MOVED" ? .moved(slot: slot, node: node) : .ask(slot: slot, node: node)
        case let code? where ValkeyReply.retriedInCluster.contains(code):
            self = .retryLater
        default:
            return nil
        }
    }
}

/// Where each command of an encoded batch starts and ends, and the hash slot of its key.
struct BatchLayout {
    /// Byte offset of each command in the batch buffer (relative to its reader index); the
    /// last entry is the end of the last command.
    var offsets: [Int]
    /// Hash slot of argument 1, or -1 for a command without a key.
    var slots: [Int32]

    var count: Int { slots.count }

    func range(of index: Int) -> Range<Int> { offsets[index]..<offsets[index + 1] }

    /// Commands whose argument 1 is not a key: they may go to any node.
    static let keylessCommands: Set<String> = [
        "PING", "INFO", "SCAN", "DBSIZE", "FLUSHALL", "FLUSHDB", "CLUSTER", "CLIENT", "CONFIG",
        "TIME", "ECHO", "HELLO", "AUTH", "SELECT", "COMMAND", "LASTSAVE", "ROLE", "ASKING",
        "READONLY", "READWRITE", "WAIT", "DEBUG", "SCRIPT", "FUNCTION", "MEMORY", "SLOWLOG",
        "LATENCY", "RANDOMKEY", "QUIT", "RESET", "SAVE", "BGSAVE", "BGREWRITEAOF", "MULTI", "EXEC",
        "DISCARD", "UNWATCH", "ACL", "LOLWUT", "PUBLISH", "PUBSUB",
    ]

    /// Walks the RESP arrays of bulk strings that `CommandBatch` writes.
    init(_ buffer: ByteBuffer, count: Int) throws {
        let parsed: ([Int], [Int32])? = buffer.withUnsafeReadableBytes { bytes in
            var offsets: [Int] = []
            var slots: [Int32] = []
            offsets.reserveCapacity(count + 1)
            slots.reserveCapacity(count)
            var position = 0
            func number(after marker: UInt8) -> Int? {
                guard position < bytes.count, bytes[position] == marker else { return nil }
                position += 1
                var value = 0
                var digits = 0
                while position < bytes.count, bytes[position] != UInt8(ascii: "\r") {
                    let digit = Int(bytes[position]) - Int(UInt8(ascii: "0"))
                    guard (0...9).contains(digit), digits < 12 else { return nil }
                    value = value * 10 + digit
                    digits += 1
                    position += 1
                }
                guard digits > 0, position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "\n") else { return nil }
                position += 2
                return value
            }
            while position < bytes.count {
                offsets.append(position)
                guard let arguments = number(after: UInt8(ascii: "*")), arguments > 0 else { return nil }
                var slot: Int32 = -1
                var keyless = false
                for argument in 0..<arguments {
                    guard let length = number(after: UInt8(ascii: "$")), position + length + 2 <= bytes.count else { return nil }
                    let value = UnsafeRawBufferPointer(rebasing: bytes[position..<position + length])
                    if argument == 0 {
                        keyless = Self.keylessCommands.contains(String(decoding: value, as: UTF8.self).uppercased())
                    } else if argument == 1 && !keyless {
                        slot = Int32(HashSlot.slot(for: value))
                    }
                    position += length + 2
                }
                slots.append(slot)
            }
            offsets.append(position)
            return (offsets, slots)
        }
        guard let parsed, parsed.1.count == count else {
            throw ValkeyError(.invalidConfiguration, server: nil,
                              message: "a command batch is not an array of bulk strings per command; the cluster client cannot route it")
        }
        (offsets, slots) = parsed
    }
}
