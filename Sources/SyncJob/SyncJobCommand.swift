import ArgumentParser
import Foundation

/// sync-job: keeps a Valkey cache filled from PostgreSQL (SPEC §8).
@main
struct SyncJobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync-job",
        abstract: "Copies usage logs, report logs, API keys and parameters from PostgreSQL into Valkey.",
        discussion: """
            Exit codes: 0 success; 1 a stage failed; 64 bad usage or configuration (including \
            credentials or certificates a server rejects); 75 temporary failure (a server \
            unreachable, another run holds the lock): retry on the next schedule.
            """,
        subcommands: [RunCommand.self, NightlyCommand.self])
}

extension Stage: ExpressibleByArgument {
    static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

/// `sync-job run`: the chosen stages, in SPEC order.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run stages (default: params api-keys usage-logs report-logs).")

    @Option(name: .customLong("stage"), parsing: .singleValue,
            help: ArgumentHelp("A stage to run; repeatable: params, api-keys, usage-logs, report-logs, retention, search-index.", valueName: "name"))
    var stages: [Stage] = []

    @Flag(name: .customLong("dry-run"), help: "Read and count, write nothing to Valkey.")
    var dryRun = false

    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let chosen = stages.isEmpty ? Stage.defaultRun : Array(Set(stages)).sorted()
        try await JobRunner.start(settings: settings, stages: chosen, dryRun: dryRun)
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
        try await JobRunner.start(settings: settings, stages: Stage.allCases, dryRun: dryRun)
    }
}
