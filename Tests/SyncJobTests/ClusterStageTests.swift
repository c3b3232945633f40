import ClusterTestSupport
import Foundation
import RESP
import Testing
import Valkey

#if canImport(Glibc)
import Glibc
#endif

/// The stages run by the real binary with `--valkey-cluster` against each local three-primary
/// cluster — Valkey over plain TCP, and Redis 7 with TLS on every node and on the cluster bus
/// (`tls-cluster`, no plain port, so every node the job reaches it reaches over TLS, with the
/// one CA it was given) — compared with the same run against the standalone server. Slot
/// moves and a node restart happen behind the job's back; one test at a time, never
/// alongside the client's cluster tests (the exclusive lock of `ClusterTestLock`).
@Suite("Stages on a Valkey Cluster", .serialized)
struct ClusterStageTests {
    static let copyStages = ["--stage", "params", "--stage", "api-keys", "--stage", "usage-logs", "--stage", "report-logs"]

    @Test(arguments: TestCluster.allCases)
    func everyStageGivesTheSameStateAsStandalone(on testCluster: TestCluster) async throws {
        try await ClusterTestLock.with(exclusive: false, cluster: testCluster) {
            try await withHarness(cluster: testCluster) { job in
                try await job.generate(usageRows: 3000, reportRows: 600, apiKeys: 40)
                let standalone = try await job.twin(cluster: nil)
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
                    // And the keys are spread over the primaries: the job reached every node
                    // (on the TLS cluster over TLS, there being no other port).
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

    @Test(arguments: TestCluster.allCases)
    func slotMigratedDuringACopyLosesNothing(on testCluster: TestCluster) async throws {
        try await ClusterTestLock.with(exclusive: true, cluster: testCluster) {
            try await withHarness(cluster: testCluster) { job in
                try await job.generate(usageRows: 20000, reportRows: 0, apiKeys: 30)
                let admin = try await ClusterAdmin.connect(testCluster)
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
                let watermarkKey = "sync:watermark:usage_logs"
                let ended: @Sendable () -> Bool = { !process.isRunning }
                /// Until one more page is acknowledged (or the copy ended).
                func nextPage() async throws {
                    _ = try await job.waitForChange(of: watermarkKey, from: try await job.string(watermarkKey), unless: ended)
                }
                do {
                    _ = try await job.waitForKey(watermarkKey, unless: ended)
                    // Back and forth while the copy runs, each half-way state held until a page
                    // was written through it, so that writes meet both a half-migrated slot
                    // (ASK) and a moved one (MOVED). Bounded: a job that never ends is stopped
                    // below and fails the test.
                    while (process.isRunning || migrations < 2) && ContinuousClock.now < deadline {
                        let (source, target) = migrations % 2 == 0 ? (home, away) : (away, home)
                        try await admin.beginMigration(slot, from: source, to: target)
                        try await admin.moveKeys(slot, from: source, to: target)
                        try await nextPage()
                        try await admin.moveKeys(slot, from: source, to: target)
                        try await admin.finishMigration(slot, to: target)
                        migrations += 1
                        try await nextPage()
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
                // MIGRATE moves a key's TTL as milliseconds left, so a migrated hash may expire
                // up to a second later than it was told: the test's doing, not the job's.
                try await Self.expectSameAsStandalone(job, stages: ["--stage", "usage-logs"], migratedSlot: slot)
            }
        }
    }

    @Test(arguments: TestCluster.allCases)
    func nodeRestartedMidRunThenTheNextRunCompletes(on testCluster: TestCluster) async throws {
        try await ClusterTestLock.with(exclusive: true, cluster: testCluster) {
            try await withHarness(cluster: testCluster) { job in
                try await job.generate(usageRows: 20000, reportRows: 0, apiKeys: 30)
                // The victim is neither the seed nor the node of the watermark key, which the
                // test reads through its own cluster client while the victim is down: like the
                // job's, that client never reconnects to a node it lost.
                let watermarkKey = "sync:watermark:usage_logs"
                let admin = try await ClusterAdmin.connect(testCluster)
                let owner = try await admin.owner(of: HashSlot.slot(for: job.prefix + watermarkKey))
                await admin.close()
                let victim = try testCluster.ports.dropFirst().first { $0 != owner.port }!
                let process = try job.start(["run", "--stage", "usage-logs", "--batch-size", "100", "--retention-days", "3650", "--valkey-cluster"])
                do {
                    // Killed once the copy has written, restarted once the job saw it (it
                    // ended) or wrote on past it (the victim owned none of the page's slots).
                    _ = try await job.waitForKey(watermarkKey) { !process.isRunning }
                    try await ClusterAdmin.kill(port: victim, in: testCluster)
                    let killedAt = try await job.string(watermarkKey)
                    _ = try await job.waitForChange(of: watermarkKey, from: killedAt) { !process.isRunning }
                    try await ClusterAdmin.restart(port: victim, in: testCluster)
                } catch {
                    try? await ClusterAdmin.restart(port: victim, in: testCluster)
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

    /// The CA the job is given is the one every node of the TLS cluster is checked against:
    /// with an unrelated CA the run is a configuration error (64) that names the TLS settings.
    @Test func tlsClusterWithAnotherCAIsRefused() async throws {
        try await ClusterTestLock.with(exclusive: false, cluster: .tls) {
            try await withHarness(cluster: .tls) { job in
                try await job.generate(usageRows: 10, reportRows: 0, apiKeys: 2)
                let wrongCA = try JobHarness.variable("SYNC_TEST_TLS_WRONG_CA_FILE")
                let run = try await job.run(["run", "--stage", "params", "--valkey-cluster"],
                                            environment: ["SYNC_VALKEY_CA_FILE": wrongCA])
                #expect(run.status == 64, "\(run.stderr.suffix(2000))")
                #expect(run.stderr.contains("valkey-ca-file"), "\(run.stderr.suffix(2000))")
                #expect(try await job.keys().isEmpty, "nothing written")
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
    static func expectSameAsStandalone(_ job: JobHarness, stages: [String], migratedSlot: UInt16? = nil) async throws {
        let standalone = try await job.twin(cluster: nil)
        do {
            // A retention window far wider than the data: the standalone run comes later, and
            // with the default window a row could cross the cutoff in between.
            let run = try await standalone.run(["run"] + stages + ["--batch-size", "1000", "--retention-days", "3650"])
            #expect(run.status == 0, "\(run.stderr.suffix(2000))")
            let onCluster = try await job.snapshot()
            let onStandalone = try await standalone.snapshot()
            #expect(onCluster.count == onStandalone.count, "\(onCluster.count) keys on the cluster, \(onStandalone.count) standalone; only on the cluster: \(Set(onCluster.keys).subtracting(onStandalone.keys).sorted().prefix(5).map { "\($0) = \(onCluster[$0]?.prefix(200) ?? "")" }); only standalone: \(Set(onStandalone.keys).subtracting(onCluster.keys).sorted().prefix(5))")
            /// "type|expiretime|body" with the expiry allowed one second later in the migrated slot.
            func same(_ name: String) -> Bool {
                guard let cluster = onCluster[name], let standalone = onStandalone[name] else { return false }
                if cluster == standalone { return true }
                guard let migratedSlot, HashSlot.slot(for: job.prefix + name) == migratedSlot else { return false }
                let c = cluster.split(separator: "|", maxSplits: 2), s = standalone.split(separator: "|", maxSplits: 2)
                guard c.count == 3, s.count == 3, c[0] == s[0], c[2] == s[2], let ce = Int(c[1]), let se = Int(s[1]) else { return false }
                return ce == se || ce == se + 1
            }
            let different = onStandalone.keys.filter { !same($0) }.sorted()
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
