import Postgres
import SearchIndex
@testable import SyncJob
import Testing
import Valkey
import Writers

/// SPEC §8: the one mapping from what failed to the exit code, and the hint naming the
/// settings to check. No server: the errors are made here.
@Suite struct ExitCodeTests {
    @Test(arguments: [
        (ValkeyError.Kind.invalidConfiguration, Int32(64)), (.authenticationFailed, 64), (.tlsFailed, 64),
        (.connectionFailed, 75), (.timeout, 75), (.connectionClosed, 75), (.protocolError, 75),
    ])
    func valkeyFailures(kind: ValkeyError.Kind, code: Int32) {
        #expect(ExitCodes.code(for: ValkeyError(kind, server: "127.0.0.1:6379", message: "x")) == code)
    }

    @Test(arguments: [
        ("OOM command not allowed when used memory > 'maxmemory'.", Int32(1)),
        ("MISCONF Redis is configured to save RDB snapshots", 1),
        ("ERR unknown command", 1),
        ("READONLY You can't write against a read only replica.", 75),
        ("LOADING Redis is loading the dataset in memory", 75),
        ("TRYAGAIN Multiple keys request during rehashing of slot", 75),
        ("CLUSTERDOWN The cluster is down", 75),
        ("MASTERDOWN Link with MASTER is down", 75),
        ("BUSY Redis is busy running a script.", 75),
        // A code is the reply's whole first word: a longer word is another code.
        ("READONLYX something", 1),
    ])
    func refusalsByTheServersFirstWord(reply: String, code: Int32) {
        #expect(ExitCodes.code(for: ValkeyError(.server, server: "s", message: reply)) == code)
        #expect(ExitCodes.code(for: CacheRefusal(server: "s", what: "writing", reply: reply)) == code)
    }

    @Test(arguments: [
        (PostgresError.Kind.authenticationFailed, Int32(64)), (.connectionFailed, 75), (.connectionLost, 75),
        (.timeout, 75), (.query, 1), (.decoding, 1),
    ])
    func postgresFailures(kind: PostgresError.Kind, code: Int32) {
        #expect(ExitCodes.code(for: PostgresError(kind: kind, message: "x")) == code)
    }

    @Test func configurationSearchIndexAndStageFailures() {
        #expect(ExitCodes.code(for: ConfigurationError(setting: "--batch-size", problem: "x")) == 64)
        #expect(ExitCodes.code(for: SearchIndexError.invalidLocation("ftp://x")) == 64)
        #expect(ExitCodes.code(for: SearchIndexError.noManifest(location: "/tmp")) == 64)
        #expect(ExitCodes.code(for: SearchIndexError.manifestUnreadable(location: "http://x/", reason: "503")) == 75)
        #expect(ExitCodes.code(for: StageFailure("api_keys is empty")) == 1)
    }

    @Test func hintsNameTheSettingsToCheck() {
        #expect(ExitCodes.hint(for: PostgresError(kind: .authenticationFailed, message: "x")).contains("--postgres-url / DATABASE_URL"))
        #expect(ExitCodes.hint(for: PostgresError(kind: .timeout, message: "x")).contains("--postgres-timeout"))
        #expect(ExitCodes.hint(for: ValkeyError(.timeout, server: nil, message: "x")).contains("--valkey-timeout"))
        #expect(ExitCodes.hint(for: SearchIndexError.invalidLocation("x")).contains("--docs / SYNC_DOCS"))
        #expect(ExitCodes.hint(for: PostgresError(kind: .query, message: "x")).isEmpty)
        // The libraries themselves name no flag.
        #expect(!"\(PostgresError(kind: .authenticationFailed, message: "x"))".contains("--"))
    }
}
