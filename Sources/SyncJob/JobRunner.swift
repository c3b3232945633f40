import ArgumentParser
import Foundation
import Logging
import Postgres
import SearchIndex
import Timestamps
import Valkey
import Writers

/// One invocation: resolves the configuration, connects, takes the run lock when the work
/// writes, runs it, records the summary, and turns the outcome into the exit code of SPEC §8.
struct JobRunner: Sendable {
    let configuration: Configuration
    let dryRun: Bool
    let logger: Logger
    let command: String

    /// Resolves settings (exit 64 on a bad one) and sets up logging and signal handling.
    static func make(_ settings: SettingsOptions, command: String, dryRun: Bool = false) throws -> JobRunner {
        StandardStreams.ignoreBrokenPipes()
        let configuration: Configuration
        do {
            configuration = try Configuration(settings)
        } catch let error as ConfigurationError {
            StandardStreams.writeError("sync-job: \(error)\n")
            // Even this ending is recorded where the metrics file can be named.
            if let path = settings.metricsFile ?? ProcessInfo.processInfo.environment["SYNC_METRICS_FILE"], !path.isEmpty {
                var summary = RunSummary(command: command, dryRun: dryRun)
                summary.error = "\(error)"
                summary.finish(exitCode: 64, interruptedBy: nil)
                try? MetricsFile(path: path).write(summary)
            }
            throw ExitCode(64)
        }
        LogLineHandler.bootstrap(level: configuration.logLevel, format: configuration.logFormat)
        let logger = Logger(label: "sync-job")
        Shutdown.install()
        if let limit = configuration.maxRuntime { Shutdown.stop(after: limit) }
        return JobRunner(configuration: configuration, dryRun: dryRun, logger: logger, command: command)
    }

    /// Connects to both servers (and takes the run lock when `locking`), runs `work`, closes.
    /// Returns the exit code; `work` returns its own. When `recording`, an ending before
    /// `work` (a server unreachable, credentials rejected, the lock busy) is recorded like a
    /// run's: in the metrics file, and in the run summary when Valkey is reachable (SPEC §10).
    func withConnections(locking: Bool, recording: Bool = true,
                         _ work: (PostgresConnection, any ValkeyClient) async -> Int32) async -> Int32 {
        // Both servers are reached at once; PostgreSQL's outcome is looked at first.
        async let connectingValkey = connectValkey()
        let postgres: PostgresConnection
        do {
            postgres = try await PostgresConnection.connect(configuration.postgresConninfo, password: configuration.postgresPassword,
                                                            timeout: configuration.postgresTimeout)
        } catch {
            let code = fail(error, context: "connecting to PostgreSQL")
            return await endEarlyClosing(await connectingValkey, code, "connecting to PostgreSQL: \(error)", recording: recording)
        }
        defer { postgres.close() }
        if locking {
            do {
                guard try await RunLock.tryAcquire(postgres, prefix: configuration.keys.prefix) else {
                    let holder = await RunLock.holder(postgres, prefix: configuration.keys.prefix)
                    let message = "another sync-job run holds the lock" + (holder.map { " (PostgreSQL backend \($0))" } ?? "")
                        + "; this run stops, the next scheduled one will retry"
                    logger.warning("\(message)")
                    StandardStreams.writeError("sync-job: \(message)\n")
                    return await endEarlyClosing(await connectingValkey, 75, message, recording: recording)
                }
            } catch {
                let code = fail(error, context: "taking the run lock")
                return await endEarlyClosing(await connectingValkey, code, "taking the run lock: \(error)", recording: recording)
            }
        }
        let valkey: any ValkeyClient
        do {
            valkey = try await connectingValkey.get()
        } catch {
            return await endEarly(fail(error, context: "connecting to Valkey"), "connecting to Valkey: \(error)", recording: recording, tryValkey: false)
        }
        // A server still loading its data set answers LOADING for a few seconds: wait for it.
        for _ in 0..<40 {
            do {
                try await valkey.ping()
                break
            } catch let error as ValkeyError where error.isTemporaryReply {
                logger.notice("Valkey is not ready yet; waiting", metadata: ["reply": "\(error.message)"])
                try? await Task.sleep(for: .milliseconds(500))
            } catch {
                let code = fail(error, context: "talking to Valkey")
                return await endEarlyClosing(.success(valkey), code, "talking to Valkey: \(error)", recording: recording)
            }
        }
        let code = await work(postgres, valkey)
        await valkey.close()
        return code
    }

    private func connectValkey() async -> Result<any ValkeyClient, any Error> {
        do {
            return .success(try await ValkeyClients.connect(configuration.valkey, cluster: configuration.valkeyCluster ? true : nil))
        } catch {
            return .failure(error)
        }
    }

    /// `endEarly` on the Valkey connection made meanwhile, if any, which is closed after.
    private func endEarlyClosing(_ connected: Result<any ValkeyClient, any Error>, _ code: Int32, _ error: String,
                                 recording: Bool) async -> Int32 {
        guard case .success(let valkey) = connected else {
            return await endEarly(code, error, recording: recording, tryValkey: false)
        }
        let ended = await endEarly(code, error, recording: recording, valkey: valkey)
        await valkey.close()
        return ended
    }

    /// Records a run that ended before its stages, with `code` and `error`. The summary goes
    /// to `valkey`, or to a connection opened for it (bounded by the Valkey timeout) unless
    /// Valkey is what failed.
    private func endEarly(_ code: Int32, _ error: String, recording: Bool, valkey: (any ValkeyClient)? = nil,
                          tryValkey: Bool = true) async -> Int32 {
        guard recording else { return code }
        var summary = RunSummary(command: command, dryRun: dryRun)
        summary.error = error
        summary.finish(exitCode: code, interruptedBy: Shutdown.requested)
        if let valkey {
            await record(summary, valkey: valkey)
        } else if tryValkey, !dryRun,
                  let opened = try? await ValkeyClients.connect(configuration.valkey, cluster: configuration.valkeyCluster ? true : nil) {
            await record(summary, valkey: opened)
            await opened.close()
        } else {
            await record(summary, valkey: nil)
        }
        return code
    }

    /// Runs the stages in order and records the run. A server that fails ends the run; a
    /// stage's own failure (exit 1) lets the others run.
    func runStages(_ stages: [Stage], postgres: PostgresConnection, valkey: any ValkeyClient,
                   body: ((Stage, inout StageReport) async throws -> Void)? = nil) async -> Int32 {
        var summary = RunSummary(command: command, dryRun: dryRun)
        var exitCode: Int32 = 0
        for stage in stages {
            if Shutdown.stopRequested { break }
            var report = StageReport(stage: stage)
            let started = ContinuousClock.now
            do {
                if let body {
                    try await body(stage, &report)
                } else {
                    try await runStage(stage, postgres: postgres, valkey: valkey, report: &report)
                }
            } catch {
                let code = ExitCodes.code(for: error)
                report.failure = "\(error)\(ExitCodes.hint(for: error))"
                report.seconds = (ContinuousClock.now - started).seconds
                print(report.summaryLine)
                logger.error("stage failed", metadata: ["stage": "\(stage.rawValue)", "error": "\(error)", "exit_code": "\(code)"])
                summary.stages.append(report)
                exitCode = code
                if code != 1 { break }
                continue
            }
            report.seconds = (ContinuousClock.now - started).seconds
            print(report.summaryLine)
            logger.info("stage done", metadata: report.metadata)
            summary.stages.append(report)
        }
        if Shutdown.deadlineReached, exitCode == 0 {
            logger.warning("the run reached --max-runtime and stopped at a safe point; the next run continues from there")
            exitCode = 75
        }
        summary.finish(exitCode: exitCode, interruptedBy: Shutdown.requested)
        await record(summary, valkey: valkey)
        return exitCode
    }

    private func runStage(_ stage: Stage, postgres: PostgresConnection, valkey: any ValkeyClient,
                          report: inout StageReport) async throws {
        switch stage {
        case .usageLogs, .reportLogs:
            try await LogCopyStage(stage, configuration: configuration, dryRun: dryRun, logger: logger)
                .run(postgres: postgres, valkey: valkey, report: &report)
        case .params:
            try await ParamsStage(configuration: configuration, dryRun: dryRun)
                .run(postgres: postgres, valkey: valkey, report: &report)
        case .apiKeys:
            try await APIKeysStage(configuration: configuration, dryRun: dryRun, logger: logger)
                .run(postgres: postgres, valkey: valkey, report: &report)
        case .retention:
            try await RetentionStage(configuration: configuration, dryRun: dryRun, logger: logger)
                .run(postgres: postgres, valkey: valkey, report: &report)
        case .searchIndex:
            try await SearchIndexStage(configuration: configuration, dryRun: dryRun, logger: logger)
                .run(valkey: valkey, report: &report)
        }
    }

    /// Writes the summary to `sync:last_run` and `sync:last_run:COMMAND` (not on a dry run)
    /// and the metrics file.
    func record(_ summary: RunSummary, valkey: (any ValkeyClient)?) async {
        if !dryRun, let valkey {
            let batch = RunRecordWriter(templates: configuration.keys).record(summary.json, command: summary.commandKey)
            do {
                try await valkey.sendCounting(batch, doing: "the run summary")
            } catch {
                logger.warning("could not write the run summary", metadata: ["error": "\(error)"])
            }
        }
        if let path = configuration.metricsFile {
            do {
                try MetricsFile(path: path).write(summary)
            } catch {
                logger.warning("could not write the metrics file", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
    }

    func fail(_ error: any Error, context: String) -> Int32 {
        let code = ExitCodes.code(for: error)
        logger.error("\(context) failed", metadata: ["error": "\(error)", "exit_code": "\(code)"])
        StandardStreams.writeError("sync-job: \(context): \(error)\(ExitCodes.hint(for: error))\n")
        return code
    }

    /// Ends the invocation: by the signal that stopped it, else with `code` (75 when
    /// `--max-runtime` stopped a run that had not failed otherwise). Stdout is flushed first.
    static func finish(_ code: Int32) throws {
        fflush(nil)
        if let signal = Shutdown.requested { Shutdown.exit(by: signal) }
        let final = Shutdown.deadlineReached && code == 0 ? 75 : code
        if final != 0 { throw ExitCode(final) }
    }
}
