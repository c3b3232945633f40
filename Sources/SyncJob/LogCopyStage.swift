import Foundation
import Logging
import Postgres
import RESP
import Synchronization
import Timestamps
import Valkey
import Watermarks
import Writers

/// The `usage-logs` and `report-logs` stages (SPEC §4): page after page in (timestamp, id)
/// order from the watermark, each page one pipeline, the watermark moved only after every
/// command of the page was acknowledged.
struct LogCopyStage: Sendable {
    let stage: Stage
    let table: LogTable
    let configuration: Configuration
    let dryRun: Bool
    let logger: Logger

    init(_ stage: Stage, configuration: Configuration, dryRun: Bool, logger: Logger) {
        self.stage = stage
        self.table = stage == .usageLogs ? .usageLogs : .reportUsageLogs
        self.configuration = configuration
        self.dryRun = dryRun
        self.logger = logger
    }

    func run(postgres: PostgresConnection, valkey: any ValkeyClient, report: inout StageReport) async throws {
        let store = WatermarkStore(connection: valkey, templates: configuration.keys)
        // The watermark is read while PostgreSQL tells the time.
        async let storedWatermark = store.read(table.name)
        let databaseNow = try await postgres.databaseNow()
        let cutoff = Timestamp.retentionCutoff(now: databaseNow, days: configuration.retentionDays)
        let watermark = try await storedWatermark
        var window = ReadWindow(watermark: watermark, overlap: configuration.overlap,
                                settle: configuration.settle, databaseNow: databaseNow, cutoff: cutoff)
        report.fact("watermark_before", watermark?.rfc3339 ?? "none")
        if configuration.commitGuard {
            window.until = try await guardedUpperBound(window.until, postgres: postgres, report: &report)
        }
        logger.info("copy starts", metadata: [
            "stage": "\(stage.rawValue)", "window": "\(window)", "dry_run": "\(dryRun)",
        ])
        let outcome = try await copy(window: window, cutoff: cutoff, postgres: postgres, valkey: valkey,
                                     store: store, watermark: watermark)
        report.fact("watermark_after", dryRun ? (watermark?.rfc3339 ?? "none") : (outcome.watermark?.rfc3339 ?? "none"))
        let source = try await KeysetPageReader(connection: postgres, table: table.name, columns: ["id"], pageSize: 1)
            .newestTimestampAndUntimestampedCount()
        if let newest = source.newest, let after = dryRun ? watermark : outcome.watermark {
            let lag = Double(max(0, newest.microsecondsSinceEpoch - after.microsecondsSinceEpoch)) / 1e6
            report.fact("lag_seconds", String(format: "%.3f", lag))
        }
        if outcome.interrupted { report.fact("stopped", "by \(Shutdown.stopReason ?? "signal"), after the batch in flight") }
        report.count("read", outcome.read)
        report.count(dryRun ? "would_write" : "written", outcome.written)
        report.count("skipped_too_old", outcome.skippedTooOld)
        report.count("skipped_null_timestamp", source.untimestamped)
        if outcome.skippedNullKey > 0 {
            report.count("skipped_null_key", outcome.skippedNullKey)
            report.fact("skipped_null_key_first_ids", outcome.firstSkippedNullKeyIDs.joined(separator: " "))
            logger.warning("rows not copied: their entry key names a NULL column", metadata: [
                "table": "\(table.name)", "rows": "\(outcome.skippedNullKey)",
                "first_ids": "\(outcome.firstSkippedNullKeyIDs.joined(separator: " "))",
                "template": "\(configuration.keys[table.entry].text)",
            ])
        }
        report.count("pages", outcome.pages)
        try outcome.failIfRowsWereUnencodable(table: table.name, report: &report)
    }

    /// The commit guard of SPEC §4: lowers `settleBound` to the start of the oldest open
    /// transaction of another session (at most `--max-hold`), and says how far and why.
    private func guardedUpperBound(_ settleBound: Timestamp, postgres: PostgresConnection,
                                   report: inout StageReport) async throws -> Timestamp {
        let observation = try await CommitGuard.observe(postgres)
        if !observation.seesAllSessions, CommitGuardNotices.first(.invisibleSessions) {
            logger.notice("commit guard: this role cannot see other roles' transactions (grant it pg_read_all_stats or pg_monitor); their late commits are covered by --overlap alone")
        }
        if observation.isStandby, CommitGuardNotices.first(.standby) {
            logger.warning("commit guard: the source is a standby; the primary's open transactions are not visible from here, so their late commits are covered by --overlap alone")
        }
        let decision = CommitGuard(maxHold: configuration.maxHold).decide(settleBound: settleBound, observation: observation)
        if decision.heldBack > .zero {
            var text = "held back \(decision.heldBack.secondsText)"
            if let holder = decision.holder { text += " by " + holder.description }
            else if observation.standbyReplayedUntil != nil { text += " to the standby's last replayed commit" }
            report.fact("commit_guard", text)
        }
        if decision.capped {
            logger.warning("commit guard: an open transaction is older than --max-hold; the copy proceeds past it, and rows it commits later below the watermark need a backfill", metadata: [
                "table": "\(table.name)", "holder": "\(decision.holder?.description ?? "?")",
                "max_hold": "\(configuration.maxHold.secondsText)",
            ])
        } else if let holder = decision.holder {
            logger.info("commit guard: copy held back behind an open transaction", metadata: [
                "table": "\(table.name)", "holder": "\(holder.description)", "held_back": "\(decision.heldBack.secondsText)",
            ])
        }
        return decision.until
    }

    /// `backfill`: re-copies [since, until) without reading or moving the watermark.
    func backfill(since: Timestamp, until: Timestamp?, postgres: PostgresConnection,
                  valkey: any ValkeyClient, report: inout StageReport) async throws {
        let databaseNow = try await postgres.databaseNow()
        let cutoff = Timestamp.retentionCutoff(now: databaseNow, days: configuration.retentionDays)
        let end = min(until ?? databaseNow.moved(by: .zero - configuration.settle), databaseNow.moved(by: .zero - configuration.settle))
        let window = ReadWindow(from: max(since, cutoff), until: end)
        if since < cutoff {
            logger.notice("backfill starts at the retention cutoff: older rows would expire at once",
                          metadata: ["since": "\(since.rfc3339)", "cutoff": "\(cutoff.rfc3339)"])
        }
        report.fact("range", "\(window)")
        let outcome = try await copy(window: window, cutoff: cutoff, postgres: postgres, valkey: valkey, store: nil, watermark: nil)
        report.count("read", outcome.read)
        report.count(dryRun ? "would_write" : "written", outcome.written)
        report.count("skipped_too_old", outcome.skippedTooOld)
        report.count("pages", outcome.pages)
        if outcome.interrupted { report.fact("stopped", "by \(Shutdown.stopReason ?? "signal"), after the batch in flight") }
        try outcome.failIfRowsWereUnencodable(table: table.name, report: &report)
    }

    struct Outcome {
        var read = 0, written = 0, skippedTooOld = 0, pages = 0
        /// Rows whose entry key names a NULL column: counted, with the first few ids kept for
        /// the report, so that a bad template cannot flood the log or memory.
        var skippedNullKey = 0
        var firstSkippedNullKeyIDs: [String] = []
        /// Rows that cannot be written (SPEC §11): skipped, counted and named by id; the copy
        /// goes on, and the stage fails (exit 1) once it is done.
        var skippedUnencodable = 0
        var firstUnencodable: [String] = []
        var watermark: Timestamp?
        var interrupted = false

        mutating func add(_ page: LogPageEncoder.PageOutcome) {
            pages += 1
            read += page.rows
            written += page.written
            skippedTooOld += page.skippedTooOld
            skippedNullKey += page.skippedNullKey.count
            firstSkippedNullKeyIDs += page.skippedNullKey.prefix(max(0, 5 - firstSkippedNullKeyIDs.count))
            skippedUnencodable += page.skippedUnencodable.count
            firstUnencodable += page.skippedUnencodable.prefix(max(0, 5 - firstUnencodable.count)).map { "\($0.id) (\($0.reason))" }
        }

        func failIfRowsWereUnencodable(table: String, report: inout StageReport) throws {
            guard skippedUnencodable > 0 else { return }
            report.count("skipped_unencodable", skippedUnencodable)
            throw StageFailure("\(skippedUnencodable) \(table) row(s) could not be written and were skipped; the rest was copied. First: "
                               + firstUnencodable.joined(separator: "; "))
        }
    }

    /// Copies `window`; also the core of `backfill`, which passes `store: nil` so that no
    /// watermark moves.
    func copy(window: ReadWindow, cutoff: Timestamp, postgres: PostgresConnection,
              valkey: any ValkeyClient, store: WatermarkStore?, watermark: Timestamp?) async throws -> Outcome {
        var outcome = Outcome(watermark: watermark)
        guard !window.isEmpty else { return outcome }
        let reader = KeysetPageReader(connection: postgres, table: table.name, columns: table.source.columns,
                                      pageSize: configuration.batchSize)
        let encoder = LogPageEncoder(table: table, templates: configuration.keys, retentionDays: configuration.retentionDays)
        var progress = ProgressLine(label: stage.rawValue, window: window,
                                    enabled: configuration.logFormat == .text && isatty(STDERR_FILENO) == 1)
        defer { progress.finish() }
        // One page is in flight while the next is read and encoded, so Valkey never waits for
        // this process. The watermark moves only once its page's replies are all in.
        var inFlight: InFlightPage?
        var watermarkWrite: Task<Void, any Error>?
        // Set once a page was refused or not acknowledged: no later page may move the watermark.
        var settleFailed = false
        func settle(_ page: InFlightPage) async throws {
            do {
                try await acknowledge(page)
            } catch {
                settleFailed = true
                throw error
            }
        }
        func acknowledge(_ page: InFlightPage) async throws {
            if let task = page.task {
                let result = try await task.value
                if let first = result.firstErrors.first {
                    throw CacheRefusal(server: valkey.serverDescription,
                                       what: "\(result.errorCount) of \(result.commandCount) commands of a \(table.name) page (the watermark stays at \(outcome.watermark?.rfc3339 ?? "none"))",
                                       reply: first.message)
                }
                // Acknowledged means replicated: a failover must not drop what the watermark passed.
                try await valkey.waitForReplication(required: configuration.waitReplicas)
            }
            guard let store, let last = WatermarkRule.next(current: outcome.watermark, acknowledgedPageEndingAt: page.lastTimestamp) else { return }
            // Writes stay in order; none waits for the next page.
            try await watermarkWrite?.value
            watermarkWrite = Task { try await store.write(table.name, last) }
            outcome.watermark = last
            logger.debug("page acknowledged", metadata: [
                "table": "\(table.name)", "commands": "\(page.commands)", "watermark": "\(last.rfc3339)",
            ])
        }
        do {
            for try await page in reader.pages(from: window.from, until: window.until) {
                var batch = CommandBatch(reservingCapacity: configuration.batchSize * 700)
                let pageOutcome = try encoder.encode(page, cutoff: cutoff, into: &batch)
                let unencodableBefore = outcome.skippedUnencodable
                outcome.add(pageOutcome)
                if unencodableBefore < 5 {
                    for skip in pageOutcome.skippedUnencodable.prefix(5 - unencodableBefore) {
                        logger.warning("row skipped: it cannot be written", metadata: [
                            "table": "\(table.name)", "id": "\(skip.id)", "reason": "\(skip.reason)",
                        ])
                    }
                }
                if let last = pageOutcome.lastTimestamp { progress.update(rows: outcome.read, at: last) }
                guard !dryRun else { continue }
                let batchToSend = batch
                let task: Task<PipelineOutcome, any Error>? = batch.isEmpty ? nil : Task { try await valkey.executeCountingErrors(batchToSend) }
                let previous = inFlight
                inFlight = InFlightPage(task: task, lastTimestamp: pageOutcome.lastTimestamp, commands: batch.count)
                if let previous { try await settle(previous) }
                if Shutdown.stopRequested {
                    logger.notice("asked to stop: finishing the batch in flight, then stopping (a second signal stops at once)",
                                  metadata: ["reason": "\(Shutdown.stopReason ?? "?")"])
                    // Finish the batch in flight and save its watermark: a clean place to stop.
                    outcome.interrupted = true
                    break
                }
            }
            if let last = inFlight {
                inFlight = nil
                try await settle(last)
            }
        } catch {
            // A failure reading PostgreSQL still lets the page in flight be acknowledged and
            // its watermark saved; and the watermark write is awaited on every path.
            if !settleFailed, let last = inFlight { try? await settle(last) }
            _ = try? await watermarkWrite?.value
            throw error
        }
        try await watermarkWrite?.value
        if outcome.interrupted {
            logger.notice("stopped after the batch in flight", metadata: [
                "table": "\(table.name)", "watermark": "\(outcome.watermark?.rfc3339 ?? "none")",
            ])
        }
        return outcome
    }
}

private let commitGuardNoticesGiven = Atomic<Int>(0)

/// Notices the commit guard gives once per run, however many copy stages run.
enum CommitGuardNotices {
    enum Kind: Int { case invisibleSessions = 1, standby = 2 }
    /// True the first time `kind` is asked for.
    static func first(_ kind: Kind) -> Bool {
        commitGuardNoticesGiven.bitwiseOr(kind.rawValue, ordering: .relaxed).oldValue & kind.rawValue == 0
    }
}

/// A page's pipeline on its way, and where the watermark may move once it is acknowledged.
struct InFlightPage {
    var task: Task<PipelineOutcome, any Error>?
    var lastTimestamp: Timestamp?
    var commands: Int
}

/// A stage that could not complete for a reason of its own (exit 1).
struct StageFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
