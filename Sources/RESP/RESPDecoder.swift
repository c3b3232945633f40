import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why bytes could not be decoded as RESP; the connection treats any of these as fatal.
package struct RESPDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong with the input.
    package enum Kind: Sendable, Hashable {
        case invalidTypeByte
        case invalidLength
        /// A bulk string longer than `Limits.maxBulkLength`.
        case lengthTooLarge
        /// One aggregate declared more elements than `Limits.maxAggregateCount`.
        case countTooLarge
        /// One reply's aggregates declared more elements in all than `Limits.maxReplyElements`.
        case tooManyElements
        /// One reply is longer than `Limits.maxReplyBytes`.
        case replyTooLarge
        case missingCRLF
        case invalidInteger
        case invalidDouble
        case invalidBoolean
        case invalidVerbatimString
        case nestingTooDeep
        case lineTooLong
        case unsupportedType
    }

    package var kind: Kind
    package var message: String

    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    package var description: String { "malformed RESP reply: \(message)" }
}

extension RESPDecodingError {
    /// Makes an error out of line, keeping the messages' formatting out of the parser's hot
    /// paths.
    @inline(never)
    static func failure(_ kind: Kind, _ message: @autoclosure () -> String) -> RESPDecodingError {
        RESPDecodingError(kind, message())
    }
}

/// What the counting path learns about one reply without building a `RESPValue`.
package enum RESPReplySummary: Sendable, Hashable {
    case success
    case error(String)
    /// An out-of-band RESP3 push; not the reply to any command.
    case push
}

/// What is known of the reply whose first bytes the decoder has scanned but not completed.
package enum RESPPartialReply: Sendable, Hashable {
    /// No reply has begun, or only attributes ahead of it have arrived.
    case unknown
    /// An out-of-band RESP3 push.
    case push
    /// Anything else: the answer to a command.
    case reply
}

/// Decodes RESP2 and RESP3 replies from a ByteBuffer, returning nil while a reply is incomplete.
///
/// Limits keep hostile input from costing unbounded memory, stack or time: a declared length
/// is never trusted for allocation beyond the bytes actually received, nesting, element
/// counts and the bytes of one reply are bounded, and parsing is iterative.
///
/// The decoder remembers how far it scanned an incomplete reply, so a reply arriving in many
/// reads costs time linear in its size: keep handing it the same buffer, with new bytes
/// appended, until it returns a reply or throws (as `ByteToMessageDecoder` does).
package struct RESPDecoder: NIOSingleStepByteToMessageDecoder {
    package typealias InboundOut = RESPValue

    /// Bounds on what the decoder accepts.
    package struct Limits: Sendable, Hashable {
        /// The server's own `proto-max-bulk-len` default.
        package var maxBulkLength: Int = 512 * 1024 * 1024
        /// Elements one aggregate may declare (entries, for a map or an attribute). Far above
        /// any reply the job reads, and low enough that an absurd header fails at once.
        package var maxAggregateCount: Int = 1 << 24
        /// Elements of one reply in all, a map entry counting two. A decoded value costs tens
        /// of bytes per element, so this, not the byte bound, caps its memory (under 1 GiB).
        package var maxReplyElements: Int = 1 << 24
        /// Aggregates open at once. An attribute counts as one level around the value it
        /// annotates, so a run of attributes before a value is bounded by this too.
        package var maxDepth: Int = 100
        /// Longest simple string, error or number line.
        package var maxLineLength: Int = 1024 * 1024
        /// Bytes of one reply: room for one bulk string of the largest size the server sends
        /// by default, plus 1 MiB of framing and small elements around it. The inbound buffer
        /// holds an incomplete reply whole, so this bounds its memory too.
        package var maxReplyBytes: Int = 512 * 1024 * 1024 + 1024 * 1024
        package init() {}
    }

    package var limits: Limits

    /// How far the scan of the current incomplete reply got.
    var scan = ScanState()

    /// Bytes the parser examined over this decoder's life: tests check that it stays a small
    /// multiple of the input however the input is split into reads.
    package private(set) var examinedBytes = 0
    /// Runs of the general parser over this decoder's life: a read that cannot complete the
    /// element the scan waits on must not cost one.
    package private(set) var parserRuns = 0

    package init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// The kind of the incomplete reply at the front of the buffer last handed in, known
    /// from its type byte on (past any attributes); `.unknown` once a reply completes.
    package var partialReply: RESPPartialReply {
        guard scan.isSuspended, let type = scan.rootType else { return .unknown }
        return type == UInt8(ascii: ">") ? .push : .reply
    }

    /// Decodes one reply and moves the reader index past it, or returns nil (index unmoved).
    package mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        guard buffer.readableBytes > 0 else { return nil }
        if scan.isSuspended {
            // Continue the allocation-free scan where the last read left it; values are
            // built once, when the whole reply is there.
            guard buffer.readableBytes >= scan.wantBytes else { return nil }
            guard try parse(buffer, builds: false) != nil else { return nil }
            scan.reset()
        }
        // A fresh reply is usually complete: build it in one pass. If it is not, the pass
        // leaves the scan state at the first incomplete element, so nothing is re-read.
        guard let value = try parse(buffer, builds: true) else { return nil }
        buffer.moveReaderIndex(forwardBy: scan.offset)
        scan.reset()
        return value
    }

    package mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        try decode(buffer: &buffer)
    }

    /// Validates and skips one reply, keeping only whether it was an error or a push.
    /// Replies other than aggregates, such as `:1` or `+OK`, cost no allocation.
    package mutating func skipReply(buffer: inout ByteBuffer) throws -> RESPReplySummary? {
        guard buffer.readableBytes > 0 else { return nil }
        if scan.isSuspended, buffer.readableBytes < scan.wantBytes { return nil }
        let limits = self.limits
        let fresh = !scan.isSuspended
        let outcome: (length: Int, summary: RESPReplySummary?, examined: Int, general: Bool)
        do {
            // One pass over the bytes for both ways (each access to a buffer's bytes is
            // checked for exclusivity at run time); the state is handed over by address, see
            // `parse(_:builds:)`.
            outcome = try withUnsafeMutablePointer(to: &scan) { state in
                try buffer.withUnsafeReadableBytes { bytes in
                    var parser = RESPParser(bytes: bytes, source: nil, limits: limits, builds: false)
                    let type = bytes[0]
                    if fresh, !RESPParser.isAggregate(type) {
                        // Scalars answer almost every command of a pipeline: they bypass the
                        // scan state, under the general parser's own rules.
                        parser.position = 1
                        if let value = try parser.scalar(type) {
                            if case .error(let message) = value {
                                return (parser.position, .error(message), parser.examined + 1, false)
                            }
                            return (parser.position, .success, parser.examined + 1, false)
                        }
                        parser = RESPParser(bytes: bytes, source: nil, limits: limits, builds: false)
                    }
                    guard try parser.run(&state.pointee) != nil else { return (0, nil, parser.examined, true) }
                    let summary: RESPReplySummary
                    if let message = state.pointee.rootError {
                        summary = .error(message)
                    } else {
                        summary = state.pointee.rootType == UInt8(ascii: ">") ? .push : .success
                    }
                    return (state.pointee.offset, summary, parser.examined, true)
                }
            }
        } catch {
            scan.reset()
            throw error
        }
        examinedBytes &+= outcome.examined
        if outcome.general { parserRuns &+= 1 }
        guard let summary = outcome.summary else { return nil }
        buffer.moveReaderIndex(forwardBy: outcome.length)
        if outcome.general { scan.reset() }
        return summary
    }

    /// Runs the parser from the scan state over `buffer`: the reply (`.null` when not
    /// building; it is then `scan.offset` bytes long), or nil when bytes are missing. Any
    /// error resets the state.
    private mutating func parse(_ buffer: ByteBuffer, builds: Bool) throws -> RESPValue? {
        let limits = self.limits
        parserRuns &+= 1
        do {
            // The state is handed over by address: captured as a variable it would be boxed
            // and checked for exclusive access at run time, and copied, its frame stack would
            // be reallocated on every aggregate.
            let (value, examined) = try withUnsafeMutablePointer(to: &scan) { state in
                try buffer.withUnsafeReadableBytes { bytes in
                    var parser = RESPParser(bytes: bytes, source: builds ? buffer : nil, limits: limits, builds: builds)
                    let value = try parser.run(&state.pointee)
                    return (value, parser.examined)
                }
            }
            examinedBytes &+= examined
            return value
        } catch {
            scan.reset()
            throw error
        }
    }
}

/// Where the scan of an incomplete reply stopped, kept between reads so that each read
/// continues the scan rather than restarting it: re-parsing a reply that arrives in n reads
/// from its start each time would cost O(n²).
struct ScanState: Sendable {
    /// An aggregate still open, and how many elements it awaits.
    struct Frame: Sendable {
        var type: UInt8
        var remaining: Int
    }

    /// The start of the first element not yet scanned, counted from the reader index; the
    /// reply's length once it is complete.
    var offset = 0
    /// Open aggregates, outermost first; at most `maxDepth`.
    var frames: [Frame] = []
    /// Elements declared so far by the reply's aggregates.
    var elements = 0
    /// Readable bytes below which another attempt cannot progress; 0 for a fresh reply.
    var wantBytes = 0
    /// Where to resume the search for the CR of the line of the element at `offset`, so a
    /// long line arriving in small reads is searched once; 0 for its start.
    var lineResume = 0
    /// The reply itself (past its attributes) is this error.
    var rootError: String?
    /// The type byte of the reply itself (past its attributes), once it has been read.
    var rootType: UInt8?

    /// Whether part of a reply has been scanned; every incomplete attempt needs more bytes.
    var isSuspended: Bool { wantBytes > 0 }

    /// Makes the state fresh, keeping the frame stack's storage for the next reply.
    mutating func reset() {
        offset = 0
        // Empty once a reply is complete; an error may leave frames behind.
        if !frames.isEmpty { frames.removeAll(keepingCapacity: true) }
        elements = 0
        wantBytes = 0
        lineResume = 0
        rootError = nil
        rootType = nil
    }
}

/// One iterative parser over the readable bytes, for both paths: with `builds` it makes the
/// `RESPValue`, without it it only validates and counts, allocating nothing for scalars.
/// Both enforce every rule and limit through the same code.
struct RESPParser {
    let bytes: UnsafeRawBufferPointer
    /// The buffer `bytes` belong to, for zero-copy bulk string slices; nil when not building.
    let source: ByteBuffer?
    let limits: RESPDecoder.Limits
    let builds: Bool
    var position = 0
    /// See `ScanState.lineResume`; used by the first line read only.
    var lineResume = 0
    /// Readable bytes needed before the element that ran out of bytes can progress.
    var wantBytes = 0
    /// Bytes examined: searched for a CR, or stepped over as a bulk payload.
    var examined = 0

    init(bytes: UnsafeRawBufferPointer, source: ByteBuffer?, limits: RESPDecoder.Limits, builds: Bool) {
        self.bytes = bytes
        self.source = source
        self.limits = limits
        self.builds = builds
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    /// The range of the next line's content; advances past its CRLF.
    @inline(__always)
    mutating func line() throws -> Range<Int>? {
        let start = position
        // The CR may lie at most `maxLineLength` bytes after the line's start, and must leave
        // room for its LF within the reply's bound. Whether a line breaks either rule is
        // decided by the bytes of that window alone, so a reply fails the same way whether it
        // arrives in one read or many.
        let byReplyBound = limits.maxReplyBytes - 2 - start
        let window = min(limits.maxLineLength, byReplyBound)
        guard window >= 0 else {
            throw RESPDecodingError.failure(.replyTooLarge, "reply longer than \(limits.maxReplyBytes) bytes")
        }
        let windowEnd = start + window + 1
        let searchEnd = min(bytes.count, windowEnd)
        let from = max(start, min(lineResume, searchEnd))
        lineResume = 0
        var found: UnsafeMutableRawPointer?
        if from < searchEnd {
            found = memchr(bytes.baseAddress! + from, Int32(Self.cr), searchEnd - from)
        }
        guard let found else {
            examined &+= searchEnd - from
            if searchEnd == windowEnd {
                if window == byReplyBound && window < limits.maxLineLength {
                    throw RESPDecodingError.failure(.replyTooLarge, "reply longer than \(limits.maxReplyBytes) bytes (unterminated line at byte \(start))")
                }
                throw RESPDecodingError.failure(.lineTooLong, "line longer than \(limits.maxLineLength) bytes")
            }
            lineResume = searchEnd
            wantBytes = bytes.count + 1
            return nil
        }
        let crIndex = UnsafeRawPointer(found) - UnsafeRawPointer(bytes.baseAddress!)
        examined &+= crIndex + 1 - from
        guard crIndex + 1 < bytes.count else {
            lineResume = crIndex
            wantBytes = bytes.count + 1
            return nil
        }
        guard bytes[crIndex + 1] == Self.lf else {
            throw RESPDecodingError.failure(.missingCRLF, "carriage return not followed by line feed at byte \(crIndex + 1)")
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
            throw RESPDecodingError.failure(.invalidInteger, "invalid integer \(text(range).debugDescription)")
        }
        var value: Int64 = 0
        while index < range.upperBound {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else {
                throw RESPDecodingError.failure(.invalidInteger, "invalid integer \(text(range).debugDescription)")
            }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int64(digit))
            guard !o1, !o2 else {
                throw RESPDecodingError.failure(.invalidInteger, "integer out of range \(text(range).debugDescription)")
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

    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// Reads a length header. Returns -1 for a RESP2 null when `allowsNull`.
    @inline(__always)
    mutating func length(limit: Int, allowsNull: Bool, what: StaticString, tooLarge: RESPDecodingError.Kind) throws -> Int? {
        guard let range = try line() else { return nil }
        let value = try integer(range)
        if value == -1 && allowsNull { return -1 }
        guard value >= 0 else {
            throw RESPDecodingError.failure(.invalidLength, "negative \(what) \(value)")
        }
        guard value <= limit else {
            throw RESPDecodingError.failure(tooLarge, "\(what) \(value) exceeds the limit of \(limit)")
        }
        return Int(value)
    }

    /// The payload range of a bulk-style body of `count` bytes followed by CRLF.
    @inline(__always)
    mutating func body(_ count: Int) throws -> Range<Int>? {
        let start = position
        // Checked before waiting for the payload: a declared length is never waited for
        // beyond what one reply may hold. (Written so that nothing overflows.)
        guard count <= limits.maxReplyBytes - 2 - start else {
            throw RESPDecodingError.failure(.replyTooLarge, "reply longer than \(limits.maxReplyBytes) bytes (bulk payload of \(count) bytes at byte \(start))")
        }
        guard bytes.count - start - 2 >= count else {
            wantBytes = start + count + 2
            return nil
        }
        guard bytes[start + count] == Self.cr, bytes[start + count + 1] == Self.lf else {
            throw RESPDecodingError.failure(.missingCRLF, "bulk payload of \(count) bytes not followed by CRLF")
        }
        examined &+= count + 2
        position = start + count + 2
        return start..<(start + count)
    }

    func slice(_ range: Range<Int>) -> ByteBuffer {
        source!.getSlice(at: source!.readerIndex + range.lowerBound, length: range.count)!
    }

    /// Parses elements from where `state` stopped until the reply is complete, returning it
    /// (`.null` when not building), or returns nil when the bytes run out, with `state` at
    /// the start of the first incomplete element. Building always starts from a fresh state.
    mutating func run(_ state: inout ScanState) throws -> RESPValue? {
        position = state.offset
        lineResume = state.lineResume
        // Elements of each open aggregate, parallel to `state.frames`; building only.
        var built: [[RESPValue]] = []
        while true {
            let start = position
            guard start < bytes.count else { return suspend(&state) }
            let type = bytes[start]
            position = start + 1
            examined &+= 1
            // Once known, the root's type costs one comparison per element.
            if state.rootType == nil, type != UInt8(ascii: "|"), isRoot(state) { state.rootType = type }
            var value: RESPValue
            switch type {
            case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
                if state.frames.count >= limits.maxDepth {
                    throw RESPDecodingError.failure(.nestingTooDeep, "aggregates and attributes nested deeper than \(limits.maxDepth)")
                }
                if position < bytes.count, bytes[position] == UInt8(ascii: "?") {
                    throw RESPDecodingError.failure(.unsupportedType, "streamed aggregates are not supported")
                }
                guard let count = try length(limit: limits.maxAggregateCount, allowsNull: type == UInt8(ascii: "*"),
                                             what: "aggregate count", tooLarge: .countTooLarge) else {
                    return suspend(&state)
                }
                if count == -1 {
                    value = .null
                    break
                }
                let paired = type == UInt8(ascii: "%") || type == UInt8(ascii: "|")
                // Declared counts must all be met for the reply to complete, so they are
                // summed (and bounded) as soon as they are read.
                guard count <= (limits.maxReplyElements - state.elements) / (paired ? 2 : 1) else {
                    throw RESPDecodingError.failure(.tooManyElements, "reply declares more than \(limits.maxReplyElements) elements")
                }
                let elements = paired ? count * 2 : count
                state.elements += elements
                // An attribute's last slot is the value it annotates, which stands in its place.
                let slots = type == UInt8(ascii: "|") ? elements + 1 : elements
                if slots == 0 {
                    value = builds ? Self.aggregate(type, []) : .null
                    break
                }
                state.frames.append(ScanState.Frame(type: type, remaining: slots))
                if builds {
                    // Each element takes at least 3 bytes, so never reserve beyond what arrived.
                    var storage: [RESPValue] = []
                    storage.reserveCapacity(min(slots, (bytes.count - position) / 3))
                    built.append(storage)
                }
                commit(&state)
                continue
            default:
                guard let scalar = try scalar(type) else { return suspend(&state) }
                value = scalar
                if case .error(let message) = scalar, isRoot(state) { state.rootError = message }
            }
            commit(&state)
            // Hand the finished value to the aggregates it completes, innermost first.
            while !state.frames.isEmpty {
                let last = state.frames.count - 1
                state.frames[last].remaining -= 1
                if builds { built[last].append(value) }
                if state.frames[last].remaining > 0 { break }
                let frame = state.frames.removeLast()
                if builds { value = Self.aggregate(frame.type, built.removeLast()) }
            }
            if state.frames.isEmpty { return value }
        }
    }

    @inline(__always)
    static func isAggregate(_ type: UInt8) -> Bool {
        switch type {
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"): true
        default: false
        }
    }

    /// Whether the element about to be read is the reply itself: nothing encloses it but
    /// attributes awaiting the value they annotate.
    private func isRoot(_ state: ScanState) -> Bool {
        state.frames.allSatisfy { $0.type == UInt8(ascii: "|") && $0.remaining == 1 }
    }

    /// Records that the element ending at `position` is complete. Every element ends with
    /// a line or a payload, which `line()` and `body(_:)` keep within `maxReplyBytes`.
    @inline(__always)
    private mutating func commit(_ state: inout ScanState) {
        state.offset = position
    }

    /// Records where to resume once more bytes arrive.
    /// Nothing more is needed to bound the bytes held: a line or payload that could not fit
    /// in the reply has already thrown.
    private mutating func suspend(_ state: inout ScanState) -> RESPValue? {
        state.wantBytes = max(wantBytes, bytes.count + 1)
        state.lineResume = lineResume
        return nil
    }

    static func aggregate(_ type: UInt8, _ elements: [RESPValue]) -> RESPValue {
        switch type {
        case UInt8(ascii: "*"): return .array(elements)
        case UInt8(ascii: "~"): return .set(elements)
        case UInt8(ascii: ">"): return .push(elements)
        case UInt8(ascii: "%"):
            return .map(stride(from: 0, to: elements.count - 1, by: 2).map {
                RESPMapEntry(key: elements[$0], value: elements[$0 + 1])
            })
        default:
            // Attributes are dropped: the value they annotate is the element.
            return elements.last ?? .null
        }
    }

    /// One scalar, or nil when its bytes have not all arrived. Errors are built in both
    /// modes: the skipping path reports the reply's error message.
    @inline(__always)
    mutating func scalar(_ type: UInt8) throws -> RESPValue? {
        switch type {
        case UInt8(ascii: "+"):
            guard let r = try line() else { return nil }
            return builds ? .simpleString(string(r)) : .null
        case UInt8(ascii: "-"):
            guard let r = try line() else { return nil }
            return .error(string(r))
        case UInt8(ascii: ":"):
            guard let r = try line() else { return nil }
            return .integer(try integer(r))
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            if type == UInt8(ascii: "$"), position < bytes.count, bytes[position] == UInt8(ascii: "?") {
                throw RESPDecodingError.failure(.unsupportedType, "streamed strings are not supported")
            }
            guard let count = try length(limit: limits.maxBulkLength, allowsNull: type == UInt8(ascii: "$"),
                                         what: "bulk length", tooLarge: .lengthTooLarge) else { return nil }
            if count == -1 { return .null }
            guard let r = try body(count) else { return nil }
            switch type {
            case UInt8(ascii: "$"):
                return builds ? .bulkString(slice(r)) : .null
            case UInt8(ascii: "!"):
                return .error(string(r))
            default:
                guard r.count >= 4, bytes[r.lowerBound + 3] == UInt8(ascii: ":") else {
                    throw RESPDecodingError.failure(.invalidVerbatimString, "verbatim string without a three-letter format")
                }
                guard builds else { return .null }
                return .verbatim(format: string(r.lowerBound..<(r.lowerBound + 3)), text: slice((r.lowerBound + 4)..<r.upperBound))
            }
        case UInt8(ascii: "_"):
            guard let r = try line() else { return nil }
            guard r.isEmpty else { throw RESPDecodingError.failure(.missingCRLF, "null with a payload") }
            return .null
        case UInt8(ascii: ","):
            guard let r = try line() else { return nil }
            return .double(try double(r))
        case UInt8(ascii: "#"):
            guard let r = try line() else { return nil }
            guard r.count == 1, bytes[r.lowerBound] == UInt8(ascii: "t") || bytes[r.lowerBound] == UInt8(ascii: "f") else {
                throw RESPDecodingError.failure(.invalidBoolean, "invalid boolean \(text(r).debugDescription)")
            }
            return .boolean(bytes[r.lowerBound] == UInt8(ascii: "t"))
        case UInt8(ascii: "("):
            guard let r = try line() else { return nil }
            try validateBigNumber(r)
            return builds ? .bigNumber(string(r)) : .null
        default:
            throw RESPDecodingError.failure(.invalidTypeByte, "unknown type byte 0x\(String(type, radix: 16)) at byte \(position - 1)")
        }
    }

    func double(_ range: Range<Int>) throws -> Double {
        let string = string(range)
        switch string {
        case "inf", "+inf": return .infinity
        case "-inf": return -.infinity
        case "nan", "-nan": return .nan
        default:
            guard !string.isEmpty, string.utf8.allSatisfy({ $0 < 0x80 && $0 != UInt8(ascii: " ") }),
                  let value = Double(string) else {
                throw RESPDecodingError.failure(.invalidDouble, "invalid double \(text(range).debugDescription)")
            }
            return value
        }
    }

    func validateBigNumber(_ range: Range<Int>) throws {
        var index = range.lowerBound
        if index < range.upperBound, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") { index += 1 }
        guard index < range.upperBound,
              bytes[index..<range.upperBound].allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) else {
            throw RESPDecodingError.failure(.invalidInteger, "invalid big number \(text(range).debugDescription)")
        }
    }
}
