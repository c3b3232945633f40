import Postgres
import Timestamps

/// The commit guard of SPEC §4: the copy's upper bound never passes the start of another
/// session's open transaction, whose rows (stamped with `now()`, the transaction's start) may
/// still commit below it; held back at most `maxHold`.
package struct CommitGuard: Sendable {
    /// The oldest open transaction of another client session in the same database.
    package struct Holder: Sendable, Hashable, CustomStringConvertible {
        package var pid: Int
        package var applicationName: String
        package var user: String
        package var transactionStart: Timestamp

        package init(pid: Int, applicationName: String, user: String, transactionStart: Timestamp) {
            self.pid = pid
            self.applicationName = applicationName
            self.user = user
            self.transactionStart = transactionStart
        }

        /// Never the query: it may hold anything.
        package var description: String {
            "pid \(pid) (application \"\(applicationName)\", user \"\(user)\", transaction open since \(transactionStart.rfc3339))"
        }
    }

    /// What the server shows of other sessions' transactions.
    package struct Observation: Sendable, Hashable {
        /// The oldest open transaction the job's role can see; nil when none.
        package var oldest: Holder?
        /// False when the role cannot see other roles' transactions (no `pg_read_all_stats`).
        package var seesAllSessions: Bool
        /// On a standby, the last replayed commit (the upper bound never passes it).
        package var standbyReplayedUntil: Timestamp?
        package var isStandby: Bool

        package init(oldest: Holder?, seesAllSessions: Bool, standbyReplayedUntil: Timestamp? = nil, isStandby: Bool = false) {
            self.oldest = oldest
            self.seesAllSessions = seesAllSessions
            self.standbyReplayedUntil = standbyReplayedUntil
            self.isStandby = isStandby
        }
    }

    /// Where the window ends and why.
    package struct Decision: Sendable, Hashable {
        /// The exclusive upper bound of the read window.
        package var until: Timestamp
        /// How far below the settle bound the guard put it (zero: not at all).
        package var heldBack: Duration
        /// The transaction that held it back, when one did.
        package var holder: Holder?
        /// True when the holder is older than `maxHold` allows: the window ends `maxHold`
        /// below the settle bound and that transaction's rows may be missed until a backfill.
        package var capped: Bool
    }

    package var maxHold: Duration

    package init(maxHold: Duration) {
        self.maxHold = maxHold
    }

    /// The rule: the upper bound is the settle bound, lowered to the oldest open
    /// transaction's start and to a standby's last replayed commit, but never more than
    /// `maxHold` below the settle bound.
    package func decide(settleBound: Timestamp, observation: Observation) -> Decision {
        var until = settleBound
        var holder: Holder?
        if let oldest = observation.oldest, oldest.transactionStart < until {
            until = oldest.transactionStart
            holder = oldest
        }
        if let replayed = observation.standbyReplayedUntil, replayed < until {
            until = replayed
            holder = nil
        }
        let floor = settleBound.moved(by: .zero - maxHold)
        let capped = until < floor
        if capped { until = floor }
        let heldBack = Duration.microseconds(settleBound.microsecondsSinceEpoch - until.microsecondsSinceEpoch)
        return Decision(until: until, heldBack: heldBack, holder: holder, capped: capped)
    }

    /// Reads the oldest open transaction of other client sessions of this database from
    /// `pg_stat_activity` (and, on a standby, the last replayed commit).
    package static func observe(_ postgres: PostgresConnection) async throws -> Observation {
        let rows = try await postgres.query("""
            select a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), a.xact_start,
                   pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'),
                   pg_is_in_recovery(), case when pg_is_in_recovery() then pg_last_xact_replay_timestamp() end
            from (select 1) as one
            left join lateral (
                select pid, application_name, usename, xact_start from pg_stat_activity
                where datname = current_database() and pid <> pg_backend_pid()
                  and backend_type = 'client backend' and xact_start is not null
                order by xact_start limit 1) as a on true
            """)
        guard let row = rows.first else { return Observation(oldest: nil, seesAllSessions: false) }
        var oldest: Holder?
        if let pid = try row[0].decode(Int.self), let start = try row[3].decode(Timestamp.self) {
            oldest = Holder(pid: pid, applicationName: try row[1].decode(String.self) ?? "", user: try row[2].decode(String.self) ?? "",
                            transactionStart: start)
        }
        return Observation(oldest: oldest, seesAllSessions: try row[4].decode(Bool.self) ?? false,
                           standbyReplayedUntil: try row[6].decode(Timestamp.self),
                           isStandby: try row[5].decode(Bool.self) ?? false)
    }
}
