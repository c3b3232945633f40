import NIOCore
import RESP
import Testing

/// What happened to a byte stream: the replies decoded, then an error or leftover bytes.
private struct Outcome: Equatable, CustomStringConvertible {
    /// Descriptions rather than values, so that a NaN double compares equal to itself.
    var values: [String] = []
    var error: RESPDecodingError.Kind?
    var leftover = 0

    var description: String { "\(values) error: \(error.map { "\($0)" } ?? "none") leftover: \(leftover)" }
}

/// Decodes `bytes` arriving in reads that end at `splits` (then the rest), as a connection does.
private func decodeStream(_ bytes: [UInt8], splits: [Int] = [], limits: RESPDecoder.Limits = .init()) -> (Outcome, examined: Int) {
    var decoder = RESPDecoder(limits: limits)
    var input = ByteBuffer()
    var outcome = Outcome()
    var from = 0
    for end in splits.filter({ $0 > 0 && $0 < bytes.count }).sorted() + [bytes.count] where end >= from {
        input.writeBytes(bytes[from..<end])
        from = end
        do {
            while let value = try decoder.decode(buffer: &input) { outcome.values.append(value.description) }
        } catch let error as RESPDecodingError {
            outcome.error = error.kind
            return (outcome, decoder.examinedBytes)
        } catch {
            Issue.record("unexpected error type \(error)")
            return (outcome, decoder.examinedBytes)
        }
    }
    outcome.leftover = input.readableBytes
    return (outcome, decoder.examinedBytes)
}

/// Like `decodeStream` through `skipReply`, with each summary written as a decoded value
/// would be summarised.
private func skipStream(_ bytes: [UInt8], splits: [Int] = [], limits: RESPDecoder.Limits = .init()) -> (Outcome, examined: Int) {
    var decoder = RESPDecoder(limits: limits)
    var input = ByteBuffer()
    var outcome = Outcome()
    var from = 0
    for end in splits.filter({ $0 > 0 && $0 < bytes.count }).sorted() + [bytes.count] where end >= from {
        input.writeBytes(bytes[from..<end])
        from = end
        do {
            while let summary = try decoder.skipReply(buffer: &input) { outcome.values.append("\(summary)") }
        } catch let error as RESPDecodingError {
            outcome.error = error.kind
            return (outcome, decoder.examinedBytes)
        } catch {
            Issue.record("unexpected error type \(error)")
            return (outcome, decoder.examinedBytes)
        }
    }
    outcome.leftover = input.readableBytes
    return (outcome, decoder.examinedBytes)
}

/// The summary `skipReply` must give for a reply that decodes to `value`.
private func summary(of value: RESPValue) -> RESPReplySummary {
    switch value {
    case .error(let message): .error(message)
    case .push: .push
    default: .success
    }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A value nested `depth` levels deep in aggregates of one type; for maps and attributes the
/// nesting runs through the key.
private func nested(_ type: Character, depth: Int) -> String {
    var text = ":1\r\n"
    for _ in 0..<depth {
        switch type {
        case "%": text = "%1\r\n" + text + ":2\r\n"
        case "|": text = "|1\r\n" + text + ":2\r\n" + ":3\r\n"
        default: text = "\(type)1\r\n" + text
        }
    }
    return text
}

@Suite struct RESPDecoderLimits {
    @Test(arguments: ["*", "~", ">", "%", "|"] as [Character])
    func nestingIsBoundedInEveryAggregateType(type: Character) {
        let limits = RESPDecoder.Limits()
        let allowed = bytes(nested(type, depth: limits.maxDepth))
        let tooDeep = bytes(nested(type, depth: limits.maxDepth + 1))
        #expect(decodeStream(allowed).0.values.count == 1)
        #expect(skipStream(allowed).0.values.count == 1)
        #expect(decodeStream(tooDeep).0.error == .nestingTooDeep)
        #expect(skipStream(tooDeep).0.error == .nestingTooDeep)
        // The same when the reply arrives a few bytes at a time.
        let splits = Array(stride(from: 3, to: tooDeep.count, by: 7))
        #expect(decodeStream(tooDeep, splits: splits).0.error == .nestingTooDeep)
        #expect(skipStream(tooDeep, splits: splits).0.error == .nestingTooDeep)
        // Nesting without an end fails as early.
        let endless = bytes(String(repeating: "\(type)1\r\n", count: 200_000))
        #expect(decodeStream(endless).0.error == .nestingTooDeep)
        #expect(skipStream(endless).0.error == .nestingTooDeep)
    }

    @Test func mixedNestingCountsEveryLevel() {
        let levels = ["*1\r\n", "~1\r\n", ">1\r\n", "|0\r\n"]
        let text = (0...RESPDecoder.Limits().maxDepth).map { levels[$0 % levels.count] }.joined() + ":1\r\n"
        #expect(decodeStream(bytes(text)).0.error == .nestingTooDeep)
        #expect(skipStream(bytes(text)).0.error == .nestingTooDeep)
    }

    @Test func endlessAttributesThrowWithoutReadingThemAll() {
        let attribute = "|1\r\n+a\r\n+b\r\n"
        let maxDepth = RESPDecoder.Limits().maxDepth
        // Attributes before one value: each wraps the next, up to the depth bound.
        #expect(decodeStream(bytes(String(repeating: attribute, count: maxDepth) + ":7\r\n")).0.values == [":7"])
        #expect(skipStream(bytes(String(repeating: attribute, count: maxDepth) + "-ERR x\r\n")).0.values == ["error(\"ERR x\")"])
        let stream = bytes(String(repeating: attribute, count: 1_000_000))
        let (decoded, decodeWork) = decodeStream(stream)
        #expect(decoded.error == .nestingTooDeep)
        let (skipped, skipWork) = skipStream(stream)
        #expect(skipped.error == .nestingTooDeep)
        // Only the attributes up to the bound were read, not the megabytes behind them.
        let bound = 2 * (maxDepth + 1) * attribute.utf8.count
        #expect(decodeWork <= bound && skipWork <= bound, "examined \(decodeWork) and \(skipWork) bytes")

        // A server sending attributes forever, read by read: the decoder fails on the first
        // reads instead of buffering them.
        var decoder = RESPDecoder()
        var input = ByteBuffer()
        var reads = 0
        let chunk = bytes(String(repeating: attribute, count: 300))
        do {
            while reads < 1000 {
                input.writeBytes(chunk)
                reads += 1
                _ = try decoder.decode(buffer: &input)
            }
            Issue.record("endless attributes never failed")
        } catch let error as RESPDecodingError {
            #expect(error.kind == .nestingTooDeep)
        } catch {
            Issue.record("unexpected error type \(error)")
        }
        #expect(reads == 1)
    }

    @Test(arguments: ["*", "~", ">", "%", "|"] as [Character])
    func declaredCountAboveTheBoundThrows(type: Character) {
        let limit = RESPDecoder.Limits().maxAggregateCount
        #expect(decodeStream(bytes("\(type)\(limit + 1)\r\n")).0.error == .countTooLarge)
        #expect(skipStream(bytes("\(type)\(limit + 1)\r\n")).0.error == .countTooLarge)
        // The largest count allowed waits for its elements without allocating for them.
        // (A map or attribute entry is two elements of the reply's own bound.)
        let largest = "\(type)\(type == "%" || type == "|" ? limit / 2 : limit)\r\n:1\r\n"
        #expect(decodeStream(bytes(largest)).0 == Outcome(leftover: largest.utf8.count))
        #expect(skipStream(bytes(largest)).0 == Outcome(leftover: largest.utf8.count))
        var small = RESPDecoder.Limits()
        small.maxAggregateCount = 3
        let four = bytes("\(type)4\r\n" + String(repeating: ":1\r\n", count: 9))
        #expect(decodeStream(four, limits: small).0.error == .countTooLarge)
        #expect(skipStream(four, limits: small).0.error == .countTooLarge)
    }

    @Test func elementsOfOneReplyAreBounded() {
        var limits = RESPDecoder.Limits()
        limits.maxReplyElements = 10
        // 2 + 3 * 2 elements: allowed; 2 + 5 * 2: too many.
        let eight = bytes("*2\r\n%3\r\n" + String(repeating: ":1\r\n", count: 6) + ":1\r\n")
        #expect(decodeStream(eight, limits: limits).0.values.count == 1)
        #expect(skipStream(eight, limits: limits).0.values == ["success"])
        let twelve = bytes("*2\r\n%5\r\n" + String(repeating: ":1\r\n", count: 10) + ":1\r\n")
        #expect(decodeStream(twelve, limits: limits).0.error == .tooManyElements)
        #expect(skipStream(twelve, limits: limits).0.error == .tooManyElements)
        // Many small aggregates add up; attribute entries count too.
        let many = bytes("*4\r\n" + String(repeating: "*2\r\n:1\r\n:2\r\n", count: 4))
        #expect(decodeStream(many, limits: limits).0.error == .tooManyElements)
        let annotated = bytes("*1\r\n|5\r\n" + String(repeating: ":1\r\n", count: 10) + ":1\r\n")
        #expect(skipStream(annotated, limits: limits).0.error == .tooManyElements)
        // The default bound applies across aggregates that each respect theirs.
        let limit = RESPDecoder.Limits().maxReplyElements
        #expect(decodeStream(bytes("*2\r\n*\(limit - 1)\r\n")).0.error == .tooManyElements)
        #expect(skipStream(bytes("*2\r\n*\(limit - 1)\r\n")).0.error == .tooManyElements)
    }

    @Test func replyAboveTheByteBoundThrows() {
        var limits = RESPDecoder.Limits()
        limits.maxReplyBytes = 1000
        // An array of 26-byte bulk strings: 5 + 38 * 26 = 993 bytes fit; 40 elements do not.
        let element = "$19\r\n" + String(repeating: "v", count: 19) + "\r\n"
        let fits = bytes("*38\r\n" + String(repeating: element, count: 38))
        #expect(fits.count <= 1000)
        let tooLong = bytes("*40\r\n" + String(repeating: element, count: 40))
        #expect(decodeStream(fits, limits: limits).0.values.count == 1)
        #expect(skipStream(fits, limits: limits).0.values == ["success"])
        #expect(decodeStream(tooLong, limits: limits).0.error == .replyTooLarge)
        #expect(skipStream(tooLong, limits: limits).0.error == .replyTooLarge)
        let splits = Array(stride(from: 0, to: tooLong.count, by: 64))
        #expect(decodeStream(tooLong, splits: splits, limits: limits).0.error == .replyTooLarge)
        #expect(skipStream(tooLong, splits: splits, limits: limits).0.error == .replyTooLarge)
        // A declared payload beyond the bound fails before its bytes arrive.
        #expect(decodeStream(bytes("$2000\r\n"), limits: limits).0.error == .replyTooLarge)
        #expect(skipStream(bytes("*2\r\n:1\r\n$990\r\n"), limits: limits).0.error == .replyTooLarge)
        // So does an unterminated line longer than the reply may be, though lines may be longer.
        let longLine = bytes("+" + String(repeating: "a", count: 1500))
        #expect(decodeStream(longLine, limits: limits).0.error == .replyTooLarge)
        #expect(skipStream(longLine, limits: limits).0.error == .replyTooLarge)
        // Exactly at the bound is allowed, one byte more is not.
        let exact = bytes("$992\r\n" + String(repeating: "x", count: 992) + "\r\n")
        #expect(exact.count == 1000)
        #expect(decodeStream(exact, limits: limits).0.values.count == 1)
        #expect(skipStream(exact, limits: limits).0.values == ["success"])
        let over = bytes("$993\r\n" + String(repeating: "x", count: 993) + "\r\n")
        #expect(decodeStream(over, limits: limits).0.error == .replyTooLarge)
        // The defaults leave room for the largest bulk string the server sends, framed.
        let largest = "*2\r\n:1\r\n$\(RESPDecoder.Limits().maxBulkLength)\r\n"
        #expect(decodeStream(bytes(largest)).0 == Outcome(leftover: largest.utf8.count))
    }

    @Test func theBoundsAreDistinctErrorsThatSayWhichBound() throws {
        var limits = RESPDecoder.Limits()
        limits.maxReplyBytes = 100
        limits.maxAggregateCount = 5
        limits.maxReplyElements = 8
        let cases: [(String, RESPDecodingError.Kind, String)] = [
            ("*6\r\n", .countTooLarge, "aggregate count 6 exceeds the limit of 5"),
            ("*2\r\n*4\r\n*4\r\n", .tooManyElements, "more than 8 elements"),
            ("$200\r\n", .replyTooLarge, "reply longer than 100 bytes"),
            ("$99999999999\r\n", .lengthTooLarge, "bulk length 99999999999 exceeds the limit"),
        ]
        for (text, kind, message) in cases {
            var decoder = RESPDecoder(limits: limits)
            var input = ByteBuffer(string: text)
            let error = try #require(throws: RESPDecodingError.self) { try decoder.decode(buffer: &input) }
            #expect(error.kind == kind)
            #expect(error.description.contains(message), "\(error)")
        }
    }
}

@Suite struct RESPDecoderLinearCost {
    /// An array of `count` small bulk strings, and the value it decodes to.
    private func bigArray(_ count: Int) -> ([UInt8], RESPValue) {
        var text = "*\(count)\r\n"
        var elements: [RESPValue] = []
        for index in 0..<count {
            let payload = "v\(index)"
            text += "$\(payload.utf8.count)\r\n\(payload)\r\n"
            elements.append(.bulkString(ByteBuffer(string: payload)))
        }
        return (bytes(text), .array(elements))
    }

    /// Decodes well-formed `bytes` arriving in reads of `readSize` bytes.
    private func decodeInReads(_ bytes: [UInt8], readSize: Int) throws -> ([RESPValue], examined: Int, left: Int, runs: Int) {
        var decoder = RESPDecoder()
        var input = ByteBuffer()
        var values: [RESPValue] = []
        for start in stride(from: 0, to: bytes.count, by: readSize) {
            input.writeBytes(bytes[start..<min(start + readSize, bytes.count)])
            while let value = try decoder.decode(buffer: &input) { values.append(value) }
        }
        return (values, decoder.examinedBytes, input.readableBytes, decoder.parserRuns)
    }

    @Test(arguments: [1000, 64 * 1024])
    func manyElementsInSmallReadsCostLinearWork(readSize: Int) throws {
        let (reply, expected) = bigArray(50_000)
        let (values, decodeWork, left, _) = try decodeInReads(reply, readSize: readSize)
        #expect(values == [expected] && left == 0)
        // One scan as the reads arrive, one pass to build: re-scanning from the start at
        // every read would examine about reads / 2 times the reply.
        #expect(decodeWork <= 3 * reply.count, "examined \(decodeWork) bytes for a \(reply.count)-byte reply")
        let splits = Array(stride(from: readSize, to: reply.count, by: readSize))
        let (skipped, skipWork) = skipStream(reply, splits: splits)
        #expect(skipped == Outcome(values: ["success"]))
        #expect(skipWork <= 2 * reply.count, "examined \(skipWork) bytes for a \(reply.count)-byte reply")
    }

    @Test func oneLargeBulkStringInSmallReadsCostsLinearWork() throws {
        let size = 4 * 1024 * 1024
        var payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        // CR and LF inside the payload must not be taken for its end.
        payload[10] = UInt8(ascii: "\r")
        payload[11] = UInt8(ascii: "\n")
        payload[size - 1] = UInt8(ascii: "\r")
        let reply = bytes("*2\r\n:1\r\n$\(size)\r\n") + payload + bytes("\r\n")
        let (values, work, left, runs) = try decodeInReads(reply, readSize: 1024)
        #expect(values == [.array([.integer(1), .bulkString(ByteBuffer(bytes: payload))])] && left == 0)
        #expect(work <= 3 * reply.count, "examined \(work) bytes for a \(reply.count)-byte reply")
        // The payload's length is known from its header: the reads before its last byte
        // arrives wait without parsing (a first attempt, the scan, the build).
        #expect(runs <= 3, "\(runs) parser runs for \(reply.count / 1024) reads")
        let splits = Array(stride(from: 1024, to: reply.count, by: 1024))
        let (skipped, skipWork) = skipStream(reply, splits: splits)
        #expect(skipped == Outcome(values: ["success"]))
        #expect(skipWork <= 2 * reply.count, "examined \(skipWork) bytes for a \(reply.count)-byte reply")
    }

    @Test func aLongLineInSmallReadsIsSearchedOnce() {
        let reply = bytes("*2\r\n+" + String(repeating: "a", count: 512 * 1024) + "\r\n:1\r\n")
        let splits = Array(stride(from: 1000, to: reply.count, by: 1000))
        let (decoded, decodeWork) = decodeStream(reply, splits: splits)
        #expect(decoded.values.count == 1 && decoded.error == nil)
        #expect(decodeWork <= 3 * reply.count, "examined \(decodeWork) bytes for a \(reply.count)-byte reply")
        let (skipped, skipWork) = skipStream(reply, splits: splits)
        #expect(skipped == Outcome(values: ["success"]))
        #expect(skipWork <= 2 * reply.count, "examined \(skipWork) bytes for a \(reply.count)-byte reply")
    }
}

/// SplitMix64: a small deterministic generator, so that a failing case can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A random well-formed reply of every RESP type, nested at most `depth` levels.
private func randomReply(depth: Int, using random: inout SplitMix64) -> String {
    func text(_ alphabet: String, _ range: ClosedRange<Int>) -> String {
        let characters = Array(alphabet)
        return String((0..<Int.random(in: range, using: &random)).map { _ in characters.randomElement(using: &random)! })
    }
    let scalarKinds = 12
    let kind = Int.random(in: 0..<(depth > 0 ? scalarKinds + 6 : scalarKinds), using: &random)
    switch kind {
    case 0: return "+\(text("abcOK -", 0...8))\r\n"
    case 1: return "-\(text("ERR wrongtype", 0...12))\r\n"
    case 2: return ":\(Int64.random(in: -1_000_000...Int64.max, using: &random))\r\n"
    case 3:
        let payload = text("ab\r\n$*:", 0...20)
        return "$\(payload.utf8.count)\r\n\(payload)\r\n"
    case 4: return ["$-1\r\n", "*-1\r\n", "_\r\n"].randomElement(using: &random)!
    case 5: return ",\(["1.5", "-0.25", "inf", "-inf", "3", "1e10"].randomElement(using: &random)!)\r\n"
    case 6: return Bool.random(using: &random) ? "#t\r\n" : "#f\r\n"
    case 7: return "(\(text("0123456789", 1...30)))\r\n"
    case 8:
        let payload = text("SYNTAX bad\r\n", 0...15)
        return "!\(payload.utf8.count)\r\n\(payload)\r\n"
    case 9:
        let payload = "txt:" + text("some text\r\n", 0...15)
        return "=\(payload.utf8.count)\r\n\(payload)\r\n"
    case 10: return "$0\r\n\r\n"
    case 11: return ":\(Int.random(in: 0...9, using: &random))\r\n"
    default:
        let type = ["*", "~", ">", "%", "|", "*"][kind - scalarKinds]
        let count = Int.random(in: 0...4, using: &random)
        let children = (type == "%" || type == "|") ? count * 2 : count
        var reply = "\(type)\(count)\r\n"
        for _ in 0..<children { reply += randomReply(depth: depth - 1, using: &random) }
        if type == "|" { reply += randomReply(depth: depth - 1, using: &random) }
        return reply
    }
}

/// Changes a few bytes of `input`: overwrites, insertions, deletions, truncation.
private func mutate(_ input: [UInt8], using random: inout SplitMix64) -> [UInt8] {
    var bytes = input
    let alphabet = Array("*$%~>|:+-_,#(!=?\r\n0123456789-ab".utf8) + [0, 0xFF]
    for _ in 0..<Int.random(in: 1...3, using: &random) {
        let index = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &random)
        switch Int.random(in: 0..<5, using: &random) {
        case 0 where !bytes.isEmpty: bytes[index] = alphabet.randomElement(using: &random)!
        case 1: bytes.insert(alphabet.randomElement(using: &random)!, at: index)
        case 2 where !bytes.isEmpty: bytes.remove(at: index)
        case 3: bytes.removeLast(Int.random(in: 0...min(3, bytes.count), using: &random))
        default:
            // A digit changed makes a length or count disagree with what follows.
            if let digit = bytes.indices.filter({ bytes[$0] >= UInt8(ascii: "0") && bytes[$0] <= UInt8(ascii: "9") }).randomElement(using: &random) {
                bytes[digit] = UInt8(ascii: "0") + UInt8.random(in: 0...9, using: &random)
            }
        }
    }
    return bytes
}

@Suite struct RESPDecoderFuzz {
    @Test func seededRepliesDecodeTheSameHoweverTheyAreSplit() {
        var random = SplitMix64(state: 0x5EED_2024)
        var tight = RESPDecoder.Limits()
        tight.maxDepth = 3
        tight.maxAggregateCount = 3
        tight.maxReplyElements = 12
        tight.maxLineLength = 12
        tight.maxReplyBytes = 120
        tight.maxBulkLength = 16
        var decodedCases = 0
        var failedCases = 0
        for iteration in 0..<20_000 {
            var input: [UInt8] = []
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                input += bytes(randomReply(depth: Int.random(in: 0...4, using: &random), using: &random))
            }
            if iteration % 2 == 1 { input = mutate(input, using: &random) }
            let limits = iteration % 5 == 4 ? tight : RESPDecoder.Limits()
            let (reference, _) = decodeStream(input, limits: limits)
            if reference.error == nil { decodedCases += 1 } else { failedCases += 1 }

            var splits: [Int] = []
            if !input.isEmpty {
                for _ in 0..<Int.random(in: 1...6, using: &random) { splits.append(Int.random(in: 0...input.count, using: &random)) }
            }
            let (split, _) = decodeStream(input, splits: splits, limits: limits)
            #expect(split == reference, "case \(iteration) split at \(splits.sorted()): \(String(decoding: input, as: UTF8.self).debugDescription)")

            // The skipping path enforces the same rules and limits, and reads the same replies.
            var expected = reference
            var again = ByteBuffer(bytes: input)
            var decoder = RESPDecoder(limits: limits)
            expected.values = []
            while let value = try? decoder.decode(buffer: &again) { expected.values.append("\(summary(of: value))") }
            let (skipped, _) = skipStream(input, splits: splits, limits: limits)
            #expect(skipped == expected, "case \(iteration) skipped split at \(splits.sorted()): \(String(decoding: input, as: UTF8.self).debugDescription)")
            if split != reference || skipped != expected { break }
        }
        // Both outcomes were exercised, plenty of times each.
        #expect(decodedCases > 5000 && failedCases > 2000, "\(decodedCases) decoded, \(failedCases) failed")
    }
}
