import Foundation
import Postgres
import Timestamps
import Watermarks

/// A progress line on a terminal for long copies: rows, rate, how much of the read window
/// is done (by time, so no COUNT(*) is needed) and the time left at this pace.
struct ProgressLine {
    let label: String
    let window: ReadWindow
    let enabled: Bool
    private let started = ContinuousClock.now
    private var lastDraw = ContinuousClock.now - .seconds(1)
    private var drawn = false

    init(label: String, window: ReadWindow, enabled: Bool) {
        self.label = label
        self.window = window
        self.enabled = enabled
    }

    mutating func update(rows: Int, at timestamp: Timestamp) {
        guard enabled, ContinuousClock.now - lastDraw >= .milliseconds(200) else { return }
        lastDraw = ContinuousClock.now
        let elapsed = max((ContinuousClock.now - started).seconds, 0.001)
        let span = Double(window.until.microsecondsSinceEpoch - window.from.microsecondsSinceEpoch)
        let done = span > 0 ? min(1, max(0, Double(timestamp.microsecondsSinceEpoch - window.from.microsecondsSinceEpoch) / span)) : 1
        let width = 24
        let filled = Int(done * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let eta = done > 0.001 ? elapsed * (1 - done) / done : 0
        let line = "\r\(label) [\(bar)] " + String(format: "%3.0f%% %d rows, %.0f rows/s, ETA %.0fs ",
                                                           done * 100, rows, Double(rows) / elapsed, eta)
        StandardStreams.writeError(line)
        drawn = true
    }

    func finish() {
        if drawn { StandardStreams.writeError("\r\u{1B}[K") }
    }
}
