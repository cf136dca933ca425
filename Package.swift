// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "camreg",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "camregd", targets: ["camregd"]),
        .executable(name: "camreg", targets: ["camreg"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // Lock-free reads of the index state (a generation counter; swift-nio depends on it too).
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.2.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        // The daemon's configuration file (issue 5).
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        // Optional Prometheus endpoint (issue 5; off by default).
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // System libraries (C), found through pkg-config.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CGEOS", pkgConfig: "geos", providers: [.apt(["libgeos-dev"])]),
        .systemLibrary(name: "CPROJ", pkgConfig: "proj", providers: [.apt(["libproj-dev"])]),

        // Pure code: no I/O, no package dependencies (the fuzzer builds it alone).
        .target(name: "ControlProtocol"),

        // Wrappers over the C libraries.
        .target(name: "Postgres", dependencies: [
            "CLibPQ",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Geo", dependencies: ["CGEOS", "CPROJ"]),

        // Domain: values, validation, the in-memory index and queries.
        .target(name: "Registry", dependencies: [
            "Geo",
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Atomics", package: "swift-atomics"),
        ]),

        // Persistence: migrations, repositories, the embedded cluster.
        .target(name: "RegistryStore", dependencies: [
            "Postgres", "Registry", "Geo",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // The control socket.
        .target(name: "ControlServer", dependencies: [
            "ControlProtocol", "Registry", "RegistryStore",
            .product(name: "Atomics", package: "swift-atomics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOExtras", package: "swift-nio-extras"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "TOMLKit", package: "TOMLKit"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),

        .executableTarget(name: "camregd", dependencies: [
            "ControlProtocol", "ControlServer", "RegistryStore", "Registry",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "camreg", dependencies: [
            "ControlProtocol",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ],
        // main.swift holds `@main`; the subcommands may live in other files of the target.
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]),

        // Benchmark: camregd vs PostGIS vs Redis GEO on the same radius queries (issue 6).
        .executableTarget(name: "camreg-bench", dependencies: [
            "Postgres", "Registry", "RegistryStore", "Geo", "ControlProtocol", "ControlServer",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        // Benchmark of the coverage-gap analysis (issue 4).
        .executableTarget(name: "camreg-coverage-bench", dependencies: ["Registry"]),

        .testTarget(name: "CamregTests", dependencies: [
            "ControlProtocol", "Postgres", "Geo", "Registry", "RegistryStore", "ControlServer",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOExtras", package: "swift-nio-extras"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
    ]
)
