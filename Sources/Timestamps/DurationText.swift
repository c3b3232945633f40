import Foundation

/// Durations as operators write them: 5m, 30s, 1h, 250ms, 1h30m; a bare number is seconds.
package enum DurationText {
    /// "5m", "30s", "250ms", "1h30m": the spelling `parse` reads.
    package static func format(_ duration: Duration) -> String {
        var milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds == 0 { return "0s" }
        var text = ""
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] where milliseconds >= size {
            text += "\(milliseconds / size)\(unit)"
            milliseconds %= size
        }
        return text
    }

    package static func parse(_ text: String) -> Duration? {
        let text = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard !text.isEmpty else { return nil }
        // Beyond about 30,000 years a value is a typo, and converting it would trap.
        let largest = 1e15
        if let seconds = Double(text) {
            guard seconds >= 0, seconds * 1000 < largest else { return nil }
            return .milliseconds(Int64(seconds * 1000))
        }
        var total: Duration = .zero
        var number = ""
        var index = text.startIndex
        var sawUnit = false
        while index < text.endIndex {
            let character = text[index]
            if character.isNumber || character == "." {
                number.append(character)
                index = text.index(after: index)
                continue
            }
            var unit = ""
            while index < text.endIndex, text[index].isLetter {
                unit.append(text[index])
                index = text.index(after: index)
            }
            guard let value = Double(number), value >= 0, value.isFinite else { return nil }
            let milliseconds: Double
            switch unit {
            case "ms": milliseconds = value
            case "s", "sec": milliseconds = value * 1000
            case "m", "min": milliseconds = value * 60_000
            case "h": milliseconds = value * 3_600_000
            case "d": milliseconds = value * 86_400_000
            default: return nil
            }
            guard milliseconds < largest else { return nil }
            total += .milliseconds(Int64(milliseconds))
            number = ""
            sawUnit = true
        }
        guard number.isEmpty, sawUnit else { return nil }
        return total
    }
}

extension Duration {
    /// Seconds as a Double, for rates and messages.
    package var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// "30s", "2.5s": for messages.
    package var secondsText: String {
        let value = seconds
        return (value.rounded() == value ? String(Int64(value)) : String(value)) + "s"
    }
}
