#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOEmbedded
import RESP
import Testing
@testable import Valkey

/// `ValkeyChannelHandler` on an `EmbeddedChannel`: no socket, no server. Requests go in with
/// `write`, the bytes the handler writes are read back with `readOutbound`, and the server's
/// replies are handed in with `writeInbound`, split wherever a test likes.
///
/// The tests are synchronous on purpose: an `EmbeddedEventLoop` belongs to the thread that
/// made it, and a future's state is read with `assumeIsolated().whenComplete`, which runs at
/// once for a completed future, so a request that never completes shows as "pending" rather
/// than hanging the test.
@Suite struct ChannelHandlerTests {

    // MARK: Writing

    @Test func pipelinedBatchIsWrittenAsTheExactRESPBytes() throws {
        let h = try Harness()
        var batch = CommandBatch()
        batch.append("SET", "user:1", "alice")
        batch.append(arguments: ["EXPIREAT", "user:1", 1_700_000_000])
        batch.append("GET", "user:1")
        let (replies, written) = h.collect(batch)
        let (pong, pingWritten) = h.single("PING")

        // Both requests are on the wire before any reply: the handler pipelines.
        let expected = "*3\r\n$3\r\nSET\r\n$6\r\nuser:1\r\n$5\r\nalice\r\n"
            + "*3\r\n$8\r\nEXPIREAT\r\n$6\r\nuser:1\r\n$10\r\n1700000000\r\n"
            + "*2\r\n$3\r\nGET\r\n$6\r\nuser:1\r\n"
        #expect(try h.channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: expected))
        #expect(try h.channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "*1\r\n$4\r\nPING\r\n"))
        #expect(try h.channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(try state(written)?.get() != nil)
        #expect(try state(pingWritten)?.get() != nil)
        #expect(state(replies) == nil && state(pong) == nil)

        try h.feed("+OK\r\n:1\r\n$5\r\nalice\r\n+PONG\r\n")
        #expect(try state(replies)?.get() == [.simpleString("OK"), .integer(1), bulk("alice")])
        #expect(try state(pong)?.get() == .simpleString("PONG"))
        try h.finish()
    }

    @Test func requestLargerThanAChunkIsWrittenInChunksInOrder() throws {
        let h = try Harness()
        let value = String(repeating: "x", count: 300_000)
        var batch = CommandBatch()
        batch.append("SET", "big", value)
        let (reply, written) = h.single(batch)
        var chunks: [ByteBuffer] = []
        while let chunk = try h.channel.readOutbound(as: ByteBuffer.self) { chunks.append(chunk) }
        let size = ValkeyChannelHandler.chunkSize
        #expect(chunks.map(\.readableBytes) == [size, size, batch.buffer.readableBytes - 2 * size])
        var joined = ByteBuffer()
        for var chunk in chunks { joined.writeBuffer(&chunk) }
        #expect(joined == batch.buffer)
        #expect(try state(written)?.get() != nil)
        try h.feed("+OK\r\n")
        #expect(try state(reply)?.get() == .simpleString("OK"))
        try h.finish()
    }

    @Test func writesWaitWhileTheChannelIsNotWritable() throws {
        let h = try Harness()
        h.channel.isWritable = false
        let (reply, written) = h.single("GET", "k")
        #expect(try h.channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(state(written) == nil)

        h.channel.isWritable = true
        h.channel.pipeline.fireChannelWritabilityChanged()
        #expect(try h.channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"))
        #expect(try state(written)?.get() != nil)
        try h.feed("$1\r\nv\r\n")
        #expect(try state(reply)?.get() == bulk("v"))
        try h.finish()
    }

    // MARK: Matching replies to requests

    /// Six requests of the three kinds, with pushes between replies; the replies arrive in
    /// random pieces. After every piece, exactly the requests whose last reply byte has
    /// arrived are complete, and each gets its own replies.
    @Test(arguments: [1, 2, 3, 7, 42, 2024, 65_537] as [UInt64])
    func repliesSplitAtRandomPointsAreMatchedInOrder(seed: UInt64) throws {
        let h = try Harness()
        var wire = ""
        var ends: [Int] = []
        func reply(_ text: String) { wire += text }
        func endOfRequest() { ends.append(wire.utf8.count) }
        let push = ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nhi!\r\n"

        let r0 = h.single("GET", "a").reply
        reply("+OK\r\n"); endOfRequest()

        let r1 = h.collect(3).reply
        reply(":42\r\n"); reply(push); reply("$5\r\nhello\r\n"); reply("-ERR wrong\r\n"); endOfRequest()

        let r2 = h.single("HGETALL", "h").reply
        reply("*2\r\n$1\r\na\r\n:7\r\n"); endOfRequest()

        let r3 = h.counting(5).reply
        reply("+OK\r\n"); reply("-MOVED 3999 127.0.0.1:6381\r\n"); reply(push); reply(":1\r\n")
        reply("*3\r\n$1\r\nx\r\n-ERR inner errors are not the reply's\r\n:3\r\n")
        reply("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"); endOfRequest()

        let r4 = h.single("GET", "missing").reply
        reply(push); reply("$-1\r\n"); endOfRequest()

        let r5 = h.collect(2).reply
        reply("%1\r\n+key\r\n$0\r\n\r\n"); reply("$12\r\nhello\r\nworld\r\n"); endOfRequest()

        let bytes = Array(wire.utf8)
        var random = SplitMix64(seed: seed)
        let pieceCount = Int.random(in: 2...40, using: &random)
        var cuts = Set<Int>()
        while cuts.count < pieceCount - 1 { cuts.insert(Int.random(in: 1..<bytes.count, using: &random)) }
        let bounds = [0] + cuts.sorted() + [bytes.count]

        let done: [() -> Bool] = [
            { state(r0) != nil }, { state(r1) != nil }, { state(r2) != nil },
            { state(r3) != nil }, { state(r4) != nil }, { state(r5) != nil },
        ]
        for (from, to) in zip(bounds, bounds.dropFirst()) {
            try h.feed(bytes[from..<to])
            for (index, end) in ends.enumerated() {
                #expect(done[index]() == (to >= end), "request \(index) after \(to) of \(bytes.count) bytes (seed \(seed))")
            }
        }

        #expect(try state(r0)?.get() == .simpleString("OK"))
        #expect(try state(r1)?.get() == [.integer(42), bulk("hello"), .error("ERR wrong")])
        #expect(try state(r2)?.get() == .array([bulk("a"), .integer(7)]))
        let outcome = try #require(try state(r3)?.get())
        #expect(outcome.commandCount == 5 && outcome.errorCount == 2)
        #expect(outcome.firstErrors.map(\.index) == [1, 4])
        #expect(outcome.firstErrors.map(\.message) == [
            "MOVED 3999 127.0.0.1:6381", "WRONGTYPE Operation against a key holding the wrong kind of value",
        ])
        #expect(outcome.clusterRetries.map(\.index) == [1])
        #expect(try state(r4)?.get() == .null)
        #expect(try state(r5)?.get() == [.map([RESPMapEntry(key: .simpleString("key"), value: bulk(""))]), bulk("hello\r\nworld")])
        #expect(h.channel.isActive)
        try h.finish()
    }

    @Test func errorReplyGoesToItsOwnRequestOnly() throws {
        let h = try Harness()
        let first = h.single("SET", "a", "1").reply
        let second = h.single("INCR", "a-string").reply
        let third = h.single("GET", "a").reply
        try h.feed("+OK\r\n-ERR value is not an integer or out of range\r\n$1\r\n1\r\n")
        #expect(try state(first)?.get() == .simpleString("OK"))
        // An error reply is the request's value, not a failure of the request or the channel.
        #expect(try state(second)?.get() == .error("ERR value is not an integer or out of range"))
        #expect(try state(third)?.get() == bulk("1"))
        #expect(h.channel.isActive)

        // In a counted pipeline the error is recorded at its command's index.
        let outcome = h.counting(3).reply
        try h.feed(":1\r\n:2\r\n-OOM command not allowed\r\n")
        let counted = try #require(try state(outcome)?.get())
        #expect(counted.commandCount == 3 && counted.errorCount == 1)
        #expect(counted.firstErrors.map(\.index) == [2] && counted.firstErrors.map(\.message) == ["OOM command not allowed"])
        #expect(counted.clusterRetries.isEmpty)
        try h.finish()
    }

    @Test func replySplitInsideABulkString() throws {
        let h = try Harness()
        let single = h.single("GET", "k").reply
        try h.feed("$11\r\nhello ")
        #expect(state(single) == nil)
        try h.feed("wor")
        #expect(state(single) == nil)
        try h.feed("ld\r")
        #expect(state(single) == nil, "the payload is complete but its CRLF is not")
        try h.feed("\n")
        #expect(try state(single)?.get() == bulk("hello world"))

        // The same through the counting path, which skips replies without building them,
        // with the split inside the length line and inside the payload.
        let counted = h.counting(2).reply
        try h.feed("$1")
        try h.feed("0\r\n0123")
        try h.feed("456789\r\n-ERR x")
        #expect(state(counted) == nil)
        try h.feed("\r\n")
        let outcome = try #require(try state(counted)?.get())
        #expect(outcome.commandCount == 2 && outcome.firstErrors.map(\.index) == [1])

        // A large value arriving in many reads.
        let big = String(repeating: "0123456789", count: 50_000)
        let large = h.single("GET", "big").reply
        let wire = Array("$\(big.utf8.count)\r\n\(big)\r\n".utf8)
        var offset = 0
        while offset < wire.count {
            #expect(state(large) == nil)
            let end = min(offset + 4093, wire.count)
            try h.feed(wire[offset..<end])
            offset = end
        }
        #expect(try state(large)?.get() == bulk(big))
        try h.finish()
    }

    @Test func pushWithNothingPendingIsIgnored() throws {
        let h = try Harness()
        try h.feed(">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n")
        #expect(h.channel.isActive)
        let reply = h.single("PING").reply
        try h.feed("+PONG\r\n")
        #expect(try state(reply)?.get() == .simpleString("PONG"))
        try h.finish()
    }

    // MARK: Failures

    @Test func replyWithNoRequestPendingClosesTheChannel() throws {
        let h = try Harness()
        try h.feed("+OK\r\n")
        #expect(!h.channel.isActive)
        // Until the pipeline is torn down, work sent afterwards is failed by the handler with
        // the reason, not left pending.
        let (late, written) = h.single("PING")
        let error = try #require(failure(late))
        #expect(error.kind == .connectionClosed)
        #expect(error.message.contains("reply received with no command pending: +OK"))
        #expect(error.message.contains("protocol error"))
        #expect(failure(written)?.kind == .connectionClosed)
        try h.finish(acceptAlreadyClosed: true)
    }

    @Test func extraReplyAfterTheLastPendingOneClosesTheChannel() throws {
        let h = try Harness()
        let reply = h.single("GET", "k").reply
        try h.feed("$1\r\nv\r\n:99\r\n")
        // The request got its own reply; the surplus one is a protocol error for the connection.
        #expect(try state(reply)?.get() == bulk("v"))
        #expect(!h.channel.isActive)
        let late = h.single("PING").reply
        #expect(failure(late)?.message.contains("no command pending: :99") == true)
        try h.finish(acceptAlreadyClosed: true)
    }

    @Test func malformedReplyFailsEveryPendingRequest() throws {
        let h = try Harness()
        let first = h.single("GET", "a").reply
        let second = h.collect(2).reply
        let third = h.counting(1).reply
        try h.feed("HTTP/1.1 400 Bad Request\r\n")
        for error in [failure(first), failure(second), failure(third)] {
            #expect(error?.kind == .protocolError)
            #expect(error?.message.contains("malformed RESP reply") == true)
            #expect(error?.server == "test:6379")
        }
        #expect(!h.channel.isActive)
        try h.finish(acceptAlreadyClosed: true)
    }

    @Test func closingWithRequestsPendingFailsEachOfThem() throws {
        let h = try Harness()
        let done = h.single("GET", "a").reply
        let partial = h.collect(3).reply
        let counted = h.counting(2).reply
        let single = h.single("GET", "b").reply
        // The first request is answered, the second half-answered (one reply and a half).
        try h.feed("+OK\r\n:1\r\n$5\r\nhe")
        #expect(try state(done)?.get() == .simpleString("OK"))

        h.channel.close(promise: nil)
        let errors = [failure(partial), failure(counted), failure(single)]
        for error in errors {
            #expect(error?.kind == .connectionClosed)
            #expect(error?.message == "the server closed the connection with 3 request(s) pending")
        }
        // A request written after the close is refused at once.
        let late = h.single("PING").reply
        #expect(failure(late)?.kind == .connectionClosed)
        try h.finish(acceptAlreadyClosed: true)
    }

    // MARK: Timeout
    //
    // The handler reads the event loop's clock, so an EmbeddedEventLoop's virtual time drives
    // the timer: no real time passes in these tests.

    @Test func commandTimeoutFailsThePendingRequest() throws {
        let h = try Harness(timeout: .milliseconds(100))
        let reply = h.single("BLPOP", "q", "0").reply
        let other = h.collect(2).reply
        h.loop.advanceTime(by: .milliseconds(99))
        #expect(state(reply) == nil, "not due yet")
        h.loop.advanceTime(by: .milliseconds(1))
        let error = try #require(failure(reply))
        #expect(error.kind == .timeout)
        #expect(error.message == "no reply for 0.1s (the Valkey timeout) while commands were pending; the connection was closed")
        #expect(failure(other)?.kind == .timeout)
        #expect(!h.channel.isActive)
        try h.finish(acceptAlreadyClosed: true)
    }

    @Test func repliesThatKeepComingDeferTheTimeout() throws {
        let h = try Harness(timeout: .milliseconds(1000))
        let first = h.single("GET", "a").reply
        let second = h.single("GET", "b").reply
        h.loop.advanceTime(by: .milliseconds(700))
        try h.feed("+first\r\n")
        #expect(try state(first)?.get() == .simpleString("first"))
        // The first timer (due at 1.0 s) runs and finds the last progress at 0.7 s.
        h.loop.advanceTime(by: .milliseconds(500))
        #expect(state(second) == nil, "a reply 0.5 s ago: not timed out")
        #expect(h.channel.isActive)
        h.loop.advanceTime(by: .milliseconds(499))
        #expect(state(second) == nil, "due at 1.7 s, not at 1.699 s")
        h.loop.advanceTime(by: .milliseconds(1))
        #expect(failure(second)?.kind == .timeout)
        try h.finish(acceptAlreadyClosed: true)
    }

    /// Pushes answer nothing: a server that sends only pushes (whole, after an attribute, or
    /// one byte at a time) times the pending request out when silence would have.
    @Test(arguments: RequestKind.allCases)
    func pushesAreNoProgressTowardAReply(kind: RequestKind) throws {
        let h = try Harness(timeout: .milliseconds(1000))
        let request = h.request(kind)
        let pushes = [
            ">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n",
            "|1\r\n+ttl\r\n:3\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
        ]
        for step in 0..<8 {
            h.loop.advanceTime(by: .milliseconds(100))
            try h.feed(pushes[step % 2])
        }
        // 0.8 s: a push trickles in, a byte every 5 ms, and stays incomplete.
        let trickled: [UInt8] = Array(pushes[0].utf8.dropLast())
        for byte in trickled {
            h.loop.advanceTime(by: .milliseconds(5))
            try h.feed([byte][...])
        }
        let elapsed: Int64 = 800 + 5 * Int64(trickled.count)
        h.loop.advanceTime(by: .milliseconds(999 - elapsed))
        #expect(request.isPending, "not due before 1 s")
        #expect(h.channel.isActive)
        h.loop.advanceTime(by: .milliseconds(1))
        let error = try #require(request.error, "a push stream kept the request alive")
        #expect(error.kind == .timeout)
        #expect(error.message.hasPrefix("no reply for 1s (the Valkey timeout)"))
        #expect(!h.channel.isActive)
        try h.finish(acceptAlreadyClosed: true)
    }

    /// A long reply arriving slowly is progress, read after read, though no reply completes
    /// for far longer than the timeout.
    @Test(arguments: RequestKind.allCases)
    func aLongReplyArrivingSlowlyDoesNotTimeOut(kind: RequestKind) throws {
        let h = try Harness(timeout: .milliseconds(1000))
        let request = h.request(kind)
        let payload = String(repeating: "0123456789", count: 300)
        let wire = Array("$\(payload.utf8.count)\r\n\(payload)\r\n".utf8)
        // The first read is the type byte alone; then 97 bytes every 0.6 s (19 s in all).
        var bounds = [0, 1]
        while bounds.last! < wire.count { bounds.append(min(bounds.last! + 97, wire.count)) }
        for (index, (from, to)) in zip(bounds, bounds.dropFirst()).enumerated() {
            h.loop.advanceTime(by: .milliseconds(600))
            guard request.isPending else {
                Issue.record("ended before read \(index) at byte \(from): \(String(describing: request.error))")
                break
            }
            try h.feed(wire[from..<to])
        }
        #expect(request.error == nil && !request.isPending)
        if kind == .single {
            #expect(try state(request.single!)?.get() == bulk(payload))
        }
        // The trickle left no credit: the next request times out on silence as usual.
        let next = h.request(.single)
        h.loop.advanceTime(by: .milliseconds(999))
        #expect(next.isPending)
        h.loop.advanceTime(by: .milliseconds(1))
        #expect(next.error?.kind == .timeout)
        try h.finish(acceptAlreadyClosed: true)
    }

    @Test func idleConnectionDoesNotTimeOut() throws {
        let h = try Harness(timeout: .milliseconds(50))
        let reply = h.single("PING").reply
        try h.feed("+PONG\r\n")
        #expect(try state(reply)?.get() == .simpleString("PONG"))
        h.loop.advanceTime(by: .seconds(60))
        #expect(h.channel.isActive)
        let next = h.single("PING").reply
        try h.feed("+PONG\r\n")
        #expect(try state(next)?.get() == .simpleString("PONG"))
        try h.finish()
    }
}

// MARK: Helpers

/// One handler on a connected EmbeddedChannel.
private final class Harness {
    let channel: EmbeddedChannel
    var loop: EmbeddedEventLoop { channel.embeddedEventLoop }

    init(timeout: TimeAmount = .seconds(30)) throws {
        channel = EmbeddedChannel(handler: ValkeyChannelHandler(server: "test:6379", commandTimeout: timeout))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6379)).wait()
    }

    private func send(_ request: ValkeyRequest) -> EventLoopFuture<Void> {
        let written = loop.makePromise(of: Void.self)
        channel.writeAndFlush(request, promise: written)
        return written.futureResult
    }

    func single(_ arguments: String...) -> (reply: EventLoopFuture<RESPValue>, written: EventLoopFuture<Void>) {
        var batch = CommandBatch()
        batch.append(arguments)
        return single(batch)
    }

    func single(_ batch: CommandBatch) -> (reply: EventLoopFuture<RESPValue>, written: EventLoopFuture<Void>) {
        let promise = loop.makePromise(of: RESPValue.self)
        return (promise.futureResult, send(.single(batch.buffer, promise)))
    }

    func collect(_ batch: CommandBatch) -> (reply: EventLoopFuture<[RESPValue]>, written: EventLoopFuture<Void>) {
        let promise = loop.makePromise(of: [RESPValue].self)
        return (promise.futureResult, send(.collect(batch.buffer, count: batch.count, promise)))
    }

    /// `count` PINGs collected; the replies are whatever the test feeds.
    func collect(_ count: Int) -> (reply: EventLoopFuture<[RESPValue]>, written: EventLoopFuture<Void>) {
        collect(pings(count))
    }

    /// One request of `kind` that awaits a single reply.
    func request(_ kind: RequestKind) -> PendingRequest {
        switch kind {
        case .single:
            let reply = single("GET", "k").reply
            return PendingRequest(single: reply, done: reply.map { _ in })
        case .collect: return PendingRequest(done: collect(1).reply.map { _ in })
        case .counting: return PendingRequest(done: counting(1).reply.map { _ in })
        }
    }

    func counting(_ count: Int) -> (reply: EventLoopFuture<PipelineOutcome>, written: EventLoopFuture<Void>) {
        let batch = pings(count)
        let promise = loop.makePromise(of: PipelineOutcome.self)
        return (promise.futureResult, send(.counting(batch.buffer, count: batch.count, promise)))
    }

    private func pings(_ count: Int) -> CommandBatch {
        var batch = CommandBatch()
        for _ in 0..<count { batch.append("PING") }
        return batch
    }

    func feed(_ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    func feed(_ bytes: ArraySlice<UInt8>) throws {
        try channel.writeInbound(ByteBuffer(bytes: bytes))
    }

    /// Closes the channel, which fails whatever is still pending (no promise leaks).
    func finish(acceptAlreadyClosed: Bool = false) throws {
        _ = try channel.finish(acceptAlreadyClosed: acceptAlreadyClosed)
    }
}

/// The three kinds of request; each has its own path through the handler (`counting` skips
/// replies without building them).
enum RequestKind: String, CaseIterable, Sendable {
    case single, collect, counting
}

/// A request of any kind, seen as done, failed or pending.
private struct PendingRequest {
    var single: EventLoopFuture<RESPValue>?
    var done: EventLoopFuture<Void>

    init(single: EventLoopFuture<RESPValue>? = nil, done: EventLoopFuture<Void>) {
        self.single = single
        self.done = done
    }

    var isPending: Bool { state(done) == nil }
    var error: ValkeyError? { failure(done) }
}

/// The future's result if it is complete, nil while it is pending. Never waits.
private func state<T>(_ future: EventLoopFuture<T>) -> Result<T, any Error>? {
    var result: Result<T, any Error>?
    future.assumeIsolated().whenComplete { result = $0 }
    return result
}

private func failure<T>(_ future: EventLoopFuture<T>) -> ValkeyError? {
    guard case .failure(let error)? = state(future) else { return nil }
    return error as? ValkeyError
}

private func bulk(_ text: String) -> RESPValue {
    .bulkString(ByteBuffer(string: text))
}

/// A small seeded generator, so a failing split can be replayed.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
