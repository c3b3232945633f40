import Postgres

/// The commit guard of SPEC §4: the copy's upper bound never passes the start of another
/// session's open transaction, whose rows (stamped with `now()`, the transaction's start) may
/// still commit below it; held back at most `maxHold`.
public struct CommitGuard: Sendable {
    /// The oldest open transaction of another client session in the same database.
    public struct Holder: Sendable, Hashable, CustomStringConvertible {
        public var pid: Int
        public var applicationName: String
        public var user: String
        public var transactionStart: PostgresTimestamp

        public init(pid: Int, applicationName: String, user: String, transactionStart: PostgresTimestamp) {
            self.pid = pid
            self.applicationName = applicationName
            self.user = user
            self.transactionStart = transactionStart
        }

        /// Never the query: it may hold anything.
        public var description: String {
            "pid \(pid) (application \"\(applicationName)\", user \"\(user)\", transaction open since \(transactionStart.rfc3339))"
        }
    }

    /// What the server shows of other sessions' transactions.
    public struct Observation: Sendable, Hashable {
        /// The oldest open transaction the job's role can see; nil when none.
        public var oldest: Holder?
        /// False when the role cannot see other roles' transactions (no `pg_read_all_stats`).
        public var seesAllSessions: Bool
        /// On a standby, the last replayed commit (the upper bound never passes it).
        public var standbyReplayedUntil: PostgresTimestamp?
        public var isStandby: Bool

        public init(oldest: Holder?, seesAllSessions: Bool, standbyReplayedUntil: PostgresTimestamp? = nil, isStandby: Bool = false) {
            self.oldest = oldest
            self.seesAllSessions = seesAllSessions
            self.standbyReplayedUntil = standbyReplayedUntil
            self.isStandby = isStandby
        }
    }

    /// Where the window ends and why.
    public struct Decision: Sendable, Hashable {
        /// The exclusive upper bound of the read window.
        public var until: PostgresTimestamp
        /// How far below the settle bound the guard put it (zero: not at all).
        public var heldBack: Duration
        /// The transaction that held it back, when one did.
        public var holder: Holder?
        /// True when the holder is older than `maxHold` allows: the window ends `maxHold`
        /// below the settle bound and that transaction's rows may be missed until a backfill.
        public var capped: Bool
    }

    public var maxHold: Duration

    public init(maxHold: Duration) {
        self.maxHold = maxHold
    }

    /// The rule: the upper bound is the settle bound, lowered to the oldest open
    /// transaction's start and to a standby's last replayed commit, but never more than
    /// `maxHold` below the settle bound.
    public func decide(settleBound: PostgresTimestamp, observation: Observation) -> Decision {
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
    public static func observe(_ postgres: PostgresConnection) async throws -> Observation {
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
        if let pid = try row[0].decode(Int.self), let start = try row[3].decode(PostgresTimestamp.self) {
            oldest = Holder(pid: pid, applicationName: try row[1].decode(String.self) ?? "", user: try row[2].decode(String.self) ?? "",
                            transactionStart: start)
        }
        return Observation(oldest: oldest, seesAllSessions: try row[4].decode(Bool.self) ?? false,
                           standbyReplayedUntil: try row[6].decode(PostgresTimestamp.self),
                           isStandby: try row[5].decode(Bool.self) ?? false)
    }
}
