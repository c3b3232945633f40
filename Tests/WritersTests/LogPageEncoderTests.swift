import NIOCore
import Testing
@testable import Postgres
import RESP
@testable import Writers
import Timestamps

@Suite struct LogPageEncoderTests {
    static let oids: [String: UInt32] = [
        "id": 2950, "api_key_id": 2950, "asset": 25, "price": 701, "source": 25, "cached": 16,
        "latency_ms": 23, "duration_ms": 23, "ip_address": 25, "timestamp": 1184, "readable_timestamp": 25,
        "cache_age_seconds": 701, "cluster_node": 25, "region": 25, "monthly_usage": 23, "monthly_limit": 23,
    ]
    static let columns = PostgresColumns(
        names: SourceTable.usageLogs.columns, typeOIDs: SourceTable.usageLogs.columns.map { oids[$0]! })

    func row(_ id: String, timestamp: String, apiKey: String? = "k1", asset: String? = "BTC", index: Int = 0) -> PostgresRow {
        let values: [String: String?] = [
            "id": id, "api_key_id": apiKey, "asset": asset, "price": "0.1", "source": "kraken-ws", "cached": "t",
            "latency_ms": "12", "duration_ms": nil, "ip_address": "203.0.113.9", "timestamp": timestamp,
            "readable_timestamp": "Nov 27", "cache_age_seconds": "1e-07", "cluster_node": "BeastMain", "region": nil,
            "monthly_usage": "5", "monthly_limit": "100000",
        ]
        return PostgresRow(columns: Self.columns, values: SourceTable.usageLogs.columns.map { values[$0]! }, rowIndex: index)
    }

    /// The commands of a batch, decoded back into argument lists.
    func commands(_ batch: CommandBatch) -> [[String]] {
        var buffer = batch.buffer
        var result: [[String]] = []
        while buffer.readableBytes > 0 {
            let header = buffer.readLine()
            let count = Int(header.dropFirst())!
            var arguments: [String] = []
            for _ in 0..<count {
                let length = Int(buffer.readLine().dropFirst())!
                arguments.append(buffer.readString(length: length)!)
                buffer.moveReaderIndex(forwardBy: 2)
            }
            result.append(arguments)
        }
        return result
    }

    @Test func pageBecomesHashesExpiriesAndVariadicIndexes() throws {
        let encoder = LogPageEncoder(table: .usageLogs, templates: try KeyTemplates(prefix: "p:"), retentionDays: 93)
        var batch = CommandBatch()
        let cutoff = Timestamp(rfc3339: "2026-01-01T00:00:00Z")!
        let outcome = try encoder.encode([
            row("u1", timestamp: "2026-11-27 16:00:00.123999+00"),
            row("u2", timestamp: "2026-11-27 16:00:01+00", apiKey: nil, asset: "ETH", index: 1),
            row("u3", timestamp: "2025-12-31 23:59:59+00", index: 2),
        ], cutoff: cutoff, into: &batch)
        #expect(outcome.rows == 3 && outcome.written == 2 && outcome.skippedTooOld == 1)
        #expect(outcome.lastTimestamp?.rfc3339 == "2025-12-31T23:59:59.000000Z")
        let sent = commands(batch)
        #expect(sent.count == batch.count)
        let hset = sent[0]
        #expect(hset[0] == "HSET" && hset[1] == "p:usage_log:u1")
        var fields: [String: String] = [:]
        for pair in stride(from: 2, to: hset.count, by: 2) { fields[hset[pair]] = hset[pair + 1] }
        #expect(fields.count == 16)
        #expect(fields["timestamp"] == "2026-11-27T16:00:00.123999Z")
        #expect(fields["cached"] == "true" && fields["duration_ms"] == "" && fields["region"] == "")
        #expect(fields["cache_age_seconds"] == "1e-07" && fields["price"] == "0.1")
        let expireAt = Timestamp(rfc3339: "2026-11-27T16:00:00Z")!.microsecondsSinceEpoch / 1_000_000 + 93 * 86_400
        #expect(sent[1] == ["EXPIREAT", "p:usage_log:u1", String(expireAt)])
        #expect(sent[2][0] == "HSET" && sent[2][1] == "p:usage_log:u2")
        let zadds = sent.filter { $0[0] == "ZADD" }
        #expect(zadds.contains(["ZADD", "p:usage_logs:index", "1795795200.123", "u1", "1795795201", "u2"]))
        #expect(zadds.contains(["ZADD", "p:usage_logs:index:api_key:k1", "1795795200.123", "u1"]))
        #expect(zadds.contains(["ZADD", "p:usage_logs:index:asset:BTC", "1795795200.123", "u1"]))
        #expect(zadds.contains(["ZADD", "p:usage_logs:index:asset:ETH", "1795795201", "u2"]))
        #expect(zadds.count == 4, "u2 has no api key: no per-key index; u3 is too old")
        #expect(sent.last?[0] == "SADD" && sent.last?[1] == "p:sync:indexes:usage_logs")
        #expect(Set(sent.last!.dropFirst(2)) == Set(zadds.map { $0[1] }))
    }

    @Test func emptyPageWritesNothing() throws {
        let encoder = LogPageEncoder(table: .usageLogs, templates: try KeyTemplates(), retentionDays: 93)
        var batch = CommandBatch()
        let outcome = try encoder.encode([], cutoff: Timestamp(microsecondsSinceEpoch: 0), into: &batch)
        #expect(batch.isEmpty && outcome.lastTimestamp == nil)
    }

    @Test func entryTemplateNamingANullColumnSkipsOnlyThatRow() throws {
        let templates = try KeyTemplates(overrides: ["usage_log": "ul:${asset}:${id}"])
        let encoder = LogPageEncoder(table: .usageLogs, templates: templates, retentionDays: 93)
        var batch = CommandBatch()
        let outcome = try encoder.encode([
            row("u1", timestamp: "2026-11-27 16:00:00+00", asset: nil),
            row("u2", timestamp: "2026-11-27 16:00:00+00", index: 1),
        ], cutoff: Timestamp(microsecondsSinceEpoch: 0), into: &batch)
        #expect(outcome.skippedNullKey == ["u1"] && outcome.written == 1)
        #expect(commands(batch)[0][1] == "ul:BTC:u2")
    }
}

private extension ByteBuffer {
    mutating func readLine() -> String {
        let view = readableBytesView
        let end = view.firstIndex(of: UInt8(ascii: "\r"))!
        let line = readString(length: end - view.startIndex)!
        moveReaderIndex(forwardBy: 2)
        return line
    }
}
