import Foundation
import Logging

/// swift-log handler writing one JSON object per line (or one human line) to stderr.
struct LogLineHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level
    let label: String
    let format: Configuration.LogFormat

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        var line: String
        switch format {
        case .json:
            line = "{\"time\":\(JSONText.quote(time)),\"level\":\(JSONText.quote(event.level.rawValue)),\"message\":\(JSONText.quote(event.message.description))"
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                line += ",\(JSONText.quote(key)):\(JSONText.value(value))"
            }
            line += "}\n"
        case .text:
            line = "\(time) \(event.level.rawValue.uppercased()) \(event.message)"
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
            line += "\n"
        }
        StandardStreams.writeError(line)
    }

    static func bootstrap(level: Logger.Level, format: Configuration.LogFormat) {
        LoggingSystem.bootstrap { label in LogLineHandler(logLevel: level, label: label, format: format) }
    }
}

/// Minimal JSON text building for log lines and summaries.
enum JSONText {
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func value(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): return quote(text)
        case .stringConvertible(let convertible):
            if let number = convertible as? any BinaryInteger { return "\(number)" }
            if let number = convertible as? Double, number.isFinite { return "\(number)" }
            if let flag = convertible as? Bool { return flag ? "true" : "false" }
            return quote(convertible.description)
        case .array(let items): return "[" + items.map(Self.value).joined(separator: ",") + "]"
        case .dictionary(let items):
            return "{" + items.sorted(by: { $0.key < $1.key }).map { quote($0.key) + ":" + Self.value($0.value) }.joined(separator: ",") + "}"
        }
    }
}
