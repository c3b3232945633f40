import Postgres
import Testing
import Timestamps
import Watermarks

@Suite struct ReadWindowTests {
    let now = Timestamp(rfc3339: "2026-11-27T16:00:00Z")!
    var cutoff: Timestamp { .retentionCutoff(now: now, days: 93) }

    @Test func noWatermarkStartsAtTheRetentionCutoff() {
        let window = ReadWindow(watermark: nil, overlap: .seconds(300), settle: .seconds(5), databaseNow: now, cutoff: cutoff)
        #expect(window.from.rfc3339 == "2026-08-26T16:00:00.000000Z")
        #expect(window.until.rfc3339 == "2026-11-27T15:59:55.000000Z")
    }

    @Test func watermarkIsReReadFromTheOverlapBeforeIt() {
        let watermark = Timestamp(rfc3339: "2026-11-27T15:00:00.000001Z")!
        let window = ReadWindow(watermark: watermark, overlap: .seconds(300), settle: .seconds(5), databaseNow: now, cutoff: cutoff)
        #expect(window.from.rfc3339 == "2026-11-27T14:55:00.000001Z")
        #expect(!window.isEmpty)
    }

    @Test func neverBeforeTheCutoff() {
        let old = Timestamp(rfc3339: "2026-01-01T00:00:00Z")!
        let window = ReadWindow(watermark: old, overlap: .seconds(300), settle: .seconds(5), databaseNow: now, cutoff: cutoff)
        #expect(window.from == cutoff)
    }

    @Test func emptyWhenTheSettleDelayHasNotPassed() {
        let window = ReadWindow(watermark: now, overlap: .zero, settle: .seconds(5), databaseNow: now, cutoff: cutoff)
        #expect(window.isEmpty)
    }

    @Test func subSecondDurationsMoveByMicroseconds() {
        #expect(now.moved(by: .milliseconds(-1)).rfc3339 == "2026-11-27T15:59:59.999000Z")
        #expect(now.moved(by: .microseconds(7)).rfc3339 == "2026-11-27T16:00:00.000007Z")
    }
}
