/// Opens the client the configuration asks for: one server, or a Valkey Cluster.
public enum ValkeyClients {
    /// `cluster`: true for a cluster, false for one server, nil to follow the URL's
    /// `?cluster=` option or else to ask the server (`INFO cluster`, `cluster_enabled:1`).
    public static func connect(_ configuration: ValkeyConfiguration, cluster: Bool?) async throws -> any ValkeyClient {
        switch cluster ?? configuration.cluster {
        case true?:
            return try await ValkeyClusterClient.connect(configuration)
        case false?:
            return try await ValkeyConnection.connect(configuration)
        case nil:
            let connection = try await ValkeyConnection.connect(configuration)
            let enabled: Bool
            do {
                enabled = try await connection.send("INFO", "cluster").string?.contains("cluster_enabled:1") == true
            } catch let error as ValkeyError where error.kind == .server {
                // A server (or proxy) without INFO cluster is not a cluster node.
                enabled = false
            } catch {
                await connection.close()
                throw error
            }
            guard enabled else { return connection }
            return try await ValkeyClusterClient.connect(configuration, seedConnection: connection)
        }
    }
}
