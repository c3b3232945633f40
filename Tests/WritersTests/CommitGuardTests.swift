import Postgres
import Testing
import Timestamps
import Watermarks

/// The commit guard's rule (SPEC §4), without a server.
@Suite struct CommitGuardTests {
    let settle = Timestamp(rfc3339: "2026-12-01T12:00:00Z")!
    let rule = CommitGuard(maxHold: .seconds(900))

    func holder(_ start: String) -> CommitGuard.Holder {
        CommitGuard.Holder(pid: 42, applicationName: "billing", user: "app", transactionStart: Timestamp(rfc3339: start)!)
    }

    @Test func noOpenTransactionLeavesTheSettleBound() {
        let decision = rule.decide(settleBound: settle, observation: .init(oldest: nil, seesAllSessions: true))
        #expect(decision.until == settle && decision.heldBack == .zero && decision.holder == nil && !decision.capped)
    }

    @Test func anOpenTransactionHoldsTheBoundAtItsStart() {
        let open = holder("2026-12-01T11:58:30.25Z")
        let decision = rule.decide(settleBound: settle, observation: .init(oldest: open, seesAllSessions: true))
        #expect(decision.until == open.transactionStart)
        #expect(decision.heldBack == .milliseconds(89_750))
        #expect(decision.holder == open && !decision.capped)
        #expect(!open.description.contains("select"), "never the query")
    }

    @Test func aTransactionYoungerThanTheSettleBoundChangesNothing() {
        let decision = rule.decide(settleBound: settle, observation: .init(oldest: holder("2026-12-01T12:00:01Z"), seesAllSessions: true))
        #expect(decision.until == settle && decision.holder == nil)
    }

    @Test func theHoldStopsAtMaxHold() {
        let decision = rule.decide(settleBound: settle, observation: .init(oldest: holder("2026-12-01T10:00:00Z"), seesAllSessions: true))
        #expect(decision.until == Timestamp(rfc3339: "2026-12-01T11:45:00Z")!)
        #expect(decision.capped && decision.heldBack == .seconds(900))
    }

    @Test func aStandbyNeverReadsPastItsLastReplayedCommit() {
        let replayed = Timestamp(rfc3339: "2026-12-01T11:59:00Z")!
        let decision = rule.decide(settleBound: settle, observation: .init(oldest: nil, seesAllSessions: true,
                                                                          standbyReplayedUntil: replayed, isStandby: true))
        #expect(decision.until == replayed && decision.heldBack == .seconds(60))
    }
}
