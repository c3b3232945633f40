import ArgumentParser
import Foundation
import Postgres
import Timestamps
import Valkey
import Writers

/// `sync-job config`: the effective configuration, each value with where it came from — the
/// command an on-call engineer runs first. Passwords are hidden. An invalid configuration
/// lists every problem and exits 64. Connects to nothing.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the effective configuration and where each value came from; exit 64 listing every problem.")

    @Flag(name: .customLong("json"), help: "One JSON object instead of a table.")
    var json = false

    @OptionGroup var settings: SettingsOptions

    func run() throws {
        StandardStreams.ignoreBrokenPipes()
        let configuration: Configuration
        do {
            configuration = try Configuration(settings)
        } catch let error as ConfigurationError {
            StandardStreams.writeError("sync-job: \(error)\n")
            throw ExitCode(ExitCodes.usage)
        }
        let report = EffectiveConfiguration(configuration, environment: ProcessInfo.processInfo.environment)
        print(json ? report.json : report.table)
    }
}

/// The `--docs` location as an operator may see it: an http(s) URL's userinfo password is
/// "***"; a URL that cannot be parsed is withheld whole.
enum DocsLocationText {
    static func isURL(_ location: String) -> Bool { location.contains("://") }

    /// A directory path, or an http(s) URL with a host.
    static func isReadable(_ location: String) -> Bool {
        guard isURL(location) else { return !location.contains("\0") }
        guard let components = URLComponents(string: location), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty else { return false }
        return true
    }

    static func hidingPassword(_ location: String) -> String {
        guard isURL(location) else { return location }
        guard isReadable(location), var components = URLComponents(string: location) else { return "(withheld: not a URL)" }
        if components.password != nil { components.percentEncodedPassword = "***" }
        return components.string ?? "(withheld: not a URL)"
    }
}

/// The rows `config` prints.
struct EffectiveConfiguration: Codable, Equatable {
    struct Row: Codable, Equatable {
        var setting: String
        var value: String
        /// "--flag", "VARIABLE", "libpq default", "libpq: PGHOST" or "default".
        var from: String
    }

    var rows: [Row]

    init(_ c: Configuration, environment: [String: String]) {
        var rows: [Row] = []
        func add(_ flag: String, _ value: String?, defaultText: String = "default") {
            rows.append(Row(setting: "--" + flag, value: value ?? "(none)", from: c.origins[flag] ?? defaultText))
        }
        add("postgres-url", c.postgresConninfo.map(Self.hidingPassword), defaultText: "unset: libpq's PG* environment")
        for parameter in PostgresConnection.effectiveParameters(
            c.postgresConninfo, environment: environment,
            keywords: ["host", "hostaddr", "port", "dbname", "user", "password", "passfile", "service", "sslmode", "sslrootcert", "connect_timeout"]) {
            let from: String
            switch parameter.origin {
            case .conninfo: from = c.origins["postgres-url"] ?? "--postgres-url"
            case .environment(let variable): from = "libpq: \(variable)"
            case .libpqDefault: from = "libpq default"
            }
            guard parameter.value != nil || parameter.origin != .libpqDefault else { continue }
            rows.append(Row(setting: "  " + parameter.keyword, value: parameter.value ?? "(none)", from: from))
        }
        add("postgres-password-file", c.origins["postgres-password-file"] == nil ? nil : "(set: its first line is the password)")
        add("valkey-url", c.valkey.urlText)
        add("valkey-password-file", c.origins["valkey-password-file"] == nil ? nil : "(set: its first line is the password)")
        add("valkey-ca-file", c.valkey.caFile)
        add("valkey-cert-file", c.valkey.certFile)
        add("valkey-key-file", c.valkey.keyFile)
        add("valkey-tls-server-name", c.valkey.tlsServerName)
        add("valkey-cluster", c.valkeyCluster ? "yes" : "no (detected from the server)")
        add("valkey-timeout", DurationText.format(c.valkeyTimeout))
        add("postgres-timeout", DurationText.format(c.postgresTimeout))
        add("batch-size", String(c.batchSize))
        add("retention-days", String(c.retentionDays))
        add("overlap", DurationText.format(c.overlap))
        add("settle", DurationText.format(c.settle))
        add("max-runtime", c.maxRuntime.map(DurationText.format) ?? "none")
        add("wait-replicas", c.waitReplicas.map(String.init) ?? "1 where the primary has replicas, else 0")
        rows.append(Row(setting: "--no-commit-guard", value: c.commitGuard ? "no (the guard holds the copy back)" : "yes (no guard)",
                        from: c.origins["commit-guard"] ?? "default"))
        add("max-hold", DurationText.format(c.maxHold))
        add("docs", c.docs.map(DocsLocationText.hidingPassword))
        add("key-prefix", c.keys.prefix.isEmpty ? "(empty)" : c.keys.prefix)
        for name in KeyTemplates.Name.allCases {
            let text = c.keys[name].text
            rows.append(Row(setting: "--key-template \(name.rawValue)", value: text,
                            from: text == name.defaultTemplate ? "default" : (c.origins["key-template"] ?? "default")))
        }
        add("allow-empty-params", c.allowEmptyParams ? "yes" : "no")
        add("log-level", c.logLevel.rawValue)
        add("log-format", c.logFormat.rawValue, defaultText: "default (text on a terminal, else json)")
        add("metrics-file", c.metricsFile)
        self.rows = rows
    }

    var table: String {
        let settingWidth = rows.map(\.setting.count).max() ?? 0
        let valueWidth = min(60, rows.map(\.value.count).max() ?? 0)
        return rows.map { row in
            row.setting.padding(toLength: settingWidth + 2, withPad: " ", startingAt: 0)
                + row.value.padding(toLength: max(valueWidth, row.value.count) + 2, withPad: " ", startingAt: 0) + row.from
        }.joined(separator: "\n")
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// A URL or conninfo with its password replaced by "***".
    static func hidingPassword(_ conninfo: String) -> String {
        PostgresConnection.hidingPassword(in: conninfo)
    }
}
