import ArgumentParser
import Foundation
import Logging
import Postgres
import Valkey

/// One run: resolves the configuration, connects, runs the stages in order, prints their
/// summaries, and turns the outcome into the exit code of SPEC §8.
struct JobRunner {
    let configuration: Configuration
    let dryRun: Bool
    let logger: Logger

    static func start(settings: SettingsOptions, stages: [Stage], dryRun: Bool) async throws {
        let configuration: Configuration
        do {
            configuration = try Configuration(settings)
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data("sync-job: \(error)\n".utf8))
            throw ExitCode(64)
        }
        LogLineHandler.bootstrap(level: configuration.logLevel, format: configuration.logFormat)
        let runner = JobRunner(configuration: configuration, dryRun: dryRun, logger: Logger(label: "sync-job"))
        let code = await runner.run(stages)
        if code != 0 { throw ExitCode(code) }
    }

    /// Runs the stages; returns the exit code.
    func run(_ stages: [Stage]) async -> Int32 {
        let postgres: PostgresConnection
        let valkey: ValkeyConnection
        do {
            postgres = try await PostgresConnection.connect(configuration.postgresConninfo)
        } catch {
            return fail(error, context: "connecting to PostgreSQL")
        }
        defer { postgres.close() }
        do {
            valkey = try await ValkeyConnection.connect(configuration.valkey)
        } catch {
            return fail(error, context: "connecting to Valkey")
        }
        var exitCode: Int32 = 0
        for stage in stages {
            var report = StageReport(stage: stage)
            let started = ContinuousClock.now
            do {
                try await runStage(stage, postgres: postgres, valkey: valkey, report: &report)
            } catch {
                let code = Self.exitCode(for: error)
                report.failure = "\(error)"
                report.seconds = (ContinuousClock.now - started).seconds
                print(report.summaryLine)
                logger.error("stage failed", metadata: ["stage": "\(stage.rawValue)", "error": "\(error)", "exit_code": "\(code)"])
                // A server that went away or refused us ends the run; a stage's own failure does not.
                if code != 1 {
                    await valkey.close()
                    return code
                }
                exitCode = 1
                continue
            }
            report.seconds = (ContinuousClock.now - started).seconds
            print(report.summaryLine)
            logger.info("stage done", metadata: ["stage": "\(stage.rawValue)", "seconds": "\(report.seconds)"])
        }
        await valkey.close()
        return exitCode
    }

    private func runStage(_ stage: Stage, postgres: PostgresConnection, valkey: ValkeyConnection,
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
            throw StageFailure("the \(stage.rawValue) stage is not built yet")
        }
    }

    private func fail(_ error: any Error, context: String) -> Int32 {
        let code = Self.exitCode(for: error)
        logger.error("\(context) failed", metadata: ["error": "\(error)", "exit_code": "\(code)"])
        FileHandle.standardError.write(Data("sync-job: \(context): \(error)\n".utf8))
        return code
    }

    /// SPEC §8: 64 configuration or credentials, 75 temporary, 1 a stage failed.
    static func exitCode(for error: any Error) -> Int32 {
        switch error {
        case let error as ValkeyError:
            return error.kind.exitCode
        case let error as PostgresError:
            switch error.kind {
            case .authenticationFailed: return 64
            case .connectionFailed, .connectionLost: return 75
            case .query, .decoding: return 1
            }
        case is ConfigurationError:
            return 64
        default:
            return 1
        }
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
