import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why bytes could not be decoded as RESP; the connection treats any of these as fatal.
public struct RESPDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong with the input.
    public enum Kind: Sendable, Hashable {
        case invalidTypeByte
        case invalidLength
        case lengthTooLarge
        case missingCRLF
        case invalidInteger
        case invalidDouble
        case invalidBoolean
        case invalidVerbatimString
        case nestingTooDeep
        case lineTooLong
        case unsupportedType
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "malformed RESP reply: \(message)" }
}

/// What the counting path learns about one reply without building a `RESPValue`.
public enum RESPReplySummary: Sendable, Hashable {
    case success
    case error(String)
    /// An out-of-band RESP3 push; not the reply to any command.
    case push
}

/// Decodes RESP2 and RESP3 replies from a ByteBuffer, returning nil while a reply is incomplete.
///
/// Limits keep hostile input from costing unbounded memory or stack: a declared length is
/// never trusted for allocation beyond the bytes actually received.
public struct RESPDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = RESPValue

    /// Bounds on what the decoder accepts.
    public struct Limits: Sendable, Hashable {
        /// The server's own `proto-max-bulk-len` default.
        public var maxBulkLength: Int = 512 * 1024 * 1024
        public var maxAggregateCount: Int = Int(Int32.max)
        public var maxDepth: Int = 100
        /// Longest simple string, error or number line.
        public var maxLineLength: Int = 1024 * 1024
        public init() {}
    }

    public var limits: Limits

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Buffers larger than this are checked for a complete reply before values are built.
    static let completenessCheckThreshold = 16 * 1024

    /// Decodes one reply and moves the reader index past it, or returns nil (index unmoved).
    public mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        guard buffer.readableBytes > 0 else { return nil }
        let source = buffer
        let outcome: (RESPValue, Int)? = try source.withUnsafeReadableBytes { bytes in
            // A large reply arrives in many reads and is re-parsed from its start each time:
            // check completeness with the allocation-free skipper first, so that only the
            // last attempt builds values (otherwise a multi-megabyte reply costs quadratic
            // allocations).
            if bytes.count > Self.completenessCheckThreshold {
                var skipper = RESPParser(bytes: bytes, source: source, limits: limits)
                guard try skipper.skipValue(depth: 0) else { return nil }
            }
            var parser = RESPParser(bytes: bytes, source: source, limits: limits)
            guard let value = try parser.parseValue(depth: 0) else { return nil }
            return (value, parser.position)
        }
        guard let (value, consumed) = outcome else { return nil }
        buffer.moveReaderIndex(forwardBy: consumed)
        return value
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        try decode(buffer: &buffer)
    }

    /// Validates and skips one reply, keeping only whether it was an error. Simple replies
    /// such as `:1` or `+OK` cost no allocation.
    public func skipReply(buffer: inout ByteBuffer) throws -> RESPReplySummary? {
        guard buffer.readableBytes > 0 else { return nil }
        let source = buffer
        let outcome: (RESPReplySummary, Int)? = try source.withUnsafeReadableBytes { bytes in
            var parser = RESPParser(bytes: bytes, source: source, limits: limits)
            let type = bytes[0]
            switch type {
            case UInt8(ascii: "-"), UInt8(ascii: "!"), UInt8(ascii: ">"):
                // Errors and pushes are rare: build them normally.
                guard let value = try parser.parseValue(depth: 0) else { return nil }
                switch value {
                case .error(let message): return (.error(message), parser.position)
                default: return (.push, parser.position)
                }
            default:
                guard try parser.skipValue(depth: 0) else { return nil }
                return (.success, parser.position)
            }
        }
        guard let (summary, consumed) = outcome else { return nil }
        buffer.moveReaderIndex(forwardBy: consumed)
        return summary
    }
}

/// Recursive-descent parser over the readable bytes; `nil` means "need more bytes".
/// Incomplete replies are re-parsed from their start when more bytes arrive, which is cheap
/// for the small replies of pipelines.
struct RESPParser {
    let bytes: UnsafeRawBufferPointer
    let source: ByteBuffer
    let limits: RESPDecoder.Limits
    var position = 0

    init(bytes: UnsafeRawBufferPointer, source: ByteBuffer, limits: RESPDecoder.Limits) {
        self.bytes = bytes
        self.source = source
        self.limits = limits
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    /// The range of the next line's content; advances past its CRLF.
    @inline(__always)
    mutating func line() throws -> Range<Int>? {
        let start = position
        let available = bytes.count - start
        guard available > 0 else { return nil }
        let searchLength = min(available, limits.maxLineLength + 1)
        guard let found = memchr(bytes.baseAddress! + start, Int32(Self.cr), searchLength) else {
            if available > limits.maxLineLength {
                throw RESPDecodingError(.lineTooLong, "line longer than \(limits.maxLineLength) bytes")
            }
            return nil
        }
        let crIndex = start + (UnsafeRawPointer(found) - (bytes.baseAddress! + start))
        guard crIndex + 1 < bytes.count else { return nil }
        guard bytes[crIndex + 1] == Self.lf else {
            throw RESPDecodingError(.missingCRLF, "carriage return not followed by line feed at byte \(crIndex + 1)")
        }
        position = crIndex + 2
        return start..<crIndex
    }

    @inline(__always)
    func integer(_ range: Range<Int>) throws -> Int64 {
        var index = range.lowerBound
        var negative = false
        if index < range.upperBound, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        guard index < range.upperBound, range.upperBound - index <= 19 else {
            throw RESPDecodingError(.invalidInteger, "invalid integer \(text(range).debugDescription)")
        }
        var value: Int64 = 0
        while index < range.upperBound {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else {
                throw RESPDecodingError(.invalidInteger, "invalid integer \(text(range).debugDescription)")
            }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int64(digit))
            guard !o1, !o2 else {
                throw RESPDecodingError(.invalidInteger, "integer out of range \(text(range).debugDescription)")
            }
            value = sum
            index += 1
        }
        return negative ? -value : value
    }

    func text(_ range: Range<Int>) -> String {
        // Error messages quote at most 64 bytes of hostile input.
        let clipped = range.lowerBound..<min(range.upperBound, range.lowerBound + 64)
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[clipped]), as: UTF8.self)
    }

    /// Reads a length header. Returns -1 for a RESP2 null when `allowsNull`.
    @inline(__always)
    mutating func length(limit: Int, allowsNull: Bool, what: String) throws -> Int? {
        guard let range = try line() else { return nil }
        let value = try integer(range)
        if value == -1 && allowsNull { return -1 }
        guard value >= 0 else {
            throw RESPDecodingError(.invalidLength, "negative \(what) length \(value)")
        }
        guard value <= limit else {
            throw RESPDecodingError(.lengthTooLarge, "\(what) length \(value) exceeds the limit of \(limit)")
        }
        return Int(value)
    }

    /// The payload range of a bulk-style body of `count` bytes followed by CRLF.
    @inline(__always)
    mutating func body(_ count: Int) throws -> Range<Int>? {
        let start = position
        guard bytes.count - start >= count + 2 else { return nil }
        guard bytes[start + count] == Self.cr, bytes[start + count + 1] == Self.lf else {
            throw RESPDecodingError(.missingCRLF, "bulk payload of \(count) bytes not followed by CRLF")
        }
        position = start + count + 2
        return start..<(start + count)
    }

    func slice(_ range: Range<Int>) -> ByteBuffer {
        source.getSlice(at: source.readerIndex + range.lowerBound, length: range.count)!
    }

    func checkDepth(_ depth: Int) throws {
        if depth >= limits.maxDepth {
            throw RESPDecodingError(.nestingTooDeep, "aggregates nested deeper than \(limits.maxDepth)")
        }
    }

    mutating func parseValue(depth: Int) throws -> RESPValue? {
        guard position < bytes.count else { return nil }
        let type = bytes[position]
        position += 1
        switch type {
        case UInt8(ascii: "+"):
            guard let r = try line() else { return nil }
            return .simpleString(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[r]), as: UTF8.self))
        case UInt8(ascii: "-"):
            guard let r = try line() else { return nil }
            return .error(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[r]), as: UTF8.self))
        case UInt8(ascii: ":"):
            guard let r = try line() else { return nil }
            return .integer(try integer(r))
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            if type == UInt8(ascii: "$"), position < bytes.count, bytes[position] == UInt8(ascii: "?") {
                throw RESPDecodingError(.unsupportedType, "streamed strings are not supported")
            }
            guard let count = try length(limit: limits.maxBulkLength, allowsNull: type == UInt8(ascii: "$"), what: "bulk") else { return nil }
            if count == -1 { return .null }
            guard let r = try body(count) else { return nil }
            switch type {
            case UInt8(ascii: "$"):
                return .bulkString(slice(r))
            case UInt8(ascii: "!"):
                return .error(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[r]), as: UTF8.self))
            default:
                guard r.count >= 4, bytes[r.lowerBound + 3] == UInt8(ascii: ":") else {
                    throw RESPDecodingError(.invalidVerbatimString, "verbatim string without a three-letter format")
                }
                let format = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[r.lowerBound..<(r.lowerBound + 3)]), as: UTF8.self)
                return .verbatim(format: format, text: slice((r.lowerBound + 4)..<r.upperBound))
            }
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            try checkDepth(depth)
            if position < bytes.count, bytes[position] == UInt8(ascii: "?") {
                throw RESPDecodingError(.unsupportedType, "streamed aggregates are not supported")
            }
            guard let count = try length(limit: limits.maxAggregateCount, allowsNull: type == UInt8(ascii: "*"), what: "aggregate") else { return nil }
            if count == -1 { return .null }
            // Each element takes at least 3 bytes, so never reserve beyond what arrived.
            let remaining = (bytes.count - position) / 3
            if type == UInt8(ascii: "%") || type == UInt8(ascii: "|") {
                var entries: [RESPMapEntry] = []
                entries.reserveCapacity(min(count, remaining / 2))
                for _ in 0..<count {
                    guard let key = try parseValue(depth: depth + 1) else { return nil }
                    guard let value = try parseValue(depth: depth + 1) else { return nil }
                    entries.append(RESPMapEntry(key: key, value: value))
                }
                if type == UInt8(ascii: "|") {
                    // Attributes annotate the value that follows; that value is the reply.
                    return try parseValue(depth: depth)
                }
                return .map(entries)
            }
            var elements: [RESPValue] = []
            elements.reserveCapacity(min(count, remaining))
            for _ in 0..<count {
                guard let element = try parseValue(depth: depth + 1) else { return nil }
                elements.append(element)
            }
            switch type {
            case UInt8(ascii: "*"): return .array(elements)
            case UInt8(ascii: "~"): return .set(elements)
            default: return .push(elements)
            }
        case UInt8(ascii: "_"):
            guard let r = try line() else { return nil }
            guard r.isEmpty else { throw RESPDecodingError(.missingCRLF, "null with a payload") }
            return .null
        case UInt8(ascii: ","):
            guard let r = try line() else { return nil }
            return .double(try double(r))
        case UInt8(ascii: "#"):
            guard let r = try line() else { return nil }
            guard r.count == 1, bytes[r.lowerBound] == UInt8(ascii: "t") || bytes[r.lowerBound] == UInt8(ascii: "f") else {
                throw RESPDecodingError(.invalidBoolean, "invalid boolean \(text(r).debugDescription)")
            }
            return .boolean(bytes[r.lowerBound] == UInt8(ascii: "t"))
        case UInt8(ascii: "("):
            guard let r = try line() else { return nil }
            try validateBigNumber(r)
            return .bigNumber(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[r]), as: UTF8.self))
        default:
            throw RESPDecodingError(.invalidTypeByte, "unknown type byte 0x\(String(type, radix: 16)) at byte \(position - 1)")
        }
    }

    func double(_ range: Range<Int>) throws -> Double {
        let string = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        switch string {
        case "inf", "+inf": return .infinity
        case "-inf": return -.infinity
        case "nan", "-nan": return .nan
        default:
            guard !string.isEmpty, string.utf8.allSatisfy({ $0 < 0x80 && $0 != UInt8(ascii: " ") }),
                  let value = Double(string) else {
                throw RESPDecodingError(.invalidDouble, "invalid double \(text(range).debugDescription)")
            }
            return value
        }
    }

    func validateBigNumber(_ range: Range<Int>) throws {
        var index = range.lowerBound
        if index < range.upperBound, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") { index += 1 }
        guard index < range.upperBound,
              bytes[index..<range.upperBound].allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) else {
            throw RESPDecodingError(.invalidInteger, "invalid big number \(text(range).debugDescription)")
        }
    }

    /// Like `parseValue` but builds nothing; returns false when more bytes are needed.
    mutating func skipValue(depth: Int) throws -> Bool {
        guard position < bytes.count else { return false }
        let type = bytes[position]
        position += 1
        switch type {
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            return try line() != nil
        case UInt8(ascii: ":"):
            guard let r = try line() else { return false }
            _ = try integer(r)
            return true
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            if type == UInt8(ascii: "$"), position < bytes.count, bytes[position] == UInt8(ascii: "?") {
                throw RESPDecodingError(.unsupportedType, "streamed strings are not supported")
            }
            guard let count = try length(limit: limits.maxBulkLength, allowsNull: type == UInt8(ascii: "$"), what: "bulk") else { return false }
            if count == -1 { return true }
            return try body(count) != nil
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            try checkDepth(depth)
            if position < bytes.count, bytes[position] == UInt8(ascii: "?") {
                throw RESPDecodingError(.unsupportedType, "streamed aggregates are not supported")
            }
            guard let count = try length(limit: limits.maxAggregateCount, allowsNull: type == UInt8(ascii: "*"), what: "aggregate") else { return false }
            if count == -1 { return true }
            let elements = (type == UInt8(ascii: "%") || type == UInt8(ascii: "|")) ? count * 2 : count
            for _ in 0..<elements {
                guard try skipValue(depth: depth + 1) else { return false }
            }
            if type == UInt8(ascii: "|") { return try skipValue(depth: depth) }
            return true
        case UInt8(ascii: "_"):
            guard let r = try line() else { return false }
            guard r.isEmpty else { throw RESPDecodingError(.missingCRLF, "null with a payload") }
            return true
        case UInt8(ascii: ","):
            guard let r = try line() else { return false }
            _ = try double(r)
            return true
        case UInt8(ascii: "#"):
            guard let r = try line() else { return false }
            guard r.count == 1, bytes[r.lowerBound] == UInt8(ascii: "t") || bytes[r.lowerBound] == UInt8(ascii: "f") else {
                throw RESPDecodingError(.invalidBoolean, "invalid boolean \(text(r).debugDescription)")
            }
            return true
        case UInt8(ascii: "("):
            guard let r = try line() else { return false }
            try validateBigNumber(r)
            return true
        default:
            throw RESPDecodingError(.invalidTypeByte, "unknown type byte 0x\(String(type, radix: 16)) at byte \(position - 1)")
        }
    }
}
