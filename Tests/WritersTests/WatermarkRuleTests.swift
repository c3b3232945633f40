import Testing
import Timestamps
import Watermarks

/// SPEC §4: the watermark moves to an acknowledged page's last timestamp, forward only.
@Suite struct WatermarkRuleTests {
    let t0 = Timestamp(rfc3339: "2026-11-30T10:00:00.000000Z")!
    var t1: Timestamp { t0.moved(by: .microseconds(1)) }
    var earlier: Timestamp { t0.moved(by: .seconds(-300)) }

    @Test func theFirstPageSetsIt() {
        #expect(WatermarkRule.next(current: nil, acknowledgedPageEndingAt: t0) == t0)
    }

    @Test func aLaterPageMovesItToThePagesLastTimestamp() {
        #expect(WatermarkRule.next(current: t0, acknowledgedPageEndingAt: t1) == t1)
    }

    @Test func aPageOfTheOverlapNeverMovesItBack() {
        #expect(WatermarkRule.next(current: t0, acknowledgedPageEndingAt: earlier) == nil)
    }

    @Test func aPageEndingAtTheWatermarkLeavesIt() {
        #expect(WatermarkRule.next(current: t0, acknowledgedPageEndingAt: t0) == nil)
    }

    @Test func aPageWithoutRowsLeavesIt() {
        #expect(WatermarkRule.next(current: t0, acknowledgedPageEndingAt: nil) == nil)
        #expect(WatermarkRule.next(current: nil, acknowledgedPageEndingAt: nil) == nil)
    }

    @Test func readingsTellAbsentFromMalformed() {
        #expect(WatermarkReading(nil) == .absent)
        #expect(WatermarkReading("2026-11-30T10:00:00.000000Z") == .at(t0))
        #expect(WatermarkReading("2026-11-30T12:00:00+02:00") == .at(t0))
        #expect(WatermarkReading("yesterday") == .malformed("yesterday"))
        #expect(WatermarkReading("") == .malformed(""))
        #expect(WatermarkReading("2026-11-30T10:00:00") == .malformed("2026-11-30T10:00:00"), "no offset: not an instant")
    }
}
