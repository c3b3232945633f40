/// Opens the client the configuration asks for: one server, or a Valkey Cluster.
package enum ValkeyClients {
    /// `cluster`: true for a cluster, false for one server, nil to follow the URL's
    /// `?cluster=` option or else to ask the server (`INFO cluster`, `cluster_enabled:1`).
    package static func connect(_ configuration: ValkeyConfiguration, cluster: Bool?) async throws -> any ValkeyClient {
        switch cluster ?? configuration.cluster {
        case true?:
            return try await ValkeyClusterClient.connect(configuration)
        case false?:
            return try await ValkeyConnection.connect(configuration)
        case nil:
            let connection = try await ValkeyConnection.connect(configuration)
            let enabled: Bool
            if let mode = connection.serverMode {
                enabled = mode == "cluster"
            } else {
                do {
                    enabled = try await connection.send("INFO", "cluster").string?.contains("cluster_enabled:1") == true
                } catch let error as ValkeyError where error.kind == .server && isUnknownCommand(error.message) {
                    // A RESP2 server (or proxy) without INFO is not a cluster node. A refusal
                    // (an ACL without INFO) says nothing about the mode: that is an error.
                    enabled = false
                } catch let error as ValkeyError where error.kind == .server {
                    await connection.close()
                    throw ValkeyError(.invalidConfiguration, server: error.server,
                                      message: "cannot tell whether this is a cluster: INFO was refused (\(error.message)); "
                                        + "allow INFO for the job's user or say the mode explicitly (?cluster=1 or ?cluster=0)")
                } catch {
                    await connection.close()
                    throw error
                }
            }
            guard enabled else { return connection }
            return try await ValkeyClusterClient.connect(configuration, seedConnection: connection)
        }
    }
}

private func isUnknownCommand(_ message: String) -> Bool {
    let lowered = message.lowercased()
    return lowered.contains("unknown command") || lowered.contains("unknown subcommand")
}
