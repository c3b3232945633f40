import NIOCore

/// A pipeline's commands, already RESP-encoded into one buffer, ready to be written as is.
package struct CommandBatch: Sendable {
    @usableFromInline var _buffer: ByteBuffer
    @usableFromInline var _count: Int

    /// The encoded commands.
    package var buffer: ByteBuffer { _buffer }
    /// Number of commands in `buffer`.
    package var count: Int { _count }
    /// Arguments still owed by the last `appendCommand(argumentCount:)`; checked in debug builds.
    @usableFromInline var owedArguments: Int = 0

    package init(reservingCapacity bytes: Int = 0) {
        _buffer = ByteBufferAllocator().buffer(capacity: bytes)
        _count = 0
    }

    package var isEmpty: Bool { count == 0 }

    /// Starts one command of `argumentCount` arguments (the command name included); follow it
    /// with exactly that many `appendArgument` calls. No intermediate array is built.
    @inlinable
    package mutating func appendCommand(argumentCount: Int) {
        precondition(argumentCount > 0, "a command needs at least its name")
        assert(owedArguments == 0, "the previous command is missing \(owedArguments) argument(s)")
        _buffer.writeRESPHeader(UInt8(ascii: "*"), argumentCount)
        owedArguments = argumentCount
        _count += 1
    }

    @inlinable
    package mutating func appendArgument(_ argument: some RESPArgument) {
        assert(owedArguments > 0, "appendArgument without a pending appendCommand")
        owedArguments -= 1
        argument.encode(into: &_buffer)
    }

    package mutating func append(_ arguments: String...) {
        append(arguments)
    }

    @inlinable
    package mutating func append<C: Collection>(_ arguments: C) where C.Element: RESPArgument {
        appendCommand(argumentCount: arguments.count)
        for argument in arguments { appendArgument(argument) }
    }

    package mutating func append<S: Sequence>(_ arguments: S) where S.Element: RESPArgument {
        append(Array(arguments))
    }

    /// Appends a command whose arguments have mixed types, e.g. `["EXPIREAT", key, 1700000000]`.
    package mutating func append(arguments: [any RESPArgument]) {
        appendCommand(argumentCount: arguments.count)
        for argument in arguments {
            owedArguments -= 1
            argument.encode(into: &_buffer)
        }
    }

    /// Appends every command of another batch.
    package mutating func append(contentsOf other: CommandBatch) {
        assert(owedArguments == 0 && other.owedArguments == 0)
        var bytes = other.buffer
        _buffer.writeBuffer(&bytes)
        _count += other.count
    }

    package mutating func removeAll(keepingCapacity: Bool = true) {
        if keepingCapacity {
            _buffer.clear()
        } else {
            _buffer = ByteBufferAllocator().buffer(capacity: 0)
        }
        _count = 0
        owedArguments = 0
    }
}
