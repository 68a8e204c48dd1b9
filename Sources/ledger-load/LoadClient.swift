import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import LedgerClient
import LedgerCore
import LedgerGRPC
import LedgerWire
import NIOCore
import NIOPosix

/// What a lane calls: the framed protocol (`LedgerClient`) or the gRPC port (`--grpc`). Lanes are
/// generic over it, so the framed path pays no dispatch for the choice.
protocol LoadClient: Sendable {
    /// Where the lane runs and takes its open-loop timers (the connection's own loop when it has one).
    var eventLoop: any EventLoop { get }
    func reserve(tenant: TenantID, hold: HoldID, tokens: Tokens, ttl: Duration?, requestID: RequestID) async throws(LedgerClientError)
    /// Returns the tokens captured.
    func commit(tenant: TenantID, hold: HoldID, amount: Tokens, requestID: RequestID) async throws(LedgerClientError) -> Tokens
    func release(tenant: TenantID, hold: HoldID, requestID: RequestID) async throws(LedgerClientError)
    /// Returns the tokens charged.
    func charge(tenant: TenantID, hold: HoldID, tokens: Tokens, requestID: RequestID) async throws(LedgerClientError) -> Tokens
    func refund(tenant: TenantID, hold: HoldID, amount: Tokens, requestID: RequestID) async throws(LedgerClientError)
    func estimate(tenant: TenantID, items: [PricedItem]) async throws(LedgerClientError)
    func balance(tenant: TenantID) async throws(LedgerClientError)
}

struct FramedLoadClient: LoadClient {
    let client: LedgerClient
    var eventLoop: any EventLoop { client.eventLoop }

    func reserve(tenant: TenantID, hold: HoldID, tokens: Tokens, ttl: Duration?, requestID: RequestID) async throws(LedgerClientError) {
        _ = try await client.reserve(tenant: tenant, hold: hold, tokens: tokens, ttl: ttl, requestID: requestID)
    }
    func commit(tenant: TenantID, hold: HoldID, amount: Tokens, requestID: RequestID) async throws(LedgerClientError) -> Tokens {
        try await client.commit(tenant: tenant, hold: hold, amount: amount, requestID: requestID).captured
    }
    func release(tenant: TenantID, hold: HoldID, requestID: RequestID) async throws(LedgerClientError) {
        _ = try await client.release(tenant: tenant, hold: hold, requestID: requestID)
    }
    func charge(tenant: TenantID, hold: HoldID, tokens: Tokens, requestID: RequestID) async throws(LedgerClientError) -> Tokens {
        try await client.charge(tenant: tenant, hold: hold, tokens: tokens, requestID: requestID).charged
    }
    func refund(tenant: TenantID, hold: HoldID, amount: Tokens, requestID: RequestID) async throws(LedgerClientError) {
        _ = try await client.refund(tenant: tenant, hold: hold, amount: amount, requestID: requestID)
    }
    func estimate(tenant: TenantID, items: [PricedItem]) async throws(LedgerClientError) {
        _ = try await client.estimate(tenant: tenant, items: items)
    }
    func balance(tenant: TenantID) async throws(LedgerClientError) {
        _ = try await client.balance(tenant: tenant)
    }
}

/// One HTTP/2 connection of grpc-swift-2 (`GRPCClient` over the Posix transport, mutual TLS) and
/// the generated `tokenledger.v1.Ledger` stub; errors become the framed client's, from the
/// status's ErrorInfo. No retries: a failed call counts as an error of the run.
struct GRPCLoadClient: LoadClient {
    let ledger: Tokenledger_V1_Ledger.Client<HTTP2ClientTransport.Posix>
    let eventLoop: any EventLoop

    /// A client of the gRPC port at `host:port`; its connection runs in `runConnections()` of the
    /// returned `GRPCClient`, which the caller runs.
    static func connect(
        host: String, port: Int, caPath: String, certificatePath: String, privateKeyPath: String
    ) throws -> (GRPCLoadClient, GRPCClient<HTTP2ClientTransport.Posix>) {
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: host, port: port),
            transportSecurity: .mTLS(
                certificateChain: [.file(path: certificatePath, format: .pem)], privateKey: .file(path: privateKeyPath, format: .pem)
            ) { $0.trustRoots = .certificates([.file(path: caPath, format: .pem)]) })
        let client = GRPCClient(transport: transport)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        return (GRPCLoadClient(ledger: Tokenledger_V1_Ledger.Client(wrapping: client), eventLoop: loop), client)
    }

    func reserve(tenant: TenantID, hold: HoldID, tokens: Tokens, ttl: Duration?, requestID: RequestID) async throws(LedgerClientError) {
        let request = Tokenledger_V1_ReserveRequest.with {
            $0.requestID = requestID.rawValue
            $0.tenant = tenant.rawValue
            $0.holdID = hold.rawValue
            $0.tokens = tokens
            if let ttl { $0.ttlMs = UInt64(clamping: ttl.wholeMilliseconds) }
        }
        _ = try await Self.run { try await ledger.reserve(request) }
    }

    func commit(tenant: TenantID, hold: HoldID, amount: Tokens, requestID: RequestID) async throws(LedgerClientError) -> Tokens {
        let request = Tokenledger_V1_CommitRequest.with {
            $0.requestID = requestID.rawValue
            $0.tenant = tenant.rawValue
            $0.holdID = hold.rawValue
            $0.amount = amount
        }
        return try await Self.run { try await ledger.commit(request) }.captured
    }

    func release(tenant: TenantID, hold: HoldID, requestID: RequestID) async throws(LedgerClientError) {
        let request = Tokenledger_V1_ReleaseRequest.with {
            $0.requestID = requestID.rawValue
            $0.tenant = tenant.rawValue
            $0.holdID = hold.rawValue
        }
        _ = try await Self.run { try await ledger.release(request) }
    }

    func charge(tenant: TenantID, hold: HoldID, tokens: Tokens, requestID: RequestID) async throws(LedgerClientError) -> Tokens {
        let request = Tokenledger_V1_ChargeRequest.with {
            $0.requestID = requestID.rawValue
            $0.tenant = tenant.rawValue
            $0.holdID = hold.rawValue
            $0.tokens = tokens
        }
        return try await Self.run { try await ledger.charge(request) }.charged
    }

    func refund(tenant: TenantID, hold: HoldID, amount: Tokens, requestID: RequestID) async throws(LedgerClientError) {
        let request = Tokenledger_V1_RefundRequest.with {
            $0.requestID = requestID.rawValue
            $0.tenant = tenant.rawValue
            $0.holdID = hold.rawValue
            $0.amount = amount
        }
        _ = try await Self.run { try await ledger.refund(request) }
    }

    func estimate(tenant: TenantID, items: [PricedItem]) async throws(LedgerClientError) {
        let request = Tokenledger_V1_EstimateRequest.with {
            $0.tenant = tenant.rawValue
            $0.items = items.map { item in
                .with {
                    $0.feature = item.feature
                    $0.quantity = item.quantity
                }
            }
        }
        _ = try await Self.run { try await ledger.estimate(request) }
    }

    func balance(tenant: TenantID) async throws(LedgerClientError) {
        _ = try await Self.run { try await ledger.balance(.with { $0.tenant = tenant.rawValue }) }
    }

    private static func run<T>(_ body: () async throws -> T) async throws(LedgerClientError) -> T {
        do {
            return try await body()
        } catch let error as RPCError {
            throw map(error)
        } catch {
            throw .protocolViolation("\(error)")
        }
    }

    /// The ledger's error from the status's ErrorInfo; transport failures as the framed client's.
    static func map(_ error: RPCError) -> LedgerClientError {
        if let status = try? error.unpackGoogleRPCStatus(),
            let info = status.details.lazy.compactMap(\.errorInfo).first(where: { $0.domain == GRPCErrors.domain }),
            let code = ErrorCode(rawValue: info.reason.lowercased())
        {
            return .rejected(LedgerError(code, error.message))
        }
        switch error.code {
        case .deadlineExceeded: return .timedOut
        case .unavailable: return .connectionClosed(error.message)
        default: return .protocolViolation("\(error.code): \(error.message)")
        }
    }
}
