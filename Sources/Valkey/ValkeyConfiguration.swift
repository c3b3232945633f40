#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where and how to connect to Valkey: parsed from a `valkey[s]://` or `redis[s]://` URL plus TLS files.
///
/// `description` shows everything but the password.
package struct ValkeyConfiguration: Sendable, CustomStringConvertible {
    package var host: String
    package var port: Int
    package var username: String?
    package var password: String?
    package var database: Int
    package var usesTLS: Bool
    /// PEM file of the CA(s) to trust instead of the system roots.
    package var caFile: String?
    /// PEM client certificate (chain) and its key, for servers that ask for one.
    package var certFile: String?
    package var keyFile: String?
    /// Name to verify the server certificate against (and to send as SNI) instead of `host`.
    package var tlsServerName: String?
    package var connectTimeout: Duration = .seconds(5)
    /// The longest wait for the next reply while commands are pending; then the connection
    /// is closed and pending commands fail with `.timeout`.
    package var commandTimeout: Duration = .seconds(30)
    /// Sent with HELLO as `SETNAME`, so `CLIENT LIST` shows who is connected.
    package var clientName: String?
    /// Cluster mode from the URL's `?cluster=1` (or `0`); nil when the URL does not say, so
    /// that the program's own setting or detection decides.
    package var cluster: Bool?

    package static let defaultPort = 6379

    /// Parses `scheme://[user[:password]@]host[:port][/db]` (SPEC §8).
    /// Throws `ValkeyError` of kind `.invalidConfiguration` naming the bad setting.
    package init(url: String, caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, tlsServerName: String? = nil) throws {
        func invalid(_ message: String) -> ValkeyError {
            ValkeyError(.invalidConfiguration, server: nil, message: message)
        }
        // The URL is never quoted in errors: it may hold a password.
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else {
            throw invalid("valkey-url must look like valkey://[user:password@]host[:port][/db]")
        }
        switch url[..<colon].lowercased() {
        case "valkey", "redis": usesTLS = false
        case "valkeys", "rediss": usesTLS = true
        default:
            throw invalid("valkey-url scheme must be valkey, redis, valkeys or rediss")
        }
        var rest = url[url.index(colon, offsetBy: 3)...]
        if rest.contains("#") {
            throw invalid("valkey-url: fragments are not supported")
        }
        cluster = nil
        if let question = rest.firstIndex(of: "?") {
            // The only option is cluster mode; TLS files and the database have settings of their own.
            for option in rest[rest.index(after: question)...].split(separator: "&") {
                switch option.lowercased() {
                case "cluster", "cluster=1", "cluster=true", "cluster=yes", "cluster=on": cluster = true
                case "cluster=0", "cluster=false", "cluster=no", "cluster=off": cluster = false
                default:
                    throw invalid("valkey-url: the only query parameter is cluster=1 or cluster=0; use the TLS settings and the /db path for the rest")
                }
            }
            rest = rest[..<question]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var hostPort = rest
        username = nil
        password = nil
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            hostPort = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = try Self.percentDecode(userinfo[..<colon], setting: "valkey-url user name")
                username = user.isEmpty ? nil : user
                password = try Self.percentDecode(userinfo[userinfo.index(after: colon)...], setting: "valkey-url password")
            } else {
                let user = try Self.percentDecode(userinfo, setting: "valkey-url user name")
                username = user.isEmpty ? nil : user
            }
        }
        var portText: Substring? = nil
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw invalid("valkey-url: IPv6 address without a closing ]")
            }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid("valkey-url: unexpected text after the IPv6 address") }
                portText = after.dropFirst()
            }
        } else if let colon = hostPort.firstIndex(of: ":") {
            host = String(hostPort[..<colon])
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = String(hostPort)
        }
        guard !host.isEmpty else { throw invalid("valkey-url has no host") }
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value), portText.allSatisfy(\.isASCII) else {
                throw invalid("valkey-url port must be a number from 1 to 65535")
            }
            port = value
        } else {
            port = Self.defaultPort
        }
        if path.isEmpty {
            database = 0
        } else {
            guard let value = Int(path), value >= 0, path.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw invalid("valkey-url path must be a database number such as /3")
            }
            database = value
        }
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.tlsServerName = tlsServerName.flatMap { $0.isEmpty ? nil : $0 }
        if (certFile == nil) != (keyFile == nil) {
            throw invalid("valkey-cert-file and valkey-key-file must be given together")
        }
        for (setting, file) in [("valkey-ca-file", caFile), ("valkey-cert-file", certFile), ("valkey-key-file", keyFile)] {
            guard let file else { continue }
            guard access(file, R_OK) == 0 else {
                throw invalid("\(setting): cannot read \(file)")
            }
        }
        if !usesTLS && (caFile != nil || certFile != nil || self.tlsServerName != nil) {
            throw invalid("TLS settings (valkey-ca-file, valkey-cert-file, valkey-key-file, valkey-tls-server-name) need a valkeys:// or rediss:// URL")
        }
    }

    /// `host:port`, with IPv6 addresses in brackets.
    package var serverDescription: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The URL with the password replaced by "***".
    package var urlText: String {
        var text = usesTLS ? "valkeys://" : "valkey://"
        if let username { text += username }
        if password != nil { text += ":***" }
        if username != nil || password != nil { text += "@" }
        text += serverDescription
        if database != 0 { text += "/\(database)" }
        return text
    }

    package var description: String {
        var text = urlText
        var options: [String] = []
        if let caFile { options.append("ca-file: \(caFile)") }
        if let certFile { options.append("cert-file: \(certFile)") }
        if let keyFile { options.append("key-file: \(keyFile)") }
        if let tlsServerName { options.append("tls-server-name: \(tlsServerName)") }
        if let cluster { options.append("cluster: \(cluster)") }
        if !options.isEmpty { text += " (\(options.joined(separator: ", ")))" }
        return text
    }

    private static func percentDecode(_ text: Substring, setting: String) throws -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw ValkeyError(.invalidConfiguration, server: nil, message: "\(setting) has an invalid %-escape")
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw ValkeyError(.invalidConfiguration, server: nil, message: "\(setting) is not valid UTF-8 after %-decoding")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
