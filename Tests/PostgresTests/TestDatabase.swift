import Foundation
import Testing
@testable import Postgres

/// The real PostgreSQL server started by scripts/services, as integration tests reach it.
enum TestDatabase {
    struct MissingEnvironment: Error, CustomStringConvertible {
        var variable: String
        var description: String {
            "\(variable) is not set: run `eval \"$(scripts/services env)\"` before `swift test` so the tests reach the real PostgreSQL server"
        }
    }

    static func variable(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            throw MissingEnvironment(variable: name)
        }
        return value
    }

    static var url: String {
        get throws { try variable("SYNC_TEST_DATABASE_URL") }
    }

    static func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(url)
    }

    /// Runs `body` with a connection and a fresh schema of its own, dropped afterwards, so
    /// tests can run in parallel without seeing each other's tables.
    static func withScratchSchema<T>(_ body: (PostgresConnection, String) async throws -> T) async throws -> T {
        let connection = try await connect()
        let schema = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try await connection.execute("CREATE SCHEMA \(schema)")
        do {
            let result = try await body(connection, schema)
            try await connection.execute("DROP SCHEMA \(schema) CASCADE")
            connection.close()
            return result
        } catch {
            _ = try? await connection.execute("DROP SCHEMA \(schema) CASCADE")
            connection.close()
            throw error
        }
    }
}
