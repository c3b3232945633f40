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
                    // 3000 usage rows and 600 reports, less what the 60-day retention removed.
                    #expect(onCluster.count > 1000, "the run wrote keys: \(onCluster.count)")
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
                try await admin.repairOpenSlots()
                let index = job.prefix + "usage_logs:index"
                let slot = HashSlot.slot(for: index)
                let home = try await admin.owner(of: slot)
                let away = admin.nodes.first { $0.port != home.port }!
                let movedBefore = try await admin.errorCount("MOVED")
                let askBefore = try await admin.errorCount("ASK")
                let process = try job.start(["run", "--stage", "usage-logs", "--batch-size", "100", "--retention-days", "3650", "--valkey-cluster"])
                var migrations = 0
                let deadline = ContinuousClock.now + .seconds(180)
                do {
                    try await Task.sleep(for: .milliseconds(300))
                    // Back and forth while the copy runs, pausing half-way so that writes meet
                    // both a half-migrated slot (ASK) and a moved one (MOVED). Bounded: a job
                    // that never ends is stopped below and fails the test.
                    while (process.isRunning || migrations < 2) && ContinuousClock.now < deadline {
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
                    try? await admin.repairOpenSlots()
                    if let owner = try? await admin.owner(of: slot), owner.port != home.port {
                        try? await admin.migrate(slot, from: owner, to: home)
                    }
                    _ = await Self.waitForExit(process, seconds: 30)
                    await admin.close()
                    throw error
                }
                let exited = await Self.waitForExit(process, seconds: 60)
                #expect(exited && process.terminationStatus == 0, "exit \(exited ? process.terminationStatus : -1)")
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
                let process = try job.start(["run", "--stage", "usage-logs", "--batch-size", "100", "--retention-days", "3650", "--valkey-cluster"])
                do {
                    try await Task.sleep(for: .milliseconds(700))
                    try await ClusterStageAdmin.kill(port: victim)
                    try await Task.sleep(for: .milliseconds(800))
                    try await ClusterStageAdmin.restart(port: victim)
                } catch {
                    try? await ClusterStageAdmin.restart(port: victim)
                    process.terminate()
                    _ = await Self.waitForExit(process, seconds: 30)
                    throw error
                }
                let exited = await Self.waitForExit(process, seconds: 120)
                #expect(exited && [0, 75].contains(process.terminationStatus), "exit \(exited ? process.terminationStatus : -1)")
                let next = try await job.run(["run", "--stage", "usage-logs", "--batch-size", "500", "--retention-days", "3650", "--valkey-cluster"])
                #expect(next.status == 0, "\(next.stderr.suffix(2000))")
                try await Self.expectSameAsStandalone(job, stages: ["--stage", "usage-logs"])
            }
        }
    }

    /// Waits (at most `seconds`, polling, never blocking a thread of the cooperative pool)
    /// for a started job to end; past the deadline the job is terminated, then killed, and
    /// the test fails. True when it ended by itself.
    static func waitForExit(_ process: Process, seconds: Int) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        guard process.isRunning else { return true }
        Issue.record("sync-job (pid \(process.processIdentifier)) still running after \(seconds) s: stopped")
        process.terminate()
        let grace = ContinuousClock.now + .seconds(10)
        while process.isRunning && ContinuousClock.now < grace { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        while process.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
        return false
    }

    /// Runs `stages` against the standalone server on the same schema and expects the same
    /// keys and values as `job` has on the cluster: exactly the source rows, nothing lost.
    static func expectSameAsStandalone(_ job: JobHarness, stages: [String]) async throws {
        let standalone = try await job.twin(cluster: false)
        do {
            // A retention window far wider than the data: the standalone run comes later, and
            // with the default window a row could cross the cutoff in between.
            let run = try await standalone.run(["run"] + stages + ["--batch-size", "1000", "--retention-days", "3650"])
            #expect(run.status == 0, "\(run.stderr.suffix(2000))")
            let onCluster = try await job.snapshot()
            let onStandalone = try await standalone.snapshot()
            #expect(onCluster.count == onStandalone.count, "\(onCluster.count) keys on the cluster, \(onStandalone.count) standalone; only on the cluster: \(Set(onCluster.keys).subtracting(onStandalone.keys).sorted().prefix(5).map { "\($0) = \(onCluster[$0]?.prefix(200) ?? "")" }); only standalone: \(Set(onStandalone.keys).subtracting(onCluster.keys).sorted().prefix(5))")
            let different = onStandalone.keys.filter { onCluster[$0] != onStandalone[$0] }.sorted()
            #expect(different.isEmpty, "\(different.count) keys differ, e.g. \(different.prefix(3)): \(different.prefix(1).map { "cluster \(onCluster[$0]?.prefix(300) ?? "nil") vs standalone \(onStandalone[$0]?.prefix(300) ?? "nil")" })")
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
        // Bounded: a lock still held after 5 minutes means a stuck holder (e.g. a process
        // that inherited the descriptor), reported instead of waited for.
        let deadline = ContinuousClock.now + .seconds(300)
        while flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            guard ContinuousClock.now < deadline else {
                throw ClusterStageAdmin.Failure(message: "the cluster test lock \(path) is still held after 300 s (see lsof \(path))")
            }
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
        for _ in 0..<1000 {
            let keys = try await source.connection.send("CLUSTER", "GETKEYSINSLOT", String(slot), "100").array?.compactMap(\.string) ?? []
            if keys.isEmpty { return moved }
            _ = try await source.connection.send(["MIGRATE", "127.0.0.1", String(target.port), "", "0", "10000", "REPLACE", "KEYS"] + keys)
            moved += keys.count
        }
        throw Failure(message: "slot \(slot): keys still on \(source.port) after 1000 MIGRATE rounds")
    }

    /// Puts every slot an interrupted run left MIGRATING or IMPORTING back in a stable state:
    /// the migration is finished, then the slot goes back to where it was.
    func repairOpenSlots() async throws {
        for node in nodes {
            let text = try await node.connection.send("CLUSTER", "NODES").string ?? ""
            guard let line = text.split(whereSeparator: \.isNewline).first(where: { $0.contains("myself") }) else { continue }
            for field in line.split(separator: " ") where field.hasPrefix("[") {
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
                        let keys = try await node.connection.send("CLUSTER", "GETKEYSINSLOT", String(slot), "100000").array?.compactMap(\.string) ?? []
                        if !keys.isEmpty {
                            _ = try await node.connection.send(["MIGRATE", "127.0.0.1", String(owner.port), "", "0", "10000", "REPLACE", "KEYS"] + keys)
                        }
                    }
                }
            }
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

    /// SIGKILLs the node on `port` and waits (at most 10 s) until it no longer answers.
    static func kill(port: Int) async throws {
        let connection = try await connection(port)
        let info = try await connection.send("INFO", "server").string ?? ""
        await connection.close()
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("process_id:") }),
              let pid = Int32(line.dropFirst("process_id:".count)) else { throw Failure(message: "no process_id from node \(port)") }
        Glibc.kill(pid, SIGKILL)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if Glibc.kill(pid, 0) != 0 { return }
            if (try? await Self.connection(port)) == nil { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Failure(message: "node \(port) (pid \(pid)) still answers 10 s after SIGKILL")
    }

    /// Starts the node on `port` again in the foreground as a child of this process
    /// (`--daemonize no`, output to /dev/null; killed by pid), then waits at most 30 s for
    /// `cluster_state:ok` on every node.
    static func restart(port: Int) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try JobHarness.variable("SYNC_TEST_VALKEY_SERVER"))
        process.arguments = [JobHarness.repositoryRoot.appendingPathComponent(".services/cluster/\(port)/valkey.conf").path, "--daemonize", "no"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
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
        throw Failure(message: "the cluster did not return to cluster_state:ok within 30 s")
    }
}
