import LedgerClient
import LedgerCore

/// The end-of-run check: for every tenant touched, the balance the server reports conserves
/// tokens, and the commits the clients saw succeed are the captures in the server's history (of
/// this run's holds, told by their prefix, so other traffic on the same tenants does not count).
struct CheckResult: Sendable {
    var tenants = 0
    var commitsConfirmed = 0
    var commitsUncertain = 0
    var capturesInHistory = 0
    var violations: [String] = []
}

func checkInvariants(
    _ stats: LaneStats, names: [TenantID], holdPrefix: String, clients: [LedgerClient], lanes: Int
) async -> CheckResult {
    let touched = stats.touched.sorted()
    let next = Counter()
    let results = await withTaskGroup(of: CheckResult.self) { group in
        for lane in 0..<min(lanes, max(1, touched.count)) {
            let client = clients[lane % clients.count]
            group.addTask {
                var result = CheckResult()
                while let position = next.take(below: touched.count) {
                    let index = touched[position]
                    let confirmed = stats.commits[index] ?? (0, 0)
                    let uncertain = stats.uncertainCommits[index] ?? 0
                    result.tenants += 1
                    result.commitsConfirmed += confirmed.count
                    result.commitsUncertain += uncertain
                    await check(
                        names[index], holdPrefix: holdPrefix, confirmed: confirmed, uncertain: uncertain, client: client,
                        into: &result)
                }
                return result
            }
        }
        var all = CheckResult()
        for await result in group {
            all.tenants += result.tenants
            all.commitsConfirmed += result.commitsConfirmed
            all.commitsUncertain += result.commitsUncertain
            all.capturesInHistory += result.capturesInHistory
            all.violations += result.violations
        }
        return all
    }
    return results
}

private func check(
    _ tenant: TenantID, holdPrefix: String, confirmed: (count: Int, captured: UInt64), uncertain: Int,
    client: LedgerClient,
    into result: inout CheckResult
) async {
    do {
        let balance = try await client.balance(tenant: tenant)
        let parts = [balance.available, balance.reserved, balance.spent, balance.expired, balance.voided]
        if Tokens.checkedSum(parts) != balance.granted {
            result.violations.append(
                "\(tenant): granted \(balance.granted) != available \(balance.available) + reserved \(balance.reserved) "
                    + "+ spent \(balance.spent) + expired \(balance.expired) + voided \(balance.voided)")
        }
        // Every capture of the tenant's history, page by page.
        var holds = Set<String>()
        var captured: UInt64 = 0
        var after: UInt64 = 0
        repeat {
            let page = try await client.history(
                tenant: tenant, filter: HistoryFilter(kinds: [.capture], afterSequence: after, limit: Limits.historyPageMax))
            for entry in page.entries where entry.holdID.hasPrefix(holdPrefix + "-") {
                holds.insert(entry.holdID)
                captured &+= entry.amount
            }
            after = page.nextCursor
        } while after != 0
        result.capturesInHistory += holds.count
        // A commit whose reply was lost may or may not have been applied: the history may hold up
        // to `uncertain` more than the clients confirmed, never fewer and never more than that.
        if holds.count < confirmed.count || holds.count > confirmed.count + uncertain {
            result.violations.append(
                "\(tenant): the history has \(holds.count) committed holds, the clients saw \(confirmed.count) "
                    + "commits succeed and \(uncertain) end unknown")
        } else if uncertain == 0 && captured != confirmed.captured {
            result.violations.append(
                "\(tenant): the history captured \(captured) tokens, the commits' replies \(confirmed.captured)")
        }
    } catch {
        result.violations.append("\(tenant): the check could not read the tenant: \(error)")
    }
}
