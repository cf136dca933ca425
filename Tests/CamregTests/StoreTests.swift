import Foundation
import Postgres
import Registry
import RegistryStore
import Testing

@Suite("PostgreSQL: migrations, repository, constraints")
struct StoreTests {
    @Test func freshApplyThenReapplyIsNoOp() async throws {
        let config = try await TestPostgres.shared.freshDatabase("mig")
        let c = try PostgresConnection(configuration: config)
        let migrator = try Migrator(directory: migrationsDirectory)
        #expect(!migrator.migrations.isEmpty)
        let first = try migrator.apply(on: c)
        #expect(first == migrator.migrations.map(\.fileName))
        let tables = try c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
        #expect(tables.rows.map { $0[0]! }.contains("cameras"))
        let second = try migrator.apply(on: c)
        #expect(second.isEmpty)
        let recorded = try c.query("SELECT version, file_name FROM schema_migrations ORDER BY version")
        #expect(recorded.rows.map { $0[1]! } == migrator.migrations.map(\.fileName))
    }

    @Test func brokenMigrationIsRolledBackAndNamed() async throws {
        let config = try await TestPostgres.shared.freshDatabase("bad")
        let c = try PostgresConnection(configuration: config)
        let good = Migration(version: 1, fileName: "0001_good.sql", sql: "CREATE TABLE good (x int);")
        let bad = Migration(version: 2, fileName: "0002_bad.sql",
                            sql: "CREATE TABLE half (x int);\nINSERT INTO half VALUES (1);\nSELECT no_such_column FROM half;")
        do {
            try Migrator(migrations: [good, bad]).apply(on: c)
            Issue.record("a broken migration must fail")
        } catch let e as MigrationError {
            #expect(e.fileName == "0002_bad.sql")
            #expect(e.description.contains("0002_bad.sql"))
            #expect(e.message.contains("no_such_column"))
            #expect(e.message.contains("42703"))
        }
        // The good one stays applied; nothing of the bad one is left.
        let tables = try c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
            .rows.map { $0[0]! }
        #expect(tables.contains("good"))
        #expect(!tables.contains("half"))
        let versions = try c.query("SELECT version FROM schema_migrations ORDER BY 1").rows.map { $0[0]! }
        #expect(versions == ["1"])
        // Fixing the file and starting again applies it.
        let fixed = Migration(version: 2, fileName: "0002_bad.sql", sql: "CREATE TABLE half (x int);")
        #expect(try Migrator(migrations: [good, fixed]).apply(on: c) == ["0002_bad.sql"])
    }

    @Test func migrationFolderIsReadInNumericOrder() throws {
        let dir = try shortTempDirectory("mf")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "SELECT 2;".write(toFile: dir + "/0010_b.sql", atomically: true, encoding: .utf8)
        try "SELECT 1;".write(toFile: dir + "/0002_a.sql", atomically: true, encoding: .utf8)
        try "not sql".write(toFile: dir + "/README.txt", atomically: true, encoding: .utf8)
        #expect(try Migrator(directory: dir).migrations.map(\.version) == [2, 10])
        try "SELECT 3;".write(toFile: dir + "/x_c.sql", atomically: true, encoding: .utf8)
        #expect(throws: MigrationError.self) { try Migrator(directory: dir) }
    }

    @Test func demoRoundTripsThroughCopy() async throws {
        let config = try await TestPostgres.shared.migratedDatabase("demo")
        let c = try PostgresConnection(configuration: config)
        let demo = DemoInventory.generate()
        #expect(try CameraRepository.loadIfEmpty(demo.cameras, on: c))
        #expect(try CameraRepository.count(on: c) == 1202)
        // Second load is refused: the table is not empty.
        #expect(try !CameraRepository.loadIfEmpty(demo.cameras, on: c))
        #expect(try CameraRepository.count(on: c) == 1202)
        let back = try CameraRepository.all(on: c)
        #expect(back.count == demo.cameras.count)
        for (a, b) in zip(back, demo.cameras) {
            #expect(a.id == b.id && a.lat == b.lat && a.lon == b.lon && a.address == b.address && a.ward == b.ward)
            #expect(a.heading == b.heading && a.fov == b.fov && a.range == b.range && a.schedule == b.schedule)
            #expect(a.ownerName == b.ownerName && a.ownerPhone == b.ownerPhone && a.status == b.status)
            #expect(abs(a.createdAt.timeIntervalSince(b.createdAt)) < 1e-5)
        }
        let one = try #require(try CameraRepository.get(id: "BC-00042", on: c))
        #expect(one.id == "BC-00042")
        #expect(try CameraRepository.get(id: "BC-99999", on: c) == nil)
    }

    @Test func loadIsAllOrNothing() async throws {
        let config = try await TestPostgres.shared.migratedDatabase("aon")
        let c = try PostgresConnection(configuration: config)
        var cams = Array(DemoInventory.generate().cameras.prefix(50))
        cams[30].fov = 400  // violates a CHECK constraint in the database
        do {
            _ = try CameraRepository.loadIfEmpty(cams, on: c)
            Issue.record("expected a constraint violation")
        } catch let e as PostgresError {
            #expect(e.sqlState == "23514")
        }
        #expect(try CameraRepository.count(on: c) == 0)
        // The connection is usable afterwards.
        #expect(try CameraRepository.loadIfEmpty(Array(cams.prefix(30)), on: c))
        #expect(try CameraRepository.count(on: c) == 30)
    }

    @Test func sqlConstraintsMatchSwiftValidation() async throws {
        let config = try await TestPostgres.shared.migratedDatabase("chk")
        let c = try PostgresConnection(configuration: config)
        let base = DemoInventory.generate().cameras[0]
        let mutations: [(String, (inout Camera) -> Void)] = [
            ("lat", { $0.lat = 91 }), ("lon", { $0.lon = -181 }), ("lat", { $0.lat = .nan }),
            ("heading", { $0.heading = 360 }), ("fov", { $0.fov = 0 }), ("range", { $0.range = -1 }),
            ("mount_height", { $0.mountHeight = 101 }), ("retention_days", { $0.retentionDays = 0 }),
            ("address", { $0.address = "   " }), ("id", { $0.id = "bc 1" }),
        ]
        for (field, mutate) in mutations {
            var cam = base
            mutate(&cam)
            #expect(cam.validate().contains { $0.field == field }, "Swift accepts a bad \(field)")
            #expect(throws: PostgresError.self, "SQL accepts a bad \(field)") {
                try c.transaction { try CameraRepository.copyInsert([cam], on: $0) }
            }
        }
        #expect(try CameraRepository.count(on: c) == 0)
    }

    @Test func errorsCarrySQLStateAndConnectFailuresAreTyped() async throws {
        let config = try await TestPostgres.shared.freshDatabase("err")
        let c = try PostgresConnection(configuration: config)
        do {
            try c.query("SELECT 1/0")
            Issue.record("expected division by zero")
        } catch let e as PostgresError {
            #expect(e.code == .server)
            #expect(e.sqlState == "22012")
        }
        // Parameters are data, never SQL.
        let evil = "x'); DROP TABLE pg_class; --"
        #expect(try c.query("SELECT $1::text", [evil]).scalar() == evil)
        #expect(try c.query("SELECT $1::text IS NULL", [nil]).scalar() == "t")
        #expect(throws: PostgresError.self) {
            _ = try PostgresConnection(configuration: .unixSocket(directory: "/nonexistent", user: "x", database: "y"))
        }
    }

    @Test func pipelineReturnsResultsInOrderAndSurvivesAFailedStatement() async throws {
        let config = try await TestPostgres.shared.freshDatabase("pipe")
        let c = try PostgresConnection(configuration: config)
        // Results come back in the order sent, one call each.
        try c.sendPipeline("SELECT $1::int * 2, $2::text", (1...16).map { ["\($0)", "n\($0)"] })
        for i in 1...16 {
            let rows = try c.nextPipelineResult().rows
            #expect(rows == [["\(i * 2)", "n\(i)"]])
        }
        // Nothing left to read; the connection is out of pipeline mode and answers plain queries.
        #expect(throws: PostgresError.self) { _ = try c.nextPipelineResult() }
        #expect(try c.query("SELECT 41 + 1").rows == [["42"]])
        // A failing statement: its error, then "not run" for the rest of that pipeline.
        try c.sendPipeline("SELECT 10 / $1::int", [["5"], ["0"], ["2"]])
        #expect(try c.nextPipelineResult().rows == [["2"]])
        do {
            _ = try c.nextPipelineResult()
            Issue.record("division by zero must fail")
        } catch let e as PostgresError {
            #expect(e.sqlState == "22012")
        }
        do {
            _ = try c.nextPipelineResult()
            Issue.record("a statement after a failed one must not run")
        } catch let e as PostgresError {
            #expect(e.code == .server)
            #expect(e.message.contains("earlier statement"))
        }
        // And the connection is usable again, in and out of pipeline mode.
        try c.sendPipeline("SELECT $1::int + 1", [["1"]])
        #expect(try c.nextPipelineResult().rows == [["2"]])
        #expect(try c.query("SELECT 'still here'").rows == [["still here"]])
    }
}
