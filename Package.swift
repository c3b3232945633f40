// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "sync-job",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sync-job", targets: ["SyncJob"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // libpq, the PostgreSQL client library psql uses, as a system library.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // The program's instant (microseconds since the epoch, RFC 3339 in and out) and durations.
        .target(name: "Timestamps"),
        // Swift API over libpq: connection, parameterised queries, keyset page reader.
        .target(name: "Postgres", dependencies: ["CLibPQ", "Timestamps"]),

        // RESP2/RESP3 codec and hash slots: bytes in, values out, no sockets.
        .target(name: "RESP", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Valkey connection, pipelines, URL and TLS configuration.
        .target(name: "Valkey", dependencies: [
            "RESP", "Timestamps",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
        ]),

        // The watermark rule and store, the read window, the commit guard.
        .target(name: "Watermarks", dependencies: ["Timestamps", "Postgres", "Valkey", "Writers"]),
        // Key templates, field encoding, and the writers that turn rows into commands.
        .target(name: "Writers", dependencies: ["Timestamps", "Postgres", "RESP", "Valkey"]),

        // libxml2's HTML parser as a system library.
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        // Documentation manifest, fetching, HTML to search sections.
        .target(name: "SearchIndex", dependencies: ["CLibXML2", "Timestamps"]),

        // The executable: command line, configuration, stages, lock, logs, metrics.
        .executableTarget(name: "SyncJob", dependencies: [
            "Timestamps", "Postgres", "RESP", "Valkey", "Watermarks", "Writers", "SearchIndex",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], plugins: ["BuildInfo"]),
        // Stamps the executable with its commit for `--version` (SYNC_JOB_COMMIT, else git).
        .plugin(name: "BuildInfo", capability: .buildTool()),

        // Client benchmark: this client against `valkey-cli --pipe` (not a test).
        .executableTarget(name: "ValkeyBench", dependencies: ["RESP", "Timestamps", "Valkey"]),

        // What the client and the stage tests share about the local test cluster.
        .target(name: "ClusterTestSupport", dependencies: ["RESP", "Valkey"], path: "Tests/ClusterTestSupport"),

        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "Timestamps"]),
        .testTarget(name: "RESPTests", dependencies: ["RESP"]),
        .testTarget(name: "ValkeyTests", dependencies: [
            "Valkey", "RESP", "ClusterTestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "WritersTests", dependencies: [
            "Writers", "Watermarks", "Timestamps", "Postgres", "RESP", "Valkey",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Fixtures: pages as DocBook, Sphinx, Hugo, Docusaurus and MkDocs emit them.
        .testTarget(name: "SearchIndexTests", dependencies: ["SearchIndex"], resources: [.copy("Fixtures")]),
        // A loopback TCP proxy that passes, stalls or resets connections, for the fault tests.
        .target(name: "FaultInjection", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], path: "Tests/FaultInjection"),
        // The executable's own rules without a server: exit codes, settings, summaries.
        .testTarget(name: "SyncJobUnitTests", dependencies: ["SyncJob", "Timestamps", "Postgres", "Valkey", "Writers", "Watermarks", "SearchIndex"]),
        .testTarget(name: "SyncJobTests", dependencies: ["Timestamps", "Postgres", "RESP", "Valkey", "Watermarks", "Writers", "ClusterTestSupport", "FaultInjection"]),
    ],
    swiftLanguageModes: [.v6]
)
