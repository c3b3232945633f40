import Foundation
import Logging
import Postgres
import Timestamps
import Valkey
import Writers

/// Every setting of one run, resolved from flags and variables and validated at start.
struct Configuration: Sendable {
    var postgresConninfo: String?
    /// The first line of `--postgres-password-file`: never shown, wins over the string's.
    var postgresPassword: String?
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
    /// Where each set value came from, by flag name ("batch-size"): the flag ("--batch-size")
    /// or the variable ("SYNC_BATCH_SIZE"). A flag not listed has its built-in default.
    var origins: [String: String]

    enum LogFormat: String, Sendable { case json, text }

    /// Resolves flags over variables; bad values throw one `ConfigurationError` listing every
    /// setting at fault, each named as the operator set it (flag or variable).
    init(_ options: SettingsOptions, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        var origins: [String: String] = [:]
        var problems: [ConfigurationError.Problem] = []
        func setting(_ flag: String?, _ variable: String, flagName: String) -> (value: String, source: String)? {
            if let flag {
                origins[flagName] = "--" + flagName
                return (flag, "--" + flagName)
            }
            if let value = environment[variable], !value.isEmpty {
                origins[flagName] = variable
                return (value, variable)
            }
            return nil
        }
        /// The value `body` resolves, or `fallback` with the problem noted, so that every
        /// problem is found in one pass.
        func checked<T>(_ fallback: T, _ body: () throws -> T) -> T {
            do {
                return try body()
            } catch let error as ConfigurationError {
                problems += error.problems
            } catch {
                problems.append(.init(setting: "?", problem: "\(error)"))
            }
            return fallback
        }
        func integer(_ flag: String?, _ variable: String, flagName: String, default value: Int, range: ClosedRange<Int>) -> Int {
            checked(value) {
                guard let (text, name) = setting(flag, variable, flagName: flagName) else { return value }
                guard let number = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(number) else {
                    throw ConfigurationError(setting: name, problem: "\"\(text)\" is not a whole number from \(range.lowerBound) to \(range.upperBound)")
                }
                return number
            }
        }
        func optionalDuration(_ flag: String?, _ variable: String, flagName: String, range: ClosedRange<Duration>) -> Duration? {
            checked(nil) {
                guard let (text, name) = setting(flag, variable, flagName: flagName) else { return nil }
                guard let parsed = DurationText.parse(text) else {
                    throw ConfigurationError(setting: name, problem: "\"\(text)\" is not a duration like 5m, 30s, 1h or 250ms")
                }
                guard range.contains(parsed) else {
                    throw ConfigurationError(setting: name, problem: "\"\(text)\" is outside \(DurationText.format(range.lowerBound)) to \(DurationText.format(range.upperBound))")
                }
                return parsed
            }
        }
        func duration(_ flag: String?, _ variable: String, flagName: String, default value: Duration, range: ClosedRange<Duration>) -> Duration {
            optionalDuration(flag, variable, flagName: flagName, range: range) ?? value
        }
        func boolean(_ flagSet: Bool, flag: String, flagValue: Bool, _ variable: String, flagName: String, default value: Bool) -> Bool {
            if flagSet {
                origins[flagName] = flag
                return flagValue
            }
            guard let text = environment[variable], !text.isEmpty else { return value }
            origins[flagName] = variable
            return checked(value) {
                guard let parsed = Self.boolean(text) else {
                    throw ConfigurationError(setting: variable, problem: "\"\(text)\" is not 1 or 0")
                }
                return parsed
            }
        }

        let conninfo = setting(options.postgresURL, "DATABASE_URL", flagName: "postgres-url")
        postgresConninfo = checked(nil) {
            guard let conninfo else { return nil }
            // Checked here, so that a typo is 64 at once and not 75 on every scheduled retry.
            if let problem = PostgresConnection.parseProblem(in: conninfo.value) {
                throw ConfigurationError(setting: conninfo.source, problem: problem)
            }
            return conninfo.value
        }
        func secret(_ flag: String?, _ variable: String, flagName: String) -> String? {
            checked(nil) {
                guard let (path, name) = setting(flag, variable, flagName: flagName) else { return nil }
                return try PasswordFile.firstLine(path, setting: name)
            }
        }
        postgresPassword = secret(options.postgresPasswordFile, "SYNC_POSTGRES_PASSWORD_FILE", flagName: "postgres-password-file")
        let valkeyPassword = secret(options.valkeyPasswordFile, "SYNC_VALKEY_PASSWORD_FILE", flagName: "valkey-password-file")

        let valkeyURL = setting(options.valkeyURL, "VALKEY_URL", flagName: "valkey-url")?.value ?? "valkey://127.0.0.1:6379"
        let caFile = setting(options.valkeyCAFile, "SYNC_VALKEY_CA_FILE", flagName: "valkey-ca-file")?.value
        let certFile = setting(options.valkeyCertFile, "SYNC_VALKEY_CERT_FILE", flagName: "valkey-cert-file")?.value
        let keyFile = setting(options.valkeyKeyFile, "SYNC_VALKEY_KEY_FILE", flagName: "valkey-key-file")?.value
        let serverName = setting(options.valkeyTLSServerName, "SYNC_VALKEY_TLS_SERVER_NAME", flagName: "valkey-tls-server-name")?.value
        // The fallback stands in only while the other settings are checked; it is never used.
        valkey = checked(try! ValkeyConfiguration(url: "valkey://127.0.0.1:6379")) {
            do {
                return try ValkeyConfiguration(url: valkeyURL, caFile: caFile, certFile: certFile, keyFile: keyFile, tlsServerName: serverName)
            } catch let error as ValkeyError {
                throw ConfigurationError(setting: origins["valkey-url"] ?? "--valkey-url", problem: error.message)
            }
        }
        valkey.clientName = "sync-job"
        if let valkeyPassword { valkey.password = valkeyPassword }
        valkeyCluster = boolean(options.valkeyCluster, flag: "--valkey-cluster", flagValue: true, "SYNC_VALKEY_CLUSTER", flagName: "valkey-cluster", default: false)

        batchSize = integer(options.batchSize, "SYNC_BATCH_SIZE", flagName: "batch-size", default: 2000, range: 1...100_000)
        retentionDays = integer(options.retentionDays, "SYNC_RETENTION_DAYS", flagName: "retention-days", default: 93, range: 1...36_500)
        overlap = duration(options.overlap, "SYNC_OVERLAP", flagName: "overlap", default: .seconds(300), range: .zero ... .seconds(7 * 86_400))
        settle = duration(options.settle, "SYNC_SETTLE", flagName: "settle", default: .seconds(5), range: .zero ... .seconds(86_400))
        // A timeout under 100ms would fail healthy servers; one over an hour is no timeout.
        valkeyTimeout = duration(options.valkeyTimeout, "SYNC_VALKEY_TIMEOUT", flagName: "valkey-timeout", default: .seconds(30),
                                 range: .milliseconds(100) ... .seconds(3600))
        postgresTimeout = duration(options.postgresTimeout, "SYNC_POSTGRES_TIMEOUT", flagName: "postgres-timeout", default: .seconds(60),
                                   range: .milliseconds(100) ... .seconds(3600))
        maxRuntime = optionalDuration(options.maxRuntime, "SYNC_MAX_RUNTIME", flagName: "max-runtime", range: .milliseconds(1) ... .seconds(7 * 86_400))
        maxHold = duration(options.maxHold, "SYNC_MAX_HOLD", flagName: "max-hold", default: .seconds(900), range: .zero ... .seconds(86_400))
        if options.waitReplicas != nil || !(environment["SYNC_WAIT_REPLICAS"] ?? "").isEmpty {
            waitReplicas = integer(options.waitReplicas, "SYNC_WAIT_REPLICAS", flagName: "wait-replicas", default: 0, range: 0...16)
        } else {
            waitReplicas = nil
        }
        commitGuard = boolean(options.noCommitGuard, flag: "--no-commit-guard", flagValue: false, "SYNC_COMMIT_GUARD", flagName: "commit-guard", default: true)
        valkey.connectTimeout = valkeyTimeout
        valkey.commandTimeout = valkeyTimeout
        docs = checked(nil) {
            guard let (location, name) = setting(options.docs, "SYNC_DOCS", flagName: "docs") else { return nil }
            guard DocsLocationText.isReadable(location) else {
                throw ConfigurationError(setting: name, problem: "is not an http(s) URL or a directory path; the value is withheld, as it may hold a password")
            }
            return location
        }

        let prefix = setting(options.keyPrefix, "SYNC_KEY_PREFIX", flagName: "key-prefix")?.value ?? ""
        var templateItems = options.keyTemplates
        var templateSource = "--key-template"
        if templateItems.isEmpty, let text = environment["SYNC_KEY_TEMPLATES"], !text.isEmpty {
            templateItems = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            templateSource = "SYNC_KEY_TEMPLATES"
        }
        if !templateItems.isEmpty { origins["key-template"] = templateSource }
        // The defaults of SPEC §3 are valid by construction.
        keys = checked(try! KeyTemplates(prefix: prefix)) {
            do {
                return try KeyTemplates(prefix: prefix, overrides: try KeyTemplates.parseOverrides(templateItems))
            } catch {
                throw ConfigurationError(setting: templateSource, problem: "\(error)")
            }
        }
        allowEmptyParams = options.allowEmptyParams
        if allowEmptyParams { origins["allow-empty-params"] = "--allow-empty-params" }

        logLevel = checked(.info) {
            guard let (text, name) = setting(options.logLevel, "SYNC_LOG_LEVEL", flagName: "log-level") else { return .info }
            guard let level = Logger.Level(rawValue: text.lowercased()) else {
                throw ConfigurationError(setting: name, problem: "\"\(text)\" is not one of trace, debug, info, notice, warning, error, critical")
            }
            return level
        }
        let terminalFormat: LogFormat = isatty(STDERR_FILENO) == 1 ? .text : .json
        logFormat = checked(terminalFormat) {
            guard let (text, name) = setting(options.logFormat, "SYNC_LOG_FORMAT", flagName: "log-format") else { return terminalFormat }
            guard let format = LogFormat(rawValue: text.lowercased()) else {
                throw ConfigurationError(setting: name, problem: "\"\(text)\" is not json or text")
            }
            return format
        }
        metricsFile = setting(options.metricsFile, "SYNC_METRICS_FILE", flagName: "metrics-file")?.value
        self.origins = origins
        if !problems.isEmpty { throw ConfigurationError(problems) }
    }
}

/// A password kept in a file (a Kubernetes or ECS secret mounted as a file): its first line.
enum PasswordFile {
    /// Larger than any password; a bound on what a wrong path can make the job read.
    static let maximumBytes = 64 * 1024

    static func firstLine(_ path: String, setting: String) throws -> String {
        // O_NONBLOCK: a FIFO or device named by mistake must not hang the start.
        let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ConfigurationError(setting: setting, problem: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw ConfigurationError(setting: setting, problem: "\(path) is not a regular file")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= maximumBytes {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else {
                throw ConfigurationError(setting: setting, problem: "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes += chunk[..<count]
            if chunk[..<count].contains(UInt8(ascii: "\n")) { break }
        }
        var line = bytes.prefix { $0 != UInt8(ascii: "\n") }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        guard line.count <= maximumBytes else {
            throw ConfigurationError(setting: setting, problem: "the first line of \(path) is longer than \(maximumBytes) bytes")
        }
        guard !line.isEmpty else { throw ConfigurationError(setting: setting, problem: "the first line of \(path) is empty") }
        guard let text = String(validating: line, as: UTF8.self), !text.contains("\0") else {
            throw ConfigurationError(setting: setting, problem: "the first line of \(path) is not UTF-8 text")
        }
        return text
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

/// Settings with bad values: exit 64, each named as the operator set it (flag or variable).
struct ConfigurationError: Error, CustomStringConvertible {
    struct Problem: Sendable, Equatable {
        var setting: String
        var problem: String
    }

    var problems: [Problem]

    init(setting: String, problem: String) {
        problems = [Problem(setting: setting, problem: problem)]
    }

    init(_ problems: [Problem]) {
        self.problems = problems
    }

    /// The first setting at fault.
    var setting: String { problems.first?.setting ?? "?" }

    var description: String {
        guard problems.count > 1 else { return "bad setting \(setting): \(problems.first?.problem ?? "?")" }
        return "\(problems.count) bad settings:" + problems.map { "\n  \($0.setting): \($0.problem)" }.joined()
    }
}

