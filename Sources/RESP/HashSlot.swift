/// Valkey Cluster key hash slots: CRC16-XMODEM of the key (or of its `{hash tag}`) mod 16384.
package enum HashSlot {
    package static let count: UInt16 = 16384

    package static func slot<C: Collection>(for key: C) -> UInt16 where C.Element == UInt8 {
        // Only the first `{` counts, and the tag is the bytes up to the next `}`; an empty
        // tag (`{}`) means the whole key is hashed, as the cluster specification says.
        if let open = key.firstIndex(of: UInt8(ascii: "{")) {
            let afterOpen = key.index(after: open)
            if let close = key[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close != afterOpen {
                return crc16(key[afterOpen..<close]) & (count - 1)
            }
        }
        return crc16(key) & (count - 1)
    }

    package static func slot(for key: String) -> UInt16 {
        slot(for: key.utf8)
    }

    /// CRC16-XMODEM (polynomial 0x1021, initial value 0), the variant the cluster uses.
    package static func crc16<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ crc16Table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let crc16Table: [UInt16] = (0..<256).map { index -> UInt16 in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}
