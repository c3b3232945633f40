import Foundation
import RESP
import Valkey

#if canImport(Glibc)
import Glibc
#endif

/// One of the local three-primary test clusters of scripts/services.
package enum TestCluster: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Valkey 8 from the wheel, plain TCP (SYNC_TEST_VALKEY_CLUSTER_*).
    case plain
    /// Debian's Redis 7 with TLS on every client port and on the cluster bus, no plain port
    /// (SYNC_TEST_VALKEY_TLS_CLUSTER_*), certificates of the test CA.
    case tls

    package var description: String {
        switch self {
        case .plain: "Valkey cluster"
        case .tls: "Redis cluster over TLS"
        }
    }

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The seed URL the job and the clients are given.
    package var url: String {
        get throws { try environmentVariable(self == .plain ? "SYNC_TEST_VALKEY_CLUSTER_URL" : "SYNC_TEST_VALKEY_TLS_CLUSTER_URL") }
    }

    package var ports: [Int] {
        get throws {
            try environmentVariable(self == .plain ? "SYNC_TEST_VALKEY_CLUSTER_PORTS" : "SYNC_TEST_VALKEY_TLS_CLUSTER_PORTS")
                .split(separator: ",").compactMap { Int($0) }
        }
    }

    /// The CA that signed the TLS cluster's certificates (nil for the plain cluster).
    package var caFile: String? {
        get throws { self == .tls ? try environmentVariable("SYNC_TEST_TLS_CA_FILE") : nil }
    }

    /// The seed (or, with `port`, one node) as a client configuration, TLS files included.
    package func configuration(port: Int? = nil) throws -> ValkeyConfiguration {
        let url = try port.map { (self == .tls ? "rediss" : "valkey") + "://127.0.0.1:\($0)" } ?? self.url
        return try ValkeyConfiguration(url: url, caFile: try caFile)
    }

    /// What sync-job needs besides `VALKEY_URL` to reach the cluster: the CA for TLS.
    package var jobEnvironment: [String: String] {
        get throws { try caFile.map { ["SYNC_VALKEY_CA_FILE": $0] } ?? [:] }
    }

    /// The server binary of the node on `port` and where scripts/services keeps its configuration.
    func node(port: Int) throws -> (server: String, configFile: URL) {
        switch self {
        case .plain:
            (try environmentVariable("SYNC_TEST_VALKEY_SERVER"),
             Self.repositoryRoot.appendingPathComponent(".services/cluster/\(port)/valkey.conf"))
        case .tls:
            (try environmentVariable("SYNC_TEST_REDIS_SERVER"),
             Self.repositoryRoot.appendingPathComponent(".services/tls-cluster/\(port)/redis.conf"))
        }
    }

    var lockPath: String {
        Self.repositoryRoot.appendingPathComponent(self == .plain ? ".services/cluster/tests.lock" : ".services/tls-cluster/tests.lock").path
    }
}

/// Keeps tests that move slots or kill nodes of a local cluster (exclusive) away from the
/// tests that merely use it (shared), across suites and test targets: an flock on a file
/// beside the cluster's data, one per cluster.
package enum ClusterTestLock {
    package static func with<T>(exclusive: Bool, cluster: TestCluster = .plain, _ body: () async throws -> T) async throws -> T {
        let path = cluster.lockPath
        // A turnstile in front of the lock keeps a steady stream of shared holders from
        // starving an exclusive one: an exclusive waiter holds the turnstile while it waits, so
        // new shared holders queue behind it; shared holders pass the turnstile at once.
        let turnstile = try await acquire(path + ".turnstile", exclusive: exclusive)
        let fd: Int32
        do {
            fd = try await acquire(path, exclusive: exclusive)
        } catch {
            release(turnstile)
            throw error
        }
        release(turnstile)
        defer { release(fd) }
        return try await body()
    }

    /// Opens `file` and takes its flock, polling so that no thread of the shared pool blocks.
    /// Bounded: a lock still held after 20 minutes means a stuck holder (e.g. a process that
    /// inherited the descriptor), reported instead of waited for. The bound is that long
    /// because the exclusive tests of both cluster suites, over the plain and the TLS
    /// cluster, queue in front of a shared holder on a loaded 2-core CI machine (seen: over
    /// 5 minutes).
    private static func acquire(_ file: String, exclusive: Bool) async throws -> Int32 {
        let fd = open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ClusterAdmin.Failure(message: "cannot open \(file)") }
        let deadline = ContinuousClock.now + .seconds(1200)
        while flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            guard ContinuousClock.now < deadline else {
                close(fd)
                throw ClusterAdmin.Failure(message: "the cluster test lock \(file) is still held after 1200 s (see lsof \(file))")
            }
            do {
                try await Task.sleep(for: .milliseconds(50))
            } catch {
                close(fd)
                throw error
            }
        }
        return fd
    }

    private static func release(_ fd: Int32) {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// Direct connections to the nodes of a local test cluster (scripts/services), for what a
/// test does behind the client's back: migrating slots, killing and restarting nodes.
package final class ClusterAdmin: Sendable {
    package struct Failure: Error, CustomStringConvertible {
        package var message: String
        package init(message: String) { self.message = message }
        package var description: String { message }
    }

    package struct Node: Sendable {
        package let port: Int
        package let id: String
        package let connection: ValkeyConnection
        package var address: String { "127.0.0.1:\(port)" }
    }

    package let nodes: [Node]

    private init(nodes: [Node]) { self.nodes = nodes }

    /// The plain cluster's ports.
    package static var ports: [Int] {
        get throws { try TestCluster.plain.ports }
    }

    package static func connect(_ cluster: TestCluster = .plain) async throws -> ClusterAdmin {
        var nodes: [Node] = []
        for port in try cluster.ports {
            let connection = try await ValkeyConnection.connect(try cluster.configuration(port: port))
            let id = try await connection.send("CLUSTER", "MYID").string ?? ""
            nodes.append(Node(port: port, id: id, connection: connection))
        }
        return ClusterAdmin(nodes: nodes)
    }

    package func close() async {
        for node in nodes { await node.connection.close() }
    }

    package func node(port: Int) throws -> Node {
        guard let node = nodes.first(where: { $0.port == port }) else { throw Failure(message: "no cluster node on \(port)") }
        return node
    }

    /// The node that serves `slot`, as the first node that answers knows it.
    package func owner(of slot: UInt16) async throws -> Node {
        for node in nodes {
            guard let reply = try? await node.connection.send("CLUSTER", "SLOTS") else { continue }
            let map = try ClusterSlotMap(clusterSlots: reply, queried: ClusterNodeAddress(host: "127.0.0.1", port: node.port))
            guard let owner = map.node(for: slot) else { throw Failure(message: "slot \(slot) has no owner") }
            return try self.node(port: owner.port)
        }
        throw Failure(message: "no cluster node answered CLUSTER SLOTS")
    }

    /// Marks `slot` as moving from `source` to `target` (MIGRATING / IMPORTING).
    package func beginMigration(_ slot: UInt16, from source: Node, to target: Node) async throws {
        _ = try await target.connection.send("CLUSTER", "SETSLOT", String(slot), "IMPORTING", source.id)
        _ = try await source.connection.send("CLUSTER", "SETSLOT", String(slot), "MIGRATING", target.id)
    }

    /// Moves up to `limit` keys of `slot` (all when nil) with MIGRATE; returns how many moved.
    /// Bounded: gives up (throws) after 1000 rounds rather than loop for ever.
    @discardableResult
    package func moveKeys(_ slot: UInt16, from source: Node, to target: Node, limit: Int? = nil) async throws -> Int {
        var moved = 0
        var rounds = 0
        while limit.map({ moved < $0 }) ?? true {
            rounds += 1
            guard rounds <= 1000 else { throw Failure(message: "slot \(slot): keys still on \(source.port) after 1000 MIGRATE rounds") }
            let want = min(100, (limit ?? Int.max) - moved)
            let keys = try await source.connection.send("CLUSTER", "GETKEYSINSLOT", String(slot), String(want)).array?.compactMap(\.string) ?? []
            if keys.isEmpty { break }
            _ = try await source.connection.send(["MIGRATE", "127.0.0.1", String(target.port), "", "0", "10000", "REPLACE", "KEYS"] + keys)
            moved += keys.count
        }
        return moved
    }

    /// How many keys of `slot` on `node` start with `prefix` (other tests' or leftover keys may
    /// share the slot, so COUNTKEYSINSLOT alone says little).
    package func keys(in slot: UInt16, on node: Node, prefix: String) async throws -> Int {
        let reply = try await node.connection.send("CLUSTER", "GETKEYSINSLOT", String(slot), "100000")
        return (reply.array ?? []).compactMap(\.string).filter { $0.hasPrefix(prefix) }.count
    }

    /// Puts every slot a previous (interrupted) run left MIGRATING or IMPORTING back in a
    /// stable state: the migration is finished, then the slot goes back to where it was.
    package func repairOpenSlots() async throws {
        for node in nodes {
            let text = try await node.connection.send("CLUSTER", "NODES").string ?? ""
            guard let line = text.split(whereSeparator: \.isNewline).first(where: { $0.contains("myself") }) else { continue }
            for field in line.split(separator: " ") where field.hasPrefix("[") {
                // [slot->-target] (migrating here) or [slot-<-source] (importing here)
                let body = field.dropFirst().dropLast()
                if let range = body.range(of: "->-"), let slot = UInt16(body[..<range.lowerBound]),
                   let target = nodes.first(where: { $0.id == String(body[range.upperBound...]) }) {
                    try await moveKeys(slot, from: node, to: target)
                    try await finishMigration(slot, to: target)
                    try await migrate(slot, from: target, to: node)
                } else if let range = body.range(of: "-<-"), let slot = UInt16(body[..<range.lowerBound]) {
                    let owner = try await self.owner(of: slot)
                    if owner.port != node.port {
                        _ = try await node.connection.send("CLUSTER", "SETSLOT", String(slot), "STABLE")
                        // Keys imported before the migration stopped: send them to the owner.
                        let keys = try await node.connection.send("CLUSTER", "GETKEYSINSLOT", String(slot), "100000").array?.compactMap(\.string) ?? []
                        if !keys.isEmpty {
                            _ = try await node.connection.send(["MIGRATE", "127.0.0.1", String(owner.port), "", "0", "10000", "REPLACE", "KEYS"] + keys)
                        }
                    }
                }
            }
        }
    }

    /// Gives `slot` to `target` on every node (target first, as the cluster tutorial says).
    package func finishMigration(_ slot: UInt16, to target: Node) async throws {
        _ = try await target.connection.send("CLUSTER", "SETSLOT", String(slot), "NODE", target.id)
        for node in nodes where node.port != target.port {
            _ = try? await node.connection.send("CLUSTER", "SETSLOT", String(slot), "NODE", target.id)
        }
    }

    /// The whole migration of one slot.
    package func migrate(_ slot: UInt16, from source: Node, to target: Node) async throws {
        try await beginMigration(slot, from: source, to: target)
        try await moveKeys(slot, from: source, to: target)
        try await finishMigration(slot, to: target)
    }

    /// Every node's count of error replies starting with `prefix` (INFO errorstats).
    package func errorCount(_ prefix: String) async throws -> Int {
        var total = 0
        for node in nodes {
            let info = try await node.connection.send("INFO", "errorstats").string ?? ""
            for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("errorstat_\(prefix):count=") {
                total += Int(line.split(separator: "=").last ?? "") ?? 0
            }
        }
        return total
    }

    /// SIGKILLs the node on `port` and waits (at most 10 s) until it is gone.
    package static func kill(port: Int, in cluster: TestCluster = .plain) async throws {
        let connection = try await ValkeyConnection.connect(try cluster.configuration(port: port))
        let info = try await connection.send("INFO", "server").string ?? ""
        await connection.close()
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("process_id:") }),
              let pid = Int32(line.dropFirst("process_id:".count)) else { throw Failure(message: "no process_id from node \(port)") }
        Glibc.kill(pid, SIGKILL)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            // Gone once nothing answers on the port any more (a killed child of this process
            // stays a zombie until Foundation reaps it, so kill(pid, 0) alone is not enough).
            if Glibc.kill(pid, 0) != 0 { return }
            if (try? await ValkeyConnection.connect(try cluster.configuration(port: port))) == nil { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Failure(message: "node \(port) (pid \(pid)) still answers 10 s after SIGKILL")
    }

    /// Starts the node on `port` again from its configuration in .services/cluster (or
    /// .services/tls-cluster) and waits (at most 30 s) for `cluster_state:ok` on every node.
    /// The server runs in the foreground as a child of this process (`--daemonize no`, output
    /// to /dev/null, its log file as configured), so that nothing waits on a daemonizing
    /// launcher; it is killed by pid.
    package static func restart(port: Int, in cluster: TestCluster = .plain) async throws {
        let (server, configFile) = try cluster.node(port: port)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: server)
        process.arguments = [configFile.path, "--daemonize", "no"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await waitUntilHealthy(cluster)
    }

    package static func waitUntilHealthy(_ cluster: TestCluster = .plain, seconds: Int = 30) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            var healthy = true
            for port in try cluster.ports {
                guard let connection = try? await ValkeyConnection.connect(try cluster.configuration(port: port)) else {
                    healthy = false
                    break
                }
                let info = (try? await connection.send("CLUSTER", "INFO").string) ?? ""
                await connection.close()
                if !info.contains("cluster_state:ok") { healthy = false; break }
            }
            if healthy { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(message: "the \(cluster) did not return to cluster_state:ok within \(seconds) s")
    }
}

/// A variable the test services export; missing means the services were not set up.
func environmentVariable(_ name: String) throws -> String {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
        throw ClusterAdmin.Failure(message: "\(name) is not set: run `eval \"$(scripts/services env)\"` (scripts/test does)")
    }
    return value
}
