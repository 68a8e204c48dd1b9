import GRPCCore
import Synchronization

/// The standard grpc.health.v1.Health service (proto/grpc/health/v1/health.proto): "" and
/// "tokenledger.v1.Ledger" are SERVING from the moment the port listens (recovery and its audit
/// are done by then) and NOT_SERVING once ledgerd drains; other names are unknown. Any connection
/// that passed the TLS handshake may ask, with or without a principal: the answer names nothing.
final class HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    static let services: Set<String> = ["", "tokenledger.v1.Ledger"]

    private struct State {
        var serving = true
        var watchers: [Int: AsyncStream<Bool>.Continuation] = [:]
        var nextWatcher = 0
    }
    private let state = Mutex(State())

    /// NOT_SERVING from now on; every Watch stream gets it and ends.
    func beginDraining() {
        let watchers = state.withLock { state in
            state.serving = false
            defer { state.watchers = [:] }
            return Array(state.watchers.values)
        }
        for watcher in watchers {
            watcher.yield(false)
            watcher.finish()
        }
    }

    private static func response(_ serving: Bool) -> Grpc_Health_V1_HealthCheckResponse {
        .with { $0.status = serving ? .serving : .notServing }
    }

    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard Self.services.contains(request.service) else {
            throw RPCError(code: .notFound, message: "unknown service \"\(request.service)\"")
        }
        return Self.response(state.withLock { $0.serving })
    }

    func watch(
        request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>, context: ServerContext
    ) async throws {
        guard Self.services.contains(request.service) else {
            return try await response.write(.with { $0.status = .serviceUnknown })
        }
        let (stream, continuation) = AsyncStream.makeStream(of: Bool.self)
        let (serving, id): (Bool, Int?) = state.withLock { state in
            guard state.serving else { return (false, nil) }
            state.nextWatcher += 1
            state.watchers[state.nextWatcher] = continuation
            return (true, state.nextWatcher)
        }
        try await response.write(Self.response(serving))
        guard let id else { return }
        defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
        try await withTaskCancellationHandler {
            for await serving in stream { try await response.write(Self.response(serving)) }
        } onCancel: {
            continuation.finish()
        }
    }
}
