import NIOCore

/// A value that can be one argument of a command: it writes itself as a RESP bulk string.
public protocol RESPArgument {
    /// Writes `$<length>\r\n<bytes>\r\n`.
    func encode(into buffer: inout ByteBuffer)
}

extension ByteBuffer {
    /// Writes a non-negative decimal without building a String: the hot path of every
    /// `$len\r\n` header.
    @inlinable
    mutating func writeRESPDecimal(_ value: Int) {
        if value >= 0 && value < 10 {
            writeInteger(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value))
            return
        }
        writeWithUnsafeMutableBytes(minimumWritableBytes: 20) { pointer in
            var magnitude = value.magnitude
            var digits = 0
            var probe = magnitude
            repeat { digits += 1; probe /= 10 } while probe > 0
            let sign = value < 0 ? 1 : 0
            if sign == 1 { pointer[0] = UInt8(ascii: "-") }
            var index = sign + digits - 1
            repeat {
                pointer[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
                index -= 1
            } while magnitude > 0
            return sign + digits
        }
    }

    @inlinable
    mutating func writeRESPHeader(_ type: UInt8, _ length: Int) {
        writeInteger(type)
        writeRESPDecimal(length)
        writeInteger(UInt16(0x0D0A))  // "\r\n", big-endian by default
    }
}

extension String: RESPArgument {
    @inlinable
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeRESPHeader(UInt8(ascii: "$"), utf8.count)
        buffer.writeString(self)
        buffer.writeInteger(UInt16(0x0D0A))
    }
}

extension Substring: RESPArgument {
    @inlinable
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeRESPHeader(UInt8(ascii: "$"), utf8.count)
        buffer.writeSubstring(self)
        buffer.writeInteger(UInt16(0x0D0A))
    }
}

extension ByteBuffer: RESPArgument {
    @inlinable
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeRESPHeader(UInt8(ascii: "$"), readableBytes)
        buffer.writeImmutableBuffer(self)
        buffer.writeInteger(UInt16(0x0D0A))
    }
}

extension Array: RESPArgument where Element == UInt8 {
    @inlinable
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeRESPHeader(UInt8(ascii: "$"), count)
        buffer.writeBytes(self)
        buffer.writeInteger(UInt16(0x0D0A))
    }
}

extension Int: RESPArgument {
    @inlinable
    public func encode(into buffer: inout ByteBuffer) {
        // Length of the decimal form first, then the digits, all without a String.
        var digits = self < 0 ? 1 : 0
        var probe = self.magnitude
        repeat { digits += 1; probe /= 10 } while probe > 0
        buffer.writeRESPHeader(UInt8(ascii: "$"), digits)
        buffer.writeRESPDecimal(self)
        buffer.writeInteger(UInt16(0x0D0A))
    }
}

extension Int64: RESPArgument {
    @inlinable
    public func encode(into buffer: inout ByteBuffer) {
        Int(self).encode(into: &buffer)
    }
}

extension Double: RESPArgument {
    public func encode(into buffer: inout ByteBuffer) {
        // The server parses with strtod: "inf", "-inf" and exponents are accepted.
        let text: String
        if self.isInfinite { text = self < 0 ? "-inf" : "inf" } else { text = self.description }
        text.encode(into: &buffer)
    }
}
