import NIOCore

/// A network address as the command-line tools take it: `HOST:PORT`, `[IPv6]:PORT`, or `:PORT`
/// (the caller's default host). One parser for ledgerd's --listen, tokenctl's --server and
/// ledger-load's addresses.
public struct HostPort: Hashable, Sendable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `text`; an empty host becomes `emptyHost`; the port must lie in `ports`. The error
    /// is a sentence without the option's name, for the caller to prefix.
    public init(parsing text: String, emptyHost: String, ports: ClosedRange<Int> = 0...65_535) throws(HostPortError) {
        var hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw HostPortError("expected [HOST]:PORT, not \(text)")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw HostPortError("expected HOST:PORT, not \(text)") }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        if hostPart.isEmpty { hostPart = Substring(emptyHost) }
        guard let port = Int(portPart), ports.contains(port) else {
            throw HostPortError("the port of \(text) must be \(ports.lowerBound) to \(ports.upperBound)")
        }
        self.init(host: String(hostPart), port: port)
    }
}

public struct HostPortError: Error, Hashable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension HostPort {
    /// Whether `name` is an IPv4 or IPv6 literal. TLS clients send no SNI for those (RFC 6066)
    /// and check the certificate's IP addresses instead: the Swift client and the webhook sink.
    public static func isIPAddress(_ name: String) -> Bool {
        (try? SocketAddress(ipAddress: name, port: 0)) != nil
    }
}
