import Foundation
import RESP
import Testing
import Valkey

#if canImport(Glibc)
import Glibc
#endif

/// The stages run by the real binary with `--valkey-cluster` against the local three-primary
/// cluster, compared with the same run against the standalone server. Slot moves and a node
/// restart happen behind the job's back; one test at a time, never alongside the client's
/// cluster tests (the exclusive lock of `ClusterStageLock`).
@Suite("Stages on a Valkey Cluster", .serialized)
struct ClusterStageTests {
    static let copyStages = ["--stage", "params", "--stage", "api-keys", "--stage", "usage-logs", "--stage", "report-logs"]

    @Test func everyStageGivesTheSameStateAsStandalone() async throws {
        try await ClusterStageLock.with(exclusive: false) {
            try await withHarness(cluster: true) { job in
                try await job.generate(usageRows: 3000, reportRows: 600, apiKeys: 40)
                let standalone = try await job.twin(cluster: false)
                do {
                    for target in [job, standalone] {
                        let flag = target.cluster == nil ? [] : ["--valkey-cluster"]
                        let copy = try await target.run(["run"] + Self.copyStages + ["--batch-size", "250", "--retention-days", "200"] + flag)
                        #expect(copy.status == 0, "\(target.valkeyURL): \(copy.stderr.suffix(2000))")
                        let retention = try await target.run(["run", "--stage", "retention", "--retention-days", "60"] + flag)
                        #expect(retention.status == 0, "\(target.valkeyURL): \(retention.stderr.suffix(2000))")
                    }
                    let onCluster = try await job.snapshot()
                    let onStandalone = try await standalone.snapshot()
                    #expect(onCluster.count > 3000, "the run wrote keys: \(onCluster.count)")
                    #expect(onCluster.keys.sorted() == onStandalone.keys.sorted(), "the same keys")
                    let different = onCluster.keys.filter { onCluster[$0] != onStandalone[$0] }.sorted()
                    #expect(different.isEmpty, "differing keys, e.g. \(different.prefix(3)): \(different.prefix(1).map { "\(onCluster[$0] ?? "") vs \(onStandalone[$0] ?? "")" })")
                    #expect(onCluster["app:params"]?.hasPrefix("hash|-1|") == true)
                    // And the keys are spread over the primaries.
                    let perNode = try await job.cluster!.primaries().asyncMap { try await $0.connection.send("DBSIZE").int ?? 0 }
                    #expect(perNode.count == 3 && perNode.allSatisfy { $0 > 0 })
                } catch {
                    await standalone.tearDown()
                    throw error
                }
                await standalone.tearDown()
            }
        }
    }

    @Test func slotMigratedDuringACopyLosesNothing() async throws {
        try await ClusterStageLock.with(exclusive: true) {
            try await withHarness(cluster: true) { job in
                try await job.generate(usageRows: 20000, reportRows: 0, apiKeys: 30)
                let admin = try await ClusterStageAdmin.connect()
                let index = job.prefix + "usage_logs:index"
                let slot = HashSlot.slot(for: index)
                let home = try await admin.owner(of: slot)
                let away = admin.nodes.first { $0.port != home.port }!
                let movedBefore = try await admin.errorCount("MOVED")
                let askBefore = try await admin.errorCount("ASK")
                let process = try job.start(["run", "--stage", "usage-logs", "--batch-size", "100", "--valkey-cluster"])
                var migrations = 0
                do {
                    try await Task.sleep(for: .milliseconds(300))
                    // Back and forth while the copy runs, pausing half-way so that writes meet
                    // both a half-migrated slot (ASK) and a moved one (MOVED).
                    while process.isRunning || migrations < 2 {
                        let (source, target) = migrations % 2 == 0 ? (home, away) : (away, home)
                        try await admin.beginMigration(slot, from: source, to: target)
                        try await admin.moveKeys(slot, from: source, to: target)
                        try await Task.sleep(for: .milliseconds(250))
                        try await admin.moveKeys(slot, from: source, to: target)
                        try await admin.finishMigration(slot, to: target)
                        migrations += 1
                        try await Task.sleep(for: .milliseconds(250))
                    }
                    if migrations % 2 == 1 { try await admin.migrate(slot, from: away, to: home) }
                } catch {
                    process.terminate()
                    try? await admin.moveKeys(slot, from: home, to: away)
                    try? await admin.finishMigration(slot, to: away)
                    try? await admin.migrate(slot, from: away, to: home)
                    throw error
                }
                process.waitUntilExit()
                #expect(process.terminationStatus == 0)
                #expect(migrations >= 2)
                #expect(try await admin.errorCount("MOVED") > movedBefore, "MOVED exercised")
                #expect(try await admin.errorCount("ASK") > askBefore, "ASK exercised")
                #expect(try await admin.owner(of: slot).port == home.port, "layout restored")
                await admin.close()
                try await Self.expectSameAsStandalone(job, stages: ["--stage", "usage-logs"])
            }
        }
    }

    @Test func nodeRestartedMidRunThenTheNextRunCompletes() async throws {
        try await ClusterStageLock.with(exclusive: true) {
            try await withHarness(cluster: true) { job in
                try await job.generate(usageRows: 20000, reportRows: 0, apiKeys: 30)
                let victim = try ClusterStageAdmin.ports[1]
                let process = try job.start(["run", "--stage", "usage-logs", "--batch-size", "100", "--valkey-cluster"])
                do {
                    try await Task.sleep(for: .milliseconds(700))
                    try await ClusterStageAdmin.kill(port: victim)
                    try await Task.sleep(for: .milliseconds(800))
                    try await ClusterStageAdmin.restart(port: victim)
                } catch {
                    try? await ClusterStageAdmin.restart(port: victim)
                    throw error
                }
                process.waitUntilExit()
                #expect([0, 75].contains(process.terminationStatus), "exit \(process.terminationStatus)")
                let next = try await job.run(["run", "--stage", "usage-logs", "--batch-size", "500", "--valkey-cluster"])
                #expect(next.status == 0, "\(next.stderr.suffix(2000))")
                try await Self.expectSameAsStandalone(job, stages: ["--stage", "usage-logs"])
            }
        }
    }

    /// Runs `stages` against the standalone server on the same schema and expects the same
    /// keys and values as `job` has on the cluster: exactly the source rows, nothing lost.
    static func expectSameAsStandalone(_ job: JobHarness, stages: [String]) async throws {
        let standalone = try await job.twin(cluster: false)
        do {
            let run = try await standalone.run(["run"] + stages + ["--batch-size", "1000"])
            #expect(run.status == 0, "\(run.stderr.suffix(2000))")
            let onCluster = try await job.snapshot()
            let onStandalone = try await standalone.snapshot()
            #expect(onCluster.count == onStandalone.count, "\(onCluster.count) keys on the cluster, \(onStandalone.count) standalone")
            let different = onStandalone.keys.filter { onCluster[$0] != onStandalone[$0] }.sorted()
            #expect(different.isEmpty, "\(different.count) keys differ, e.g. \(different.prefix(3))")
            let index = try await job.sortedSet("usage_logs:index")
            #expect(index.count > 10000, "\(index.count) ids in the index")
        } catch {
            await standalone.tearDown()
            throw error
        }
        await standalone.tearDown()
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}

/// The cross-suite lock of the cluster tests (the same file as the client tests' lock).
enum ClusterStageLock {
    static let path = JobHarness.repositoryRoot.appendingPathComponent(".services/cluster/tests.lock").path

    static func with<T>(exclusive: Bool, _ body: () async throws -> T) async throws -> T {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ClusterStageAdmin.Failure(message: "cannot open \(path)") }
        defer { close(fd) }
        while flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            try await Task.sleep(for: .milliseconds(50))
        }
        defer { flock(fd, LOCK_UN) }
        return try await body()
    }
}

/// Direct connections to the local cluster's nodes: slot migrations, killing and restarting.
final class ClusterStageAdmin: Sendable {
    struct Failure: Error, CustomStringConvertible { var message: String; var description: String { message } }

    struct Node: Sendable {
        let port: Int
        let id: String
        let connection: ValkeyConnection
    }

    let nodes: [Node]

    private init(nodes: [Node]) { self.nodes = nodes }

    static var ports: [Int] {
        get throws { try JobHarness.variable("SYNC_TEST_VALKEY_CLUSTER_PORTS").split(separator: ",").compactMap { Int($0) } }
    }

    static func connection(_ port: Int) async throws -> ValkeyConnection {
        try await ValkeyConnection.connect(try ValkeyConfiguration(url: "valkey://127.0.0.1:\(port)"))
    }

    static func connect() async throws -> ClusterStageAdmin {
        var nodes: [Node] = []
        for port in try ports {
            let connection = try await connection(port)
            nodes.append(Node(port: port, id: try await connection.send("CLUSTER", "MYID").string ?? "", connection: connection))
        }
        return ClusterStageAdmin(nodes: nodes)
    }

    func close() async {
        for node in nodes { await node.connection.close() }
    }

    func owner(of slot: UInt16) async throws -> Node {
        let reply = try await nodes[0].connection.send("CLUSTER", "SLOTS")
        let map = try ClusterSlotMap(clusterSlots: reply, queried: ClusterNodeAddress(host: "127.0.0.1", port: nodes[0].port))
        guard let owner = map.node(for: slot), let node = nodes.first(where: { $0.port == owner.port }) else {
            throw Failure(message: "slot \(slot) has no known owner")
        }
        return node
    }

    func beginMigration(_ slot: UInt16, from source: Node, to target: Node) async throws {
        _ = try await target.connection.send("CLUSTER", "SETSLOT", String(slot), "IMPORTING", source.id)
        _ = try await source.connection.send("CLUSTER", "SETSLOT", String(slot), "MIGRATING", target.id)
    }

    @discardableResult
    func moveKeys(_ slot: UInt16, from source: Node, to target: Node) async throws -> Int {
        var moved = 0
        while true {
            let keys = try await source.connection.send("CLUSTER", "GETKEYSINSLOT", String(slot), "100").array?.compactMap(\.string) ?? []
            if keys.isEmpty { return moved }
            _ = try await source.connection.send(["MIGRATE", "127.0.0.1", String(target.port), "", "0", "10000", "REPLACE", "KEYS"] + keys)
            moved += keys.count
        }
    }

    func finishMigration(_ slot: UInt16, to target: Node) async throws {
        _ = try await target.connection.send("CLUSTER", "SETSLOT", String(slot), "NODE", target.id)
        for node in nodes where node.port != target.port {
            _ = try? await node.connection.send("CLUSTER", "SETSLOT", String(slot), "NODE", target.id)
        }
    }

    func migrate(_ slot: UInt16, from source: Node, to target: Node) async throws {
        try await beginMigration(slot, from: source, to: target)
        try await moveKeys(slot, from: source, to: target)
        try await finishMigration(slot, to: target)
    }

    func errorCount(_ prefix: String) async throws -> Int {
        var total = 0
        for node in nodes {
            let info = try await node.connection.send("INFO", "errorstats").string ?? ""
            for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("errorstat_\(prefix):count=") {
                total += Int(line.split(separator: "=").last ?? "") ?? 0
            }
        }
        return total
    }

    static func kill(port: Int) async throws {
        let connection = try await connection(port)
        let info = try await connection.send("INFO", "server").string ?? ""
        await connection.close()
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("process_id:") }),
              let pid = Int32(line.dropFirst("process_id:".count)) else { throw Failure(message: "no process_id from node \(port)") }
        Glibc.kill(pid, SIGKILL)
        for _ in 0..<100 where Glibc.kill(pid, 0) == 0 { try await Task.sleep(for: .milliseconds(20)) }
    }

    static func restart(port: Int) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try JobHarness.variable("SYNC_TEST_VALKEY_SERVER"))
        process.arguments = [JobHarness.repositoryRoot.appendingPathComponent(".services/cluster/\(port)/valkey.conf").path]
        try process.run()
        process.waitUntilExit()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            var healthy = true
            for port in try ports {
                guard let connection = try? await connection(port) else { healthy = false; break }
                let info = (try? await connection.send("CLUSTER", "INFO").string) ?? ""
                await connection.close()
                if !info.contains("cluster_state:ok") { healthy = false; break }
            }
            if healthy { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(message: "the cluster did not return to cluster_state:ok")
    }
}
