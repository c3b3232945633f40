import ArgumentParser
import Foundation
import Postgres
import Timestamps

/// sync-job: keeps a Valkey cache filled from PostgreSQL (SPEC §8).
@main
struct SyncJobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync-job",
        abstract: "Copies usage logs, report logs, API keys and parameters from PostgreSQL into Valkey.",
        discussion: """
            Every option has a variable (shown in parentheses); the option wins. Unset, the \
            PostgreSQL connection follows libpq's own PG* environment, service file and .pgpass.
            Exit codes: 0 success; 1 a stage failed (or verify found differences); 64 bad usage \
            or configuration (including credentials or certificates a server rejects); 75 \
            temporary failure (a server unreachable, another run holds the lock): retry on the \
            next schedule. SIGTERM/SIGINT finish the batch in flight, save the watermark, and \
            exit by the same signal; a second signal exits at once.
            """,
        version: BuildInfo.versionLine,
        subcommands: [RunCommand.self, NightlyCommand.self, BackfillCommand.self, StatusCommand.self, VerifyCommand.self,
                      ConfigCommand.self])
}

/// What `sync-job --version` prints: the release and the commit it was built from.
enum BuildInfo {
    /// The release, raised with each change of the command line or the cache's contents.
    static let version = "0.13.0"
    /// Set by the BuildInfo plugin: `SYNC_JOB_COMMIT` at build time, else git's HEAD.
    static let commit = buildCommit
    static var versionLine: String { "sync-job \(version) (commit \(commit))" }
}

extension Stage: ExpressibleByArgument {
    static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

/// A timestamp argument: RFC 3339 or a date (midnight UTC).
struct TimestampArgument: ExpressibleByArgument, Sendable {
    var value: Timestamp
    init?(argument: String) {
        guard let value = Timestamp(rfc3339: argument) else { return nil }
        self.value = value
    }
    static var defaultCompletionKind: CompletionKind { .default }
}

/// `sync-job run`: the chosen stages, in SPEC order.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run stages (default: params api-keys usage-logs report-logs), in SPEC order.")

    @Option(name: .customLong("stage"), parsing: .singleValue,
            help: ArgumentHelp("A stage to run; repeatable. Stages always run in the order of the list below.", valueName: "name"))
    var stages: [Stage] = []

    @Flag(name: .customLong("dry-run"), help: "Read and count, write nothing to Valkey.")
    var dryRun = false

    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let runner = try JobRunner.make(settings, command: "run", dryRun: dryRun)
        let chosen = stages.isEmpty ? Stage.defaultRun : Array(Set(stages)).sorted()
        let code = await runner.withConnections(locking: !dryRun) { postgres, valkey in
            await runner.runStages(chosen, postgres: postgres, valkey: valkey)
        }
        try JobRunner.finish(code)
    }
}

/// `sync-job nightly`: all six stages.
struct NightlyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nightly",
        abstract: "Run all six stages: params api-keys usage-logs report-logs retention search-index.")

    @Flag(name: .customLong("dry-run"), help: "Read and count, write nothing to Valkey.")
    var dryRun = false

    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let runner = try JobRunner.make(settings, command: "nightly", dryRun: dryRun)
        let code = await runner.withConnections(locking: !dryRun) { postgres, valkey in
            await runner.runStages(Stage.allCases, postgres: postgres, valkey: valkey)
        }
        try JobRunner.finish(code)
    }
}

/// `sync-job backfill`: re-copies a time range without touching the watermark.
struct BackfillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backfill",
        abstract: "Re-copy usage-logs or report-logs rows of a time range; the watermark never moves.",
        discussion: "Rows older than the retention cutoff are not written (they would expire at once).")

    @Argument(help: ArgumentHelp("usage-logs or report-logs", valueName: "stage"))
    var stage: Stage

    @Option(help: ArgumentHelp("First instant to copy (RFC 3339, or a date: 2026-11-01).", valueName: "T"))
    var since: TimestampArgument

    @Option(help: ArgumentHelp("Copy up to this instant, excluded (default: the database clock less the settle delay).", valueName: "T"))
    var until: TimestampArgument?

    @Flag(name: .customLong("dry-run"), help: "Read and count, write nothing to Valkey.")
    var dryRun = false

    @OptionGroup var settings: SettingsOptions

    func validate() throws {
        guard stage == .usageLogs || stage == .reportLogs else {
            throw ValidationError("backfill copies usage-logs or report-logs, not \(stage.rawValue)")
        }
        if let until, until.value <= since.value {
            throw ValidationError("--until must be later than --since")
        }
    }

    func run() async throws {
        let runner = try JobRunner.make(settings, command: "backfill", dryRun: dryRun)
        let code = await runner.withConnections(locking: !dryRun) { postgres, valkey in
            await runner.runStages([stage], postgres: postgres, valkey: valkey) { stage, report in
                try await LogCopyStage(stage, configuration: runner.configuration, dryRun: dryRun, logger: runner.logger)
                    .backfill(since: since.value, until: until?.value, postgres: postgres, valkey: valkey, report: &report)
            }
        }
        try JobRunner.finish(code)
    }
}

/// `sync-job status`: watermarks, lag behind the newest row, last run.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Print each watermark verbatim, its lag behind the newest PostgreSQL row, and the last run.")

    @Flag(help: "Print one JSON object, for machines.")
    var json = false

    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let runner = try JobRunner.make(settings, command: "status")
        let code = await runner.withConnections(locking: false, recording: false) { postgres, valkey in
            do {
                try await StatusReport(configuration: runner.configuration).print(json: json, postgres: postgres, valkey: valkey)
                return 0
            } catch {
                return runner.fail(error, context: "status")
            }
        }
        try JobRunner.finish(code)
    }
}

/// `sync-job verify`: per-day counts, PostgreSQL against the Valkey indexes.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Compare per-day row counts in PostgreSQL with the Valkey indexes, from the retention cutoff (or --since) to the watermark.",
        discussion: "Exit 1 when a day differs (after --repair: when a day still differs).")

    @Option(help: ArgumentHelp("Start here instead of the retention cutoff (RFC 3339 or a date).", valueName: "T"))
    var since: TimestampArgument?

    @Flag(help: "Re-copy the days that differ and remove their entries that PostgreSQL no longer has.")
    var repair = false

    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let runner = try JobRunner.make(settings, command: repair ? "verify --repair" : "verify")
        let code = await runner.withConnections(locking: repair) { postgres, valkey in
            var summary = RunSummary(command: runner.command, dryRun: false)
            var code: Int32
            do {
                code = try await Verification(configuration: runner.configuration, logger: runner.logger)
                    .run(since: since?.value, repair: repair, postgres: postgres, valkey: valkey)
            } catch {
                code = runner.fail(error, context: "verify")
                summary.error = "\(error)"
            }
            if Shutdown.deadlineReached, code == 0 { code = 75 }
            summary.finish(exitCode: code, interruptedBy: Shutdown.requested)
            await runner.record(summary, valkey: valkey)
            return code
        }
        try JobRunner.finish(code)
    }
}
