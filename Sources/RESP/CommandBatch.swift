import NIOCore

/// A pipeline's commands, already RESP-encoded into one buffer, ready to be written as is.
public struct CommandBatch: Sendable {
    @usableFromInline var _buffer: ByteBuffer
    @usableFromInline var _count: Int

    /// The encoded commands.
    public var buffer: ByteBuffer { _buffer }
    /// Number of commands in `buffer`.
    public var count: Int { _count }
    /// Arguments still owed by the last `appendCommand(argumentCount:)`; checked in debug builds.
    @usableFromInline var owedArguments: Int = 0

    public init(reservingCapacity bytes: Int = 0) {
        _buffer = ByteBufferAllocator().buffer(capacity: bytes)
        _count = 0
    }

    public var isEmpty: Bool { count == 0 }

    /// Starts one command of `argumentCount` arguments (the command name included); follow it
    /// with exactly that many `appendArgument` calls. No intermediate array is built.
    @inlinable
    public mutating func appendCommand(argumentCount: Int) {
        precondition(argumentCount > 0, "a command needs at least its name")
        assert(owedArguments == 0, "the previous command is missing \(owedArguments) argument(s)")
        _buffer.writeRESPHeader(UInt8(ascii: "*"), argumentCount)
        owedArguments = argumentCount
        _count += 1
    }

    @inlinable
    public mutating func appendArgument(_ argument: some RESPArgument) {
        assert(owedArguments > 0, "appendArgument without a pending appendCommand")
        owedArguments -= 1
        argument.encode(into: &_buffer)
    }

    public mutating func append(_ arguments: String...) {
        append(arguments)
    }

    @inlinable
    public mutating func append<C: Collection>(_ arguments: C) where C.Element: RESPArgument {
        appendCommand(argumentCount: arguments.count)
        for argument in arguments { appendArgument(argument) }
    }

    public mutating func append<S: Sequence>(_ arguments: S) where S.Element: RESPArgument {
        append(Array(arguments))
    }

    /// Appends a command whose arguments have mixed types, e.g. `["EXPIREAT", key, 1700000000]`.
    public mutating func append(arguments: [any RESPArgument]) {
        appendCommand(argumentCount: arguments.count)
        for argument in arguments {
            owedArguments -= 1
            argument.encode(into: &_buffer)
        }
    }

    /// Appends every command of another batch.
    public mutating func append(contentsOf other: CommandBatch) {
        assert(owedArguments == 0 && other.owedArguments == 0)
        var bytes = other.buffer
        _buffer.writeBuffer(&bytes)
        _count += other.count
    }

    public mutating func removeAll(keepingCapacity: Bool = true) {
        if keepingCapacity {
            _buffer.clear()
        } else {
            _buffer = ByteBufferAllocator().buffer(capacity: 0)
        }
        _count = 0
        owedArguments = 0
    }
}
