import NIOCore

/// One decoded RESP2 or RESP3 reply.
///
/// RESP2 nulls (`$-1`, `*-1`) and the RESP3 null (`_`) all decode to `.null`, so callers
/// check one case whatever protocol the connection speaks. Attributes (`|`) are parsed and
/// dropped: the value they annotate is returned.
package enum RESPValue: Sendable, Hashable {
    case simpleString(String)
    /// `nil` is never produced by the decoder (it yields `.null`); it exists for callers
    /// that build values by hand.
    case bulkString(ByteBuffer?)
    /// A simple (`-`) or blob (`!`) error.
    case error(String)
    case integer(Int64)
    case double(Double)
    case boolean(Bool)
    case null
    case array([RESPValue])
    case map([RESPMapEntry])
    case set([RESPValue])
    case push([RESPValue])
    /// A verbatim string: `format` is the three-letter type such as `txt` or `mkd`.
    case verbatim(format: String, text: ByteBuffer)
    case bigNumber(String)
}

/// One key/value pair of a RESP3 map, kept in wire order.
package struct RESPMapEntry: Sendable, Hashable {
    package var key: RESPValue
    package var value: RESPValue
    package init(key: RESPValue, value: RESPValue) {
        self.key = key
        self.value = value
    }
}

extension RESPValue {
    /// Bulk, simple and verbatim strings as UTF-8 (lossy decoding); nil for anything else.
    package var string: String? {
        switch self {
        case .simpleString(let s): return s
        case .bulkString(let b?): return String(buffer: b)
        case .verbatim(_, let text): return String(buffer: text)
        default: return nil
        }
    }

    /// Integers, and strings holding a decimal integer (RESP2 servers send numbers as strings).
    package var int: Int64? {
        switch self {
        case .integer(let i): return i
        case .simpleString, .bulkString, .bigNumber: return string.flatMap { Int64($0) }
        default: return nil
        }
    }

    package var double: Double? {
        switch self {
        case .double(let d): return d
        case .integer(let i): return Double(i)
        case .simpleString, .bulkString: return string.flatMap { Double($0) }
        default: return nil
        }
    }

    package var isError: Bool {
        if case .error = self { return true }
        return false
    }

    package var isNull: Bool {
        switch self {
        case .null, .bulkString(nil): return true
        default: return false
        }
    }

    package var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }

    /// The elements of an array, set or push.
    package var array: [RESPValue]? {
        switch self {
        case .array(let a), .set(let a), .push(let a): return a
        default: return nil
        }
    }

    /// Map entries; a RESP2 flat array of even length is read as key, value, key, value.
    package var mapEntries: [RESPMapEntry]? {
        switch self {
        case .map(let m): return m
        case .array(let a) where a.count % 2 == 0:
            return stride(from: 0, to: a.count, by: 2).map { RESPMapEntry(key: a[$0], value: a[$0 + 1]) }
        default: return nil
        }
    }
}

extension RESPValue: CustomStringConvertible {
    package var description: String {
        switch self {
        case .simpleString(let s): return "+\(s)"
        case .bulkString(let b?): return "$\(String(buffer: b).debugDescription)"
        case .bulkString(nil), .null: return "null"
        case .error(let e): return "-\(e)"
        case .integer(let i): return ":\(i)"
        case .double(let d): return ",\(d)"
        case .boolean(let b): return "#\(b)"
        case .array(let a): return "[\(a.map(\.description).joined(separator: ", "))]"
        case .set(let a): return "~[\(a.map(\.description).joined(separator: ", "))]"
        case .push(let a): return ">[\(a.map(\.description).joined(separator: ", "))]"
        case .map(let m): return "{\(m.map { "\($0.key): \($0.value)" }.joined(separator: ", "))}"
        case .verbatim(let f, let t): return "=\(f):\(String(buffer: t).debugDescription)"
        case .bigNumber(let n): return "(\(n)"
        }
    }
}
