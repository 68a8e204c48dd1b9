import Foundation
import Glibc
import Synchronization

/// A webhook endpoint on a loopback socket: a thread that accepts HTTP/1.1 requests one at a time,
/// records them, and answers with the status `policy` picks for the n-th request (1-based).
public final class WebhookReceiver: Sendable {
    public struct Request: Sendable {
        public var path: String
        public var headers: [String: String]
        public var body: [UInt8]
        public var status: Int
    }

    public let port: Int
    private let listener: Int32
    private let requests = Mutex<[Request]>([])
    private let policy: Mutex<@Sendable (Int) -> Int>

    public init(policy: @escaping @Sendable (Int) -> Int) throws {
        self.policy = Mutex(policy)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && listen(descriptor, 16) == 0
                    && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw ChildError("webhook receiver: bind failed, errno \(errno)") }
        listener = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    public func setPolicy(_ new: @escaping @Sendable (Int) -> Int) { policy.withLock { $0 = new } }

    public var received: [Request] { requests.withLock { $0 } }

    /// Stops accepting (the thread ends at its next accept).
    public func close() { shutdown(listener, Int32(SHUT_RDWR)) }

    private func serve() {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            handle(connection)
            Glibc.close(connection)
        }
    }

    private func handle(_ connection: Int32) {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var end: Int? = nil
        var contentLength = 0
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return }
            data += chunk[..<count]
            if end == nil, let range = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                end = range.upperBound
                let head = String(decoding: data[..<range.lowerBound], as: UTF8.self)
                for line in head.split(separator: "\r\n").dropFirst() {
                    let parts = line.split(separator: ":", maxSplits: 1)
                    if parts.count == 2, parts[0].lowercased() == "content-length" {
                        contentLength = Int(String(parts[1]).trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                }
            }
            if let end, data.count >= end + contentLength { break }
        }
        let headerEnd = end!
        let head = String(decoding: data[..<(headerEnd - 4)], as: UTF8.self).split(separator: "\r\n")
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { headers[parts[0].lowercased()] = String(parts[1]).trimmingCharacters(in: .whitespaces) }
        }
        let path = head.first.map { String($0.split(separator: " ").dropFirst().first ?? "") } ?? ""
        let body = Array(data[headerEnd..<(headerEnd + contentLength)])
        let status: Int = requests.withLock { requests in
            let status = policy.withLock { $0 }(requests.count + 1)
            requests.append(Request(path: path, headers: headers, body: body, status: status))
            return status
        }
        let response = Array("HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
        _ = response.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// The events of every acknowledged delivery, by tenant, in the order received. A delivery
    /// acknowledged twice counts once: delivery is at least once, and the sink sends the same
    /// delivery again when it did not see the acknowledgement (a timeout on a loaded machine; seen
    /// once in a full parallel run). Events in two different deliveries still count twice.
    public func acknowledgedEvents() -> [[String: Any]] {
        var seen: Set<String> = []
        let acknowledged = received.filter { request in
            guard (200..<300).contains(request.status) else { return false }
            return seen.insert(request.headers["x-tokenledger-delivery"] ?? "").inserted
        }
        return acknowledged.flatMap { request -> [[String: Any]] in
            let object = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any]
            return object?["events"] as? [[String: Any]] ?? []
        }
    }

    /// Waits until `condition` holds for what was received.
    public func wait(seconds: Double = 30, _ condition: (WebhookReceiver) -> Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1_000))
        while !condition(self) {
            guard ContinuousClock.now < deadline else { throw ChildError("webhook receiver: condition not met; got \(received.count) requests") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
