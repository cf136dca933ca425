import Foundation
import Registry

// Benchmark of the coverage-gap analysis (issue 4): the full Bến Cát analysis (the 1,202-camera
// demo inventory, its 8 generated wards and streets, 10 suggestions) and a generated
// 100,000-camera region (the demo generator with 100,000 cameras on the same streets and wards),
// each timed end to end in the engine (no database), with the process's peak RSS.
//
// Usage: camreg-coverage-bench [--cameras N] [--suggest N] [--repeat N] [--tile M]

/// CPU time of this process (user + system), seconds: robust when the machine is shared.
func cpuSeconds() -> Double {
    var u = rusage()
    getrusage(0 /* RUSAGE_SELF */, &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
}

func peakRSSMiB() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
        return kb / 1024
    }
    return .nan
}

let args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, _ fallback: Int) -> Int {
    guard let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) else { return fallback }
    return v
}
let large = option("--cameras", 100_000)
let suggest = option("--suggest", 10)
let repeats = max(1, option("--repeat", 3))
let tile = Double(option("--tile", 2000))
let trace = args.contains("--trace")

func run(count: Int, label: String) throws {
    let inventory = DemoInventory.generate(count: count)
    let wards = try CoverageDemoLayers.wards()
    let streets = CoverageDemoLayers.streets(inventory)
    var times: [Double] = [], cpu: [Double] = []
    var last: CoverageResult?
    for _ in 0..<repeats {
        let start = Date(), cpu0 = cpuSeconds()
        last = try CoverageEngine.run(cameras: inventory.cameras, wards: wards, streets: streets, incidents: [],
                                      parameters: CoverageParameters(referenceDate: DemoInventory.defaultReferenceDate,
                                                                     suggest: suggest, tileSize: tile),
                                      progress: { p in
                                          if trace { FileHandle.standardError.write(Data(String(format: "  %.3f s %@\n", Date().timeIntervalSince(start), p.phase).utf8)) }
                                      })
        times.append(Date().timeIntervalSince(start))
        cpu.append(cpuSeconds() - cpu0)
    }
    let r = last!
    times.sort()
    cpu.sort()
    print(String(format: "%@: %d cameras (%d counted), %d wards, %d streets, %d tiles: median %.3f s (min %.3f, max %.3f; CPU median %.3f s) over %d runs; "
                 + "covered %.1f%% of %.1f km, %d intersections (%d unseen), %d suggestions; peak RSS %.0f MiB",
                 label, count, r.camerasCounted, wards.count, streets.count, r.tiles, times[times.count / 2], times[0], times[times.count - 1],
                 cpu[cpu.count / 2], repeats, r.town.coveredShare * 100, r.town.streetLength / 1000, r.town.intersections, r.town.unseenIntersections,
                 r.suggestions.count, peakRSSMiB()))
}

try run(count: BenCat.cameraCount, label: "Bến Cát")
try run(count: large, label: "generated region")
