import ArgumentParser

/// The command-line client: every call of the ledger, for operators and scripts. Results go to
/// stdout (aligned text, or JSON with --json); failures to stderr as
/// `tokenctl: error: <code>: <message>` with one exit code per class of failure (README.md).
@main
struct Tokenctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenctl",
        abstract: "Call a TokenLedger server: tenants, members, grants, purchases, holds, balances, history.",
        discussion: """
            Exit codes: 0 ok; 64 usage; 65 invalid_argument or limit_exceeded; 66 not_found; 67 a conflict \
            (already_exists, already_committed, already_released, expired, idempotency_conflict); 68 not enough \
            to spend (insufficient_balance, budget_exceeded, plan_limit_reached); 69 unreachable, timeout, \
            overloaded or unavailable (retry with the same --request-id); 76 protocol error; 77 \
            unauthenticated or permission_denied.

            The connection options (--server, --data-dir, --ca, --cert, --key, --timeout) and --json \
            go before the subcommand or after it: `tokenctl --server H:P --json balance acme`.
            """,
        subcommands: [
            TenantCommand.self, MemberCommand.self, GrantCommand.self, PurchaseCommand.self, VoidCommand.self,
            RefundPurchaseCommand.self, ReserveCommand.self, ChargeCommand.self, ExtendCommand.self, IncreaseCommand.self,
            CommitCommand.self, ReleaseCommand.self, RefundCommand.self, EstimateCommand.self, BalanceCommand.self,
            HistoryCommand.self, HoldsCommand.self, GrantsCommand.self, TenantsCommand.self, WatchCommand.self, CatalogCommand.self, HealthCommand.self, ShardsCommand.self, AdminCommand.self,
        ])

    /// Parses the command line with the options that came before the subcommand moved behind it,
    /// where every subcommand declares them (`GlobalOptions.hoisted`).
    static func main() async {
        await main(GlobalOptions.hoisted(Array(CommandLine.arguments.dropFirst())))
    }
}
