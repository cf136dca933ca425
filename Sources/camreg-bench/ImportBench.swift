import ControlProtocol
import Foundation
import Postgres
import Registry
import RegistryStore

/// The import comparison of issue 6: the same CSV file loaded by camregd through its import
/// path (`IMPORT BEGIN … DATA … COMMIT` on the control socket, as `camreg import` sends it) and
/// by `psql \copy`, each into the same emptied `cameras` table (its constraints, indexes and
/// foreign key), round after round.
enum ImportBench {
    /// Writes `cameras` as camregd's import CSV (``CSVExporter``: the default header, every
    /// field); returns the file's size in bytes.
    static func writeCSV(_ cameras: [Camera], to path: String) throws -> Int {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else { throw BenchError("cannot create \(path)") }
        defer { try? handle.close() }
        let csv = CSVExporter()
        var chunk = csv.header()
        var size = 0
        for c in cameras {
            chunk += csv.row(c)
            if chunk.utf8.count > 1 << 20 {
                let d = Data(chunk.utf8)
                try handle.write(contentsOf: d)
                size += d.count
                chunk.removeAll(keepingCapacity: true)
            }
        }
        let d = Data(chunk.utf8)
        try handle.write(contentsOf: d)
        return size + d.count
    }

    /// camregd's cap for a streamed CSV upload (`ConnectionSession.maxStreamedUploadBytes`, 1 GiB).
    static let uploadCap = 1 << 30

    /// Empties `cameras` and the change log for the next load (nothing else refers to them in
    /// the benchmark's database), then CHECKPOINTs, so that each load starts alike: no dirty
    /// pages of the last one left to write.
    static func emptyCameras(_ db: PostgresConnection) throws {
        try db.query("TRUNCATE cameras, camera_changes CASCADE")
        try db.query("CHECKPOINT")
    }

    /// Imports the file through camregd's control socket with all_or_nothing=yes, in chunks of
    /// 45,000 bytes as `camreg import` sends them (here up to 8 chunks in flight: the protocol
    /// answers in order). A file larger than camregd's upload cap is sent as several uploads of
    /// whole lines, each with the header (`uploads` says how many). Returns the seconds from the
    /// first `IMPORT BEGIN` to the last `IMPORT COMMIT` answer and the cameras imported.
    static func importThroughCamregd(socket: String, csvPath: String) throws -> (seconds: Double, imported: Int, uploads: Int) {
        guard let data = FileManager.default.contents(atPath: csvPath) else { throw BenchError("cannot read \(csvPath)") }
        let bytes = [UInt8](data)
        // Split into parts below the cap, at line ends (the exporter quotes embedded line breaks,
        // but its generated cameras have none), each part starting with the header line.
        guard let headerEnd = bytes.firstIndex(of: 0x0A) else { throw BenchError("no header line in \(csvPath)") }
        let header = bytes[...headerEnd]
        var parts: [ArraySlice<UInt8>] = []
        var from = headerEnd + 1
        let room = uploadCap - header.count - (1 << 20)
        while from < bytes.count {
            var to = min(from + room, bytes.count)
            if to < bytes.count {
                while to > from && bytes[to - 1] != 0x0A { to -= 1 }
            }
            parts.append(bytes[from..<to])
            from = to
        }
        // Each upload's file (the header, then its lines), made before the clock starts: the
        // whole file when it is one upload.
        let files: [[UInt8]] = parts.count == 1 ? [bytes] : parts.map { Array(header) + Array($0) }
        let stream = try UnixStream(path: socket)
        func answer() throws -> String { try stream.withLine { String(decoding: $0, as: UTF8.self) } }
        func expectOK(_ text: String, _ what: String) throws {
            guard text.hasPrefix(#"{"ok":true"#) else { throw BenchError("camregd \(what): \(text.prefix(500))") }
        }
        let t = monotonicNanos()
        var imported = 0
        for file in files {
            try stream.write(Array("IMPORT BEGIN format=csv all_or_nothing=yes by=camreg-bench\n".utf8))
            try expectOK(try answer(), "IMPORT BEGIN")
            let chunk = 45_000
            var sent = 0, inFlight = 0
            let prefix = Array("IMPORT DATA data=".utf8)
            var line: [UInt8] = []
            line.reserveCapacity(prefix.count + Base64.encodedCount(chunk) + 1)
            while sent < file.count {
                let end = min(sent + chunk, file.count)
                line.removeAll(keepingCapacity: true)
                line += prefix
                file.withUnsafeBytes { Base64.encode(UnsafeRawBufferPointer(rebasing: $0[sent..<end]), into: &line) }
                line.append(0x0A)
                try stream.write(line)
                sent = end
                inFlight += 1
                if inFlight == 8 { try expectOK(try answer(), "IMPORT DATA"); inFlight -= 1 }
            }
            while inFlight > 0 { try expectOK(try answer(), "IMPORT DATA"); inFlight -= 1 }
            try stream.write(Array("IMPORT COMMIT\n".utf8))
            let commit = try answer()
            try expectOK(commit, "IMPORT COMMIT")
            guard let o = try JSONSerialization.jsonObject(with: Data(commit.utf8)) as? [String: Any],
                  o["committed"] as? Bool == true, let n = (o["imported"] as? NSNumber)?.intValue else {
                throw BenchError("camregd IMPORT COMMIT did not commit: \(commit.prefix(1000))")
            }
            imported += n
        }
        return (secs(t), imported, parts.count)
    }

    /// `psql -c "\copy cameras(<columns>) FROM '<csv>' CSV HEADER"` with the real `psql` of the
    /// cluster, into the (emptied) `cameras` table. Returns the seconds `psql` ran.
    static func psqlCopy(cluster: EmbeddedCluster, csvPath: String) throws -> Double {
        let psql = [cluster.binDirectory + "/psql", "/usr/bin/psql"].first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? findExecutable("psql")
        guard let psql else { throw BenchError("psql not found") }
        let columns = CSVExporter.fields.map(\.rawValue).joined(separator: ", ")
        let escaped = csvPath.replacingOccurrences(of: "'", with: "''")
        let logPath = csvPath + ".psql.log"
        let t = monotonicNanos()
        let child = try ChildProcess([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", cluster.socketDirectory, "-p", String(cluster.port),
                                      "-U", cluster.user, "-d", cluster.database,
                                      "-c", "\\copy cameras(\(columns)) FROM '\(escaped)' CSV HEADER"],
                                     outputPath: logPath)
        let status = child.wait()
        let seconds = secs(t)
        guard status == 0 else {
            throw BenchError("psql \\copy failed: \((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")")
        }
        return seconds
    }
}
