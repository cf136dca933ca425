import Foundation
import Logging
import Postgres

/// One numbered schema change: `migrations/NNNN_name.sql`.
public struct Migration: Sendable, Equatable {
    /// The number at the start of the file name.
    public let version: Int
    /// The file name (`0001_cameras.sql`).
    public let fileName: String
    /// The SQL script.
    public let sql: String

    /// A migration from its parts.
    public init(version: Int, fileName: String, sql: String) {
        self.version = version
        self.fileName = fileName
        self.sql = sql
    }

    /// A checksum of the script (FNV-1a 64, hex), recorded so that an edited migration is noticed.
    public var checksum: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in sql.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }
}

/// Why migrations could not be applied. The daemon stops with this message.
public struct MigrationError: Error, CustomStringConvertible, Sendable {
    /// The migration file concerned, if any.
    public let fileName: String?
    /// What went wrong (the server's error for a failed script).
    public let message: String
    public var description: String {
        fileName.map { "migration \($0) failed: \(message)" } ?? "migrations: \(message)"
    }
}

/// Applies the numbered SQL files of a folder in order, each in its own transaction, recording
/// them in `schema_migrations`. Applying twice is a no-op; a failing file is rolled back and
/// reported with the server's error; several daemons starting at once serialise on an advisory lock.
public struct Migrator: Sendable {
    /// The migrations, in order.
    public let migrations: [Migration]

    /// Reads `NNNN_*.sql` files from `directory`.
    public init(directory: String) throws {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw MigrationError(fileName: nil, message: "cannot read the migrations folder \(directory): \(error.localizedDescription)")
        }
        var found: [Migration] = []
        for name in names where name.hasSuffix(".sql") {
            let digits = name.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let version = Int(digits) else {
                throw MigrationError(fileName: name, message: "a migration file name must start with its number, like 0001_name.sql")
            }
            let path = (directory as NSString).appendingPathComponent(name)
            guard let sql = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw MigrationError(fileName: name, message: "cannot read \(path) as UTF-8")
            }
            found.append(Migration(version: version, fileName: name, sql: sql))
        }
        found.sort { $0.version < $1.version }
        for (a, b) in zip(found, found.dropFirst()) where a.version == b.version {
            throw MigrationError(fileName: b.fileName, message: "has the same number as \(a.fileName)")
        }
        migrations = found
    }

    /// Uses the given migrations.
    public init(migrations: [Migration]) {
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    /// The default folder: `$CAMREG_MIGRATIONS`, else `./migrations`, else `migrations/` next to
    /// the package the executable was built in (`.build/<config>/camregd` → package root).
    public static func defaultDirectory() -> String {
        if let env = ProcessInfo.processInfo.environment["CAMREG_MIGRATIONS"], !env.isEmpty { return env }
        let fm = FileManager.default
        if fm.fileExists(atPath: "migrations/0001_cameras.sql") { return "migrations" }
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = dir.appendingPathComponent("migrations")
            if fm.fileExists(atPath: candidate.appendingPathComponent("0001_cameras.sql").path) { return candidate.path }
            dir = dir.deletingLastPathComponent()
        }
        return "migrations"
    }

    /// Applies what is not applied yet; returns the file names applied now.
    @discardableResult
    public func apply(on connection: PostgresConnection, logger: Logger? = nil) throws -> [String] {
        do {
            try connection.query("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    file_name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """)
            // Serialise concurrent start-ups (the key is arbitrary but fixed: "camreg" in ASCII).
            try connection.query("SELECT pg_advisory_lock(99097114101103)")
        } catch {
            throw MigrationError(fileName: nil, message: "\(error)")
        }
        defer { _ = try? connection.query("SELECT pg_advisory_unlock(99097114101103)") }
        let applied: [Int: String]
        do {
            let rows = try connection.query("SELECT version, checksum FROM schema_migrations")
            applied = Dictionary(uniqueKeysWithValues: rows.rows.map { (Int($0[0]!)!, $0[1]!) })
        } catch {
            throw MigrationError(fileName: nil, message: "\(error)")
        }
        var done: [String] = []
        for m in migrations {
            if let sum = applied[m.version] {
                if sum != m.checksum {
                    logger?.warning("migration changed after it was applied; not applying it again",
                                    metadata: ["file": "\(m.fileName)"])
                }
                continue
            }
            do {
                try connection.transaction { c in
                    try c.execute(script: m.sql)
                    try c.query("INSERT INTO schema_migrations (version, file_name, checksum) VALUES ($1, $2, $3)",
                                [String(m.version), m.fileName, m.checksum])
                }
            } catch let e as PostgresError {
                throw MigrationError(fileName: m.fileName, message: e.description)
            }
            logger?.info("applied migration", metadata: ["file": "\(m.fileName)"])
            done.append(m.fileName)
        }
        return done
    }
}
