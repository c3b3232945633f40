import Foundation
import Logging
import Timestamps
import Valkey
import Writers

/// Every setting of one run, resolved from flags and variables and validated at start.
struct Configuration: Sendable {
    var postgresConninfo: String?
    var valkey: ValkeyConfiguration
    var valkeyCluster: Bool
    var batchSize: Int
    var retentionDays: Int
    var overlap: Duration
    var settle: Duration
    var docs: String?
    var keys: KeyTemplates
    var allowEmptyParams: Bool
    var logLevel: Logger.Level
    var logFormat: LogFormat
    var metricsFile: String?
    var valkeyTimeout: Duration
    var postgresTimeout: Duration
    var maxRuntime: Duration?
    /// nil: 1 where a primary has replicas, else 0 (SPEC §10).
    var waitReplicas: Int?
    var maxHold: Duration
    var commitGuard: Bool

    enum LogFormat: String, Sendable { case json, text }

    /// Resolves flags over variables; a bad value throws a `ConfigurationError` naming the setting.
    init(_ options: SettingsOptions, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        func setting(_ flag: String?, _ variable: String, flagName: String) -> (value: String, source: String)? {
            if let flag { return (flag, "--" + flagName) }
            if let value = environment[variable], !value.isEmpty { return (value, variable) }
            return nil
        }
        func integer(_ flag: String?, _ variable: String, flagName: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
            guard let (text, name) = setting(flag, variable, flagName: flagName) else { return value }
            guard let number = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(number) else {
                throw ConfigurationError(setting: name, problem: "\"\(text)\" is not a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        func optionalDuration(_ flag: String?, _ variable: String, flagName: String, range: ClosedRange<Duration>) throws -> Duration? {
            guard let (text, name) = setting(flag, variable, flagName: flagName) else { return nil }
            guard let parsed = DurationText.parse(text) else {
                throw ConfigurationError(setting: name, problem: "\"\(text)\" is not a duration like 5m, 30s, 1h or 250ms")
            }
            guard range.contains(parsed) else {
                throw ConfigurationError(setting: name, problem: "\"\(text)\" is outside \(DurationText.format(range.lowerBound)) to \(DurationText.format(range.upperBound))")
            }
            return parsed
        }
        func duration(_ flag: String?, _ variable: String, flagName: String, default value: Duration, range: ClosedRange<Duration>) throws -> Duration {
            try optionalDuration(flag, variable, flagName: flagName, range: range) ?? value
        }

        postgresConninfo = setting(options.postgresURL, "DATABASE_URL", flagName: "postgres-url")?.value

        let valkeyURL = setting(options.valkeyURL, "VALKEY_URL", flagName: "valkey-url")?.value ?? "valkey://127.0.0.1:6379"
        let caFile = setting(options.valkeyCAFile, "SYNC_VALKEY_CA_FILE", flagName: "valkey-ca-file")?.value
        let certFile = setting(options.valkeyCertFile, "SYNC_VALKEY_CERT_FILE", flagName: "valkey-cert-file")?.value
        let keyFile = setting(options.valkeyKeyFile, "SYNC_VALKEY_KEY_FILE", flagName: "valkey-key-file")?.value
        let serverName = setting(options.valkeyTLSServerName, "SYNC_VALKEY_TLS_SERVER_NAME", flagName: "valkey-tls-server-name")?.value
        do {
            valkey = try ValkeyConfiguration(url: valkeyURL, caFile: caFile, certFile: certFile, keyFile: keyFile, tlsServerName: serverName)
        } catch let error as ValkeyError {
            throw ConfigurationError(setting: options.valkeyURL != nil ? "--valkey-url" : "VALKEY_URL", problem: error.message)
        }
        valkey.clientName = "sync-job"
        if options.valkeyCluster {
            valkeyCluster = true
        } else if let text = environment["SYNC_VALKEY_CLUSTER"], !text.isEmpty {
            guard let value = Self.boolean(text) else {
                throw ConfigurationError(setting: "SYNC_VALKEY_CLUSTER", problem: "\"\(text)\" is not 1 or 0")
            }
            valkeyCluster = value
        } else {
            valkeyCluster = false
        }

        batchSize = try integer(options.batchSize, "SYNC_BATCH_SIZE", flagName: "batch-size", default: 2000, range: 1...100_000)
        retentionDays = try integer(options.retentionDays, "SYNC_RETENTION_DAYS", flagName: "retention-days", default: 93, range: 1...36_500)
        overlap = try duration(options.overlap, "SYNC_OVERLAP", flagName: "overlap", default: .seconds(300), range: .zero ... .seconds(7 * 86_400))
        settle = try duration(options.settle, "SYNC_SETTLE", flagName: "settle", default: .seconds(5), range: .zero ... .seconds(86_400))
        // A timeout under 100ms would fail healthy servers; one over an hour is no timeout.
        valkeyTimeout = try duration(options.valkeyTimeout, "SYNC_VALKEY_TIMEOUT", flagName: "valkey-timeout", default: .seconds(30),
                                     range: .milliseconds(100) ... .seconds(3600))
        postgresTimeout = try duration(options.postgresTimeout, "SYNC_POSTGRES_TIMEOUT", flagName: "postgres-timeout", default: .seconds(60),
                                       range: .milliseconds(100) ... .seconds(3600))
        maxRuntime = try optionalDuration(options.maxRuntime, "SYNC_MAX_RUNTIME", flagName: "max-runtime", range: .milliseconds(1) ... .seconds(7 * 86_400))
        maxHold = try duration(options.maxHold, "SYNC_MAX_HOLD", flagName: "max-hold", default: .seconds(900), range: .zero ... .seconds(86_400))
        if setting(options.waitReplicas, "SYNC_WAIT_REPLICAS", flagName: "wait-replicas") != nil {
            waitReplicas = try integer(options.waitReplicas, "SYNC_WAIT_REPLICAS", flagName: "wait-replicas", default: 0, range: 0...16)
        } else {
            waitReplicas = nil
        }
        if options.noCommitGuard {
            commitGuard = false
        } else if let text = environment["SYNC_COMMIT_GUARD"], !text.isEmpty {
            guard let value = Self.boolean(text) else {
                throw ConfigurationError(setting: "SYNC_COMMIT_GUARD", problem: "\"\(text)\" is not 1 or 0")
            }
            commitGuard = value
        } else {
            commitGuard = true
        }
        valkey.connectTimeout = valkeyTimeout
        valkey.commandTimeout = valkeyTimeout
        docs = setting(options.docs, "SYNC_DOCS", flagName: "docs")?.value

        let prefix = options.keyPrefix ?? environment["SYNC_KEY_PREFIX"] ?? ""
        var templateItems = options.keyTemplates
        var templateSource = "--key-template"
        if templateItems.isEmpty, let text = environment["SYNC_KEY_TEMPLATES"], !text.isEmpty {
            templateItems = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            templateSource = "SYNC_KEY_TEMPLATES"
        }
        do {
            keys = try KeyTemplates(prefix: prefix, overrides: try KeyTemplates.parseOverrides(templateItems))
        } catch {
            throw ConfigurationError(setting: templateSource, problem: error.description)
        }
        allowEmptyParams = options.allowEmptyParams

        if let (text, name) = setting(options.logLevel, "SYNC_LOG_LEVEL", flagName: "log-level") {
            guard let level = Logger.Level(rawValue: text.lowercased()) else {
                throw ConfigurationError(setting: name, problem: "\"\(text)\" is not one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = level
        } else {
            logLevel = .info
        }
        if let (text, name) = setting(options.logFormat, "SYNC_LOG_FORMAT", flagName: "log-format") {
            guard let format = LogFormat(rawValue: text.lowercased()) else {
                throw ConfigurationError(setting: name, problem: "\"\(text)\" is not json or text")
            }
            logFormat = format
        } else {
            logFormat = isatty(STDERR_FILENO) == 1 ? .text : .json
        }
        metricsFile = setting(options.metricsFile, "SYNC_METRICS_FILE", flagName: "metrics-file")?.value
    }
}

extension Configuration {
    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: return nil
        }
    }
}

/// A setting with a bad value: exit 64, naming the flag or variable.
struct ConfigurationError: Error, CustomStringConvertible {
    var setting: String
    var problem: String
    var description: String { "bad setting \(setting): \(problem)" }
}

