import CLibPQ
import Foundation

extension PostgresConnection {
    /// `conninfo` (a URL or a keyword/value string) as given, with the value of every secret
    /// option (`password`, `sslpassword`: those libpq itself hides) replaced by "***", for
    /// showing to an operator.
    ///
    /// The masks follow libpq's grammar: a URL's user part runs to the first "@" before any
    /// "/", its query to the end of the string (a "#" is an ordinary character), parameter
    /// names may be percent-encoded; keyword values may be quoted, escaped and separated by
    /// any whitespace. As a backstop, libpq parses the result: if it still finds a secret that
    /// is not "***", or cannot parse what it could before, libpq's keywords are shown instead.
    package static func hidingPassword(in conninfo: String) -> String {
        hidingPassword(in: conninfo, masking: { isURL($0) ? maskingURL($0) : maskingKeywords($0) })
    }

    /// `hidingPassword(in:)` with the masks given: lets a test check the backstop alone.
    package static func hidingPassword(in conninfo: String, masking mask: (String) -> String) -> String {
        let masked = mask(conninfo)
        let given = conninfoOptions(conninfo)
        let shown = conninfoOptions(masked)
        let leaked = shown.contains { secretKeywords.contains($0.keyword) && $0.value != "***" }
            || (shown.isEmpty && !given.isEmpty)
        guard leaked else { return masked }
        return given.map { $0.keyword + "=" + (secretKeywords.contains($0.keyword) ? "***" : quotedValue($0.value)) }
            .joined(separator: " ")
    }
}

extension PostgresConnection {
    /// Why libpq cannot parse `conninfo`, or nil when it can. The answer never quotes the
    /// string: libpq's own message quotes the offending part ("invalid percent-encoded token:
    /// \"s3cr%zz\""), which may be a fragment of the password, so only its wording up to the
    /// first quote is kept.
    package static func parseProblem(in conninfo: String) -> String? {
        guard !conninfo.isEmpty else { return nil }
        var parseError: UnsafeMutablePointer<CChar>?
        if let options = PQconninfoParse(conninfo, &parseError) {
            PQconninfoFree(options)
            return nil
        }
        var wording = "libpq cannot parse it"
        if let parseError {
            let message = String(cString: parseError).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfreemem(parseError)
            let unquoted = message.prefix { $0 != "\"" && $0 != "'" && $0 != "\n" }
                .trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: ":")))
            if !unquoted.isEmpty { wording += " (\(unquoted)\(unquoted.count < message.count ? " …" : ""))" }
        }
        return wording + "; the value is withheld, as it may hold a password"
    }
}

/// The options libpq displays as "*" (PQconndefaults' dispchar): never shown.
private let secretKeywords: Set<String> = {
    var secrets: Set<String> = ["password"]
    guard let defaults = PQconndefaults() else { return secrets }
    defer { PQconninfoFree(defaults) }
    var option = defaults
    while let keyword = option.pointee.keyword {
        if let display = option.pointee.dispchar, String(cString: display) == "*" { secrets.insert(String(cString: keyword)) }
        option += 1
    }
    return secrets
}()

/// libpq reads a string as a URL when it starts with one of these (case-sensitive).
private func isURL(_ conninfo: String) -> Bool {
    conninfo.hasPrefix("postgresql://") || conninfo.hasPrefix("postgres://")
}

/// `scheme://user:password@hosts/db?password=...&...` with both spellings masked, read the
/// way libpq's conninfo_uri_parse_options reads it.
private func maskingURL(_ url: String) -> String {
    let bytes = Array(url.utf8)
    let at = UInt8(ascii: "@"), slash = UInt8(ascii: "/")
    let start = bytes.firstRange(of: Array("://".utf8))!.upperBound
    var output = Array(bytes[..<start])
    // The user part: up to the first "@" met before any "/"; the password after its first ":".
    var rest = start
    if let end = bytes[start...].firstIndex(where: { $0 == at || $0 == slash }), bytes[end] == at {
        let user = bytes[start..<end]
        if let colon = user.firstIndex(of: UInt8(ascii: ":")), colon + 1 < end {
            output += bytes[start...colon] + Array("***".utf8)
        } else {
            output += user
        }
        output.append(at)
        rest = end + 1
    }
    // Hosts and the database name hold no "?": the first one after the user part starts the
    // query, which runs to the end of the string.
    guard let query = bytes[rest...].firstIndex(of: UInt8(ascii: "?")) else {
        output += bytes[rest...]
        return String(decoding: output, as: UTF8.self)
    }
    output += bytes[rest...query]
    let parameters = bytes[(query + 1)...].split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false).map { parameter in
        let equals = parameter.firstIndex(of: UInt8(ascii: "=")) ?? parameter.endIndex
        let name = String(decoding: percentDecoded(parameter[..<equals]), as: UTF8.self)
        guard secretKeywords.contains(name), equals < parameter.endIndex else { return Array(parameter) }
        return Array(parameter[...equals]) + Array("***".utf8)
    }
    output += parameters.joined(separator: [UInt8(ascii: "&")])
    return String(decoding: output, as: UTF8.self)
}

private func percentDecoded(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
    var decoded: [UInt8] = []
    var index = bytes.startIndex
    while index < bytes.endIndex {
        if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.endIndex, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
            decoded.append(high << 4 | low)
            index += 3
        } else {
            decoded.append(bytes[index])
            index += 1
        }
    }
    return decoded
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// `keyword = value ...` as libpq tokenises it (conninfo_parse): whitespace is isspace(),
/// a value is 'quoted' or runs to the next whitespace, and a backslash escapes the next
/// character in both. Everything but the secret values is kept byte for byte.
private func maskingKeywords(_ conninfo: String) -> String {
    let bytes = Array(conninfo.utf8)
    func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
    var output: [UInt8] = []
    var index = 0
    while index < bytes.count {
        // Whitespace, then the keyword up to whitespace or "=".
        let keywordStart = index
        while index < bytes.count, isSpace(bytes[index]) { index += 1 }
        let nameStart = index
        while index < bytes.count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: "=") { index += 1 }
        let name = bytes[nameStart..<index]
        while index < bytes.count, isSpace(bytes[index]) { index += 1 }
        guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else {
            // Not a conninfo string libpq accepts: keep the rest as it is.
            output += bytes[keywordStart...]
            break
        }
        index += 1
        while index < bytes.count, isSpace(bytes[index]) { index += 1 }
        output += bytes[keywordStart..<index]
        // The value.
        let valueStart = index
        if index < bytes.count, bytes[index] == UInt8(ascii: "'") {
            index += 1
            while index < bytes.count, bytes[index] != UInt8(ascii: "'") {
                index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
            }
            index = min(index + 1, bytes.count)
        } else {
            while index < bytes.count, !isSpace(bytes[index]) {
                index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
            }
            index = min(index, bytes.count)
        }
        let secret = secretKeywords.contains(String(decoding: name, as: UTF8.self))
        output += secret ? Array("***".utf8) : Array(bytes[valueStart..<index])
    }
    return String(decoding: output, as: UTF8.self)
}

/// A value in keyword/value form: quoted when it is empty or holds whitespace, a quote or a backslash.
private func quotedValue(_ value: String) -> String {
    let plain = !value.isEmpty && !value.contains { $0.isWhitespace || $0 == "'" || $0 == "\\" }
    if plain { return value }
    var quoted = "'"
    for character in value {
        if character == "'" || character == "\\" { quoted.append("\\") }
        quoted.append(character)
    }
    return quoted + "'"
}
