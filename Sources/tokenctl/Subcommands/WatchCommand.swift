import ArgumentParser
import Foundation
import LedgerClient
import LedgerCore
import LedgerWire

/// Follows a tenant's events (low balance and recovery, budget exceeded, hold and grant expiry,
/// plan renewal, budget reset) as they become durable, one line each, until interrupted or until
/// --count events. When the connection drops or the server drains, it reconnects and resumes after
/// the last event it printed, so nothing is skipped or printed twice.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Follow a tenant's events (JSON lines with --json); resumes by itself after a disconnect.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant id.") var tenant: String
    @Option(name: .long, help: "Resume after this event id (0: every event the server still keeps; default: from now).")
    var after: UInt64?
    @Option(name: .long, help: "Exit (0) after this many events.") var count: Int?
    @Option(name: .customLong("reconnect-for"), help: "Give up (exit 69) after this many seconds without a connection (default 300).")
    var reconnectFor: Double = 300

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        guard reconnectFor >= 0 else { throw ValidationError("--reconnect-for must not be negative") }
    }

    func run() async throws {
        let tenantID: TenantID = try Parse.identifier(tenant, "tenant")
        let configuration: ClientConfiguration
        do {
            configuration = try global.clientConfiguration()
        } catch let failure as CommandFailure {
            failure.report()
        }
        var cursor = after
        var printed = 0
        var disconnectedSince: ContinuousClock.Instant? = nil
        var backoff = Duration.milliseconds(200)
        while true {
            do {
                let client = try await LedgerClient.connect(configuration)
                defer { Task { await client.close() } }
                let watch = try await client.watch(tenant: tenantID, after: cursor)
                for try await update in watch.updates {
                    disconnectedSince = nil
                    backoff = .milliseconds(200)
                    switch update.update {
                    case .started(let started)?:
                        if cursor == nil { cursor = started.latestEventID }
                        if started.eventsLost > 0 { note("\(started.eventsLost) events before \(started.oldestRetainedEventID) are no longer kept") }
                    case .gap(let gap)?:
                        note("\(gap.eventsLost) events before \(gap.nextEventID) were lost: this watch fell behind the retention window")
                    case .event(let event)?:
                        print(event)
                        cursor = event.id
                        printed += 1
                        if let count, printed >= count {
                            _ = try? await watch.stop()
                            return
                        }
                    case .ended?, nil:
                        break
                    }
                }
                note("the watch ended; watching again")
            } catch let error as LedgerClientError {
                guard error.isRetryable else { CommandFailure(error).report() }
                let since = disconnectedSince ?? .now
                disconnectedSince = since
                if ContinuousClock.now - since > .milliseconds(Int64(reconnectFor * 1_000)) { CommandFailure(error).report() }
                note("\(CommandFailure(error).message); reconnecting to resume after event \(cursor.map(String.init) ?? "now")")
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    private func print(_ event: Tokenledger_V1_LedgerEvent) {
        let line: String
        if global.json {
            line = event.json
        } else {
            var fields = [String(event.id), Format.time(event.timeMs), event.kindName]
            switch event.kind {
            case .lowBalance(let value)?, .balanceRecovered(let value)?:
                fields += [
                    value.member.isEmpty ? "pool" : "member \(value.member)",
                    "available \(Format.tokens(value.available)) threshold \(Format.tokens(value.threshold))",
                ]
            case .budgetExceeded(let value)?:
                fields += [
                    "member \(value.member)",
                    "requested \(Format.tokens(value.requested)), \(Format.tokens(value.remaining)) of \(Format.tokens(value.cap)) left until \(Format.time(value.resetsAtMs))",
                ]
            case .holdExpired(let value)?: fields += ["hold \(value.holdID)", "released \(Format.tokens(value.released))"]
            case .grantExpired(let value)?:
                fields += ["grant \(value.grantID) (\(value.grantKind.domain?.rawValue ?? "?"))", "expired \(Format.tokens(value.expired))"]
            case .planRenewed(let value)?:
                fields += [
                    "grant \(value.grantID)",
                    "\(Format.tokens(value.amount)) for \(Format.time(value.periodStartMs)) to \(Format.time(value.periodEndMs))",
                ]
            case .budgetReset(let value)?:
                fields += ["member \(value.member)", "period \(Format.time(value.periodStartMs)) to \(Format.time(value.periodEndMs))"]
            case .granted(let value)?, .voided(let value)?:
                fields += ["grant \(value.grantID) (\(value.grantKind.domain?.rawValue ?? "?"))", Format.tokens(value.amount)]
            case .purchased(let value)?:
                fields += [
                    "grant \(value.grantID)",
                    Format.tokens(value.amount) + (value.bonusGrantID == 0 ? "" : " + bonus \(Format.tokens(value.bonusAmount)) (grant \(value.bonusGrantID))"),
                    "money \(value.moneyMinor)",
                ]
            case .captured(let value)?, .charged(let value)?, .refunded(let value)?:
                fields.append("hold \(value.holdID)")
                if !value.member.isEmpty { fields.append("member \(value.member)") }
                fields.append(Format.tokens(value.amount) + (value.final ? " (final)" : ""))
            case nil:
                break
            }
            line = fields.joined(separator: "  ")
        }
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    private func note(_ text: String) {
        FileHandle.standardError.write(Data("tokenctl: \(text)\n".utf8))
    }
}
