import NIOCore

/// A value that can be one argument of a command: it writes itself as a RESP bulk string.
package protocol RESPArgument {
    /// Writes `$<length>\r\n<bytes>\r\n`.
    func encode(into buffer: inout ByteBuffer)
}

/// Writes the decimal digits of `value` at `pointer`; returns how many bytes it wrote.
@inlinable @inline(__always)
func writeRESPDigits(_ value: Int, to pointer: UnsafeMutableRawPointer) -> Int {
    var magnitude = value.magnitude
    var digits = 0
    var probe = magnitude
    repeat { digits += 1; probe /= 10 } while probe > 0
    let sign = value < 0 ? 1 : 0
    if sign == 1 { pointer.storeBytes(of: UInt8(ascii: "-"), as: UInt8.self) }
    var index = sign + digits - 1
    repeat {
        pointer.storeBytes(of: UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10), toByteOffset: index, as: UInt8.self)
        magnitude /= 10
        index -= 1
    } while magnitude > 0
    return sign + digits
}

@inlinable @inline(__always)
func storeCRLF(_ pointer: UnsafeMutableRawPointer, at offset: Int) {
    pointer.storeBytes(of: UInt8(ascii: "\r"), toByteOffset: offset, as: UInt8.self)
    pointer.storeBytes(of: UInt8(ascii: "\n"), toByteOffset: offset + 1, as: UInt8.self)
}

extension ByteBuffer {
    // Each helper touches the buffer once: every ByteBuffer call costs bounds and
    // uniqueness checks, which dominated encoding when header, payload and CRLF were
    // written separately.

    /// Writes `<type><value>\r\n`, e.g. `*3\r\n`.
    @inlinable
    mutating func writeRESPHeader(_ type: UInt8, _ value: Int) {
        writeWithUnsafeMutableBytes(minimumWritableBytes: 24) { out in
            let base = out.baseAddress!
            base.storeBytes(of: type, as: UInt8.self)
            let end = 1 + writeRESPDigits(value, to: base + 1)
            storeCRLF(base, at: end)
            return end + 2
        }
    }

    /// Writes `$<count>\r\n<bytes>\r\n`.
    @inlinable
    mutating func writeRESPBulk(_ bytes: UnsafeRawBufferPointer) {
        let count = bytes.count
        writeWithUnsafeMutableBytes(minimumWritableBytes: count + 26) { out in
            let base = out.baseAddress!
            base.storeBytes(of: UInt8(ascii: "$"), as: UInt8.self)
            var end = 1 + writeRESPDigits(count, to: base + 1)
            storeCRLF(base, at: end)
            end += 2
            if count > 0 {
                (base + end).copyMemory(from: bytes.baseAddress!, byteCount: count)
            }
            end += count
            storeCRLF(base, at: end)
            return end + 2
        }
    }
}

extension String: RESPArgument {
    @inlinable
    package func encode(into buffer: inout ByteBuffer) {
        if let done: Void = utf8.withContiguousStorageIfAvailable({ buffer.writeRESPBulk(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        var copy = self
        copy.withUTF8 { buffer.writeRESPBulk(UnsafeRawBufferPointer($0)) }
    }
}

extension Substring: RESPArgument {
    @inlinable
    package func encode(into buffer: inout ByteBuffer) {
        var copy = self
        copy.withUTF8 { buffer.writeRESPBulk(UnsafeRawBufferPointer($0)) }
    }
}

extension ByteBuffer: RESPArgument {
    @inlinable
    package func encode(into buffer: inout ByteBuffer) {
        withUnsafeReadableBytes { buffer.writeRESPBulk($0) }
    }
}

extension Array: RESPArgument where Element == UInt8 {
    @inlinable
    package func encode(into buffer: inout ByteBuffer) {
        withUnsafeBytes { buffer.writeRESPBulk($0) }
    }
}

extension Int: RESPArgument {
    @inlinable
    package func encode(into buffer: inout ByteBuffer) {
        // `$<n>\r\n<digits>\r\n` in one pass, without a String: the digits are written
        // first at a fixed offset, then the header in front (n is at most 20: two bytes).
        let value = self
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 32) { out in
            let base = out.baseAddress!
            let digits = writeRESPDigits(value, to: base + 5)
            base.storeBytes(of: UInt8(ascii: "$"), as: UInt8.self)
            var start: Int
            if digits < 10 {
                base.storeBytes(of: UInt8(ascii: "0") &+ UInt8(digits), toByteOffset: 1, as: UInt8.self)
                storeCRLF(base, at: 2)
                start = 4
                // Shift the digits one byte left so they follow the 4-byte header.
                for offset in 0..<digits {
                    base.storeBytes(of: base.load(fromByteOffset: 5 + offset, as: UInt8.self), toByteOffset: 4 + offset, as: UInt8.self)
                }
            } else {
                base.storeBytes(of: UInt8(ascii: "0") &+ UInt8(digits / 10), toByteOffset: 1, as: UInt8.self)
                base.storeBytes(of: UInt8(ascii: "0") &+ UInt8(digits % 10), toByteOffset: 2, as: UInt8.self)
                storeCRLF(base, at: 3)
                start = 5
            }
            storeCRLF(base, at: start + digits)
            return start + digits + 2
        }
    }
}

extension Int64: RESPArgument {
    @inlinable
    package func encode(into buffer: inout ByteBuffer) {
        Int(self).encode(into: &buffer)
    }
}

extension Double: RESPArgument {
    package func encode(into buffer: inout ByteBuffer) {
        // The server parses with strtod: "inf", "-inf" and exponents are accepted.
        let text: String
        if self.isInfinite { text = self < 0 ? "-inf" : "inf" } else { text = self.description }
        text.encode(into: &buffer)
    }
}
