import Foundation
import LedgerCore
import Histogram

/// The final report, as aligned text or as JSON (keys documented in docs/benchmarks.md).
struct Report {
    let plan: RunPlan
    let connections: Int
    let pipeline: Int
    let elapsed: Double
    let stats: LaneStats
    let check: CheckResult?
    /// The `--server-pid` processes' CPU seconds over the measured run.
    var serverCPUSeconds: Double? = nil

    static let percentiles: [(String, Double)] = [("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)]

    var all: Histogram<UInt64> {
        var merged = latencyHistogram()
        for case let histogram? in stats.histograms { merged.add(histogram) }
        return merged
    }

    var callsPerSecond: Double { Double(stats.calls) / elapsed }
    var errorCount: Int { stats.errors.values.reduce(0, +) }

    static func milliseconds(_ microseconds: UInt64) -> String { String(format: "%.3f", Double(microseconds) / 1000) }

    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (offset, character) in digits.enumerated() {
            if offset > 0 && (digits.count - offset) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return (value < 0 ? "-" : "") + out
    }

    func latencyLine(_ histogram: Histogram<UInt64>) -> String {
        Report.percentiles.map { "\($0.0) \(Report.milliseconds(histogram.valueAtPercentile($0.1)))" }.joined(separator: "  ")
            + "  max \(Report.milliseconds(histogram.max))"
    }

    func text() -> String {
        var lines: [String] = []
        let load = plan.rate.map { "open loop at \(Report.grouped(Int($0))) calls/s" } ?? "closed loop"
        lines.append(
            "ledger-load: \(connections) connections x \(pipeline) in flight, \(Report.grouped(plan.tenants.count)) tenants "
                + "(\(plan.distribution)), mix \(plan.mix), \(load), \(String(format: "%.1f", elapsed)) s")
        lines.append(
            "calls      \(Report.grouped(stats.calls))  \(Report.grouped(Int(callsPerSecond))) calls/s")
        lines.append("latency    ms: \(latencyLine(all))")
        if let serverCPUSeconds, stats.calls > 0 {
            lines.append(
                "server CPU \(String(format: "%.2f", serverCPUSeconds)) s over the run, "
                    + "\(String(format: "%.1f", serverCPUSeconds / Double(stats.calls) * 1e6)) µs per call")
        }
        if stats.pairs.totalCount > 0 {
            lines.append("  pairs    \(Report.grouped(Int(stats.pairs.totalCount))) reserve+commit, \(latencyLine(stats.pairs))")
        }
        for kind in CallKind.allCases {
            guard let histogram = stats.histograms[kind.index], histogram.totalCount > 0 else { continue }
            lines.append(
                "  \(kind.rawValue.padding(toLength: max(9, kind.rawValue.count + 1), withPad: " ", startingAt: 0))\(Report.grouped(Int(histogram.totalCount))) calls, "
                    + latencyLine(histogram))
        }
        if stats.errors.isEmpty {
            lines.append("errors     none")
        } else {
            lines.append(
                "errors     "
                    + stats.errors.sorted { $0.key < $1.key }.map { "\($0.key) \(Report.grouped($0.value))" }.joined(separator: ", "))
        }
        if let check {
            if check.violations.isEmpty {
                lines.append(
                    "check      ok: \(Report.grouped(check.tenants)) tenants conserve tokens; \(Report.grouped(check.commitsConfirmed)) "
                        + "commits confirmed, \(check.commitsUncertain) unknown, \(Report.grouped(check.capturesInHistory)) in the history")
            } else {
                lines.append("check      FAILED: \(check.violations.count) violations")
                lines += check.violations.prefix(20).map { "  \($0)" }
            }
        } else {
            lines.append("check      skipped")
        }
        return lines.joined(separator: "\n")
    }

    func json() -> String {
        func latencies(_ histogram: Histogram<UInt64>) -> OrderedJSON {
            var fields: [(String, OrderedJSON)] = []
            for (name, percentile) in Report.percentiles {
                fields.append((name, .decimal(Double(histogram.valueAtPercentile(percentile)) / 1000, places: 3)))
            }
            fields.append(("max", .decimal(Double(histogram.max) / 1000, places: 3)))
            return .object(fields)
        }
        let byCall: [(String, OrderedJSON)] = CallKind.allCases.compactMap { kind in
            guard let histogram = stats.histograms[kind.index], histogram.totalCount > 0 else { return nil }
            return (kind.rawValue, .object([("calls", .unsigned(UInt64(histogram.totalCount))), ("latency_ms", latencies(histogram))]))
        }
        let checkJSON: OrderedJSON = check.map { check in
            .object([
                ("ok", .bool(check.violations.isEmpty)), ("tenants", .unsigned(UInt64(check.tenants))),
                ("commits_confirmed", .unsigned(UInt64(check.commitsConfirmed))),
                ("commits_unknown", .unsigned(UInt64(check.commitsUncertain))),
                ("captures_in_history", .unsigned(UInt64(check.capturesInHistory))),
                ("violations", .array(check.violations.prefix(100).map { .string($0) })),
            ])
        } ?? .null
        return OrderedJSON.object([
            ("connections", .unsigned(UInt64(connections))), ("pipeline", .unsigned(UInt64(pipeline))),
            ("tenants", .unsigned(UInt64(plan.tenants.count))), ("distribution", .string("\(plan.distribution)")),
            ("mix", .string("\(plan.mix)")), ("rate", plan.rate.map { .decimal($0, places: 0) } ?? .null),
            ("duration_s", .decimal(elapsed, places: 3)), ("calls", .unsigned(UInt64(stats.calls))),
            ("ops_s", .decimal(callsPerSecond, places: 1)), ("errors_total", .unsigned(UInt64(errorCount))),
            ("latency_ms", latencies(all)), ("pairs", .unsigned(UInt64(stats.pairs.totalCount))),
            ("pair_latency_ms", stats.pairs.totalCount > 0 ? latencies(stats.pairs) : .null),
            ("by_call", .object(byCall)),
            ("errors", .object(stats.errors.sorted { $0.key < $1.key }.map { ($0.key, .unsigned(UInt64($0.value))) })),
            ("check", checkJSON),
            ("server_cpu_s", serverCPUSeconds.map { .decimal($0, places: 3) } ?? .null),
        ]).text
    }
}
