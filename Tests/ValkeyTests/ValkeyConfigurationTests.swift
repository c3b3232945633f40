import Testing
import Valkey

@Suite struct ValkeyConfigurationParsing {
    @Test func plainDefaults() throws {
        let c = try ValkeyConfiguration(url: "valkey://127.0.0.1")
        #expect(c.host == "127.0.0.1" && c.port == 6379 && c.database == 0 && !c.usesTLS)
        #expect(c.username == nil && c.password == nil)
        #expect(c.connectTimeout == .seconds(5) && c.commandTimeout == .seconds(30))
        #expect(c.serverDescription == "127.0.0.1:6379")
    }

    @Test func schemes() throws {
        #expect(try !ValkeyConfiguration(url: "redis://h:1").usesTLS)
        #expect(try ValkeyConfiguration(url: "valkeys://h:1").usesTLS)
        #expect(try ValkeyConfiguration(url: "rediss://h:1").usesTLS)
        #expect(try ValkeyConfiguration(url: "VALKEY://h").port == 6379)
        #expect(throws: ValkeyError.self) { try ValkeyConfiguration(url: "http://h") }
        #expect(throws: ValkeyError.self) { try ValkeyConfiguration(url: "127.0.0.1:6379") }
    }

    @Test func userinfoPortAndDatabase() throws {
        let c = try ValkeyConfiguration(url: "valkeys://sync%40er:p%3Aw%2Fd%40x@cache.example.com:6380/3")
        #expect(c.username == "sync@er")
        #expect(c.password == "p:w/d@x")
        #expect(c.host == "cache.example.com" && c.port == 6380 && c.database == 3)
        let passwordOnly = try ValkeyConfiguration(url: "redis://:secret@h/0")
        #expect(passwordOnly.username == nil && passwordOnly.password == "secret")
        let userOnly = try ValkeyConfiguration(url: "redis://alice@h/")
        #expect(userOnly.username == "alice" && userOnly.password == nil && userOnly.database == 0)
    }

    @Test func ipv6() throws {
        let c = try ValkeyConfiguration(url: "valkey://[::1]:7000/2")
        #expect(c.host == "::1" && c.port == 7000 && c.database == 2)
        #expect(c.serverDescription == "[::1]:7000")
        #expect(try ValkeyConfiguration(url: "valkey://[fe80::1]").port == 6379)
        #expect(throws: ValkeyError.self) { try ValkeyConfiguration(url: "valkey://[::1") }
    }

    @Test(arguments: [
        "valkey://", "valkey://h:0", "valkey://h:70000", "valkey://h:abc", "valkey://h/x", "valkey://h/-1",
        "valkey://h?db=1", "valkey://u:%zz@h", "valkey://:p@:6379",
    ])
    func invalidURLs(url: String) {
        #expect {
            try ValkeyConfiguration(url: url)
        } throws: { error in
            let e = error as? ValkeyError
            return e?.kind == .invalidConfiguration && e?.message.contains("valkey-url") == true
        }
    }

    @Test func tlsFileSettingsAreNamed() {
        #expect {
            try ValkeyConfiguration(url: "valkeys://h", caFile: "/nonexistent/ca.pem")
        } throws: { ($0 as? ValkeyError)?.message.contains("valkey-ca-file") == true }
        #expect {
            try ValkeyConfiguration(url: "valkeys://h", certFile: "/nonexistent/c.pem", keyFile: "/nonexistent/k.pem")
        } throws: { ($0 as? ValkeyError)?.message.contains("valkey-cert-file") == true }
        #expect {
            try ValkeyConfiguration(url: "valkeys://h", certFile: "/etc/hostname")
        } throws: { ($0 as? ValkeyError)?.kind == .invalidConfiguration }
        #expect {
            try ValkeyConfiguration(url: "valkey://h", tlsServerName: "x")
        } throws: { ($0 as? ValkeyError)?.kind == .invalidConfiguration }
    }

    @Test func descriptionsNeverContainThePassword() throws {
        let password = "Sup3r-S3cret-pw"
        let c = try ValkeyConfiguration(url: "valkeys://user:\(password)@h:1/2")
        #expect(!c.description.contains(password))
        #expect(c.description.contains("user"))
        for url in ["valkeys://user:\(password)@h:0", "valkeys://user:\(password)@h/x", "valkeys://user:\(password)@h?x",
                    "ftp://user:\(password)@h", "valkeys://user:\(password)%zz@h"] {
            do {
                _ = try ValkeyConfiguration(url: url)
                Issue.record("expected an error for a bad URL")
            } catch {
                #expect(!"\(error)".contains(password))
                #expect(!String(describing: error).contains("Sup3r"))
            }
        }
    }
}
