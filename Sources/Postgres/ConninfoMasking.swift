import CLibPQ

extension PostgresConnection {
    /// `conninfo` (a URL or a keyword/value string) as given, with every password value
    /// replaced by "***", for showing to an operator.
    ///
    /// Masks the password of a URL's user part and its `password` query parameters (whatever
    /// their percent-encoding), and the value of every `password` keyword (quoted, escaped,
    /// separated by any whitespace). If libpq's own reading of the string still finds a
    /// password in the result, the string is shown as libpq's keywords instead.
    package static func hidingPassword(in conninfo: String) -> String {
        let masked = isURL(conninfo) ? maskingURL(conninfo) : maskingKeywords(conninfo)
        let options = conninfoOptions(conninfo)
        let leaked = options.contains { option in
            option.keyword == "password" && !option.value.isEmpty && masked.contains(option.value)
        }
        guard leaked else { return masked }
        return options.map { $0.keyword + "=" + ($0.keyword == "password" ? "***" : quotedValue($0.value)) }
            .joined(separator: " ")
    }
}

/// libpq reads a string as a URL when it starts with one of these (case-sensitive).
private func isURL(_ conninfo: String) -> Bool {
    conninfo.hasPrefix("postgresql://") || conninfo.hasPrefix("postgres://")
}

/// `scheme://user:password@hosts/db?password=...&...#...` with both spellings masked.
private func maskingURL(_ url: String) -> String {
    let bytes = Array(url.utf8)
    var output: [UInt8] = []
    output.reserveCapacity(bytes.count)
    let schemeEnd = bytes.firstRange(of: Array("://".utf8))!.upperBound
    output += bytes[..<schemeEnd]
    // The authority runs to the first "/", "?" or "#"; its user part ends at the last "@".
    let authorityEnd = bytes[schemeEnd...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }
        ?? bytes.endIndex
    let authority = bytes[schemeEnd..<authorityEnd]
    if let at = authority.lastIndex(of: UInt8(ascii: "@")), let colon = authority[..<at].firstIndex(of: UInt8(ascii: ":")) {
        output += authority[..<colon] + Array(":***".utf8) + authority[at...]
    } else {
        output += authority
    }
    guard let query = bytes[authorityEnd...].firstIndex(of: UInt8(ascii: "?")) else {
        output += bytes[authorityEnd...]
        return String(decoding: output, as: UTF8.self)
    }
    output += bytes[authorityEnd...query]
    let queryEnd = bytes[query...].firstIndex(of: UInt8(ascii: "#")) ?? bytes.endIndex
    var parameters: [[UInt8]] = []
    for parameter in bytes[(query + 1)..<queryEnd].split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false) {
        let equals = parameter.firstIndex(of: UInt8(ascii: "=")) ?? parameter.endIndex
        if percentDecoded(parameter[..<equals]) == Array("password".utf8), equals < parameter.endIndex {
            parameters.append(Array(parameter[...equals]) + Array("***".utf8))
        } else {
            parameters.append(Array(parameter))
        }
    }
    output += parameters.joined(separator: [UInt8(ascii: "&")])
    output += bytes[queryEnd...]
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
/// character in both. Everything but the password values is kept byte for byte.
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
        output += name.elementsEqual("password".utf8) ? Array("***".utf8) : Array(bytes[valueStart..<index])
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
