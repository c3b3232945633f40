import Postgres

/// One run at a time across every host (SPEC §8): a PostgreSQL session-level advisory lock,
/// tied to the run's connection, so a crashed run releases it as soon as its connection
/// drops. Runs writing under different key prefixes do not exclude each other.
enum RunLock {
    /// The advisory-lock key for a key prefix: FNV-1a of "sync-job:" + prefix.
    static func key(prefix: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in ("sync-job:" + prefix).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    /// Takes the lock on `postgres` without waiting; false when another run holds it.
    static func tryAcquire(_ postgres: PostgresConnection, prefix: String) async throws -> Bool {
        let rows = try await postgres.query("select pg_try_advisory_lock($1::bigint)", [.int(key(prefix: prefix))])
        return try rows.first?[0].decode(Bool.self) ?? false
    }

    /// Who holds the lock, for the message of a run that could not take it.
    static func holder(_ postgres: PostgresConnection, prefix: String) async -> String? {
        let key = key(prefix: prefix)
        let rows = try? await postgres.query("""
            select a.pid::text || coalesce(' on ' || host(a.client_addr), '') || ', started '
                   || to_char(a.backend_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
            from pg_locks l join pg_stat_activity a using (pid)
            where l.locktype = 'advisory' and l.granted
              and l.classid = ($1::bigint >> 32)::oid and l.objid = ($1::bigint & 4294967295)::oid
            """, [.int(key)])
        return try? rows?.first?[0].decode(String.self)
    }
}
