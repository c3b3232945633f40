import NIOCore
import RESP
import Testing

private func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

private func decodeAll(_ text: String) throws -> [RESPValue] {
    var input = buffer(text)
    var decoder = RESPDecoder()
    var values: [RESPValue] = []
    while let value = try decoder.decode(buffer: &input) { values.append(value) }
    #expect(input.readableBytes == 0, "bytes left over")
    return values
}

private func decodeOne(_ text: String) throws -> RESPValue {
    let values = try decodeAll(text)
    #expect(values.count == 1)
    return try #require(values.first)
}

private func decodingError(_ text: String, limits: RESPDecoder.Limits = .init()) -> RESPDecodingError? {
    var input = buffer(text)
    var decoder = RESPDecoder(limits: limits)
    do {
        while try decoder.decode(buffer: &input) != nil {}
        return nil
    } catch let error as RESPDecodingError {
        return error
    } catch {
        Issue.record("unexpected error type \(error)")
        return nil
    }
}

@Suite struct RESPDecoderTypes {
    @Test func simpleStringErrorInteger() throws {
        #expect(try decodeOne("+OK\r\n") == .simpleString("OK"))
        #expect(try decodeOne("-ERR bad thing\r\n") == .error("ERR bad thing"))
        #expect(try decodeOne(":-42\r\n") == .integer(-42))
        #expect(try decodeOne(":9223372036854775807\r\n") == .integer(.max))
        #expect(try decodeOne("+\r\n") == .simpleString(""))
    }

    @Test func bulkStringsAndNulls() throws {
        #expect(try decodeOne("$5\r\nhello\r\n") == .bulkString(buffer("hello")))
        #expect(try decodeOne("$0\r\n\r\n") == .bulkString(buffer("")))
        #expect(try decodeOne("$4\r\na\r\nb\r\n") == .bulkString(buffer("a\r\nb")))
        #expect(try decodeOne("$-1\r\n") == .null)
        #expect(try decodeOne("*-1\r\n") == .null)
        #expect(try decodeOne("_\r\n") == .null)
        #expect(try decodeOne("$5\r\nhello\r\n").string == "hello")
    }

    @Test func resp3Scalars() throws {
        #expect(try decodeOne(",3.25\r\n") == .double(3.25))
        #expect(try decodeOne(",-1e10\r\n") == .double(-1e10))
        #expect(try decodeOne(",inf\r\n") == .double(.infinity))
        #expect(try decodeOne(",-inf\r\n") == .double(-.infinity))
        #expect(try decodeOne(",nan\r\n").double?.isNaN == true)
        #expect(try decodeOne("#t\r\n") == .boolean(true))
        #expect(try decodeOne("#f\r\n") == .boolean(false))
        #expect(try decodeOne("(3492890328409238509324850943850943825024385\r\n") == .bigNumber("3492890328409238509324850943850943825024385"))
        #expect(try decodeOne("!21\r\nSYNTAX invalid syntax\r\n") == .error("SYNTAX invalid syntax"))
        #expect(try decodeOne("=15\r\ntxt:Some string\r\n") == .verbatim(format: "txt", text: buffer("Some string")))
        #expect(try decodeOne("=15\r\ntxt:Some string\r\n").string == "Some string")
    }

    @Test func aggregates() throws {
        #expect(try decodeOne("*2\r\n$3\r\nfoo\r\n:1\r\n") == .array([.bulkString(buffer("foo")), .integer(1)]))
        #expect(try decodeOne("*0\r\n") == .array([]))
        #expect(try decodeOne("~2\r\n+a\r\n+b\r\n") == .set([.simpleString("a"), .simpleString("b")]))
        #expect(try decodeOne(">2\r\n+message\r\n+hi\r\n") == .push([.simpleString("message"), .simpleString("hi")]))
        #expect(try decodeOne("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n") == .map([
            RESPMapEntry(key: .simpleString("first"), value: .integer(1)),
            RESPMapEntry(key: .simpleString("second"), value: .integer(2)),
        ]))
        #expect(try decodeOne("*2\r\n*1\r\n_\r\n%0\r\n") == .array([.array([.null]), .map([])]))
        // Attributes are dropped; the annotated value is the reply.
        #expect(try decodeOne("|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n*1\r\n:2039123\r\n") == .array([.integer(2039123)]))
        #expect(try decodeOne("*2\r\n$1\r\nk\r\n$1\r\nv\r\n").mapEntries?.first?.value.string == "v")
    }

    @Test func severalRepliesInOneRead() throws {
        let values = try decodeAll("+OK\r\n:1\r\n$-1\r\n*1\r\n+x\r\n")
        #expect(values == [.simpleString("OK"), .integer(1), .null, .array([.simpleString("x")])])
    }
}

/// A reply exercising every type, nested.
private let everyType = "*14\r\n+OK\r\n-ERR x\r\n:123\r\n$5\r\nhe\r\no\r\n$-1\r\n_\r\n,1.5\r\n#t\r\n(12345678901234567890\r\n=7\r\ntxt:abc\r\n~1\r\n:1\r\n%1\r\n+k\r\n*2\r\n$0\r\n\r\n!3\r\nbad\r\n>1\r\n+p\r\n|1\r\n+a\r\n+b\r\n:7\r\n"

@Suite struct RESPDecoderSplitReads {
    @Test func everySplitPoint() throws {
        let expected = try decodeOne(everyType)
        let bytes = Array(everyType.utf8)
        for split in 0...bytes.count {
            var decoder = RESPDecoder()
            var input = ByteBuffer(bytes: bytes[..<split])
            var value = try decoder.decode(buffer: &input)
            if split < bytes.count {
                #expect(value == nil, "decoded early at split \(split)")
                #expect(input.readableBytes == split, "consumed bytes of an incomplete reply")
                input.writeBytes(bytes[split...])
                value = try decoder.decode(buffer: &input)
            }
            #expect(value == expected, "split at \(split)")
            #expect(input.readableBytes == 0)
        }
    }

    @Test func byteByByte() throws {
        let expected = try decodeAll(everyType + everyType + ":5\r\n")
        var decoder = RESPDecoder()
        var input = ByteBuffer()
        var values: [RESPValue] = []
        for byte in Array((everyType + everyType + ":5\r\n").utf8) {
            input.writeInteger(byte)
            while let value = try decoder.decode(buffer: &input) { values.append(value) }
        }
        #expect(values == expected)
        #expect(values.count == 3)
    }

    @Test func skipReplyAtEverySplitPoint() throws {
        let stream = "+OK\r\n:1\r\n-WRONGTYPE bad\r\n" + everyType + ">1\r\n+push\r\n$3\r\nabc\r\n"
        let bytes = Array(stream.utf8)
        for split in 0...bytes.count {
            var decoder = RESPDecoder()
            var input = ByteBuffer(bytes: bytes[..<split])
            var summaries: [RESPReplySummary] = []
            while let s = try decoder.skipReply(buffer: &input) { summaries.append(s) }
            input.writeBytes(bytes[split...])
            while let s = try decoder.skipReply(buffer: &input) { summaries.append(s) }
            #expect(summaries == [.success, .success, .error("WRONGTYPE bad"), .success, .push, .success], "split at \(split)")
            #expect(input.readableBytes == 0)
        }
    }
}

/// What the decoder says of a reply it has begun: the connection's reply timeout counts a
/// push's bytes as no progress, so a push must be told apart from its first byte on, and an
/// attribute must not pass for either before the value it annotates begins.
@Suite struct RESPDecoderPartialReply {
    @Test(arguments: [
        // (reply, kind once its root type byte has arrived, offset of that byte)
        (">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", RESPPartialReply.push, 0),
        (">0\r\n", .push, 0),
        ("$5\r\nhello\r\n", .reply, 0),
        ("+OK\r\n", .reply, 0),
        ("-ERR x\r\n", .reply, 0),
        ("*-1\r\n", .reply, 0),
        ("*2\r\n>1\r\n+p\r\n:1\r\n", .reply, 0),   // a push inside a reply is part of it
        ("|1\r\n+a\r\n+b\r\n>1\r\n+p\r\n", .push, 12),
        ("|1\r\n+a\r\n>1\r\n+p\r\n:7\r\n", .reply, 16),  // an attribute holding a push
        ("|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n$1\r\nv\r\n", .reply, 24),
    ])
    func kindIsKnownFromTheRootTypeByte(reply: String, kind: RESPPartialReply, root: Int) throws {
        let bytes = Array(reply.utf8)
        #expect(bytes[root] != UInt8(ascii: "|"))
        for skipping in [false, true] {
            var decoder = RESPDecoder()
            var input = ByteBuffer()
            // Twice in a row: a completed reply leaves nothing known of the next.
            for _ in 0..<2 {
                #expect(decoder.partialReply == .unknown)
                for (index, byte) in bytes.enumerated() {
                    input.writeInteger(byte)
                    let done = skipping ? try decoder.skipReply(buffer: &input) != nil : try decoder.decode(buffer: &input) != nil
                    #expect(done == (index == bytes.count - 1), "\(reply.debugDescription) at byte \(index)")
                    let expected = done || index < root ? RESPPartialReply.unknown : kind
                    #expect(decoder.partialReply == expected, "\(reply.debugDescription) at byte \(index), skipping: \(skipping)")
                }
            }
        }
    }
}

@Suite struct RESPDecoderMalformedInput {
    @Test func badTypeByte() {
        #expect(decodingError("?oops\r\n")?.kind == .invalidTypeByte)
        #expect(decodingError("\0\r\n")?.kind == .invalidTypeByte)
        #expect(decodingError("*1\r\nX\r\n")?.kind == .invalidTypeByte)
    }

    @Test func badLengths() {
        #expect(decodingError("$-2\r\n")?.kind == .invalidLength)
        #expect(decodingError("*-5\r\n")?.kind == .invalidLength)
        #expect(decodingError("%-1\r\n")?.kind == .invalidLength)
        #expect(decodingError("$abc\r\n")?.kind == .invalidInteger)
        #expect(decodingError("$\r\n")?.kind == .invalidInteger)
        #expect(decodingError("$99999999999999999999999\r\n")?.kind == .invalidInteger)
        #expect(decodingError(":12a\r\n")?.kind == .invalidInteger)
        #expect(decodingError(":\r\n")?.kind == .invalidInteger)
    }

    @Test func absurdSizes() {
        #expect(decodingError("$536870913\r\n")?.kind == .lengthTooLarge)  // 512 MB + 1
        #expect(decodingError("$9223372036854775807\r\n")?.kind == .lengthTooLarge)
        #expect(decodingError("*9223372036854775807\r\n")?.kind == .countTooLarge)
        // A huge but allowed count must not allocate for it: it just waits for bytes.
        var input = buffer("*16777216\r\n:1\r\n")
        var decoder = RESPDecoder()
        #expect((try? decoder.decode(buffer: &input)) == .some(nil))
    }

    @Test func missingCRLF() {
        #expect(decodingError("+OK\rX")?.kind == .missingCRLF)
        #expect(decodingError("$3\r\nabcXY")?.kind == .missingCRLF)
        #expect(decodingError("_x\r\n")?.kind == .missingCRLF)
        #expect(decodingError("#x\r\n")?.kind == .invalidBoolean)
        #expect(decodingError(",abc\r\n")?.kind == .invalidDouble)
        #expect(decodingError("=2\r\nab\r\n")?.kind == .invalidVerbatimString)
        #expect(decodingError("(12x\r\n")?.kind == .invalidInteger)
    }

    @Test func lineTooLong() {
        var limits = RESPDecoder.Limits()
        limits.maxLineLength = 16
        #expect(decodingError("+" + String(repeating: "a", count: 100), limits: limits)?.kind == .lineTooLong)
    }

    @Test func deepNesting() {
        let deep = String(repeating: "*1\r\n", count: 101) + ":1\r\n"
        #expect(decodingError(deep)?.kind == .nestingTooDeep)
        let veryDeep = String(repeating: "*1\r\n", count: 1_000_000)
        #expect(decodingError(veryDeep)?.kind == .nestingTooDeep)
        let allowed = String(repeating: "*1\r\n", count: 99) + ":1\r\n"
        #expect(decodingError(allowed) == nil)
        var decoder = RESPDecoder()
        var input = buffer(deep)
        #expect(throws: RESPDecodingError.self) { try decoder.skipReply(buffer: &input) }
    }

    @Test func randomGarbageNeverCrashes() {
        // Seeded: the same 3,000 inputs every run, so that a crash reproduces.
        var generator = SplitMix64(state: 0x5EED_0F_6A7BA6E)
        let alphabet = Array("*$%~>|:+-_,#(!=\r\n0123456789-?abc".utf8)
        for _ in 0..<3000 {
            let length = Int.random(in: 1...40, using: &generator)
            let bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            var input = ByteBuffer(bytes: bytes)
            var decoder = RESPDecoder()
            _ = try? decoder.decode(buffer: &input)
            var again = ByteBuffer(bytes: bytes)
            _ = try? decoder.skipReply(buffer: &again)
        }
    }
}
