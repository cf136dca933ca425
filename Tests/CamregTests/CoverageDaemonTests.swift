import Foundation
import RegistryStore
import Testing

/// The coverage analysis through the real daemon (`camregd --demo`) and the real CLI.
@Suite("Coverage through camregd and the CLI")
struct CoverageDaemonTests {
    /// The CLI's socket has a receive timeout, so a read under way when Ctrl-C arrives fails
    /// with EINTR even though the handler was installed with `signal`: it must be retried, and
    /// the run cancelled once the answer is in (it was reported as "read failed", exit 1).
    /// Against a scripted server that answers only after the signal has been sent.
    @Test func ctrlCDuringAReadCancelsTheRun() async throws {
        let dir = try shortTempDirectory("ci")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/f.sock"
        let listener = try boundUnixSocket(SOCK_STREAM, path: path)
        defer { close(listener) }
        #expect(listen(listener, 1) == 0)

        let cliBin = URL(fileURLWithPath: try daemonBinary()).deletingLastPathComponent().appendingPathComponent("camreg").path
        let cli = try ChildProcess([cliBin, "coverage", "run", "--tile", "100", "--socket", path], outputPath: dir + "/cli.out")
        defer { if cli.isRunning { cli.signal(SIGKILL); _ = cli.wait() } }
        // The server: read the run request, send SIGINT while the CLI waits for the answer, then
        // answer; the CLI must come back with JOB CANCEL.
        final class Lines: @unchecked Sendable { var lines: [String] = []; let done = DispatchSemaphore(value: 0) }
        let seen = Lines()
        let pid = cli.pid
        Thread {
            defer { seen.done.signal() }
            let conn = accept(listener, nil, nil)
            guard conn >= 0 else { return }
            defer { close(conn) }
            var pending: [UInt8] = []
            func readLine() -> String? {
                var buf = [UInt8](repeating: 0, count: 4096)
                while !pending.contains(0x0A) {
                    let n = read(conn, &buf, buf.count)
                    guard n > 0 else { return nil }
                    pending += buf[0..<n]
                }
                let nl = pending.firstIndex(of: 0x0A)!
                defer { pending.removeSubrange(...nl) }
                return String(decoding: pending[..<nl], as: UTF8.self)
            }
            func send(_ line: String) { _ = (line + "\n").utf8CString.withUnsafeBytes { write(conn, $0.baseAddress!, $0.count - 1) } }
            guard let run = readLine() else { return }
            seen.lines.append(run)
            usleep(300_000)
            kill(pid, SIGINT)
            usleep(300_000)
            send(#"{"ok":true,"id":7,"status":"running"}"#)
            guard let next = readLine() else { return }
            seen.lines.append(next)
            send(#"{"ok":true,"id":7,"status":"cancelled"}"#)
        }.start()
        let deadline = Date().addingTimeInterval(60)
        while cli.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let output = (try? String(contentsOfFile: dir + "/cli.out", encoding: .utf8)) ?? ""
        #expect(cli.exitStatus() == 130, "\(output)")
        #expect(seen.done.wait(timeout: .now() + 10) == .success)
        #expect(seen.lines.count == 2 && seen.lines[0].hasPrefix("COVERAGE RUN") && seen.lines[1] == "JOB CANCEL 7", "\(seen.lines)")
        #expect(output.contains("interrupted: coverage run 7 cancelled"), "\(output)")
    }

    @Test func cliRunMapsAndARestartMidRunMarksTheRunFailed() async throws {
        let dir = try shortTempDirectory("cv")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = dir + "/data"
        let sock = dir + "/d.sock"
        let first = try DaemonProcess(arguments: ["--demo", "--data-dir", data], socket: sock, log: dir + "/1.log")
        try await first.waitReady()
        #expect(first.logText.contains("stored the demo's coverage layers"))

        // The demo's layers are there out of the box.
        let stats = try await runCLI(["layer", "stats", "--socket", sock])
        #expect(stats.status == 0 && stats.output.contains("8 wards, 1940 streets"), "\(stats.output)")

        // One command: the per-ward table, a GeoJSON and a map.
        let geojson = dir + "/c.geojson", svg = dir + "/c.svg", png = dir + "/c.png"
        var args = ["coverage", "run", "--suggest", "10", "--geojson", geojson, "--svg", svg, "--socket", sock]
        // deploy/test installs librsvg2-bin, so the PNG path always runs.
        let converter = try #require(["/usr/bin/rsvg-convert", "/usr/local/bin/rsvg-convert"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                     "rsvg-convert is needed for the PNG map (apt install librsvg2-bin; deploy/test does)")
        args += ["--png", png]
        let run = try await runCLI(args)
        #expect(run.status == 0, "\(run.output)")
        for ward in ["Phường Mỹ Phước", "Xã An Tây", "Phường Tân Định", "Town", "Suggested camera sites"] {
            #expect(run.output.contains(ward), "\(ward) missing from:\n\(run.output)")
        }
        let fc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: geojson))) as? [String: Any]
        #expect(fc?["type"] as? String == "FeatureCollection")
        let features = fc?["features"] as? [[String: Any]] ?? []
        let layers = Set(features.compactMap { ($0["properties"] as? [String: Any])?["layer"] as? String })
        #expect(layers.isSuperset(of: ["ward", "covered", "gap", "intersection", "sector", "suggestion"]))
        #expect(features.filter { ($0["properties"] as? [String: Any])?["layer"] as? String == "suggestion" }.count == 10)
        let map = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(map.hasPrefix("<svg") && map.contains("id=\"legend\"") && map.contains("id=\"scale\"") && map.contains("id=\"gap\""))
        #expect(map.contains("suggested new camera"))
        if !converter.isEmpty {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: png))
            #expect(bytes.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]))
        }

        // Ctrl-C on `camreg coverage run` cancels its job.
        let cliBin = URL(fileURLWithPath: try daemonBinary()).deletingLastPathComponent().appendingPathComponent("camreg").path
        let interrupted = try ChildProcess([cliBin, "coverage", "run", "--tile", "100", "--socket", sock], outputPath: dir + "/int.out")
        // Runs are numbered in order: the first CLI run was 1, this one is 2.
        let cancelledID = 2
        // The wait for `running` and the Ctrl-C run in a shell of their own, not in this test's
        // tasks: with the whole suite running in parallel, the test process's cooperative pool can
        // be busy for longer than the run lasts (the probe then saw the run only after it ended).
        // Every status the watcher reads is in its output.
        let watcherOut = dir + "/watch.out"
        let script = """
            i=0
            while [ $i -lt 1500 ]; do
              s=$("$1" coverage status \(cancelledID) --socket "$2" 2>&1)
              echo "$s"
              case "$s" in *"job \(cancelledID): running"*) sleep 0.3; kill -INT "$3"; echo SIGNALLED; exit 0;; esac
              i=$((i+1)); sleep 0.02
            done
            exit 1
            """
        let watcher = try ChildProcess(["/bin/sh", "-c", script, "watch", cliBin, sock, String(interrupted.pid)], outputPath: watcherOut)
        let deadline = Date().addingTimeInterval(120)
        while (watcher.isRunning || interrupted.isRunning) && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        for p in [watcher, interrupted] where p.isRunning { p.signal(SIGKILL); _ = p.wait() }
        let watched = (try? String(contentsOfFile: watcherOut, encoding: .utf8)) ?? ""
        #expect(watcher.exitStatus() == 0 && watched.contains("SIGNALLED"), "the watcher never saw run \(cancelledID) running:\n\(watched.suffix(2000))")
        #expect(interrupted.exitStatus() == 130, "\((try? String(contentsOfFile: dir + "/int.out", encoding: .utf8)) ?? "")")
        let probe = try await TestClient(path: sock)
        #expect(try await probe.request("JOB STATUS \(cancelledID)")["status"] as? String == "cancelled")
        await probe.close()

        // A long run (100 m tiles), then kill -9 mid-run: the restarted daemon marks it failed.
        let c = try await TestClient(path: sock)
        let started = try await c.request("COVERAGE RUN tile=100")
        let id = try #require((started["id"] as? NSNumber)?.intValue)
        #expect(try await c.request("JOB STATUS \(id)")["status"] as? String == "running")
        first.process.signal(SIGKILL)
        #expect(try await first.exit() == 128 + SIGKILL)
        await c.close()
        let second = try DaemonProcess(arguments: ["--data-dir", data], socket: sock, log: dir + "/2.log")
        try await second.waitReady()
        let c2 = try await TestClient(path: sock)
        let status = try await c2.request("JOB STATUS \(id)")
        #expect(status["status"] as? String == "failed", "\(status)")
        #expect(errorCode(try await c2.request("COVERAGE RESULT \(id)")) == "not_complete")
        // The completed run survived the restart.
        let cli = try await runCLI(["coverage", "result", "1", "--socket", sock])
        #expect(cli.status == 0 && cli.output.contains("Town"), "\(cli.output)")
        await c2.close()
        #expect(try await second.terminate() == 0)
    }
}
