import Foundation
import LedgerTLS
import NIOCore
import NIOPosix
import NIOSSL
import LedgerTesting
import Synchronization
import Testing

@Suite("tokenctl, the real binary against a real server", .serialized)
struct TokenctlTests {
    /// The README's walkthrough, line by line: every command must succeed.
    @Test("the README walkthrough runs as written")
    func readmeWalkthrough() throws {
        let readme = try String(contentsOfFile: Self.repositoryRoot + "/README.md", encoding: .utf8)
        let block = try #require(readme.components(separatedBy: "<!-- walkthrough -->").dropFirst().first)
        let lines = block.components(separatedBy: "<!-- /walkthrough -->")[0].split(separator: "\n")
            .map(String.init).filter { $0.hasPrefix("tokenctl ") }
        #expect(lines.count >= 15)
        let ledger = try LiveLedger()
        defer { ledger.stop() }
        var outputs: [String: String] = [:]
        for line in lines {
            let run = try ledger.tokenctl(Array(line.split(separator: " ").map(String.init).dropFirst()))
            #expect(run.status == 0, "\(line): \(run.stderr)")
            #expect(run.stderr.isEmpty, "\(line): \(run.stderr)")
            outputs[line] = run.stdout
        }
        let balance = try #require(outputs["tokenctl balance acme --member ana"])
        #expect(balance.contains("240/3,005,750 used"), "\(balance)")
        #expect(balance.contains("member ana  240/10,000 spent this day"), "\(balance)")
        #expect(readme.contains("240/3,005,750 used"), "README quotes the meter the walkthrough produces")
    }

    @Test("every command's --json output, parsed and checked")
    func jsonOutput() throws {
        let ledger = try LiveLedger()
        defer { ledger.stop() }
        let created = try ledger.tokenctl("tenant create acme --plan-allowance 1000 --plan-period week --json --request-id create-acme")
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.object["tenant"] as? String == "acme")
        #expect(created.object["plan_period"] as? String == "week")
        #expect(created.object["request_id"] as? String == "create-acme")

        let member = try ledger.tokenctl("member set acme ana --budget 500 --budget-period day --threshold 50 --json")
        #expect((member.object["budget"] as? [String: Any])?["cap"] as? Int == 500)
        #expect(member.object["threshold"] as? Int == 50)

        let grant = try ledger.tokenctl("grant acme 300 --kind referral --expires-at 2030-01-01T00:00:00Z --note friend --json")
        let grantObject = try #require(grant.object["grant"] as? [String: Any])
        #expect(grantObject["kind"] as? String == "referral")
        #expect(grantObject["remaining"] as? Int == 300)
        #expect(grantObject["expires_at"] as? String == "2030-01-01T00:00:00.000Z")

        let purchase = try ledger.tokenctl("purchase acme --money 10000 --json")
        #expect(purchase.object["tokens"] as? Int == 10_750)
        #expect((purchase.object["bonus"] as? [String: Any])?["amount"] as? Int == 750)

        let estimate = try ledger.tokenctl("estimate acme --member ana --item transcription=37 --item report.qa=1 --json")
        #expect(estimate.object["total"] as? Int == 296 + 40)
        #expect(estimate.object["affordable"] as? Bool == true)
        #expect((estimate.object["items"] as? [[String: Any]])?.map { $0["cost"] as? Int } == [296, 40])

        let reserve = try ledger.tokenctl("reserve acme 200 --id h1 --member ana --ttl 1h --json")
        let hold = try #require(reserve.object["hold"] as? [String: Any])
        #expect(hold["state"] as? String == "held")
        #expect(hold["amount"] as? Int == 200)
        #expect(hold["member"] as? String == "ana")

        let partial = try ledger.tokenctl("commit acme h1 50 --partial --json")
        #expect(partial.object["captured"] as? Int == 50)
        #expect((partial.object["hold"] as? [String: Any])?["state"] as? String == "held")
        let final = try ledger.tokenctl("commit acme h1 100 --json")
        #expect(final.object["released"] as? Int == 50)
        let refund = try ledger.tokenctl("refund acme h1 30 --json")
        #expect(refund.object["refunded"] as? Int == 30)
        _ = try ledger.tokenctl("reserve acme 10 --id h2")
        let release = try ledger.tokenctl("release acme h2 --json")
        #expect(release.object["released"] as? Int == 10)
        _ = try ledger.tokenctl("reserve acme 8 --id s1 --ttl 2m")
        let increased = try ledger.tokenctl("increase acme s1 8 --json")
        #expect(increased.status == 0, "\(increased.stderr)")
        #expect(increased.object["increased"] as? Int == 8)
        #expect((increased.object["hold"] as? [String: Any])?["amount"] as? Int == 16)
        let extended = try ledger.tokenctl("extend acme s1 --ttl 1h --json")
        #expect((extended.object["hold"] as? [String: Any])?["expires_at"] is String)
        #expect(try ledger.tokenctl("increase acme s1 99999999999999").status == 68)
        #expect(try ledger.tokenctl("extend acme s1 --ttl 8d").status == 65)
        let holds = try ledger.tokenctl("holds acme --json")
        #expect(holds.status == 0, "\(holds.stderr)")
        #expect(holds.lines.map { $0["id"] as? String } == ["s1"])
        #expect(try ledger.tokenctl("holds acme --member ana --json").lines.isEmpty)
        #expect(try ledger.tokenctl("holds acme").stdout.contains("s1"))
        let grants = try ledger.tokenctl("grants acme --state active --json")
        #expect(!grants.lines.isEmpty && grants.lines.allSatisfy { $0["state"] as? String == "active" })
        #expect(try ledger.tokenctl("grants acme --state gone").status == 64)
        #expect(try ledger.tokenctl("tenants --json").lines.map { $0["tenant"] as? String } == ["acme"])
        #expect(try ledger.tokenctl("release acme s1 --json").object["released"] as? Int == 16)
        let charge = try ledger.tokenctl("charge acme --id c1 --item report.qa=1 --json --request-id charge-c1")
        #expect(charge.status == 0, "\(charge.stderr)")
        #expect(charge.object["charged"] as? Int == 40)
        #expect((charge.object["hold"] as? [String: Any])?["state"] as? String == "committed")
        #expect(charge.object["request_id"] as? String == "charge-c1")
        #expect(try ledger.tokenctl("charge acme 5 --id c1").status == 67)
        #expect(try ledger.tokenctl("charge acme 5 --id c2 --item report.qa=1").status == 64)
        #expect(try ledger.tokenctl("refund acme c1 40 --json").object["refunded"] as? Int == 40)

        let balance = try ledger.tokenctl("balance acme --member ana --json")
        #expect(balance.object["tenant"] as? String == "acme")
        #expect(balance.object["spent"] as? Int == 150 - 30)
        #expect(balance.object["reserved"] as? Int == 0)
        let buckets = try #require(balance.object["buckets"] as? [[String: Any]])
        #expect(buckets.first?["kind"] as? String == "plan")
        #expect(buckets.allSatisfy { $0["id"] is String && $0["remaining"] is Int && $0.keys.contains("expires_at") })
        let budget = try #require(balance.object["member_budget"] as? [String: Any])
        #expect(budget["cap"] as? Int == 500)
        #expect(budget["spent"] as? Int == 120)
        #expect(budget["remaining"] as? Int == 380)
        #expect(budget["resets_at"] is String)
        let available = try #require(balance.object["available"] as? Int)
        #expect(available == 1_000 + 300 + 10_750 - 120)

        let history = try ledger.tokenctl("history acme --limit 1000 --json")
        #expect(history.lines.count > 10)
        #expect(history.lines.map { $0["sequence"] as? Int ?? 0 } == Array(1...history.lines.count))
        let captures = history.lines.filter { $0["kind"] as? String == "capture" }
        #expect(captures.compactMap { $0["amount"] as? Int }.reduce(0, +) == 150 + 40)
        let planOnly = try ledger.tokenctl("history acme --source plan --json")
        #expect(planOnly.lines.allSatisfy { $0["source"] as? String == "plan" })

        let catalog = try ledger.tokenctl("catalog --json")
        #expect(catalog.object["version"] as? String == "demo-2026-11", "\(catalog.stderr)")
        #expect((catalog.object["features"] as? [[String: Any]])?.contains { $0["name"] as? String == "transcription" } == true)
        let health = try ledger.tokenctl("health --json")
        #expect(health.object["status"] as? String == "serving")
        #expect(health.object["principal"] as? String == "admin")

        // Administration beyond the walkthrough: configure, void, refund a purchase, install a catalog.
        let configured = try ledger.tokenctl("tenant configure acme --threshold 20000 --overdraft-limit 10 --json")
        #expect(configured.object["tenant"] as? String == "acme", "\(configured.stderr)")
        let afterConfigure = try ledger.tokenctl("balance acme --json").object
        #expect(afterConfigure["low_balance_threshold"] as? Int == 20_000)
        #expect(afterConfigure["below_threshold"] as? Bool == true)
        #expect(afterConfigure["overdraft_limit"] as? Int == 10)
        let referral = try #require(grantObject["id"] as? String)
        let voided = try ledger.tokenctl(["void", "acme", referral, "--json"])
        #expect(voided.object["voided"] as? Int == 300, "\(voided.stderr)")
        let purchaseID = try #require((purchase.object["purchase"] as? [String: Any])?["id"] as? String)
        let bought = try ledger.tokenctl(["refund-purchase", "acme", purchaseID, "--json"])
        #expect(bought.status == 0, "\(bought.stderr)")
        #expect((bought.object["voided"] as? Int ?? 0) > 0)
        #expect(bought.object["money_refund_minor"] as? Int == bought.object["voided"] as? Int)
        let catalogPath = ledger.directory.path + "/catalog.json"
        try #"{"version": "v2", "features": {"transcription": {"unit": "minute", "rate": 9}}}"#
            .write(toFile: catalogPath, atomically: true, encoding: .utf8)
        let installed = try ledger.tokenctl(["catalog", "install", catalogPath, "--json"])
        #expect(installed.object["version"] as? String == "v2", "\(installed.stderr)")
        #expect(try ledger.tokenctl("estimate acme --item transcription=10 --json").object["total"] as? Int == 90)
        #expect(try ledger.tokenctl("catalog show --json").object["version"] as? String == "v2")
        try "{not json".write(toFile: catalogPath, atomically: true, encoding: .utf8)
        let badCatalog = try ledger.tokenctl(["catalog", "install", catalogPath])
        #expect(badCatalog.status == 65)
        #expect(badCatalog.stderr.hasPrefix("tokenctl: error: invalid_argument: "))

        // A retry with the same request id is answered, not applied again.
        let first = try ledger.tokenctl("grant acme 5 --kind adjustment --request-id adj-1 --json")
        let again = try ledger.tokenctl("grant acme 5 --kind adjustment --request-id adj-1 --json")
        #expect(first.object["grant"] as? [String: Any] != nil)
        #expect((again.object["grant"] as? [String: Any])?["id"] as? String == (first.object["grant"] as? [String: Any])?["id"] as? String)
        let finalBalance = try ledger.tokenctl("balance acme --json").object
        #expect(finalBalance["granted"] as? Int == (afterConfigure["granted"] as? Int ?? 0) + 5)
        // The embedded mode's shard map: no cluster, every shard served here.
        let shards = try ledger.tokenctl("shards --json").object
        #expect(shards["cluster"] as? Bool == false && (shards["shard_count"] as? Int ?? 0) > 0, "\(shards)")
    }

    @Test("plan quotas and scoped grants: --quota, --scope, balance and estimate --json, quota_exceeded exits 68")
    func quotasAndScopes() throws {
        let ledger = try LiveLedger()
        defer { ledger.stop() }
        let created = try ledger.tokenctl("tenant create acme --plan-allowance 100 --quota cover_image=2 --quota transcription=60 --json")
        #expect(created.status == 0, "\(created.stderr)")
        #expect((created.object["quotas"] as? [[String: Any]])?.map { $0["feature"] as? String } == ["cover_image", "transcription"])
        #expect(try ledger.tokenctl("tenant create bad --quota cover_image=2").status == 64, "a quota needs a plan")
        #expect(try ledger.tokenctl("tenant create bad --plan-allowance 1 --quota cover_image").status == 64)

        let promo = try ledger.tokenctl("grant acme 80 --kind promo --scope transcription --priority 10 --json")
        #expect(promo.status == 0, "\(promo.stderr)")
        #expect((promo.object["grant"] as? [String: Any])?["scope"] as? [String] == ["transcription"])

        #expect(try ledger.tokenctl("charge acme --id img --item cover_image=2").status == 0)
        let refused = try ledger.tokenctl("charge acme --id img-2 --item cover_image=1")
        #expect(refused.status == 68)
        #expect(refused.stderr.contains("quota_exceeded") && refused.stderr.contains("quota cover_image: 2 of 2 used, 1 asked"), "\(refused.stderr)")

        let estimate = try ledger.tokenctl("estimate acme --item transcription=5 --item cover_image=1 --json")
        #expect(estimate.object["affordable"] as? Bool == false)
        let quotas = try #require(estimate.object["quotas"] as? [[String: Any]])
        #expect(quotas.map { "\($0["feature"]!) \($0["used"]!)/\($0["limit"]!) +\($0["requested"]!)" } == ["cover_image 2/2 +1", "transcription 0/60 +5"])

        let balance = try ledger.tokenctl("balance acme --json")
        let balanceQuotas = try #require(balance.object["quotas"] as? [[String: Any]])
        #expect(balanceQuotas.map { "\($0["feature"]!) \($0["used"]!)/\($0["limit"]!)" } == ["cover_image 2/2", "transcription 0/60"])
        #expect(balanceQuotas.allSatisfy { ($0["resets_at"] as? String)?.hasSuffix("Z") == true })
        let buckets = try #require(balance.object["buckets"] as? [[String: Any]])
        #expect(buckets.map { $0["scope"] as? [String] } == [["transcription"], []])
        let human = try ledger.tokenctl("balance acme")
        #expect(human.stdout.contains("quota cover_image") && human.stdout.contains("2/2 used"), "\(human.stdout)")
        #expect(human.stdout.contains("transcription"), "\(human.stdout)")

        let configured = try ledger.tokenctl("tenant configure acme --plan-allowance 100 --quota cover_image=5")
        #expect(configured.status == 0, "\(configured.stderr)")
        #expect(try ledger.tokenctl("charge acme --id img-2 --item cover_image=1").status == 0)
    }

    @Test("several thresholds and movement events: --threshold-at, --clear-thresholds, --movement-events")
    func thresholdsAndMovementEvents() throws {
        let ledger = try LiveLedger()
        defer { ledger.stop() }
        let created = try ledger.tokenctl("tenant create acme --plan-allowance 1000 --threshold-at 800 --threshold-at 50% --movement-events off --json")
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.object["thresholds"] as? [String] == ["800", "50%"])
        #expect(created.object["movement_events"] as? Bool == false)
        #expect(try ledger.tokenctl("tenant create bad --threshold-at 101%").status == 64)
        #expect(try ledger.tokenctl("charge acme 600 --id c1").status == 0)
        let balance = try ledger.tokenctl("balance acme --json")
        let thresholds = try #require(balance.object["thresholds"] as? [[String: Any]])
        #expect(thresholds.map { "\($0["threshold"]!)=\($0["tokens"]!) \($0["below"]!)" } == ["800=800 1", "50%=500 1"])
        #expect(balance.object["movement_events"] as? Bool == false)
        let events = try ledger.tokenctl("watch acme --after 0 --count 3 --json")
        #expect(events.lines.map { $0["type"] as? String } == ["plan_renewed", "low_balance", "low_balance"])
        #expect(events.lines.map { $0["threshold"] as? Int }.suffix(2) == [800, 500])

        #expect(try ledger.tokenctl("tenant configure acme --clear-thresholds --movement-events on").status == 0)
        #expect(try ledger.tokenctl("refund acme c1 100").status == 0)
        let refunded = try ledger.tokenctl("watch acme --after 3 --count 1 --json")
        #expect(refunded.lines.first?["type"] as? String == "refunded" && refunded.lines.first?["amount"] as? Int == 100)
        #expect((try ledger.tokenctl("balance acme --json").object["thresholds"] as? [Any])?.isEmpty == true)
        let member = try ledger.tokenctl("member set acme ana --budget 100 --threshold-at 10% --json")
        #expect(member.object["thresholds"] as? [String] == ["10%"])
    }

    @Test("connection options and --json go before the subcommand as well as after it")
    func optionsBeforeTheSubcommand() throws {
        let ledger = try LiveLedger()
        defer { ledger.stop() }
        // The environment points nowhere: only --server reaches the ledger.
        let nowhere = "127.0.0.1:1"
        let server = "127.0.0.1:\(ledger.port)"
        let created = try ledger.tokenctl(["--server", server, "--json", "tenant", "create", "acme"], server: nowhere)
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.object["tenant"] as? String == "acme")
        let balance = try ledger.tokenctl(["--server=\(server)", "--timeout", "5", "--json", "balance", "acme"], server: nowhere)
        #expect(balance.status == 0, "\(balance.stderr)")
        #expect(balance.object["available"] as? Int == 0)
        let mixed = try ledger.tokenctl(["--json", "balance", "acme", "--server", server], server: nowhere)
        #expect(mixed.status == 0, "\(mixed.stderr)")
        // Without it, the environment's server: unreachable, exit 69.
        let unreachable = try ledger.tokenctl(["--json", "balance", "acme", "--timeout", "2"], server: nowhere)
        #expect(unreachable.status == 69, "\(unreachable.stderr)")
        // Something else before the subcommand is still a usage error.
        let unknown = try ledger.tokenctl(["--verbose", "balance", "acme"])
        #expect(unknown.status == 64)
    }

    @Test("human output: aligned tables, thousands separators, ISO 8601 times")
    func humanOutput() throws {
        let ledger = try LiveLedger()
        defer { ledger.stop() }
        _ = try ledger.tokenctl("tenant create acme --plan-allowance 3000000")
        let balance = try ledger.tokenctl("balance acme")
        #expect(balance.stdout.contains("available  3,000,000"))
        #expect(balance.stdout.contains("0/3,000,000 used, resets "))
        let table = balance.stdout.components(separatedBy: "\n\n")[1].split(separator: "\n")
        #expect(table.first?.hasPrefix("BUCKET  KIND  STATE   REMAINING") == true, "\(table)")
        // REMAINING is right-aligned: its last digit sits under the header's last letter.
        let header = String(table[0])
        let row = String(table[1])
        let end = header.range(of: "REMAINING")!.upperBound
        let column = header.distance(from: header.startIndex, to: end)
        #expect(row.prefix(column).hasSuffix("3,000,000"), "\(row)")
        #expect(row.contains(#/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/#))
    }

    @Test("every error class has its exit code and a one-line diagnostic")
    func exitCodes() throws {
        let ledger = try LiveLedger(arguments: ["--access", Self.writeAccessFile()])
        defer { ledger.stop() }
        _ = try ledger.tokenctl("tenant create acme")
        _ = try ledger.tokenctl("grant acme 100 --kind promo")
        _ = try ledger.tokenctl("reserve acme 10 --id done")
        _ = try ledger.tokenctl("commit acme done 10")
        _ = try ledger.tokenctl("member set acme ana --budget 5 --budget-period day")
        // A service certificate, issued with the development CA's key, as an operator would.
        let tls = DevelopmentTLS(dataDirectory: ledger.dataPath)
        let authority = try CertificateAuthority(
            certificatePEM: try String(contentsOfFile: tls.caPath, encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: tls.caKeyPath, encoding: .utf8))
        let meter = try authority.issueClient(commonName: "meter")
        try DevelopmentTLS.write(meter.certificatePEM, to: ledger.directory.path + "/meter.pem", private: false)
        try DevelopmentTLS.write(meter.privateKeyPEM, to: ledger.directory.path + "/meter-key.pem", private: true)
        let asMeter = "--cert \(ledger.directory.path)/meter.pem --key \(ledger.directory.path)/meter-key.pem"

        let cases: [(String, Int32, String?)] = [
            ("reserve acme --id x", 64, nil),
            ("balance acme --server nowhere", 64, nil),
            ("balance acme --cert /nonexistent.pem", 64, "usage"),
            ("reserve acme 0 --id zero", 65, "invalid_argument"),
            ("history acme --limit 1000 --since 1970-01-01", 0, nil),
            ("balance nobody", 66, "not_found"),
            ("tenant create acme", 67, "already_exists"),
            ("commit acme done 1", 67, "already_committed"),
            ("reserve acme 1000000 --id big", 68, "insufficient_balance"),
            ("reserve acme 10 --id over --member ana", 68, "budget_exceeded"),
            ("tenant create other \(asMeter)", 77, "permission_denied"),
            ("balance acme \(asMeter)", 0, nil),
            ("balance acme --server 127.0.0.1:1", 69, "connect_failed"),
        ]
        for (line, status, code) in cases {
            let run = try ledger.tokenctl(line)
            #expect(run.status == status, "\(line): \(run.status) \(run.stderr)")
            if let code {
                #expect(run.stderr.hasPrefix("tokenctl: error: \(code): "), "\(line): \(run.stderr)")
                #expect(run.stderr.split(separator: "\n").count == 1, "\(line): \(run.stderr)")
            }
            #expect(!run.stderr.contains("Fatal error") && !run.stderr.contains("Stack"), "\(line): \(run.stderr)")
        }
        // A valid certificate whose name the access file does not know.
        let stranger = try authority.issueClient(commonName: "stranger")
        try DevelopmentTLS.write(stranger.certificatePEM, to: ledger.directory.path + "/stranger.pem", private: false)
        try DevelopmentTLS.write(stranger.privateKeyPEM, to: ledger.directory.path + "/stranger-key.pem", private: true)
        let unknown = try ledger.tokenctl("health --cert \(ledger.directory.path)/stranger.pem --key \(ledger.directory.path)/stranger-key.pem")
        #expect(unknown.status == 77, "\(unknown.stderr)")
        #expect(unknown.stderr.hasPrefix("tokenctl: error: unauthenticated: "))
        // The server went away: unavailable class.
        #expect(ledger.stop() == 0)
        let down = try ledger.tokenctl("health")
        #expect(down.status == 69)
        #expect(down.stderr.hasPrefix("tokenctl: error: connect_failed: "))
    }

    @Test("a server that answers with something that is not a Response: exit 76")
    func protocolError() async throws {
        let ledger = try LiveLedger()
        defer { ledger.stop() }
        // A TLS server with the same development certificate that answers every byte with a frame
        // of garbage.
        let tls = DevelopmentTLS(dataDirectory: ledger.dataPath)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(tls.serverCertificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.serverKeyPath, format: .pem)))
        configuration.minimumTLSVersion = .tlsv13
        let context = try NIOSSLContext(configuration: configuration)
        let liar = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([NIOSSLServerHandler(context: context), GarbageReplier()])
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let run = try ledger.tokenctl(["health"], server: "127.0.0.1:\(liar.localAddress!.port!)")
        #expect(run.status == 76, "\(run.stderr)")
        #expect(run.stderr.hasPrefix("tokenctl: error: protocol_error: "), "\(run.stderr)")
        try await liar.close()
    }

    @Test("admin snapshot writes a snapshot of every shard; admin audit reports the invariants hold")
    func adminCommands() async throws {
        // Two shards (the default follows the event loops, one on a 2-core machine).
        let ledger = try LiveLedger(arguments: ["--shards", "2"])
        defer { ledger.stop() }
        #expect(try ledger.tokenctl("tenant create acme").status == 0)
        #expect(try ledger.tokenctl("tenant create globex").status == 0)
        #expect(try ledger.tokenctl("grant acme 500 --kind promo").status == 0)

        let snapshot = try ledger.tokenctl("admin snapshot --json")
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        let positions = try #require(snapshot.object["snapshot_lsns"] as? [Int])
        #expect(positions.count == 2 && positions.contains { $0 > 0 })
        // Each shard that has records now has a snapshot file at exactly that position.
        for (shard, lsn) in positions.enumerated() where lsn > 0 {
            let name = String(format: "snapshot-%020d.snap", lsn)
            #expect(FileManager.default.fileExists(atPath: ledger.dataPath + String(format: "/shard-%03d/", shard) + name))
        }
        let human = try ledger.tokenctl("admin snapshot")
        #expect(human.status == 0 && human.stdout.contains("shard 0") && human.stdout.contains("snapshot at LSN"))

        let audit = try ledger.tokenctl("admin audit --json")
        #expect(audit.status == 0, "\(audit.stderr)")
        #expect(audit.object["ok"] as? Bool == true)
        #expect(audit.object["tenants"] as? Int == 2)
        #expect(audit.object["shards"] as? Int == 2)
        #expect((audit.object["violations"] as? [Any])?.isEmpty == true)
        #expect(try ledger.tokenctl("admin audit").stdout.contains("ok: every invariant holds"))

        // A backup through the real server, then a second to the same directory (refused), then
        // the backup opened by a real ledgerd: the same balance.
        let backupPath = ledger.directory.path + "/backup-1"
        let backup = try ledger.tokenctl(["admin", "backup", backupPath, "--json"])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(backup.object["directory"] as? String == backupPath)
        #expect(backup.object["tenants"] as? Int == 2)
        #expect((backup.object["shards"] as? [[String: Any]])?.count == 2)
        let again = try ledger.tokenctl(["admin", "backup", backupPath])
        #expect(again.status == 67 && again.stderr.contains("already_exists"), "\(again.status) \(again.stderr)")
        #expect(try ledger.tokenctl(["admin", "backup", "relative"]).status == 65)
        // ledgerd restore writes a new data directory from the backup (no archive: through its end).
        let restoredPath = ledger.directory.path + "/restored"
        let restore = try LiveLedger.run(
            builtProduct("ledgerd"), ["restore", "--from", backupPath, "--data-dir", restoredPath], directory: ledger.directory.path,
            environment: [:])
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stdout.contains("2 tenants") && restore.stdout.contains("shard 1: through LSN"), "\(restore.stdout)")
        let restored = try StartedLedgerd(dataPath: restoredPath, logPath: ledger.directory.path + "/restored.log")
        // The backup holds the ledger, not the development TLS material: the restored server made its own.
        let balance = try ledger.tokenctl(["balance", "acme", "--json", "--data-dir", restoredPath], server: "127.0.0.1:\(restored.port)")
        #expect(balance.object["available"] as? Int == 500, "\(balance.stderr)")
        restored.process.kill(SIGTERM)
        #expect(restored.process.wait() == 0)
    }

    @Test("watch prints retained events from an id, follows new ones, and refuses unknown tenants")
    func watch() async throws {
        let ledger = try LiveLedger()
        defer { ledger.stop() }
        // Created below the threshold (event 1, low_balance), then granted (event 2, the movement)
        // above it (event 3).
        #expect(try ledger.tokenctl("tenant create acme --threshold 500").status == 0)
        #expect(try ledger.tokenctl("grant acme 1000 --kind purchase").status == 0)
        let replay = try ledger.tokenctl("watch acme --after 0 --count 3 --json")
        #expect(replay.status == 0, "\(replay.stderr)")
        #expect(replay.lines.map { $0["id"] as? Int } == [1, 2, 3])
        #expect(replay.lines.map { $0["type"] as? String } == ["low_balance", "granted", "balance_recovered"])
        #expect(replay.lines[1]["amount"] as? Int == 1_000 && replay.lines[1]["grant_kind"] as? String == "purchase")
        #expect(replay.lines.last?["available"] as? Int == 1_000)
        let human = try ledger.tokenctl("watch acme --after 2 --count 1")
        #expect(human.status == 0 && human.stdout.hasPrefix("3  ") && human.stdout.contains("balance_recovered  pool"))
        let unknown = try ledger.tokenctl("watch nobody --count 1")
        #expect(unknown.status == 66 && unknown.stderr.contains("not_found"))

        // From now: only what happens after the watch started.
        let follower = Mutex<LiveLedger.Run?>(nil)
        let (executable, directory, server) = (builtProduct("tokenctl"), ledger.directory.path, "127.0.0.1:\(ledger.port)")
        let thread = Thread {
            let run = try? LiveLedger.run(
                executable, ["watch", "acme", "--count", "2", "--json"], directory: directory, environment: ["TOKENCTL_SERVER": server])
            follower.withLock { $0 = run }
        }
        thread.start()
        try await Task.sleep(for: .seconds(1))
        #expect(try ledger.tokenctl("reserve acme 600 --id job").status == 0)
        #expect(try ledger.tokenctl("commit acme job 600").status == 0)
        for _ in 0..<500 where follower.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(20)) }
        let followed = try #require(follower.withLock { $0 })
        #expect(followed.status == 0, "\(followed.stderr)")
        // The reserve's crossing (it holds 600 of 1,000), then the commit's capture.
        #expect(followed.lines.map { $0["id"] as? Int } == [4, 5])
        #expect(followed.lines.map { $0["type"] as? String } == ["low_balance", "captured"])
        #expect(followed.lines.first?["available"] as? Int == 400)
        #expect(followed.lines.last?["hold"] as? String == "job" && followed.lines.last?["amount"] as? Int == 600)
        #expect(followed.lines.last?["final"] as? Bool == true)
    }

    static func writeAccessFile() throws -> String {
        let path = FileManager.default.temporaryDirectory.path + "/tokenctl-access-\(UUID().uuidString).json"
        try #"{"principals": [{"name": "admin", "role": "admin"}, {"name": "meter", "role": "service", "tenants": "*"}]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The repository root: this file is Tests/TokenctlTests/TokenctlTests.swift.
    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }
}

/// Answers whatever it reads with one frame whose body is not a valid protobuf message.
final class GarbageReplier: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: [0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF])), promise: nil)
    }
}
