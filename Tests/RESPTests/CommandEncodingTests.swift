import NIOCore
import RESP
import Testing

@Suite struct CommandEncoding {
    @Test func appendStrings() {
        var batch = CommandBatch()
        #expect(batch.isEmpty)
        batch.append("SET", "key", "välue")
        #expect(batch.count == 1)
        #expect(String(buffer: batch.buffer) == "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$6\r\nvälue\r\n")
    }

    @Test func hotPathMixedArguments() {
        var batch = CommandBatch(reservingCapacity: 1024)
        batch.appendCommand(argumentCount: 7)
        batch.appendArgument("ZADD")
        batch.appendArgument(Substring("idx"))
        batch.appendArgument(-12)
        batch.appendArgument(Int64(1234567890123))
        batch.appendArgument(1.5)
        batch.appendArgument(ByteBuffer(string: "bb"))
        batch.appendArgument([UInt8]([0, 255]))
        #expect(batch.count == 1)
        var expected = ByteBuffer(string: "*7\r\n$4\r\nZADD\r\n$3\r\nidx\r\n$3\r\n-12\r\n$13\r\n1234567890123\r\n$3\r\n1.5\r\n$2\r\nbb\r\n$2\r\n")
        expected.writeBytes([0, 255])
        expected.writeString("\r\n")
        #expect(batch.buffer == expected)
    }

    @Test func integersOfEveryWidth() {
        for value in [0, 9, 10, 99, 100, -1, -10, Int.max, Int.min, 1_700_000_000] {
            var buffer = ByteBuffer()
            value.encode(into: &buffer)
            let text = String(value)
            #expect(String(buffer: buffer) == "$\(text.utf8.count)\r\n\(text)\r\n")
        }
    }

    @Test func encodedCommandsDecodeBack() throws {
        var batch = CommandBatch()
        batch.append(["HSET", "h", "f", "v"])
        batch.append(arguments: ["EXPIREAT", "h", 1_700_000_000])
        batch.append(["a", "b"].lazy.map { $0 + "!" })
        var other = CommandBatch()
        other.append("PING")
        batch.append(contentsOf: other)
        #expect(batch.count == 4)
        var input = batch.buffer
        var decoder = RESPDecoder()
        var commands: [[String]] = []
        while let value = try decoder.decode(buffer: &input) {
            commands.append(try #require(value.array).map { $0.string ?? "?" })
        }
        #expect(commands == [["HSET", "h", "f", "v"], ["EXPIREAT", "h", "1700000000"], ["a!", "b!"], ["PING"]])
        batch.removeAll(keepingCapacity: true)
        #expect(batch.isEmpty && batch.buffer.readableBytes == 0)
    }
}

@Suite struct HashSlots {
    @Test func crc16KnownValue() {
        #expect(HashSlot.crc16(Array("123456789".utf8)) == 0x31C3)
    }

    @Test func knownSlots() {
        #expect(HashSlot.slot(for: "foo") == 12182)
        #expect(HashSlot.slot(for: "bar") == 5061)
        #expect(HashSlot.slot(for: "") == 0)
        #expect(HashSlot.slot(for: "123456789") == 0x31C3 % 16384)
    }

    @Test func hashTags() {
        #expect(HashSlot.slot(for: "{user1000}.following") == HashSlot.slot(for: "{user1000}.followers"))
        #expect(HashSlot.slot(for: "{user1000}.following") == HashSlot.slot(for: "user1000"))
        // Empty tag: the whole key is hashed. Only the first { counts.
        #expect(HashSlot.slot(for: "foo{}{bar}") == HashSlot.crc16(Array("foo{}{bar}".utf8)) % 16384)
        #expect(HashSlot.slot(for: "foo{{bar}}zap") == HashSlot.slot(for: "{bar"))
        #expect(HashSlot.slot(for: "foo{bar}{zap}") == HashSlot.slot(for: "bar"))
        #expect(HashSlot.slot(for: Array("{a}b".utf8)) == HashSlot.slot(for: "a"))
    }
}
