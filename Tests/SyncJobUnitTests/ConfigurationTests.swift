@testable import SyncJob
import Postgres
import Testing
import Timestamps

/// Flags over variables over defaults (SPEC §8), and a bad value naming where it came from.
@Suite struct ConfigurationTests {
    func configuration(_ arguments: [String], _ environment: [String: String] = [:]) throws -> Configuration {
        try Configuration(try SettingsOptions.parse(arguments), environment: environment)
    }

    @Test func defaultsWithNothingSet() throws {
        let c = try configuration([])
        #expect(c.batchSize == 2000)
        #expect(c.retentionDays == 93)
        #expect(c.overlap == .seconds(300))
        #expect(c.settle == .seconds(5))
        #expect(c.valkeyTimeout == .seconds(30))
        #expect(c.postgresTimeout == .seconds(60))
        #expect(c.maxRuntime == nil)
        #expect(c.waitReplicas == nil)
        #expect(c.commitGuard)
        #expect(c.keys.prefix == "")
    }

    @Test func aVariableOverridesTheDefault() throws {
        let c = try configuration([], ["SYNC_BATCH_SIZE": "500", "SYNC_OVERLAP": "1m", "SYNC_KEY_PREFIX": "staging:",
                                       "SYNC_COMMIT_GUARD": "0", "SYNC_WAIT_REPLICAS": "0"])
        #expect(c.batchSize == 500)
        #expect(c.overlap == .seconds(60))
        #expect(c.keys.prefix == "staging:")
        #expect(!c.commitGuard)
        #expect(c.waitReplicas == 0)
    }

    @Test func aFlagOverridesTheVariable() throws {
        let environment = ["SYNC_BATCH_SIZE": "500", "SYNC_OVERLAP": "1m", "SYNC_KEY_PREFIX": "staging:",
                           "VALKEY_URL": "valkey://variable.example:6000", "SYNC_KEY_TEMPLATES": "api_key=from-variable:${id}"]
        let c = try configuration(["--batch-size", "7", "--overlap", "90s", "--key-prefix", "flag:",
                                   "--valkey-url", "valkey://flag.example:7000", "--key-template", "api_key=from-flag:${id}"], environment)
        #expect(c.batchSize == 7)
        #expect(c.overlap == .seconds(90))
        #expect(c.keys.prefix == "flag:")
        #expect(c.valkey.host == "flag.example" && c.valkey.port == 7000)
        #expect(c.keys[.apiKey].text == "from-flag:${id}")
    }

    @Test func anEmptyVariableCountsAsUnset() throws {
        #expect(try configuration([], ["SYNC_BATCH_SIZE": ""]).batchSize == 2000)
    }

    @Test(arguments: [
        (["--batch-size", "0"], [String: String](), "--batch-size"),
        ([], ["SYNC_BATCH_SIZE": "many"], "SYNC_BATCH_SIZE"),
        (["--overlap", "5 parsecs"], [:], "--overlap"),
        ([], ["SYNC_SETTLE": "2d"], "SYNC_SETTLE"),
        ([], ["SYNC_COMMIT_GUARD": "maybe"], "SYNC_COMMIT_GUARD"),
        ([], ["SYNC_LOG_LEVEL": "loud"], "SYNC_LOG_LEVEL"),
        (["--valkey-url", "http://x"], [:], "--valkey-url"),
        ([], ["SYNC_KEY_TEMPLATES": "usage_log=plain"], "SYNC_KEY_TEMPLATES"),
    ])
    func aBadValueNamesWhereItCameFrom(arguments: [String], environment: [String: String], setting: String) {
        #expect {
            _ = try configuration(arguments, environment)
        } throws: { error in
            (error as? ConfigurationError)?.setting == setting
        }
    }
}

/// Durations as operators write them, in and out.
@Suite struct DurationTextTests {
    @Test(arguments: [
        ("5m", Duration.seconds(300)), ("30s", .seconds(30)), ("1h", .seconds(3600)), ("250ms", .milliseconds(250)),
        ("1h30m", .seconds(5400)), ("90", .seconds(90)), ("1.5s", .milliseconds(1500)), ("2d", .seconds(172_800)),
        (" 10S ", .seconds(10)), ("0", .zero), ("1min", .seconds(60)),
    ])
    func parses(text: String, expected: Duration) {
        #expect(DurationText.parse(text) == expected)
    }

    @Test(arguments: ["", "s", "-1s", "5x", "1e30", "99999999999999999999h", "1h 30m", "nan", "5m3"])
    func rejects(text: String) {
        #expect(DurationText.parse(text) == nil, "\(text)")
    }

    @Test(arguments: [Duration.zero, .milliseconds(250), .seconds(30), .seconds(300), .seconds(5400), .seconds(90_061)])
    func formatReadsBack(duration: Duration) {
        #expect(DurationText.parse(DurationText.format(duration)) == duration)
    }

    @Test func secondsText() {
        #expect(Duration.seconds(30).secondsText == "30s")
        #expect(Duration.milliseconds(2500).secondsText == "2.5s")
    }
}

/// `config` never prints a password, whatever the spelling of the connection string.
@Suite struct PasswordHidingTests {
    @Test(arguments: [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("host=h password=pw user=u", "host=h password=*** user=u"),
        ("host=h password = 'p w\\'x' user=u", "host=h password = *** user=u"),
        ("password=pw", "password=***"),
        // The password as a URL query parameter, as libpq accepts it, however it is spelt.
        ("postgresql://u@h/db?password=s3cret", "postgresql://u@h/db?password=***"),
        // libpq has no fragment: "#" is part of the value, and of what is hidden.
        ("postgres://u@h/db?sslmode=disable&password=s3cret#frag", "postgres://u@h/db?sslmode=disable&password=***"),
        ("postgresql://u@h/db?application_name=x#&password=s%33cret", "postgresql://u@h/db?application_name=x#&password=***"),
        // The user part runs to the first "@" before any "/", whatever "?" or "#" it holds.
        ("postgresql://u:s%33cret#x@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:s%33cret?@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@ss@h/db"),
        ("postgresql://u:pw@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
        // sslpassword is as secret as password, for libpq too.
        ("postgresql://u@h/db?sslpassword=k3y", "postgresql://u@h/db?sslpassword=***"),
        ("host=h sslpassword='k 3y' user=u", "host=h sslpassword=*** user=u"),
        ("postgresql://u@h/db?%70assword=s3cret&application_name=x", "postgresql://u@h/db?%70assword=***&application_name=x"),
        ("postgresql://u:pw@h1:5432,h2:5433/db?password=s3cret", "postgresql://u:***@h1:5432,h2:5433/db?password=***"),
        // Any whitespace separates keywords; the ones after the password stay.
        ("host=h\tpassword=s3cret\nuser=u", "host=h\tpassword=***\nuser=u"),
        ("host=h password=s3\\ cret user=u", "host=h password=*** user=u"),
        ("host=h password='' user=u", "host=h password=*** user=u"),
        // A keyword string whose dbname holds a URL is still a keyword string.
        ("dbname=postgresql://x password=s3cret", "dbname=postgresql://x password=***"),
        ("mydb", "mydb"),
    ])
    func hidesThePassword(given: String, shown: String) {
        #expect(EffectiveConfiguration.hidingPassword(given) == shown)
    }

    /// What the masks miss, libpq's own reading of the string catches: the password is
    /// never shown, whatever the string looks like.
    @Test(arguments: [
        "host=h password=pw password=s3cret",
        "postgresql://u:s3cret@h/db?password=s3cret",
        "host=h password = s3cret",
        "postgresql://u:s%33cret#x@h/db",
        "postgresql://u@h/db?application_name=x#&password=s%33cret",
        "postgres://u@h/db?%70assword=s%33cret",
    ])
    func neverShowsWhatLibpqReadsAsThePassword(given: String) {
        let shown = EffectiveConfiguration.hidingPassword(given)
        #expect(!shown.contains("s3cret") && !shown.contains("s%33cret"), "\(shown)")
    }

    /// The backstop alone: libpq reads the masked string again, and anything it would still
    /// use as a secret, or a string it can no longer parse, falls back to its keywords.
    @Test func theBackstopShowsLibpqsKeywords() {
        #expect(PostgresConnection.hidingPassword(in: "host=h password=s3cret", masking: { $0 })
                == "password=*** host=h")
        #expect(PostgresConnection.hidingPassword(in: "postgresql://u:s%33cret@h/db", masking: { $0 })
                == "user=u password=*** dbname=db host=h")
        #expect(PostgresConnection.hidingPassword(in: "host=h password=s3cret", masking: { _ in "host='h" })
                == "password=*** host=h")
    }
}
